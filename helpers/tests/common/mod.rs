//! A hand-built connection for driving helpers packet by packet, with the
//! addresses and initial sequence numbers of CONNTRACK_SPEC §13.
#![allow(dead_code, unreachable_pub)]

use arrayvec::ArrayVec;
use ct_core::expect::{ExpectRequest, LineTrack};
use ct_core::tuple::proto;
use ct_core::wire::{TcpFlags, TcpSeg};
use ct_core::{Addr, CtInfo, Dir, Tuple, L3};
use helpers::{AlgHelper, HelperCx, HelperVerdict, MAX_REQUESTS};
use std::net::{IpAddr, Ipv6Addr};

pub const C: Addr = Addr::v4([10, 0, 1, 2]);
pub const S: Addr = Addr::v4([10, 0, 2, 2]);
pub const X: Addr = Addr::v4([10, 0, 9, 9]);
pub const C_ISN: u32 = 1000;
pub const S_ISN: u32 = 5000;
/// The client's control-connection port.
pub const CPORT: u16 = 41021;

pub fn v6(s: &str) -> Addr {
    Addr::v6(s.parse::<Ipv6Addr>().unwrap().octets())
}

pub fn addr(ip: &str) -> Addr {
    Addr::from_ip(ip.parse::<IpAddr>().unwrap()).1
}

/// What one packet produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    pub verdict: HelperVerdict,
    pub expects: Vec<ExpectRequest>,
}

impl Out {
    pub fn accepted_none(&self) -> bool {
        self.verdict == HelperVerdict::Accept && self.expects.is_empty()
    }

    /// The single expectation of an accepted packet.
    pub fn one(&self) -> ExpectRequest {
        assert_eq!(self.verdict, HelperVerdict::Accept, "{self:?}");
        assert_eq!(self.expects.len(), 1, "{self:?}");
        self.expects[0]
    }
}

/// A connection after its handshake: both sides' next sequence numbers.
pub struct Conn {
    pub orig: Tuple,
    pub reply: Tuple,
    pub line: LineTrack,
    pub next: [u32; 2],
}

impl Conn {
    pub fn new(l3: L3, proto: u8, c: Addr, cport: u16, s: Addr, sport: u16) -> Conn {
        let orig = Tuple { l3, proto, src: c, dst: s, sport: cport, dport: sport };
        let reply = orig.invert().unwrap();
        Conn { orig, reply, line: LineTrack::default(), next: [C_ISN + 1, S_ISN + 1] }
    }

    /// FTP control connection C:41021 → S:21.
    pub fn ftp_v4() -> Conn {
        Conn::new(L3::V4, proto::TCP, C, CPORT, S, 21)
    }

    pub fn ftp_v6(c: Addr, s: Addr) -> Conn {
        Conn::new(L3::V6, proto::TCP, c, CPORT, s, 21)
    }

    /// Run `h` on one TCP segment with the given ctinfo and sequence number.
    pub fn seg(&mut self, h: &dyn AlgHelper, ctinfo: CtInfo, seq: u32, payload: &[u8]) -> Out {
        let dir = if ctinfo.is_reply() { Dir::Reply } else { Dir::Original };
        let t = if dir == Dir::Original { self.orig } else { self.reply };
        let mut tcp = TcpSeg::bare(t.sport, t.dport, seq, 0, TcpFlags::ACK | TcpFlags::PSH, 64000);
        tcp.payload = payload;
        self.run(h, dir, ctinfo, Some(tcp), payload)
    }

    /// Run `h` on one packet.
    pub fn run(&mut self, h: &dyn AlgHelper, dir: Dir, ctinfo: CtInfo, tcp: Option<TcpSeg<'_>>, payload: &[u8]) -> Out {
        let mut expects = ArrayVec::<ExpectRequest, MAX_REQUESTS>::new();
        let mut cx = HelperCx {
            dir,
            ctinfo,
            zone: 0,
            orig: self.orig,
            reply: self.reply,
            tcp,
            payload,
            line: &mut self.line,
            expects: &mut expects,
        };
        let verdict = h.help(&mut cx);
        Out { verdict, expects: expects.to_vec() }
    }

    /// Send the next in-order segment in `dir`; the sequence advances unless
    /// the helper dropped it (the sender will retransmit).
    pub fn send(&mut self, h: &dyn AlgHelper, dir: Dir, payload: &[u8]) -> Out {
        let seq = self.next[dir.index()];
        let ctinfo = if dir == Dir::Original { CtInfo::Established } else { CtInfo::EstablishedReply };
        let out = self.seg(h, ctinfo, seq, payload);
        if out.verdict == HelperVerdict::Accept {
            self.next[dir.index()] = seq.wrapping_add(payload.len() as u32);
        }
        out
    }

    /// Client → server.
    pub fn c(&mut self, h: &dyn AlgHelper, payload: &[u8]) -> Out {
        self.send(h, Dir::Original, payload)
    }

    /// Server → client.
    pub fn s(&mut self, h: &dyn AlgHelper, payload: &[u8]) -> Out {
        self.send(h, Dir::Reply, payload)
    }

    /// Banner and USER: the first segment of each direction, never parsed.
    pub fn login(&mut self, h: &dyn AlgHelper) {
        assert!(self.s(h, b"220 ready\r\n").accepted_none());
        assert!(self.c(h, b"USER a\r\n").accepted_none());
    }
}

/// `src:* → dst:dport` as the FTP helper asks for it.
pub fn tcp_expect(l3: L3, src: Addr, dst: Addr, dport: u16) -> ExpectRequest {
    ExpectRequest {
        tuple: Tuple { l3, proto: proto::TCP, src, dst, sport: 0, dport },
        match_src_addr: true,
        match_sport: false,
        class: 0,
    }
}
