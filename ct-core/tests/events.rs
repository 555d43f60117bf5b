//! Connection events (`conntrack -E`): NEW at confirmation, UPDATE on the
//! first reply, ASSURED or a TCP state change, DESTROY on removal; off by
//! default, bounded when on.

use ct_core::listing::{event_line, ListOptions};
use ct_core::table::{Conntrack, CtEvent, EventKind, Outcome, Template};
use ct_core::tuple::proto;
use ct_core::wire::parse_ip;
use ct_core::{CtConfig, Instant};
use std::time::Duration;

const C: [u8; 4] = [10, 0, 1, 2];
const S: [u8; 4] = [10, 0, 2, 2];

/// An IPv4 packet; L4 checksums are left zero (the tests turn checking off).
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let total = 20 + l4.len();
    let mut h = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let mut sum: u32 = h.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h.extend_from_slice(l4);
    h
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&[0, 8, 0, 0]);
    ipv4(src, dst, proto::UDP, &u)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sp.to_be_bytes());
    t.extend_from_slice(&dp.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    ipv4(src, dst, proto::TCP, &t)
}

fn table(cap: usize) -> Conntrack {
    let mut ct = Conntrack::new(CtConfig { checksum: false, ..CtConfig::default() });
    ct.enable_events(cap);
    ct
}

/// Track and, like an accept-all ruleset, confirm.
fn pass(ct: &mut Conntrack, pkt: &[u8], t_ms: u64) -> Outcome {
    let now = Instant::from_millis(t_ms);
    let ip = parse_ip(pkt).expect("test packets are well formed");
    let o = ct.track(&ip, &Template::default(), now);
    ct.confirm(&o, now);
    o
}

fn drain(ct: &mut Conntrack) -> Vec<CtEvent> {
    let mut v = Vec::new();
    ct.drain_events(&mut v);
    v
}

fn kinds(evs: &[CtEvent]) -> Vec<EventKind> {
    evs.iter().map(|e| e.kind).collect()
}

fn lines(evs: &[CtEvent]) -> Vec<String> {
    evs.iter().map(|e| event_line(e, &ListOptions::default())).collect()
}

#[test]
fn off_by_default() {
    let mut ct = Conntrack::new(CtConfig { checksum: false, ..CtConfig::default() });
    pass(&mut ct, &udp(C, S, 1000, 53), 0);
    ct.gc(Instant::from_secs(60), 100);
    assert!(drain(&mut ct).is_empty());
    assert_eq!(ct.events_lost(), 0);
}

#[test]
fn udp_new_reply_assured_destroy() {
    let mut ct = table(16);
    pass(&mut ct, &udp(C, S, 1000, 53), 0);
    pass(&mut ct, &udp(C, S, 1000, 53), 100); // nothing changes
    pass(&mut ct, &udp(S, C, 53, 1000), 200); // first reply
    pass(&mut ct, &udp(S, C, 53, 1000), 300); // nothing changes
    pass(&mut ct, &udp(C, S, 1000, 53), 2500); // ASSURED by the 2-second rule
    let evs = drain(&mut ct);
    assert_eq!(kinds(&evs), [EventKind::New, EventKind::Update, EventKind::Update]);
    assert_eq!(
        lines(&evs),
        [
            "    [NEW] udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=1000 dport=53 [UNREPLIED] src=10.0.2.2 \
             dst=10.0.1.2 sport=53 dport=1000",
            " [UPDATE] udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=1000 dport=53 src=10.0.2.2 dst=10.0.1.2 \
             sport=53 dport=1000",
            " [UPDATE] udp      17 120 src=10.0.1.2 dst=10.0.2.2 sport=1000 dport=53 src=10.0.2.2 dst=10.0.1.2 \
             sport=53 dport=1000 [ASSURED]",
        ]
    );
    assert!(drain(&mut ct).is_empty(), "drained events are gone");
    assert_eq!(ct.gc(Instant::from_secs(200), 100), 1);
    let evs = drain(&mut ct);
    assert_eq!(
        lines(&evs),
        ["[DESTROY] udp      17 src=10.0.1.2 dst=10.0.2.2 sport=1000 dport=53 src=10.0.2.2 dst=10.0.1.2 \
          sport=53 dport=1000 [ASSURED]"]
    );
}

