//! `XdpIo` as a no-op bridge between two network namespaces:
//!
//! ```text
//! host A (eth0 10.77.x.1) ==veth== [in0  fwd  out0] ==veth== host B (eth0 10.77.x.2)
//! ```
//!
//! The forwarder runs in a thread that entered the `fwd` namespace with
//! `setns`; it sends every frame out of the other port. Checks: ping A→B
//! (ARP crosses), a 4 MB TCP transfer arrives intact, and no XDP program is
//! left on the forwarder's interfaces afterwards.
//!
//! Needs root, `ip`, `ethtool` and `python3`. Without them the test prints
//! `SKIPPED (needs root)` and passes, unless `CTWALL_REQUIRE_ROOT=1`.
//! `CTWALL_XDP_BENCH=1` adds an iperf3 TCP run and prints the rate.
#![cfg(feature = "af-xdp")]

use rings::xdp::{XdpConfig, XdpIo, XdpMode, XdpStats};
use rings::{Action, PacketIo};
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn skip_unless_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = ["ip", "ethtool", "python3"]
        .iter()
        .all(|t| Command::new(t).arg("-V").output().is_ok() || Command::new(t).arg("--version").output().is_ok());
    if root && tools {
        return false;
    }
    if std::env::var("CTWALL_REQUIRE_ROOT").as_deref() == Ok("1") {
        panic!("CTWALL_REQUIRE_ROOT=1 but not root or ip/ethtool/python3 missing");
    }
    // Written to the real stderr, not the captured one, so it shows.
    let _ = writeln!(std::io::stderr(), "xdp_forward: SKIPPED (needs root, ip, ethtool, python3)");
    true
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ns_run(ns: &str, args: &[&str]) -> Output {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run(&v)
}

/// Three namespaces and two veth pairs; deleted on drop (also on panic).
struct Topo {
    a: String,
    fwd: String,
    b: String,
    net: String,
}

impl Topo {
    fn new() -> Topo {
        Topo::with_queues(1)
    }

    /// Every veth with `queues` RX and TX queues.
    fn with_queues(queues: u32) -> Topo {
        let id = format!("{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let n = NEXT.load(Ordering::Relaxed) % 200 + 20;
        let t = Topo {
            a: format!("ctwxa{id}"),
            fwd: format!("ctwxf{id}"),
            b: format!("ctwxb{id}"),
            net: format!("10.77.{n}"),
        };
        for ns in [&t.a, &t.fwd, &t.b] {
            run(&["ip", "netns", "add", ns]);
        }
        for ns in [&t.a, &t.b] {
            ns_run(ns, &["ip", "link", "set", "lo", "up"]);
        }
        t.link(1, queues);
        t.link(2, queues);
        t
    }

    /// The veth pair from host `host` (1: A, 2: B) to the forwarder (`in0`,
    /// `out0`), addressed and up.
    fn link(&self, host: u8, queues: u32) {
        let (ns, end) = if host == 1 { (&self.a, "in0") } else { (&self.b, "out0") };
        let q = queues.to_string();
        let qs = ["numrxqueues", &q, "numtxqueues", &q];
        let mut args = vec!["ip", "link", "add", "eth0", "netns", ns];
        args.extend_from_slice(&qs);
        args.extend_from_slice(&["type", "veth", "peer", "name", end, "netns", &self.fwd]);
        args.extend_from_slice(&qs);
        run(&args);
        ns_run(ns, &["ip", "addr", "add", &format!("{}.{host}/24", self.net), "dev", "eth0"]);
        ns_run(ns, &["ip", "link", "set", "eth0", "up"]);
        // veth offloads leave partial checksums on frames an AF_XDP
        // socket sees; real NICs never deliver those.
        ns_run(ns, &["ethtool", "-K", "eth0", "tx", "off"]);
        ns_run(&self.fwd, &["ip", "link", "set", end, "up"]);
    }

    /// Make host `ns` send everything on TX queue `queue` of its eth0 (XPS: every CPU maps to
    /// that queue), so it arrives on RX queue `queue` of the forwarder's port.
    fn steer(&self, ns: &str, queue: u32, queues: u32) {
        let all = all_cpus_mask();
        for q in 0..queues {
            let mask = if q == queue { all.as_str() } else { "0" };
            let file = format!("/sys/class/net/eth0/queues/tx-{q}/xps_cpus");
            ns_run(ns, &["sh", "-c", &format!("echo {mask} > {file}")]);
        }
    }

    fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.net)
    }

    fn fwd_links(&self) -> String {
        String::from_utf8_lossy(&ns_run(&self.fwd, &["ip", "-d", "link", "show"]).stdout).into_owned()
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in [&self.a, &self.fwd, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
    }
}

