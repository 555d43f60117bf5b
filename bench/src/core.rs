//! `core` scenarios: the pipeline with the example rules, in memory, frames
//! built in advance, one thread per worker, the clock advanced by hand.

use crate::frames::{self, Ends, FrameStore, ACK, FIN, PSH, SYN};
use crate::progress;
use appliance::bridge::GC_BUDGET;
use appliance::pipeline::{Pipeline, Verdict};
use appliance::rules::Ruleset;
use appliance::settings;
use config::Config;
use ct_core::table::Conntrack;
use ct_core::{CtState, Instant};
use rings::PortId;
use std::sync::Barrier;
use std::time::Instant as Clock;

/// Frames between two expiry sweeps, as the run loop does once per batch.
const BATCH: usize = 64;
/// Simulated time between two frames.
const TICK_NS: u64 = 200;
/// Connections open at once in the new-flow scenarios.
const WINDOW: usize = 256;

/// A pipeline and its rules, built from one configuration.
pub(crate) struct Worker {
    pipe: Pipeline,
    rules: Ruleset,
    now: u64,
}

impl Worker {
    pub(crate) fn new(cfg: &Config, max_entries: u32) -> Result<Worker, String> {
        let mut ct = settings::ct_config(cfg);
        ct.max_entries = max_entries;
        // The scenarios are IPv4; a small IPv6 pool.
        ct.max_entries_v6 = 1024;
        let helpers = settings::helper_registry(cfg).map_err(|e| format!("helpers: {e}"))?;
        Ok(Worker {
            pipe: Pipeline::new(Conntrack::new(ct), helpers),
            rules: Ruleset::compile(cfg),
            now: 1_000_000_000,
        })
    }

    /// Another worker on the same connection table.
    fn worker(&self, cfg: &Config) -> Worker {
        Worker { pipe: self.pipe.worker(), rules: Ruleset::compile(cfg), now: self.now }
    }

    fn one(&mut self, frame: &[u8], inside: bool) -> (Verdict, CtState) {
        self.now += TICK_NS;
        let port = if inside { PortId::Inside } else { PortId::Outside };
        let d = self.pipe.process(frame, port, Instant::from_nanos(self.now), &self.rules);
        (d.verdict, d.outcome.state)
    }

    /// Run every frame of `store` `rounds` times; returns (accepted, seconds).
    fn run(&mut self, store: &FrameStore, rounds: usize) -> Result<(u64, f64), String> {
        let t = Clock::now();
        let mut accepted = 0u64;
        for _ in 0..rounds {
            for chunk_start in (0..store.len()).step_by(BATCH) {
                for i in chunk_start..(chunk_start + BATCH).min(store.len()) {
                    let (f, inside) = store.get(i);
                    accepted += u64::from(self.one(f, inside).0 == Verdict::Accept);
                }
                self.pipe.housekeeping(Instant::from_nanos(self.now), GC_BUDGET);
            }
        }
        Ok((accepted, t.elapsed().as_secs_f64()))
    }

    fn entries(&self) -> usize {
        self.pipe.conntrack().count()
    }
}