#[test]
fn unconfirmed_entries_make_no_events() {
    let mut ct = table(16);
    let ip = udp(C, S, 1000, 53);
    let o = ct.track(&parse_ip(&ip).unwrap(), &Template::default(), Instant::ZERO);
    assert!(o.new);
    ct.discard(&o);
    assert!(drain(&mut ct).is_empty());
    assert_eq!(ct.count(), 0);
}

#[test]
fn tcp_state_changes_and_rst() {
    let mut ct = table(16);
    pass(&mut ct, &tcp(C, S, 40000, 80, 100, 0, SYN), 0);
    pass(&mut ct, &tcp(C, S, 40000, 80, 100, 0, SYN), 10); // retransmission: still SYN_SENT
    pass(&mut ct, &tcp(S, C, 80, 40000, 500, 101, SYN | ACK), 20);
    pass(&mut ct, &tcp(C, S, 40000, 80, 101, 501, ACK), 30);
    pass(&mut ct, &tcp(S, C, 80, 40000, 501, 101, RST), 40);
    assert_eq!(ct.gc(Instant::from_secs(11), 100), 1, "CLOSE lasts 10 s");
    let evs = drain(&mut ct);
    assert_eq!(
        kinds(&evs),
        [EventKind::New, EventKind::Update, EventKind::Update, EventKind::Update, EventKind::Destroy],
        "{:#?}",
        lines(&evs)
    );
    let l = lines(&evs);
    assert!(l[0]
        .starts_with("    [NEW] tcp      6 120 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED]"));
    assert!(l[1].starts_with(" [UPDATE] tcp      6 60 SYN_RECV src=10.0.1.2"), "{}", l[1]);
    assert!(l[2].starts_with(" [UPDATE] tcp      6 432000 ESTABLISHED src=10.0.1.2"), "{}", l[2]);
    assert!(l[2].ends_with("[ASSURED]"), "{}", l[2]);
    assert!(l[3].starts_with(" [UPDATE] tcp      6 10 CLOSE src=10.0.1.2"), "{}", l[3]);
    assert!(l[4].starts_with("[DESTROY] tcp      6 CLOSE src=10.0.1.2"), "{}", l[4]);
    assert_eq!(evs[4].remaining, None);
    assert_eq!(evs[0].remaining, Some(Duration::from_secs(120)));
}

#[test]
fn full_queue_drops_new_events_and_counts_them() {
    let mut ct = table(3);
    for p in 0..5 {
        pass(&mut ct, &udp(C, S, 1000 + p, 53), 0);
    }
    assert_eq!(ct.events_lost(), 2);
    let evs = drain(&mut ct);
    let sports: Vec<u16> = evs.iter().map(|e| e.entry.orig.sport).collect();
    assert_eq!(sports, [1000, 1001, 1002], "the oldest are kept");
    pass(&mut ct, &udp(C, S, 2000, 53), 0);
    assert_eq!(drain(&mut ct).len(), 1, "room again after a drain");
    ct.enable_events(0);
    pass(&mut ct, &udp(C, S, 3000, 53), 0);
    assert!(drain(&mut ct).is_empty());
}

#[test]
fn kill_of_a_confirmed_entry_is_a_destroy() {
    let mut ct = table(16);
    let o = pass(&mut ct, &udp(C, S, 1000, 53), 0);
    drain(&mut ct);
    assert!(ct.kill(o.conn.unwrap()));
    assert_eq!(kinds(&drain(&mut ct)), [EventKind::Destroy]);
}
