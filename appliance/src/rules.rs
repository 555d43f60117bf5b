//! The ruleset, compiled once per configuration: the pre-tracking (`raw`)
//! stage and one filter chain per direction, in the shape of iptables'
//! `raw PREROUTING` and `filter FORWARD` with `-i inside` / `-i outside`.
//!
//! Compilation turns every match into flat data (state and status bit
//! masks, prefixes as 128-bit value/mask pairs, port ranges), so a packet
//! costs a few compares per rule and no allocation. Counters are atomics so
//! the compiled ruleset can be shared by several workers.

use crate::pipeline::{FrameView, Policy, RawDecision, Verdict};
use config::{Action, ChainPolicy, Config, CtDir, Iface, Match, RawAction, StateName};
use ct_core::tuple::{proto, Addr, L3};
use ct_core::wire::{IpPacket, TcpFlags, TcpSeg};
use ct_core::{CtState, Instant};
use rings::PortId;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::info;

/// A prefix as a value and a mask over [`Addr`]'s 16 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Net {
    l3: L3,
    value: u128,
    mask: u128,
}

impl Net {
    fn new(p: &config::Prefix) -> Net {
        let (l3, addr) = Addr::from_ip(p.addr);
        let width = if l3 == L3::V4 { 32 } else { 128 };
        let len = u32::from(p.len.min(width));
        // IPv4 sits in the first four bytes of `Addr`, the top of the u128.
        let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
        Net { l3, value: u128::from_be_bytes(addr.0) & mask, mask }
    }

    fn contains(&self, l3: L3, a: &Addr) -> bool {
        self.l3 == l3 && u128::from_be_bytes(a.0) & self.mask == self.value
    }
}

fn any_contains(nets: &[Net], l3: L3, a: &Addr) -> bool {
    nets.iter().any(|n| n.contains(l3, a))
}

/// One compiled match: every `Option` or empty list is "any".
#[derive(Clone, Debug, Default)]
struct Matcher {
    /// `CtState::bit()` mask the state must be in (0 = any).
    states: u8,
    /// Mask the state must not be in.
    states_not: u8,
    /// Some status bit of this mask must be set (`--ctstatus`, any-of).
    status: Option<u16>,
    /// No status bit of this mask may be set (`! --ctstatus`).
    status_not: Option<u16>,
    dir: Option<CtDir>,
    proto: Option<u8>,
    src: Vec<Net>,
    dst: Vec<Net>,
    not_src: Vec<Net>,
    not_dst: Vec<Net>,
    sport: Vec<(u16, u16)>,
    dport: Vec<(u16, u16)>,
    /// `(mask, set)` over the TCP flag byte.
    tcp_flags: Option<(u8, u8)>,
    /// `--syn` (true) or `! --syn` (false).
    syn: Option<bool>,
    /// ICMP types as a 256-bit set.
    icmp_type: Option<[u64; 4]>,
    icmp_code: Option<u8>,
    port: Option<PortId>,
    vlan: Option<u16>,
    /// Whether any field needs the IP header (others can match non-IP or
    /// unparsable frames).
    needs_ip: bool,
}

fn state_mask(names: &[StateName]) -> u8 {
    names
        .iter()
        .map(|n| match n {
            StateName::New => CtState::New,
            StateName::Established => CtState::Established,
            StateName::Related => CtState::Related,
            StateName::Invalid => CtState::Invalid,
            StateName::Untracked => CtState::Untracked,
        })
        .fold(0, |m, s| m | s.bit())
}

fn status_mask(names: &[config::StatusName]) -> u16 {
    names.iter().fold(0, |m, n| m | n.bits())
}

fn nets(p: &Option<config::Prefixes>) -> Vec<Net> {
    p.as_ref().map(|p| p.0.iter().map(Net::new).collect()).unwrap_or_default()
}

fn ports(p: &Option<config::PortList>) -> Vec<(u16, u16)> {
    p.as_ref().map(|p| p.0.iter().map(|r| (r.lo, r.hi)).collect()).unwrap_or_default()
}

/// TCP flags `--syn` looks at.
const SYN_MASK: TcpFlags = TcpFlags::FIN.union(TcpFlags::SYN).union(TcpFlags::RST).union(TcpFlags::ACK);

