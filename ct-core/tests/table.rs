//! Table-level behaviour (CONNTRACK_SPEC §§3, 5, 6, 7, 8.4, 9): UDP, ICMP,
//! ICMP errors, generic, expectations, limits, confirmation.

use ct_core::expect::{ExpectPolicy, ExpectRequest};
use ct_core::listing::{expect_line, proc_line, ListOptions};
use ct_core::table::{Conntrack, Outcome, Template};
use ct_core::tuple::{proto, Addr, Tuple, L3};
use ct_core::wire::parse_ip;
use ct_core::{CtConfig, CtInfo, CtState, Dir, Instant, InvalidReason, Status};
use std::time::Duration;

mod common;
use common::{csum, ipv4, tcp, udp, ACK, FIN, SYN};

const C: [u8; 4] = [10, 0, 1, 2];
const S: [u8; 4] = [10, 0, 2, 2];
const R: [u8; 4] = [10, 0, 3, 1];
const X: [u8; 4] = [10, 0, 9, 9];

fn icmp(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(body);
    let c = csum(&m, 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, proto::ICMP, &m)
}

/// An ICMP error quoting `inner` (an IPv4 packet) cut to `quote` bytes.
fn icmp_err(src: [u8; 4], dst: [u8; 4], ty: u8, code: u8, inner: &[u8], quote: usize) -> Vec<u8> {
    let q = &inner[..quote.min(inner.len())];
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(q);
    let c = csum(&m, 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, proto::ICMP, &m)
}

struct H {
    ct: Conntrack,
}

impl H {
    fn new(cfg: CtConfig) -> H {
        H { ct: Conntrack::new(cfg) }
    }

    /// Track and, like an accept-all ruleset, confirm.
    fn pass(&mut self, pkt: &[u8], t_ms: u64) -> Outcome {
        let now = Instant::from_millis(t_ms);
        let ip = parse_ip(pkt).expect("test packets are well formed");
        let o = self.ct.track(&ip, &Template::default(), now);
        self.ct.confirm(&o, now);
        o
    }

    fn only_entry(&self, t_ms: u64) -> ct_core::table::Entry {
        let all: Vec<_> = self.ct.entries(Instant::from_millis(t_ms)).map(|(_, e)| e.clone()).collect();
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].clone()
    }
}

fn state(o: &Outcome) -> (CtState, Option<Dir>) {
    (o.state, o.dir())
}

#[test]
fn udp_request_reply_is_not_assured() {
    let mut h = H::new(CtConfig::default());
    let o = h.pass(&udp(C, S, 5353, 53, b"q"), 0);
    assert_eq!(state(&o), (CtState::New, Some(Dir::Original)));
    let e = h.only_entry(0);
    assert!(!e.status.contains(Status::SEEN_REPLY));
    assert!(proc_line(&e, Instant::ZERO, &ListOptions::default())
        .contains(" 30 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 [UNREPLIED] src=10.0.2.2"));
    let o = h.pass(&udp(S, C, 53, 5353, b"a"), 10);
    assert_eq!(state(&o), (CtState::Established, Some(Dir::Reply)));
    let e = h.only_entry(10);
    assert!(e.status.contains(Status::SEEN_REPLY | Status::CONFIRMED));
    assert!(!e.status.contains(Status::ASSURED));
    assert_eq!(e.remaining(Instant::from_millis(10)), Duration::from_secs(30));
}

#[test]
fn udp_stream_assured_after_two_seconds() {
    let mut h = H::new(CtConfig::default());
    h.pass(&udp(C, S, 4000, 4001, b"1"), 0);
    h.pass(&udp(S, C, 4001, 4000, b"2"), 100);
    let o = h.pass(&udp(C, S, 4000, 4001, b"3"), 1000);
    assert_eq!(o.info, Some(CtInfo::Established));
    assert!(!h.only_entry(1000).status.contains(Status::ASSURED));
    h.pass(&udp(C, S, 4000, 4001, b"4"), 2500);
    let e = h.only_entry(2500);
    assert!(e.status.contains(Status::ASSURED));
    assert_eq!(e.remaining(Instant::from_millis(2500)), Duration::from_secs(120));
}

