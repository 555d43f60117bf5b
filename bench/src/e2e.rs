//! `e2e` scenarios: three network namespaces joined by veth pairs,
//!
//! ```text
//! gen (eth0) ==veth== [in0  middle  out0] ==veth== sink (eth0)
//! ```
//!
//! and one of four paths through the middle: the no-op AF_XDP forwarder
//! (`bench noop-forward`), `ctwall run` with the example rules, a Linux
//! bridge with br_netfilter and nftables conntrack rules of the same meaning,
//! a plain Linux bridge. A generator thread in `gen` sends UDP frames on an
//! AF_PACKET socket over many flows (inside → outside, NEW flows the rules
//! accept); delivered frames are the sink's `eth0` receive counter. One-way
//! latency comes from a paced run: a receiver thread in `sink` reads the
//! send timestamp (this process's monotonic clock) out of each payload.

use crate::frames::{self, Ends, MAC_INSIDE};
use crate::progress;
use crate::sock::{enter_netns, PacketSocket};
use std::io::{BufRead, BufReader};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Destination MAC of generated frames: nobody's, so the sink drops them
/// as PACKET_OTHERHOST right away and a Linux bridge floods them to the
/// only other port.
const SINK_MAC: [u8; 6] = [2, 0xc7, 0xbe, 0, 0, 0xfe];
const MAGIC: &[u8; 4] = b"CTWB";
/// Offsets in a generated frame: magic, sequence number, send time.
const MAGIC_AT: usize = 42;
const SEQ_AT: usize = 46;
const TS_AT: usize = 54;
const STAMP_END: usize = 62;
/// Paced rate for the latency runs.
const LATENCY_PPS: u64 = 10_000;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathKind {
    Noop,
    Ctwall,
    LinuxCt,
    LinuxBridge,
}

impl PathKind {
    pub(crate) const ALL: [PathKind; 4] = [PathKind::Noop, PathKind::Ctwall, PathKind::LinuxCt, PathKind::LinuxBridge];

    pub(crate) fn label(self) -> &'static str {
        match self {
            PathKind::Noop => "no-op AF_XDP forwarder",
            PathKind::Ctwall => "ctwall run (example rules)",
            PathKind::LinuxCt => "Linux bridge + br_netfilter nft conntrack",
            PathKind::LinuxBridge => "Linux bridge",
        }
    }

    pub(crate) fn key(self) -> &'static str {
        match self {
            PathKind::Noop => "noop",
            PathKind::Ctwall => "ctwall",
            PathKind::LinuxCt => "linux_ct",
            PathKind::LinuxBridge => "linux_bridge",
        }
    }
}

/// What to run.
pub(crate) struct Plan {
    pub(crate) secs: f64,
    pub(crate) sweep_secs: f64,
    pub(crate) latency_secs: f64,
    pub(crate) flows: usize,
    /// Frame lengths (Ethernet header to payload end, no FCS).
    pub(crate) sizes: Vec<usize>,
    /// Flow counts for the throughput-against-flows sweep (64-byte frames).
    pub(crate) sweep: Vec<usize>,
    pub(crate) ctwall: PathBuf,
    pub(crate) rules: PathBuf,
}

#[derive(Clone, Debug)]
pub(crate) struct Latency {
    pub(crate) samples_us: Vec<f64>,
    pub(crate) sent: u64,
}

impl Latency {
    pub(crate) fn pct(&self, p: f64) -> f64 {
        if self.samples_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.samples_us.len() - 1) as f64 * p / 100.0).round() as usize;
        self.samples_us[i]
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub(crate) path: PathKind,
    pub(crate) frame_len: usize,
    pub(crate) flows: usize,
    pub(crate) offered_pps: f64,
    pub(crate) delivered_pps: f64,
    pub(crate) latency: Option<Latency>,
    /// Entries in the middle's conntrack table afterwards (Linux paths).
    pub(crate) kernel_ct_entries: Option<u64>,
}

impl Run {
    pub(crate) fn gbps(&self) -> f64 {
        self.delivered_pps * self.frame_len as f64 * 8.0 / 1e9
    }
}

