//! ctwall's configuration, read from RON.
//!
//! Plain data with serde. Every field has the kernel's default, unknown
//! fields are errors, and values are validated while they are parsed
//! (through `try_from` newtypes), so every error — syntax or meaning — is
//! reported as `FILE:LINE:COL: message`.
//!
//! ```ron
//! (
//!     // net.netfilter.nf_conntrack_* without the prefix
//!     conntrack: (tcp_timeout_established: 7200, tcp_loose: true),
//!     // like nftables `ct helper set`: explicit, by protocol and port
//!     helpers: [(helper: "ftp", ports: [21]), (helper: "tftp", ports: [69])],
//!     interfaces: (inside: "veth-in", outside: "veth-out"),
//!     filter: (
//!         outside_to_inside: (policy: "drop", rules: [
//!             (name: "est", match: (ctstate: ["ESTABLISHED", "RELATED"]), action: "accept"),
//!         ]),
//!     ),
//! )
//! ```
//!
//! `Option` fields may be written bare (`name: "est"`) or as `Some(...)`.
#![forbid(unsafe_code)]

mod mgmt;
mod rules;

pub use mgmt::*;
pub use rules::*;

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub conntrack: Conntrack,
    /// Fragment reassembly ahead of tracking.
    pub defrag: Defrag,
    pub helpers: Helpers,
    /// The two bridged interfaces.
    pub interfaces: Interfaces,
    /// AF_XDP settings.
    pub xdp: Xdp,
    /// Worker threads, one per AF_XDP queue: worker `i` binds queue
    /// `xdp.queue + i` of both interfaces. Both directions of a connection
    /// may arrive at different workers; they share one connection table.
    pub workers: Workers,
    /// CPUs to pin the workers to (worker `i` on `cpus[i % len]`). Without
    /// it, several workers go to the CPUs the process may use in turn, and a
    /// single worker is not pinned.
    pub cpus: Option<Cpus>,
    /// Bridge frames that are neither IPv4 nor IPv6 (ARP, LLDP, ...);
    /// `false` drops them.
    pub bridge_non_ip: bool,
    /// The pre-tracking stage (like the iptables raw table): first match wins.
    pub raw: Vec<RawRule>,
    /// The filter stage, after tracking.
    pub filter: Filter,
    /// The management plane (own addresses, HTTP service); none by default.
    pub mgmt: Option<Mgmt>,
}

impl Default for Config {
    /// Kernel defaults, FTP/TFTP helpers, and a ruleset accepting everything.
    fn default() -> Self {
        Config {
            conntrack: Conntrack::default(),
            defrag: Defrag::default(),
            helpers: Helpers::default(),
            interfaces: Interfaces::default(),
            xdp: Xdp::default(),
            workers: Workers::default(),
            cpus: None,
            bridge_non_ip: true,
            raw: Vec::new(),
            filter: Filter::default(),
            mgmt: None,
        }
    }
}

/// A timeout in whole seconds, at least 1.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Secs(pub u32);

impl TryFrom<u64> for Secs {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(0) => Err("a timeout of at least 1 second".into()),
            Ok(s) => Ok(Secs(s)),
            Err(_) => Err(format!("a timeout of at most {} seconds, not {v}", u32::MAX)),
        }
    }
}

/// A connection table size: the table is allocated at start, so there is
/// no "unlimited".
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct TableSize(pub u32);

/// The largest table size (slot numbers keep two bits for the index).
pub const MAX_TABLE_SIZE: u64 = 1 << 30;

impl TryFrom<u64> for TableSize {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match v {
            1..=MAX_TABLE_SIZE => Ok(TableSize(v as u32)),
            _ => Err(format!("a number of connections between 1 and {MAX_TABLE_SIZE}, not {v}")),
        }
    }
}

/// Memory for fragment reassembly, in bytes: at least 64 KiB (one largest
/// datagram), at most 1 GiB. It is allocated at start.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct FragMem(pub u32);

