//! One parser for the kernel's `/proc/net/nf_conntrack` and `/proc/net/nf_conntrack_expect`
//! formats (spec §10.1 and §10.3), used for both the kernel's and ctwall's listings.

use std::fmt;
use std::net::IpAddr;

/// A tuple as printed: addresses plus the L4 key fields in print order
/// (`sport`/`dport`, `type`/`code`/`id`, `srckey`/`dstkey`, or nothing).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: Vec<(String, String)>,
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "src={} dst={}", self.src, self.dst)?;
        for (k, v) in &self.l4 {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// One parsed `/proc/net/nf_conntrack` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    pub l3name: String,
    pub l3num: u16,
    pub l4name: String,
    pub l4num: u8,
    /// Seconds to expiry (absent for offloaded entries).
    pub timeout: Option<i64>,
    /// TCP (or SCTP...) state name, or GRE's `timeout=30, stream_timeout=180`.
    pub state: Option<String>,
    pub orig: Tuple,
    pub reply: Tuple,
    pub unreplied: bool,
    /// `[ASSURED]`, `[OFFLOAD]` or `[HW_OFFLOAD]`.
    pub flag: Option<String>,
    pub mark: Option<u32>,
    pub zone: Option<u16>,
    pub zone_orig: Option<u16>,
    pub zone_reply: Option<u16>,
    /// (packets, bytes) per direction with acct.
    pub acct_orig: Option<(u64, u64)>,
    pub acct_reply: Option<(u64, u64)>,
    pub secctx: Option<String>,
    pub delta_time: Option<u64>,
    pub use_count: Option<u32>,
    /// The whole line as read.
    pub raw: String,
}

impl CtEntry {
    pub fn assured(&self) -> bool {
        self.flag.as_deref() == Some("[ASSURED]")
    }

    /// The key entries are matched by: family, protocol, original tuple, zone.
    pub fn key(&self) -> (u16, u8, Tuple, Option<u16>) {
        (self.l3num, self.l4num, self.orig.clone(), self.zone)
    }

    /// The line with its timeout and `use=` fields masked, for exact-format comparison.
    pub fn canonical_text(&self) -> String {
        canonical_without(&self.raw, self.timeout.is_some(), 4)
    }

    /// A short human-readable summary.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {} {}", self.l3name, self.l4name, self.orig);
        if let Some(st) = &self.state {
            s.push_str(&format!(" {st}"));
        }
        if self.unreplied {
            s.push_str(" [UNREPLIED]");
        }
        if let Some(f) = &self.flag {
            s.push_str(&format!(" {f}"));
        }
        if let Some(t) = self.timeout {
            s.push_str(&format!(" t={t}"));
        }
        s
    }
}

/// The line with the token at `timeout_index` (if `has_timeout`) replaced by `<T>` and any
/// `use=` token by `<U>`; all other characters, spacing included, are kept.
fn canonical_without(raw: &str, has_timeout: bool, timeout_index: usize) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut tok_index = 0;
    let mut rest = raw;
    while !rest.is_empty() {
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        if rest.is_empty() {
            break;
        }
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..len];
        if has_timeout && tok_index == timeout_index {
            out.push_str("<T>");
        } else if tok.starts_with("use=") {
            out.push_str("<U>");
        } else {
            out.push_str(tok);
        }
        tok_index += 1;
        rest = &rest[len..];
    }
    out
}

/// A parse error with the offending line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: String,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot parse {:?}: {}", self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

fn err(line: &str, what: impl Into<String>) -> ParseError {
    ParseError { line: line.to_string(), what: what.into() }
}

const TUPLE_L4_KEYS: [&str; 7] = ["sport", "dport", "type", "code", "id", "srckey", "dstkey"];

/// Parses `src= dst= [l4 fields]` starting at `toks[*i]`.
fn parse_tuple(line: &str, toks: &[&str], i: &mut usize) -> Result<Tuple, ParseError> {
    let addr = |tok: Option<&&str>, key: &str| -> Result<IpAddr, ParseError> {
        let tok = tok.ok_or_else(|| err(line, format!("missing {key}=")))?;
        let v = tok
            .strip_prefix(key)
            .and_then(|r| r.strip_prefix('='))
            .ok_or_else(|| err(line, format!("expected {key}=, got {tok}")))?;
        v.parse().map_err(|_| err(line, format!("bad address {v}")))
    };
    let src = addr(toks.get(*i), "src")?;
    let dst = addr(toks.get(*i + 1), "dst")?;
    *i += 2;
    let mut l4 = Vec::new();
    while let Some(tok) = toks.get(*i) {
        match tok.split_once('=') {
            Some((k, v)) if TUPLE_L4_KEYS.contains(&k) => {
                l4.push((k.to_string(), v.to_string()));
                *i += 1;
            }
            _ => break,
        }
    }
    Ok(Tuple { src, dst, l4 })
}

