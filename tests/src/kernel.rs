//! The kernel reference: replays a scenario through a real Linux router namespace and reads
//! back the per-frame ctstate (from nf_log lines) and the final conntrack/expect tables.
//!
//! Topology, all names unique per run:
//! ```text
//!   inj ns                     rtr ns (forwarding, nftables, conntrack)
//!   c  (02:..:01:02) <-veth->  vc (02:..:01:01) 10.0.1.1/24 fd00:1::1/64
//!   s  (02:..:02:02) <-veth->  vs (02:..:02:01) 10.0.2.1/24 fd00:2::1/64
//! ```
//! Frames towards the C side are injected on `s`, all others on `c`. rtr logs every packet at
//! prerouting priority -150 (after conntrack) with a per-run token, its ctstate and direction;
//! only frames from the injector's MACs are logged (not rtr's own looped-back multicast).
//!
//! Fragments: defragmentation (priority -400) runs before the log rule, so a fragmented
//! datagram gets one line, with its IPv4 ID or the flow label of its first IPv6 fragment, when
//! it completes; [`Datagrams`] gives that line to the fragment that completed it, using the
//! kmsg sequence number the injector reads after each send. Held, duplicate and discarded
//! fragments get no line ([`Scenario::held`]). The router refragments a reassembled datagram
//! on output with the same IPv4 ID / IPv6 flow label, which is how its forwarding is seen.

use crate::netns::{run, Netns};
use crate::scenario::{Scenario, BOOL_KNOBS, DEFRAG_KNOBS};
use crate::trace::{FrameSpec, Pkt, MAC_C_PEER, MAC_C_RTR, MAC_S_PEER, MAC_S_RTR};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The injector script.
pub const INJECT_PY: &str = include_str!("../scripts/inject.py");

/// What one side observed for one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obs {
    /// NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED.
    pub ctstate: String,
    /// "original" / "reply"; `None` for INVALID and UNTRACKED.
    pub dir: Option<String>,
}

impl std::fmt::Display for Obs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dir {
            Some(d) => write!(f, "{} {}", self.ctstate, d),
            None => write!(f, "{}", self.ctstate),
        }
    }
}

/// The kernel's result for one scenario.
#[derive(Clone, Debug)]
pub struct KernelRun {
    /// Per frame (index 0 = frame 1): what the kernel logged, `None` if nothing.
    pub frames: Vec<Option<Obs>>,
    /// `/proc/net/nf_conntrack` right after the last frame.
    pub conntrack: Vec<String>,
    /// `/proc/net/nf_conntrack_expect` right after the last frame.
    pub expect: Vec<String>,
    /// Injection timing: seconds each frame was sent after the first.
    pub sent: Vec<f64>,
    /// Worst lateness of a frame against its pcap time, in seconds.
    pub max_late: f64,
    /// Per frame: whether the router forwarded it (`None`: the frame is not one a plain
    /// router forwards whatever conntrack says, see [`verdict_comparable`]).
    pub forwarded: Vec<Option<bool>>,
    /// Problems worth reporting (duplicate log lines, unparsable lines...).
    pub warnings: Vec<String>,
}

/// The FTP helper's `loose` parameter is global: scenarios that change it run alone.
pub static FTP_LOOSE_LOCK: RwLock<()> = RwLock::new(());
static GLOBAL_SETUP: Mutex<bool> = Mutex::new(false);

const FTP_LOOSE_PARAM: &str = "/sys/module/nf_conntrack_ftp/parameters/loose";

/// Restores the FTP `loose` parameter on drop.
struct LooseGuard {
    old: Option<String>,
}

impl LooseGuard {
    fn set(value: bool) -> Result<LooseGuard, String> {
        let old = std::fs::read_to_string(FTP_LOOSE_PARAM).map_err(|e| format!("read {FTP_LOOSE_PARAM}: {e}"))?;
        let new = if value { "Y" } else { "N" };
        if old.trim() == new {
            return Ok(LooseGuard { old: None });
        }
        std::fs::write(FTP_LOOSE_PARAM, new).map_err(|e| format!("write {FTP_LOOSE_PARAM}: {e}"))?;
        Ok(LooseGuard { old: Some(old.trim().to_string()) })
    }
}