#[test]
fn expired_entry_counts_as_absent() {
    let mut h = H::new(CtConfig::default());
    h.pass(&udp(C, S, 1, 2, b""), 0);
    // 31 s later the server's datagram creates a new entry with S as originator.
    let o = h.pass(&udp(S, C, 2, 1, b""), 31_000);
    assert_eq!(state(&o), (CtState::New, Some(Dir::Original)));
    assert_eq!(h.only_entry(31_000).orig.src, Addr::v4(S));
}

#[test]
fn malformed_udp_is_invalid_and_leaves_nothing() {
    let mut h = H::new(CtConfig::default());
    let mut p = udp(C, S, 1, 2, b"abcd");
    p[24] = 0;
    p[25] = 200; // length beyond the data
    let o = h.pass(&p, 0);
    assert_eq!((o.state, o.reason), (CtState::Invalid, Some(InvalidReason::UdpBadLength)));
    let mut p = udp(C, S, 1, 2, b"abcd");
    p[27] ^= 0x55; // wrong checksum
    assert_eq!(h.pass(&p, 0).reason, Some(InvalidReason::UdpBadChecksum));
    let mut p = udp(C, S, 1, 2, b"abcd");
    p[26] = 0;
    p[27] = 0; // no checksum: fine
    assert_eq!(h.pass(&p, 0).state, CtState::New);
    assert_eq!(h.ct.invalid_counters().total(), 2);
    assert_eq!(h.ct.entries(Instant::ZERO).count(), 1);
}

#[test]
fn ping_and_icmp_validity() {
    let mut h = H::new(CtConfig::default());
    assert_eq!(state(&h.pass(&icmp(C, S, 8, 0, 77, b"x"), 0)), (CtState::New, Some(Dir::Original)));
    assert_eq!(state(&h.pass(&icmp(S, C, 0, 0, 77, b"x"), 5)), (CtState::Established, Some(Dir::Reply)));
    assert_eq!(h.pass(&icmp(C, S, 8, 0, 77, b"x"), 1000).info, Some(CtInfo::Established));
    let e = h.only_entry(1000);
    assert!(!e.status.contains(Status::ASSURED));
    let l = proc_line(&e, Instant::from_millis(1000), &ListOptions::default());
    assert!(l.starts_with("ipv4     2 icmp     1 30 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=77 src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=77 mark=0 zone=0"), "{l}");
    // Unsolicited reply, unpaired type, type beyond 18.
    assert_eq!(h.pass(&icmp(S, C, 0, 0, 99, b""), 0).reason, Some(InvalidReason::IcmpInvalidNew));
    assert_eq!(h.pass(&icmp(S, C, 9, 0, 0, b""), 0).reason, Some(InvalidReason::IcmpNoInverse));
    assert_eq!(h.pass(&icmp(S, C, 42, 0, 0, b""), 0).reason, Some(InvalidReason::IcmpBadType));
    // Timestamp request/reply.
    assert_eq!(h.pass(&icmp(C, S, 13, 0, 5, &[0; 12]), 0).state, CtState::New);
    assert_eq!(h.pass(&icmp(S, C, 14, 0, 5, &[0; 12]), 0).state, CtState::Established);
}

