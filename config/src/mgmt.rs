//! The management plane: the appliance's own addresses on the link, its
//! HTTP service and who may use it.
//!
//! ```ron
//! mgmt: (
//!     port: "inside",
//!     addresses: ["10.0.0.250/24", "fd00::fa/64"],
//!     mac: "02:c7:00:00:00:01",
//!     http_port: 80,
//!     allow: ["10.0.0.0/24"],
//!     token: "s3cret-reload-token",
//! ),
//! ```
//!
//! Every value is checked while it is parsed, like the rest of the file.

use crate::rules::Prefix;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;

/// The bridge port the management addresses live on.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum MgmtPort {
    #[default]
    Inside,
    Outside,
}

impl TryFrom<String> for MgmtPort {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "inside" => Ok(MgmtPort::Inside),
            "outside" => Ok(MgmtPort::Outside),
            _ => Err(format!("the port the management address lives on, \"inside\" or \"outside\", not {s:?}")),
        }
    }
}

/// An interface address with its prefix length, like `"10.0.0.250/24"`:
/// a unicast address (host bits are the point here) and the on-link prefix.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IfAddr {
    pub addr: IpAddr,
    pub len: u8,
}

impl IfAddr {
    /// The on-link prefix (`10.0.0.0/24` for `10.0.0.250/24`).
    pub fn network(&self) -> Prefix {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
                IpAddr::from(std::net::Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len: self.len }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl TryFrom<String> for IfAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let shape =
            || format!("an address with its prefix length, like \"10.0.0.250/24\" or \"fd00::fa/64\", not {s:?}");
        let (a, l) = s.split_once('/').ok_or_else(shape)?;
        let addr: IpAddr = a.parse().map_err(|_| shape())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l.parse::<u8>() {
            Ok(n) if (1..=max).contains(&n) && l.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("a prefix length between 1 and {max} after '/', not {s:?}")),
        };
        let usable = match addr {
            IpAddr::V4(v) => {
                let host = u32::from(v) & !u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let all_ones = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
                !(v.is_unspecified() || v.is_loopback() || v.is_multicast() || v.is_broadcast())
                    // On a /31 or /32 every address is a host address (RFC 3021).
                    && (len >= 31 || (host != 0 && host != all_ones))
            }
            IpAddr::V6(v) => !(v.is_unspecified() || v.is_loopback() || v.is_multicast()),
        };
        if !usable {
            return Err(format!(
                "a unicast host address (not the network, broadcast, loopback, multicast or unspecified address), not {s:?}"
            ));
        }
        Ok(IfAddr { addr, len })
    }
}

/// One to eight distinct interface addresses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<IfAddr>")]
pub struct IfAddrs(pub Vec<IfAddr>);

/// The most addresses the management interface takes.
pub const MAX_MGMT_ADDRESSES: usize = 8;

impl TryFrom<Vec<IfAddr>> for IfAddrs {
    type Error = String;
    fn try_from(v: Vec<IfAddr>) -> Result<Self, String> {
        if v.is_empty() {
            return Err("at least one management address, like [\"10.0.0.250/24\"]".into());
        }
        if v.len() > MAX_MGMT_ADDRESSES {
            return Err(format!("at most {MAX_MGMT_ADDRESSES} management addresses, not {}", v.len()));
        }
        for (i, a) in v.iter().enumerate() {
            if v[..i].iter().any(|b| b.addr == a.addr) {
                return Err(format!("distinct management addresses, but {} is listed twice", a.addr));
            }
        }
        Ok(IfAddrs(v))
    }
}

/// A unicast Ethernet address, `"02:c7:00:00:00:01"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Mac(pub [u8; 6]);

impl Default for Mac {
    /// Locally administered (bit 1 of the first octet), unicast.
    fn default() -> Self {
        Mac([0x02, 0xc7, 0x00, 0x00, 0x00, 0x01])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl TryFrom<String> for Mac {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let shape = || format!("a MAC address of six hex octets like \"02:c7:00:00:00:01\", not {s:?}");
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            let p = parts.next().ok_or_else(shape)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(shape());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| shape())?;
        }
        if parts.next().is_some() {
            return Err(shape());
        }
        if mac[0] & 1 != 0 || mac == [0; 6] {
            return Err(format!("a unicast MAC address (first octet even, not all zeros), not {s:?}"));
        }
        Ok(Mac(mac))
    }
}

/// A TCP port other than 0.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct HttpPort(pub u16);

impl TryFrom<u64> for HttpPort {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, String> {
        match u16::try_from(v) {
            Ok(p) if p != 0 => Ok(HttpPort(p)),
            _ => Err(format!("a TCP port between 1 and 65535, not {v}")),
        }
    }
}