impl TryFrom<u64> for FragMem {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match v {
            65_536..=0x4000_0000 => Ok(FragMem(v as u32)),
            _ => Err(format!("a number of bytes between 65536 and 1073741824, not {v}")),
        }
    }
}

/// Fragment reassembly ahead of tracking, named after the kernel's sysctls
/// (`net.ipv4.ipfrag_*`, `net.netfilter.nf_conntrack_frag6_*`); defaults
/// are the kernel's. The `*_low_thresh` settings are obsolete in the kernel
/// since Linux 4.17 and here: accepted (at most the high one) and unused.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DefragSpec")]
pub struct Defrag {
    pub ipfrag_time: Secs,
    pub ipfrag_high_thresh: FragMem,
    pub ipfrag_low_thresh: FragMem,
    /// 0 disables the check.
    pub ipfrag_max_dist: u32,
    pub frag6_timeout: Secs,
    pub frag6_high_thresh: FragMem,
    pub frag6_low_thresh: FragMem,
}

/// [`Defrag`] as written, before the low/high check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DefragSpec {
    ipfrag_time: Secs,
    ipfrag_high_thresh: FragMem,
    ipfrag_low_thresh: FragMem,
    ipfrag_max_dist: u32,
    frag6_timeout: Secs,
    frag6_high_thresh: FragMem,
    frag6_low_thresh: FragMem,
}

impl Default for DefragSpec {
    fn default() -> Self {
        let d = Defrag::default();
        DefragSpec {
            ipfrag_time: d.ipfrag_time,
            ipfrag_high_thresh: d.ipfrag_high_thresh,
            ipfrag_low_thresh: d.ipfrag_low_thresh,
            ipfrag_max_dist: d.ipfrag_max_dist,
            frag6_timeout: d.frag6_timeout,
            frag6_high_thresh: d.frag6_high_thresh,
            frag6_low_thresh: d.frag6_low_thresh,
        }
    }
}

impl TryFrom<DefragSpec> for Defrag {
    type Error = String;
    fn try_from(d: DefragSpec) -> Result<Self, String> {
        if d.ipfrag_low_thresh.0 > d.ipfrag_high_thresh.0 || d.frag6_low_thresh.0 > d.frag6_high_thresh.0 {
            return Err("each *_low_thresh at most its *_high_thresh (as the kernel's sysctls require)".into());
        }
        Ok(Defrag {
            ipfrag_time: d.ipfrag_time,
            ipfrag_high_thresh: d.ipfrag_high_thresh,
            ipfrag_low_thresh: d.ipfrag_low_thresh,
            ipfrag_max_dist: d.ipfrag_max_dist,
            frag6_timeout: d.frag6_timeout,
            frag6_high_thresh: d.frag6_high_thresh,
            frag6_low_thresh: d.frag6_low_thresh,
        })
    }
}

impl Default for Defrag {
    fn default() -> Self {
        Defrag {
            ipfrag_time: Secs(30),
            ipfrag_high_thresh: FragMem(4 << 20),
            ipfrag_low_thresh: FragMem(3 << 20),
            ipfrag_max_dist: 64,
            frag6_timeout: Secs(60),
            frag6_high_thresh: FragMem(4 << 20),
            frag6_low_thresh: FragMem(3 << 20),
        }
    }
}

