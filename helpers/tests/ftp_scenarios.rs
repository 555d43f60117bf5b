//! The FTP helper driven packet by packet: CONNTRACK_SPEC §13 scenarios
//! 36–41 (the helper's side: what it requests and what it drops; the table
//! side of 36, 40 and 42, consuming, evicting and expiring expectations, is
//! ct-core's), line tracking, and FTP over IPv6.

mod common;

use arrayvec::ArrayVec;
use common::*;
use ct_core::expect::{ExpectPolicy, ExpectRequest};
use ct_core::tuple::proto;
use ct_core::wire::{TcpFlags, TcpSeg};
use ct_core::{CtInfo, Dir, L3};
use helpers::ftp::{Ftp, FtpConfig};
use helpers::{AlgHelper, DropReason, HelperCx, HelperVerdict, MAX_REQUESTS};

const STRICT: Ftp = Ftp::new(FtpConfig { loose: false });
const LOOSE: Ftp = Ftp::new(FtpConfig { loose: true });
const PARTIAL: HelperVerdict = HelperVerdict::Drop(DropReason::PartialMatch);

fn logged_in() -> Conn {
    let mut c = Conn::ftp_v4();
    c.login(&STRICT);
    c
}

#[test]
fn identity() {
    assert_eq!(STRICT.name(), "ftp");
    assert_eq!(STRICT.proto(), proto::TCP);
    assert_eq!(STRICT.policy(), ExpectPolicy::KERNEL_DEFAULT);
    assert!(!Ftp::default().config().loose);
    assert!(LOOSE.config().loose);
}

// ---- 36. Active FTP ----

#[test]
fn s36_active_ftp() {
    let mut c = logged_in();
    let out = c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n");
    // src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000
    assert_eq!(out.one(), tcp_expect(L3::V4, S, C, 40000));
    // The server's answer is not a command the helper looks for.
    assert!(c.s(&STRICT, b"200 PORT command successful\r\n").accepted_none());
}

// ---- 37. PORT with a mismatched address ----

#[test]
fn s37_mismatched_address() {
    let mut c = logged_in();
    assert!(c.c(&STRICT, b"PORT 10,0,9,9,156,64\r\n").accepted_none());

    let mut c = Conn::ftp_v4();
    c.login(&LOOSE);
    assert_eq!(c.c(&LOOSE, b"PORT 10,0,9,9,156,64\r\n").one(), tcp_expect(L3::V4, S, X, 40000));
    // A matching address is the same under loose.
    assert_eq!(c.c(&LOOSE, b"PORT 10,0,1,2,156,66\r\n").one(), tcp_expect(L3::V4, S, C, 40002));
}

#[test]
fn pasv_mismatch_and_loose() {
    let mut c = logged_in();
    assert!(c.s(&STRICT, b"227 Entering Passive Mode (10,0,9,9,195,80).\r\n").accepted_none());
    let mut c = Conn::ftp_v4();
    c.login(&LOOSE);
    assert_eq!(c.s(&LOOSE, b"227 Entering Passive Mode (10,0,9,9,195,80).\r\n").one(), tcp_expect(L3::V4, C, X, 50000));
}

// ---- 38. Passive FTP ----

#[test]
fn s38_passive_ftp() {
    let mut c = logged_in();
    assert!(c.c(&STRICT, b"PASV\r\n").accepted_none());
    let out = c.s(&STRICT, b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n");
    assert_eq!(out.one(), tcp_expect(L3::V4, C, S, 50000));
}

// ---- 39. PASV reply split across segments ----

#[test]
fn s39_split_pasv_reply() {
    let mut c = logged_in();
    let a: &[u8] = b"227 Entering Passive Mode (10,0,2,2,";
    let b: &[u8] = b"195,80).\r\n";
    let seq_a = c.next[Dir::Reply.index()];
    let line_before = c.line;

    // A starts at a line start: dropped, position not updated.
    assert_eq!(c.seg(&STRICT, CtInfo::EstablishedReply, seq_a, a).verdict, PARTIAL);
    assert_eq!(c.line, line_before);

    // B (the sender already sent A) is forwarded but not parsed.
    let seq_b = seq_a + a.len() as u32;
    assert!(c.seg(&STRICT, CtInfo::EstablishedReply, seq_b, b).accepted_none());

    // The retransmission of A+B at A's sequence number is parsed.
    let ab = [a, b].concat();
    let out = c.seg(&STRICT, CtInfo::EstablishedReply, seq_a, &ab);
    assert_eq!(out.one(), tcp_expect(L3::V4, C, S, 50000));

    // A alone again: still at a remembered line start, dropped again.
    assert_eq!(c.seg(&STRICT, CtInfo::EstablishedReply, seq_a, a).verdict, PARTIAL);
}

#[test]
fn s39_partial_commands_dropped() {
    let mut c = logged_in();
    let line_before = c.line;
    for seg in [&b"POR"[..], b"P", b"PORT 10,0,1,2,156\r\n", b"PORT 10,0,1,2,156,64\n", b"PORT abc\r\n", b"EPRT"] {
        let out = c.c(&STRICT, seg);
        assert_eq!(out.verdict, PARTIAL, "{:?}", String::from_utf8_lossy(seg));
        assert!(out.expects.is_empty());
        assert_eq!(c.line, line_before, "a dropped segment leaves the line position");
    }
    // The client then sends a good command at the same position.
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one(), tcp_expect(L3::V4, S, C, 40000));
}