/// The online CPUs as a sysfs CPU mask (hex, comma-separated 32-bit groups).
fn all_cpus_mask() -> String {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").expect("cpu/online");
    let mut bits: Vec<u32> = Vec::new();
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.parse().expect("cpu"), hi.parse().expect("cpu"));
        for cpu in lo..=hi {
            if bits.len() <= cpu / 32 {
                bits.resize(cpu / 32 + 1, 0);
            }
            bits[cpu / 32] |= 1 << (cpu % 32);
        }
    }
    bits.iter().rev().map(|w| format!("{w:08x}")).collect::<Vec<_>>().join(",")
}

struct Forwarder {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<XdpStats>,
    mode: String,
}

impl Forwarder {
    fn start(ns: &str, mode: XdpMode) -> Forwarder {
        let path = format!("/run/netns/{ns}");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let stop2 = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let f = File::open(&path).expect("open netns");
            // SAFETY: `f` is an open namespace file for the call's duration;
            // setns changes the network namespace of this thread only, which
            // is dedicated to the forwarder and ends with it.
            let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            let cfg = XdpConfig { inside: "in0".into(), outside: "out0".into(), mode, ..XdpConfig::default() };
            let mut io = match XdpIo::open(&cfg) {
                Ok(io) => io,
                Err(e) => {
                    tx.send(Err(format!("{e:?}"))).unwrap();
                    return XdpStats::default();
                }
            };
            tx.send(Ok(io.mode_in_use().to_owned())).unwrap();
            while !stop2.load(Ordering::Relaxed) {
                let n = io.rx_batch(64, &mut |_, m| Action::Forward(m.port.other())).expect("rx_batch");
                io.flush().expect("flush");
                if n == 0 {
                    io.wait(Duration::from_millis(5)).expect("wait");
                }
            }
            let s = io.stats();
            drop(io);
            s
        });
        let mode = rx.recv().expect("forwarder thread died").unwrap_or_else(|e| panic!("XdpIo::open: {e}"));
        Forwarder { stop, handle, mode }
    }

    fn stop(self) -> XdpStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("forwarder panicked")
    }
}

const SERVER: &str = r#"
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001)); s.listen(1); s.settimeout(30)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
c.sendall(b"ok"); c.close()
print(n, h.hexdigest(), flush=True)
"#;

const CLIENT: &str = r#"
import hashlib, os, socket, sys, time
data = os.urandom(int(sys.argv[2]))
for i in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 5001), timeout=5); break
    except OSError:
        time.sleep(0.1)
c.settimeout(30); c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(2); c.close()
print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
"#;

fn tcp_transfer(t: &Topo, bytes: usize) {
    let mut server = Command::new("ip")
        .args(["netns", "exec", &t.b, "python3", "-c", SERVER, &t.ip(2)])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let mut line = String::new();
    let mut out = std::io::BufReader::new(server.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "listening");
    let started = Instant::now();
    let client = ns_run(&t.a, &["python3", "-c", CLIENT, &t.ip(2), &bytes.to_string()]);
    let elapsed = started.elapsed();
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(server.wait().unwrap().success());
    let sent = String::from_utf8_lossy(&client.stdout).trim().to_owned();
    assert_eq!(line.trim(), sent, "received bytes differ from sent");
    eprintln!("tcp: {bytes} bytes intact in {elapsed:?}");
}

fn check_no_xdp(t: &Topo) {
    let links = t.fwd_links();
    assert!(!links.contains("xdp"), "an XDP program is still attached:\n{links}");
}