/// Tracker settings, named after `net.netfilter.nf_conntrack_*` sysctls.
/// Defaults are the kernel's.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conntrack {
    pub tcp_timeout_syn_sent: Secs,
    pub tcp_timeout_syn_recv: Secs,
    pub tcp_timeout_established: Secs,
    pub tcp_timeout_fin_wait: Secs,
    pub tcp_timeout_close_wait: Secs,
    pub tcp_timeout_last_ack: Secs,
    pub tcp_timeout_time_wait: Secs,
    pub tcp_timeout_close: Secs,
    pub tcp_timeout_syn_sent2: Secs,
    pub tcp_timeout_max_retrans: Secs,
    pub tcp_timeout_unacknowledged: Secs,
    pub tcp_loose: bool,
    pub tcp_be_liberal: bool,
    pub tcp_ignore_invalid_rst: bool,
    pub tcp_max_retrans: u8,
    pub udp_timeout: Secs,
    pub udp_timeout_stream: Secs,
    pub sctp_timeout_closed: Secs,
    pub sctp_timeout_cookie_wait: Secs,
    pub sctp_timeout_cookie_echoed: Secs,
    pub sctp_timeout_established: Secs,
    pub sctp_timeout_shutdown_sent: Secs,
    pub sctp_timeout_shutdown_recd: Secs,
    pub sctp_timeout_shutdown_ack_sent: Secs,
    pub sctp_timeout_heartbeat_sent: Secs,
    pub icmp_timeout: Secs,
    pub icmpv6_timeout: Secs,
    pub generic_timeout: Secs,
    pub gre_timeout: Secs,
    pub gre_timeout_stream: Secs,
    pub checksum: bool,
    pub acct: bool,
    /// `nf_conntrack_max` for IPv4 connections; the table is allocated for
    /// this many at start.
    pub max: TableSize,
    /// The same for IPv6 connections (the kernel has one limit for both).
    pub max_v6: TableSize,
    /// `nf_conntrack_expect_max`.
    pub expect_max: u32,
}

impl Default for Conntrack {
    fn default() -> Self {
        Conntrack {
            tcp_timeout_syn_sent: Secs(120),
            tcp_timeout_syn_recv: Secs(60),
            tcp_timeout_established: Secs(432_000),
            tcp_timeout_fin_wait: Secs(120),
            tcp_timeout_close_wait: Secs(60),
            tcp_timeout_last_ack: Secs(30),
            tcp_timeout_time_wait: Secs(120),
            tcp_timeout_close: Secs(10),
            tcp_timeout_syn_sent2: Secs(120),
            tcp_timeout_max_retrans: Secs(300),
            tcp_timeout_unacknowledged: Secs(300),
            tcp_loose: true,
            tcp_be_liberal: false,
            tcp_ignore_invalid_rst: false,
            tcp_max_retrans: 3,
            udp_timeout: Secs(30),
            udp_timeout_stream: Secs(120),
            sctp_timeout_closed: Secs(10),
            sctp_timeout_cookie_wait: Secs(3),
            sctp_timeout_cookie_echoed: Secs(3),
            sctp_timeout_established: Secs(210),
            sctp_timeout_shutdown_sent: Secs(3),
            sctp_timeout_shutdown_recd: Secs(3),
            sctp_timeout_shutdown_ack_sent: Secs(3),
            sctp_timeout_heartbeat_sent: Secs(30),
            icmp_timeout: Secs(30),
            icmpv6_timeout: Secs(30),
            generic_timeout: Secs(600),
            gre_timeout: Secs(30),
            gre_timeout_stream: Secs(180),
            checksum: true,
            acct: false,
            max: TableSize(262_144),
            max_v6: TableSize(65_536),
            expect_max: 4096,
        }
    }
}

/// Which ALG a helper entry attaches.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum HelperKind {
    /// FTP on TCP: PORT, EPRT, 227, 229.
    Ftp,
    /// TFTP on UDP: RRQ, WRQ.
    Tftp,
}

impl TryFrom<String> for HelperKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "ftp" => Ok(HelperKind::Ftp),
            "tftp" => Ok(HelperKind::Tftp),
            _ => Err(format!("a helper name, \"ftp\" or \"tftp\", not {s:?}")),
        }
    }
}

impl HelperKind {
    pub const fn name(self) -> &'static str {
        match self {
            HelperKind::Ftp => "ftp",
            HelperKind::Tftp => "tftp",
        }
    }
}

/// A non-empty list of distinct, non-zero ports.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u16>")]
pub struct Ports(pub Vec<u16>);

impl TryFrom<Vec<u16>> for Ports {
    type Error = String;
    fn try_from(v: Vec<u16>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("at least one port".into());
        }
        if v.contains(&0) {
            return Err("ports between 1 and 65535, not 0".into());
        }
        let mut sorted = v.clone();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("distinct ports, but {} is listed twice", w[0]));
        }
        Ok(Ports(v))
    }
}

