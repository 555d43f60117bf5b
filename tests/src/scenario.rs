//! The scenario model shared by the kernel reference and the ctwall runner.

use crate::trace::{write_pcap, FrameSpec, Pkt, Side, TimedFrame};
use std::path::Path;

/// Sysctl-style knobs whose value is a boolean (written as 0/1 to the kernel and as
/// `true`/`false` to the ctwall RON config).
pub const BOOL_KNOBS: [&str; 5] = ["tcp_loose", "tcp_be_liberal", "tcp_ignore_invalid_rst", "checksum", "acct"];

/// Every knob name accepted in [`Scenario::sysctls`]: the kernel sysctl name without the
/// `net.netfilter.nf_conntrack_` prefix, which is also the ctwall config key.
pub const KNOWN_KNOBS: [&str; 33] = [
    "tcp_timeout_syn_sent",
    "tcp_timeout_syn_recv",
    "tcp_timeout_established",
    "tcp_timeout_fin_wait",
    "tcp_timeout_close_wait",
    "tcp_timeout_last_ack",
    "tcp_timeout_time_wait",
    "tcp_timeout_close",
    "tcp_timeout_max_retrans",
    "tcp_timeout_unacknowledged",
    "tcp_loose",
    "tcp_be_liberal",
    "tcp_ignore_invalid_rst",
    "tcp_max_retrans",
    "udp_timeout",
    "udp_timeout_stream",
    "sctp_timeout_closed",
    "sctp_timeout_cookie_wait",
    "sctp_timeout_cookie_echoed",
    "sctp_timeout_established",
    "sctp_timeout_shutdown_sent",
    "sctp_timeout_shutdown_recd",
    "sctp_timeout_shutdown_ack_sent",
    "sctp_timeout_heartbeat_sent",
    "icmp_timeout",
    "icmpv6_timeout",
    "generic_timeout",
    "gre_timeout",
    "gre_timeout_stream",
    "checksum",
    "acct",
    "max",
    "expect_max",
];

/// Defragmentation knobs: the ctwall `defrag: (...)` config key and the kernel sysctl that
/// the kernel reference sets in the router namespace.
pub const DEFRAG_KNOBS: [(&str, &str); 7] = [
    ("ipfrag_time", "net.ipv4.ipfrag_time"),
    ("ipfrag_high_thresh", "net.ipv4.ipfrag_high_thresh"),
    ("ipfrag_low_thresh", "net.ipv4.ipfrag_low_thresh"),
    ("ipfrag_max_dist", "net.ipv4.ipfrag_max_dist"),
    ("frag6_timeout", "net.netfilter.nf_conntrack_frag6_timeout"),
    ("frag6_high_thresh", "net.netfilter.nf_conntrack_frag6_high_thresh"),
    ("frag6_low_thresh", "net.netfilter.nf_conntrack_frag6_low_thresh"),
];