/// Endpoints of flow `i` (unique for `i < 2^24`): clients 10.x.y.z inside,
/// servers 172.16.a.b outside.
fn ends(i: u32, dport: u16) -> Ends {
    Ends {
        src: [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
        dst: [172, 16, (i % 250) as u8, 1 + (i % 7) as u8],
        sport: 1024 + (i % 60_000) as u16,
        dport,
    }
}

const CISN: u32 = 1_000;
const SISN: u32 = 900_000;

/// Established TCP throughput at `n` flows.
#[derive(Clone, Debug)]
pub(crate) struct Established {
    pub(crate) flows: usize,
    pub(crate) packets: u64,
    pub(crate) mpps: f64,
    pub(crate) ns_per_packet: f64,
    pub(crate) setup_s: f64,
}

/// Bring flows `first..first+n` to ESTABLISHED (handshake through the
/// pipeline), then build one ACK per flow in a scattered order, client and
/// server alternating.
fn established_setup(w: &mut Worker, first: u32, n: usize, what: &str) -> Result<FrameStore, String> {
    let pb = progress(n as u64, &format!("{what}: handshakes"));
    let mut buf = [0u8; 128];
    for i in first..first + n as u32 {
        let e = ends(i, 443);
        let len = frames::tcp(&mut buf, e, CISN, 0, SYN, 0, None);
        w.one(&buf[..len], true);
        let len = frames::tcp(&mut buf, e.reversed(), SISN, CISN + 1, SYN | ACK, 0, None);
        w.one(&buf[..len], false);
        let len = frames::tcp(&mut buf, e, CISN + 1, SISN + 1, ACK, 0, None);
        let (v, st) = w.one(&buf[..len], true);
        if v != Verdict::Accept || st != CtState::Established {
            return Err(format!("{what}: flow {i} not established ({v:?}, {st:?})"));
        }
        if i % 65_536 == 0 {
            pb.set_position(u64::from(i - first));
        }
    }
    pb.finish_and_clear();
    let mut store = FrameStore::with_capacity(64, n);
    // A multiplier coprime to n scatters the flows over the table.
    let step = (2_654_435_761u64 % n as u64).max(1);
    let step = (step..).find(|s| gcd(*s, n as u64) == 1).unwrap_or(1);
    for j in 0..n as u64 {
        let i = first + ((j * step) % n as u64) as u32;
        let e = ends(i, 443);
        if i.is_multiple_of(2) {
            store.push(true, |b| frames::tcp(b, e, CISN + 1, SISN + 1, ACK, 0, None));
        } else {
            store.push(false, |b| frames::tcp(b, e.reversed(), SISN + 1, CISN + 1, ACK, 0, None));
        }
    }
    Ok(store)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Rounds over the flows so that at least `min_packets` are timed.
fn rounds_for(n: usize, min_packets: u64) -> usize {
    (min_packets.div_ceil(n as u64) as usize).max(1)
}

pub(crate) fn established(cfg: &Config, n: usize, min_packets: u64) -> Result<Established, String> {
    let t = Clock::now();
    let mut w = Worker::new(cfg, u32::try_from(n).unwrap_or(u32::MAX))?;
    let store = established_setup(&mut w, 0, n, &format!("established {n}"))?;
    if w.entries() != n {
        return Err(format!("established {n}: {} entries in the table", w.entries()));
    }
    let setup_s = t.elapsed().as_secs_f64();
    let rounds = rounds_for(n, min_packets);
    let (accepted, secs) = w.run(&store, rounds)?;
    let packets = (store.len() * rounds) as u64;
    if accepted != packets {
        return Err(format!("established {n}: {} of {packets} frames not accepted", packets - accepted));
    }
    Ok(Established {
        flows: n,
        packets,
        mpps: packets as f64 / secs / 1e6,
        ns_per_packet: secs * 1e9 / packets as f64,
        setup_s,
    })
}

/// Two workers on two threads sharing one connection table, each driving
/// half of the flows (as two AF_XDP queues would with flow-hashing RSS).
/// Returns the aggregate Mpps.
pub(crate) fn shared_two(cfg: &Config, n: usize, min_packets: u64) -> Result<f64, String> {
    let half = n / 2;
    let rounds = rounds_for(n, min_packets);
    let mut w0 = Worker::new(cfg, u32::try_from(n).unwrap_or(u32::MAX))?;
    let mut w1 = w0.worker(cfg);
    let s0 = established_setup(&mut w0, 0, half, "worker 0")?;
    let s1 = established_setup(&mut w1, half as u32, half, "worker 1")?;
    if w0.entries() != 2 * half {
        return Err(format!("two workers: {} entries for {} flows", w0.entries(), 2 * half));
    }
    let start = Barrier::new(2);
    let results: Vec<Result<(u64, f64), String>> = std::thread::scope(|s| {
        let hs: Vec<_> = [(w0, &s0), (w1, &s1)]
            .into_iter()
            .map(|(mut w, store)| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let (acc, secs) = w.run(store, rounds)?;
                    Ok(((store.len() * rounds) as u64 - acc, secs))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into()))).collect()
    });
    let mut wall = 0f64;
    for r in results {
        let (rejected, secs) = r?;
        if rejected != 0 {
            return Err(format!("two workers: {rejected} frames not accepted"));
        }
        wall = wall.max(secs);
    }
    Ok((2 * half * rounds) as f64 / wall / 1e6)
}

/// New connections: full TCP connections and UDP request/reply flows.
#[derive(Clone, Debug)]
pub(crate) struct NewFlows {
    pub(crate) tcp_conns: usize,
    pub(crate) tcp_conns_per_s: f64,
    pub(crate) tcp_mpps: f64,
    pub(crate) udp_flows: usize,
    pub(crate) udp_flows_per_s: f64,
}

