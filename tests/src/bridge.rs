//! End-to-end tests of `ctwall run` with real peers: host A (inside) and host B (outside) in
//! their own network namespaces, the firewall namespace between them holding the two ports
//! `fwin` (peer of A's `a0`) and `fwout` (peer of B's `b0`). One subnet: the firewall is an L2
//! bridge, the hosts ARP for each other through it.
//!
//! The same checks also run against a kernel reference ([`Firewall::Kernel`]: a Linux bridge
//! with br_netfilter and an nftables rule set of the same meaning, [`configs::kernel_nft`]),
//! which proves the topology, the peers and the expectations themselves.
//!
//! Every wait has a timeout, every background process is killed on drop, every namespace is
//! deleted on drop (also while unwinding). Tests in one binary run one at a time ([`Setup`]
//! holds a process-wide lock): the machine is small and ctwall polls.

pub mod configs;

use crate::netns::{self, Netns};
use crate::{visible, WorkDir};
use configs::FwConfig;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The peers (clients and servers in Python), written into each test's work directory.
pub const PEER_PY: &str = include_str!("../scripts/bridge_peer.py");

pub const A_IP: &str = "10.0.0.1";
pub const B_IP: &str = "10.0.0.2";
pub const A_IP6: &str = "fd00::1";
pub const B_IP6: &str = "fd00::2";
pub const A_MAC: &str = "02:00:00:00:0a:01";
pub const B_MAC: &str = "02:00:00:00:0b:02";

/// How long `ctwall run` may take to print its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The firewall between A and B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firewall {
    /// `ctwall run` on fwin/fwout.
    Ctwall,
    /// A Linux bridge with br_netfilter and nftables `ct state` rules (the reference).
    Kernel,
    /// A plain Linux bridge, no filtering (harness self-test).
    PlainBridge,
}

/// What a test needs besides root, `ip`, `ethtool`, `python3` and `ping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Curl,
    Iperf3,
    /// pyftpdlib importable by some python3 (Debian: `python3-pyftpdlib`).
    PyFtpdLib,
}

/// Serialises the tests of one binary.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn require_root_mode() -> bool {
    std::env::var("CTWALL_REQUIRE_ROOT").as_deref() == Ok("1")
}

/// Fails (with `CTWALL_REQUIRE_ROOT=1`) or prints a visible skip line.
fn skip(test: &str, what: &str, why: &str) {
    if require_root_mode() {
        panic!("{test}: {why}, and CTWALL_REQUIRE_ROOT=1 requires the bridge tests to run");
    }
    visible(&format!("SKIPPED (needs {what}): {test}: {why}"));
}

