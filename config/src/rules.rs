//! The ruleset part of the configuration: interfaces, AF_XDP settings, the
//! pre-tracking (`raw`) stage and the `filter` chains.
//!
//! Every value is checked while it is parsed (through `try_from` newtypes and
//! hand-written visitors), so a mistake is reported as `FILE:LINE:COL:
//! expected ...` like every other configuration error.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

// ---------------------------------------------------------------------------
// Interfaces and AF_XDP

/// A network interface name: 1 to 15 bytes (`IFNAMSIZ - 1`), no `/`, no
/// whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IfName(pub String);

impl TryFrom<String> for IfName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a non-empty interface name".into());
        }
        if s.len() > 15 {
            return Err(format!("an interface name of at most 15 bytes, not {s:?} ({} bytes)", s.len()));
        }
        if s.contains('/') || s.chars().any(char::is_whitespace) || s == "." || s == ".." {
            return Err(format!("an interface name without '/' or whitespace, not {s:?}"));
        }
        Ok(IfName(s))
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfacesSpec {
    #[serde(default = "default_inside")]
    inside: IfName,
    #[serde(default = "default_outside")]
    outside: IfName,
}

fn default_inside() -> IfName {
    IfName("veth-in".into())
}

fn default_outside() -> IfName {
    IfName("veth-out".into())
}

/// The two bridged ports, by interface name.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "InterfacesSpec")]
pub struct Interfaces {
    pub inside: IfName,
    pub outside: IfName,
}

impl Default for Interfaces {
    fn default() -> Self {
        Interfaces { inside: default_inside(), outside: default_outside() }
    }
}

impl TryFrom<InterfacesSpec> for Interfaces {
    type Error = String;
    fn try_from(s: InterfacesSpec) -> Result<Self, String> {
        if s.inside == s.outside {
            return Err(format!("two different interfaces, but inside and outside are both {:?}", s.inside.0));
        }
        Ok(Interfaces { inside: s.inside, outside: s.outside })
    }
}

/// How the AF_XDP program is attached.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum XdpMode {
    /// Native (driver) mode if the driver has it, else generic.
    #[default]
    Auto,
    Native,
    Generic,
}

impl TryFrom<String> for XdpMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            _ => Err(format!("an XDP mode, \"auto\", \"native\" or \"generic\", not {s:?}")),
        }
    }
}

/// Whether the AF_XDP socket binds in zero-copy mode.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ZeroCopy {
    /// Zero-copy if the driver supports it, else copy mode.
    #[default]
    Auto,
    On,
    Off,
}

impl TryFrom<String> for ZeroCopy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "auto" => Ok(ZeroCopy::Auto),
            "on" => Ok(ZeroCopy::On),
            "off" => Ok(ZeroCopy::Off),
            _ => Err(format!("a zero_copy setting, \"auto\", \"on\" or \"off\", not {s:?}")),
        }
    }
}

/// The most worker threads a configuration may ask for.
pub const MAX_WORKERS: u32 = 256;
/// CPU numbers must be below this (`CPU_SETSIZE`).
pub const MAX_CPU: u32 = 1024;

/// The number of worker threads, one per AF_XDP queue: 1 to [`MAX_WORKERS`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Workers(pub u32);

impl Default for Workers {
    fn default() -> Self {
        Workers(1)
    }
}

impl TryFrom<u64> for Workers {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u32::try_from(v) {
            Ok(n @ 1..=MAX_WORKERS) => Ok(Workers(n)),
            _ => Err(format!("a worker count between 1 and {MAX_WORKERS}, not {v}")),
        }
    }
}

/// CPUs to pin the workers to: a non-empty list of distinct CPU numbers
/// below [`MAX_CPU`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u32>")]
pub struct Cpus(pub Vec<u32>);

impl TryFrom<Vec<u32>> for Cpus {
    type Error = String;
    fn try_from(v: Vec<u32>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("at least one CPU number".into());
        }
        if let Some(c) = v.iter().find(|&&c| c >= MAX_CPU) {
            return Err(format!("CPU numbers below {MAX_CPU}, not {c}"));
        }
        let mut seen = HashSet::new();
        if let Some(c) = v.iter().find(|&&c| !seen.insert(c)) {
            return Err(format!("distinct CPU numbers, but {c} is listed twice"));
        }
        Ok(Cpus(v))
    }
}

impl Cpus {
    /// The CPU of worker `i`: the list repeats when there are more workers.
    pub fn for_worker(&self, i: usize) -> u32 {
        self.0[i % self.0.len()]
    }
}

/// A power of two between 64 and 65536 (ring sizes, frame counts).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct Pow2(pub u32);

