//! SCTP through the table (CONNTRACK_SPEC §14): ports in the tuple, the
//! association state machine, verification tags, listings, ICMP errors.

use ct_core::listing::{conntrack_line, event_line, proc_line, ListOptions};
use ct_core::sctp::{checksum, chunk, SctpConntrack};
use ct_core::table::{Conntrack, Entry, Outcome, Template};
use ct_core::tuple::proto;
use ct_core::wire::parse_ip;
use ct_core::{CtConfig, CtState, Dir, Instant, InvalidReason, Status};

mod common;
use common::{csum, ipv4};

const A: [u8; 4] = [10, 0, 1, 2];
const B: [u8; 4] = [10, 0, 2, 2];
const R: [u8; 4] = [10, 0, 3, 1];
const AT: u32 = 0x0a0a_0a0a;
const BT: u32 = 0x0b0b_0b0b;

/// An SCTP packet with `chunks` as `(type, flags, value)`, correct CRC32c.
fn sctp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, vtag: u32, chunks: &[(u8, u8, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&sp.to_be_bytes());
    b.extend_from_slice(&dp.to_be_bytes());
    b.extend_from_slice(&vtag.to_be_bytes());
    b.extend_from_slice(&[0; 4]);
    for (ty, flags, value) in chunks {
        b.extend_from_slice(&[*ty, *flags]);
        b.extend_from_slice(&(4 + value.len() as u16).to_be_bytes());
        b.extend_from_slice(value);
        while b.len() % 4 != 0 {
            b.push(0);
        }
    }
    let c = checksum(&b);
    b[8..12].copy_from_slice(&c);
    ipv4(src, dst, proto::SCTP, &b)
}

fn init(tag: u32) -> Vec<u8> {
    let mut v = tag.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
    v
}

struct H {
    ct: Conntrack,
}

impl H {
    fn new() -> H {
        H::with(CtConfig::default())
    }

    fn with(cfg: CtConfig) -> H {
        H { ct: Conntrack::new(cfg) }
    }

    fn pass(&mut self, pkt: &[u8], t_ms: u64) -> Outcome {
        let now = Instant::from_millis(t_ms);
        let o = self.ct.track(&parse_ip(pkt).unwrap(), &Template::default(), now);
        self.ct.confirm(&o, now);
        o
    }

    fn entries(&self, t_ms: u64) -> Vec<Entry> {
        self.ct.entries(Instant::from_millis(t_ms)).map(|(_, e)| e).collect()
    }

    /// A to B 5000 -> 6000: INIT, INIT ACK, COOKIE ECHO, COOKIE ACK.
    fn associate(&mut self, t: u64) {
        self.associate_from(5000, t);
    }

    fn associate_from(&mut self, port: u16, t: u64) {
        let st = |o: Outcome| (o.state, o.dir());
        let o = self.pass(&sctp(A, B, port, 6000, 0, &[(chunk::INIT, 0, &init(AT))]), t);
        assert_eq!(st(o), (CtState::New, Some(Dir::Original)));
        let o = self.pass(&sctp(B, A, 6000, port, AT, &[(chunk::INIT_ACK, 0, &init(BT))]), t + 1);
        assert_eq!(st(o), (CtState::Established, Some(Dir::Reply)));
        let o = self.pass(&sctp(A, B, port, 6000, BT, &[(chunk::COOKIE_ECHO, 0, b"cookie")]), t + 2);
        assert_eq!(st(o), (CtState::Established, Some(Dir::Original)));
        let o = self.pass(&sctp(B, A, 6000, port, AT, &[(chunk::COOKIE_ACK, 0, b"")]), t + 3);
        assert_eq!(st(o), (CtState::Established, Some(Dir::Reply)));
    }
}