/// The bearer token for write endpoints: 16 to 256 visible ASCII
/// characters, so it fits an `Authorization` header as it is.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Token(pub String);

impl fmt::Debug for Token {
    /// Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl TryFrom<String> for Token {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if !(16..=256).contains(&s.len()) {
            return Err(format!("a token of 16 to 256 characters, not one of {}", s.len()));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a token of visible ASCII characters (no spaces or control characters)".into());
        }
        Ok(Token(s))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MgmtSpec {
    #[serde(default)]
    port: MgmtPort,
    addresses: IfAddrs,
    #[serde(default)]
    mac: Mac,
    #[serde(default = "default_http_port")]
    http_port: HttpPort,
    #[serde(default)]
    allow: Option<Vec<Prefix>>,
    #[serde(default)]
    token: Option<Token>,
}

fn default_http_port() -> HttpPort {
    HttpPort(80)
}

/// The management plane's settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "MgmtSpec")]
pub struct Mgmt {
    /// The bridge port the addresses live on.
    pub port: MgmtPort,
    pub addresses: IfAddrs,
    pub mac: Mac,
    pub http_port: HttpPort,
    /// Sources that get answers. Defaults to the prefixes of `addresses`.
    pub allow: Vec<Prefix>,
    /// Needed for `POST /reload`; without it write endpoints are refused.
    pub token: Option<Token>,
}

impl Mgmt {
    /// Settings for one address (`ctwall run --mgmt ADDR/PREFIX`): inside
    /// port, default MAC, HTTP on 80, answering the address's prefix.
    pub fn for_address(addr: IfAddr) -> Mgmt {
        Mgmt {
            port: MgmtPort::Inside,
            addresses: IfAddrs(vec![addr]),
            mac: Mac::default(),
            http_port: default_http_port(),
            allow: vec![addr.network()],
            token: None,
        }
    }
}

impl TryFrom<MgmtSpec> for Mgmt {
    type Error = String;
    fn try_from(s: MgmtSpec) -> Result<Self, String> {
        let allow = match s.allow {
            Some(v) if v.is_empty() => {
                return Err("at least one allowed prefix (leave `allow` out to answer the addresses' prefixes)".into())
            }
            Some(v) => v,
            None => {
                let mut v: Vec<Prefix> = Vec::new();
                for a in &s.addresses.0 {
                    let n = a.network();
                    if !v.contains(&n) {
                        v.push(n);
                    }
                }
                v
            }
        };
        Ok(Mgmt { port: s.port, addresses: s.addresses, mac: s.mac, http_port: s.http_port, allow, token: s.token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigError};
    use std::path::Path;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, Path::new("m.ron"))
    }

    fn err(s: &str) -> ConfigError {
        parse(s).expect_err("should be refused")
    }

