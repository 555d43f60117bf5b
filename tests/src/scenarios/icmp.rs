//! ICMP and ICMPv6 scenarios (spec §6, §13 items 27–34).

use super::{filler, Ctor, Flow};
use crate::scenario::{Builder, Scenario};
use crate::trace::{
    flags::*, link_local, nd_body, redirect_body, solicited_node, Ext6, Pkt, C, C6, MAC_C_PEER, MAC_S_PEER, R, R6,
    ROUTER_ALERT_MLD, S, S6, X,
};
use std::net::Ipv6Addr;

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("icmp_echo", icmp_echo),
    ("icmp_unsolicited_and_unknown_types", icmp_unsolicited_and_unknown_types),
    ("icmp_query_types", icmp_query_types),
    ("icmp_bad_checksum", icmp_bad_checksum),
    ("icmp_port_unreachable_udp", icmp_port_unreachable_udp),
    ("icmp_error_about_reply_direction", icmp_error_about_reply_direction),
    ("icmp_error_unknown_connection", icmp_error_unknown_connection),
    ("icmp_error_outer_dst_mismatch", icmp_error_outer_dst_mismatch),
    ("icmp_time_exceeded_tcp_syn", icmp_time_exceeded_tcp_syn),
    ("icmp_frag_needed_tcp", icmp_frag_needed_tcp),
    ("icmp_error_types_udp", icmp_error_types_udp),
    ("icmp_error_truncated_quotes", icmp_error_truncated_quotes),
    ("icmp_error_quoting_fragment", icmp_error_quoting_fragment),
    ("icmp_error_about_echo", icmp_error_about_echo),
    ("icmp_error_bad_checksum", icmp_error_bad_checksum),
    ("icmpv6_echo", icmpv6_echo),
    ("icmpv6_unsolicited_and_unknown", icmpv6_unsolicited_and_unknown),
    ("icmpv6_nd_mld_untracked", icmpv6_nd_mld_untracked),
    ("icmpv6_packet_too_big", icmpv6_packet_too_big),
    ("icmpv6_dest_unreachable_udp", icmpv6_dest_unreachable_udp),
    ("icmpv6_redirect", icmpv6_redirect),
];

fn icmp_echo() -> Scenario {
    let mut b = Builder::new("icmp_echo", "§13(27) ping: NEW, ESTABLISHED, ESTABLISHED; 30 s, never ASSURED");
    b.send(Pkt::icmp_query(C, S, 8, 77, 1, &filler(56)), "C>S echo id 77");
    b.send(Pkt::icmp_query(S, C, 0, 77, 1, &filler(56)), "S>C echo reply");
    b.send(Pkt::icmp_query(C, S, 8, 77, 2, &filler(56)), "C>S echo seq 2");
    b.send(Pkt::icmp_query(C, S, 8, 78, 1, &filler(56)), "C>S echo id 78 (new)");
    b.build()
}

fn icmp_unsolicited_and_unknown_types() -> Scenario {
    let mut b = Builder::new(
        "icmp_unsolicited_and_unknown_types",
        "§13(28) unsolicited echo reply, types 9, 10, 42, 19, 6: INVALID",
    );
    b.send(Pkt::icmp_query(S, C, 0, 99, 1, b"x"), "S>C echo reply, no request");
    b.send(Pkt::icmp(R, C, 9, 0, [1, 0, 0x07, 0x08], &[10, 0, 3, 1, 0, 0, 0, 0]), "R>C type 9 router adv");
    b.send(Pkt::icmp(C, R, 10, 0, [0; 4], &[]), "C>R type 10 router sol");
    b.send(Pkt::icmp(C, S, 42, 0, [0, 1, 0, 1], b"x"), "C>S type 42");
    b.send(Pkt::icmp(C, S, 19, 0, [0, 1, 0, 1], b"x"), "C>S type 19");
    b.send(Pkt::icmp(C, S, 6, 0, [0, 1, 0, 1], b"x"), "C>S type 6");
    b.send(Pkt::icmp_query(S, C, 14, 98, 1, &[0; 12]), "S>C timestamp reply, no request");
    b.build()
}

