//! Property tests of the FTP helper: no input panics, every expectation it
//! asks for is consistent with what was parsed, prefixes of commands are
//! partial matches, and malformed commands never yield an expectation.

mod common;

use common::*;
use ct_core::tuple::proto;
use ct_core::{CtInfo, Dir, L3};
use helpers::ftp::parse::{search, FtpType, Search};
use helpers::ftp::{find_nl_seq, update_nl_seq, Ftp, FtpConfig};
use helpers::{DropReason, HelperVerdict};
use proptest::prelude::*;
use std::net::Ipv6Addr;

const PARTIAL: HelperVerdict = HelperVerdict::Drop(DropReason::PartialMatch);
const LINE_START: u32 = 77_000;

fn conn(v6: bool) -> Conn {
    let mut c =
        if v6 { Conn::ftp_v6(common::v6("2001:db8:1::2"), common::v6("2001:db8:2::2")) } else { Conn::ftp_v4() };
    update_nl_seq(&mut c.line, Dir::Original, LINE_START);
    update_nl_seq(&mut c.line, Dir::Reply, LINE_START);
    c
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    let heads: Vec<&'static [u8]> = vec![
        b"",
        b"P",
        b"POR",
        b"PORT",
        b"PORT ",
        b"port ",
        b"EPRT ",
        b"EPRT |1|",
        b"EPRT |2|",
        b"eprt !1!",
        b"2",
        b"227",
        b"227 ",
        b"227 (",
        b"229 ",
        b"229 (",
        b"229 (|||",
    ];
    let body = proptest::collection::vec(
        proptest::sample::select(b"0123456789,.|:()\r\n abcdefABCDEF!\0\xff".to_vec()),
        0..48,
    );
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..96),
        (proptest::sample::select(heads), body).prop_map(|(h, b)| [h, &b[..]].concat()),
    ]
}

/// Send `data` in `dir` and check every invariant of one helper call.
fn check_one(c: &mut Conn, ftp: &Ftp, dir: Dir, seq: u32, data: &[u8]) {
    let ctinfo = if dir == Dir::Original { CtInfo::Established } else { CtInfo::EstablishedReply };
    let before = c.line;
    let at_line_start = find_nl_seq(&c.line, dir, seq);
    let (this, other) = if dir == Dir::Original { (c.orig, c.reply) } else { (c.reply, c.orig) };
    let out = c.seg(ftp, ctinfo, seq, data);
    let parsed =
        if at_line_start && !data.is_empty() { search(dir, c.orig.l3, this.src, data) } else { Search::NoMatch };
    match out.verdict {
        HelperVerdict::Drop(r) => {
            assert_eq!(r, DropReason::PartialMatch);
            assert!(matches!(parsed, Search::Partial(_)), "{parsed:?}");
            assert!(out.expects.is_empty());
            assert_eq!(c.line, before, "a drop leaves the line position");
        }
        HelperVerdict::Accept => {
            assert!(!matches!(parsed, Search::Partial(_)));
            if data.last() == Some(&b'\n') {
                assert!(
                    find_nl_seq(&c.line, dir, seq.wrapping_add(data.len() as u32))
                        || c.line.seq_aft_nl_num[dir.index()] == 2
                );
            } else {
                assert_eq!(c.line, before);
            }
        }
    }
    assert!(out.expects.len() <= 1);
    if let Some(req) = out.expects.first() {
        let Search::Match(cmd) = parsed else { panic!("expectation without a match: {parsed:?}") };
        let t = req.tuple;
        assert_eq!((t.l3, t.proto, t.sport, t.dport), (c.orig.l3, proto::TCP, 0, cmd.port));
        assert!(req.match_src_addr && !req.match_sport && req.class == 0);
        assert_eq!(t.src, other.src, "from the peer");
        if !ftp.config().loose {
            assert_eq!(t.dst, this.src, "to the sender");
        }
        if matches!(cmd.kind, FtpType::Eprt | FtpType::Epsv) {
            assert_ne!(t.dport, 0);
        }
        if c.orig.l3 == L3::V4 {
            assert!(t.src.0[4..].iter().chain(&t.dst.0[4..]).all(|&b| b == 0));
        }
        let expected_dir = match cmd.kind {
            FtpType::Port | FtpType::Eprt => Dir::Original,
            FtpType::Pasv | FtpType::Epsv => Dir::Reply,
        };
        assert_eq!(dir, expected_dir);
    }
}