#[test]
fn icmp_error_is_related_and_updates_nothing() {
    let mut h = H::new(CtConfig::default());
    let probe = udp(C, S, 40000, 33434, b"probe");
    h.pass(&probe, 0);
    let before = h.only_entry(0);
    // Port unreachable from S about C's datagram: matches the reply tuple.
    let o = h.pass(&icmp_err(S, C, 3, 3, &probe, 28), 5000);
    assert_eq!((o.state, o.info), (CtState::Related, Some(CtInfo::RelatedReply)));
    assert_eq!(o.dir(), Some(Dir::Reply));
    let after = h.only_entry(5000);
    assert_eq!(after.deadline, before.deadline, "no timeout refresh");
    assert!(!after.status.contains(Status::SEEN_REPLY), "still unreplied");
    // Time exceeded from a router: outer destination is C as well.
    assert_eq!(h.pass(&icmp_err(R, C, 11, 0, &probe, 28), 5000).state, CtState::Related);
    // Forged: outer destination X.
    assert_eq!(h.pass(&icmp_err(R, X, 3, 3, &probe, 28), 0).reason, Some(InvalidReason::IcmpErrorOuterDaddr));
    // About an unknown connection.
    let other = udp(C, X, 1, 2, b"");
    assert_eq!(h.pass(&icmp_err(R, C, 3, 1, &other, 28), 0).reason, Some(InvalidReason::IcmpErrorNoConnection));
    // Truncated quote: not even the ports.
    assert_eq!(h.pass(&icmp_err(S, C, 3, 3, &probe, 22), 0).reason, Some(InvalidReason::IcmpErrorBadQuote));
    assert_eq!(h.ct.stats().icmp_error, 3);
}

#[test]
fn icmp_error_about_reply_packet_matches_original() {
    let mut h = H::new(CtConfig::default());
    h.pass(&udp(C, S, 53000, 53, b"q"), 0);
    let reply = udp(S, C, 53, 53000, b"a");
    h.pass(&reply, 1);
    let o = h.pass(&icmp_err(C, S, 3, 3, &reply, 28), 2);
    assert_eq!((o.state, o.info, o.dir()), (CtState::Related, Some(CtInfo::Related), Some(Dir::Original)));
}

#[test]
fn generic_protocol_is_one_connection_never_assured() {
    let mut h = H::new(CtConfig::default());
    let p = |s, d| ipv4(s, d, 253, b"payload");
    assert_eq!(h.pass(&p(C, S), 0).state, CtState::New);
    assert_eq!(state(&h.pass(&p(S, C), 1)), (CtState::Established, Some(Dir::Reply)));
    h.pass(&p(C, S), 2);
    let e = h.only_entry(2);
    assert!(!e.status.contains(Status::ASSURED));
    let l = proc_line(&e, Instant::from_millis(2), &ListOptions::default());
    assert!(
        l.starts_with("ipv4     2 unknown  253 600 src=10.0.1.2 dst=10.0.2.2 src=10.0.2.2 dst=10.0.1.2 mark=0"),
        "{l}"
    );
}

#[test]
fn dropped_first_packet_leaves_no_state() {
    let mut ct = Conntrack::new(CtConfig::default());
    let pkt = udp(C, S, 1, 2, b"");
    let ip = parse_ip(&pkt).unwrap();
    let o = ct.track(&ip, &Template::default(), Instant::ZERO);
    assert!(o.new && o.conn.is_some());
    assert_eq!(ct.count(), 1, "allocated, unconfirmed");
    assert_eq!(ct.entries(Instant::ZERO).count(), 0, "not listed before confirmation");
    ct.discard(&o);
    assert_eq!(ct.count(), 0);
    // And the next packet is NEW again.
    let o = ct.track(&ip, &Template::default(), Instant::ZERO);
    assert_eq!(o.state, CtState::New);
}

#[test]
fn notrack_template_is_untracked() {
    let mut ct = Conntrack::new(CtConfig::default());
    let pkt = udp(C, S, 1, 53, b"");
    let o = ct.track(&parse_ip(&pkt).unwrap(), &Template { notrack: true, ..Template::default() }, Instant::ZERO);
    assert_eq!(o.state, CtState::Untracked);
    assert_eq!(ct.count(), 0);
}

fn tftp_like_request(master_src: [u8; 4], master_dst: [u8; 4], dport: u16) -> ExpectRequest {
    ExpectRequest {
        tuple: Tuple {
            l3: L3::V4,
            proto: proto::UDP,
            src: Addr::v4(master_dst),
            dst: Addr::v4(master_src),
            sport: 0,
            dport,
        },
        match_src_addr: true,
        match_sport: false,
        class: 0,
    }
}