pub(crate) fn new_flows(cfg: &Config, n: usize) -> Result<NewFlows, String> {
    // TCP: SYN, SYN/ACK, ACK, FIN/ACK both ways, last ACK; WINDOW at a time.
    let mut store = FrameStore::with_capacity(64, n * 6);
    for g in (0..n).step_by(WINDOW) {
        let ids = g as u32..(g + WINDOW).min(n) as u32;
        for step in 0..6 {
            for i in ids.clone() {
                let e = ends(i, 80);
                let r = e.reversed();
                let (c, s) = (CISN + 1, SISN + 1);
                match step {
                    0 => store.push(true, |b| frames::tcp(b, e, CISN, 0, SYN, 0, None)),
                    1 => store.push(false, |b| frames::tcp(b, r, SISN, c, SYN | ACK, 0, None)),
                    2 => store.push(true, |b| frames::tcp(b, e, c, s, ACK, 0, None)),
                    3 => store.push(true, |b| frames::tcp(b, e, c, s, FIN | ACK, 0, None)),
                    4 => store.push(false, |b| frames::tcp(b, r, s, c + 1, FIN | ACK, 0, None)),
                    _ => store.push(true, |b| frames::tcp(b, e, c + 1, s + 1, ACK, 0, None)),
                }
            }
        }
    }
    let cap = u32::try_from(n * 2).unwrap_or(u32::MAX);
    let mut w = Worker::new(cfg, cap)?;
    let (acc, secs) = w.run(&store, 1)?;
    if acc != store.len() as u64 {
        return Err(format!(
            "new TCP connections: {} of {} frames not accepted",
            store.len() as u64 - acc,
            store.len()
        ));
    }
    let tcp_conns_per_s = n as f64 / secs;
    let tcp_mpps = store.len() as f64 / secs / 1e6;
    drop(store);

    let mut store = FrameStore::with_capacity(192, n * 2);
    for g in (0..n).step_by(WINDOW) {
        let ids = g as u32..(g + WINDOW).min(n) as u32;
        for i in ids.clone() {
            store.push(true, |b| frames::udp(b, ends(i, 53), 40));
        }
        for i in ids {
            store.push(false, |b| frames::udp(b, ends(i, 53).reversed(), 90));
        }
    }
    let mut w = Worker::new(cfg, cap)?;
    let (acc, secs) = w.run(&store, 1)?;
    if acc != store.len() as u64 {
        return Err(format!("new UDP flows: {} of {} frames not accepted", store.len() as u64 - acc, store.len()));
    }
    Ok(NewFlows { tcp_conns: n, tcp_conns_per_s, tcp_mpps, udp_flows: n, udp_flows_per_s: n as f64 / secs })
}

/// The mixed profile.
#[derive(Clone, Debug)]
pub(crate) struct Mixed {
    pub(crate) frames: u64,
    pub(crate) mpps: f64,
    pub(crate) gbps: f64,
    pub(crate) avg_frame: f64,
    pub(crate) related: u64,
    pub(crate) ftp_sessions: u64,
    pub(crate) accepted_pct: f64,
}