/// The first interpreter (`python3` in PATH, then Debian's) that can import `pyftpdlib`.
pub fn python_with_pyftpdlib() -> Option<String> {
    ["python3", "/usr/bin/python3"].into_iter().map(str::to_string).find(|py| {
        Command::new(py)
            .args(["-c", "import pyftpdlib"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// Checks the prerequisites of `test`; `None` means skipped (printed), a panic means
/// `CTWALL_REQUIRE_ROOT=1` and something is missing. Returns the ctwall binary (if the mode
/// needs one) and the FTP interpreter (if needed).
fn prerequisites(test: &str, fw: Firewall, needs: &[Need]) -> Option<(Option<PathBuf>, Option<String>)> {
    if !netns::is_root() {
        skip(test, "root", "not running as root");
        return None;
    }
    let mut tools = vec!["ip", "ethtool", "python3", "ping"];
    if fw == Firewall::Kernel {
        tools.extend(["nft", "sysctl"]);
    }
    if needs.contains(&Need::Curl) {
        tools.push("curl");
    }
    if needs.contains(&Need::Iperf3) {
        tools.push("iperf3");
    }
    for tool in tools {
        if !netns::have_tool(tool) {
            skip(test, tool, &format!("`{tool}` is not installed"));
            return None;
        }
    }
    let bin = if fw == Firewall::Ctwall {
        match crate::ctwall::find_ctwall() {
            Ok(b) => Some(b),
            Err(e) => {
                skip(test, "the ctwall binary", &e);
                return None;
            }
        }
    } else {
        None
    };
    let py = if needs.contains(&Need::PyFtpdLib) {
        match python_with_pyftpdlib() {
            Some(p) => Some(p),
            None => {
                skip(test, "pyftpdlib", "no python3 can import pyftpdlib (apt-get install python3-pyftpdlib)");
                return None;
            }
        }
    } else {
        None
    };
    Some((bin, py))
}

// ------------------------------------------------------------------------------------------
// Processes

/// Runs a command with a time limit, capturing its output (a timeout kills it and is an error).
pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{desc}: {e}"))?;
    let mut so = child.stdout.take().expect("piped");
    let mut se = child.stderr.take().expect("piped");
    let t1 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t2 = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{desc}: wait: {e}")),
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = t1.join().unwrap_or_default();
        let stderr = t2.join().unwrap_or_default();
        return Err(format!(
            "{desc} did not finish within {timeout:?}; stdout: {} stderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ));
    };
    let stdout = t1.join().unwrap_or_default();
    let stderr = t2.join().unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

/// Like [`output_timeout`], failing on a non-zero exit too.
pub fn run_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    let desc = format!("{cmd:?}");
    let out = output_timeout(cmd, timeout)?;
    if !out.status.success() {
        return Err(format!(
            "{desc} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(out)
}

/// The last line of `text` that parses as a JSON object.
pub fn last_json(text: &str) -> Option<serde_json::Value> {
    text.lines().rev().filter(|l| l.trim_start().starts_with('{')).find_map(|l| serde_json::from_str(l).ok())
}

type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A background process whose stdout and stderr lines are collected (both in one list, in
/// arrival order). Killed on drop.
pub struct Bg {
    name: String,
    child: Child,
    lines: Lines,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Bg {
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Bg, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: {cmd:?}: {e}"))?;
        let lines: Lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let mut readers = Vec::new();
        let so: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let se: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for r in [so, se] {
            let lines = Arc::clone(&lines);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    let (m, cv) = &*lines;
                    m.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                    cv.notify_all();
                }
            }));
        }
        Ok(Bg { name: name.to_string(), child, lines, readers, status: None })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Number of lines so far (a position for [`Bg::wait_line`]).
    pub fn line_count(&self) -> usize {
        self.lines.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The output so far, one string.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Whether the process has exited (and its status).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for a line (at index `from` or later) for which `pred` holds.
    pub fn wait_line(&mut self, from: usize, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut exited_at: Option<Instant> = None;
        loop {
            {
                let (m, cv) = &*self.lines;
                let guard = m.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(l) = guard.iter().skip(from).find(|l| pred(l)) {
                    return Ok(l.clone());
                }
                let _ = cv.wait_timeout(guard, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner());
            }
            let now = Instant::now();
            if let Some(st) = self.exited() {
                // Give the readers a moment to drain the pipes, then give up.
                let t = *exited_at.get_or_insert(now);
                if now.duration_since(t) > Duration::from_millis(300) {
                    return Err(format!(
                        "{} exited ({st}) before the expected line; output:\n{}",
                        self.name,
                        self.text()
                    ));
                }
            }
            if now >= deadline {
                return Err(format!("{}: no expected line within {timeout:?}; output:\n{}", self.name, self.text()));
            }
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit (killing after `timeout`) and returns the last JSON line printed.
    pub fn finish_json(&mut self, timeout: Duration) -> Result<serde_json::Value, String> {
        let text = self.finish(timeout)?;
        last_json(&text).ok_or_else(|| format!("{}: no JSON result; output:\n{text}", self.name))
    }

    /// Waits for the exit (killing after `timeout`) and returns everything it printed.
    pub fn finish(&mut self, timeout: Duration) -> Result<String, String> {
        if self.wait_exit(timeout).is_none() {
            self.kill();
            return Err(format!("{} did not finish within {timeout:?}; output:\n{}", self.name, self.text()));
        }
        self.join_readers();
        Ok(self.text())
    }

    fn join_readers(&mut self) {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...).
    pub fn signal(&self, sig: &str) -> Result<(), String> {
        netns::run(Command::new("kill").args(["-s", sig, &self.pid().to_string()])).map(|_| ())
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        self.kill();
        // Readers end when the pipes close; a grandchild holding them must not hang us.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.readers.iter().all(|r| r.is_finished()) {
            self.join_readers();
        }
    }
}

// ------------------------------------------------------------------------------------------
// Topology

/// The queues of the veths: every veth end gets `count` RX and TX queues, and with more than
/// one, host A sends everything on its TX queue `a` and host B on its TX queue `b` (XPS: every
/// CPU maps to that queue). A veth hands a frame to the peer's RX queue of the same number, so
/// A's frames reach the firewall on queue `a` of `fwin` and B's on queue `b` of `fwout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queues {
    pub count: u32,
    pub a: u32,
    pub b: u32,
}

impl Queues {
    /// One queue per veth (the default veth).
    pub const ONE: Queues = Queues { count: 1, a: 0, b: 0 };
}

/// The online CPUs as a sysfs CPU mask (hex, comma-separated 32-bit groups), for XPS.
fn all_cpus_mask() -> Result<String, String> {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .map_err(|e| format!("/sys/devices/system/cpu/online: {e}"))?;
    let mut words: Vec<u32> = Vec::new();
    for part in online.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let bad = |e| format!("/sys/devices/system/cpu/online: {online:?}: {e}");
        let (lo, hi): (usize, usize) = (lo.parse().map_err(bad)?, hi.parse().map_err(bad)?);
        for cpu in lo..=hi {
            if words.len() <= cpu / 32 {
                words.resize(cpu / 32 + 1, 0);
            }
            words[cpu / 32] |= 1 << (cpu % 32);
        }
    }
    Ok(words.iter().rev().map(|w| format!("{w:08x}")).collect::<Vec<_>>().join(","))
}

/// Namespaces A, FW and B with their veths, addresses and offloads; deleted on drop.
pub struct Topology {
    pub a: Netns,
    pub fw: Netns,
    pub b: Netns,
    pub dir: WorkDir,
    peer: PathBuf,
}

impl Topology {
    pub fn new(test: &str) -> Result<Topology, String> {
        Topology::with_queues(test, Queues::ONE)
    }

    pub fn with_queues(test: &str, queues: Queues) -> Result<Topology, String> {
        let p = netns::unique_prefix();
        let dir = WorkDir::new(&format!("bridge-{test}"))?;
        let peer = dir.path().join("bridge_peer.py");
        std::fs::write(&peer, PEER_PY).map_err(|e| format!("write {}: {e}", peer.display()))?;
        let a = Netns::new(&format!("{p}a"))?;
        let fw = Netns::new(&format!("{p}f"))?;
        let b = Netns::new(&format!("{p}b"))?;
        let t = Topology { a, fw, b, dir, peer };
        t.build(queues)?;
        Ok(t)
    }

    fn build(&self, queues: Queues) -> Result<(), String> {
        let (a, b) = (self.a.name(), self.b.name());
        let (inside, outside) = (configs::INSIDE, configs::OUTSIDE);
        // No IPv6 on the bridge ports (and on a bridge created later).
        self.fw.sysctl(&[
            ("net.ipv6.conf.default.disable_ipv6".into(), "1".into()),
            ("net.ipv6.conf.all.disable_ipv6".into(), "1".into()),
        ])?;
        self.link(inside, a, "a0", queues.count)?;
        self.link(outside, b, "b0", queues.count)?;
        if queues.count > 1 {
            self.steer(&self.a, "a0", queues.a, queues.count)?;
            self.steer(&self.b, "b0", queues.b, queues.count)?;
        }
        Ok(())
    }

    /// The veth pair from `port` (a firewall port) to `ifc` in host namespace `host`, with the
    /// host end's fixed MAC and addresses, both ends up.
    fn link(&self, port: &str, host: &str, ifc: &str, queues: u32) -> Result<(), String> {
        let q = if queues > 1 { format!(" numrxqueues {queues} numtxqueues {queues}") } else { String::new() };
        self.fw.ip_batch(&[
            format!("link add {port}{q} type veth peer name {ifc} netns {host}{q}"),
            format!("link set {port} up"),
        ])?;
        let (ns, mac, ip4, ip6) =
            if ifc == "a0" { (&self.a, A_MAC, A_IP, A_IP6) } else { (&self.b, B_MAC, B_IP, B_IP6) };
        // Neighbours are found as a user's hosts find them: ARP, and IPv6 neighbour discovery
        // across the bridge (which conntrack leaves UNTRACKED). Only duplicate address
        // detection is skipped (`nodad`), to spare each test its second of waiting; a firewall
        // that dropped it would not change its outcome.
        ns.ip_batch(&[
            format!("link set {ifc} address {mac}"),
            format!("addr add {ip4}/24 dev {ifc}"),
            format!("addr add {ip6}/64 dev {ifc} nodad"),
            format!("link set {ifc} up"),
        ])?;
        // Full checksums on the wire (see AFXDP_NOTES: veth otherwise hands partial ones).
        ns.exec("ethtool", &["-K", ifc, "tx", "off"])?;
        Ok(())
    }

    /// Delete the outside port (and B's end of its veth), as when a NIC goes away.
    pub fn delete_outside(&self) -> Result<(), String> {
        self.fw.ip(&["link", "del", configs::OUTSIDE]).map(|_| ())
    }

    /// Create the outside port and B's end again (new interfaces, same names and addresses).
    pub fn recreate_outside(&self) -> Result<(), String> {
        self.link(configs::OUTSIDE, self.b.name(), "b0", 1)
    }

    /// XPS: every CPU of `ns` sends on TX queue `queue` of `ifc` (of `count`).
    fn steer(&self, ns: &Netns, ifc: &str, queue: u32, count: u32) -> Result<(), String> {
        let all = all_cpus_mask()?;
        for q in 0..count {
            let mask = if q == queue { all.as_str() } else { "0" };
            ns.exec("sh", &["-c", &format!("echo {mask} > /sys/class/net/{ifc}/queues/tx-{q}/xps_cpus")])?;
        }
        Ok(())
    }

    /// A plain Linux bridge `br0` over fwin/fwout (no filtering).
    pub fn plain_bridge(&self) -> Result<(), String> {
        self.fw.ip_batch(&[
            "link add br0 type bridge".to_string(),
            format!("link set {} master br0", configs::INSIDE),
            format!("link set {} master br0", configs::OUTSIDE),
            "link set br0 up".to_string(),
        ])?;
        Ok(())
    }

    /// The kernel reference: `br0` with br_netfilter and the rule set of `cfg`.
    pub fn kernel_firewall(&self, cfg: &FwConfig) -> Result<(), String> {
        self.plain_bridge()?;
        self.fw.sysctl(&[
            ("net.bridge.bridge-nf-call-iptables".into(), "1".into()),
            ("net.bridge.bridge-nf-call-ip6tables".into(), "1".into()),
        ])?;
        self.load_kernel_rules(cfg)
    }

    /// Replaces the kernel reference's rule set (its "reload").
    pub fn load_kernel_rules(&self, cfg: &FwConfig) -> Result<(), String> {
        let rules = configs::kernel_nft(cfg, B_IP, B_IP6);
        let _ = self.fw.exec("nft", &["delete", "table", "inet", "ctwref"]);
        netns::run_with_input(self.fw.command("nft").args(["-f", "-"]), &rules).map(|_| ())
    }

    /// The peers script.
    pub fn peer_script(&self) -> &Path {
        &self.peer
    }

    /// `python3 bridge_peer.py ARGS` inside `ns` (with interpreter `py`).
    pub fn peer_cmd(&self, ns: &Netns, py: &str, args: &[&str]) -> Command {
        let mut c = ns.command(py);
        c.arg("-u").arg(&self.peer).args(args);
        c
    }

    /// Runs a client peer and returns its JSON result.
    pub fn peer_run(&self, ns: &Netns, args: &[&str], timeout: Duration) -> Result<serde_json::Value, String> {
        self.peer_run_with(ns, "python3", args, timeout)
    }

    pub fn peer_run_with(
        &self,
        ns: &Netns,
        py: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<serde_json::Value, String> {
        let out = run_timeout(&mut self.peer_cmd(ns, py, args), timeout)?;
        let text = String::from_utf8_lossy(&out.stdout);
        last_json(&text)
            .ok_or_else(|| format!("peer {args:?}: no JSON result: {text}{}", String::from_utf8_lossy(&out.stderr)))
    }

    /// Starts a server peer and waits for its `ready` line.
    pub fn peer_spawn(&self, ns: &Netns, args: &[&str]) -> Result<Bg, String> {
        self.peer_spawn_with(ns, "python3", args)
    }

    pub fn peer_spawn_with(&self, ns: &Netns, py: &str, args: &[&str]) -> Result<Bg, String> {
        let name = format!("peer {} in {}", args.first().copied().unwrap_or(""), ns.name());
        let mut bg = Bg::spawn(&name, &mut self.peer_cmd(ns, py, args))?;
        bg.wait_line(0, Duration::from_secs(10), |l| l.trim() == "ready")?;
        Ok(bg)
    }

    /// UDP request/response across the bridge: an echo server on B's `b_addr` and `port`,
    /// `count` datagrams from A each answered within `timeout_s`, the whole
    /// client run within `deadline`. Returns the client's JSON result (`ok`:
    /// datagrams answered); the server stops on return.
    pub fn udp_echoes(
        &self,
        b_addr: &str,
        port: u16,
        count: u32,
        timeout_s: u32,
        deadline: Duration,
    ) -> Result<serde_json::Value, String> {
        self.udp_echoes_of(b_addr, port, count, 0, timeout_s, deadline)
    }

    /// [`Topology::udp_echoes`] with datagrams of `size` payload bytes (0: sizes from 16 to
    /// about 1200); each echo must equal what was sent.
    pub fn udp_echoes_of(
        &self,
        b_addr: &str,
        port: u16,
        count: u32,
        size: usize,
        timeout_s: u32,
        deadline: Duration,
    ) -> Result<serde_json::Value, String> {
        let port = port.to_string();
        let _echo = self.peer_spawn(&self.b, &["udp-echo", "--bind", b_addr, "--port", &port])?;
        let (count, timeout, size) = (count.to_string(), timeout_s.to_string(), size.to_string());
        self.peer_run(
            &self.a,
            &[
                "udp-client",
                "--dst",
                b_addr,
                "--port",
                &port,
                "--count",
                &count,
                "--timeout",
                &timeout,
                "--size",
                &size,
            ],
            deadline,
        )
    }

    /// `ping -c COUNT` from `ns` to `dst`; `true` if every echo was answered within `deadline`.
    pub fn ping(&self, ns: &Netns, dst: &str, count: u32, deadline_s: u32) -> Result<bool, String> {
        self.ping_sized(ns, dst, count, 56, deadline_s)
    }

    /// [`Topology::ping`] with `size` bytes of ICMP data (`ping -s`; over 1472 the echoes are
    /// fragmented on a 1500-byte link).
    pub fn ping_sized(&self, ns: &Netns, dst: &str, count: u32, size: u32, deadline_s: u32) -> Result<bool, String> {
        let out = output_timeout(
            ns.command("ping").args([
                "-n",
                "-s",
                &size.to_string(),
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                "-w",
                &deadline_s.to_string(),
                dst,
            ]),
            Duration::from_secs(u64::from(deadline_s) + 5),
        )?;
        Ok(out.status.success())
    }

    /// Ping that must fully succeed.
    pub fn ping_ok(&self, ns: &Netns, dst: &str) -> Result<(), String> {
        if self.ping(ns, dst, 3, 5)? {
            Ok(())
        } else {
            Err(format!("ping {} -> {dst} failed", ns.name()))
        }
    }

    /// Ping that must get no answer at all.
    pub fn ping_blocked(&self, ns: &Netns, dst: &str) -> Result<(), String> {
        let out = output_timeout(
            ns.command("ping").args(["-n", "-c", "3", "-i", "0.2", "-W", "1", "-w", "3", dst]),
            Duration::from_secs(8),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(" 0 received") || text.contains(" 0 packets received") {
            Ok(())
        } else {
            Err(format!("ping {} -> {dst} should get no answer, got:\n{text}", ns.name()))
        }
    }

    /// The XDP-related words of `ip -d link show dev IFACE` in the firewall namespace.
    pub fn xdp_attached(&self, ifc: &str) -> Result<Option<String>, String> {
        let out = self.fw.ip(&["-d", "link", "show", "dev", ifc])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(text.contains("xdp").then_some(text))
    }
}

// ------------------------------------------------------------------------------------------
// ctwall

/// A running `ctwall run` in the firewall namespace. On drop: SIGTERM, then SIGKILL, then the
/// XDP programs are detached by hand (a killed process leaves them attached).
pub struct Ctwall {
    pub proc: Bg,
    pub config: PathBuf,
    fw: String,
}

impl Ctwall {
    pub fn start(bin: &Path, topo: &Topology, cfg: &FwConfig) -> Result<Ctwall, String> {
        let config = topo.dir.path().join("ctwall.ron");
        std::fs::write(&config, &cfg.ron).map_err(|e| format!("write {}: {e}", config.display()))?;
        for ifc in [configs::INSIDE, configs::OUTSIDE] {
            let _ = topo.fw.ip(&["link", "set", "dev", ifc, "xdp", "off"]);
        }
        let mut cmd = topo.fw.command(&bin.to_string_lossy());
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--inside", configs::INSIDE, "--outside", configs::OUTSIDE])
            .env("LIBXDP_SKIP_DISPATCHER", "1")
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()))
            .env("NO_COLOR", "1");
        let mut proc = Bg::spawn("ctwall run", &mut cmd)?;
        let fw = topo.fw.name().to_string();
        proc.wait_line(0, READY_TIMEOUT, |l| l.contains("ready"))
            .map_err(|e| format!("ctwall run did not get ready: {e}"))?;
        Ok(Ctwall { proc, config, fw })
    }

    /// Writes `text` to the config file and sends SIGHUP. Returns the log position before.
    pub fn reload(&mut self, text: &str) -> Result<usize, String> {
        let pos = self.proc.line_count();
        std::fs::write(&self.config, text).map_err(|e| format!("write {}: {e}", self.config.display()))?;
        self.proc.signal("HUP")?;
        Ok(pos)
    }

    pub fn log(&self) -> String {
        self.proc.text()
    }
}

impl Drop for Ctwall {
    fn drop(&mut self) {
        if self.proc.exited().is_none() {
            let _ = self.proc.signal("TERM");
            if self.proc.wait_exit(Duration::from_secs(3)).is_none() {
                self.proc.kill();
            }
        }
        for ifc in [configs::INSIDE, configs::OUTSIDE] {
            let _ = Command::new("ip")
                .args(["-n", &self.fw, "link", "set", "dev", ifc, "xdp", "off"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if std::thread::panicking() {
            visible(&format!("--- ctwall run log ---\n{}\n--- end of ctwall run log ---", self.proc.text()));
        }
    }
}

// ------------------------------------------------------------------------------------------
// One test's setup

/// Everything one test uses. Field order is drop order: ctwall stops before the namespaces go,
/// and the lock is released last.
pub struct Setup {
    pub ctwall: Option<Ctwall>,
    pub topo: Topology,
    pub mode: Firewall,
    /// The interpreter that has pyftpdlib, when the test asked for it.
    pub ftp_python: Option<String>,
    pub test: String,
    _lock: MutexGuard<'static, ()>,
}

impl Setup {
    /// Checks the prerequisites (skip or fail as documented), builds the topology and starts
    /// the firewall with `cfg`. `None` when skipped.
    pub fn new(test: &str, mode: Firewall, cfg: &FwConfig, needs: &[Need]) -> Option<Setup> {
        Setup::with_queues(test, mode, cfg, needs, Queues::ONE)
    }

    /// [`Setup::new`] on veths with several queues, the hosts steered to one each ([`Queues`]).
    pub fn with_queues(test: &str, mode: Firewall, cfg: &FwConfig, needs: &[Need], queues: Queues) -> Option<Setup> {
        let (bin, ftp_python) = prerequisites(test, mode, needs)?;
        let lock = serial();
        let topo = Topology::with_queues(test, queues).unwrap_or_else(|e| panic!("{test}: topology: {e}"));
        let ctwall = match mode {
            Firewall::Ctwall => {
                let bin = bin.expect("checked");
                Some(Ctwall::start(&bin, &topo, cfg).unwrap_or_else(|e| panic!("{test}: {e}")))
            }
            Firewall::Kernel => {
                topo.kernel_firewall(cfg).unwrap_or_else(|e| panic!("{test}: kernel reference: {e}"));
                None
            }
            Firewall::PlainBridge => {
                topo.plain_bridge().unwrap_or_else(|e| panic!("{test}: plain bridge: {e}"));
                None
            }
        };
        Some(Setup { ctwall, topo, mode, ftp_python, test: test.to_string(), _lock: lock })
    }

    pub fn ctwall(&mut self) -> &mut Ctwall {
        self.ctwall.as_mut().expect("this test runs ctwall")
    }

    /// Applies a new rule set: ctwall reloads (SIGHUP), the kernel reference swaps its table.
    /// Returns ctwall's log position before the reload (0 for the kernel).
    pub fn reload(&mut self, cfg: &FwConfig) -> Result<usize, String> {
        match self.mode {
            Firewall::Ctwall => self.ctwall().reload(&cfg.ron),
            Firewall::Kernel => self.topo.load_kernel_rules(cfg).map(|_| 0),
            Firewall::PlainBridge => Ok(0),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.topo.dir.keep();
            visible(&format!("{}: work directory kept: {}", self.test, self.topo.dir.path().display()));
        }
    }
}