#[test]
fn partial_reply_texts_dropped() {
    let mut c = logged_in();
    for seg in [&b"227 Entering Passive Mode\r\n"[..], b"227 Mode 3 (10,0,2,2,195,80)\r\n", b"22", b"229 (|||0|)\r\n"] {
        assert_eq!(c.s(&STRICT, seg).verdict, PARTIAL, "{:?}", String::from_utf8_lossy(seg));
    }
    assert!(c.s(&STRICT, b"226 Transfer complete\r\n").accepted_none());
}

// ---- 40. Extended modes and limits ----

#[test]
fn s40_extended_modes() {
    let mut c = logged_in();
    assert_eq!(c.c(&STRICT, b"EPRT |1|10.0.1.2|40001|\r\n").one(), tcp_expect(L3::V4, S, C, 40001));
    assert_eq!(
        c.s(&STRICT, b"229 Entering Extended Passive Mode (|||50001|)\r\n").one(),
        tcp_expect(L3::V4, C, S, 50001)
    );
    assert_eq!(c.c(&STRICT, b"EPRT |2|::1|40001|\r\n").verdict, PARTIAL, "|2| on IPv4");
    assert_eq!(c.c(&STRICT, b"EPRT |1|10.0.1.2|0|\r\n").verdict, PARTIAL, "port 0");
    // EPRT with another host's address: accepted, nothing expected.
    assert!(c.c(&STRICT, b"EPRT |1|10.0.9.9|40001|\r\n").accepted_none());
}

#[test]
fn s40_two_port_commands_each_request() {
    // The helper requests both; with max_expected = 1 the table keeps the
    // second only.
    let mut c = logged_in();
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
    assert_eq!(c.s(&STRICT, b"200 ok\r\n").verdict, HelperVerdict::Accept);
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,66\r\n").one().tuple.dport, 40002);
    assert_eq!(STRICT.policy().max_expected, 1);
    assert_eq!(STRICT.policy().timeout.as_secs(), 300);
}

// ---- 41. Command not at a segment start ----

#[test]
fn s41_command_not_at_segment_start() {
    let mut c = logged_in();
    assert!(c.c(&STRICT, b"TYPE I\r\nPORT 10,0,1,2,156,64\r\n").accepted_none());
    // The next segment starts at a line end again.
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
}

// ---- line tracking ----