    fn pfx(s: &str) -> Prefix {
        Prefix::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn absent_by_default() {
        assert_eq!(parse("()").unwrap().mgmt, None);
    }

    #[test]
    fn minimal_section_takes_defaults() {
        let m = parse("(mgmt: (addresses: [\"10.0.0.250/24\", \"fd00::fa/64\"]))").unwrap().mgmt.unwrap();
        assert_eq!(m.port, MgmtPort::Inside);
        assert_eq!(m.mac, Mac::default());
        assert_eq!(m.mac.to_string(), "02:c7:00:00:00:01");
        assert_eq!(m.http_port, HttpPort(80));
        assert_eq!(m.allow, vec![pfx("10.0.0.0/24"), pfx("fd00::/64")]);
        assert_eq!(m.token, None);
        assert_eq!(m.addresses.0[0].to_string(), "10.0.0.250/24");
    }

    #[test]
    fn full_section_parses() {
        let m = parse(
            "(mgmt: Some((port: \"outside\", addresses: [\"192.0.2.1/32\"], mac: \"0A:00:00:00:00:fe\", \
             http_port: 8080, allow: [\"198.51.100.0/24\", \"2001:db8::/32\"], token: \"0123456789abcdef\")))",
        )
        .unwrap()
        .mgmt
        .unwrap();
        assert_eq!(m.port, MgmtPort::Outside);
        assert_eq!(m.mac, Mac([0x0a, 0, 0, 0, 0, 0xfe]));
        assert_eq!(m.http_port, HttpPort(8080));
        assert_eq!(m.allow, vec![pfx("198.51.100.0/24"), pfx("2001:db8::/32")]);
        assert_eq!(m.token, Some(Token("0123456789abcdef".into())));
        assert_eq!(format!("{:?}", m.token), "Some(Token(..))");
    }

    #[test]
    fn shared_prefixes_are_allowed_once() {
        let m = parse("(mgmt: (addresses: [\"10.0.0.250/24\", \"10.0.0.251/24\"]))").unwrap().mgmt.unwrap();
        assert_eq!(m.allow, vec![pfx("10.0.0.0/24")]);
    }

    #[test]
    fn for_address_answers_its_prefix() {
        let a = IfAddr::try_from("fd00::fa/64".to_string()).unwrap();
        let m = Mgmt::for_address(a);
        assert_eq!((m.port, m.http_port, m.allow), (MgmtPort::Inside, HttpPort(80), vec![pfx("fd00::/64")]));
        let b = IfAddr::try_from("10.1.2.3/8".to_string()).unwrap();
        assert_eq!(b.network(), pfx("10.0.0.0/8"));
        let c = IfAddr::try_from("10.1.2.3/32".to_string()).unwrap();
        assert_eq!(c.network(), pfx("10.1.2.3/32"));
    }

    #[test]
    fn errors_say_what_was_expected_and_where() {
        let cases: &[(&str, &str)] = &[
            ("(mgmt: (\n addresses: []))", "at least one management address"),
            ("(mgmt: (\n addresses: [\"10.0.0.250\"]))", "with its prefix length"),
            ("(mgmt: (\n addresses: [\"10.0.0.300/24\"]))", "with its prefix length"),
            ("(mgmt: (\n addresses: [\"10.0.0.250/33\"]))", "between 1 and 32"),
            ("(mgmt: (\n addresses: [\"10.0.0.250/0\"]))", "between 1 and 32"),
            ("(mgmt: (\n addresses: [\"10.0.0.250/+4\"]))", "between 1 and 32"),
            ("(mgmt: (\n addresses: [\"fd00::1/129\"]))", "between 1 and 128"),
            ("(mgmt: (\n addresses: [\"10.0.0.0/24\"]))", "unicast host address"),
            ("(mgmt: (\n addresses: [\"10.0.0.255/24\"]))", "unicast host address"),
            ("(mgmt: (\n addresses: [\"224.0.0.1/24\"]))", "unicast host address"),
            ("(mgmt: (\n addresses: [\"::1/128\"]))", "unicast host address"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\", \"10.0.0.1/16\"]))", "listed twice"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], port: \"middle\"))", "\"inside\" or \"outside\""),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"01:00:5e:00:00:01\"))", "unicast MAC"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"00:00:00:00:00:00\"))", "unicast MAC"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"02:00:00:00:00\"))", "six hex octets"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"02:00:00:00:00:00:00\"))", "six hex octets"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"02:00:00:00:00:0g\"))", "six hex octets"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], mac: \"02:00:00:00:00:+1\"))", "six hex octets"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], http_port: 0))", "between 1 and 65535"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], http_port: 65536))", "between 1 and 65535"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], allow: [\"10.0.0.1/24\"]))", "no host bits"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], token: \"short\"))", "16 to 256 characters"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], token: \"with a space inside\"))", "visible ASCII"),
            ("(mgmt: (\n addresses: [\"10.0.0.1/24\"], tokn: \"0123456789abcdef\"))", "tokn"),
        ];
        for (text, want) in cases {
            let e = err(text);
            assert!(e.message.contains(want), "{text}: {e}");
            assert_eq!(e.line, 2, "{text}: {e}");
            assert!(e.to_string().starts_with("m.ron:2:"), "{e}");
        }
        let e = err("(mgmt: (addresses: [\"10.0.0.1/24\"], allow: []))");
        assert!(e.message.contains("at least one allowed prefix"), "{e}");
        let e = err("(mgmt: (port: \"inside\"))");
        assert!(e.message.contains("addresses"), "{e}");
        let many: Vec<String> = (1..=9).map(|i| format!("\"10.0.0.{i}/24\"")).collect();
        let e = err(&format!("(mgmt: (addresses: [{}]))", many.join(",")));
        assert!(e.message.contains("at most 8"), "{e}");
    }

    #[test]
    fn commented_example_parses_when_uncommented() {
        let text = include_str!("../examples/bridge.ron");
        let start = text.find("    // mgmt: (").expect("the example documents mgmt");
        let block: Vec<&str> = text[start..]
            .lines()
            .take_while(|l| l.trim_start().starts_with("//"))
            .map(|l| l.trim_start().trim_start_matches("//"))
            .collect();
        let m = parse(&format!("({})", block.join("\n"))).unwrap().mgmt.unwrap();
        assert_eq!(m.addresses.0.len(), 2);
        assert!(m.token.is_some());
    }

    #[test]
    fn slash_31_and_32_take_every_address() {
        for s in ["10.0.0.0/31", "10.0.0.1/31", "10.0.0.0/32"] {
            assert!(IfAddr::try_from(s.to_string()).is_ok(), "{s}");
        }
    }
}
