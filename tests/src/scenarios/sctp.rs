//! SCTP scenarios (spec §14): ports in the tuple, verification tags, the association state
//! machine and its timeouts, ICMP errors quoting SCTP.

use super::Ctor;
use crate::scenario::{Builder, Scenario};
use crate::trace::{sctp_chunk, Pkt, C, C6, R, S, S6};
use std::net::IpAddr;

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("sctp_association", sctp_association),
    ("sctp_shutdown", sctp_shutdown),
    ("sctp_shutdown_from_server", sctp_shutdown_from_server),
    ("sctp_other_port_new", sctp_other_port_new),
    ("sctp_wrong_vtag", sctp_wrong_vtag),
    ("sctp_abort", sctp_abort),
    ("sctp_icmp_error", sctp_icmp_error),
    ("sctp_first_packets", sctp_first_packets),
    ("sctp_malformed", sctp_malformed),
    ("sctp_checksum_off", sctp_checksum_off),
    ("sctp_heartbeat_path", sctp_heartbeat_path),
    ("sctp_heartbeat_restart", sctp_heartbeat_restart),
    ("sctp_init_retrans_no_refresh", sctp_init_retrans_no_refresh),
    ("sctp_custom_timeouts", sctp_custom_timeouts),
    ("sctp_collision_stale_init_ack", sctp_collision_stale_init_ack),
    ("sctp_stale_init", sctp_stale_init),
    ("ipv6_sctp_association", ipv6_sctp_association),
];

/// Chunk types (RFC 9260 §3.2).
const DATA: u8 = 0;
const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const HEARTBEAT: u8 = 4;
const HEARTBEAT_ACK: u8 = 5;
const ABORT: u8 = 6;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const ERROR: u8 = 9;
const COOKIE_ECHO: u8 = 10;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;
/// The T bit of ABORT and SHUTDOWN COMPLETE (tag reflected).
const T: u8 = 1;

/// The client's tag (carried by packets to the client) and the server's.
const CT: u32 = 0x1000_0001;
const ST: u32 = 0x2000_0002;

/// INIT / INIT ACK fixed part: initiate tag, a_rwnd, streams out/in, initial TSN.
fn init(tag: u32) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    sctp_chunk(INIT, 0, &v)
}

fn init_ack(tag: u32) -> Vec<u8> {
    let mut c = init(tag);
    c[0] = INIT_ACK;
    c
}

/// A DATA chunk (B and E set): TSN, stream 0, SSN 0, PPID 0, payload.
fn data(tsn: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = tsn.to_be_bytes().to_vec();
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(payload);
    sctp_chunk(DATA, 3, &v)
}

fn sack(cum_tsn: u32) -> Vec<u8> {
    let mut v = cum_tsn.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    sctp_chunk(SACK, 0, &v)
}

/// HEARTBEAT or HEARTBEAT ACK with a heartbeat info parameter.
fn heartbeat(ty: u8) -> Vec<u8> {
    sctp_chunk(ty, 0, &[0, 1, 0, 8, 1, 2, 3, 4])
}

fn bare(ty: u8, flags: u8) -> Vec<u8> {
    sctp_chunk(ty, flags, &[])
}

/// One path of an association: client address and port, server address and port.
#[derive(Clone, Copy)]
struct Assoc {
    c: IpAddr,
    cp: u16,
    s: IpAddr,
    sp: u16,
}

impl Assoc {
    fn std() -> Assoc {
        Assoc::new(C, 5000, S, 6000)
    }

    fn new(c: impl Into<IpAddr>, cp: u16, s: impl Into<IpAddr>, sp: u16) -> Assoc {
        Assoc { c: c.into(), cp, s: s.into(), sp }
    }

    fn c(&self, vtag: u32, chunks: &[Vec<u8>]) -> Pkt {
        Pkt::sctp(self.c, self.cp, self.s, self.sp, vtag, chunks)
    }

    fn s(&self, vtag: u32, chunks: &[Vec<u8>]) -> Pkt {
        Pkt::sctp(self.s, self.sp, self.c, self.cp, vtag, chunks)
    }