fn icmp_query_types() -> Scenario {
    let mut b = Builder::new("icmp_query_types", "§13(28)/§6.1 timestamp, info and mask request/reply pairs");
    b.send(Pkt::icmp_query(C, S, 13, 5, 1, &[0; 12]), "C>S timestamp req");
    b.send(Pkt::icmp_query(S, C, 14, 5, 1, &[0; 12]), "S>C timestamp reply");
    b.send(Pkt::icmp_query(C, S, 15, 6, 1, &[]), "C>S info req");
    b.send(Pkt::icmp_query(S, C, 16, 6, 1, &[]), "S>C info reply");
    b.send(Pkt::icmp_query(C, S, 17, 7, 1, &[0; 4]), "C>S mask req");
    b.send(Pkt::icmp_query(S, C, 18, 7, 1, &[255, 255, 255, 0]), "S>C mask reply");
    b.send(Pkt::icmp(C, S, 8, 1, [0, 9, 0, 1], b"x"), "C>S echo code 1");
    b.send(Pkt::icmp(S, C, 0, 1, [0, 9, 0, 1], b"x"), "S>C echo reply code 1");
    b.build()
}

fn icmp_bad_checksum() -> Scenario {
    let mut b = Builder::new("icmp_bad_checksum", "§6.3 bad ICMP checksum: INVALID");
    b.send(Pkt::icmp_query(C, S, 8, 77, 1, b"abc").bad_l4_csum(), "C>S echo bad csum");
    b.send(Pkt::icmp_query(C, S, 8, 77, 1, b"abc"), "C>S echo good");
    b.send(Pkt::icmp_query(S, C, 0, 77, 1, b"abc").bad_l4_csum(), "S>C reply bad csum");
    b.build()
}

fn icmp_port_unreachable_udp() -> Scenario {
    let mut b = Builder::new(
        "icmp_port_unreachable_udp",
        "§13(29) port unreachable for a UDP flow: RELATED (reply); entry untouched (no refresh)",
    );
    let d = Pkt::udp(C, 40000, S, 33434, &filler(32));
    b.send(d.clone(), "C>S UDP");
    b.wait(2.0);
    b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &d, None), "S>C ICMP 3/3 quoting it");
    b.build()
}

fn icmp_error_about_reply_direction() -> Scenario {
    let mut b = Builder::new(
        "icmp_error_about_reply_direction",
        "§13(30) ICMP error quoting the reply-direction datagram: RELATED original",
    );
    b.send(Pkt::udp(C, 53000, S, 53, b"q"), "C>S UDP");
    let r = Pkt::udp(S, 53, C, 53000, b"resp");
    b.send(r.clone(), "S>C UDP reply");
    b.send(Pkt::icmp_error(C, S, 3, 3, [0; 4], &r, None), "C>S ICMP 3/3 quoting S>C");
    b.build()
}

fn icmp_error_unknown_connection() -> Scenario {
    let mut b =
        Builder::new("icmp_error_unknown_connection", "§13(31) ICMP error about an unknown connection: INVALID");
    let d = Pkt::udp(C, 40000, X, 53, b"q");
    b.send(Pkt::icmp_error(R, C, 3, 1, [0; 4], &d, None), "R>C ICMP 3/1 quoting C>X");
    let t = Pkt::tcp(C, 40000, S, 80, SYN, 1000, 0);
    b.send(Pkt::icmp_error(R, C, 11, 0, [0; 4], &t, None), "R>C ICMP 11 quoting unknown SYN");
    b.build()
}