// ---- cleanup on every exit path ---------------------------------------

static NAMESPACES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stop the children and delete the namespaces this process made (from
/// the signal handler thread; Drop guards do the same on normal exits).
pub(crate) fn cleanup_all() {
    for pid in lock(&PIDS).drain(..) {
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stderr(Stdio::null()).status();
    }
    for ns in lock(&NAMESPACES).drain(..) {
        let _ = Command::new("ip").args(["netns", "del", &ns]).stderr(Stdio::null()).status();
    }
}

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn in_ns(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// gen, middle and sink namespaces; deleted on drop.
struct Topo {
    gen: String,
    mid: String,
    sink: String,
}

impl Topo {
    fn new() -> Result<Topo, String> {
        let id = format!("{}n{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let t = Topo { gen: format!("ctwbg{id}"), mid: format!("ctwbm{id}"), sink: format!("ctwbs{id}") };
        for ns in [&t.gen, &t.mid, &t.sink] {
            sh(&["ip", "netns", "add", ns])?;
            lock(&NAMESPACES).push(ns.clone());
            in_ns(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        sh(&["ip", "-n", &t.mid, "link", "add", "in0", "type", "veth", "peer", "name", "eth0", "netns", &t.gen])?;
        sh(&["ip", "-n", &t.mid, "link", "add", "out0", "type", "veth", "peer", "name", "eth0", "netns", &t.sink])?;
        for (ns, ip) in [(&t.gen, "10.99.0.1/24"), (&t.sink, "10.99.0.2/24")] {
            sh(&["ip", "-n", ns, "addr", "add", ip, "dev", "eth0"])?;
            sh(&["ip", "-n", ns, "link", "set", "eth0", "up"])?;
            // veth TX checksum offload would leave partial checksums.
            in_ns(ns, &["ethtool", "-K", "eth0", "tx", "off"])?;
        }
        for dev in ["in0", "out0"] {
            sh(&["ip", "-n", &t.mid, "link", "set", dev, "up"])?;
        }
        Ok(t)
    }

    /// Receive packet counter of the sink's eth0.
    fn sink_rx(&self) -> Result<u64, String> {
        let out = sh(&["ip", "-n", &self.sink, "-s", "-j", "link", "show", "dev", "eth0"])?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| format!("ip -j: {e}"))?;
        v[0]["stats64"]["rx"]["packets"].as_u64().ok_or_else(|| format!("no rx counter in {out}"))
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        let mut reg = lock(&NAMESPACES);
        for ns in [&self.gen, &self.mid, &self.sink] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            reg.retain(|n| n != ns);
        }
    }
}

/// A process in the middle namespace that says "ready" on stderr.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(ns: &str, cmd: &[&str]) -> Result<Daemon, String> {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "env", "LIBXDP_SKIP_DISPATCHER=1", "RUST_LOG=info", "NO_COLOR=1"])
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| format!("{}: {e}", cmd[0]))?;
        lock(&PIDS).push(child.id());
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log2 = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("ready") {
                    let _ = tx.send(());
                }
                let mut l = lock(&log2);
                if l.len() < 200 {
                    l.push(line);
                }
            }
        });
        let mut d = Daemon { child, log };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                return Ok(d);
            }
            let exited = d.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                return Err(format!(
                    "{} did not get ready ({}):\n{}",
                    cmd.join(" "),
                    exited.map_or("timeout".to_owned(), |s| s.to_string()),
                    lock(&d.log).join("\n")
                ));
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stderr(Stdio::null()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        lock(&PIDS).retain(|p| *p != pid);
    }
}

