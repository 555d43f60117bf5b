//! The TFTP helper: CONNTRACK_SPEC §13 scenario 43 (the helper's side).

mod common;

use common::*;
use ct_core::expect::{ExpectPolicy, ExpectRequest};
use ct_core::tuple::proto;
use ct_core::{CtInfo, Dir, Tuple, L3};
use helpers::tftp::Tftp;
use helpers::{AlgHelper, DropReason, HelperVerdict};

fn udp_expect(l3: L3, src: ct_core::Addr, dst: ct_core::Addr, dport: u16) -> ExpectRequest {
    ExpectRequest {
        tuple: Tuple { l3, proto: proto::UDP, src, dst, sport: 0, dport },
        match_src_addr: true,
        match_sport: false,
        class: 0,
    }
}

fn conn() -> Conn {
    Conn::new(L3::V4, proto::UDP, C, 1069, S, 69)
}

fn udp(c: &mut Conn, dir: Dir, ctinfo: CtInfo, payload: &[u8]) -> Out {
    c.run(&Tftp, dir, ctinfo, None, payload)
}

#[test]
fn identity() {
    assert_eq!(Tftp::new().name(), "tftp");
    assert_eq!(Tftp.proto(), proto::UDP);
    assert_eq!(Tftp.policy(), ExpectPolicy::KERNEL_DEFAULT);
}

#[test]
fn s43_rrq_on_the_new_packet() {
    let mut c = conn();
    let out = udp(&mut c, Dir::Original, CtInfo::New, b"\x00\x01file\x00octet\x00");
    assert_eq!(out.one(), udp_expect(L3::V4, S, C, 1069));
}

#[test]
fn wrq_and_repeats() {
    let mut c = conn();
    assert_eq!(udp(&mut c, Dir::Original, CtInfo::New, b"\x00\x02f\x00netascii\x00").one().tuple.dport, 1069);
    // A retransmitted request (still NEW before any reply) asks again.
    assert_eq!(udp(&mut c, Dir::Original, CtInfo::New, b"\x00\x01f\x00octet\x00").one().tuple.dport, 1069);
    // Any direction and ctinfo the helper is called with.
    assert_eq!(udp(&mut c, Dir::Reply, CtInfo::EstablishedReply, b"\x00\x01").one().tuple.dport, 1069);
    assert_eq!(udp(&mut c, Dir::Original, CtInfo::Established, b"\x00\x02").one().tuple.dport, 1069);
}

#[test]
fn other_opcodes_and_short_payloads() {
    let mut c = conn();
    for p in [
        &b""[..],
        b"\x00",
        b"\x01",
        b"\x00\x03\x00\x01data",
        b"\x00\x04\x00\x01",
        b"\x00\x05\x00\x01oops\x00",
        b"\x00\x00",
        b"\x01\x01",
        b"\x00\x06",
        b"\xff\xff",
    ] {
        assert!(udp(&mut c, Dir::Original, CtInfo::New, p).accepted_none(), "{p:?}");
    }
}

#[test]
fn related_reply_not_inspected() {
    let mut c = conn();
    assert!(udp(&mut c, Dir::Reply, CtInfo::RelatedReply, b"\x00\x01").accepted_none());
}

#[test]
fn ipv6() {
    let (cv6, sv6) = (v6("2001:db8:1::2"), v6("2001:db8:2::2"));
    let mut c = Conn::new(L3::V6, proto::UDP, cv6, 1069, sv6, 69);
    assert_eq!(
        udp(&mut c, Dir::Original, CtInfo::New, b"\x00\x01f\x00octet\x00").one(),
        udp_expect(L3::V6, sv6, cv6, 1069)
    );
}

#[test]
fn full_request_list_drops() {
    use arrayvec::ArrayVec;
    use helpers::{HelperCx, MAX_REQUESTS};
    let c = conn();
    let mut expects = ArrayVec::<ExpectRequest, MAX_REQUESTS>::new();
    while !expects.is_full() {
        expects.push(udp_expect(L3::V4, S, C, 1));
    }
    let mut line = c.line;
    let mut cx = HelperCx {
        dir: Dir::Original,
        ctinfo: CtInfo::New,
        zone: 0,
        orig: c.orig,
        reply: c.reply,
        tcp: None,
        payload: b"\x00\x01",
        line: &mut line,
        expects: &mut expects,
    };
    assert_eq!(Tftp.help(&mut cx), HelperVerdict::Drop(DropReason::ExpectFailed));
}