fn icmp_error_outer_dst_mismatch() -> Scenario {
    let mut b = Builder::new(
        "icmp_error_outer_dst_mismatch",
        "§13(32) forged ICMP error, outer destination is not the flow's source: INVALID",
    );
    let d = Pkt::udp(C, 40000, S, 53, b"q");
    b.send(d.clone(), "C>S UDP");
    b.send(Pkt::icmp_error(R, X, 3, 3, [0; 4], &d, None), "R>X ICMP 3/3 quoting C>S");
    b.send(Pkt::icmp_error(R, C, 3, 3, [0; 4], &d, None), "R>C ICMP 3/3 quoting C>S");
    b.build()
}

fn icmp_time_exceeded_tcp_syn() -> Scenario {
    let mut b =
        Builder::new("icmp_time_exceeded_tcp_syn", "§6.3 time exceeded from a router for a TCP SYN: RELATED reply");
    let f = Flow::std();
    let syn = f.c(SYN, 1000, 0).ttl(1);
    b.send(f.c(SYN, 1000, 0), "C>S SYN");
    b.send(Pkt::icmp_error(R, C, 11, 0, [0; 4], &syn, None), "R>C ICMP 11/0 quoting the SYN");
    b.build()
}

fn icmp_frag_needed_tcp() -> Scenario {
    let mut b = Builder::new("icmp_frag_needed_tcp", "§13(33) frag needed for a TCP data segment: RELATED");
    let mut f = Flow::std();
    f.handshake(&mut b);
    let seg = f.c(PSH | ACK, f.cseq, f.sseq).payload(&filler(1400));
    f.c_data(&mut b, &filler(1400), "C>S data 1400");
    b.send(Pkt::icmp_error(R, C, 3, 4, [0, 0, 0x05, 0x78], &seg, Some(576 - 28)), "R>C ICMP 3/4 mtu 1400");
    b.build()
}

fn icmp_error_types_udp() -> Scenario {
    let mut b =
        Builder::new("icmp_error_types_udp", "§6.2 every ICMP error type (3, 4, 5, 11, 12) about a UDP flow: RELATED");
    let d = Pkt::udp(C, 40100, S, 9999, b"data");
    b.send(d.clone(), "C>S UDP");
    b.send(Pkt::icmp_error(S, C, 3, 1, [0; 4], &d, None), "S>C 3/1");
    b.send(Pkt::icmp_error(S, C, 4, 0, [0; 4], &d, None), "S>C 4/0 source quench");
    b.send(Pkt::icmp_error(R, C, 5, 1, [10, 0, 2, 254], &d, None), "R>C 5/1 redirect");
    b.send(Pkt::icmp_error(R, C, 11, 1, [0; 4], &d, None), "R>C 11/1");
    b.send(Pkt::icmp_error(S, C, 12, 0, [20, 0, 0, 0], &d, None), "S>C 12/0 param problem");
    b.build()
}

fn icmp_error_truncated_quotes() -> Scenario {
    let mut b = Builder::new(
        "icmp_error_truncated_quotes",
        "§6.3 errors quoting truncated packets (IP+4, IP+2, IP only, half IP header)",
    );
    let d = Pkt::udp(C, 40200, S, 9999, b"data");
    b.send(d.clone(), "C>S UDP");
    for (n, note) in [(24, "quote IP+4"), (22, "quote IP+2"), (20, "quote IP only"), (10, "quote 10 B")] {
        b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &d, Some(n)), &format!("S>C 3/3 {note}"));
    }
    b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &d, Some(28)), "S>C 3/3 quote IP+8");
    b.build()
}

fn icmp_error_quoting_fragment() -> Scenario {
    let mut b = Builder::new("icmp_error_quoting_fragment", "§13(33) an error quoting a non-first fragment: INVALID");
    let d = Pkt::udp(C, 40300, S, 9999, b"data");
    b.send(d.clone(), "C>S UDP");
    let frag = d.clone().frag(100, false);
    b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &frag, None), "S>C 3/3 quoting a non-first fragment");
    let first = d.frag(0, true);
    b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &first, None), "S>C 3/3 quoting a first fragment");
    b.build()
}