impl Matcher {
    fn compile(m: &Match) -> Matcher {
        let mut c = Matcher {
            states: m.ctstate.as_deref().map_or(0, state_mask),
            states_not: m.ctstate_not.as_deref().map_or(0, state_mask),
            status: m.ctstatus.as_deref().map(status_mask),
            status_not: m.ctstatus_not.as_deref().map(status_mask),
            dir: m.ctdir,
            proto: m.proto.map(|p| p.0),
            src: nets(&m.src),
            dst: nets(&m.dst),
            not_src: nets(&m.not_src),
            not_dst: nets(&m.not_dst),
            sport: ports(&m.sport),
            dport: ports(&m.dport),
            tcp_flags: m.tcp_flags.map(|f| (f.mask, f.set)),
            syn: m.syn,
            icmp_type: m.icmp_type.as_ref().map(|t| {
                t.0.iter().fold([0; 4], |mut set, &ty| {
                    set[usize::from(ty >> 6)] |= 1 << (ty & 63);
                    set
                })
            }),
            icmp_code: m.icmp_code,
            port: m.iface.map(|i| match i {
                Iface::Inside => PortId::Inside,
                Iface::Outside => PortId::Outside,
            }),
            vlan: m.vlan.map(|v| v.0),
            needs_ip: false,
        };
        c.needs_ip = c.proto.is_some()
            || !c.src.is_empty()
            || !c.dst.is_empty()
            || !c.not_src.is_empty()
            || !c.not_dst.is_empty();
        c
    }

    /// The layer-2 and IP parts (everything the raw stage may use).
    fn matches_packet(&self, port: PortId, vlan: Option<u16>, ip: Option<&IpPacket<'_>>) -> bool {
        if self.port.is_some_and(|p| p != port) || self.vlan.is_some_and(|v| Some(v) != vlan) {
            return false;
        }
        let Some(ip) = ip else {
            return !self.needs_ip;
        };
        if self.proto.is_some_and(|p| p != ip.proto) {
            return false;
        }
        if (!self.src.is_empty() && !any_contains(&self.src, ip.l3, &ip.src))
            || (!self.dst.is_empty() && !any_contains(&self.dst, ip.l3, &ip.dst))
            || any_contains(&self.not_src, ip.l3, &ip.src)
            || any_contains(&self.not_dst, ip.l3, &ip.dst)
        {
            return false;
        }
        self.matches_l4(ip)
    }

    /// Ports, TCP flags, ICMP type and code. Like iptables, a fragment
    /// without the L4 header (or a header cut short) never matches them.
    fn matches_l4(&self, ip: &IpPacket<'_>) -> bool {
        let wants_ports = !self.sport.is_empty() || !self.dport.is_empty();
        let wants_tcp = self.tcp_flags.is_some() || self.syn.is_some();
        let wants_icmp = self.icmp_type.is_some();
        if !(wants_ports || wants_tcp || wants_icmp) {
            return true;
        }
        if ip.fragment == ct_core::wire::Fragment::NonFirst {
            return false;
        }
        if wants_ports {
            let (Some(sp), Some(dp)) = (be16(ip.l4, 0), be16(ip.l4, 2)) else {
                return false;
            };
            let within = |r: &[(u16, u16)], p: u16| r.is_empty() || r.iter().any(|&(lo, hi)| (lo..=hi).contains(&p));
            if !within(&self.sport, sp) || !within(&self.dport, dp) {
                return false;
            }
        }
        if wants_tcp {
            let Ok(seg) = TcpSeg::parse(ip.l4) else {
                return false;
            };
            let f = seg.flags.bits();
            if self.tcp_flags.is_some_and(|(mask, set)| f & mask != set) {
                return false;
            }
            if self.syn.is_some_and(|want| (seg.flags & SYN_MASK == TcpFlags::SYN) != want) {
                return false;
            }
        }
        if let Some(types) = self.icmp_type {
            let (Some(&t), Some(&c)) = (ip.l4.first(), ip.l4.get(1)) else {
                return false;
            };
            if types[usize::from(t >> 6)] & 1 << (t & 63) == 0 || self.icmp_code.is_some_and(|code| code != c) {
                return false;
            }
        }
        true
    }