fn parse_num<T: std::str::FromStr>(line: &str, v: &str) -> Result<T, ParseError> {
    v.parse().map_err(|_| err(line, format!("bad number {v}")))
}

/// Parses the `packets= bytes=` pair at `toks[*i]` if present.
fn parse_acct(line: &str, toks: &[&str], i: &mut usize) -> Result<Option<(u64, u64)>, ParseError> {
    if let Some(p) = toks.get(*i).and_then(|t| t.strip_prefix("packets=")) {
        let b = toks
            .get(*i + 1)
            .and_then(|t| t.strip_prefix("bytes="))
            .ok_or_else(|| err(line, "packets= without bytes="))?;
        *i += 2;
        return Ok(Some((parse_num(line, p)?, parse_num(line, b)?)));
    }
    Ok(None)
}

/// Parses one `/proc/net/nf_conntrack` line.
pub fn parse_ct_line(line: &str) -> Result<CtEntry, ParseError> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    if toks.len() < 6 {
        return Err(err(line, "too few fields"));
    }
    let l3name = toks[0].to_string();
    let l3num = parse_num(line, toks[1])?;
    let l4name = toks[2].to_string();
    let l4num = parse_num(line, toks[3])?;
    let mut i = 4;
    let mut timeout = None;
    if let Ok(t) = toks[i].parse::<i64>() {
        timeout = Some(t);
        i += 1;
    }
    // The protocol's own text: a TCP/SCTP state name, or GRE's
    // `timeout=30, stream_timeout=180`; everything up to the first `src=`.
    let mut state_toks = Vec::new();
    while let Some(t) = toks.get(i) {
        if t.starts_with("src=") {
            break;
        }
        state_toks.push(*t);
        i += 1;
    }
    let state = if state_toks.is_empty() { None } else { Some(state_toks.join(" ")) };
    let orig = parse_tuple(line, &toks, &mut i)?;
    let mut zone_orig = None;
    if let Some(z) = toks.get(i).and_then(|t| t.strip_prefix("zone-orig=")) {
        zone_orig = Some(parse_num(line, z)?);
        i += 1;
    }
    let acct_orig = parse_acct(line, &toks, &mut i)?;
    let mut unreplied = false;
    if toks.get(i) == Some(&"[UNREPLIED]") {
        unreplied = true;
        i += 1;
    }
    let reply = parse_tuple(line, &toks, &mut i)?;
    let mut zone_reply = None;
    if let Some(z) = toks.get(i).and_then(|t| t.strip_prefix("zone-reply=")) {
        zone_reply = Some(parse_num(line, z)?);
        i += 1;
    }
    let acct_reply = parse_acct(line, &toks, &mut i)?;
    let mut e = CtEntry {
        l3name,
        l3num,
        l4name,
        l4num,
        timeout,
        state,
        orig,
        reply,
        unreplied,
        flag: None,
        mark: None,
        zone: None,
        zone_orig,
        zone_reply,
        acct_orig,
        acct_reply,
        secctx: None,
        delta_time: None,
        use_count: None,
        raw: line.to_string(),
    };
    if let Some(t) = toks.get(i) {
        if matches!(*t, "[ASSURED]" | "[OFFLOAD]" | "[HW_OFFLOAD]") {
            e.flag = Some(t.to_string());
            i += 1;
        }
    }
    for t in &toks[i..] {
        let (k, v) = t.split_once('=').ok_or_else(|| err(line, format!("unexpected token {t}")))?;
        match k {
            "mark" => e.mark = Some(parse_num(line, v)?),
            "secctx" => e.secctx = Some(v.to_string()),
            "zone" => e.zone = Some(parse_num(line, v)?),
            "delta-time" => e.delta_time = Some(parse_num(line, v)?),
            "use" => e.use_count = Some(parse_num(line, v)?),
            _ => return Err(err(line, format!("unexpected token {t}"))),
        }
    }
    Ok(e)
}