/// One helper assignment, like `nft ... tcp dport 21 ct helper set "ftp"`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperSpec {
    pub helper: HelperKind,
    pub ports: Ports,
    /// FTP only: the `nf_conntrack_ftp loose=1` module parameter (accept
    /// PORT/227 addresses other than the sender's).
    #[serde(default)]
    pub loose: bool,
}

/// Helper assignments: no port claimed twice for the same protocol.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<HelperSpec>")]
pub struct Helpers(pub Vec<HelperSpec>);

impl Default for Helpers {
    /// The default configuration attaches FTP on 21 and TFTP on 69.
    fn default() -> Self {
        Helpers(vec![
            HelperSpec { helper: HelperKind::Ftp, ports: Ports(vec![21]), loose: false },
            HelperSpec { helper: HelperKind::Tftp, ports: Ports(vec![69]), loose: false },
        ])
    }
}

impl TryFrom<Vec<HelperSpec>> for Helpers {
    type Error = String;
    fn try_from(v: Vec<HelperSpec>) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        for h in &v {
            if h.loose && h.helper != HelperKind::Ftp {
                return Err(format!("`loose` only on an ftp helper, not on {}", h.helper.name()));
            }
            for &p in &h.ports.0 {
                // FTP and TFTP run on different protocols, so a clash is the same kind twice.
                if !seen.insert((h.helper, p)) {
                    return Err(format!("one {} helper per port, but port {p} is assigned twice", h.helper.name()));
                }
            }
        }
        Ok(Helpers(v))
    }
}

/// A configuration error with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the file could not be read at all.
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parse RON text; `file` names the source in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let _names = rules::NameScope::enter();
        ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str::<Config>(text)
            .map_err(|e| ConfigError {
                file: file.to_path_buf(),
                line: e.position.line,
                col: e.position.col,
                message: describe(&e.code),
            })
    }

    /// Read and parse a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Check that both interfaces exist (in `/sys/class/net`) and have the
    /// queues the workers bind ([`Config::check_queues`]). `file` is the
    /// configuration the settings came from: the error points at the
    /// `inside:` / `outside:` field when the file names it.
    pub fn check_interfaces_exist(&self, file: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        self.check_interfaces_in(Path::new("/sys/class/net"), &text, file)
    }

    /// [`Config::check_interfaces_exist`] against another directory of
    /// interfaces and the configuration's text.
    pub fn check_interfaces_in(&self, sys_class_net: &Path, text: &str, file: &Path) -> Result<(), ConfigError> {
        for (key, name) in [("inside", &self.interfaces.inside), ("outside", &self.interfaces.outside)] {
            if !sys_class_net.join(&name.0).exists() {
                let (line, col) = find_key(text, "interfaces", key).unwrap_or((0, 0));
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line,
                    col,
                    message: format!("expected an existing network interface as {key}, but there is no {:?}", name.0),
                });
            }
        }
        self.check_queues_in(sys_class_net, text, file)
    }

    /// Check that both interfaces have the queues the workers bind
    /// (`xdp.queue` to `xdp.queue + workers - 1`), counting the `rx-*` and
    /// `tx-*` entries of `/sys/class/net/IFACE/queues`. The error points at
    /// `workers:` (or `xdp.queue:`) when the file sets it.
    pub fn check_queues(&self, file: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        self.check_queues_in(Path::new("/sys/class/net"), &text, file)
    }

    /// [`Config::check_queues`] against another directory of interfaces and
    /// the configuration's text.
    pub fn check_queues_in(&self, sys_class_net: &Path, text: &str, file: &Path) -> Result<(), ConfigError> {
        let (first, workers) = (u64::from(self.xdp.queue), u64::from(self.workers.0));
        let need = first + workers;
        for name in [&self.interfaces.inside, &self.interfaces.outside] {
            let Some((rx, tx)) = queue_counts(&sys_class_net.join(&name.0).join("queues")) else { continue };
            if need <= u64::from(rx.min(tx)) {
                continue;
            }
            let (line, col) =
                find_top_key(text, "workers").or_else(|| find_key(text, "xdp", "queue")).unwrap_or((0, 0));
            let queues =
                if workers == 1 { format!("queue {first}") } else { format!("queues {first} to {}", need - 1) };
            let plural = if workers == 1 { "" } else { "s" };
            return Err(ConfigError {
                file: file.to_path_buf(),
                line,
                col,
                message: format!(
                    "expected at most as many workers as the interfaces have queues: {workers} worker{plural} \
                     bind{s} {queues}, but {name} has {rx} RX and {tx} TX queues",
                    s = if workers == 1 { "s" } else { "" },
                ),
            });
        }
        Ok(())
    }

    /// Check that every CPU of `cpus` is one of `allowed` (the CPUs this
    /// process may run on). The error points at `cpus:` when the file sets it.
    pub fn check_cpus(&self, allowed: &[usize], file: &Path) -> Result<(), ConfigError> {
        let Some(cpus) = &self.cpus else { return Ok(()) };
        let Some(bad) = cpus.0.iter().find(|&&c| !allowed.contains(&(c as usize))) else { return Ok(()) };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let (line, col) = find_top_key(&text, "cpus").unwrap_or((0, 0));
        Err(ConfigError {
            file: file.to_path_buf(),
            line,
            col,
            message: format!(
                "expected CPUs this process may run on ({}), but cpu {bad} is not one of them",
                cpu_list(allowed)
            ),
        })
    }
}