    /// INIT, INIT ACK, COOKIE ECHO, COOKIE ACK (RFC 9260 §5.1).
    fn handshake(&self, b: &mut Builder) {
        b.send(self.c(0, &[init(CT)]), "C>S INIT");
        b.send(self.s(CT, &[init_ack(ST)]), "S>C INIT ACK");
        b.send(self.c(ST, &[sctp_chunk(COOKIE_ECHO, 0, b"cookie")]), "C>S COOKIE ECHO");
        b.send(self.s(CT, &[bare(COOKIE_ACK, 0)]), "S>C COOKIE ACK");
    }
}

fn sctp_association() -> Scenario {
    let mut b = Builder::new(
        "sctp_association",
        "§14.5 INIT: NEW CLOSED; INIT ACK COOKIE_WAIT; COOKIE ECHO COOKIE_ECHOED; COOKIE ACK ESTABLISHED 210 ASSURED",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.c(ST, &[data(1, b"hello")]), "C>S DATA");
    b.send(a.s(CT, &[sack(1), data(1, b"world")]), "S>C SACK+DATA");
    b.build()
}

fn sctp_shutdown() -> Scenario {
    let mut b =
        Builder::new("sctp_shutdown", "§14.5 SHUTDOWN, SHUTDOWN ACK, SHUTDOWN COMPLETE: CLOSED 10, still ASSURED");
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.c(ST, &[data(1, b"bye")]), "C>S DATA");
    b.send(a.c(ST, &[sctp_chunk(SHUTDOWN, 0, &1u32.to_be_bytes())]), "C>S SHUTDOWN");
    b.send(a.s(CT, &[bare(SHUTDOWN_ACK, 0)]), "S>C SHUTDOWN ACK");
    b.send(a.c(ST, &[bare(SHUTDOWN_COMPLETE, 0)]), "C>S SHUTDOWN COMPLETE");
    b.build()
}

fn sctp_shutdown_from_server() -> Scenario {
    let mut b = Builder::new(
        "sctp_shutdown_from_server",
        "§14.5 SHUTDOWN from the server: SHUTDOWN_RECD, SHUTDOWN_ACK_SENT, SHUTDOWN COMPLETE with T: CLOSED",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.s(CT, &[sctp_chunk(SHUTDOWN, 0, &0u32.to_be_bytes())]), "S>C SHUTDOWN");
    let a2 = Assoc::new(C, 5001, S, 6000);
    a2.handshake(&mut b);
    b.send(a2.s(CT, &[sctp_chunk(SHUTDOWN, 0, &0u32.to_be_bytes())]), "S>C SHUTDOWN");
    b.send(a2.c(ST, &[bare(SHUTDOWN_ACK, 0)]), "C>S SHUTDOWN ACK");
    b.send(a2.s(CT, &[bare(SHUTDOWN_COMPLETE, T)]), "S>C SHUTDOWN COMPLETE T, wrong tag");
    b.send(a2.s(ST, &[bare(SHUTDOWN_COMPLETE, T)]), "S>C SHUTDOWN COMPLETE T, reflected tag");
    b.build()
}

fn sctp_other_port_new() -> Scenario {
    let mut b = Builder::new(
        "sctp_other_port_new",
        "issue 11/4: after an association C:5000-S:6000, S reaches other C ports only as NEW (INIT) or not at all",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(Pkt::sctp(S, 6000, C, 7777, 0, &[init(ST)]), "S>C:7777 INIT");
    b.send(Pkt::sctp(S, 6000, C, 8888, CT, &[data(1, b"x")]), "S>C:8888 DATA");
    b.send(Pkt::sctp(C, 5000, S, 6001, ST, &[data(1, b"x")]), "C>S:6001 DATA");
    b.send(a.c(ST, &[data(1, b"x")]), "C>S DATA on the association");
    b.build()
}

fn sctp_wrong_vtag() -> Scenario {
    let mut b = Builder::new("sctp_wrong_vtag", "§14.4 a wrong verification tag is INVALID and changes nothing");
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.c(ST ^ 1, &[data(1, b"x")]), "C>S DATA wrong tag");
    b.send(a.s(ST, &[data(1, b"x")]), "S>C DATA with S's own tag");
    b.send(a.c(CT, &[sctp_chunk(COOKIE_ECHO, 0, b"cookie")]), "C>S COOKIE ECHO wrong tag");
    b.send(a.c(ST ^ 1, &[sctp_chunk(SHUTDOWN, 0, &0u32.to_be_bytes())]), "C>S SHUTDOWN wrong tag");
    b.send(a.c(5, &[init(CT)]), "C>S INIT with tag 5");
    b.send(a.c(ST, &[data(2, b"y")]), "C>S DATA right tag");
    b.build()
}