impl TryFrom<u64> for Pow2 {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if !(64..=65536).contains(&v) || !v.is_power_of_two() {
            return Err(format!("a power of two between 64 and 65536, not {v}"));
        }
        Ok(Pow2(v as u32))
    }
}

/// The UMEM frame size: 2048 or 4096 bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct FrameSize(pub u32);

impl TryFrom<u64> for FrameSize {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match v {
            2048 | 4096 => Ok(FrameSize(v as u32)),
            _ => Err(format!("a frame size of 2048 or 4096 bytes, not {v}")),
        }
    }
}

/// AF_XDP settings (plain data for the ring layer).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Xdp {
    /// The NIC queue to bind; with several `workers`, the first one (worker
    /// `i` binds queue `queue + i`).
    pub queue: u32,
    /// UMEM frames per port.
    pub frames: Pow2,
    pub frame_size: FrameSize,
    /// Entries in each of the fill, completion, RX and TX rings.
    pub ring_size: Pow2,
    pub mode: XdpMode,
    pub zero_copy: ZeroCopy,
}

impl Default for Xdp {
    fn default() -> Self {
        Xdp {
            queue: 0,
            frames: Pow2(4096),
            frame_size: FrameSize(4096),
            ring_size: Pow2(2048),
            mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
        }
    }
}

// ---------------------------------------------------------------------------
// Match values

/// `--ctstate` names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum StateName {
    New,
    Established,
    Related,
    Invalid,
    Untracked,
}

impl TryFrom<String> for StateName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NEW" => StateName::New,
            "ESTABLISHED" => StateName::Established,
            "RELATED" => StateName::Related,
            "INVALID" => StateName::Invalid,
            "UNTRACKED" => StateName::Untracked,
            _ => return Err(format!("a ctstate, NEW, ESTABLISHED, RELATED, INVALID or UNTRACKED, not {s:?}")),
        })
    }
}

/// `--ctstatus` names.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum StatusName {
    /// Contributes no bit: `--ctstatus NONE` never matches.
    None,
    Expected,
    SeenReply,
    Assured,
    Confirmed,
}

impl StatusName {
    /// The kernel's `IPS_*` bit (0 for NONE).
    pub const fn bits(self) -> u16 {
        match self {
            StatusName::None => 0,
            StatusName::Expected => 1 << 0,
            StatusName::SeenReply => 1 << 1,
            StatusName::Assured => 1 << 2,
            StatusName::Confirmed => 1 << 3,
        }
    }
}

impl TryFrom<String> for StatusName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => StatusName::None,
            "EXPECTED" => StatusName::Expected,
            "SEEN_REPLY" => StatusName::SeenReply,
            "ASSURED" => StatusName::Assured,
            "CONFIRMED" => StatusName::Confirmed,
            _ => return Err(format!("a ctstatus, NONE, EXPECTED, SEEN_REPLY, ASSURED or CONFIRMED, not {s:?}")),
        })
    }
}

/// `--ctdir`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum CtDir {
    Original,
    Reply,
}

impl TryFrom<String> for CtDir {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "original" => Ok(CtDir::Original),
            "reply" => Ok(CtDir::Reply),
            _ => Err(format!("a ctdir, \"original\" or \"reply\", not {s:?}")),
        }
    }
}

/// An ingress port.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Iface {
    Inside,
    Outside,
}

impl TryFrom<String> for Iface {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "inside" => Ok(Iface::Inside),
            "outside" => Ok(Iface::Outside),
            _ => Err(format!("an ingress port, \"inside\" or \"outside\", not {s:?}")),
        }
    }
}

/// IP protocol numbers with names in the configuration.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// An IP protocol: `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` (also `"sctp"`,
/// `"udplite"`, `"gre"`) or a number 0..=255.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Proto(pub u8);

impl Proto {
    fn from_name(s: &str) -> Option<Proto> {
        Some(Proto(match s.to_ascii_lowercase().as_str() {
            "tcp" => proto::TCP,
            "udp" => proto::UDP,
            "icmp" => proto::ICMP,
            "icmpv6" | "ipv6-icmp" => proto::ICMPV6,
            "sctp" => proto::SCTP,
            "udplite" => proto::UDPLITE,
            "gre" => 47,
            _ => return None,
        }))
    }
}

const PROTO_EXPECTED: &str = "a protocol, \"tcp\", \"udp\", \"icmp\", \"icmpv6\" or a number 0..=255";

impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Proto;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PROTO_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Proto, E> {
                u8::try_from(v).map(Proto).map_err(|_| E::custom(format!("{PROTO_EXPECTED}, not {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Proto, E> {
                u8::try_from(v).map(Proto).map_err(|_| E::custom(format!("{PROTO_EXPECTED}, not {v}")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Proto, E> {
                Proto::from_name(s).ok_or_else(|| E::custom(format!("{PROTO_EXPECTED}, not {s:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An address prefix: `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (a
/// host prefix). Host bits below the prefix must be zero.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s.as_str(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("an address prefix like \"10.0.0.0/8\", \"fd00::/8\" or a bare address, not {s:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && !l.starts_with('+') => n,
                _ => return Err(format!("a prefix length between 0 and {max} after '/', not {s:?}")),
            },
        };
        let bits: u128 = match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
            IpAddr::V6(a) => u128::from(a),
        };
        let host_mask = match addr {
            IpAddr::V4(_) => v4_host_mask(len),
            IpAddr::V6(_) => u128::MAX.checked_shr(u32::from(len)).unwrap_or(0),
        };
        if bits & host_mask != 0 {
            let net = match addr {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(((bits & !host_mask) >> 96) as u32)),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits & !host_mask)),
            };
            return Err(format!("a prefix with no host bits set, like \"{net}/{len}\", not {s:?}"));
        }
        Ok(Prefix { addr, len })
    }
}

fn v4_host_mask(len: u8) -> u128 {
    let m32: u32 = if len >= 32 { 0 } else { u32::MAX >> len };
    u128::from(m32) << 96
}

/// A list of at least one prefix.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<Prefix>")]
pub struct Prefixes(pub Vec<Prefix>);

impl TryFrom<Vec<Prefix>> for Prefixes {
    type Error = String;
    fn try_from(v: Vec<Prefix>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("at least one address prefix (leave the field out to match any address)".into());
        }
        Ok(Prefixes(v))
    }
}

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

const PORT_EXPECTED: &str = "a port 0..=65535 or a range like \"1024-65535\"";

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(PORT_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                let p = u16::try_from(v).map_err(|_| E::custom(format!("{PORT_EXPECTED}, not {v}")))?;
                Ok(PortRange { lo: p, hi: p })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                let p = u16::try_from(v).map_err(|_| E::custom(format!("{PORT_EXPECTED}, not {v}")))?;
                Ok(PortRange { lo: p, hi: p })
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortRange, E> {
                let bad = || E::custom(format!("{PORT_EXPECTED}, not {s:?}"));
                let num = |t: &str| {
                    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    t.parse::<u16>().map_err(|_| bad())
                };
                let (lo, hi) = match s.split_once('-') {
                    Some((a, b)) => (num(a.trim())?, num(b.trim())?),
                    None => {
                        let p = num(s.trim())?;
                        (p, p)
                    }
                };
                if lo > hi {
                    return Err(E::custom(format!("a port range low-high with low <= high, not the empty {s:?}")));
                }
                Ok(PortRange { lo, hi })
            }
        }
        d.deserialize_any(V)
    }
}

/// A non-empty list of ports and ranges.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<PortRange>")]
pub struct PortList(pub Vec<PortRange>);

impl TryFrom<Vec<PortRange>> for PortList {
    type Error = String;
    fn try_from(v: Vec<PortRange>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("at least one port (leave the field out to match any port)".into());
        }
        Ok(PortList(v))
    }
}

/// ICMP/ICMPv6 types: one number (`icmp_type: 8`, like iptables'
/// `--icmp-type`) or a non-empty list (`icmp_type: [133, 134, 135, 136]`,
/// like an nftables `icmpv6 type { ... }` set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpTypes(pub Vec<u8>);

