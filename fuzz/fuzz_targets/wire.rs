//! Every parser on arbitrary bytes: Ethernet/VLAN, IPv4/IPv6 (strict and
//! quoted), TCP with options and SACK, UDP, ICMP, checksums. No panic.
#![no_main]

use ct_core::wire::icmp::IcmpMsg;
use ct_core::wire::udp::UdpDgram;
use ct_core::wire::{checksum, parse_frame, parse_ip, parse_quoted_ip, TcpSeg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse_frame(data) else { return };
    for ip in [parse_ip(frame.l3), parse_quoted_ip(frame.l3)].into_iter().flatten() {
        assert!(ip.l4.len() <= frame.l3.len());
        let _ = checksum::l4_ok(&ip);
        if let Ok(seg) = TcpSeg::parse(ip.l4) {
            let _ = (seg.window_scale(), seg.sack_permitted(), seg.sack_max(seg.ack));
            for (_, v) in seg.options() {
                assert!(v.len() <= seg.options.len());
            }
        }
        if let Ok(d) = UdpDgram::parse(ip.l4) {
            assert!(d.payload.len() + 8 <= ip.l4.len());
        }
        if let Ok(m) = IcmpMsg::parse(ip.l4) {
            if let Ok(inner) = parse_quoted_ip(m.body) {
                let _ = UdpDgram::parse_quoted(inner.l4);
            }
        }
    }
});