const NFT_RULES: &str = r#"
table bridge ctwb_ports {
    # Which bridge port a frame came in on, for the inet chains below.
    chain pre {
        type filter hook prerouting priority -300; policy accept;
        iifname "in0" meta mark set 1
        iifname "out0" meta mark set 2
    }
}
table inet ctwb {
    ct helper ftp-std { type "ftp" protocol tcp; }
    ct helper tftp-std { type "tftp" protocol udp; }
    chain raw {
        type filter hook prerouting priority raw; policy accept;
        ip saddr 192.0.2.123 udp sport 123 notrack
    }
    chain helpers {
        type filter hook prerouting priority filter; policy accept;
        tcp dport 21 ct helper set "ftp-std"
        udp dport 69 ct helper set "tftp-std"
    }
    chain filter_fwd {
        type filter hook forward priority filter; policy drop;
        meta mark 1 ct state invalid drop
        meta mark 1 ct state new tcp flags & (fin | syn | rst | ack) != syn drop
        meta mark 1 ct state { new, established, related } accept
        meta mark 1 ct state untracked accept
        meta mark 2 ct state invalid drop
        meta mark 2 ct state { established, related } accept
        meta mark 2 ct state untracked udp sport 123 accept
        meta mark 2 tcp dport 113 reject with tcp reset
    }
}
"#;

