//! Drive the FTP helper with arbitrary segments over an IPv4 or IPv6
//! control connection and check what it must never do.
//!
//! Input: one flags byte (bit 0: IPv6, bit 1: `loose`), then records of
//! `[hdr][seq: 4 bytes, only if hdr bit 1 is clear][len][len payload bytes]`,
//! where hdr bit 0 is the direction, bit 1 "at a remembered line start", and
//! bits 2..5 pick the ctinfo.
//!
//! Invariants: no panic; a drop is a partial match, requests nothing and
//! leaves the line position; at most one expectation, only for a segment the
//! parser matched at a remembered line start, with the parsed port, TCP, the
//! connection's family, source = the peer, any source port, destination =
//! the sender unless `loose`, a nonzero port for EPRT/EPSV, zero address
//! tails on IPv4, and only for commands in their own direction.
#![no_main]

use arrayvec::ArrayVec;
use ct_core::expect::{ExpectRequest, LineTrack};
use ct_core::tuple::proto;
use ct_core::wire::{TcpFlags, TcpSeg};
use ct_core::{Addr, CtInfo, Dir, Tuple, L3};
use helpers::ftp::parse::{search, FtpType, Search};
use helpers::ftp::{find_nl_seq, update_nl_seq, Ftp, FtpConfig};
use helpers::{AlgHelper, DropReason, HelperCx, HelperVerdict, MAX_REQUESTS};
use libfuzzer_sys::fuzz_target;

const CTINFOS: [CtInfo; 5] =
    [CtInfo::Established, CtInfo::EstablishedReply, CtInfo::New, CtInfo::Related, CtInfo::RelatedReply];

fn control(v6: bool) -> (Tuple, Tuple) {
    let (l3, c, s) = if v6 {
        let mut c = [0u8; 16];
        let mut s = [0u8; 16];
        c[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        s[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        c[15] = 2;
        s[5] = 2;
        s[15] = 2;
        (L3::V6, Addr::v6(c), Addr::v6(s))
    } else {
        (L3::V4, Addr::v4([10, 0, 1, 2]), Addr::v4([10, 0, 2, 2]))
    };
    let orig = Tuple { l3, proto: proto::TCP, src: c, dst: s, sport: 41021, dport: 21 };
    let reply = Tuple { l3, proto: proto::TCP, src: s, dst: c, sport: 21, dport: 41021 };
    (orig, reply)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else { return };
    let v6 = flags & 1 != 0;
    let ftp = Ftp::new(FtpConfig { loose: flags & 2 != 0 });
    let (orig, reply) = control(v6);
    let mut line = LineTrack::default();
    update_nl_seq(&mut line, Dir::Original, 1001);
    update_nl_seq(&mut line, Dir::Reply, 5001);

    while let Some((&hdr, r)) = rest.split_first() {
        rest = r;
        let dir = if hdr & 1 != 0 { Dir::Reply } else { Dir::Original };
        let seq = if hdr & 2 != 0 {
            line.seq_aft_nl[dir.index()][usize::from(hdr >> 7)]
        } else {
            let Some((s, r)) = rest.split_first_chunk::<4>() else { return };
            rest = r;
            u32::from_be_bytes(*s)
        };
        let ctinfo = CTINFOS[usize::from((hdr >> 2) & 7) % CTINFOS.len()];
        let Some((&len, r)) = rest.split_first() else { return };
        let len = usize::from(len).min(r.len());
        let (payload, r) = r.split_at(len);
        rest = r;

        let (this, other) = if ctinfo.is_reply() { (reply, orig) } else { (orig, reply) };
        let pdir = if ctinfo.is_reply() { Dir::Reply } else { Dir::Original };
        let inspected = matches!(ctinfo, CtInfo::Established | CtInfo::EstablishedReply)
            && !payload.is_empty()
            && find_nl_seq(&line, pdir, seq);
        let parsed = if inspected { search(pdir, orig.l3, this.src, payload) } else { Search::NoMatch };

        let before = line;
        let mut tcp = TcpSeg::bare(this.sport, this.dport, seq, 0, TcpFlags::ACK | TcpFlags::PSH, 64000);
        tcp.payload = payload;
        let mut expects = ArrayVec::<ExpectRequest, MAX_REQUESTS>::new();
        let mut cx = HelperCx {
            dir,
            ctinfo,
            zone: 0,
            orig,
            reply,
            tcp: Some(tcp),
            payload,
            line: &mut line,
            expects: &mut expects,
        };
        let verdict = ftp.help(&mut cx);

        match verdict {
            HelperVerdict::Drop(reason) => {
                assert_eq!(reason, DropReason::PartialMatch);
                assert!(matches!(parsed, Search::Partial(_)));
                assert!(expects.is_empty());
                assert_eq!(line, before);
            }
            HelperVerdict::Accept => assert!(!matches!(parsed, Search::Partial(_))),
        }
        assert!(expects.len() <= 1);
        if let Some(req) = expects.first() {
            let Search::Match(cmd) = parsed else { panic!("expectation without a parsed command") };
            let t = req.tuple;
            assert_eq!((t.l3, t.proto, t.sport, t.dport), (orig.l3, proto::TCP, 0, cmd.port));
            assert!(req.match_src_addr && !req.match_sport && req.class == 0);
            assert_eq!(t.src, other.src);
            if !ftp.config().loose {
                assert_eq!(t.dst, this.src);
            }
            if matches!(cmd.kind, FtpType::Eprt | FtpType::Epsv) {
                assert_ne!(t.dport, 0);
            }
            let own_dir = match cmd.kind {
                FtpType::Port | FtpType::Eprt => Dir::Original,
                FtpType::Pasv | FtpType::Epsv => Dir::Reply,
            };
            assert_eq!(pdir, own_dir);
            if orig.l3 == L3::V4 {
                assert!(t.src.0[4..].iter().chain(&t.dst.0[4..]).all(|&b| b == 0));
            }
        }
    }
});
