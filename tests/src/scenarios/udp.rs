//! UDP scenarios (spec §5, §13 items 23–26).

use super::Ctor;
use crate::scenario::{Builder, Scenario};
use crate::trace::{Ext6, Pkt, C, C6, S, S6};

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("udp_request_reply", udp_request_reply),
    ("udp_stream_before_2s", udp_stream_before_2s),
    ("udp_stream_assured", udp_stream_assured),
    ("udp_unreplied_refresh", udp_unreplied_refresh),
    ("udp_expiry_reverse_new", udp_expiry_reverse_new),
    ("udp_malformed", udp_malformed),
    ("udp_checksum_off", udp_checksum_off),
    ("udp_acct_counters", udp_acct_counters),
    ("ipv6_udp_request_reply", ipv6_udp_request_reply),
    ("ipv6_udp_zero_checksum", ipv6_udp_zero_checksum),
];

fn udp_request_reply() -> Scenario {
    let mut b = Builder::new("udp_request_reply", "§13(23) DNS-like exchange: NEW, ESTABLISHED; 30 s, not ASSURED");
    b.send(Pkt::udp(C, 5353, S, 53, b"query"), "C>S query");
    b.wait(0.01);
    b.send(Pkt::udp(S, 53, C, 5353, b"response"), "S>C response");
    b.build()
}

fn stream(b: &mut Builder, last_at: f64) {
    b.send(Pkt::udp(C, 6000, S, 7000, b"a"), "t=0 C>S");
    b.at(0.1);
    b.send(Pkt::udp(S, 7000, C, 6000, b"b"), "t=0.1 S>C");
    b.at(1.0);
    b.send(Pkt::udp(C, 6000, S, 7000, b"c"), "t=1.0 C>S");
    if last_at > 1.0 {
        b.at(last_at);
        b.send(Pkt::udp(C, 6000, S, 7000, b"d"), "t=2.5 C>S");
    }
}

fn udp_stream_before_2s() -> Scenario {
    let mut b = Builder::new("udp_stream_before_2s", "§13(24) replied flow within 2 s: 30 s, not ASSURED");
    stream(&mut b, 1.0);
    b.build()
}

fn udp_stream_assured() -> Scenario {
    let mut b = Builder::new("udp_stream_assured", "§13(24) packet 2.5 s after the first, after a reply: ASSURED 120");
    stream(&mut b, 2.5);
    b.build()
}

fn udp_unreplied_refresh() -> Scenario {
    let mut b = Builder::new("udp_unreplied_refresh", "§13(25) every unreplied packet is NEW and resets the timeout")
        .sysctl("udp_timeout", 3);
    b.send(Pkt::udp(C, 6001, S, 7001, b"a"), "t=0 C>S");
    b.at(2.0);
    b.send(Pkt::udp(C, 6001, S, 7001, b"b"), "t=2 C>S");
    b.build()
}

fn udp_expiry_reverse_new() -> Scenario {
    let mut b = Builder::new(
        "udp_expiry_reverse_new",
        "§13(25) after expiry a datagram from the old responder is NEW with S as originator",
    )
    .sysctl("udp_timeout", 2);
    b.send(Pkt::udp(C, 6002, S, 7002, b"a"), "t=0 C>S");
    b.at(1.0);
    b.send(Pkt::udp(C, 6002, S, 7002, b"b"), "t=1 C>S");
    b.at(3.3);
    b.send(Pkt::udp(S, 7002, C, 6002, b"c"), "t=3.3 S>C");
    b.build()
}

fn udp_malformed() -> Scenario {
    let mut b = Builder::new(
        "udp_malformed",
        "§13(26) UDP length > data, length < 8, bad checksum: INVALID; checksum 0 and padding: NEW",
    );
    b.send(Pkt::udp(C, 6010, S, 53, b"0123456789").udp_len(30), "C>S len 30 > data");
    b.send(Pkt::udp(C, 6011, S, 53, b"0123456789").udp_len(4), "C>S len 4 < 8");
    b.send(Pkt::udp(C, 6012, S, 53, b"0123456789").bad_l4_csum(), "C>S bad checksum");
    b.send(Pkt::udp(C, 6013, S, 53, b"0123456789").l4_csum(0), "C>S checksum 0");
    // Length 12 over 10 bytes of data: 6 bytes of trailing padding (checksum 0: not verified).
    b.send(Pkt::udp(C, 6014, S, 53, b"0123456789").udp_len(12).l4_csum(0), "C>S len 12, 6 B padding");
    b.build()
}

fn udp_checksum_off() -> Scenario {
    let mut b = Builder::new("udp_checksum_off", "nf_conntrack_checksum=0: a bad UDP checksum is tracked")
        .sysctl("checksum", 0);
    b.send(Pkt::udp(C, 6020, S, 53, b"q").bad_l4_csum(), "C>S bad checksum");
    b.send(Pkt::udp(S, 53, C, 6020, b"r").bad_l4_csum(), "S>C bad checksum");
    b.build()
}

fn udp_acct_counters() -> Scenario {
    let mut b =
        Builder::new("udp_acct_counters", "nf_conntrack_acct=1: packets= bytes= per direction").sysctl("acct", 1);
    b.send(Pkt::udp(C, 6030, S, 7030, &[7u8; 100]), "C>S 100 B");
    b.send(Pkt::udp(C, 6030, S, 7030, &[7u8; 10]), "C>S 10 B");
    b.send(Pkt::udp(S, 7030, C, 6030, &[7u8; 33]), "S>C 33 B");
    b.build()
}

fn ipv6_udp_request_reply() -> Scenario {
    let mut b = Builder::new("ipv6_udp_request_reply", "IPv6 UDP exchange behind a destination options header");
    b.send(Pkt::udp(C6, 5353, S6, 53, b"query").ext(Ext6::DestOpts(vec![])), "C>S query +DST");
    b.send(Pkt::udp(S6, 53, C6, 5353, b"response"), "S>C response");
    b.build()
}

fn ipv6_udp_zero_checksum() -> Scenario {
    let mut b = Builder::new("ipv6_udp_zero_checksum", "§5 UDP checksum 0 over IPv6");
    b.send(Pkt::udp(C6, 5354, S6, 53, b"query").l4_csum(0), "C>S checksum 0");
    b.send(Pkt::udp(C6, 5355, S6, 53, b"query").bad_l4_csum(), "C>S bad checksum");
    b.build()
}