fn icmp_error_about_echo() -> Scenario {
    let mut b = Builder::new("icmp_error_about_echo", "§6.3 an error quoting an echo request: RELATED to the ping");
    let e = Pkt::icmp_query(C, S, 8, 300, 1, &filler(16));
    b.send(e.clone(), "C>S echo");
    b.send(Pkt::icmp_error(R, C, 11, 0, [0; 4], &e, None), "R>C 11/0 quoting the echo");
    let unknown = Pkt::icmp_query(C, S, 8, 301, 1, &filler(16));
    b.send(Pkt::icmp_error(R, C, 11, 0, [0; 4], &unknown, None), "R>C 11/0 quoting an unknown echo");
    let err = Pkt::icmp_error(C, S, 3, 3, [0; 4], &Pkt::udp(S, 1, C, 2, b"x"), None);
    b.send(Pkt::icmp_error(R, C, 3, 1, [0; 4], &err, None), "R>C error quoting an ICMP error");
    b.build()
}

fn icmp_error_bad_checksum() -> Scenario {
    let mut b = Builder::new("icmp_error_bad_checksum", "§6.3 an ICMP error with a bad checksum: INVALID");
    let d = Pkt::udp(C, 40400, S, 9999, b"data");
    b.send(d.clone(), "C>S UDP");
    b.send(Pkt::icmp_error(S, C, 3, 3, [0; 4], &d, None).bad_l4_csum(), "S>C 3/3 bad csum");
    b.build()
}

fn icmpv6_echo() -> Scenario {
    let mut b = Builder::new("icmpv6_echo", "§13(34) ICMPv6 echo 128 NEW, 129 ESTABLISHED");
    b.send(Pkt::icmp_query(C6, S6, 128, 7, 1, &filler(56)), "C>S echo req id 7");
    b.send(Pkt::icmp_query(S6, C6, 129, 7, 1, &filler(56)), "S>C echo reply");
    b.send(Pkt::icmp_query(C6, S6, 128, 7, 2, &filler(56)), "C>S echo req seq 2");
    b.build()
}

fn icmpv6_unsolicited_and_unknown() -> Scenario {
    let mut b = Builder::new(
        "icmpv6_unsolicited_and_unknown",
        "§6.4 unsolicited 129, informational 141/142/144/200, node info 139/140, bad checksum",
    );
    b.send(Pkt::icmp_query(S6, C6, 129, 8, 1, b"x"), "S>C echo reply, no request");
    for ty in [141u8, 142, 144, 200] {
        b.send(Pkt::icmp(C6, S6, ty, 0, [0; 4], &[0; 8]), &format!("C>S type {ty}"));
    }
    b.send(Pkt::icmp_query(C6, S6, 139, 9, 0, &[0; 16]), "C>S node info query 139");
    b.send(Pkt::icmp_query(S6, C6, 140, 9, 0, &[0; 16]), "S>C node info reply 140");
    b.send(Pkt::icmp_query(C6, S6, 128, 10, 1, b"x").bad_l4_csum(), "C>S echo bad csum");
    b.build()
}