/// The regression of issue 11 item 4: SCTP went through the generic
/// tracker, so one packet from A to B let B reach every SCTP port of A.
#[test]
fn another_port_is_a_new_association() {
    let mut h = H::new();
    h.associate(0);
    // B to another port of A: not ESTABLISHED; an INIT is NEW.
    let o = h.pass(&sctp(B, A, 6000, 7777, 0, &[(chunk::INIT, 0, &init(BT))]), 10);
    assert_eq!((o.state, o.dir()), (CtState::New, Some(Dir::Original)));
    // DATA to a port without a path cannot even create one.
    let o = h.pass(&sctp(B, A, 6000, 8888, AT, &[(chunk::DATA, 3, b"x")]), 11);
    assert_eq!((o.state, o.reason), (CtState::Invalid, Some(InvalidReason::SctpInvalidNew)));
    let ports: Vec<_> = h.entries(12).iter().map(|e| (e.orig.sport, e.orig.dport)).collect();
    assert_eq!(ports, vec![(5000, 6000), (6000, 7777)]);
}

#[test]
fn full_association_listing_and_shutdown() {
    let mut h = H::new();
    h.associate(0);
    let e = &h.entries(3)[0];
    assert_eq!(e.sctp_state(), Some(SctpConntrack::Established));
    assert!(e.status.contains(Status::ASSURED | Status::SEEN_REPLY));
    let now = Instant::from_millis(3);
    assert_eq!(
        proc_line(e, now, &ListOptions::default()),
        "ipv4     2 sctp     132 210 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=5000 dport=6000 \
         src=10.0.2.2 dst=10.0.1.2 sport=6000 dport=5000 [ASSURED] mark=0 zone=0 use=2"
    );
    assert!(conntrack_line(e, now, &ListOptions::default()).starts_with("sctp     132 210 ESTABLISHED src=10.0.1.2"));
    assert_eq!(h.pass(&sctp(A, B, 5000, 6000, BT, &[(chunk::DATA, 3, b"hello")]), 10).state, CtState::Established);
    assert_eq!(h.pass(&sctp(B, A, 6000, 5000, AT, &[(chunk::SACK, 0, &[0; 12])]), 11).state, CtState::Established);
    h.pass(&sctp(A, B, 5000, 6000, BT, &[(chunk::SHUTDOWN, 0, &[0; 4])]), 12);
    assert_eq!(h.entries(12)[0].sctp_state(), Some(SctpConntrack::ShutdownSent));
    assert!(h.entries(12)[0].can_early_drop());
    h.pass(&sctp(B, A, 6000, 5000, AT, &[(chunk::SHUTDOWN_ACK, 0, b"")]), 13);
    assert_eq!(h.entries(13)[0].sctp_state(), Some(SctpConntrack::ShutdownAckSent));
    h.pass(&sctp(A, B, 5000, 6000, BT, &[(chunk::SHUTDOWN_COMPLETE, 0, b"")]), 14);
    let e = &h.entries(14)[0];
    assert_eq!(e.sctp_state(), Some(SctpConntrack::Closed));
    assert_eq!(e.remaining(Instant::from_millis(14)).as_secs(), 10);
    assert!(e.status.contains(Status::ASSURED));
}

#[test]
fn wrong_vtag_abort_and_bad_packets() {
    let mut h = H::new();
    h.associate(0);
    let o = h.pass(&sctp(A, B, 5000, 6000, BT ^ 1, &[(chunk::DATA, 3, b"x")]), 10);
    assert_eq!((o.state, o.reason), (CtState::Invalid, Some(InvalidReason::SctpBadVtag)));
    let mut bad = sctp(A, B, 5000, 6000, BT, &[(chunk::DATA, 3, b"x")]);
    bad[36] ^= 0xff;
    assert_eq!(h.pass(&bad, 11).reason, Some(InvalidReason::SctpBadChecksum));
    let mut zero = sctp(A, B, 5000, 6000, BT, &[(chunk::DATA, 3, b"x")]);
    zero[34..36].copy_from_slice(&[0, 0]);
    let c = checksum(&zero[20..]);
    zero[28..32].copy_from_slice(&c);
    assert_eq!(h.pass(&zero, 12).reason, Some(InvalidReason::SctpBadChunks));
    assert_eq!(
        h.pass(&ipv4(A, B, proto::SCTP, &[0x13, 0x88, 0x17, 0x70]), 13).reason,
        Some(InvalidReason::SctpTruncated)
    );
    assert_eq!(h.entries(13)[0].sctp_state(), Some(SctpConntrack::Established));
    // ABORT with the peer's tag closes it.
    let o = h.pass(&sctp(B, A, 6000, 5000, AT, &[(chunk::ABORT, 0, b"")]), 14);
    assert_eq!(o.state, CtState::Established);
    let e = &h.entries(14)[0];
    assert_eq!((e.sctp_state(), e.remaining(Instant::from_millis(14)).as_secs()), (Some(SctpConntrack::Closed), 10));
    assert_eq!(h.ct.invalid_counters().get(InvalidReason::SctpBadVtag), 1);
}