/// Frame sizes of the simple IMIX (7:4:1 of 64, 594 and 1518 bytes on the
/// wire), as TCP payload lengths.
fn imix_payload(r: u64) -> usize {
    match r % 12 {
        0..=6 => 10,
        7..=10 => 540,
        _ => 1464,
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

type Session = Vec<(bool, Vec<u8>)>;

fn build(f: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut b = vec![0u8; 1536];
    let n = f(&mut b);
    b.truncate(n);
    b
}

/// A TCP session: handshake, `lines` exchanges (client sends `req[k]`,
/// server answers `resp[k]`, client ACKs), close. Frames appended to `out`.
fn tcp_session(out: &mut Session, e: Ends, exchanges: &[(Vec<u8>, Vec<u8>)]) {
    let r = e.reversed();
    let (mut c, mut s) = (CISN, SISN);
    out.push((true, build(|b| frames::tcp(b, e, c, 0, SYN, 0, None))));
    out.push((false, build(|b| frames::tcp(b, r, s, c + 1, SYN | ACK, 0, None))));
    c += 1;
    s += 1;
    out.push((true, build(|b| frames::tcp(b, e, c, s, ACK, 0, None))));
    for (req, resp) in exchanges {
        out.push((true, build(|b| frames::tcp(b, e, c, s, PSH | ACK, req.len(), Some(req)))));
        c += req.len() as u32;
        out.push((false, build(|b| frames::tcp(b, r, s, c, PSH | ACK, resp.len(), Some(resp)))));
        s += resp.len() as u32;
        out.push((true, build(|b| frames::tcp(b, e, c, s, ACK, 0, None))));
    }
    out.push((true, build(|b| frames::tcp(b, e, c, s, FIN | ACK, 0, None))));
    out.push((false, build(|b| frames::tcp(b, r, s, c + 1, FIN | ACK, 0, None))));
    out.push((true, build(|b| frames::tcp(b, e, c + 1, s + 1, ACK, 0, None))));
}

/// Session `k` of the mixed profile.
fn session(k: u32, rng: &mut Rng) -> Session {
    let mut out = Vec::new();
    match k % 20 {
        0 => {
            // FTP, active mode: USER, PORT, then the server's data connection
            // from port 20 (RELATED), then the control connection closes.
            let e = ends(k, 21);
            let [a, b, c, d] = e.src;
            let dport = 30_000 + (k % 20_000) as u16;
            let port = format!("PORT {a},{b},{c},{d},{},{}\r\n", dport >> 8, dport & 0xff);
            let lines = [
                (b"USER anonymous\r\n".to_vec(), b"331 Password required\r\n".to_vec()),
                (port.into_bytes(), b"200 PORT command successful\r\n".to_vec()),
            ];
            let mut ctl = Vec::new();
            tcp_session(&mut ctl, e, &lines);
            let close = ctl.split_off(ctl.len() - 3);
            out.extend(ctl);
            // The data connection is opened by the server: its "client" side is outside.
            let data = Ends { src: e.dst, dst: e.src, sport: 20, dport };
            let mut dc = Vec::new();
            let blob = vec![0x5a; 1460];
            tcp_session(&mut dc, data, &[(blob, Vec::new())]);
            // tcp_session marks its first side as inside; flip for the data connection.
            out.extend(dc.into_iter().map(|(inside, f)| (!inside, f)));
            out.extend(close);
        }
        1 | 2 => {
            let e = ends(k, 53);
            for _ in 0..3 {
                out.push((true, build(|b| frames::udp(b, e, 40))));
                out.push((false, build(|b| frames::udp(b, e.reversed(), 10 + (rng.next() % 500) as usize))));
            }
        }
        3 => {
            let e = ends(k, 0);
            for q in 0..3 {
                out.push((true, build(|b| frames::ping(b, e.src, e.dst, 8, k as u16, q))));
                out.push((false, build(|b| frames::ping(b, e.dst, e.src, 0, k as u16, q))));
            }
        }
        _ => {
            let ex: Vec<_> =
                (0..4).map(|_| (vec![b'G'; imix_payload(rng.next())], vec![b'h'; imix_payload(rng.next())])).collect();
            tcp_session(&mut out, ends(k, 80), &ex);
        }
    }
    out.reverse();
    out
}

pub(crate) struct Fragmented {
    pub(crate) frames: u64,
    pub(crate) datagrams: u64,
    pub(crate) mpps: f64,
    pub(crate) datagrams_per_s: f64,
    pub(crate) gbps: f64,
    pub(crate) accepted_pct: f64,
}

/// The IPv4 fragments (1480 data bytes each, last one shorter) of a UDP
/// datagram of `payload` bytes for `e`, as frames.
fn udp_fragments(e: Ends, id: u16, payload: usize) -> Vec<Vec<u8>> {
    let mut l4 = Vec::with_capacity(8 + payload);
    l4.extend_from_slice(&e.sport.to_be_bytes());
    l4.extend_from_slice(&e.dport.to_be_bytes());
    l4.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    l4.extend_from_slice(&[0, 0]);
    l4.resize(8 + payload, 0x5a);
    let n = l4.len().div_ceil(1480);
    l4.chunks(1480)
        .enumerate()
        .map(|(i, data)| {
            let fo = (i * 1480 / 8) as u16 | if i + 1 < n { 0x2000 } else { 0 };
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0];
            f.extend_from_slice(&((20 + data.len()) as u16).to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
            f.extend_from_slice(&fo.to_be_bytes());
            f.extend_from_slice(&[64, 17, 0, 0]);
            f.extend_from_slice(&e.src);
            f.extend_from_slice(&e.dst);
            let c = ct_core::wire::checksum::checksum(&f[14..34], 0);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(data);
            f
        })
        .collect()
}

/// Fragmented UDP: `n` request/answer exchanges of 4000-byte requests
/// from inside (3 fragments) and 3000-byte answers (3 fragments), over
/// 1000 flows, interleaved by 64 exchanges; reassembly, tracking and the
/// example rules, the original fragments handed back for sending.
pub(crate) fn fragmented(cfg: &Config, n: usize) -> Result<Fragmented, String> {
    let mut store = FrameStore::with_capacity(1536, n * 6);
    let mut datagrams = 0u64;
    for k in 0..n {
        let e = ends((k % 1000) as u32, 53);
        let id = k as u16;
        for f in udp_fragments(e, id, 4000).into_iter().chain(udp_fragments(e.reversed(), id, 3000)) {
            let inside = f[26..30] == e.src;
            store.push(inside, |b| {
                b[..f.len()].copy_from_slice(&f);
                f.len()
            });
        }
        datagrams += 2;
    }
    let mut w = Worker::new(cfg, 1 << 16)?;
    let t = Clock::now();
    let mut accepted = 0u64;
    let mut sent = 0usize;
    for start in (0..store.len()).step_by(BATCH) {
        for i in start..(start + BATCH).min(store.len()) {
            let (f, inside) = store.get(i);
            accepted += u64::from(w.one(f, inside).0 == Verdict::Accept);
        }
        sent += w
            .pipe
            .drain_emit(|_, f| {
                std::hint::black_box(f);
                Ok::<(), std::convert::Infallible>(())
            })
            .unwrap_or_else(|e| match e {});
        w.pipe.housekeeping(Instant::from_nanos(w.now), GC_BUDGET);
    }
    let secs = t.elapsed().as_secs_f64();
    let frames = store.len() as u64;
    if sent as u64 != frames {
        return Err(format!("fragmented: {sent} of {frames} fragments handed back for sending"));
    }
    Ok(Fragmented {
        frames,
        datagrams,
        mpps: frames as f64 / secs / 1e6,
        datagrams_per_s: datagrams as f64 / secs,
        gbps: store.wire_bytes() as f64 * 8.0 / secs / 1e9,
        accepted_pct: accepted as f64 * 100.0 / datagrams as f64,
    })
}

pub(crate) fn mixed(cfg: &Config, n_frames: usize) -> Result<Mixed, String> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut open: Vec<Session> = Vec::new();
    let mut store = FrameStore::with_capacity(1536, n_frames);
    let mut k = 0u32;
    let mut ftp_sessions = 0u64;
    while store.len() < n_frames {
        while open.len() < WINDOW {
            k += 1;
            ftp_sessions += u64::from(k.is_multiple_of(20));
            open.push(session(k, &mut rng));
        }
        let at = (rng.next() % open.len() as u64) as usize;
        if let Some((inside, f)) = open[at].pop() {
            store.push(inside, |b| {
                b[..f.len()].copy_from_slice(&f);
                f.len()
            });
        }
        if open[at].is_empty() {
            open.swap_remove(at);
        }
    }
    let mut w = Worker::new(cfg, 4_000_000)?;
    let t = Clock::now();
    let mut accepted = 0u64;
    let mut related = 0u64;
    for start in (0..store.len()).step_by(BATCH) {
        for i in start..(start + BATCH).min(store.len()) {
            let (f, inside) = store.get(i);
            let (v, st) = w.one(f, inside);
            accepted += u64::from(v == Verdict::Accept);
            related += u64::from(st == CtState::Related);
        }
        w.pipe.housekeeping(Instant::from_nanos(w.now), GC_BUDGET);
    }
    let secs = t.elapsed().as_secs_f64();
    let frames = store.len() as u64;
    let bytes = store.wire_bytes();
    Ok(Mixed {
        frames,
        mpps: frames as f64 / secs / 1e6,
        gbps: bytes as f64 * 8.0 / secs / 1e9,
        avg_frame: bytes as f64 / frames as f64,
        related,
        ftp_sessions,
        accepted_pct: accepted as f64 * 100.0 / frames as f64,
    })
}