impl<'de> Deserialize<'de> for IcmpTypes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn one<E: de::Error>(v: u64) -> Result<u8, E> {
            u8::try_from(v).map_err(|_| E::custom(format!("an ICMP type 0..=255, not {v}")))
        }
        impl<'de> Visitor<'de> for V {
            type Value = IcmpTypes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ICMP type 0..=255 or a non-empty list of them")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IcmpTypes, E> {
                Ok(IcmpTypes(vec![one(v)?]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IcmpTypes, E> {
                self.visit_u64(u64::try_from(v).map_err(|_| E::custom(format!("an ICMP type 0..=255, not {v}")))?)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IcmpTypes, A::Error> {
                let mut v = Vec::new();
                while let Some(t) = seq.next_element::<u64>()? {
                    v.push(one(t)?);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("at least one ICMP type (leave the field out to match any type)"));
                }
                Ok(IcmpTypes(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl IcmpTypes {
    /// Whether `t` is one of the types.
    pub fn contains(&self, t: u8) -> bool {
        self.0.contains(&t)
    }
}

/// TCP flag bits, by name.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct TcpFlagSet(pub u8);

const FLAG_NAMES: [(&str, u8); 8] = [
    ("FIN", 0x01),
    ("SYN", 0x02),
    ("RST", 0x04),
    ("PSH", 0x08),
    ("ACK", 0x10),
    ("URG", 0x20),
    ("ECE", 0x40),
    ("CWR", 0x80),
];

impl TryFrom<Vec<String>> for TcpFlagSet {
    type Error = String;
    fn try_from(v: Vec<String>) -> Result<Self, String> {
        let mut bits = 0;
        for s in &v {
            let u = s.to_ascii_uppercase();
            if u == "ALL" {
                bits = 0xff;
                continue;
            }
            if u == "NONE" {
                continue;
            }
            match FLAG_NAMES.iter().find(|(n, _)| *n == u) {
                Some((_, b)) => bits |= b,
                None => {
                    return Err(format!("a TCP flag, SYN, ACK, FIN, RST, PSH, URG, ECE, CWR, ALL or NONE, not {s:?}"))
                }
            }
        }
        Ok(TcpFlagSet(bits))
    }
}

impl<'de> Deserialize<'de> for TcpFlagSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        TcpFlagSet::try_from(v).map_err(de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpFlagsSpec {
    mask: TcpFlagSet,
    set: TcpFlagSet,
}

/// `--tcp-flags mask set`: the bits in `mask` must equal `set`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "TcpFlagsSpec")]
pub struct TcpFlags {
    pub mask: u8,
    pub set: u8,
}

impl TryFrom<TcpFlagsSpec> for TcpFlags {
    type Error = String;
    fn try_from(s: TcpFlagsSpec) -> Result<Self, String> {
        if s.set.0 & !s.mask.0 != 0 {
            return Err("`set` flags that are all in `mask` (a flag outside the mask is never compared)".into());
        }
        Ok(TcpFlags { mask: s.mask.0, set: s.set.0 })
    }
}

/// A VLAN id, 0..=4095.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct VlanId(pub u16);

impl TryFrom<u64> for VlanId {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        if v > 4095 {
            return Err(format!("a VLAN id 0..=4095, not {v}"));
        }
        Ok(VlanId(v as u16))
    }
}

// ---------------------------------------------------------------------------
// Match

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MatchSpec {
    ctstate: Option<Vec<StateName>>,
    ctstate_not: Option<Vec<StateName>>,
    ctstatus: Option<Vec<StatusName>>,
    ctstatus_not: Option<Vec<StatusName>>,
    ctdir: Option<CtDir>,
    proto: Option<Proto>,
    src: Option<Prefixes>,
    dst: Option<Prefixes>,
    not_src: Option<Prefixes>,
    not_dst: Option<Prefixes>,
    sport: Option<PortList>,
    dport: Option<PortList>,
    tcp_flags: Option<TcpFlags>,
    syn: Option<bool>,
    icmp_type: Option<IcmpTypes>,
    icmp_code: Option<u8>,
    iface: Option<Iface>,
    vlan: Option<VlanId>,
}

/// What a rule matches; every given field must hold (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MatchSpec")]
pub struct Match {
    /// `--ctstate`: any of these.
    pub ctstate: Option<Vec<StateName>>,
    /// `! --ctstate`: none of these.
    pub ctstate_not: Option<Vec<StateName>>,
    /// `--ctstatus`: any of these bits set (NONE contributes no bit).
    pub ctstatus: Option<Vec<StatusName>>,
    /// `! --ctstatus`: none of these bits set; packets without an entry never match.
    pub ctstatus_not: Option<Vec<StatusName>>,
    pub ctdir: Option<CtDir>,
    pub proto: Option<Proto>,
    /// Source in any of these prefixes.
    pub src: Option<Prefixes>,
    pub dst: Option<Prefixes>,
    /// Source in none of these prefixes.
    pub not_src: Option<Prefixes>,
    pub not_dst: Option<Prefixes>,
    pub sport: Option<PortList>,
    pub dport: Option<PortList>,
    pub tcp_flags: Option<TcpFlags>,
    /// `true`: `--syn` (SYN set, ACK, RST and FIN clear); `false`: `! --syn`.
    pub syn: Option<bool>,
    /// Any of these types.
    pub icmp_type: Option<IcmpTypes>,
    pub icmp_code: Option<u8>,
    /// Ingress port.
    pub iface: Option<Iface>,
    /// Outermost VLAN id.
    pub vlan: Option<VlanId>,
}

impl Match {
    /// Whether the match looks at conntrack state (not allowed before tracking).
    pub fn uses_conntrack(&self) -> bool {
        self.ctstate.is_some()
            || self.ctstate_not.is_some()
            || self.ctstatus.is_some()
            || self.ctstatus_not.is_some()
            || self.ctdir.is_some()
    }
}

impl TryFrom<MatchSpec> for Match {
    type Error = String;
    fn try_from(m: MatchSpec) -> Result<Self, String> {
        let p = m.proto.map(|p| p.0);
        let ports_ok = matches!(p, Some(proto::TCP | proto::UDP | proto::SCTP | proto::UDPLITE));
        if (m.sport.is_some() || m.dport.is_some()) && !ports_ok {
            return Err("proto: \"tcp\" or \"udp\" (or sctp/udplite) in a match with sport or dport".into());
        }
        if (m.tcp_flags.is_some() || m.syn.is_some()) && p != Some(proto::TCP) {
            return Err("proto: \"tcp\" in a match with tcp_flags or syn".into());
        }
        if m.tcp_flags.is_some() && m.syn.is_some() {
            return Err("either tcp_flags or syn in one match, not both".into());
        }
        if (m.icmp_type.is_some() || m.icmp_code.is_some()) && !matches!(p, Some(proto::ICMP | proto::ICMPV6)) {
            return Err("proto: \"icmp\" or \"icmpv6\" in a match with icmp_type or icmp_code".into());
        }
        if m.icmp_code.is_some() && m.icmp_type.is_none() {
            return Err("icmp_type together with icmp_code".into());
        }
        for (name, l) in [("ctstate", &m.ctstate), ("ctstate_not", &m.ctstate_not)] {
            if l.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("at least one state in {name} (leave it out to match any state)"));
            }
        }
        for (name, l) in [("ctstatus", &m.ctstatus), ("ctstatus_not", &m.ctstatus_not)] {
            if l.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("at least one status name in {name} (leave it out to match any status)"));
            }
        }
        Ok(Match {
            ctstate: m.ctstate,
            ctstate_not: m.ctstate_not,
            ctstatus: m.ctstatus,
            ctstatus_not: m.ctstatus_not,
            ctdir: m.ctdir,
            proto: m.proto,
            src: m.src,
            dst: m.dst,
            not_src: m.not_src,
            not_dst: m.not_dst,
            sport: m.sport,
            dport: m.dport,
            tcp_flags: m.tcp_flags,
            syn: m.syn,
            icmp_type: m.icmp_type,
            icmp_code: m.icmp_code,
            iface: m.iface,
            vlan: m.vlan,
        })
    }
}

// ---------------------------------------------------------------------------
// Rules and chains

thread_local! {
    /// Rule names seen so far by the parse running on this thread (`None`
    /// outside [`crate::Config::parse`]), so a duplicate is reported at
    /// its own position.
    static NAMES: RefCell<Option<HashSet<String>>> = const { RefCell::new(None) };
}

/// Reset the set of seen names around one parse.
pub(crate) struct NameScope(Option<HashSet<String>>);

impl NameScope {
    pub(crate) fn enter() -> NameScope {
        NameScope(NAMES.with(|n| n.replace(Some(HashSet::new()))))
    }
}

impl Drop for NameScope {
    fn drop(&mut self) {
        let prev = self.0.take();
        NAMES.with(|n| *n.borrow_mut() = prev);
    }
}

/// A rule name: 1 to 64 printable characters, unique within the file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RuleName(pub String);

impl TryFrom<String> for RuleName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 64 || s.chars().any(char::is_control) {
            return Err(format!("a rule name of 1 to 64 printable characters, not {s:?}"));
        }
        let dup = NAMES.with(|n| n.borrow_mut().as_mut().is_some_and(|set| !set.insert(s.clone())));
        if dup {
            return Err(format!("unique rule names, but {s:?} is used twice"));
        }
        Ok(RuleName(s))
    }
}