fn icmpv6_nd_mld_untracked() -> Scenario {
    let mut b = Builder::new("icmpv6_nd_mld_untracked", "§13(34) NS/NA/RS/RA/MLD are UNTRACKED");
    let ll_c = link_local(0x0102);
    let ll_r = link_local(1);
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let mld2 = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
    b.send(Pkt::icmp(C6, solicited_node(S6), 135, 0, [0; 4], &nd_body(S6, 1, MAC_C_PEER)).ttl(255), "C>mcast NS");
    b.send(Pkt::icmp(S6, C6, 136, 0, [0x60, 0, 0, 0], &nd_body(S6, 2, MAC_S_PEER)).ttl(255), "S>C NA");
    b.send(Pkt::icmp(ll_c, all_routers, 133, 0, [0; 4], &[1, 1, 2, 0, 0, 0, 1, 2]).ttl(255), "C>ff02::2 RS");
    b.send(Pkt::icmp(ll_r, all_nodes, 134, 0, [64, 0, 0, 0], &[0; 8]).ttl(255), "R>ff02::1 RA lifetime 0");
    b.send(
        Pkt::icmp(ll_r, all_nodes, 130, 0, [0x03, 0xe8, 0, 0], &[0; 16])
            .ttl(1)
            .ext(Ext6::HopByHop(ROUTER_ALERT_MLD.to_vec())),
        "R>ff02::1 MLD query",
    );
    b.send(
        Pkt::icmp(ll_c, group, 131, 0, [0; 4], &group.octets()).ttl(1).ext(Ext6::HopByHop(ROUTER_ALERT_MLD.to_vec())),
        "C>group MLD report",
    );
    b.send(
        Pkt::icmp(ll_c, all_routers, 132, 0, [0; 4], &group.octets())
            .ttl(1)
            .ext(Ext6::HopByHop(ROUTER_ALERT_MLD.to_vec())),
        "C>ff02::2 MLD done",
    );
    let mut rec = vec![4u8, 0, 0, 0];
    rec.extend_from_slice(&group.octets());
    b.send(
        Pkt::icmp(ll_c, mld2, 143, 0, [0, 0, 0, 1], &rec).ttl(1).ext(Ext6::HopByHop(ROUTER_ALERT_MLD.to_vec())),
        "C>ff02::16 MLDv2 report",
    );
    b.build()
}

fn icmpv6_packet_too_big() -> Scenario {
    let mut b = Builder::new("icmpv6_packet_too_big", "§13(33) ICMPv6 packet too big for a TCP flow: RELATED");
    let mut f = Flow::new(C6, 40000, S6, 80);
    f.handshake(&mut b);
    let seg = f.c(PSH | ACK, f.cseq, f.sseq).payload(&filler(1300));
    f.c_data(&mut b, &filler(1300), "C>S data 1300");
    b.send(Pkt::icmp_error(R6, C6, 2, 0, [0, 0, 0x05, 0x00], &seg, Some(1280 - 48)), "R>C PTB mtu 1280");
    b.build()
}

fn icmpv6_dest_unreachable_udp() -> Scenario {
    let mut b = Builder::new(
        "icmpv6_dest_unreachable_udp",
        "§6.4 ICMPv6 port unreachable for a UDP flow: RELATED; unknown flow: INVALID",
    );
    let d = Pkt::udp(C6, 40000, S6, 33434, b"probe");
    b.send(d.clone(), "C>S UDP");
    b.send(Pkt::icmp_error(S6, C6, 1, 4, [0; 4], &d, None), "S>C ICMPv6 1/4 quoting it");
    let other = Pkt::udp(C6, 40001, S6, 33434, b"probe");
    b.send(Pkt::icmp_error(S6, C6, 1, 4, [0; 4], &other, None), "S>C ICMPv6 1/4 unknown flow");
    b.send(Pkt::icmp_error(R6, C6, 3, 0, [0; 4], &d, None), "R>C ICMPv6 3/0 time exceeded");
    b.build()
}

fn icmpv6_redirect() -> Scenario {
    let mut b = Builder::new(
        "icmpv6_redirect",
        "§13(34) ICMPv6 redirect (hop limit 255, link-local source) quoting a tracked flow",
    );
    let f = Flow::new(C6, 40000, S6, 80);
    let syn = f.c(SYN, 1000, 0);
    b.send(syn.clone(), "C>S SYN");
    let quoted = syn.ip_bytes(0);
    let body = redirect_body(link_local(2), S6, &quoted);
    b.send(Pkt::icmp(link_local(1), C6, 137, 0, [0; 4], &body).ttl(255), "R(ll)>C redirect quoting SYN");
    b.send(Pkt::icmp(link_local(1), C6, 137, 0, [0; 4], &body).ttl(64), "R(ll)>C redirect hop limit 64");
    b.send(Pkt::icmp(R6, C6, 137, 0, [0; 4], &body).ttl(255), "R(global)>C redirect");
    b.build()
}