fn forward_between_namespaces(mode: XdpMode, transfer: usize) {
    let t = Topo::new();
    check_no_xdp(&t);
    let fwd = Forwarder::start(&t.fwd, mode);
    let _ = writeln!(std::io::stderr(), "xdp_forward {mode:?}: {}", fwd.mode);
    let links = t.fwd_links();
    assert!(links.contains("xdp"), "no XDP program attached while running:\n{links}");

    let ping = ns_run(&t.a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", &t.ip(2)]);
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
            .lines()
            .filter(|l| l.contains("packet") || l.contains("rtt"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    tcp_transfer(&t, transfer);
    if std::env::var("CTWALL_XDP_BENCH").as_deref() == Ok("1") {
        let mut srv = Command::new("ip")
            .args(["netns", "exec", &t.b, "iperf3", "-s", "-1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("iperf3");
        thread::sleep(Duration::from_millis(300));
        let out = ns_run(&t.a, &["iperf3", "-c", &t.ip(2), "-t", "5"]);
        let _ = srv.wait();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let _ = writeln!(std::io::stderr(), "{}", text.lines().rev().take(4).collect::<Vec<_>>().join("\n"));
    }

    let stats = fwd.stop();
    let _ = writeln!(std::io::stderr(), "xdp_forward {mode:?} stats: {stats:?}");
    // At least the data segments of the transfer crossed (ACKs and pings on top; how many
    // ACKs depends on delayed-ACK timing, so they are not counted on).
    let min_frames = (transfer / 1514) as u64;
    assert!(stats.rx > min_frames && stats.forwarded == stats.rx, "{stats:?} (at least {min_frames} frames)");
    assert_eq!(stats.tx + stats.tx_ring_full + stats.tx_backlog_full, stats.forwarded, "{stats:?}");
    check_no_xdp(&t);
}

#[test]
fn forwards_auto_mode() {
    if skip_unless_root() {
        return;
    }
    forward_between_namespaces(XdpMode::Auto, 4 << 20);
}

#[test]
fn forwards_generic_mode() {
    if skip_unless_root() {
        return;
    }
    forward_between_namespaces(XdpMode::Generic, 1 << 20);
}

/// Enter network namespace `ns` (this thread only).
fn enter(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).expect("open netns");
    // SAFETY: `f` is an open namespace file for the call's duration; setns changes the network
    // namespace of the calling thread only, which the caller dedicates to that namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Two queues, one forwarder thread per queue: host A sends on queue 0 and host B on queue 1
/// (XPS), so every TCP connection has its directions on different queues. Both queues carry
/// traffic through their own socket (native mode; in generic mode veth hands every frame to
/// queue 0), and the XDP programs stay attached until the last queue's `XdpIo` is dropped.
///
/// Every thread that opens or drops an `XdpIo` is in the forwarder's namespace: the programs
/// are attached and detached by interface index, which is per namespace.
#[test]
fn forwards_on_two_queues() {
    if skip_unless_root() {
        return;
    }
    two_queues(XdpMode::Auto);
}

#[test]
fn forwards_on_two_queues_generic_mode() {
    if skip_unless_root() {
        return;
    }
    two_queues(XdpMode::Generic);
}

fn two_queues(mode: XdpMode) {
    let t = Topo::with_queues(2);
    t.steer(&t.a, 0, 2);
    t.steer(&t.b, 1, 2);
    let ns = t.fwd.clone();
    let ios = thread::spawn(move || {
        enter(&ns);
        let cfg = XdpConfig { inside: "in0".into(), outside: "out0".into(), mode, ..XdpConfig::default() };
        XdpIo::open_queues(&cfg, 2).map_err(|e| format!("{e:?}"))
    })
    .join()
    .expect("opener panicked")
    .unwrap_or_else(|e| panic!("XdpIo::open_queues: {e}"));
    assert_eq!(ios.iter().map(XdpIo::queue).collect::<Vec<_>>(), vec![0, 1]);
    let _ = writeln!(std::io::stderr(), "two queues {mode:?}: {}", ios[0].mode_in_use());
    let workers: Vec<_> = ios
        .into_iter()
        .map(|mut io| {
            let stop = Arc::new(AtomicBool::new(false));
            let (stop2, ns) = (Arc::clone(&stop), t.fwd.clone());
            let h = thread::spawn(move || {
                enter(&ns);
                while !stop2.load(Ordering::Relaxed) {
                    let n = io.rx_batch(64, &mut |_, m| Action::Forward(m.port.other())).expect("rx_batch");
                    io.flush().expect("flush");
                    if n == 0 {
                        io.wait(Duration::from_millis(5)).expect("wait");
                    }
                }
                let s = io.stats();
                drop(io);
                s
            });
            (stop, h)
        })
        .collect();
    ns_run(&t.a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", &t.ip(2)]);
    tcp_transfer(&t, 1 << 20);
    let mut stats = Vec::new();
    for (i, (stop, h)) in workers.into_iter().enumerate() {
        stop.store(true, Ordering::Relaxed);
        stats.push(h.join().expect("worker panicked"));
        if i == 0 {
            // Closing queue 0 leaves queue 1's program in place.
            let links = t.fwd_links();
            assert!(links.matches("xdp").count() >= 2, "closing one queue detached a program:\n{links}");
        }
    }
    let _ = writeln!(std::io::stderr(), "per queue {mode:?}: {stats:?}");
    if mode == XdpMode::Generic {
        // veth's generic path does not record the RX queue: every frame is queue 0's.
        assert!(stats[0].rx_port[0] > (1 << 20) / 1514 && stats[0].rx_port[1] > 10, "queue 0: {:?}", stats[0]);
    } else {
        // A's frames (the data) on queue 0, B's (the ACKs) on queue 1.
        assert!(stats[0].rx_port[0] > (1 << 20) / 1514, "queue 0 inside: {:?}", stats[0]);
        assert!(stats[1].rx_port[1] > 10, "queue 1 outside: {:?}", stats[1]);
    }
    for s in &stats {
        assert_eq!(s.forwarded, s.rx, "{s:?}");
    }
    // The last one detached both.
    check_no_xdp(&t);
}

/// Forward one batch each way; sleep in `poll` when idle.
fn forward_once(io: &mut XdpIo) -> std::io::Result<()> {
    let n = io.rx_batch(64, &mut |_, m| Action::Forward(m.port.other()))?;
    io.flush()?;
    if n == 0 {
        io.wait(Duration::from_millis(5))?;
    }
    Ok(())
}

/// The outside interface deleted under a running forwarder: kicking its TX
/// ring fails with a `PortFault` of the outside port carrying `ENXIO`. Once
/// the interface is back (a new one, new index), `Reopen::open` binds both
/// ports again, forwarding resumes, and the end detaches the programs of
/// the new interface too.
#[test]
fn reopens_after_an_interface_comes_back() {
    if skip_unless_root() {
        return;
    }
    let t = Topo::new();
    let (events, got) = mpsc::channel::<String>();
    let (resume, resumed) = mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, ns) = (Arc::clone(&stop), t.fwd.clone());
    let h = thread::spawn(move || -> XdpStats {
        enter(&ns);
        let cfg = XdpConfig { inside: "in0".into(), outside: "out0".into(), ..XdpConfig::default() };
        let mut io = XdpIo::open(&cfg).expect("XdpIo::open");
        let reopen = io.reopener();
        events.send("open".into()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let e = loop {
            if let Err(e) = forward_once(&mut io) {
                break e;
            }
            assert!(Instant::now() < deadline, "no I/O error after the interface was deleted");
        };
        let fault = rings::xdp::PortFault::of(&e).map(|f| (f.port, f.source.raw_os_error()));
        events.send(format!("{fault:?}")).unwrap();
        drop(io);
        resumed.recv().unwrap();
        let mut io = reopen.open().expect("Reopen::open");
        events.send("reopened".into()).unwrap();
        while !stop2.load(Ordering::Relaxed) {
            forward_once(&mut io).expect("forwarding after the reopen");
        }
        let s = io.stats();
        drop((io, reopen));
        s
    });
    let next = |what: &str| got.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(next("open"), "open");
    ns_run(&t.a, &["ping", "-c", "2", "-i", "0.2", "-W", "2", &t.ip(2)]);
    ns_run(&t.fwd, &["ip", "link", "del", "out0"]);
    // A's pings reach in0 and are forwarded to the dead out0 socket.
    let _ = Command::new("ip")
        .args(["netns", "exec", &t.a, "ping", "-c", "3", "-i", "0.2", "-W", "1", &t.ip(2)])
        .stdout(Stdio::null())
        .status();
    assert_eq!(next("the I/O error"), format!("Some((Outside, Some({})))", libc::ENXIO));
    t.link(2, 1);
    resume.send(()).unwrap();
    assert_eq!(next("reopen"), "reopened");
    let links = t.fwd_links();
    assert!(links.matches("xdp").count() >= 2, "no XDP program on the new out0:\n{links}");
    // B's new eth0 has a new MAC address.
    ns_run(&t.a, &["ip", "neigh", "flush", "dev", "eth0"]);
    ns_run(&t.a, &["ping", "-c", "3", "-i", "0.2", "-W", "2", &t.ip(2)]);
    stop.store(true, Ordering::Relaxed);
    let stats = h.join().expect("forwarder panicked");
    assert!(stats.forwarded >= 6, "pings and answers after the reopen: {stats:?}");
    check_no_xdp(&t);
}
