//! The table shared by worker threads (issue 5): two threads driving the
//! same flows get what one thread gets; racing first packets make exactly
//! one entry; a flood from two workers evicts no ASSURED connection.

use ct_core::table::{Confirm, Conntrack, Outcome, Template};
use ct_core::tcp::TcpConntrack;
use ct_core::wire::parse_ip;
use ct_core::{CtConfig, CtInfo, CtState, Dir, Instant, Status};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Barrier;

mod common;
use common::{tcp, udp, ACK, FIN, SYN};

const PSH: u8 = 0x08;

/// One packet of a flow: its bytes, whether it goes client to server, and
/// its time.
struct Pkt {
    bytes: Vec<u8>,
    orig: bool,
    t_ms: u64,
}

/// Flow `f`: a TCP connection (handshake, data both ways, FIN both ways)
/// or a UDP exchange, from client 10.1.x.y.
fn flow(f: u32) -> Vec<Pkt> {
    let c = [10, 1, (f >> 8) as u8, f as u8];
    let s = [10, 2, 0, 1 + (f % 3) as u8];
    let sp = 20_000 + (f % 40_000) as u16;
    let t0 = u64::from(f % 7);
    let p = |bytes, orig, i: u64| Pkt { bytes, orig, t_ms: t0 + 10 * i };
    if f % 3 == 2 {
        return (0..6)
            .map(
                |i| if i % 2 == 0 { p(udp(c, s, sp, 53, b"q"), true, i) } else { p(udp(s, c, 53, sp, b"a"), false, i) },
            )
            .collect();
    }
    let (ci, si) = (1000u32, 5000u32);
    vec![
        p(tcp(c, s, sp, 80, ci, 0, SYN), true, 0),
        p(tcp(s, c, 80, sp, si, ci + 1, SYN | ACK), false, 1),
        p(tcp(c, s, sp, 80, ci + 1, si + 1, ACK), true, 2),
        p(tcp(c, s, sp, 80, ci + 1, si + 1, ACK | PSH), true, 3),
        p(tcp(s, c, 80, sp, si + 1, ci + 1, ACK), false, 4),
        p(tcp(c, s, sp, 80, ci + 1, si + 1, FIN | ACK), true, 5),
        p(tcp(s, c, 80, sp, si + 1, ci + 2, FIN | ACK), false, 6),
        p(tcp(c, s, sp, 80, ci + 2, si + 2, ACK), true, 7),
        // A stray retransmitted SYN after the close, and an out-of-window ACK.
        p(tcp(c, s, sp, 80, ci + 2, 0, ACK), true, 8),
    ]
}

/// What a packet got: ctstate, ctinfo, and the TCP state after it.
type Seen = (CtState, Option<CtInfo>, Option<TcpConntrack>);

fn pass(ct: &mut Conntrack, p: &Pkt) -> (Outcome, Seen) {
    let now = Instant::from_millis(p.t_ms);
    let ip = parse_ip(&p.bytes).expect("well formed");
    let o = ct.track(&ip, &Template::default(), now);
    assert_ne!(ct.confirm(&o, now), Confirm::Failed, "no race in this test");
    let st = o.conn.and_then(|id| ct.entry(id)).and_then(|e| e.tcp_state());
    (o, (o.state, o.info, st))
}

/// The table's entries, keyed by original tuple: status and TCP state.
fn listing(ct: &Conntrack, t_ms: u64) -> BTreeMap<String, (Status, Option<TcpConntrack>)> {
    ct.entries(Instant::from_millis(t_ms)).map(|(_, e)| (format!("{:?}", e.orig), (e.status, e.tcp_state()))).collect()
}

fn cfg() -> CtConfig {
    CtConfig { max_entries: 1 << 14, ..CtConfig::default() }
}

