//! Other protocols and frames: GRE, the generic tracker, non-IP frames (spec §7, §13 item 35).

use super::filler;
use super::{Ctor, Flow};
use crate::scenario::{Builder, Scenario};
use crate::trace::{flags::*, Pkt, Side, C, C6, MAC_C_PEER, S, S6};

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("gre_v0", gre_v0),
    ("gre_v1_pptp", gre_v1_pptp),
    ("generic_proto_253", generic_proto_253),
    ("generic_esp_and_ipv6", generic_esp_and_ipv6),
    ("non_ip_and_bad_ip_not_seen", non_ip_and_bad_ip_not_seen),
    ("custom_timeouts", custom_timeouts),
    ("custom_tcp_caps", custom_tcp_caps),
];

/// A GREv0 header (no key) carrying a small IPv4 packet.
fn gre_v0_payload(key: Option<u32>) -> Vec<u8> {
    let mut g = if key.is_some() { vec![0x20, 0x00, 0x08, 0x00] } else { vec![0x00, 0x00, 0x08, 0x00] };
    if let Some(k) = key {
        g.extend_from_slice(&k.to_be_bytes());
    }
    g.extend_from_slice(&Pkt::raw(C, S, 253, b"inner").ip_bytes(0));
    g
}

fn gre_v0() -> Scenario {
    let mut b = Builder::new("gre_v0", "§7 GRE version 0 (keys 0): NEW, ESTABLISHED, stream timeout after reply");
    b.send(Pkt::raw(C, S, 47, &gre_v0_payload(None)), "C>S GRE");
    b.send(Pkt::raw(S, C, 47, &gre_v0_payload(None)), "S>C GRE");
    b.send(Pkt::raw(C, S, 47, &gre_v0_payload(Some(7))), "C>S GRE with key 7");
    b.build()
}

/// An enhanced GRE (PPTP, version 1) header with `call_id`, carrying a PPP byte string.
fn gre_v1(call_id: u16) -> Vec<u8> {
    let payload = [0xff, 0x03, 0x00, 0x21, 0x45];
    let mut g = vec![0x20, 0x01, 0x88, 0x0b];
    g.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    g.extend_from_slice(&call_id.to_be_bytes());
    g.extend_from_slice(&payload);
    g
}

fn gre_v1_pptp() -> Scenario {
    let mut b = Builder::new("gre_v1_pptp", "§7 GRE version 1 (PPTP) without the PPTP helper: call id keys");
    b.send(Pkt::raw(C, S, 47, &gre_v1(0x1234)), "C>S GREv1 call 0x1234");
    b.send(Pkt::raw(S, C, 47, &gre_v1(0x5678)), "S>C GREv1 call 0x5678");
    b.send(Pkt::raw(S, C, 47, &gre_v1(0)), "S>C GREv1 call 0");
    b.build()
}

fn generic_proto_253() -> Scenario {
    let mut b = Builder::new("generic_proto_253", "§13(35) IP protocol 253: NEW, ESTABLISHED; 600 s, never ASSURED");
    b.send(Pkt::raw(C, S, 253, b"experiment"), "C>S proto 253");
    b.send(Pkt::raw(S, C, 253, b"experiment"), "S>C proto 253");
    b.send(Pkt::raw(C, S, 253, b"experiment"), "C>S proto 253");
    b.build()
}