#[test]
fn expectations_one_shot_limit_lifetime_master_death() {
    let mut h = H::new(CtConfig::default());
    let o = h.pass(&udp(C, S, 1069, 69, b"\x00\x01f\x00octet\x00"), 0);
    let master = o.conn.unwrap();
    let pol = ExpectPolicy::KERNEL_DEFAULT;
    h.ct.expect(master, tftp_like_request(C, S, 1069), pol, "tftp", Instant::ZERO).unwrap();
    let lines: Vec<_> = h.ct.expectations(Instant::ZERO).map(|x| expect_line(&x, Instant::ZERO)).collect();
    assert_eq!(lines, ["300 l3proto = 2 proto=17 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=1069 tftp"]);
    // The server's new port is RELATED; the expectation is consumed.
    let o = h.pass(&udp(S, C, 3333, 1069, b"data"), 10);
    assert_eq!((o.state, o.dir()), (CtState::Related, Some(Dir::Original)));
    assert_eq!(h.ct.expectations(Instant::ZERO).count(), 0);
    let child = h.ct.entry(o.conn.unwrap()).unwrap().clone();
    assert!(child.status.contains(Status::EXPECTED));
    // The client's answer is ESTABLISHED (reply of the child), later originals too.
    assert_eq!(h.pass(&udp(C, S, 1069, 3333, b"ack"), 20).state, CtState::Established);
    assert_eq!(h.pass(&udp(S, C, 3333, 1069, b"data2"), 30).info, Some(CtInfo::Established));

    // Per-master limit: a second request evicts the first.
    h.ct.expect(master, tftp_like_request(C, S, 2000), pol, "tftp", Instant::ZERO).unwrap();
    h.ct.expect(master, tftp_like_request(C, S, 2002), pol, "tftp", Instant::ZERO).unwrap();
    let ports: Vec<u16> = h.ct.expectations(Instant::ZERO).map(|x| x.req.tuple.dport).collect();
    assert_eq!(ports, [2002]);
    // Lifetime: not there after 300 s.
    assert_eq!(h.ct.expectations(Instant::from_secs(300)).count(), 0);
    assert_eq!(h.pass(&udp(S, C, 4444, 2002, b""), 301_000).state, CtState::New);

    // Master death removes pending expectations.
    let o = h.pass(&udp(C, S, 7000, 69, b""), 400_000);
    let m2 = o.conn.unwrap();
    h.ct.expect(m2, tftp_like_request(C, S, 7000), pol, "tftp", Instant::from_secs(400)).unwrap();
    assert_eq!(h.ct.expectations(Instant::from_secs(400)).count(), 1);
    h.ct.kill(m2);
    assert_eq!(h.ct.expectations(Instant::from_secs(400)).count(), 0);
}

#[test]
fn expectation_of_another_master_clashes() {
    let mut h = H::new(CtConfig::default());
    let a = h.pass(&udp(C, S, 1, 69, b""), 0).conn.unwrap();
    let b = h.pass(&udp(C, S, 2, 69, b""), 0).conn.unwrap();
    let pol = ExpectPolicy::KERNEL_DEFAULT;
    h.ct.expect(a, tftp_like_request(C, S, 5000), pol, "tftp", Instant::ZERO).unwrap();
    assert!(h.ct.expect(b, tftp_like_request(C, S, 5000), pol, "tftp", Instant::ZERO).is_err());
    // The same request again from the same master replaces (restarts) it.
    h.ct.expect(a, tftp_like_request(C, S, 5000), pol, "tftp", Instant::from_secs(100)).unwrap();
    let x: Vec<_> = h.ct.expectations(Instant::from_secs(100)).collect();
    assert_eq!((x.len(), x[0].expires), (1, Instant::from_secs(400)));
}