/// Set up the middle for one path; a process there is stopped when the
/// returned guard drops (kernel paths go with the namespace).
fn start_middle(t: &Topo, path: PathKind, plan: &Plan) -> Result<Option<Daemon>, String> {
    let bridge = || -> Result<(), String> {
        sh(&["ip", "-n", &t.mid, "link", "add", "br0", "type", "bridge"])?;
        sh(&["ip", "-n", &t.mid, "link", "set", "in0", "master", "br0"])?;
        sh(&["ip", "-n", &t.mid, "link", "set", "out0", "master", "br0"])?;
        sh(&["ip", "-n", &t.mid, "link", "set", "br0", "up"])?;
        Ok(())
    };
    match path {
        PathKind::Noop => {
            let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
            let me = me.to_string_lossy();
            let secs = format!("{}", (plan.secs * 4.0 + plan.latency_secs * 2.0 + 60.0) as u64);
            Ok(Some(Daemon::start(
                &t.mid,
                &[&me, "noop-forward", "--inside", "in0", "--outside", "out0", "--seconds", &secs],
            )?))
        }
        PathKind::Ctwall => {
            let bin = plan.ctwall.to_string_lossy();
            let rules = plan.rules.to_string_lossy();
            Ok(Some(Daemon::start(&t.mid, &[&bin, "run", "--config", &rules, "--inside", "in0", "--outside", "out0"])?))
        }
        PathKind::LinuxCt => {
            bridge()?;
            in_ns(
                &t.mid,
                &["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"],
            )?;
            let mut c = Command::new("ip")
                .args(["netns", "exec", &t.mid, "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("nft: {e}"))?;
            if let Some(mut stdin) = c.stdin.take() {
                std::io::Write::write_all(&mut stdin, NFT_RULES.as_bytes()).map_err(|e| format!("nft: {e}"))?;
            }
            let out = c.wait_with_output().map_err(|e| format!("nft: {e}"))?;
            if !out.status.success() {
                return Err(format!("nft -f: {}", String::from_utf8_lossy(&out.stderr)));
            }
            Ok(None)
        }
        PathKind::LinuxBridge => {
            bridge()?;
            Ok(None)
        }
    }
}

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// One template frame per flow: UDP from the generator's side (inside) to
/// the sink's side, ports varying with the flow.
fn templates(frame_len: usize, flows: usize) -> Vec<Vec<u8>> {
    (0..flows)
        .map(|i| {
            let e = Ends {
                src: [10, 99, 0, 1],
                dst: [10, 99, 0, 2 + (i / 50_000) as u8],
                sport: 1024 + (i % 50_000) as u16,
                dport: 9000,
            };
            let mut b = vec![0u8; frame_len.max(64)];
            b[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(MAGIC);
            let len = frames::udp(&mut b, e, frame_len - 42);
            b.truncate(len);
            b[0..6].copy_from_slice(&SINK_MAC);
            b[6..12].copy_from_slice(&MAC_INSIDE);
            b
        })
        .collect()
}

/// Write sequence number and send time into a template, updating the UDP
/// checksum incrementally (RFC 1624).
fn stamp(f: &mut [u8], seq: u64, ts: u64) {
    let mut new = [0u8; 16];
    new[..8].copy_from_slice(&seq.to_be_bytes());
    new[8..].copy_from_slice(&ts.to_be_bytes());
    let old = &f[SEQ_AT..STAMP_END];
    let mut s = u32::from(!u16::from_be_bytes([f[40], f[41]]));
    for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
        s += u32::from(!u16::from_be_bytes([o[0], o[1]])) + u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    let c = match !(s as u16) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f[SEQ_AT..STAMP_END].copy_from_slice(&new);
}

/// Send for `secs`: as fast as possible (`pps == None`) or paced. Returns
/// (frames sent, seconds).
fn generate(ns: &str, frame_len: usize, flows: usize, secs: f64, pps: Option<u64>) -> Result<(u64, f64), String> {
    let ns = ns.to_owned();
    thread::spawn(move || -> Result<(u64, f64), String> {
        enter_netns(&ns).map_err(|e| format!("setns {ns}: {e}"))?;
        let sock = PacketSocket::open("eth0", false).map_err(|e| format!("AF_PACKET tx: {e}"))?;
        let mut tpl = templates(frame_len, flows);
        let limit = Duration::from_secs_f64(secs);
        let t0 = Instant::now();
        let mut seq = 0u64;
        let mut cursor = 0usize;
        let batch = if pps.is_some() { 1 } else { 32 };
        loop {
            let elapsed = t0.elapsed();
            if elapsed >= limit {
                return Ok((seq, elapsed.as_secs_f64()));
            }
            if let Some(r) = pps {
                let due = Duration::from_nanos(seq * 1_000_000_000 / r);
                if due > elapsed {
                    // Sleep, never spin: the CPUs belong to the path under test.
                    thread::sleep(due - elapsed);
                    continue;
                }
            }
            let ts = now_ns();
            let start = cursor;
            for k in 0..batch {
                let i = (start + k) % flows;
                stamp(&mut tpl[i], seq + k as u64, ts);
            }
            let refs: Vec<&[u8]> = (0..batch).map(|k| tpl[(start + k) % flows].as_slice()).collect();
            let sent = sock.send_batch(&refs).map_err(|e| format!("sendmmsg: {e}"))?;
            seq += sent as u64;
            cursor = (cursor + sent) % flows;
            if sent == 0 {
                thread::yield_now();
            }
        }
    })
    .join()
    .map_err(|_| "generator panicked".to_owned())?
}

/// Receive in the sink until `done` is set, polling without sleeping (a
/// blocked receiver's wake-up would dominate the figures); returns one-way
/// latencies (µs).
fn receive(ns: &str, ready: mpsc::Sender<Result<(), String>>, done: Arc<AtomicBool>) -> thread::JoinHandle<Vec<f64>> {
    let ns = ns.to_owned();
    thread::spawn(move || {
        let sock = match enter_netns(&ns).and_then(|()| PacketSocket::open("eth0", true)) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready.send(Err(format!("receiver in {ns}: {e}")));
                return Vec::new();
            }
        };
        let _ = ready.send(Ok(()));
        let mut bufs = vec![[0u8; 2048]; 64];
        let mut lens = Vec::with_capacity(64);
        let mut lat = Vec::new();
        while !done.load(Ordering::Relaxed) {
            if sock.recv_batch(&mut bufs, &mut lens).is_err() {
                break;
            }
            let now = now_ns();
            for (b, &l) in bufs.iter().zip(&lens) {
                if l >= STAMP_END && &b[MAGIC_AT..MAGIC_AT + 4] == MAGIC {
                    let ts = u64::from_be_bytes(b[TS_AT..STAMP_END].try_into().unwrap_or_default());
                    lat.push(now.saturating_sub(ts) as f64 / 1e3);
                }
            }
        }
        lat
    })
}

/// Throughput at full offered load.
fn throughput(t: &Topo, frame_len: usize, flows: usize, secs: f64) -> Result<(f64, f64), String> {
    let before = t.sink_rx()?;
    let (sent, elapsed) = generate(&t.gen, frame_len, flows, secs, None)?;
    // Frames still in flight in the middle.
    thread::sleep(Duration::from_millis(300));
    let delivered = t.sink_rx()? - before;
    Ok((sent as f64 / elapsed, delivered.min(sent) as f64 / elapsed))
}

fn latency(t: &Topo, frame_len: usize, flows: usize, secs: f64) -> Result<Latency, String> {
    let done = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let h = receive(&t.sink, tx, Arc::clone(&done));
    rx.recv().map_err(|_| "receiver died".to_owned())??;
    let sent = generate(&t.gen, frame_len, flows, secs, Some(LATENCY_PPS));
    thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    let mut samples_us = h.join().map_err(|_| "receiver panicked".to_owned())?;
    let (sent, _) = sent?;
    samples_us.sort_by(f64::total_cmp);
    Ok(Latency { samples_us, sent })
}

fn kernel_ct_count(t: &Topo) -> Option<u64> {
    in_ns(&t.mid, &["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).ok().and_then(|s| s.trim().parse().ok())
}

/// Why e2e cannot run here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !crate::sock::is_root() {
        return Some("needs root (network namespaces, AF_XDP, AF_PACKET)".into());
    }
    for tool in ["ip", "ethtool", "nft", "sysctl"] {
        let ok = Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !ok {
            return Some(format!("`{tool}` is missing (scripts/setup.sh installs it)"));
        }
    }
    None
}

/// Run every path at every size, then the flows sweep.
pub(crate) fn run_all(plan: &Plan) -> Result<Vec<Run>, String> {
    let mut runs = Vec::new();
    let per_path = plan.sizes.len() as u64 + plan.sweep.len() as u64;
    let pb = progress(per_path * PathKind::ALL.len() as u64, "e2e");
    for path in PathKind::ALL {
        let t = Topo::new()?;
        let _mid = start_middle(&t, path, plan)?;
        // Let the paths settle (XDP attach, bridge port forwarding state).
        let warm = generate(&t.gen, 64, plan.flows, 0.3, Some(LATENCY_PPS))?;
        if warm.0 == 0 {
            return Err(format!("{}: the generator sent nothing", path.label()));
        }
        for &size in &plan.sizes {
            pb.set_message(format!("{} {size} B", path.key()));
            let (offered, delivered) = throughput(&t, size, plan.flows, plan.secs)?;
            let lat = latency(&t, size, plan.flows, plan.latency_secs)?;
            runs.push(Run {
                path,
                frame_len: size,
                flows: plan.flows,
                offered_pps: offered,
                delivered_pps: delivered,
                latency: Some(lat),
                kernel_ct_entries: None,
            });
            pb.inc(1);
        }
        if path == PathKind::LinuxCt {
            let n = kernel_ct_count(&t);
            if n.unwrap_or(0) == 0 {
                return Err("Linux conntrack path: no entries in the middle's conntrack table".into());
            }
            for r in runs.iter_mut().filter(|r| r.path == path) {
                r.kernel_ct_entries = n;
            }
        }
        for &flows in &plan.sweep {
            if path == PathKind::LinuxBridge {
                pb.inc(1);
                continue;
            }
            pb.set_message(format!("{} {flows} flows", path.key()));
            let (offered, delivered) = throughput(&t, 64, flows, plan.sweep_secs)?;
            runs.push(Run {
                path,
                frame_len: 64,
                flows,
                offered_pps: offered,
                delivered_pps: delivered,
                latency: None,
                kernel_ct_entries: None,
            });
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(runs)
}

/// The ctwall binary: `--ctwall`, or built next to this binary with cargo.
pub(crate) fn ctwall_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = me.parent().ok_or("no directory")?;
    let bin = dir.join("ctwall");
    // Under `cargo run`, bring the binary up to date in the same profile.
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut c = Command::new(cargo);
        c.args(["build", "-q", "-p", "appliance", "--bin", "ctwall"]);
        if !cfg!(debug_assertions) {
            c.arg("--release");
        }
        let st = c.status().map_err(|e| format!("cargo build ctwall: {e}"))?;
        if !st.success() {
            return Err(format!("cargo build -p appliance --bin ctwall: {st}"));
        }
    }
    if !FsPath::new(&bin).exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bins` or pass --ctwall",
            bin.display()
        ));
    }
    Ok(bin)
}