#[test]
fn two_threads_on_one_table_equal_one_thread() {
    const FLOWS: u32 = 3000;
    let flows: Vec<Vec<Pkt>> = (0..FLOWS).map(flow).collect();

    // One thread: flows interleaved packet by packet.
    let mut ct = Conntrack::new(cfg());
    let mut single = BTreeMap::new();
    for i in 0..9 {
        for (f, pkts) in flows.iter().enumerate() {
            if let Some(p) = pkts.get(i) {
                single.insert((f, i), pass(&mut ct, p).1);
            }
        }
    }

    // Two threads on one table: worker 0 takes the client's packets and
    // worker 1 the server's, as two queues would without symmetric RSS;
    // each flow's packets keep their order, flows interleave freely.
    let shared = Conntrack::new(cfg());
    let next: Vec<AtomicUsize> = (0..FLOWS).map(|_| AtomicUsize::new(0)).collect();
    let results: Vec<Vec<((usize, usize), Seen)>> = std::thread::scope(|s| {
        let hs: Vec<_> = [true, false]
            .into_iter()
            .map(|orig_side| {
                let mut ct = shared.worker();
                let (flows, next) = (&flows, &next);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut todo: Vec<(usize, usize)> = (0..9)
                        .flat_map(|i| (0..flows.len()).map(move |f| (f, i)))
                        .filter(|&(f, i)| flows[f].get(i).is_some_and(|p| p.orig == orig_side))
                        .collect();
                    if !orig_side {
                        todo.reverse();
                        todo.sort_by_key(|&(_, i)| i);
                    }
                    for (f, i) in todo {
                        // Acquire: pairs with the Release store below of
                        // the worker that handled packet i - 1 of flow f.
                        while next[f].load(Ordering::Acquire) != i {
                            std::thread::yield_now();
                        }
                        out.push(((f, i), pass(&mut ct, &flows[f][i]).1));
                        next[f].store(i + 1, Ordering::Release);
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let two: BTreeMap<_, _> = results.into_iter().flatten().collect();
    assert_eq!(two.len(), single.len());
    for (k, v) in &single {
        assert_eq!(two.get(k), Some(v), "flow {} packet {}", k.0, k.1);
    }
    assert_eq!(listing(&shared, 50), listing(&ct, 50));
    assert_eq!(shared.count(), ct.count());
    // The flows did what they should: TCP closed in TIME_WAIT, UDP ASSURED.
    let l = listing(&ct, 50);
    assert_eq!(l.values().filter(|(_, s)| *s == Some(TcpConntrack::TimeWait)).count(), 2000);
    assert_eq!(l.values().filter(|(st, s)| s.is_none() && st.contains(Status::ASSURED)).count(), 0);
}

/// Both workers see the first packet of each of the same new flows at the
/// same time: one entry per flow; UDP losers join the winner (clash
/// resolution), TCP losers are dropped (`insert_failed`).
#[test]
fn racing_first_packets_make_one_entry() {
    const N: u32 = 2000;
    let shared = Conntrack::new(cfg());
    let go = Barrier::new(2);
    let stats: Vec<(u64, u64, u64, u64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let mut ct = shared.worker();
                let go = &go;
                s.spawn(move || {
                    let mut failed = 0;
                    for f in 0..N {
                        // Start every 50 flows together, so the two workers race.
                        if f % 50 == 0 {
                            go.wait();
                        }
                        let c = [10, 3, (f >> 8) as u8, f as u8];
                        let pkt = if f % 2 == 0 {
                            udp(c, [10, 4, 0, 1], 999, 53, b"q")
                        } else {
                            tcp(c, [10, 4, 0, 1], 999, 80, 7, 0, SYN)
                        };
                        let ip = parse_ip(&pkt).expect("well formed");
                        let now = Instant::from_millis(1);
                        let o = ct.track(&ip, &Template::default(), now);
                        assert!(matches!(o.state, CtState::New), "{o:?}");
                        match ct.confirm(&o, now) {
                            Confirm::Failed => {
                                assert_eq!(f % 2, 1, "a UDP flow is never refused");
                                failed += 1;
                            }
                            Confirm::ClashResolved => assert_eq!(f % 2, 0, "TCP never joins a clash"),
                            Confirm::Inserted => {}
                        }
                    }
                    let st = ct.stats();
                    (st.insert, st.clash_resolve, st.insert_failed, failed)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let sum = |i: usize| stats.iter().map(|s| [s.0, s.1, s.2, s.3][i]).sum::<u64>();
    eprintln!("insert {} clash_resolve {} insert_failed {}", sum(0), sum(1), sum(2));
    assert_eq!(shared.count(), N as usize, "one entry per flow");
    assert_eq!(shared.entries(Instant::from_millis(1)).count(), N as usize);
    assert_eq!(sum(0), u64::from(N), "each flow inserted once");
    // Every packet either inserted, found the other's entry, or raced.
    assert_eq!(sum(2), sum(3), "every insert_failed dropped its packet");
    assert!(sum(1) + sum(2) <= u64::from(N));
}

/// The flood of issue 5 from two workers at once: a table full of ASSURED
/// established TCP flows, ten times its capacity in new SYNs and UDP flows,
/// and the established flows keep passing on both workers.
#[test]
fn two_worker_flood_evicts_no_assured_flow() {
    const CAP: u16 = 1000;
    let mut ct = Conntrack::new(CtConfig { max_entries: u32::from(CAP), ..CtConfig::default() });
    let (c, s) = ([10, 5, 0, 1], [10, 6, 0, 1]);
    for p in 0..CAP {
        let sp = 10_000 + p;
        for (pkt, orig) in [
            (tcp(c, s, sp, 80, 1000, 0, SYN), true),
            (tcp(s, c, 80, sp, 5000, 1001, SYN | ACK), false),
            (tcp(c, s, sp, 80, 1001, 5001, ACK), true),
        ] {
            pass(&mut ct, &Pkt { bytes: pkt, orig, t_ms: 0 });
        }
    }
    let assured = |ct: &Conntrack| {
        ct.entries(Instant::from_millis(1000)).filter(|(_, e)| e.status.contains(Status::ASSURED)).count()
    };
    assert_eq!(assured(&ct), usize::from(CAP));
    let go = Barrier::new(2);
    let drops: Vec<(u64, u64)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2u32)
            .map(|w| {
                let mut ct = ct.worker();
                let go = &go;
                sc.spawn(move || {
                    go.wait();
                    let now = Instant::from_millis(1000);
                    let mut admitted = 0;
                    for i in 0..u32::from(CAP) * 5 {
                        let x = [10, 7 + w as u8, (i >> 8) as u8, i as u8];
                        let pkt =
                            if i % 2 == 0 { tcp(x, s, 40_000, 443, i, 0, SYN) } else { udp(x, s, 40_000, 53, b"x") };
                        let o = ct.track(&parse_ip(&pkt).expect("well formed"), &Template::default(), now);
                        admitted += u64::from(!o.table_full);
                        ct.confirm(&o, now);
                        // Established flows keep passing in the middle of it, both ways.
                        if i % 10 == 0 {
                            let sp = 10_000 + (i / 10) as u16 % CAP;
                            let (a, b) = (tcp(c, s, sp, 80, 1001, 5001, ACK), tcp(s, c, 80, sp, 5001, 1001, ACK));
                            for pkt in [a, b] {
                                let o = ct.track(&parse_ip(&pkt).expect("well formed"), &Template::default(), now);
                                assert_eq!(o.state, CtState::Established, "flow {sp}");
                                assert!(matches!(o.dir(), Some(Dir::Original | Dir::Reply)));
                            }
                        }
                    }
                    (admitted, ct.stats().drop)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    assert!(drops.iter().all(|&(admitted, _)| admitted == 0), "{drops:?}");
    assert_eq!(drops.iter().map(|d| d.1).sum::<u64>(), u64::from(CAP) * 10);
    assert_eq!(assured(&ct), usize::from(CAP));
}