#[test]
fn full_table_evicts_unassured_then_refuses() {
    let mut h = H::new(CtConfig { max_entries: 4, ..CtConfig::default() });
    for p in 0..4 {
        h.pass(&udp(C, S, 100 + p, 9, b""), 0);
    }
    // Room is made by evicting an unreplied entry.
    assert_eq!(h.pass(&udp(C, S, 200, 9, b""), 1).state, CtState::New);
    assert_eq!(h.ct.count(), 4);
    assert_eq!(h.ct.stats().early_drop, 1);

    // Everything ASSURED: a new flow is dropped before the ruleset.
    let mut h = H::new(CtConfig { max_entries: 2, ..CtConfig::default() });
    for p in 0..2u16 {
        h.pass(&udp(C, S, 100 + p, 9, b""), 0);
        h.pass(&udp(S, C, 9, 100 + p, b""), 10);
        h.pass(&udp(C, S, 100 + p, 9, b""), 2500);
    }
    assert!(h.ct.entries(Instant::from_millis(2500)).all(|(_, e)| e.status.contains(Status::ASSURED)));
    let o = h.pass(&udp(C, S, 300, 9, b""), 2600);
    assert!(o.table_full);
    assert_eq!(h.ct.stats().drop, 1);
    assert_eq!(h.ct.count(), 2);
}

#[test]
fn gc_reaps_expired_with_bounded_work() {
    let mut h = H::new(CtConfig::default());
    for p in 0..10 {
        h.pass(&udp(C, S, 100 + p, 9, b""), 0);
    }
    assert_eq!(h.ct.gc(Instant::from_secs(29), 100), 0);
    assert_eq!(h.ct.gc(Instant::from_secs(31), 4), 4);
    assert_eq!(h.ct.gc(Instant::from_secs(31), 100), 6);
    assert_eq!(h.ct.count(), 0);
}

/// The timer wheel: a deadline pushed past the wheel's turn (1024 s) is
/// kept, one brought earlier (ESTABLISHED for days, then TIME_WAIT) is
/// reaped on time, and entries the collector examines but that are not due
/// stay.
#[test]
fn timer_wheel_follows_deadlines_both_ways() {
    let mut h = H::new(CtConfig::default());
    let t = |s: u64| s * 1000;
    // An established TCP connection (5 days) that closes at 3000 s.
    h.pass(&tcp(C, S, 4000, 80, 1000, 0, SYN), 0);
    h.pass(&tcp(S, C, 80, 4000, 5000, 1001, SYN | ACK), 0);
    h.pass(&tcp(C, S, 4000, 80, 1001, 5001, ACK), 0);
    // A UDP stream kept alive every 25 s, and one left alone.
    h.pass(&udp(C, S, 4002, 53, b"q"), 0);
    for s in (0..=3000).step_by(25) {
        h.pass(&udp(C, S, 4001, 53, b"q"), t(s));
        h.pass(&udp(S, C, 53, 4001, b"a"), t(s));
        h.ct.gc(Instant::from_secs(s), 1000);
    }
    let ports = |h: &H, s: u64| {
        let mut p: Vec<u16> = h.ct.entries(Instant::from_secs(s)).map(|(_, e)| e.orig.sport).collect();
        p.sort_unstable();
        p
    };
    assert_eq!(ports(&h, 3000), [4000, 4001], "the idle UDP flow expired, the others stayed");
    assert_eq!(h.ct.count(), 2, "and it was reaped, not only hidden");
    h.pass(&tcp(C, S, 4000, 80, 1001, 5001, FIN | ACK), t(3000));
    h.pass(&tcp(S, C, 80, 4000, 5001, 1002, FIN | ACK), t(3000));
    h.pass(&tcp(C, S, 4000, 80, 1002, 5002, ACK), t(3000));
    assert_eq!(h.ct.gc(Instant::from_secs(3119), 1000), 0, "TIME_WAIT lasts 120 s");
    assert_eq!(h.ct.gc(Instant::from_secs(3121), 1000), 2, "both reaped within a second of their deadlines");
    assert_eq!(h.ct.count(), 0);
}