    /// The conntrack parts. As in `xt_conntrack`, a packet without an entry
    /// (INVALID, UNTRACKED) fails every match but the state match, inverted
    /// or not.
    fn matches_ct(&self, v: &FrameView<'_>) -> bool {
        let bit = v.outcome.state.bit();
        if (self.states != 0 && self.states & bit == 0) || self.states_not & bit != 0 {
            return false;
        }
        if self.status.is_none() && self.status_not.is_none() && self.dir.is_none() {
            return true;
        }
        let (Some(status), Some(dir)) = (v.outcome.status, v.outcome.dir()) else {
            return false;
        };
        let s = status.bits();
        if self.status.is_some_and(|m| s & m == 0) || self.status_not.is_some_and(|m| s & m != 0) {
            return false;
        }
        match self.dir {
            Some(CtDir::Original) => dir == ct_core::tuple::Dir::Original,
            Some(CtDir::Reply) => dir == ct_core::tuple::Dir::Reply,
            None => true,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Packet and byte counters of a rule (or a chain policy).
#[derive(Debug, Default)]
pub struct Counter {
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: u64) {
        // Relaxed: statistics only; readers want a recent value, not an
        // order with any other memory operation, so nothing pairs with it.
        self.packets.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// `(packets, bytes)`.
    pub fn get(&self) -> (u64, u64) {
        // Relaxed: see `add`.
        (self.packets.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

/// A token bucket for log lines (GCRA): `RATE_PER_S` lines a second on
/// average, bursts of `BURST`.
#[derive(Debug, Default)]
struct LogLimit {
    /// Theoretical arrival time of the next conforming line, in ns.
    tat: AtomicU64,
    suppressed: AtomicU64,
}

const LOG_INTERVAL_NS: u64 = 1_000_000_000 / LOG_RATE_PER_S;
/// Log lines per second per rule, on average.
pub const LOG_RATE_PER_S: u64 = 5;
/// Log lines a rule may emit at once.
pub const LOG_BURST: u64 = 10;

impl LogLimit {
    /// Whether a line may be logged at `now`; counts the ones that may not.
    fn allow(&self, now: u64) -> bool {
        // Relaxed: the bucket is one word updated by compare-exchange; no
        // other data is published with it, so no ordering pairs with it.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now).saturating_add(LOG_INTERVAL_NS);
            if next.saturating_sub(now) > LOG_BURST * LOG_INTERVAL_NS {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.tat.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(cur) => tat = cur,
            }
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Target {
    Accept,
    Drop,
    Reject,
    /// Log and go on with the next rule (iptables `LOG`).
    Log,
}

/// A compiled filter rule.
#[derive(Debug)]
pub struct CompiledRule {
    /// The configured name, or `#N` (1-based position in its chain).
    pub name: String,
    m: Matcher,
    target: Target,
    log_prefix: String,
    pub counter: Counter,
    log: LogLimit,
}

/// A compiled filter chain.
#[derive(Debug)]
pub struct CompiledChain {
    pub name: &'static str,
    pub rules: Vec<CompiledRule>,
    pub policy: ChainPolicy,
    /// Packets that reached the policy.
    pub policy_counter: Counter,
}

#[derive(Debug)]
struct CompiledRaw {
    m: Matcher,
    action: RawAction,
    counter: Counter,
    name: String,
}

/// The compiled ruleset.
#[derive(Debug)]
pub struct Ruleset {
    raw: Vec<CompiledRaw>,
    /// Indexed by ingress port: inside→outside, outside→inside.
    chains: [CompiledChain; 2],
    /// Interface names, for log lines.
    ifnames: [String; 2],
}

const fn port_index(p: PortId) -> usize {
    match p {
        PortId::Inside => 0,
        PortId::Outside => 1,
    }
}

fn rule_name(name: &Option<config::RuleName>, chain: &str, i: usize) -> String {
    name.as_ref().map_or_else(|| format!("{chain}#{}", i + 1), |n| n.0.clone())
}

fn compile_chain(name: &'static str, c: &config::Chain) -> CompiledChain {
    let rules = c
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| CompiledRule {
            name: rule_name(&r.name, name, i),
            m: Matcher::compile(&r.matches),
            target: match r.action {
                Action::Accept => Target::Accept,
                Action::Drop => Target::Drop,
                Action::Reject => Target::Reject,
                Action::Log => Target::Log,
            },
            log_prefix: r.log_prefix.as_ref().map_or_else(String::new, |p| p.0.clone()),
            counter: Counter::default(),
            log: LogLimit::default(),
        })
        .collect();
    CompiledChain { name, rules, policy: c.policy, policy_counter: Counter::default() }
}

/// One row of [`Ruleset::counters`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCounters {
    /// `raw`, `inside_to_outside` or `outside_to_inside`.
    pub chain: &'static str,
    /// The rule's name, or `policy` for the chain's default.
    pub rule: String,
    pub action: &'static str,
    pub packets: u64,
    pub bytes: u64,
}

impl Ruleset {
    /// Compile the rules of `cfg` (already validated by the `config` crate).
    pub fn compile(cfg: &Config) -> Ruleset {
        let raw = cfg
            .raw
            .iter()
            .enumerate()
            .map(|(i, r)| CompiledRaw {
                m: Matcher::compile(&r.matches),
                action: r.action,
                counter: Counter::default(),
                name: rule_name(&r.name, "raw", i),
            })
            .collect();
        Ruleset {
            raw,
            chains: [
                compile_chain("inside_to_outside", &cfg.filter.inside_to_outside),
                compile_chain("outside_to_inside", &cfg.filter.outside_to_inside),
            ],
            ifnames: [cfg.interfaces.inside.0.clone(), cfg.interfaces.outside.0.clone()],
        }
    }

    /// Every rule's counters, raw stage first, then each chain with its
    /// policy last (the order of `iptables -L -v`).
    pub fn counters(&self) -> Vec<RuleCounters> {
        let mut out = Vec::new();
        for r in &self.raw {
            let (packets, bytes) = r.counter.get();
            let action = match r.action {
                RawAction::Notrack => "notrack",
                RawAction::Zone(_) => "zone",
                RawAction::Helper(_) => "helper",
            };
            out.push(RuleCounters { chain: "raw", rule: r.name.clone(), action, packets, bytes });
        }
        for c in &self.chains {
            for r in &c.rules {
                let (packets, bytes) = r.counter.get();
                let action = match r.target {
                    Target::Accept => "accept",
                    Target::Drop => "drop",
                    Target::Reject => "reject",
                    Target::Log => "log",
                };
                out.push(RuleCounters { chain: c.name, rule: r.name.clone(), action, packets, bytes });
            }
            let (packets, bytes) = c.policy_counter.get();
            let action = match c.policy {
                ChainPolicy::Accept => "accept",
                ChainPolicy::Drop => "drop",
            };
            out.push(RuleCounters { chain: c.name, rule: "policy".into(), action, packets, bytes });
        }
        out
    }

    /// Log lines a rule's rate limit held back, summed over all rules.
    pub fn log_suppressed(&self) -> u64 {
        // Relaxed: statistics, see `LogLimit::allow`.
        self.chains.iter().flat_map(|c| &c.rules).map(|r| r.log.suppressed.load(Ordering::Relaxed)).sum()
    }

    fn log_line(&self, r: &CompiledRule, v: &FrameView<'_>) -> String {
        let i = port_index(v.port);
        let mut s = format!("{}IN={} OUT={} ", r.log_prefix, self.ifnames[i], self.ifnames[1 - i]);
        if let Some(vid) = v.vlan {
            let _ = write!(s, "VLAN={vid} ");
        }
        if let Some(ip) = v.ip {
            let _ =
                write!(s, "SRC={} DST={} LEN={} TTL={} ", ip.src.to_ip(ip.l3), ip.dst.to_ip(ip.l3), ip.ip_len, ip.ttl);
            match ip.proto {
                proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => {
                    let name = match ip.proto {
                        proto::TCP => "TCP",
                        proto::UDP => "UDP",
                        proto::UDPLITE => "UDPLITE",
                        _ => "SCTP",
                    };
                    let _ = write!(s, "PROTO={name} ");
                    if let (Some(sp), Some(dp)) = (be16(ip.l4, 0), be16(ip.l4, 2)) {
                        let _ = write!(s, "SPT={sp} DPT={dp} ");
                    }
                    let seg = if ip.proto == proto::TCP { TcpSeg::parse(ip.l4).ok() } else { None };
                    if let Some(seg) = seg {
                        for (bit, n) in [
                            (TcpFlags::SYN, "SYN"),
                            (TcpFlags::ACK, "ACK"),
                            (TcpFlags::FIN, "FIN"),
                            (TcpFlags::RST, "RST"),
                            (TcpFlags::PSH, "PSH"),
                        ] {
                            if seg.flags.contains(bit) {
                                let _ = write!(s, "{n} ");
                            }
                        }
                    }
                }
                proto::ICMP | proto::ICMPV6 => {
                    let name = if ip.proto == proto::ICMP { "ICMP" } else { "ICMPv6" };
                    let _ = write!(s, "PROTO={name} ");
                    if let (Some(t), Some(c)) = (ip.l4.first(), ip.l4.get(1)) {
                        let _ = write!(s, "TYPE={t} CODE={c} ");
                    }
                }
                p => {
                    let _ = write!(s, "PROTO={p} ");
                }
            }
        }
        let _ = write!(s, "CTSTATE={}", v.outcome.state.name());
        s
    }
}

fn packet_bytes(v: &FrameView<'_>) -> u64 {
    // Like `iptables -v`: bytes at the IP layer; the frame for non-IP.
    v.ip.map_or(v.frame.len() as u64, |ip| u64::from(ip.ip_len))
}

impl Policy for Ruleset {
    fn raw(&self, port: PortId, vlan: Option<u16>, ip: &IpPacket<'_>) -> RawDecision {
        for r in &self.raw {
            if r.m.matches_packet(port, vlan, Some(ip)) {
                r.counter.add(u64::from(ip.ip_len));
                return match r.action {
                    RawAction::Notrack => RawDecision { notrack: true, ..RawDecision::default() },
                    RawAction::Zone(z) => RawDecision { zone: z, ..RawDecision::default() },
                    RawAction::Helper(kind) => RawDecision { helper: Some(kind.name()), ..RawDecision::default() },
                };
            }
        }
        RawDecision::default()
    }

    fn filter(&self, v: &FrameView<'_>, now: Instant) -> Verdict {
        // Frames that are not IP never meet iptables: the bridge's
        // `bridge_non_ip` decides about them, not the chains.
        if v.ip.is_none() && v.outcome.state == CtState::Untracked {
            return Verdict::Accept;
        }
        let chain = &self.chains[port_index(v.port)];
        let bytes = packet_bytes(v);
        for r in &chain.rules {
            if !r.m.matches_ct(v) || !r.m.matches_packet(v.port, v.vlan, v.ip) {
                continue;
            }
            r.counter.add(bytes);
            match r.target {
                Target::Accept => return Verdict::Accept,
                Target::Drop => return Verdict::Drop,
                Target::Reject => return Verdict::Reject,
                Target::Log => {
                    if r.log.allow(now.as_nanos()) {
                        info!(target: "ctwall::log", rule = %r.name, "{}", self.log_line(r, v));
                    }
                }
            }
        }
        chain.policy_counter.add(bytes);
        match chain.policy {
            ChainPolicy::Accept => Verdict::Accept,
            ChainPolicy::Drop => Verdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;
    use ct_core::table::Conntrack;
    use ct_core::CtConfig;
    use helpers::HelperRegistry;
    use std::path::Path;

    fn ruleset(text: &str) -> Ruleset {
        Ruleset::compile(&Config::parse(text, Path::new("t.ron")).unwrap())
    }

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let len = (20 + l4.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
        ip[2..4].copy_from_slice(&len.to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = ct_core::wire::checksum::checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut pkt = ip.clone();
        let mut l4 = l4.to_vec();
        // L4 checksum over the pseudo header.
        let at = match proto {
            6 => Some(16),
            17 => Some(6),
            1 => Some(2),
            _ => None,
        };
        if let Some(at) = at {
            let mut sum: u32 = 0;
            if proto != 1 {
                for w in src.chunks(2).chain(dst.chunks(2)) {
                    sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
                }
                sum += u32::from(proto) + l4.len() as u32;
            }
            let c = ct_core::wire::checksum::checksum(&l4, sum);
            l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        pkt.extend_from_slice(&l4);
        eth(0x0800, &pkt)
    }

    fn tcp(sp: u16, dp: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
        let mut t = vec![0; 20];
        t[0..2].copy_from_slice(&sp.to_be_bytes());
        t[2..4].copy_from_slice(&dp.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&64000u16.to_be_bytes());
        t
    }

    fn udp(sp: u16, dp: u16) -> Vec<u8> {
        let mut u = vec![0; 12];
        u[0..2].copy_from_slice(&sp.to_be_bytes());
        u[2..4].copy_from_slice(&dp.to_be_bytes());
        u[4..6].copy_from_slice(&12u16.to_be_bytes());
        u
    }

    const A: [u8; 4] = [10, 0, 0, 1];
    const B: [u8; 4] = [10, 0, 0, 2];

    fn run(rs: &Ruleset, frames: &[(PortId, Vec<u8>)]) -> Vec<Verdict> {
        let mut p = Pipeline::new(Conntrack::new(CtConfig::default()), HelperRegistry::default());
        frames.iter().map(|(port, f)| p.process(f, *port, Instant::ZERO, rs).verdict).collect()
    }

    const STATEFUL: &str = r#"(
      filter: (
        inside_to_outside: (policy: "accept", rules: [
          (name: "invalid", match: (ctstate: ["INVALID"]), action: "drop"),
          (name: "nosyn", match: (ctstate: ["NEW"], proto: "tcp", syn: false), action: "drop"),
        ]),
        outside_to_inside: (policy: "drop", rules: [
          (name: "est", match: (ctstate: ["ESTABLISHED", "RELATED"]), action: "accept"),
          (name: "ident", match: (proto: "tcp", dport: ["113"]), action: "reject"),
        ]),
      ),
    )"#;

    #[test]
    fn stateful_chains_admit_answers_only() {
        let rs = ruleset(STATEFUL);
        let v = run(
            &rs,
            &[
                (PortId::Inside, ipv4(A, B, 6, &tcp(1000, 80, 1, 0, 0x02))),
                (PortId::Outside, ipv4(B, A, 6, &tcp(80, 1000, 9, 2, 0x12))),
                (PortId::Outside, ipv4(B, A, 6, &tcp(2000, 22, 5, 0, 0x02))),
                (PortId::Outside, ipv4(B, A, 6, &tcp(2001, 113, 5, 0, 0x02))),
                (PortId::Inside, ipv4(A, B, 6, &tcp(3000, 80, 5, 9, 0x10))),
                (PortId::Inside, ipv4(A, B, 17, &udp(5000, 53))),
                (PortId::Outside, ipv4(B, A, 17, &udp(53, 5000))),
                (PortId::Outside, ipv4(B, A, 17, &udp(53, 5001))),
            ],
        );
        use Verdict::*;
        assert_eq!(v, [Accept, Accept, Drop, Reject, Drop, Accept, Accept, Drop]);
        let c = rs.counters();
        let get = |chain: &str, rule: &str| c.iter().find(|r| r.chain == chain && r.rule == rule).unwrap().packets;
        assert_eq!(get("outside_to_inside", "est"), 2);
        assert_eq!(get("outside_to_inside", "policy"), 2);
        assert_eq!(get("outside_to_inside", "ident"), 1);
        assert_eq!(get("inside_to_outside", "nosyn"), 1);
        assert_eq!(get("inside_to_outside", "policy"), 2);
        let bytes = c.iter().find(|r| r.rule == "ident").unwrap().bytes;
        assert_eq!(bytes, 40, "IP-layer bytes");
    }

    #[test]
    fn non_ip_frames_skip_the_chains_but_broken_ip_is_invalid() {
        let rs = ruleset(r#"(filter: (outside_to_inside: (policy: "drop", rules: [])))"#);
        let arp = eth(0x0806, &[0; 28]);
        let broken = eth(0x0800, &[0x45, 0, 0, 20]);
        let v = run(&rs, &[(PortId::Outside, arp), (PortId::Outside, broken)]);
        assert_eq!(v, [Verdict::Accept, Verdict::Drop]);
    }

    #[test]
    fn prefixes_ports_flags_icmp_iface_and_negations() {
        let m = |text: &str| {
            let cfg = Config::parse(
                &format!("(filter: (inside_to_outside: (rules: [(match: {text}, action: \"drop\")])))"),
                Path::new("t"),
            )
            .unwrap();
            Matcher::compile(&cfg.filter.inside_to_outside.rules[0].matches)
        };
        let pk = |f: &[u8]| -> Vec<u8> { f[14..].to_vec() };
        let syn = pk(&ipv4(A, B, 6, &tcp(1000, 80, 1, 0, 0x02)));
        let synack = pk(&ipv4(A, B, 6, &tcp(1000, 80, 1, 0, 0x12)));
        let echo = pk(&ipv4(A, B, 1, &[8, 0, 0, 0, 0, 1, 0, 1]));
        let check = |mt: &Matcher, bytes: &[u8], port: PortId| {
            let ip = ct_core::wire::parse_ip(bytes).unwrap();
            mt.matches_packet(port, None, Some(&ip))
        };
        assert!(check(&m(r#"(src: ["10.0.0.0/24"])"#), &syn, PortId::Inside));
        assert!(!check(&m(r#"(src: ["10.0.1.0/24"])"#), &syn, PortId::Inside));
        assert!(!check(&m(r#"(not_dst: ["10.0.0.2"])"#), &syn, PortId::Inside));
        assert!(!check(&m(r#"(src: ["fd00::/8"])"#), &syn, PortId::Inside), "family must match");
        assert!(check(&m(r#"(src: ["0.0.0.0/0"])"#), &syn, PortId::Inside));
        assert!(check(&m(r#"(proto: "tcp", dport: ["79-81"])"#), &syn, PortId::Inside));
        assert!(!check(&m(r#"(proto: "tcp", dport: ["81-90"], sport: [1000])"#), &syn, PortId::Inside));
        assert!(check(&m(r#"(proto: "tcp", syn: true)"#), &syn, PortId::Inside));
        assert!(!check(&m(r#"(proto: "tcp", syn: true)"#), &synack, PortId::Inside));
        assert!(check(&m(r#"(proto: "tcp", syn: false)"#), &synack, PortId::Inside));
        assert!(check(
            &m(r#"(proto: "tcp", tcp_flags: (mask: ["SYN", "ACK"], set: ["SYN", "ACK"]))"#),
            &synack,
            PortId::Inside
        ));
        assert!(check(&m(r#"(proto: "icmp", icmp_type: 8, icmp_code: 0)"#), &echo, PortId::Inside));
        assert!(!check(&m(r#"(proto: "icmp", icmp_type: 0)"#), &echo, PortId::Inside));
        assert!(check(&m(r#"(proto: "icmp", icmp_type: [0, 8, 255])"#), &echo, PortId::Inside));
        assert!(!check(&m(r#"(proto: "icmp", icmp_type: [0, 9, 72, 136, 200])"#), &echo, PortId::Inside));
        assert!(!check(&m(r#"(iface: "outside")"#), &echo, PortId::Inside));
        assert!(!check(&m(r#"(vlan: 10)"#), &echo, PortId::Inside));
    }

    #[test]
    fn ctstatus_and_ctdir_fail_without_an_entry_like_xt_conntrack() {
        let rs = ruleset(
            r#"(filter: (outside_to_inside: (policy: "accept", rules: [
                (name: "seen", match: (ctstatus: ["SEEN_REPLY"]), action: "drop"),
                (name: "unassured", match: (ctstatus_not: ["ASSURED"]), action: "log"),
            ]), inside_to_outside: (policy: "accept", rules: [
                (name: "reply", match: (ctdir: "reply"), action: "drop"),
            ])))"#,
        );
        let v = run(
            &rs,
            &[
                // NEW from outside: no SEEN_REPLY, not ASSURED.
                (PortId::Outside, ipv4(B, A, 17, &udp(7, 7))),
                // Broken IP from outside: INVALID, no entry, both status matches fail.
                (PortId::Outside, eth(0x0800, &[0x45, 0, 0, 20])),
                // The answer from inside is in the reply direction.
                (PortId::Inside, ipv4(A, B, 17, &udp(7, 7))),
                // A new flow from inside is in the original direction.
                (PortId::Inside, ipv4(A, B, 17, &udp(8, 8))),
            ],
        );
        assert_eq!(v, [Verdict::Accept, Verdict::Accept, Verdict::Drop, Verdict::Accept]);
        let c = rs.counters();
        let get = |rule: &str| c.iter().find(|r| r.rule == rule).unwrap().packets;
        assert_eq!((get("seen"), get("unassured"), get("reply")), (0, 1, 1));
    }

    #[test]
    fn raw_notrack_and_zone() {
        let rs = ruleset(
            r#"(raw: [
                (name: "ntp", match: (proto: "udp", dport: [123]), action: "notrack"),
                (name: "z", match: (iface: "outside"), action: (zone: 7)),
            ])"#,
        );
        let ip = ipv4(A, B, 17, &udp(5, 123));
        let ipk = ct_core::wire::parse_ip(&ip[14..]).unwrap();
        assert_eq!(rs.raw(PortId::Inside, None, &ipk), RawDecision { notrack: true, ..RawDecision::default() });
        let ip2 = ipv4(A, B, 17, &udp(5, 124));
        let ipk2 = ct_core::wire::parse_ip(&ip2[14..]).unwrap();
        assert_eq!(rs.raw(PortId::Outside, None, &ipk2), RawDecision { zone: 7, ..RawDecision::default() });
        assert_eq!(rs.raw(PortId::Inside, None, &ipk2), RawDecision::default());
        assert_eq!(rs.counters()[0].packets, 1);
    }

    #[test]
    fn raw_helper_attaches_like_ct_helper() {
        let cfg = Config::parse(
            r#"(helpers: [], raw: [(name: "ftp-2121", match: (dport: [2121], proto: "tcp"), action: (helper: "ftp")),
                               (name: "any-ftp", match: (dst: ["10.0.0.9"]), action: (helper: "ftp"))])"#,
            Path::new("t.ron"),
        )
        .unwrap();
        let rs = Ruleset::compile(&cfg);
        let reg = crate::settings::helper_registry(&cfg).unwrap();
        let mut p = Pipeline::new(Conntrack::new(CtConfig::default()), reg);
        // Only the helper the raw stage names is loaded (`helpers: []`).
        assert!(p.has_helper("ftp") && !p.has_helper("tftp"));
        for f in [
            ipv4(A, B, 6, &tcp(1000, 2121, 1, 0, 0x02)),
            ipv4(A, B, 6, &tcp(1001, 21, 1, 0, 0x02)),
            // Matches the second rule, but the ftp helper is for TCP only.
            ipv4(A, [10, 0, 0, 9], 17, &udp(5, 6)),
        ] {
            assert_eq!(p.process(&f, PortId::Inside, Instant::ZERO, &rs).verdict, Verdict::Accept);
        }
        let helpers: Vec<(u16, Option<&str>)> = p
            .conntrack()
            .entries(Instant::ZERO)
            .map(|(_, e)| (e.orig.dport, e.helper.as_ref().map(|h| h.name)))
            .collect();
        assert_eq!(helpers, [(2121, Some("ftp")), (21, None), (6, None)]);
        assert_eq!(rs.counters()[0].packets, 1);
    }

    #[test]
    fn log_is_rate_limited_and_does_not_terminate() {
        let rs = ruleset(
            r#"(filter: (inside_to_outside: (policy: "drop", rules: [
                (name: "l", match: (), action: "log", log_prefix: Some("x: ")),
            ])))"#,
        );
        let frames: Vec<_> = (0..100).map(|i| (PortId::Inside, ipv4(A, B, 17, &udp(1000 + i, 53)))).collect();
        let v = run(&rs, &frames);
        assert!(v.iter().all(|v| *v == Verdict::Drop));
        assert_eq!(rs.counters()[0].packets, 100);
        assert_eq!(rs.log_suppressed(), 100 - LOG_BURST);
        // A second later, LOG_RATE_PER_S more lines pass.
        let l = &rs.chains[0].rules[0].log;
        let passed = (0..100).filter(|_| l.allow(1_000_000_000)).count() as u64;
        assert_eq!(passed, LOG_RATE_PER_S);
    }

    #[test]
    fn log_line_reads_like_iptables_log() {
        let rs = ruleset(r#"(interfaces: (inside: "eth1", outside: "eth2"))"#);
        let f = ipv4(A, B, 6, &tcp(1000, 80, 1, 0, 0x02));
        let ip = ct_core::wire::parse_ip(&f[14..]).unwrap();
        let out = ct_core::table::Outcome { state: CtState::New, new: true, ..ct_core::table::Outcome::untracked() };
        let v = FrameView { frame: &f, port: PortId::Inside, vlan: None, outcome: &out, ip: Some(&ip) };
        let r = CompiledRule {
            name: "r".into(),
            m: Matcher::default(),
            target: Target::Log,
            log_prefix: "p: ".into(),
            counter: Counter::default(),
            log: LogLimit::default(),
        };
        assert_eq!(
            rs.log_line(&r, &v),
            "p: IN=eth1 OUT=eth2 SRC=10.0.0.1 DST=10.0.0.2 LEN=40 TTL=64 PROTO=TCP SPT=1000 DPT=80 SYN CTSTATE=NEW"
        );
    }

    #[test]
    fn prefixes_of_both_families() {
        let has = |p: &str, a: &str| {
            let p: config::Prefix = p.to_string().try_into().unwrap();
            let (l3, a) = Addr::from_ip(a.parse().unwrap());
            Net::new(&p).contains(l3, &a)
        };
        assert!(has("fd00::/8", "fd12::1"));
        assert!(!has("fd00::/8", "fe80::1"));
        assert!(has("10.1.0.0/16", "10.1.255.3"));
        assert!(!has("10.1.0.0/16", "10.2.0.1"));
        assert!(has("::/0", "2001:db8::1"));
        assert!(!has("::/0", "10.0.0.1"));
        assert!(has("10.0.0.1", "10.0.0.1"));
        assert!(!has("10.0.0.1", "10.0.0.2"));
    }
}
