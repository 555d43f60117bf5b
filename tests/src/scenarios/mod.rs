//! The differential scenarios (spec §13 and the issue list). Each is a name, knobs and a timed
//! list of frames; the expected behaviour is whatever the kernel does, compared live.

mod frag;
mod ftp;
mod icmp;
mod misc;
mod sctp;
mod tcp;
mod udp;

use crate::scenario::{Builder, Scenario};
use crate::trace::{flags::*, Pkt};
use std::net::IpAddr;

/// A scenario constructor.
pub type Ctor = fn() -> Scenario;

/// Every scenario, by name.
pub fn all() -> Vec<(&'static str, Ctor)> {
    let mut v: Vec<(&'static str, Ctor)> = Vec::new();
    v.extend_from_slice(tcp::ALL);
    v.extend_from_slice(udp::ALL);
    v.extend_from_slice(sctp::ALL);
    v.extend_from_slice(icmp::ALL);
    v.extend_from_slice(ftp::ALL);
    v.extend_from_slice(misc::ALL);
    v.extend_from_slice(frag::ALL);
    v
}

/// Builds the scenario called `name`.
pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().find(|(n, _)| *n == name).map(|(_, f)| f())
}

/// A TCP connection between a client and a server with running sequence numbers.
/// The client's ISN is 1000, the server's 5000 (spec §13 conventions).
#[derive(Clone, Debug)]
pub struct Flow {
    pub c: IpAddr,
    pub cp: u16,
    pub s: IpAddr,
    pub sp: u16,
    /// Next sequence number of the client / server.
    pub cseq: u32,
    pub sseq: u32,
}

impl Flow {
    pub fn new(c: impl Into<IpAddr>, cp: u16, s: impl Into<IpAddr>, sp: u16) -> Flow {
        Flow { c: c.into(), cp, s: s.into(), sp, cseq: 1000, sseq: 5000 }
    }

    /// C:40000 -> S:80 over IPv4.
    pub fn std() -> Flow {
        Flow::new(crate::trace::C, 40000, crate::trace::S, 80)
    }

    /// A client -> server segment.
    pub fn c(&self, flags: u8, seq: u32, ack: u32) -> Pkt {
        Pkt::tcp(self.c, self.cp, self.s, self.sp, flags, seq, ack)
    }

    /// A server -> client segment.
    pub fn s(&self, flags: u8, seq: u32, ack: u32) -> Pkt {
        Pkt::tcp(self.s, self.sp, self.c, self.cp, flags, seq, ack)
    }

    pub fn syn(&self, b: &mut Builder) -> usize {
        b.send(self.c(SYN, self.cseq, 0), "C>S SYN")
    }

    pub fn synack(&self, b: &mut Builder) -> usize {
        b.send(self.s(SYN | ACK, self.sseq, self.cseq + 1), "S>C SYN/ACK")
    }

    /// SYN, SYN/ACK, ACK; afterwards cseq/sseq are the next data bytes.
    pub fn handshake(&mut self, b: &mut Builder) {
        self.syn(b);
        self.synack(b);
        self.cseq += 1;
        self.sseq += 1;
        b.send(self.c(ACK, self.cseq, self.sseq), "C>S ACK");
    }

    /// Client data (PSH/ACK), advancing cseq.
    pub fn c_data(&mut self, b: &mut Builder, data: &[u8], note: &str) -> usize {
        let p = self.c(PSH | ACK, self.cseq, self.sseq).payload(data);
        self.cseq += data.len() as u32;
        b.send(p, note)
    }

    /// Server data (PSH/ACK), advancing sseq.
    pub fn s_data(&mut self, b: &mut Builder, data: &[u8], note: &str) -> usize {
        let p = self.s(PSH | ACK, self.sseq, self.cseq).payload(data);
        self.sseq += data.len() as u32;
        b.send(p, note)
    }

    /// Client pure ACK of everything the server sent.
    pub fn c_ack(&self, b: &mut Builder) -> usize {
        b.send(self.c(ACK, self.cseq, self.sseq), "C>S ACK")
    }

    /// Server pure ACK of everything the client sent.
    pub fn s_ack(&self, b: &mut Builder) -> usize {
        b.send(self.s(ACK, self.sseq, self.cseq), "S>C ACK")
    }
}

/// `n` bytes of filler payload.
pub fn filler(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}