fn sctp_abort() -> Scenario {
    let mut b = Builder::new(
        "sctp_abort",
        "§14.4 ABORT: own tag with T clear, the peer's with T set; a wrong one is INVALID; CLOSED 10",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.s(ST, &[bare(ABORT, 0)]), "S>C ABORT wrong tag");
    b.send(a.s(CT, &[bare(ABORT, T)]), "S>C ABORT T with wrong tag");
    b.send(a.s(CT, &[bare(ABORT, 0)]), "S>C ABORT");
    b.send(a.c(ST, &[data(1, b"x")]), "C>S DATA after ABORT");
    let a2 = Assoc::new(C, 5001, S, 6000);
    a2.handshake(&mut b);
    b.send(a2.c(CT, &[bare(ABORT, T)]), "C>S ABORT T, reflected tag");
    b.build()
}

fn sctp_icmp_error() -> Scenario {
    let mut b = Builder::new(
        "sctp_icmp_error",
        "§14.8 ICMP errors quoting an SCTP path are RELATED (ports suffice); unknown ports INVALID",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    let quoted = a.c(ST, &[data(1, b"x")]);
    b.send(Pkt::icmp_error(R, C, 3, 1, [0; 4], &quoted, None), "R>C host unreachable, whole quote");
    b.send(Pkt::icmp_error(R, C, 11, 0, [0; 4], &quoted, Some(24)), "R>C time exceeded, 4 B of SCTP");
    let other = Pkt::sctp(C, 5000, S, 6009, ST, &[data(1, b"x")]);
    b.send(Pkt::icmp_error(R, C, 3, 1, [0; 4], &other, None), "R>C about an unknown port");
    b.send(Pkt::icmp_error(R, C, 3, 1, [0; 4], &quoted, Some(22)), "R>C quote of 2 B");
    b.build()
}

fn sctp_first_packets() -> Scenario {
    let mut b = Builder::new(
        "sctp_first_packets",
        "§14.4(1) first packets: ABORT, COOKIE ACK, SHUTDOWN COMPLETE, DATA, 0xC1, INIT tag 5 INVALID; others open",
    );
    let p = |port: u16, vtag: u32, c: Vec<u8>| Pkt::sctp(C, port, S, 6000, vtag, &[c]);
    b.send(p(5100, 0, bare(ABORT, 0)), "C>S ABORT");
    b.send(p(5101, 0, bare(COOKIE_ACK, 0)), "C>S COOKIE ACK");
    b.send(p(5102, 0, bare(SHUTDOWN_COMPLETE, 0)), "C>S SHUTDOWN COMPLETE");
    b.send(p(5103, 0, data(1, b"x")), "C>S DATA");
    b.send(p(5104, 0, bare(0xc1, 0)), "C>S chunk 0xC1");
    b.send(p(5105, 5, init(CT)), "C>S INIT tag 5");
    b.send(p(5106, 7, heartbeat(HEARTBEAT)), "C>S HEARTBEAT");
    b.send(p(5107, 7, bare(SHUTDOWN_ACK, 0)), "C>S SHUTDOWN ACK");
    b.send(p(5108, 0, bare(ERROR, 0)), "C>S ERROR tag 0");
    b.send(p(5109, 5, bare(ERROR, 0)), "C>S ERROR tag 5");
    b.send(p(5110, 0, sctp_chunk(COOKIE_ECHO, 0, b"c")), "C>S COOKIE ECHO tag 0");
    b.send(p(5111, 0, sctp_chunk(SHUTDOWN, 0, &0u32.to_be_bytes())), "C>S SHUTDOWN tag 0");
    b.send(Pkt::sctp(C, 5112, S, 6000, 7, &[heartbeat(HEARTBEAT), data(1, b"x")]), "C>S HEARTBEAT+DATA");
    b.build()
}

fn sctp_malformed() -> Scenario {
    let mut b = Builder::new(
        "sctp_malformed",
        "§14.3 bad CRC, short header, no chunk, zero length, INIT not alone, COOKIE ECHO not first: INVALID",
    );
    let mut bad_crc = Pkt::sctp(C, 5200, S, 6000, 0, &[init(CT)]);
    if let crate::trace::L4::Raw { payload, .. } = &mut bad_crc.l4 {
        payload[8] ^= 0xff;
    }
    b.send(bad_crc, "C>S INIT bad CRC");
    b.send(Pkt::raw(C, S, 132, &[0x14, 0x51, 0x17, 0x70, 0, 0, 0, 0]), "C>S 8 B header");
    b.send(Pkt::sctp(C, 5202, S, 6000, 0, &[]), "C>S no chunk");
    let mut zero = sctp_chunk(HEARTBEAT, 0, &[0, 1, 0, 8, 1, 2, 3, 4]);
    zero[2..4].copy_from_slice(&[0, 0]);
    b.send(Pkt::sctp(C, 5203, S, 6000, 7, &[zero]), "C>S chunk length 0");
    b.send(Pkt::sctp(C, 5204, S, 6000, 0, &[init(CT), data(1, b"x")]), "C>S INIT+DATA");
    b.send(
        Pkt::sctp(C, 5205, S, 6000, 7, &[heartbeat(HEARTBEAT), sctp_chunk(COOKIE_ECHO, 0, b"c")]),
        "C>S HEARTBEAT+COOKIE ECHO",
    );
    let mut long = heartbeat(HEARTBEAT);
    long[2..4].copy_from_slice(&[0x01, 0x00]);
    b.send(Pkt::sctp(C, 5206, S, 6000, 7, &[long]), "C>S HEARTBEAT length past the end");
    // Length 5, padded to 8: the walk rounds up and lands on the next chunk.
    let odd = sctp_chunk(HEARTBEAT, 0, &[9]);
    b.send(Pkt::sctp(C, 5207, S, 6000, 7, &[odd, heartbeat(HEARTBEAT)]), "C>S two HEARTBEATs, odd length");
    b.build()
}

fn sctp_checksum_off() -> Scenario {
    let mut b =
        Builder::new("sctp_checksum_off", "nf_conntrack_checksum=0: a bad CRC32c is tracked").sysctl("checksum", 0);
    let mut bad_crc = Pkt::sctp(C, 5300, S, 6000, 0, &[init(CT)]);
    if let crate::trace::L4::Raw { payload, .. } = &mut bad_crc.l4 {
        payload[8] ^= 0xff;
    }
    b.send(bad_crc, "C>S INIT bad CRC");
    b.build()
}

fn sctp_heartbeat_path() -> Scenario {
    let mut b = Builder::new(
        "sctp_heartbeat_path",
        "§14.7 a secondary path opens with HEARTBEAT (HEARTBEAT_SENT 30), HEARTBEAT ACK: ESTABLISHED ASSURED",
    );
    let a = Assoc::std();
    b.send(a.c(ST, &[heartbeat(HEARTBEAT)]), "C>S HEARTBEAT");
    b.send(a.s(CT, &[heartbeat(HEARTBEAT_ACK)]), "S>C HEARTBEAT ACK");
    b.send(a.c(ST, &[data(5, b"x")]), "C>S DATA");
    b.send(a.s(CT, &[sack(5)]), "S>C SACK");
    b.send(a.s(ST, &[sack(5)]), "S>C SACK wrong tag");
    b.build()
}

fn sctp_heartbeat_restart() -> Scenario {
    let mut b = Builder::new(
        "sctp_heartbeat_restart",
        "§14.4 a HEARTBEAT with an unknown tag passes without refresh; the peer's HEARTBEAT ACK relearns the tags",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.c(0x3333, &[heartbeat(HEARTBEAT), data(1, b"x")]), "C>S HEARTBEAT+DATA new tag");
    b.send(a.c(0x3333, &[heartbeat(HEARTBEAT)]), "C>S HEARTBEAT new tag");
    b.send(a.c(0x3333, &[heartbeat(HEARTBEAT_ACK)]), "C>S HEARTBEAT ACK new tag, same side");
    b.send(a.s(0x4444, &[heartbeat(HEARTBEAT_ACK)]), "S>C HEARTBEAT ACK new tag");
    b.send(a.c(0x5555, &[heartbeat(HEARTBEAT)]), "C>S HEARTBEAT learns");
    b.send(a.c(0x5555, &[data(1, b"x")]), "C>S DATA learnt tag");
    b.send(a.s(0x4444, &[data(1, b"y")]), "S>C DATA learnt tag");
    b.send(a.s(CT, &[data(2, b"y")]), "S>C DATA old tag");
    // Another path: a mismatched HEARTBEAT 3 s later does not refresh the timeout.
    let a2 = Assoc::new(C, 5001, S, 6000);
    a2.handshake(&mut b);
    b.at(3.0);
    b.send(a2.c(0x6666, &[heartbeat(HEARTBEAT)]), "t=3 C>S HEARTBEAT new tag");
    b.build()
}

fn sctp_init_retrans_no_refresh() -> Scenario {
    let mut b = Builder::new(
        "sctp_init_retrans_no_refresh",
        "§14.4 a retransmitted INIT in CLOSED is accepted without a timeout refresh",
    );
    let a = Assoc::std();
    b.send(a.c(0, &[init(CT)]), "t=0 C>S INIT");
    b.at(3.0);
    b.send(a.c(0, &[init(CT)]), "t=3 C>S INIT again");
    b.build()
}

fn sctp_custom_timeouts() -> Scenario {
    let mut b = Builder::new("sctp_custom_timeouts", "sctp_timeout_* knobs: cookie_wait 7, established 100")
        .sysctl("sctp_timeout_cookie_wait", 7)
        .sysctl("sctp_timeout_established", 100)
        .sysctl("sctp_timeout_closed", 20);
    let a = Assoc::std();
    a.handshake(&mut b);
    let a2 = Assoc::new(C, 5001, S, 6000);
    b.send(a2.c(0, &[init(CT)]), "C>S INIT (closed 20)");
    let a3 = Assoc::new(C, 5002, S, 6000);
    b.send(a3.c(0, &[init(CT)]), "C>S INIT");
    b.send(a3.s(CT, &[init_ack(ST)]), "S>C INIT ACK (cookie_wait 7)");
    b.build()
}

fn sctp_collision_stale_init_ack() -> Scenario {
    let mut b = Builder::new(
        "sctp_collision_stale_init_ack",
        "§14.6 INIT collision: a delayed INIT ACK with a new tag is INVALID; the path stays CLOSED",
    );
    let a = Assoc::new(C, 1234, S, 1234);
    let (ta, tb) = (0x0aaa_0001, 0x0bbb_0002);
    b.send(a.c(0, &[init(ta)]), "C>S INIT(a)");
    b.send(a.s(0, &[init(tb)]), "S>C INIT(b)");
    b.send(a.c(tb, &[init_ack(ta)]), "C>S INIT ACK(a)");
    b.send(a.s(ta, &[sctp_chunk(COOKIE_ECHO, 0, b"cookie")]), "S>C COOKIE ECHO");
    b.send(a.c(tb, &[bare(COOKIE_ACK, 0)]), "C>S COOKIE ACK");
    b.send(a.s(ta, &[init_ack(0x0ccc_0003)]), "S>C stale INIT ACK(c)");
    b.send(a.c(tb, &[data(1, b"hello")]), "C>S DATA");
    b.send(a.s(ta, &[data(1, b"hello")]), "S>C DATA");
    b.build()
}

fn sctp_stale_init() -> Scenario {
    let mut b = Builder::new(
        "sctp_stale_init",
        "§14.6 a delayed INIT with the known tag is not recorded: the answering INIT ACK is INVALID",
    );
    let a = Assoc::std();
    a.handshake(&mut b);
    b.send(a.c(0, &[init(CT)]), "C>S stale INIT");
    b.send(a.s(CT, &[init_ack(0x3000_0003)]), "S>C INIT ACK(new)");
    b.send(a.c(ST, &[data(1, b"x")]), "C>S DATA old tag");
    b.send(a.c(0x3000_0003, &[data(1, b"x")]), "C>S DATA new tag");
    b.build()
}

fn ipv6_sctp_association() -> Scenario {
    let mut b = Builder::new("ipv6_sctp_association", "§14 an IPv6 association and a DATA with a wrong tag");
    let a = Assoc::new(C6, 5000, S6, 6000);
    a.handshake(&mut b);
    b.send(a.c(ST, &[data(1, b"v6")]), "C>S DATA");
    b.send(a.c(CT, &[data(2, b"v6")]), "C>S DATA wrong tag");
    b.build()
}

#[cfg(test)]
mod tests {
    use crate::trace::crc32c;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
}