/// The RX and TX queues in a `/sys/class/net/IFACE/queues` directory;
/// `None` if it cannot be read or lists none.
fn queue_counts(dir: &Path) -> Option<(u32, u32)> {
    let (mut rx, mut tx) = (0u32, 0u32);
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("rx-") {
            rx += 1;
        } else if name.starts_with("tx-") {
            tx += 1;
        }
    }
    (rx > 0 && tx > 0).then_some((rx, tx))
}

/// CPU numbers as ranges: `0-3,6`.
fn cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { sorted[i].to_string() } else { format!("{}-{}", sorted[i], sorted[j]) });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// 1-based line and column of a top-level `key:` in RON text (its first
/// occurrence outside `//` comments).
fn find_top_key(text: &str, key: &str) -> Option<(usize, usize)> {
    text.lines().enumerate().find_map(|(i, line)| {
        let code = line.split("//").next().unwrap_or("");
        find_ident(code, key).map(|p| (i + 1, p + 1))
    })
}

/// 1-based line and column of `key:` after `section:` in RON text (skipping
/// `//` comments), for errors about values that exist only at runtime.
fn find_key(text: &str, section: &str, key: &str) -> Option<(usize, usize)> {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut from = 0;
        if !in_section {
            if let Some(p) = find_ident(code, section) {
                in_section = true;
                from = p + section.len();
            }
        }
        if in_section {
            if let Some(p) = find_ident(&code[from..], key) {
                return Some((i + 1, from + p + 1));
            }
        }
    }
    None
}

/// Byte offset of `ident` followed by optional spaces and ':' and not part of a longer identifier.
fn find_ident(s: &str, ident: &str) -> Option<usize> {
    let mut start = 0;
    while let Some(p) = s[start..].find(ident) {
        let at = start + p;
        let before_ok = at == 0 || !s.as_bytes()[at - 1].is_ascii_alphanumeric() && s.as_bytes()[at - 1] != b'_';
        let rest = s[at + ident.len()..].trim_start();
        if before_ok && rest.starts_with(':') {
            return Some(at);
        }
        start = at + ident.len();
    }
    None
}