/// One differential scenario: knobs plus a timed list of frames.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// What it checks (spec reference).
    pub about: &'static str,
    /// Knobs, e.g. `("tcp_timeout_syn_sent", 4)`; booleans as 0/1.
    pub sysctls: Vec<(&'static str, i64)>,
    /// Defragmentation knobs (see [`DEFRAG_KNOBS`]), e.g. `("ipfrag_time", 2)`.
    pub defrag: Vec<(&'static str, i64)>,
    /// FTP helper on port 21 and TFTP helper on port 69 (default on).
    pub helpers: bool,
    /// The `nf_conntrack_ftp` module parameter `loose` (global in the kernel).
    pub ftp_loose: bool,
    pub frames: Vec<TimedFrame>,
    /// 1-based frame numbers the kernel is expected not to see (e.g. non-IP frames).
    pub not_seen: Vec<usize>,
    /// The scenario has VLAN-tagged frames: the kernel gets them untagged.
    pub has_vlan: bool,
    /// 1-based frame numbers of fragments that reassembly holds (waiting for the rest), drops
    /// as duplicates or discards (overlap, timeout, too big...): conntrack never sees them,
    /// so the kernel logs nothing for them and ctwall must report `"ctstate":"NONE"`.
    pub held: Vec<usize>,
}

impl Scenario {
    /// Renders all frames: (microseconds, bytes). `strip_vlan` removes 802.1Q tags.
    pub fn rendered(&self, strip_vlan: bool) -> Vec<(u64, Vec<u8>)> {
        self.frames.iter().enumerate().map(|(i, f)| (f.t_us, f.spec.render(i as u32 + 1, strip_vlan))).collect()
    }

    /// Writes the trace as a classic pcap.
    pub fn write_pcap(&self, path: &Path, strip_vlan: bool) -> Result<(), String> {
        let f = std::fs::File::create(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        write_pcap(std::io::BufWriter::new(f), &self.rendered(strip_vlan)).map_err(|e| format!("write pcap: {e}"))
    }

    /// The injector's side list (`c`/`s` per frame).
    pub fn sides(&self) -> String {
        self.frames.iter().map(|f| f.spec.side().as_char()).collect()
    }

    /// A knob's value if the scenario sets it.
    pub fn knob(&self, key: &str) -> Option<i64> {
        self.sysctls.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The ctwall RON configuration for this scenario.
    pub fn ctwall_config(&self) -> String {
        let mut ct = Vec::new();
        for (k, v) in &self.sysctls {
            if BOOL_KNOBS.contains(k) {
                ct.push(format!("{k}: {}", *v != 0));
            } else {
                ct.push(format!("{k}: {v}"));
            }
        }
        let helpers = if self.helpers {
            let loose = if self.ftp_loose { ", loose: true" } else { "" };
            format!("[(helper: \"ftp\", ports: [21]{loose}), (helper: \"tftp\", ports: [69])]")
        } else {
            "[]".to_string()
        };
        let defrag = if self.defrag.is_empty() {
            String::new()
        } else {
            let kv: Vec<String> = self.defrag.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("    defrag: ({}),\n", kv.join(", "))
        };
        format!("(\n    conntrack: ({}),\n{defrag}    helpers: {helpers},\n)\n", ct.join(", "))
    }
}

/// Builds a [`Scenario`] frame by frame with a running clock.
pub struct Builder {
    sc: Scenario,
    next_us: u64,
    gap_us: u64,
}

/// Default gap between consecutive frames.
pub const DEFAULT_GAP_US: u64 = 3_000;

impl Builder {
    pub fn new(name: &'static str, about: &'static str) -> Builder {
        Builder {
            sc: Scenario {
                name,
                about,
                sysctls: Vec::new(),
                defrag: Vec::new(),
                helpers: true,
                ftp_loose: false,
                frames: Vec::new(),
                not_seen: Vec::new(),
                has_vlan: false,
                held: Vec::new(),
            },
            next_us: 0,
            gap_us: DEFAULT_GAP_US,
        }
    }

    /// Sets a knob (see [`KNOWN_KNOBS`]).
    pub fn sysctl(mut self, key: &'static str, value: i64) -> Builder {
        assert!(KNOWN_KNOBS.contains(&key), "unknown knob {key}");
        self.sc.sysctls.push((key, value));
        self
    }

    /// Sets a defragmentation knob (see [`DEFRAG_KNOBS`]).
    pub fn defrag(mut self, key: &'static str, value: i64) -> Builder {
        assert!(DEFRAG_KNOBS.iter().any(|(k, _)| *k == key), "unknown defrag knob {key}");
        self.sc.defrag.push((key, value));
        self
    }

    pub fn no_helpers(mut self) -> Builder {
        self.sc.helpers = false;
        self
    }

    pub fn ftp_loose(mut self) -> Builder {
        self.sc.ftp_loose = true;
        self
    }

    /// Sends a packet after the current gap; returns its 1-based frame number.
    pub fn send(&mut self, p: Pkt, note: &str) -> usize {
        if p.vlan.is_some() {
            self.sc.has_vlan = true;
        }
        self.push(FrameSpec::Ip(p), note)
    }

    /// Sends a fragment that reassembly is expected to hold, drop as a duplicate or discard
    /// (no ctstate of its own: see [`Scenario::held`]); returns its frame number.
    pub fn send_held(&mut self, p: Pkt, note: &str) -> usize {
        assert!(p.piece.is_some(), "send_held() of a packet that is not a fragment");
        let n = self.send(p, note);
        self.sc.held.push(n);
        n
    }

    /// Sends a non-IP Ethernet frame (expected not to be seen by the kernel).
    pub fn send_eth(&mut self, ethertype: u16, payload: &[u8], side: Side, note: &str) -> usize {
        let n = self.push(FrameSpec::Eth { ethertype, payload: payload.to_vec(), side }, note);
        self.sc.not_seen.push(n);
        n
    }

    fn push(&mut self, spec: FrameSpec, note: &str) -> usize {
        let t_us = self.next_us;
        self.sc.frames.push(TimedFrame { t_us, spec, note: note.to_string() });
        self.next_us = t_us + self.gap_us;
        self.sc.frames.len()
    }

    /// Waits `secs` more before the next frame (on top of the normal gap).
    pub fn wait(&mut self, secs: f64) {
        self.next_us += (secs * 1e6).round() as u64;
    }

    /// Sets the time of the next frame to `secs` after the first frame (must not go back).
    pub fn at(&mut self, secs: f64) {
        let t = (secs * 1e6).round() as u64;
        assert!(t >= self.next_us.saturating_sub(self.gap_us), "time goes backwards");
        self.next_us = t;
    }

    /// Declares that the kernel is expected not to see frame `n`.
    pub fn expect_not_seen(&mut self, n: usize) {
        self.sc.not_seen.push(n);
    }

    pub fn build(self) -> Scenario {
        assert!(!self.sc.frames.is_empty(), "scenario {} has no frames", self.sc.name);
        self.sc
    }
}