/// A log prefix, like iptables `--log-prefix`: at most 29 printable characters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LogPrefix(pub String);

impl TryFrom<String> for LogPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > 29 || s.chars().any(char::is_control) {
            return Err(format!("a log prefix of at most 29 printable characters, not {s:?}"));
        }
        Ok(LogPrefix(s))
    }
}

/// A filter rule's target.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Action {
    Accept,
    Drop,
    /// Drop and answer (TCP RST or ICMP unreachable).
    Reject,
    /// Log and continue with the next rule.
    Log,
}

impl TryFrom<String> for Action {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "accept" => Ok(Action::Accept),
            "drop" => Ok(Action::Drop),
            "reject" => Ok(Action::Reject),
            "log" => Ok(Action::Log),
            _ => Err(format!("an action, \"accept\", \"drop\", \"reject\" or \"log\", not {s:?}")),
        }
    }
}

impl Action {
    pub const fn name(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
            Action::Log => "log",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    name: Option<RuleName>,
    #[serde(rename = "match", default)]
    matches: Match,
    action: Action,
    #[serde(default)]
    log_prefix: Option<LogPrefix>,
}

/// One filter rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RuleSpec")]
pub struct Rule {
    pub name: Option<RuleName>,
    pub matches: Match,
    pub action: Action,
    pub log_prefix: Option<LogPrefix>,
}

impl TryFrom<RuleSpec> for Rule {
    type Error = String;
    fn try_from(r: RuleSpec) -> Result<Self, String> {
        if r.log_prefix.is_some() && r.action != Action::Log {
            return Err(format!("log_prefix only with action \"log\", not with \"{}\"", r.action.name()));
        }
        Ok(Rule { name: r.name, matches: r.matches, action: r.action, log_prefix: r.log_prefix })
    }
}

/// A chain's default verdict.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ChainPolicy {
    #[default]
    Accept,
    Drop,
}

