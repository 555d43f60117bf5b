//! Every parser on arbitrary bytes: Ethernet/VLAN, IPv4/IPv6 (strict and
//! quoted), then the L4 header by protocol: TCP with options and SACK, UDP,
//! ICMP/ICMPv6 and, for errors, the quoted packet. Checksums (which return
//! `true` under `cfg(fuzzing)`) and the RFC 1624 update.
//!
//! Invariants: no panic; every view lies inside its input; `l4` ends where
//! the IP datagram ends (or where the input ends, for a quote); the L4 views
//! account for every byte they cover; an incremental checksum update equals
//! a recomputation.
#![no_main]

use ct_core::tuple::{proto, L3};
use ct_core::wire::icmp::{self, IcmpMsg};
use ct_core::wire::udp::UdpDgram;
use ct_core::wire::{checksum, parse_frame, parse_ip, parse_quoted_ip, IpPacket, TcpSeg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = parse_frame(data) else { return };
    assert_eq!(frame.l3_offset, 14 + 4 * frame.vlans.len());
    assert_eq!(frame.l3_offset + frame.l3.len(), data.len());
    if let Ok(ip) = parse_ip(frame.l3) {
        check_ip(&ip, frame.l3, false);
        if ip.l3 == L3::V4 {
            check_update16(frame.l3);
        }
        check_l4(&ip, true);
    }
    if let Ok(ip) = parse_quoted_ip(frame.l3) {
        check_ip(&ip, frame.l3, true);
        check_l4(&ip, false);
    }
});

/// `sub` lies inside `outer` (by address; an empty `sub` may dangle).
fn within(sub: &[u8], outer: &[u8]) -> bool {
    let (s, o) = (sub.as_ptr() as usize, outer.as_ptr() as usize);
    sub.is_empty() || (s >= o && s + sub.len() <= o + outer.len())
}

fn check_ip(ip: &IpPacket<'_>, l3: &[u8], quoted: bool) {
    assert!(within(ip.l4, l3));
    let ip_len = ip.ip_len as usize;
    if !quoted {
        assert!(ip_len <= l3.len(), "a checked datagram fits in its frame");
    }
    if !ip.l4.is_empty() {
        // The L4 bytes end with the datagram, padding and missing bytes cut.
        let end = ip.l4.as_ptr() as usize + ip.l4.len();
        assert_eq!(end, l3.as_ptr() as usize + ip_len.min(l3.len()));
    }
    match ip.l3 {
        L3::V4 => assert!(ip.ident <= 0xffff && ip_len >= 20 + ip.l4.len()),
        L3::V6 => assert!(ip.ident <= 0xf_ffff && ip_len >= 40 + ip.l4.len()),
    }
}

/// A TTL decrement with RFC 1624's update matches a full recomputation.
fn check_update16(l3: &[u8]) {
    let hlen = usize::from(l3[0] & 0x0f) * 4;
    let mut hdr = l3[..hlen].to_vec();
    hdr[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&hdr, 0);
    let old = u16::from_be_bytes([hdr[8], hdr[9]]);
    hdr[8] = hdr[8].wrapping_sub(1);
    let new = u16::from_be_bytes([hdr[8], hdr[9]]);
    assert_eq!(checksum::update16(c, old, new), checksum::checksum(&hdr, 0));
}

/// Parse the L4 header by protocol; `outer`: look inside ICMP errors (once).
fn check_l4(ip: &IpPacket<'_>, outer: bool) {
    let _ = checksum::l4_ok(ip);
    match (ip.proto, ip.l3) {
        (proto::TCP, _) => {
            if let Ok(seg) = TcpSeg::parse(ip.l4) {
                assert_eq!(20 + seg.options.len() + seg.payload.len(), ip.l4.len());
                for (_, v) in seg.options() {
                    assert!(within(v, seg.options));
                }
                if let Some(ws) = seg.window_scale() {
                    assert!(ws <= 14);
                }
                let _ = (seg.sack_permitted(), seg.sack_max(seg.ack), seg.payload_len());
            }
        }
        (proto::UDP | proto::UDPLITE, _) => {
            if let Ok(d) = UdpDgram::parse(ip.l4) {
                assert_eq!(d.payload.len() + 8, usize::from(d.length));
                assert!(within(d.payload, ip.l4));
            }
        }
        (proto::ICMP, L3::V4) | (proto::ICMPV6, L3::V6) => {
            let Ok(m) = IcmpMsg::parse(ip.l4) else { return };
            assert_eq!(m.body.len() + 8, ip.l4.len());
            let is_error = match ip.l3 {
                L3::V4 => icmp::is_v4_error(m.ty),
                L3::V6 => icmp::is_v6_error(m.ty),
            };
            if !(is_error && outer) {
                return;
            }
            let Ok(inner) = parse_quoted_ip(m.body) else { return };
            check_ip(&inner, m.body, true);
            // The error's tuple comes from the first 8 bytes of the quoted L4.
            match inner.proto {
                proto::TCP | proto::UDP | proto::UDPLITE => {
                    let _ = UdpDgram::parse_quoted(inner.l4);
                }
                _ => {}
            }
            check_l4(&inner, false);
        }
        _ => {}
    }
}