/// One parsed `/proc/net/nf_conntrack_expect` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpEntry {
    pub timeout: i64,
    pub l3num: u16,
    pub l4num: u8,
    pub tuple: Tuple,
    /// `PERMANENT`, `INACTIVE`, `USERSPACE` flags.
    pub flags: Vec<String>,
    /// Helper name (and `/policy` if printed).
    pub helper: Option<String>,
    pub raw: String,
}

impl ExpEntry {
    pub fn key(&self) -> (u16, u8, Tuple) {
        (self.l3num, self.l4num, self.tuple.clone())
    }

    /// The line with its timeout masked.
    pub fn canonical_text(&self) -> String {
        canonical_without(&self.raw, true, 0)
    }

    pub fn summary(&self) -> String {
        format!(
            "{} proto={} {} {} t={}",
            self.l3num,
            self.l4num,
            self.tuple,
            self.helper.as_deref().unwrap_or("-"),
            self.timeout
        )
    }
}

/// Parses one `/proc/net/nf_conntrack_expect` line.
pub fn parse_expect_line(line: &str) -> Result<ExpEntry, ParseError> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    if toks.len() < 7 || toks[1] != "l3proto" || toks[2] != "=" {
        return Err(err(line, "expected `<secs> l3proto = <n> proto=<n> ...`"));
    }
    let timeout = parse_num(line, toks[0])?;
    let l3num = parse_num(line, toks[3])?;
    let l4num = parse_num(line, toks[4].strip_prefix("proto=").ok_or_else(|| err(line, "missing proto="))?)?;
    let mut i = 5;
    let tuple = parse_tuple(line, &toks, &mut i)?;
    let rest = &toks[i..];
    let (flags, helper) = match rest {
        [] => (Vec::new(), None),
        [h] if !is_flag_list(h) => (Vec::new(), Some(h.to_string())),
        [f] => (split_flags(f), None),
        [f, h] => (split_flags(f), Some(h.to_string())),
        _ => return Err(err(line, "unexpected trailing fields")),
    };
    Ok(ExpEntry { timeout, l3num, l4num, tuple, flags, helper, raw: line.to_string() })
}

fn is_flag_list(s: &str) -> bool {
    s.split(',').all(|f| matches!(f, "PERMANENT" | "INACTIVE" | "USERSPACE"))
}