fn port_line(a: [u8; 4], port: u16) -> Vec<u8> {
    format!("PORT {},{},{},{},{},{}\r\n", a[0], a[1], a[2], a[3], port >> 8, port & 0xff).into_bytes()
}

fn pasv_line(a: [u8; 4], port: u16) -> Vec<u8> {
    format!("227 Entering Passive Mode ({},{},{},{},{},{}).\r\n", a[0], a[1], a[2], a[3], port >> 8, port & 0xff)
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segments_keep_invariants(
        v6 in any::<bool>(),
        loose in any::<bool>(),
        segs in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<u32>(), payload()), 1..6),
    ) {
        let ftp = Ftp::new(FtpConfig { loose });
        let mut c = conn(v6);
        for (reply, at_start, seq, data) in segs {
            let dir = if reply { Dir::Reply } else { Dir::Original };
            let seq = if at_start { c.line.seq_aft_nl[dir.index()][0] } else { seq };
            check_one(&mut c, &ftp, dir, seq, &data);
        }
    }

    #[test]
    fn valid_port_and_pasv(a in any::<[u8; 4]>(), port in any::<u16>(), loose in any::<bool>()) {
        let ftp = Ftp::new(FtpConfig { loose });
        let mut c = conn(false);
        let out = c.seg(&ftp, CtInfo::Established, LINE_START, &port_line(a, port));
        let to = ct_core::Addr::v4(a);
        if to == C || loose {
            prop_assert_eq!(out.one(), tcp_expect(L3::V4, S, to, port));
        } else {
            prop_assert!(out.accepted_none());
        }
        let out = c.seg(&ftp, CtInfo::EstablishedReply, LINE_START, &pasv_line(a, port));
        if to == S || loose {
            prop_assert_eq!(out.one(), tcp_expect(L3::V4, C, to, port));
        } else {
            prop_assert!(out.accepted_none());
        }
    }

    #[test]
    fn valid_eprt_and_epsv(port in 1..=u16::MAX, delim in proptest::sample::select(b"|!#$%&*+/=?^_~".to_vec())) {
        let d = delim as char;
        let ftp = Ftp::default();
        let mut c = conn(false);
        let line = format!("EPRT {d}1{d}10.0.1.2{d}{port}{d}\r\n");
        prop_assert_eq!(c.seg(&ftp, CtInfo::Established, LINE_START, line.as_bytes()).one(), tcp_expect(L3::V4, S, C, port));
        let line = format!("229 Entering Extended Passive Mode ({d}{d}{d}{port}{d})\r\n");
        prop_assert_eq!(c.seg(&ftp, CtInfo::EstablishedReply, LINE_START, line.as_bytes()).one(), tcp_expect(L3::V4, C, S, port));
    }

    /// Every textual form Rust prints, and the full form in any case, parses
    /// to the same address (`in6_pton`).
    #[test]
    fn eprt_ipv6_text_forms(octets in any::<[u8; 16]>(), upper in any::<bool>(), port in 1..=u16::MAX) {
        let ip = Ipv6Addr::from(octets);
        let seg = ip.segments();
        let full = format!("{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}", seg[0], seg[1], seg[2], seg[3], seg[4], seg[5], seg[6], seg[7]);
        let full = if upper { full.to_uppercase() } else { full };
        for text in [ip.to_string(), full] {
            let client = ct_core::Addr::v6(octets);
            let mut c = Conn::ftp_v6(client, common::v6("2001:db8:2::2"));
            update_nl_seq(&mut c.line, Dir::Original, LINE_START);
            let line = format!("EPRT |2|{text}|{port}|\r\n");
            let out = c.seg(&Ftp::default(), CtInfo::Established, LINE_START, line.as_bytes());
            prop_assert_eq!(out.one(), tcp_expect(L3::V6, common::v6("2001:db8:2::2"), client, port), "{}", line);
        }
    }

    /// Any prefix that stops before the terminator is a partial match: dropped.
    #[test]
    fn prefixes_are_partial(a in any::<[u8; 4]>(), port in 1..=u16::MAX, which in 0..4usize, cut in any::<prop::sample::Index>()) {
        let (dir, line, end): (Dir, Vec<u8>, u8) = match which {
            0 => (Dir::Original, port_line(a, port), b'\r'),
            1 => (Dir::Reply, pasv_line(a, port), b')'),
            2 => (Dir::Original, format!("EPRT |1|{}.{}.{}.{}|{port}|\r\n", a[0], a[1], a[2], a[3]).into_bytes(), b'\r'),
            _ => (Dir::Reply, format!("229 Entering Extended Passive Mode (|||{port}|)\r\n").into_bytes(), b')'),
        };
        // For EPRT/EPSV the last delimiter before the terminator is needed.
        let term_at = line.iter().position(|&b| b == end).unwrap();
        let needed = if which >= 2 { line[..term_at].iter().rposition(|&b| b == b'|').unwrap() + 1 } else { term_at };
        let n = 1 + cut.index(needed - 1);
        let mut c = conn(false);
        let before = c.line;
        let ctinfo = if dir == Dir::Original { CtInfo::Established } else { CtInfo::EstablishedReply };
        let out = c.seg(&Ftp::new(FtpConfig { loose: true }), ctinfo, LINE_START, &line[..n]);
        prop_assert_eq!(out.verdict, PARTIAL, "{:?}", String::from_utf8_lossy(&line[..n]));
        prop_assert!(out.expects.is_empty());
        prop_assert_eq!(c.line, before);
    }

    /// A byte of a PORT command's arguments (or its space or \r) replaced by
    /// anything that is not a digit, a comma or \r: dropped, nothing expected.
    #[test]
    fn malformed_port_dropped(a in any::<[u8; 4]>(), port in any::<u16>(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        prop_assume!(!b.is_ascii_digit() && b != b',' && b != b'\r');
        let mut line = port_line(a, port);
        let cr = line.iter().position(|&x| x == b'\r').unwrap();
        let i = 4 + at.index(cr - 4 + 1);
        prop_assume!(line[i] != b);
        line[i] = b;
        let mut c = conn(false);
        let out = c.seg(&Ftp::new(FtpConfig { loose: true }), CtInfo::Established, LINE_START, &line);
        prop_assert_eq!(out.verdict, PARTIAL, "{:?}", String::from_utf8_lossy(&line));
        prop_assert!(out.expects.is_empty());
    }

    /// A 227 reply with a non-digit, non-comma byte before its last comma (but
    /// not on the first digit: the scan for the first digit would skip it).
    #[test]
    fn malformed_pasv_dropped(a in any::<[u8; 4]>(), port in any::<u16>(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        prop_assume!(!b.is_ascii_digit() && b != b',');
        let mut line = pasv_line(a, port);
        let open = line.iter().position(|&x| x == b'(').unwrap() + 1;
        let last_comma = line.iter().rposition(|&x| x == b',').unwrap();
        let i = open + 1 + at.index(last_comma - open);
        line[i] = b;
        let mut c = conn(false);
        let out = c.seg(&Ftp::new(FtpConfig { loose: true }), CtInfo::EstablishedReply, LINE_START, &line);
        prop_assert_eq!(out.verdict, PARTIAL, "{:?}", String::from_utf8_lossy(&line));
        prop_assert!(out.expects.is_empty());
    }

    /// EPRT/EPSV with port 0 (any number of zeros) or a bad protocol digit.
    #[test]
    fn eprt_epsv_zero_port_or_bad_family_dropped(zeros in 1..5usize, digit in any::<u8>(), v6 in any::<bool>()) {
        let z = "0".repeat(zeros);
        let mut c = conn(v6);
        let ftp = Ftp::new(FtpConfig { loose: true });
        let line = format!("EPRT |1|10.0.1.2|{z}|\r\n");
        prop_assert_eq!(c.seg(&ftp, CtInfo::Established, LINE_START, line.as_bytes()).verdict, PARTIAL);
        let line = format!("229 (|||{z}|)\r\n");
        prop_assert_eq!(c.seg(&ftp, CtInfo::EstablishedReply, LINE_START, line.as_bytes()).verdict, PARTIAL);
        let good = if v6 { b'2' } else { b'1' };
        prop_assume!(digit != good);
        let mut line = b"EPRT |x|10.0.1.2|40001|\r\n".to_vec();
        line[6] = digit;
        prop_assert_eq!(c.seg(&ftp, CtInfo::Established, LINE_START, &line).verdict, PARTIAL);
    }
}