fn describe(code: &ron::Error) -> String {
    match code {
        // Validation messages from the `try_from` types say what was expected.
        ron::Error::Message(m) => format!("expected {m}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("t.ron"))
    }

    #[test]
    fn empty_config_is_kernel_defaults() {
        let c = parse("()").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.conntrack.tcp_timeout_established, Secs(432_000));
        assert_eq!(c.helpers.0.len(), 2);
    }

    #[test]
    fn overrides_and_helpers() {
        let c = parse("(conntrack: (tcp_timeout_syn_sent: 10, tcp_loose: false), helpers: [(helper: \"ftp\", ports: [21, 2121], loose: true)])")
            .unwrap();
        assert_eq!(c.conntrack.tcp_timeout_syn_sent, Secs(10));
        assert!(!c.conntrack.tcp_loose);
        assert_eq!(
            c.helpers.0,
            vec![HelperSpec { helper: HelperKind::Ftp, ports: Ports(vec![21, 2121]), loose: true }]
        );
    }

    #[test]
    fn defrag_limits_with_the_kernel_names() {
        let c = parse("(defrag: (ipfrag_time: 5, frag6_high_thresh: 1048576, frag6_low_thresh: 65536))").unwrap();
        assert_eq!((c.defrag.ipfrag_time, c.defrag.frag6_high_thresh), (Secs(5), FragMem(1 << 20)));
        assert_eq!((c.defrag.ipfrag_high_thresh, c.defrag.ipfrag_max_dist), (FragMem(4 << 20), 64));
        for (text, want, line) in [
            ("(defrag: (ipfrag_high_thresh: 1000))", "between 65536 and 1073741824, not 1000", 1),
            ("(\n defrag: (ipfrag_high_thresh: 65536))", "each *_low_thresh at most its *_high_thresh", 2),
            ("(defrag: (ipfrag_time: 0))", "at least 1 second", 1),
            ("(defrag: (frag_time: 3))", "frag_time", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(want) && e.line == line, "{text}: {e}");
        }
    }

    #[test]
    fn sctp_timeouts_are_validated_timeouts() {
        let c = parse("(conntrack: (sctp_timeout_established: 3600, sctp_timeout_heartbeat_sent: 5))").unwrap();
        assert_eq!(c.conntrack.sctp_timeout_established, Secs(3600));
        assert_eq!(c.conntrack.sctp_timeout_heartbeat_sent, Secs(5));
        assert_eq!(c.conntrack.sctp_timeout_closed, Secs(10));
        let e = parse("(conntrack: (sctp_timeout_cookie_wait: 0))").unwrap_err();
        assert!(e.message.contains("at least 1 second"), "{e}");
    }

    #[test]
    fn errors_carry_position_and_expectation() {
        let e = parse("(\n  conntrack: (tcp_timeout_syn_snt: 10),\n)").unwrap_err();
        assert_eq!((e.line, e.file.to_str()), (2, Some("t.ron")));
        assert!(e.message.contains("tcp_timeout_syn_snt"), "{e}");
        assert!(e.to_string().starts_with("t.ron:2:"), "{e}");

        let e = parse("(conntrack: (udp_timeout: 0))").unwrap_err();
        assert!(e.message.contains("at least 1 second"), "{e}");
        assert_eq!(e.line, 1);

        let e = parse("(helpers: [(helper: \"ftp\", ports: [])])").unwrap_err();
        assert!(e.message.contains("at least one port"), "{e}");

        let e = parse("(helpers: [(helper: \"ftp\", ports: [21]),\n (helper: \"ftp\", ports: [21])])").unwrap_err();
        assert!(e.message.contains("port 21 is assigned twice"), "{e}");
        assert_eq!(e.line, 2);

        let e = parse("(helpers: [(helper: \"tftp\", ports: [69], loose: true)])").unwrap_err();
        assert!(e.message.contains("only on an ftp helper"), "{e}");

        let e = parse("(helpers: [(helper: \"sip\", ports: [5060])])").unwrap_err();
        assert!(e.message.contains("sip"), "{e}");

        let e = parse("(conntrack: (tcp_loose: 1))").unwrap_err();
        assert!(e.message.to_lowercase().contains("bool"), "{e}");
    }

    #[test]
    fn workers_and_cpus() {
        let c = parse("(workers: 4, cpus: [2, 3])").unwrap();
        assert_eq!((c.workers, c.cpus.as_ref().map(|c| c.0.clone())), (Workers(4), Some(vec![2, 3])));
        assert_eq!((0..4).map(|i| c.cpus.as_ref().unwrap().for_worker(i)).collect::<Vec<_>>(), vec![2, 3, 2, 3]);
        assert_eq!(parse("()").unwrap().workers, Workers(1));
        for (text, want) in [
            ("(\n workers: 0)", "between 1 and 256"),
            ("(\n workers: 257)", "between 1 and 256"),
            ("(\n cpus: [])", "at least one CPU"),
            ("(\n cpus: [1, 1])", "1 is listed twice"),
            ("(\n cpus: [1024])", "below 1024"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(want) && e.line == 2, "{text}: {e}");
        }
    }

    /// A fake `/sys/class/net` with `fwin` (2 queues each way) and `fwout` (`rx` RX and `tx`
    /// TX queues).
    fn fake_sys(rx: u32, tx: u32) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ctwall-config-sys-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, rx, tx) in [("fwin", 2, 2), ("fwout", rx, tx)] {
            for (kind, count) in [("rx", rx), ("tx", tx)] {
                for q in 0..count {
                    std::fs::create_dir_all(dir.join(name).join("queues").join(format!("{kind}-{q}"))).unwrap();
                }
            }
        }
        dir
    }

    #[test]
    fn more_workers_than_queues_is_an_error_at_the_workers_field() {
        let sys = fake_sys(2, 1);
        let text = "(\n  interfaces: (inside: \"fwin\", outside: \"fwout\"),\n  workers: 2,\n)";
        let c = parse(text).unwrap();
        let e = c.check_interfaces_in(&sys, text, Path::new("t.ron")).unwrap_err();
        assert_eq!((e.line, e.col), (3, 3), "{e}");
        assert!(e.message.contains("2 workers bind queues 0 to 1, but fwout has 2 RX and 1 TX queues"), "{e}");
        let _ = std::fs::remove_dir_all(sys);
        // Enough queues: fine; queue 1 with one worker on a two-queue pair too.
        let sys = fake_sys(2, 2);
        c.check_interfaces_in(&sys, text, Path::new("t.ron")).unwrap();
        let text = "(\n  interfaces: (inside: \"fwin\", outside: \"fwout\"),\n  xdp: (queue: 1),\n)";
        parse(text).unwrap().check_queues_in(&sys, text, Path::new("t.ron")).unwrap();
        // Queue 2 does not exist: the error points at `queue:`.
        let text = "(\n  interfaces: (inside: \"fwin\", outside: \"fwout\"),\n  xdp: (queue: 2),\n)";
        let e = parse(text).unwrap().check_queues_in(&sys, text, Path::new("t.ron")).unwrap_err();
        assert_eq!((e.line, e.col), (3, 9), "{e}");
        assert!(e.message.contains("1 worker binds queue 2, but fwin has 2 RX and 2 TX queues"), "{e}");
        let _ = std::fs::remove_dir_all(sys);
    }

    #[test]
    fn cpus_must_be_allowed() {
        let dir = fake_sys(1, 1);
        let file = dir.join("c.ron");
        std::fs::write(&file, "(\n  workers: 2,\n  cpus: [0, 5],\n)").unwrap();
        let c = Config::load(&file).unwrap();
        let e = c.check_cpus(&[0, 1, 2, 3], &file).unwrap_err();
        assert_eq!((e.line, e.col), (3, 3), "{e}");
        assert!(e.message.contains("(0-3), but cpu 5"), "{e}");
        c.check_cpus(&[0, 5], &file).unwrap();
        Config::default().check_cpus(&[], &file).unwrap();
        assert_eq!(cpu_list(&[6, 0, 1, 2, 3, 9, 10]), "0-3,6,9-10");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn unreadable_file_is_named() {
        let e = Config::load(Path::new("/nonexistent/ctwall.ron")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/ctwall.ron: cannot read"), "{e}");
    }
}