#[test]
fn icmp_error_quoting_sctp_is_related() {
    let mut h = H::new();
    h.associate(0);
    let before = h.entries(3)[0].clone();
    let quoted = sctp(A, B, 5000, 6000, BT, &[(chunk::DATA, 3, b"x")]);
    let err = |inner: &[u8]| {
        let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(&inner[..28]);
        let c = csum(&m, 0);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        ipv4(R, A, proto::ICMP, &m)
    };
    let o = h.pass(&err(&quoted), 5);
    assert_eq!((o.state, o.dir()), (CtState::Related, Some(Dir::Reply)));
    let other = sctp(A, B, 5000, 6001, BT, &[(chunk::DATA, 3, b"x")]);
    assert_eq!(h.pass(&err(&other), 6).reason, Some(InvalidReason::IcmpErrorNoConnection));
    assert_eq!(h.entries(6)[0], before);
}

#[test]
fn secondary_path_heartbeat() {
    let mut h = H::new();
    let o = h.pass(&sctp(A, B, 5000, 6000, AT, &[(chunk::HEARTBEAT, 0, b"hb")]), 0);
    assert_eq!(o.state, CtState::New);
    assert_eq!(h.entries(0)[0].sctp_state(), Some(SctpConntrack::HeartbeatSent));
    h.pass(&sctp(B, A, 6000, 5000, BT, &[(chunk::HEARTBEAT_ACK, 0, b"hb")]), 1);
    let e = &h.entries(1)[0];
    assert_eq!(e.sctp_state(), Some(SctpConntrack::Established));
    assert!(e.status.contains(Status::ASSURED));
}

#[test]
fn state_changes_are_update_events() {
    let mut h = H::new();
    h.ct.enable_events(64);
    h.associate(0);
    h.pass(&sctp(A, B, 5000, 6000, BT, &[(chunk::DATA, 3, b"x")]), 4);
    let mut evs = Vec::new();
    h.ct.drain_events(&mut evs);
    let lines: Vec<String> = evs.iter().map(|e| event_line(e, &ListOptions::default())).collect();
    let heads: Vec<String> = lines.iter().map(|l| l.split(" src=").next().unwrap_or("").to_string()).collect();
    assert_eq!(
        heads,
        [
            "    [NEW] sctp     132 10 CLOSED",
            " [UPDATE] sctp     132 3 COOKIE_WAIT",
            " [UPDATE] sctp     132 3 COOKIE_ECHOED",
            " [UPDATE] sctp     132 210 ESTABLISHED",
        ]
    );
}

#[test]
fn closing_association_is_evicted_first() {
    let mut h = H::with(CtConfig { max_entries: 2, ..CtConfig::default() });
    h.associate_from(5000, 0);
    h.associate_from(5001, 10);
    h.pass(&sctp(A, B, 5001, 6000, BT, &[(chunk::SHUTDOWN, 0, &[0; 4])]), 20);
    // Both ASSURED; the one shutting down makes room for a new association.
    let o = h.pass(&sctp(A, B, 5002, 6000, 0, &[(chunk::INIT, 0, &init(AT))]), 30);
    assert_eq!(o.state, CtState::New);
    let ports: Vec<_> = h.entries(30).iter().map(|e| e.orig.sport).collect();
    assert_eq!(ports.len(), 2);
    assert!(ports.contains(&5000) && ports.contains(&5002), "{ports:?}");
    assert_eq!(h.ct.stats().early_drop, 1);
}