fn generic_esp_and_ipv6() -> Scenario {
    let mut b = Builder::new(
        "generic_esp_and_ipv6",
        "§7 ESP (50) and IPv6 protocol 253 use the generic tracker; generic_timeout=100",
    )
    .sysctl("generic_timeout", 100);
    let esp = [0, 0, 0x10, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    b.send(Pkt::raw(C, S, 50, &esp), "C>S ESP");
    b.send(Pkt::raw(S, C, 50, &esp), "S>C ESP");
    b.send(Pkt::raw(C6, S6, 253, b"v6 experiment"), "C>S v6 proto 253");
    b.send(Pkt::raw(S6, C6, 253, b"v6 experiment"), "S>C v6 proto 253");
    b.build()
}

fn non_ip_and_bad_ip_not_seen() -> Scenario {
    let mut b = Builder::new(
        "non_ip_and_bad_ip_not_seen",
        "non-IP frames (ARP) and IPv4 headers with a bad checksum never reach conntrack; a SYN around them",
    );
    let mut arp = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
    arp.extend_from_slice(&MAC_C_PEER);
    arp.extend_from_slice(&C.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&S.octets());
    b.send_eth(0x0806, &arp, Side::C, "C ARP who-has S");
    let f = Flow::std();
    f.syn(&mut b);
    let n = b.send(f.s(SYN | ACK, 5000, 1001).bad_ip_csum(), "S>C SYN/ACK bad IP header checksum");
    b.expect_not_seen(n);
    f.synack(&mut b);
    b.build()
}

fn custom_timeouts() -> Scenario {
    let mut b = Builder::new(
        "custom_timeouts",
        "every protocol's timeout knob reaches both sides: TCP, UDP (unreplied and stream), ICMP, ICMPv6, generic, GRE",
    )
    .sysctl("tcp_timeout_syn_sent", 33)
    .sysctl("tcp_timeout_syn_recv", 22)
    .sysctl("tcp_timeout_established", 1000)
    .sysctl("udp_timeout", 20)
    .sysctl("udp_timeout_stream", 50)
    .sysctl("icmp_timeout", 15)
    .sysctl("icmpv6_timeout", 12)
    .sysctl("generic_timeout", 44)
    .sysctl("gre_timeout", 17)
    .sysctl("gre_timeout_stream", 77);
    Flow::new(C, 40001, S, 80).syn(&mut b);
    let g = Flow::new(C, 40002, S, 80);
    g.syn(&mut b);
    g.synack(&mut b);
    let mut h = Flow::new(C, 40003, S, 80);
    h.handshake(&mut b);
    b.send(Pkt::udp(C, 6000, S, 7000, b"a"), "C>S UDP unreplied");
    b.send(Pkt::icmp_query(C, S, 8, 5, 1, b"ping"), "C>S echo");
    b.send(Pkt::icmp_query(C6, S6, 128, 6, 1, b"ping"), "C>S v6 echo");
    b.send(Pkt::raw(C, S, 253, b"x"), "C>S proto 253");
    b.send(Pkt::raw(C, S, 47, &[0, 0, 0x08, 0]), "C>S GRE");
    b.send(Pkt::raw(S, C, 47, &[0, 0, 0x08, 0]), "S>C GRE");
    b.send(Pkt::raw(C, S, 47, &[0, 0, 0x08, 0]), "C>S GRE");
    b.send(Pkt::udp(C, 6001, S, 7001, b"a"), "C>S UDP stream");
    b.send(Pkt::udp(S, 7001, C, 6001, b"b"), "S>C UDP stream");
    b.at(2.5);
    b.send(Pkt::udp(C, 6001, S, 7001, b"c"), "C>S UDP stream t=2.5");
    b.build()
}

fn custom_tcp_caps() -> Scenario {
    let mut b = Builder::new(
        "custom_tcp_caps",
        "tcp_timeout_unacknowledged, tcp_timeout_max_retrans and tcp_max_retrans reach both sides",
    )
    .sysctl("tcp_timeout_unacknowledged", 200)
    .sysctl("tcp_timeout_max_retrans", 250)
    .sysctl("tcp_max_retrans", 2);
    let mut f = Flow::new(C, 40010, S, 80);
    f.handshake(&mut b);
    f.c_data(&mut b, &filler(10), "C>S data (unacked: 200)");
    let mut g = Flow::new(C, 40011, S, 80);
    g.handshake(&mut b);
    for _ in 0..3 {
        g.c_ack(&mut b);
    }
    b.build()
}