#[test]
fn udplite_coverage_and_mandatory_checksum() {
    let mut h = H::new(CtConfig::default());
    let lite = |cov: u16, csum: u16| {
        let mut l4 = vec![0x13, 0x88, 0x13, 0x89];
        l4.extend_from_slice(&cov.to_be_bytes());
        l4.extend_from_slice(&csum.to_be_bytes());
        l4.extend_from_slice(b"data");
        ipv4(C, S, proto::UDPLITE, &l4)
    };
    assert_eq!(h.pass(&lite(0, 0x1234), 0).state, CtState::New, "coverage 0 = whole datagram");
    assert_eq!(h.pass(&lite(8, 0), 0).reason, Some(InvalidReason::UdpBadChecksum));
    assert_eq!(h.pass(&lite(4, 0x1234), 0).reason, Some(InvalidReason::UdpBadLength));
    assert_eq!(h.pass(&lite(13, 0x1234), 0).reason, Some(InvalidReason::UdpBadLength));
}

/// Issue 5's flood: a table at capacity with ASSURED established flows, then ten times the
/// capacity in new SYNs and new UDP flows. No ASSURED entry is evicted, the established flows
/// keep passing, and new flows get in as room appears (non-ASSURED entries first, then closing
/// TCP connections).
#[test]
fn flood_never_evicts_assured_established_flows() {
    const CAP: u16 = 500;
    let mut h = H::new(CtConfig { max_entries: u32::from(CAP), ..CtConfig::default() });
    let mut t = 0;
    for p in 0..CAP {
        let sp = 10_000 + p;
        assert_eq!(h.pass(&tcp(C, S, sp, 80, 1000, 0, SYN), t).state, CtState::New);
        h.pass(&tcp(S, C, 80, sp, 5000, 1001, SYN | ACK), t);
        assert_eq!(h.pass(&tcp(C, S, sp, 80, 1001, 5001, ACK), t).state, CtState::Established);
    }
    assert_eq!(h.ct.count(), usize::from(CAP));
    let assured = |h: &H, t: u64| {
        h.ct.entries(Instant::from_millis(t)).filter(|(_, e)| e.status.contains(Status::ASSURED)).count()
    };
    assert_eq!(assured(&h, t), usize::from(CAP));

    // The flood: 10 x capacity new flows, half SYNs from outside, half UDP.
    t += 1000;
    let mut admitted = 0;
    for i in 0..(CAP as u32 * 10) {
        let port = 20_000 + (i % 40_000) as u16;
        let pkt = if i % 2 == 0 { tcp(X, S, port, 443, i, 0, SYN) } else { udp(X, S, port, 53, b"x") };
        let o = h.pass(&pkt, t);
        admitted += usize::from(!o.table_full);
    }
    assert_eq!(admitted, 0, "a full table of ASSURED established flows admits nothing");
    assert_eq!(h.ct.stats().early_drop, 0);
    assert_eq!(h.ct.stats().drop, u64::from(CAP) * 10);
    // Every established flow still passes, in both directions.
    for p in 0..CAP {
        let sp = 10_000 + p;
        assert_eq!(h.pass(&tcp(C, S, sp, 80, 1001, 5001, ACK), t).state, CtState::Established);
        assert_eq!(h.pass(&tcp(S, C, 80, sp, 5001, 1001, ACK), t).state, CtState::Established);
    }
    assert_eq!(assured(&h, t), usize::from(CAP));

    // Ten connections close: room appears, and the flood gets exactly that much in.
    for p in 0..10 {
        let sp = 10_000 + p;
        h.pass(&tcp(C, S, sp, 80, 1001, 5001, FIN | ACK), t);
        h.pass(&tcp(S, C, 80, sp, 5001, 1002, FIN | ACK), t);
        h.pass(&tcp(C, S, sp, 80, 1002, 5002, ACK), t);
    }
    let mut admitted = 0;
    for i in 0..1000u32 {
        let o = h.pass(&udp(X, S, 30_000 + i as u16, 53, b"x"), t);
        admitted += usize::from(!o.table_full);
    }
    // The first new flow evicts a closing connection; after that there is a
    // non-ASSURED entry (the previous new flow), which goes first, as in the
    // kernel: the new flows evict each other and the established ones stay.
    assert_eq!(admitted, 1000);
    assert_eq!(h.ct.stats().early_drop, 1000);
    assert_eq!(assured(&h, t), usize::from(CAP) - 1);
    for p in 10..CAP {
        let sp = 10_000 + p;
        assert_eq!(h.pass(&tcp(C, S, sp, 80, 1001, 5001, ACK), t).state, CtState::Established);
    }
}