impl Drop for LooseGuard {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::fs::write(FTP_LOOSE_PARAM, old);
        }
    }
}

/// Process-wide setup: let nf_log log from every namespace.
fn global_setup() -> Result<(), String> {
    let mut done = GLOBAL_SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        std::fs::write("/proc/sys/net/netfilter/nf_log_all_netns", "1")
            .map_err(|e| format!("sysctl net.netfilter.nf_log_all_netns=1: {e}"))?;
        *done = true;
    }
    Ok(())
}

fn mac(m: [u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The two namespaces of one run (dropped = deleted; rtr first).
pub struct Topology {
    pub rtr: Netns,
    pub inj: Netns,
    pub token: String,
}

/// Builds the topology, applies the scenario's knobs and installs the logging ruleset.
pub fn setup(sc: &Scenario) -> Result<Topology, String> {
    global_setup()?;
    let prefix = crate::netns::unique_prefix();
    let inj = Netns::new(&format!("{prefix}i"))?;
    let rtr = Netns::new(&format!("{prefix}r"))?;
    // Tokens must never be a prefix of one another: end with a fixed letter.
    let token = format!("{}Z", prefix.to_uppercase());
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());

    inj.sysctl(&[s("net.ipv6.conf.all.disable_ipv6", "1"), s("net.ipv6.conf.default.disable_ipv6", "1")])?;
    rtr.sysctl(&[
        s("net.ipv4.ip_forward", "1"),
        s("net.ipv6.conf.all.forwarding", "1"),
        s("net.ipv4.conf.all.rp_filter", "0"),
        s("net.ipv4.conf.default.rp_filter", "0"),
        s("net.ipv4.conf.all.send_redirects", "0"),
        s("net.ipv4.conf.default.send_redirects", "0"),
        s("net.ipv4.conf.all.accept_redirects", "0"),
        s("net.ipv4.conf.default.accept_redirects", "0"),
        s("net.ipv6.conf.all.accept_redirects", "0"),
        s("net.ipv6.conf.default.accept_redirects", "0"),
        s("net.ipv6.conf.all.accept_dad", "0"),
        s("net.ipv6.conf.default.accept_dad", "0"),
        s("net.ipv6.conf.default.accept_ra", "0"),
    ])?;
    let rname = rtr.name().to_string();
    inj.ip_batch(&[
        format!(
            "link add c address {} type veth peer name vc address {} netns {rname}",
            mac(MAC_C_PEER),
            mac(MAC_C_RTR)
        ),
        format!(
            "link add s address {} type veth peer name vs address {} netns {rname}",
            mac(MAC_S_PEER),
            mac(MAC_S_RTR)
        ),
        "link set c up".into(),
        "link set s up".into(),
    ])?;
    for dev in ["vc", "vs"] {
        rtr.sysctl(&[
            s(&format!("net.ipv4.conf.{dev}.rp_filter"), "0"),
            s(&format!("net.ipv4.conf.{dev}.send_redirects"), "0"),
            s(&format!("net.ipv4.conf.{dev}.accept_redirects"), "0"),
            s(&format!("net.ipv6.conf.{dev}.accept_dad"), "0"),
            s(&format!("net.ipv6.conf.{dev}.accept_redirects"), "0"),
        ])?;
        // No GRO: consecutive segments must reach conntrack one by one.
        let _ = rtr.exec("ethtool", &["-K", dev, "gro", "off"]);
    }
    let mut cmds: Vec<String> = vec![
        "link set vc up".into(),
        "link set vs up".into(),
        "addr add 10.0.1.1/24 dev vc".into(),
        "addr add 10.0.2.1/24 dev vs".into(),
        "addr add fd00:1::1/64 dev vc nodad".into(),
        "addr add fd00:2::1/64 dev vs nodad".into(),
        "route add 10.0.9.0/24 via 10.0.1.2 dev vc".into(),
        "route add 10.0.3.0/24 via 10.0.2.2 dev vs".into(),
        "route add default via 10.0.2.2 dev vs".into(),
        "route add fd00:9::/64 via fd00:1::2 dev vc".into(),
        "route add fd00:3::/64 via fd00:2::2 dev vs".into(),
        "route add ::/0 via fd00:2::2 dev vs".into(),
    ];
    // Permanent neighbours for every on-link address of the trace (and the gateways).
    let mut neigh: BTreeMap<IpAddr, (&str, [u8; 6])> = BTreeMap::new();
    for a in ["10.0.1.2", "fd00:1::2"] {
        neigh.insert(a.parse().expect("literal"), ("vc", MAC_C_PEER));
    }
    for a in ["10.0.2.2", "fd00:2::2"] {
        neigh.insert(a.parse().expect("literal"), ("vs", MAC_S_PEER));
    }
    for f in &sc.frames {
        if let FrameSpec::Ip(p) = &f.spec {
            for a in [p.src, p.dst] {
                let on = match a {
                    IpAddr::V4(v) => match v.octets() {
                        [10, 0, 1, x] if x != 1 => Some(("vc", MAC_C_PEER)),
                        [10, 0, 2, x] if x != 1 => Some(("vs", MAC_S_PEER)),
                        _ => None,
                    },
                    IpAddr::V6(v) => {
                        let sg = v.segments();
                        match (sg[0], sg[1], sg[2], sg[3], v.segments()[4..] == [0, 0, 0, 1]) {
                            (0xfd00, 1, 0, 0, false) => Some(("vc", MAC_C_PEER)),
                            (0xfd00, 2, 0, 0, false) => Some(("vs", MAC_S_PEER)),
                            _ => None,
                        }
                    }
                };
                if let Some(v) = on {
                    neigh.insert(a, v);
                }
            }
        }
    }
    for (a, (dev, m)) in &neigh {
        cmds.push(format!("neigh replace {a} lladdr {} dev {dev} nud permanent", mac(*m)));
    }
    rtr.ip_batch(&cmds)?;

    // Scenario knobs (per netns).
    let knobs: Vec<(String, String)> = sc
        .sysctls
        .iter()
        .map(|(k, v)| {
            let v = if BOOL_KNOBS.contains(k) { i64::from(*v != 0) } else { *v };
            (format!("net.netfilter.nf_conntrack_{k}"), v.to_string())
        })
        .collect();
    rtr.sysctl(&knobs)?;
    let defrag: Vec<(String, String)> = sc
        .defrag
        .iter()
        .map(|(k, v)| {
            let name = DEFRAG_KNOBS.iter().find(|(n, _)| n == k).map(|(_, s)| *s).expect("known defrag knob");
            (name.to_string(), v.to_string())
        })
        .collect();
    rtr.sysctl(&defrag)?;

    let mut rules = String::new();
    for st in ["new", "established", "related"] {
        for dir in ["original", "reply"] {
            rules.push_str(&format!(
                "    ether saddr @peers ct state {st} ct direction {dir} log prefix \"{token} {} {dir} \"\n",
                st.to_uppercase()
            ));
        }
    }
    let helpers = if sc.helpers {
        "    tcp dport 21 ct helper set \"ftp-std\"\n    udp dport 69 ct helper set \"tftp-std\"\n"
    } else {
        ""
    };
    let ruleset = format!(
        "table inet ctw {{\n  ct helper ftp-std {{ type \"ftp\" protocol tcp; l3proto inet; }}\n  \
         ct helper tftp-std {{ type \"tftp\" protocol udp; l3proto inet; }}\n  \
         set peers {{ type ether_addr; elements = {{ {}, {} }}; }}\n  \
         chain pre {{\n    type filter hook prerouting priority -150; policy accept;\n    \
         ether saddr @peers ct state invalid log prefix \"{token} INVALID - \"\n    \
         ether saddr @peers ct state untracked log prefix \"{token} UNTRACKED - \"\n{rules}{helpers}  }}\n}}\n",
        mac(MAC_C_PEER),
        mac(MAC_S_PEER)
    );
    crate::netns::run_with_input(rtr.command("nft").args(["-f", "-"]), &ruleset)?;
    Ok(Topology { rtr, inj, token })
}

/// A reader of /dev/kmsg positioned at the end of the log when opened.
pub struct Kmsg {
    file: File,
}

impl Kmsg {
    pub fn open() -> Result<Kmsg, String> {
        // O_NONBLOCK (same value on x86_64 and aarch64 Linux).
        const O_NONBLOCK: i32 = 0o4000;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open("/dev/kmsg")
            .map_err(|e| format!("open /dev/kmsg: {e}"))?;
        file.seek(SeekFrom::End(0)).map_err(|e| format!("seek /dev/kmsg: {e}"))?;
        Ok(Kmsg { file })
    }

    /// Every message logged since the last call: (sequence number, message without the
    /// record prefix).
    pub fn drain(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or("");
                    if let Some((prefix, msg)) = first.split_once(';') {
                        let seq = prefix.split(',').nth(1).and_then(|q| q.parse().ok()).unwrap_or(0);
                        out.push((seq, msg.to_string()));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // EPIPE: records were overwritten; continue with the next one.
                Err(e) if e.raw_os_error() == Some(32) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// Parses one nf_log line of this run: (frame number, observation).
pub fn parse_log_line(token: &str, line: &str) -> Option<(usize, Obs)> {
    let rest = line.strip_prefix(token)?.strip_prefix(' ')?;
    let mut it = rest.splitn(3, ' ');
    let state = it.next()?.to_string();
    let dir = it.next()?;
    let body = it.next()?;
    let dir = if dir == "-" { None } else { Some(dir.to_string()) };
    // The outer header's fields come first; ICMP errors also print the inner header later.
    let id_pos = body.find(" ID=").map(|p| (p + 4, false));
    let fl_pos = body.find(" FLOWLBL=").map(|p| (p + 9, true));
    let (pos, _) = match (id_pos, fl_pos) {
        (Some(a), Some(b)) => {
            if a.0 < b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    let digits: String = body[pos..].chars().take_while(char::is_ascii_digit).collect();
    let n: usize = digits.parse().ok()?;
    Some((n, Obs { ctstate: state, dir }))
}

/// Runs a scenario through the kernel. `workdir` receives the pcap and the injector script.
pub fn run_kernel(sc: &Scenario, workdir: &Path) -> Result<KernelRun, String> {
    // Scenarios that change the global FTP `loose` parameter run alone; declaration order
    // makes the parameter be restored before the lock is released.
    let (_write, _read) = if sc.ftp_loose {
        (Some(FTP_LOOSE_LOCK.write().unwrap_or_else(|e| e.into_inner())), None)
    } else {
        (None, Some(FTP_LOOSE_LOCK.read().unwrap_or_else(|e| e.into_inner())))
    };
    let _loose = if sc.ftp_loose { Some(LooseGuard::set(true)?) } else { None };

    let topo = setup(sc)?;
    let pcap = workdir.join("kernel.pcap");
    sc.write_pcap(&pcap, true)?;
    let script = workdir.join("inject.py");
    std::fs::write(&script, INJECT_PY).map_err(|e| format!("write {}: {e}", script.display()))?;

    let mut kmsg = Kmsg::open()?;
    let out = run(topo.inj.command("python3").args([
        script.to_str().ok_or("non-UTF-8 path")?,
        pcap.to_str().ok_or("non-UTF-8 path")?,
        &sc.sides(),
        "c",
        "s",
        &topo.rtr.path(),
    ]))?;
    let inj: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("injector output: {e}: {}", String::from_utf8_lossy(&out.stdout)))?;
    let lines = |k: &str| -> Vec<String> {
        inj[k].as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let conntrack = lines("conntrack");
    let expect = lines("expect");
    let sent: Vec<f64> =
        inj["sent"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
    let max_late = inj["max_late"].as_f64().unwrap_or(0.0);

    let mut seen_out: std::collections::HashSet<(IpAddr, IpAddr, u32)> = Default::default();
    for f in inj["forwarded"].as_array().into_iter().flatten() {
        if let Some(k) = f.get(1).and_then(|h| h.as_str()).and_then(decode_hex).and_then(|b| forwarded_key(&b)) {
            seen_out.insert(k);
        }
    }

    let kmsg_seq: Vec<i64> =
        inj["kmsg_seq"].as_array().map(|a| a.iter().filter_map(|v| v.as_i64()).collect()).unwrap_or_default();

    // Collect the log lines of this run.
    let n = sc.frames.len();
    let dg = Datagrams::of(sc);
    let mut frames: Vec<Option<Obs>> = vec![None; n];
    // Per frame: the number its log line carried (IPv4 ID / IPv6 flow label).
    let mut numbers: Vec<Option<u32>> = vec![None; n];
    let mut warnings = Vec::new();
    let expected_seen = (1..=n).filter(|i| !sc.not_seen.contains(i) && !sc.held.contains(i)).count();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut seen = 0usize;
    loop {
        for (seq, l) in kmsg.drain() {
            if !l.starts_with(&topo.token) {
                continue;
            }
            let parsed = parse_log_line(&topo.token, &l);
            match parsed.and_then(|(num, obs)| Some((dg.frame_of_line(num, seq, &kmsg_seq, n)?, num, obs))) {
                Some((i, num, obs)) => {
                    if let Some(prev) = &frames[i - 1] {
                        warnings.push(format!("frame {i} logged twice: {prev} and {obs}"));
                    } else {
                        seen += 1;
                    }
                    frames[i - 1] = Some(obs);
                    numbers[i - 1] = u32::try_from(num).ok();
                }
                None => warnings.push(format!("unmatched log line: {l}")),
            }
        }
        if seen >= expected_seen || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(topo);
    let forwarded = sc
        .frames
        .iter()
        .enumerate()
        .map(|(i, f)| match &f.spec {
            FrameSpec::Ip(p) if verdict_comparable(p, frames[i].as_ref()) => {
                // A reassembled datagram leaves refragmented, every fragment with the
                // datagram's IPv4 ID or the flow label of its first fragment: the number in
                // its log line, attributed to the fragment that completed it.
                let mark = if p.piece.is_some() {
                    numbers[i]?
                } else if p.src.is_ipv4() {
                    u32::from(p.ip_id.unwrap_or(i as u16 + 1))
                } else {
                    p.flow.unwrap_or(i as u32 + 1) & 0xfffff
                };
                Some(seen_out.contains(&(p.src, p.dst, mark)))
            }
            _ => None,
        })
        .collect();
    Ok(KernelRun { frames, conntrack, expect, sent, max_late, forwarded, warnings })
}

/// The fragmented datagrams of a trace, to attribute the one log line of a reassembled
/// datagram to the fragment that completed it.
#[derive(Debug, Default)]
pub struct Datagrams {
    /// Per frame (index 0 = frame 1): the datagram it is a fragment of.
    of_frame: Vec<Option<usize>>,
    /// Log line number (IPv4 ID of a datagram; IPv6 flow label of one of its fragments) to
    /// datagram.
    by_number: BTreeMap<u32, usize>,
}

impl Datagrams {
    /// Groups the fragment frames of `sc` by (source, destination, fragment ID).
    pub fn of(sc: &Scenario) -> Datagrams {
        let mut keys: Vec<(IpAddr, IpAddr, u32)> = Vec::new();
        let mut d = Datagrams { of_frame: vec![None; sc.frames.len()], by_number: BTreeMap::new() };
        for (i, f) in sc.frames.iter().enumerate() {
            let FrameSpec::Ip(p) = &f.spec else { continue };
            let Some(pc) = p.piece else { continue };
            let key = (p.src, p.dst, pc.id);
            let g = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                keys.push(key);
                keys.len() - 1
            });
            d.of_frame[i] = Some(g);
            // IPv4: every fragment (and the reassembled datagram) carries the ID. IPv6: the
            // reassembled datagram has the header of its first fragment, and a fragment
            // passed on un-reassembled its own: each has its frame's flow label.
            let number = if p.src.is_ipv4() { pc.id } else { p.flow.unwrap_or(i as u32 + 1) & 0xfffff };
            d.by_number.insert(number, g);
        }
        d
    }

    /// The 1-based frame a log line belongs to. `num` is the number in the line, `seq` its
    /// kmsg sequence number, `kmsg_seq[i]` the last sequence number the injector saw after
    /// sending frame i+1. A line of a fragmented datagram goes to the latest of its fragments
    /// sent before the line was written (the one that completed it, or a fragment passed on
    /// as it was); any other line to the frame its number names.
    pub fn frame_of_line(&self, num: usize, seq: u64, kmsg_seq: &[i64], n: usize) -> Option<usize> {
        let Some(&g) = u32::try_from(num).ok().and_then(|k| self.by_number.get(&k)) else {
            return (1..=n).contains(&num).then_some(num);
        };
        let sent_by = kmsg_seq.iter().position(|&q| q >= 0 && q as u64 >= seq).map_or(n, |i| i + 1);
        (1..=sent_by.min(n)).rev().find(|&i| self.of_frame[i - 1] == Some(g))
    }
}

/// Whether the router's forwarding decision for this frame reflects conntrack (and its
/// helpers) only: a tracked or INVALID unicast packet with a routable source and TTL > 1.
/// Multicast, link-local sources, TTL 1 and UNTRACKED (ND/MLD) frames are not forwarded by
/// any router, so their verdicts are not compared.
pub fn verdict_comparable(p: &Pkt, obs: Option<&Obs>) -> bool {
    let Some(obs) = obs else { return false };
    let unicast = match p.dst {
        IpAddr::V4(a) => !a.is_multicast() && !a.is_broadcast(),
        IpAddr::V6(a) => !a.is_multicast(),
    };
    let src_ok = match p.src {
        IpAddr::V4(_) => true,
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 != 0xfe80,
    };
    obs.ctstate != "UNTRACKED" && unicast && src_ok && p.ttl > 1 && p.frag.is_none()
}

fn decode_hex(h: &str) -> Option<Vec<u8>> {
    (0..h.len() / 2).map(|i| u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// (source, destination, IPv4 ID or IPv6 flow label) of a captured Ethernet frame.
fn forwarded_key(b: &[u8]) -> Option<(IpAddr, IpAddr, u32)> {
    let et = u16::from_be_bytes([*b.get(12)?, *b.get(13)?]);
    let ip = b.get(14..)?;
    match et {
        0x0800 if ip.len() >= 20 => {
            let src = IpAddr::from(<[u8; 4]>::try_from(&ip[12..16]).ok()?);
            let dst = IpAddr::from(<[u8; 4]>::try_from(&ip[16..20]).ok()?);
            Some((src, dst, u32::from(u16::from_be_bytes([ip[4], ip[5]]))))
        }
        0x86dd if ip.len() >= 40 => {
            let flow = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]) & 0xfffff;
            let src = IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).ok()?);
            let dst = IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).ok()?);
            Some((src, dst, flow))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_parsing() {
        let l = "CTW1X2Z NEW original IN=vc OUT= MAC=02:00:00:00:01:01:02:00:00:00:01:02:08:00 SRC=10.0.1.2 \
                 DST=10.0.2.2 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=17 PROTO=TCP SPT=40000 DPT=80 WINDOW=64000 RES=0x00 SYN URGP=0";
        assert_eq!(
            parse_log_line("CTW1X2Z", l),
            Some((17, Obs { ctstate: "NEW".into(), dir: Some("original".into()) }))
        );
        let l = "CTW1X2Z INVALID - IN=vs OUT= MAC=x SRC=10.0.3.1 DST=10.0.1.2 LEN=56 TOS=0x00 PREC=0x00 TTL=64 ID=5 \
                 PROTO=ICMP TYPE=3 CODE=1 [SRC=10.0.1.2 DST=10.0.9.9 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=0 PROTO=UDP]";
        assert_eq!(parse_log_line("CTW1X2Z", l), Some((5, Obs { ctstate: "INVALID".into(), dir: None })));
        let l = "CTW1X2Z ESTABLISHED reply IN=vs OUT= MAC=x SRC=fd00:0002:0000:0000:0000:0000:0000:0002 \
                 DST=fd00:0001:0000:0000:0000:0000:0000:0002 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=12 PROTO=ICMPv6 TYPE=129";
        assert_eq!(parse_log_line("CTW1X2Z", l).map(|x| x.0), Some(12));
        assert_eq!(parse_log_line("CTW1X2Y", l), None);
    }

    #[test]
    fn reassembled_lines_go_to_the_completing_fragment() {
        use crate::scenario::Builder;
        use crate::trace::{C, C6, FRAG_ID_BASE, S, S6};
        let mut b = Builder::new("unit", "unit");
        let d = Pkt::udp(C, 1, S, 2, &[7; 100]);
        let f = d.fragments(FRAG_ID_BASE, 48);
        b.send(Pkt::udp(C, 1, S, 2, b"x"), "plain"); // 1
        b.send_held(f[1].clone(), "2/3"); // 2
        b.send_held(f[0].clone(), "1/3"); // 3
        b.send(f[2].clone(), "3/3"); // 4
        b.send(Pkt::udp(S, 2, C, 1, b"y"), "plain"); // 5
        let f6 = Pkt::udp(C6, 1, S6, 2, &[7; 100]).fragments(9, 56);
        b.send_held(f6[1].clone(), "2/2"); // 6
        b.send(f6[0].clone(), "1/2"); // 7
        let sc = b.build();
        let dg = Datagrams::of(&sc);
        // kmsg sequence numbers seen after each send.
        let seq = [-1, -1, -1, 20, 21, 21, 30];
        assert_eq!(dg.frame_of_line(1, 5, &seq, 7), Some(1), "an unfragmented frame by its ID");
        assert_eq!(dg.frame_of_line(5, 21, &seq, 7), Some(5));
        let id = FRAG_ID_BASE as usize;
        assert_eq!(dg.frame_of_line(id, 20, &seq, 7), Some(4), "the fragment sent last before the line");
        assert_eq!(dg.frame_of_line(id, 21, &seq, 7), Some(4), "a late line still goes to a fragment");
        assert_eq!(dg.frame_of_line(id, 99, &seq, 7), Some(4), "a line after the last send");
        // IPv6: the line carries the first fragment's flow label (its frame number, 7).
        assert_eq!(dg.frame_of_line(7, 30, &seq, 7), Some(7));
        assert_eq!(dg.frame_of_line(6, 30, &seq, 7), Some(7));
        assert_eq!(dg.frame_of_line(id + 1, 30, &seq, 7), None, "an ID of no frame");
        assert_eq!(dg.frame_of_line(8, 30, &seq, 7), None);
        // A fragment is compared on its forwarding only when the kernel logged it.
        let est = Obs { ctstate: "NEW".into(), dir: Some("original".into()) };
        assert!(verdict_comparable(&f[2], Some(&est)));
        assert!(!verdict_comparable(&f[0], None));
    }

    #[test]
    fn forwarded_frames_are_keyed_like_the_trace() {
        use crate::trace::{flags::SYN, C, C6, S, S6};
        let p = Pkt::tcp(C, 1, S, 2, SYN, 0, 0);
        let f = FrameSpec::Ip(p.clone()).render(7, false);
        assert_eq!(forwarded_key(&f), Some((IpAddr::from(C), IpAddr::from(S), 7)));
        let f = FrameSpec::Ip(Pkt::udp(C6, 1, S6, 2, b"x")).render(9, false);
        assert_eq!(forwarded_key(&f), Some((IpAddr::from(C6), IpAddr::from(S6), 9)));
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));

        let est = Obs { ctstate: "ESTABLISHED".into(), dir: Some("original".into()) };
        let untracked = Obs { ctstate: "UNTRACKED".into(), dir: None };
        assert!(verdict_comparable(&p, Some(&est)));
        assert!(!verdict_comparable(&p, None));
        assert!(!verdict_comparable(&p, Some(&untracked)));
        assert!(!verdict_comparable(&p.clone().ttl(1), Some(&est)));
        let ll = Pkt::udp(crate::trace::link_local(1), 1, S6, 2, b"x");
        assert!(!verdict_comparable(&ll, Some(&est)));
    }
}