impl TryFrom<String> for ChainPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "accept" => Ok(ChainPolicy::Accept),
            "drop" => Ok(ChainPolicy::Drop),
            _ => Err(format!("a chain policy, \"accept\" or \"drop\", not {s:?}")),
        }
    }
}

/// Rules for one direction of travel, first match wins, then the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Chain {
    pub policy: ChainPolicy,
    pub rules: Vec<Rule>,
}

/// The filter stage, one chain per direction of travel (by ingress port).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Filter {
    /// Frames arriving on the inside port.
    pub inside_to_outside: Chain,
    /// Frames arriving on the outside port.
    pub outside_to_inside: Chain,
}

/// What a pre-tracking rule does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RawAction {
    /// `CT --notrack`.
    Notrack,
    /// `CT --zone N`.
    Zone(u16),
    /// `CT --helper NAME`: attach this helper to connections the packet
    /// creates (ahead of the `helpers:` port list).
    Helper(crate::HelperKind),
}

const RAW_ACTION_EXPECTED: &str = "a raw action, \"notrack\", (zone: N) or (helper: \"ftp\"|\"tftp\")";

impl<'de> Deserialize<'de> for RawAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawAction;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(RAW_ACTION_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawAction, E> {
                match s {
                    "notrack" => Ok(RawAction::Notrack),
                    _ => Err(E::custom(format!("{RAW_ACTION_EXPECTED}, not {s:?}"))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawAction, A::Error> {
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum Key {
                    Zone,
                    Helper,
                }
                let mut action = None;
                while let Some(key) = map.next_key::<Key>()? {
                    if action.is_some() {
                        return Err(de::Error::custom(format!("{RAW_ACTION_EXPECTED}: one action per rule")));
                    }
                    action = Some(match key {
                        Key::Zone => RawAction::Zone(map.next_value::<u16>()?),
                        Key::Helper => RawAction::Helper(map.next_value::<crate::HelperKind>()?),
                    });
                }
                action.ok_or_else(|| de::Error::custom(RAW_ACTION_EXPECTED))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSpec {
    #[serde(default)]
    name: Option<RuleName>,
    #[serde(rename = "match", default)]
    matches: Match,
    action: RawAction,
}

/// One pre-tracking rule (the raw table): first match wins.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRuleSpec")]
pub struct RawRule {
    pub name: Option<RuleName>,
    pub matches: Match,
    pub action: RawAction,
}

impl TryFrom<RawRuleSpec> for RawRule {
    type Error = String;
    fn try_from(r: RawRuleSpec) -> Result<Self, String> {
        if r.matches.uses_conntrack() {
            return Err("a raw match without ctstate, ctstatus or ctdir (raw rules run before tracking)".into());
        }
        if let RawAction::Helper(kind) = r.action {
            let (want, name) = match kind {
                crate::HelperKind::Ftp => (proto::TCP, "tcp"),
                crate::HelperKind::Tftp => (proto::UDP, "udp"),
            };
            if r.matches.proto.is_some_and(|p| p.0 != want) {
                return Err(format!("proto: \"{name}\" in a match that attaches the {} helper", kind.name()));
            }
        }
        Ok(RawRule { name: r.name, matches: r.matches, action: r.action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigError};
    use std::path::Path;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("r.ron"))
    }

    fn err(s: &str) -> ConfigError {
        parse(s).unwrap_err()
    }

    #[test]
    fn defaults_accept_everything() {
        let c = parse("()").unwrap();
        assert!(c.bridge_non_ip);
        assert!(c.raw.is_empty());
        assert_eq!(c.filter, Filter::default());
        assert_eq!(c.filter.inside_to_outside.policy, ChainPolicy::Accept);
        assert_eq!(c.interfaces.inside.0, "veth-in");
        assert_eq!(c.xdp, Xdp::default());
    }

    #[test]
    fn example_parses() {
        let text = include_str!("../examples/bridge.ron");
        let c = Config::parse(text, Path::new("examples/bridge.ron")).unwrap();
        assert_eq!(c.filter.outside_to_inside.policy, ChainPolicy::Drop);
        assert_eq!(c.filter.inside_to_outside.rules.len(), 4);
        let log = c.filter.outside_to_inside.rules.iter().find(|r| r.action == Action::Log).unwrap();
        assert_eq!(log.log_prefix.as_ref().unwrap().0, "ctwall out NEW: ");
        assert_eq!(c.raw[0].action, RawAction::Notrack);
        assert_eq!(c.helpers.0.len(), 2);
        assert_eq!((c.workers, &c.cpus), (Workers(1), &None));
        // The commented `cpus` line parses when uncommented.
        let uncommented = text.replace("// cpus: [0, 1],", "cpus: [0, 1],");
        let c = Config::parse(&uncommented, Path::new("examples/bridge.ron")).unwrap();
        assert_eq!(c.cpus, Some(Cpus(vec![0, 1])));
    }

    #[test]
    fn full_rule_parses() {
        let c = parse(
            r#"(filter: (inside_to_outside: (policy: "drop", rules: [
                (name: "a", match: (ctstate: ["new", "Established"], ctstatus: ["ASSURED", "none"],
                   ctstatus_not: ["EXPECTED"], ctdir: "reply", proto: "tcp", src: ["10.0.0.0/8", "fd00::/8"],
                   not_dst: ["10.1.2.3"], sport: [80, "1024-65535"], tcp_flags: (mask: ["SYN", "ACK"], set: ["SYN"]),
                   iface: "inside", vlan: 100), action: "accept"),
                (match: (proto: 1, icmp_type: 8, icmp_code: 0), action: "drop"),
                (match: (proto: "udp", dport: ["53"]), action: "reject"),
                (match: (proto: "icmpv6", icmp_type: [135, 136]), action: "accept"),
            ])),
            raw: [(match: (iface: "outside"), action: (zone: 5)), (match: (), action: "notrack"),
                  (match: (proto: "tcp", dport: [2121]), action: (helper: "ftp"))])"#,
        );
        let c = match c {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let r = &c.filter.inside_to_outside.rules[0];
        assert_eq!(r.name.as_ref().unwrap().0, "a");
        let m = &r.matches;
        assert_eq!(m.ctstate, Some(vec![StateName::New, StateName::Established]));
        assert_eq!(m.ctstatus, Some(vec![StatusName::Assured, StatusName::None]));
        assert_eq!(m.sport.as_ref().unwrap().0, vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 1024, hi: 65535 }]);
        assert_eq!(m.tcp_flags, Some(TcpFlags { mask: 0x12, set: 0x02 }));
        assert_eq!(m.src.as_ref().unwrap().0[1].len, 8);
        assert_eq!(m.not_dst.as_ref().unwrap().0[0].len, 32);
        assert_eq!(c.filter.inside_to_outside.rules[1].matches.proto, Some(Proto(1)));
        assert_eq!(c.filter.inside_to_outside.rules[2].action, Action::Reject);
        assert_eq!(c.filter.inside_to_outside.rules[1].matches.icmp_type, Some(IcmpTypes(vec![8])));
        assert_eq!(c.filter.inside_to_outside.rules[3].matches.icmp_type, Some(IcmpTypes(vec![135, 136])));
        assert_eq!(c.raw[0].action, RawAction::Zone(5));
        assert_eq!(c.raw[2].action, RawAction::Helper(crate::HelperKind::Ftp));
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let cases: &[(&str, &str, usize)] = &[
            ("(filter: (inside_to_outside: (rules: [\n (match: (src: [\"10.0.0.1/8\"]), action: \"drop\")])))", "no host bits set, like \"10.0.0.0/8\"", 2),
            ("(filter: (inside_to_outside: (rules: [(match: (src: [\"10.0.0.0/33\"]), action: \"drop\")])))", "between 0 and 32", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (dst: [\"fd00::1/8\"]), action: \"drop\")])))", "\"fd00::/8\"", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (dst: [\"banana\"]), action: \"drop\")])))", "address prefix", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"tcp\", dport: [\"10-5\"]), action: \"drop\")])))", "empty \"10-5\"", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (dport: [80]), action: \"drop\")])))", "proto: \"tcp\" or \"udp\"", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (icmp_type: 8), action: \"drop\")])))", "\"icmp\" or \"icmpv6\"", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (syn: true), action: \"drop\")])))", "proto: \"tcp\"", 1),
            ("(filter: (inside_to_outside: (rules: [\n(match: (proto: \"icmp\", icmp_type: [8, 256]), action: \"drop\")])))", "an ICMP type 0..=255, not 256", 2),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"icmp\", icmp_type: []), action: \"drop\")])))", "at least one ICMP type", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"icmp\", icmp_type: \"echo\"), action: \"drop\")])))", "an ICMP type 0..=255 or a non-empty list", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (ctstate: [\"SNAT\"]), action: \"drop\")])))", "a ctstate", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (ctstatus: [\"DYING\"]), action: \"drop\")])))", "a ctstatus", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (colour: 1), action: \"drop\")])))", "colour", 1),
            ("(filter: (inside_to_outside: (rules: [(action: \"jump\")])))", "an action", 1),
            ("(filter: (inside_to_outside: (rules: [(action: \"drop\", log_prefix: \"x\")])))", "log_prefix only", 1),
            ("(filter: (inside_to_outside: (policy: \"reject\")))", "a chain policy", 1),
            ("(raw: [(match: (proto: \"udp\"), action: (helper: \"ftp\"))])", "proto: \"tcp\" in a match that attaches the ftp helper", 1),
            ("(raw: [(action: (helper: \"sip\"))])", "a helper name", 1),
            ("(raw: [(action: (zone: 1, helper: \"ftp\"))])", "one action per rule", 1),
            ("(filter: (inside_to_outside: (rules: [(name: \"x\", action: \"drop\")]),\n outside_to_inside: (rules: [(name: \"x\", action: \"drop\")])))", "\"x\" is used twice", 2),
            ("(raw: [(match: (ctstate: [\"NEW\"]), action: \"notrack\")])", "raw rules run before tracking", 1),
            ("(raw: [(action: \"accept\")])", "a raw action", 1),
            ("(interfaces: (inside: \"eth0\", outside: \"eth0\"))", "two different interfaces", 1),
            ("(interfaces: (inside: \"a-very-long-name0\"))", "at most 15 bytes", 1),
            ("(interfaces: (inside: \"a b\"))", "without '/' or whitespace", 1),
            ("(interfaces: (outside: \"\"))", "non-empty", 1),
            ("(xdp: (ring_size: 1000))", "power of two", 1),
            ("(xdp: (frame_size: 1024))", "2048 or 4096", 1),
            ("(xdp: (mode: \"turbo\"))", "an XDP mode", 1),
            ("(xdp: (zero_copy: \"yes\"))", "zero_copy", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (vlan: 5000), action: \"drop\")])))", "VLAN id", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"tcp\", tcp_flags: (mask: [\"SYN\"], set: [\"ACK\"])), action: \"drop\")])))", "in `mask`", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"tcp\", tcp_flags: (mask: [\"XMAS\"], set: [])), action: \"drop\")])))", "a TCP flag", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (proto: \"ospfv9\"), action: \"drop\")])))", "a protocol", 1),
            ("(filter: (inside_to_outside: (rules: [(match: (iface: \"left\"), action: \"drop\")])))", "ingress port", 1),
            ("(bridge_non_ip: 1)", "bool", 1),
        ];
        for (text, want, line) in cases {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, *line, "{text}: {e}");
            assert!(e.to_string().starts_with(&format!("r.ron:{line}:")), "{e}");
        }
    }

    #[test]
    fn names_are_scoped_to_one_parse() {
        let text = "(filter: (inside_to_outside: (rules: [(name: \"x\", action: \"drop\")])))";
        parse(text).unwrap();
        parse(text).unwrap();
    }

    #[test]
    fn prefixes() {
        let p = |s: &str| Prefix::try_from(s.to_string());
        assert_eq!(p("0.0.0.0/0").unwrap().len, 0);
        assert_eq!(p("::/0").unwrap().len, 0);
        assert_eq!(p("2001:db8::/32").unwrap().len, 32);
        assert_eq!(p("192.168.1.1").unwrap().len, 32);
        assert!(p("192.168.1.0/23").unwrap_err().contains("192.168.0.0/23"));
        assert!(p("1.2.3.4/+8").is_err());
        assert!(p("::1/129").is_err());
    }

    #[test]
    fn interfaces_checked_against_a_directory() {
        let dir = std::env::temp_dir().join(format!("ctwall-ifs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("veth-in")).unwrap();
        let text = "(\n  interfaces: (\n    inside: \"veth-in\",\n    outside: \"veth-out\"),\n)";
        let c = parse(text).unwrap();
        let e = c.check_interfaces_in(&dir, text, Path::new("r.ron")).unwrap_err();
        assert_eq!((e.line, e.col), (4, 5), "{e}");
        assert!(e.to_string().starts_with("r.ron:4:5: expected an existing network interface"), "{e}");
        std::fs::create_dir_all(dir.join("veth-out")).unwrap();
        c.check_interfaces_in(&dir, text, Path::new("r.ron")).unwrap();
        // Defaults, not in the text: no position.
        let c = parse("()").unwrap();
        std::fs::remove_dir(dir.join("veth-in")).unwrap();
        let e = c.check_interfaces_in(&dir, "()", Path::new("r.ron")).unwrap_err();
        assert_eq!(e.line, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