/// The victim is found wherever it sits in the table, not only near a scan cursor.
#[test]
fn full_table_finds_the_one_candidate_anywhere() {
    const CAP: u16 = 1000;
    let mut h = H::new(CtConfig { max_entries: u32::from(CAP), ..CtConfig::default() });
    for p in 0..CAP - 1 {
        h.pass(&udp(C, S, 1000 + p, 9, b""), 0);
        h.pass(&udp(S, C, 9, 1000 + p, b""), 10);
        h.pass(&udp(C, S, 1000 + p, 9, b""), 2500);
    }
    // The only non-ASSURED entry, in the last slot.
    h.pass(&udp(C, S, 5000, 9, b""), 2600);
    assert_eq!(h.ct.count(), usize::from(CAP));
    let o = h.pass(&udp(C, S, 6000, 9, b""), 2700);
    assert!(!o.table_full);
    assert_eq!(h.ct.stats().early_drop, 1);
    let ports: Vec<u16> = h.ct.entries(Instant::from_millis(2700)).map(|(_, e)| e.orig.sport).collect();
    assert!(ports.contains(&6000) && !ports.contains(&5000));
}

/// Helper line state is taken when the helper first keeps something, from a
/// pool as large as the table (at most 65535): connections that never do
/// hold none, and past the pool the refusals are counted, not silent.
#[test]
fn helper_line_state_is_taken_lazily_and_refusals_are_counted() {
    let mut ct = Conntrack::new(CtConfig { max_entries: 70_000, max_entries_v6: 16, ..CtConfig::default() });
    let tmpl = Template { helper: Some((0, "ftp")), ..Template::default() };
    let now = Instant::ZERO;
    let mut ids = Vec::new();
    for i in 0..65_536u32 {
        let src = [10, 1, (i >> 8) as u8, i as u8];
        let pkt = udp(src, S, 1024 + (i % 60_000) as u16, 21, b"");
        let o = ct.track(&parse_ip(&pkt).unwrap(), &tmpl, now);
        ct.confirm(&o, now);
        ids.push(o.conn.unwrap());
    }
    // Looking without keeping anything takes no state.
    for &id in &ids {
        assert_eq!(ct.with_helper(id, |_, _, _, h| h.line.seq_aft_nl_num), Some([0, 0]));
    }
    // Keeping state: the first 65535 connections get it and keep it.
    let keep = |ct: &mut Conntrack, id| ct.with_helper(id, |_, _, _, h| h.line.seq_aft_nl_num[0] += 1);
    for &id in &ids {
        keep(&mut ct, id);
    }
    assert_eq!(ct.stats().helper_state_full, 1, "the 65536th was refused, counted");
    assert_eq!(ct.with_helper(ids[0], |_, _, _, h| h.line.seq_aft_nl_num), Some([1, 0]));
    assert_eq!(ct.with_helper(ids[65_535], |_, _, _, h| h.line.seq_aft_nl_num), Some([0, 0]));
    // A connection that goes frees its state for the next.
    assert!(ct.kill(ids[0]));
    keep(&mut ct, ids[65_535]);
    assert_eq!(ct.with_helper(ids[65_535], |_, _, _, h| h.line.seq_aft_nl_num), Some([1, 0]));
    assert_eq!(ct.stats().helper_state_full, 1);
}