#[test]
fn first_segment_per_direction_not_parsed() {
    let mut c = Conn::ftp_v4();
    // Even a partial match is not dropped when it is not at a known line start.
    assert!(c.c(&STRICT, b"POR").accepted_none());
    let mut c = Conn::ftp_v4();
    assert!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
    assert!(c.s(&STRICT, b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n").accepted_none());
    // Now both directions have a line start.
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
    assert_eq!(c.s(&STRICT, b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n").one().tuple.dport, 50000);
}

#[test]
fn directions_are_tracked_separately() {
    let mut c = Conn::ftp_v4();
    assert!(c.s(&STRICT, b"220 ready\r\n").accepted_none());
    // The reply direction has a line start, the original one does not.
    assert!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
    assert_eq!(c.line.seq_aft_nl_num, [1, 1]);
    assert_eq!(c.line.seq_aft_nl, [[C_ISN + 1 + 22, 0], [S_ISN + 1 + 11, 0]]);
}

#[test]
fn split_line_second_half_not_parsed() {
    let mut c = logged_in();
    // "SITE x" without a line end: the next segment is not at a line start.
    assert!(c.c(&STRICT, b"SITE x").accepted_none());
    assert!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
    // But it ended in \n, so the one after is.
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
}

#[test]
fn line_end_split_from_its_line() {
    let mut c = logged_in();
    assert!(c.c(&STRICT, b"NOOP\r").accepted_none());
    assert!(c.c(&STRICT, b"\n").accepted_none());
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
}

#[test]
fn two_line_starts_remembered() {
    use helpers::ftp::find_nl_seq;
    let mut c = logged_in();
    let s1 = c.next[0];
    assert!(c.c(&STRICT, b"NOOP\r\n").accepted_none());
    let s2 = c.next[0];
    // Remembered: after USER (s1) and after NOOP (s2).
    assert_eq!(c.line.seq_aft_nl[0], [s1, s2]);
    // A segment at either position is parsed; each ends in \n and replaces
    // the older remembered value.
    assert_eq!(c.seg(&STRICT, CtInfo::Established, s1, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
    assert_eq!(c.line.seq_aft_nl[0], [s1 + 22, s2]);
    assert_eq!(c.seg(&STRICT, CtInfo::Established, s2, b"PORT 10,0,1,2,156,65\r\n").one().tuple.dport, 40001);
    assert_eq!(c.line.seq_aft_nl[0], [s1 + 22, s2 + 22]);
    // s1 is forgotten now.
    assert!(!find_nl_seq(&c.line, Dir::Original, s1));
    assert!(c.seg(&STRICT, CtInfo::Established, s1, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
}

#[test]
fn old_line_end_does_not_replace_newer() {
    let mut c = logged_in();
    let s1 = c.next[0];
    assert!(c.c(&STRICT, b"NOOP\r\n").accepted_none());
    assert!(c.c(&STRICT, b"NOOP\r\n").accepted_none());
    let before = c.line;
    // A segment from before both remembered line ends ends in \n: ignored.
    assert!(c.seg(&STRICT, CtInfo::Established, s1 - 100, b"xx\r\n").accepted_none());
    assert_eq!(c.line, before);
}

#[test]
fn only_established_ctinfo_inspected() {
    let mut c = logged_in();
    let seq = c.next[0];
    let before = c.line;
    for ctinfo in [CtInfo::New, CtInfo::Related, CtInfo::RelatedReply] {
        let dir = if ctinfo.is_reply() { Dir::Reply } else { Dir::Original };
        let mut tcp = TcpSeg::bare(CPORT, 21, seq, 0, TcpFlags::ACK, 64000);
        let payload: &[u8] = b"PORT 10,0,1,2,156,64\r\n";
        tcp.payload = payload;
        assert!(c.run(&STRICT, dir, ctinfo, Some(tcp), payload).accepted_none(), "{ctinfo:?}");
        assert_eq!(c.line, before, "{ctinfo:?}: no line update either");
    }
    // Without a TCP header or without payload: nothing.
    assert!(c.run(&STRICT, Dir::Original, CtInfo::Established, None, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
    let tcp = TcpSeg::bare(CPORT, 21, seq, 0, TcpFlags::ACK, 64000);
    assert!(c.run(&STRICT, Dir::Original, CtInfo::Established, Some(tcp), b"").accepted_none());
    assert_eq!(c.line, before);
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
}

#[test]
fn sequence_wraps() {
    let mut c = Conn::ftp_v4();
    c.next = [u32::MAX - 3, 7];
    c.login(&STRICT);
    assert_eq!(c.next[0], 4, "USER a\\r\\n wrapped");
    assert_eq!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one().tuple.dport, 40000);
}

#[test]
fn failed_registration_drops_but_updates_line() {
    let c = logged_in();
    let seq = c.next[0];
    let payload: &[u8] = b"PORT 10,0,1,2,156,64\r\n";
    let mut tcp = TcpSeg::bare(CPORT, 21, seq, 0, TcpFlags::ACK, 64000);
    tcp.payload = payload;
    let mut expects = ArrayVec::<ExpectRequest, MAX_REQUESTS>::new();
    while !expects.is_full() {
        expects.push(tcp_expect(L3::V4, S, C, 1));
    }
    let mut line = c.line;
    let mut cx = HelperCx {
        dir: Dir::Original,
        ctinfo: CtInfo::Established,
        zone: 0,
        orig: c.orig,
        reply: c.reply,
        tcp: Some(tcp),
        payload,
        line: &mut line,
        expects: &mut expects,
    };
    assert_eq!(STRICT.help(&mut cx), HelperVerdict::Drop(DropReason::ExpectFailed));
    assert!(helpers::ftp::find_nl_seq(&line, Dir::Original, seq + payload.len() as u32));
}

#[test]
fn zone_and_dir_field_do_not_matter() {
    // The direction comes from ctinfo, as CTINFO2DIR does.
    let mut c = logged_in();
    let seq = c.next[0];
    let payload: &[u8] = b"PORT 10,0,1,2,156,64\r\n";
    let mut tcp = TcpSeg::bare(CPORT, 21, seq, 0, TcpFlags::ACK, 64000);
    tcp.payload = payload;
    let out = c.run(&STRICT, Dir::Reply, CtInfo::Established, Some(tcp), payload);
    assert_eq!(out.one(), tcp_expect(L3::V4, S, C, 40000));
}

// ---- IPv6 ----

fn v6_conn(h: &Ftp) -> Conn {
    let mut c = Conn::ftp_v6(v6("2001:db8:1::2"), v6("2001:db8:2::2"));
    c.login(h);
    c
}

#[test]
fn ipv6_eprt_and_epsv() {
    let (cv6, sv6) = (v6("2001:db8:1::2"), v6("2001:db8:2::2"));
    let mut c = v6_conn(&STRICT);
    assert_eq!(c.c(&STRICT, b"EPRT |2|2001:db8:1::2|40001|\r\n").one(), tcp_expect(L3::V6, sv6, cv6, 40001));
    assert_eq!(
        c.s(&STRICT, b"229 Extended Passive Mode OK (|||50001|)\r\n").one(),
        tcp_expect(L3::V6, cv6, sv6, 50001)
    );
    assert_eq!(c.c(&STRICT, b"EPRT |1|10.0.1.2|40001|\r\n").verdict, PARTIAL, "|1| on IPv6");
    assert_eq!(c.c(&STRICT, b"EPRT |2|2001:db8:1::2|0|\r\n").verdict, PARTIAL, "port 0");
    assert!(c.c(&STRICT, b"EPRT |2|2001:db8:1::3|40001|\r\n").accepted_none(), "other host");

    let mut c = v6_conn(&LOOSE);
    let other = v6("2001:db8:1::3");
    assert_eq!(c.c(&LOOSE, b"EPRT |2|2001:db8:1::3|40001|\r\n").one(), tcp_expect(L3::V6, sv6, other, 40001));
}

#[test]
fn ipv6_port_overwrites_first_four_bytes() {
    let (cv6, sv6) = (v6("2001:db8:1::2"), v6("2001:db8:2::2"));
    // try_rfc959 writes only the IPv4 part of the address; the rest stays the
    // sender's. 2001:0db8 = 32,1,13,184: the address then equals the client's.
    let mut c = v6_conn(&STRICT);
    assert_eq!(c.c(&STRICT, b"PORT 32,1,13,184,156,64\r\n").one(), tcp_expect(L3::V6, sv6, cv6, 40000));
    assert_eq!(
        c.s(&STRICT, b"227 Entering Passive Mode (32,1,13,184,195,80)\r\n").one(),
        tcp_expect(L3::V6, cv6, sv6, 50000)
    );
    // Any other first four bytes: a mismatch.
    assert!(c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").accepted_none());
    assert!(c.s(&STRICT, b"227 Entering Passive Mode (10,0,2,2,195,80)\r\n").accepted_none());
    // Under loose the expectation goes to the hybrid address.
    let mut c = v6_conn(&LOOSE);
    assert_eq!(c.c(&LOOSE, b"PORT 10,0,1,2,156,64\r\n").one(), tcp_expect(L3::V6, sv6, v6("a00:102:1::2"), 40000));
}

#[test]
fn ipv4_addresses_have_zero_tails() {
    // Garbage beyond the first 4 bytes of an IPv4 tuple address never leaks
    // into the expectation.
    let mut c = logged_in();
    c.orig.src.0[15] = 0xff;
    c.reply.dst.0[15] = 0xff;
    c.reply.src.0[15] = 0xee;
    let req = c.c(&STRICT, b"PORT 10,0,1,2,156,64\r\n").one();
    assert_eq!(req, tcp_expect(L3::V4, S, C, 40000));
}