fn split_flags(s: &str) -> Vec<String> {
    s.split(',').filter(|f| !f.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLES: [&str; 4] = [
        "ipv4     2 tcp      6 117 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 zone=0 use=2",
        "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 [ASSURED] mark=0 zone=0 use=2",
        "ipv4     2 udp      17 28 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 src=10.0.2.2 dst=10.0.1.2 sport=53 dport=5353 mark=0 zone=0 use=2",
        "ipv4     2 icmp     1 29 src=10.0.1.2 dst=10.0.2.2 type=8 code=0 id=77 src=10.0.2.2 dst=10.0.1.2 type=0 code=0 id=77 mark=0 zone=0 use=2",
    ];

    #[test]
    fn spec_10_1_examples() {
        let e = parse_ct_line(SPEC_EXAMPLES[0]).unwrap();
        assert_eq!((e.l3name.as_str(), e.l3num, e.l4name.as_str(), e.l4num), ("ipv4", 2, "tcp", 6));
        assert_eq!(e.timeout, Some(117));
        assert_eq!(e.state.as_deref(), Some("SYN_SENT"));
        assert!(e.unreplied && !e.assured());
        assert_eq!(e.orig.to_string(), "src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80");
        assert_eq!(e.reply.to_string(), "src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000");
        assert_eq!((e.mark, e.zone, e.use_count), (Some(0), Some(0), Some(2)));
        assert_eq!(
            e.canonical_text(),
            "ipv4     2 tcp      6 <T> SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] \
             src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 zone=0 <U>"
        );

        let e = parse_ct_line(SPEC_EXAMPLES[1]).unwrap();
        assert_eq!(e.timeout, Some(431999));
        assert_eq!(e.state.as_deref(), Some("ESTABLISHED"));
        assert!(!e.unreplied && e.assured());

        let e = parse_ct_line(SPEC_EXAMPLES[2]).unwrap();
        assert_eq!((e.l4name.as_str(), e.l4num, e.timeout, e.state.as_deref()), ("udp", 17, Some(28), None));
        assert!(!e.unreplied && !e.assured());

        let e = parse_ct_line(SPEC_EXAMPLES[3]).unwrap();
        assert_eq!(
            e.orig.l4,
            vec![("type".into(), "8".into()), ("code".into(), "0".into()), ("id".into(), "77".into())]
        );
        assert_eq!(e.reply.l4[0], ("type".into(), "0".into()));
    }

    #[test]
    fn acct_generic_ipv6_and_zones() {
        let e = parse_ct_line(
            "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 packets=3 bytes=164 \
             src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 packets=2 bytes=112 [ASSURED] mark=0 zone=0 use=2",
        )
        .unwrap();
        assert_eq!((e.acct_orig, e.acct_reply), (Some((3, 164)), Some((2, 112))));

        let e = parse_ct_line(
            "ipv4     2 unknown  253 599 src=10.0.1.2 dst=10.0.2.2 src=10.0.2.2 dst=10.0.1.2 mark=0 zone=0 use=2",
        )
        .unwrap();
        assert_eq!((e.l4name.as_str(), e.l4num, e.timeout), ("unknown", 253, Some(599)));
        assert!(e.orig.l4.is_empty() && e.state.is_none());

        let e = parse_ct_line(
            "ipv6     10 icmpv6   58 29 src=fd00:0001:0000:0000:0000:0000:0000:0002 dst=fd00:0002:0000:0000:0000:0000:0000:0002 \
             type=128 code=0 id=7 [UNREPLIED] src=fd00:0002:0000:0000:0000:0000:0000:0002 \
             dst=fd00:0001:0000:0000:0000:0000:0000:0002 type=129 code=0 id=7 mark=0 zone=0 use=2",
        )
        .unwrap();
        assert_eq!(e.orig.src, "fd00:1::2".parse::<IpAddr>().unwrap());
        assert!(e.unreplied);

        let e = parse_ct_line(
            "ipv4     2 udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=1 dport=2 zone-orig=1 [UNREPLIED] \
             src=10.0.2.2 dst=10.0.1.2 sport=2 dport=1 zone-reply=2 mark=5 use=1",
        )
        .unwrap();
        assert_eq!((e.zone_orig, e.zone_reply, e.zone, e.mark), (Some(1), Some(2), None, Some(5)));

        // As printed by kernel 6.18 (gre_print_conntrack adds the timeouts).
        let e = parse_ct_line(
            "ipv4     2 gre      47 179 timeout=30, stream_timeout=180 src=10.0.1.2 dst=10.0.2.2 srckey=0x0 \
             dstkey=0x0 src=10.0.2.2 dst=10.0.1.2 srckey=0x0 dstkey=0x0 [ASSURED] mark=0 zone=0 use=2",
        )
        .unwrap();
        assert_eq!(e.orig.l4.len(), 2);
        assert_eq!(e.state.as_deref(), Some("timeout=30, stream_timeout=180"));
        assert!(e.assured());
        assert!(parse_ct_line("ipv4 2 tcp 6 10 SYN_SENT src=1.2.3.4").is_err());
        assert!(parse_ct_line("ipv4 2 tcp 6 10 SYN_SENT src=10.0.1.2 dst=10.0.2.2 src=10.0.2.2 dst=10.0.1.2 bogus")
            .is_err());
    }

    #[test]
    fn spec_10_3_expect_examples() {
        let e = parse_expect_line("298 l3proto = 2 proto=6 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000 ftp").unwrap();
        assert_eq!((e.timeout, e.l3num, e.l4num), (298, 2, 6));
        assert_eq!(e.tuple.to_string(), "src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000");
        assert_eq!(e.helper.as_deref(), Some("ftp"));
        assert!(e.flags.is_empty());
        assert_eq!(e.canonical_text(), "<T> l3proto = 2 proto=6 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000 ftp");

        let e = parse_expect_line(
            "5 l3proto = 2 proto=17 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=1069 PERMANENT,INACTIVE tftp",
        )
        .unwrap();
        assert_eq!(e.flags, vec!["PERMANENT".to_string(), "INACTIVE".to_string()]);
        assert_eq!(e.helper.as_deref(), Some("tftp"));
        assert!(parse_expect_line("298 l3proto 2 proto=6").is_err());
    }
}
