//! FTP command and reply parsing (K-FTP `search[]`, `find_pattern`,
//! `try_number`, `try_rfc959`, `try_rfc1123`, `try_eprt`,
//! `try_epsv_response`, `get_port`).
//!
//! Only the start of a segment is compared with the patterns of its
//! direction, case-insensitively:
//!
//! | dir      | pattern | skip to       | syntax after it                     |
//! |----------|---------|---------------|-------------------------------------|
//! | original | `PORT`  | first `' '`   | `a1,a2,a3,a4,p1,p2` then `\r`       |
//! | original | `EPRT`  | first `' '`   | `<d>1<d>ipv4<d>port<d>` / `<d>2<d>ipv6<d>port<d>` |
//! | reply    | `227 `  | first digit   | six numbers, any other terminator   |
//! | reply    | `229 `  | first `'('`   | `<d><d><d>port<d>`                  |
//!
//! Numbers accumulate in 32 bits (wrapping, no per-octet check), ports of
//! `EPRT`/`229` in 16 bits (wrapping, 0 refused). A segment that is a
//! prefix of a pattern, or that matches a pattern but then fails to parse,
//! is a *partial match*: the helper drops it.

use super::inet;
use ct_core::{Addr, Dir, L3};

/// Which pattern matched (the kernel's `enum nf_ct_ftp_type`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FtpType {
    /// `PORT a1,a2,a3,a4,p1,p2` from the client.
    Port,
    /// `227 …(a1,a2,a3,a4,p1,p2)` from the server.
    Pasv,
    /// `EPRT |af|addr|port|` from the client.
    Eprt,
    /// `229 …(|||port|)` from the server.
    Epsv,
}

impl FtpType {
    /// The pattern as the kernel logs it ("partial matching of `PORT'").
    pub const fn pattern(self) -> &'static str {
        match self {
            FtpType::Port => "PORT",
            FtpType::Pasv => "227 ",
            FtpType::Eprt => "EPRT",
            FtpType::Epsv => "229 ",
        }
    }
}

/// A parsed command or reply (the kernel's `struct nf_conntrack_man cmd`
/// plus `matchoff`/`matchlen`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FtpCmd {
    pub kind: FtpType,
    /// The address as the kernel's `cmd.u3` holds it: it starts as the
    /// sender's source address, and the parser overwrites the first 4 bytes
    /// (`PORT`, `227`, `EPRT |1|`) or all 16 (`EPRT |2|`); `229` leaves it.
    /// So `PORT` on an IPv6 connection yields the sender's address with its
    /// first 4 bytes replaced.
    pub addr: Addr,
    /// The port (`PORT`/`227`: `p1 << 8 | p2` truncated to 16 bits).
    pub port: u16,
    /// Offset of the numbers in the segment.
    pub off: usize,
    /// Length of the numbers (up to, not including, the terminator).
    pub len: usize,
}

/// Result of matching one segment against its direction's patterns.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// No pattern matched: accept, no expectation.
    NoMatch,
    /// A pattern matched partially or its numbers did not parse: drop.
    Partial(FtpType),
    /// A complete command or reply.
    Match(FtpCmd),
}

/// Parser state (`struct nf_conntrack_man`).
struct Man {
    l3: L3,
    addr: [u8; 16],
    port: u16,
}

/// `getnum(data, dlen, cmd, term, offset)`: length of the numbers, 0 on failure.
type GetNum = fn(&[u8], &mut Man, u8, &mut usize) -> usize;

struct Pattern {
    kind: FtpType,
    pattern: &'static [u8],
    /// 0: no skip character.
    skip: u8,
    /// 0: no terminator required.
    term: u8,
    getnum: GetNum,
}

/// `search[IP_CT_DIR_MAX][2]`.
const SEARCH: [[Pattern; 2]; 2] = [
    [
        Pattern { kind: FtpType::Port, pattern: b"PORT", skip: b' ', term: b'\r', getnum: try_rfc959 },
        Pattern { kind: FtpType::Eprt, pattern: b"EPRT", skip: b' ', term: b'\r', getnum: try_eprt },
    ],
    [
        Pattern { kind: FtpType::Pasv, pattern: b"227 ", skip: 0, term: 0, getnum: try_rfc1123 },
        Pattern { kind: FtpType::Epsv, pattern: b"229 ", skip: b'(', term: b')', getnum: try_epsv_response },
    ],
];

/// Match `data`, a whole segment payload sent in `dir` on a connection of
/// family `l3` whose sender has source address `sender`, against the
/// patterns of `dir`, in order; the first that matches fully or partially
/// decides. Empty data never matches (the helper never looks at it).
pub fn search(dir: Dir, l3: L3, sender: Addr, data: &[u8]) -> Search {
    if data.is_empty() {
        return Search::NoMatch;
    }
    let mut man = Man { l3, addr: sender.0, port: 0 };
    for p in &SEARCH[dir.index()] {
        match find_pattern(data, p, &mut man) {
            Found::No => {}
            Found::Partial => return Search::Partial(p.kind),
            Found::Match { off, len } => {
                return Search::Match(FtpCmd { kind: p.kind, addr: Addr(man.addr), port: man.port, off, len })
            }
        }
    }
    Search::NoMatch
}

enum Found {
    No,
    Partial,
    Match { off: usize, len: usize },
}

/// `find_pattern`: 1 match, 0 accept, -1 partial.
fn find_pattern(data: &[u8], p: &Pattern, man: &mut Man) -> Found {
    let (dlen, plen) = (data.len(), p.pattern.len());
    if dlen <= plen {
        // Short packet: a prefix of the pattern is a partial match.
        return if data.eq_ignore_ascii_case(&p.pattern[..dlen]) { Found::Partial } else { Found::No };
    }
    if !data[..plen].eq_ignore_ascii_case(p.pattern) {
        return Found::No;
    }
    let mut i = plen;
    if p.skip != 0 {
        // Skip up to and over the first skip character after the pattern.
        match data[plen..].iter().position(|&c| c == p.skip) {
            Some(at) => i = plen + at + 1,
            None => return Found::Partial,
        }
    }
    let mut off = i;
    match (p.getnum)(&data[i..], man, p.term, &mut off) {
        0 => Found::Partial,
        len => Found::Match { off, len },
    }
}

/// `try_number`: fill `array` with decimal numbers separated by `sep`; the
/// last must end at `term` (or at any other character when `term` is 0).
/// Returns the index of that terminator, or 0 when the data ends first, an
/// unexpected character comes, or there are too many separators.
fn try_number(data: &[u8], array: &mut [u32], sep: u8, term: u8) -> usize {
    array.fill(0);
    let n = array.len();
    let mut i = 0usize;
    for (len, &c) in data.iter().enumerate() {
        if i >= n {
            break;
        }
        if c.is_ascii_digit() {
            array[i] = array[i].wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
        } else if c == sep {
            i += 1;
        } else {
            return if (c == term || term == 0) && i == n - 1 { len } else { 0 };
        }
    }
    0
}

/// `try_rfc959`: `a1,a2,a3,a4,p1,p2`.
fn try_rfc959(data: &[u8], man: &mut Man, term: u8, _off: &mut usize) -> usize {
    let mut a = [0u32; 6];
    let len = try_number(data, &mut a, b',', term);
    if len == 0 {
        return 0;
    }
    let ip = a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
    man.addr[..4].copy_from_slice(&ip.to_be_bytes());
    // `htons()` of a 32-bit value: the low 16 bits.
    man.port = ((a[4] << 8) | a[5]) as u16;
    len
}

/// `try_rfc1123`: scan to the first digit, then `try_rfc959` with any
/// terminator (RFC 1123 § 4.1.2.6: the 227 text is not standardised).
fn try_rfc1123(data: &[u8], man: &mut Man, _term: u8, off: &mut usize) -> usize {
    let Some(i) = data.iter().position(u8::is_ascii_digit) else {
        return 0;
    };
    *off += i;
    try_rfc959(&data[i..], man, 0, off)
}

/// `get_port`: digits from `start` up to `delim`, 16-bit wrapping; 0 refused.
/// Returns the index after the delimiter, or 0.
fn get_port(data: &[u8], start: usize, delim: u8, man: &mut Man) -> usize {
    let mut port: u16 = 0;
    for (i, &c) in data.iter().enumerate().skip(start) {
        if c == delim {
            if port == 0 {
                break;
            }
            man.port = port;
            return i + 1;
        } else if c.is_ascii_digit() {
            port = port.wrapping_mul(10).wrapping_add(u16::from(c - b'0'));
        } else {
            break;
        }
    }
    0
}

/// The delimiter rule of `EPRT`/`229`: printable ASCII 33..=126, not a digit.
fn valid_delim(c: u8) -> bool {
    (33..=126).contains(&c) && !c.is_ascii_digit()
}

/// `try_eprt`: `<d>1<d>a.b.c.d<d>port<d>` or `<d>2<d>ipv6<d>port<d>`; the
/// protocol digit must be the control connection's family.
fn try_eprt(data: &[u8], man: &mut Man, _term: u8, _off: &mut usize) -> usize {
    if data.len() <= 3 {
        return 0;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[2] != delim {
        return 0;
    }
    match (man.l3, data[1]) {
        (L3::V4, b'1') | (L3::V6, b'2') => {}
        _ => return 0,
    }
    let length = if data[1] == b'1' {
        let mut a = [0u32; 4];
        let len = try_number(&data[3..], &mut a, b'.', delim);
        if len != 0 {
            let ip = a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
            man.addr[..4].copy_from_slice(&ip.to_be_bytes());
        }
        len
    } else {
        // `get_ipv6_addr`: in6_pton up to the delimiter.
        match inet::in6_pton(&data[3..], delim) {
            Ok((addr, end)) => {
                man.addr = addr;
                end
            }
            Err(_) => 0,
        }
    };
    if length == 0 {
        return 0;
    }
    // The port starts after "|1|", the address and its delimiter.
    get_port(data, 3 + length + 1, delim, man)
}

/// `try_epsv_response`: `<d><d><d>port<d>`.
fn try_epsv_response(data: &[u8], man: &mut Man, _term: u8, _off: &mut usize) -> usize {
    if data.len() <= 3 {
        return 0;
    }
    let delim = data[0];
    if !valid_delim(delim) || data[1] != delim || data[2] != delim {
        return 0;
    }
    get_port(data, 3, delim, man)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;

    const C: Addr = Addr::v4([10, 0, 1, 2]);
    const S: Addr = Addr::v4([10, 0, 2, 2]);

    fn c6() -> Addr {
        Addr::v6("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets())
    }

    fn orig(data: &[u8]) -> Search {
        search(Dir::Original, L3::V4, C, data)
    }

    fn reply(data: &[u8]) -> Search {
        search(Dir::Reply, L3::V4, S, data)
    }

    fn matched(s: Search) -> (FtpType, Addr, u16) {
        match s {
            Search::Match(c) => (c.kind, c.addr, c.port),
            other => panic!("expected a match, got {other:?}"),
        }
    }

    const PORT_P: Search = Search::Partial(FtpType::Port);
    const EPRT_P: Search = Search::Partial(FtpType::Eprt);
    const PASV_P: Search = Search::Partial(FtpType::Pasv);
    const EPSV_P: Search = Search::Partial(FtpType::Epsv);

    // ---- try_number ----

    #[test]
    fn try_number_basics() {
        let mut a = [0u32; 3];
        assert_eq!(try_number(b"1,22,333\r", &mut a, b',', b'\r'), 8);
        assert_eq!(a, [1, 22, 333]);
        // Any terminator when term is 0.
        assert_eq!(try_number(b"1,2,3)", &mut a, b',', 0), 5);
        // Empty numbers are zeros.
        assert_eq!(try_number(b",,\r", &mut a, b',', b'\r'), 2);
        assert_eq!(a, [0, 0, 0]);
        // Ends before the terminator; too few numbers; too many separators.
        assert_eq!(try_number(b"1,2,3", &mut a, b',', b'\r'), 0);
        assert_eq!(try_number(b"1,2\r", &mut a, b',', b'\r'), 0);
        assert_eq!(try_number(b"1,2,3,4\r", &mut a, b',', b'\r'), 0);
        assert_eq!(try_number(b"1,2,3\n", &mut a, b',', b'\r'), 0);
        // 32-bit wrap.
        assert_eq!(try_number(b"4294967296,0,1\r", &mut a, b',', b'\r'), 14);
        assert_eq!(a, [0, 0, 1]);
    }

    // ---- PORT ----

    #[test]
    fn port_valid() {
        let s = orig(b"PORT 10,0,1,2,156,64\r\n");
        assert_eq!(matched(s), (FtpType::Port, C, 40000));
        let Search::Match(cmd) = s else { unreachable!() };
        assert_eq!((cmd.off, cmd.len), (5, 15));
        // Case-insensitive pattern; anything up to the first space is skipped.
        assert_eq!(matched(orig(b"port 10,0,1,2,156,64\r\n")).2, 40000);
        assert_eq!(matched(orig(b"PoRtXYZ 10,0,1,2,156,64\r\n")).2, 40000);
        // Only the \r is needed, not the \n; trailing bytes are ignored.
        assert_eq!(matched(orig(b"PORT 10,0,1,2,156,64\rgarbage")).2, 40000);
    }

    #[test]
    fn port_overflow_and_zero() {
        // No per-octet check: 300 = 0x12c is ORed into the octet to its left.
        let (_, addr, port) = matched(orig(b"PORT 1,2,3,300,1,2\r\n"));
        assert_eq!(addr, Addr::v4([1, 2, 3, 0x2c]));
        assert_eq!(port, 0x0102);
        assert_eq!(matched(orig(b"PORT 1,2,4,300,1,2\r\n")).1, Addr::v4([1, 2, 5, 0x2c]));
        let (_, addr, _) = matched(orig(b"PORT 256,0,0,1,1,2\r\n"));
        assert_eq!(addr, Addr::v4([0, 0, 0, 1]));
        // Port (p1 << 8 | p2) truncated to 16 bits: 256*256 + 5 -> 5.
        assert_eq!(matched(orig(b"PORT 10,0,1,2,256,5\r\n")).2, 5);
        // p1 << 8 | p2 is an OR, not a sum: 1 << 8 | 256 = 256.
        assert_eq!(matched(orig(b"PORT 10,0,1,2,1,256\r\n")).2, 256);
        // Port 0 is accepted.
        assert_eq!(matched(orig(b"PORT 10,0,1,2,0,0\r\n")).2, 0);
        // Empty numbers are zeros.
        assert_eq!(matched(orig(b"PORT ,,,,,\r\n")), (FtpType::Port, Addr::v4([0; 4]), 0));
        // 32-bit accumulation wraps.
        assert_eq!(matched(orig(b"PORT 4294967306,0,1,2,0,1\r\n")).1, Addr::v4([10, 0, 1, 2]));
    }

    #[test]
    fn port_partial_and_malformed() {
        for p in [&b"P"[..], b"p", b"PO", b"POR", b"PORT"] {
            assert_eq!(orig(p), PORT_P, "{p:?}");
        }
        assert_eq!(orig(b"PORT "), PORT_P);
        assert_eq!(orig(b"PORT 10,0,1,2,156,64"), PORT_P);
        assert_eq!(orig(b"PORT 10,0,1,2,156,64\n"), PORT_P, "bare \\n terminator");
        assert_eq!(orig(b"PORT 10,0,1,2,156\r\n"), PORT_P, "five numbers");
        assert_eq!(orig(b"PORT 10,0,1,2,156,64,1\r\n"), PORT_P, "seven numbers");
        assert_eq!(orig(b"PORT abc\r\n"), PORT_P);
        assert_eq!(orig(b"PORT 10.0.1.2,156,64\r\n"), PORT_P);
        assert_eq!(orig(b"PORT\r\n"), PORT_P, "no space anywhere");
        assert_eq!(orig(b"PORT  10,0,1,2,156,64\r\n"), PORT_P, "only the first space is skipped");
        assert_eq!(orig(b"PORT10,0,1,2,156,64\r\n"), PORT_P, "no space anywhere");
        // Not a prefix of PORT or EPRT: no match.
        assert_eq!(orig(b"PASV\r\n"), Search::NoMatch);
        assert_eq!(orig(b"X"), Search::NoMatch);
        assert_eq!(orig(b" PORT 10,0,1,2,156,64\r\n"), Search::NoMatch);
        assert_eq!(orig(b"PO\0T 1,2,3,4,5,6\r\n"), Search::NoMatch);
        assert_eq!(orig(b""), Search::NoMatch);
    }

    #[test]
    fn reply_patterns_not_looked_for_in_original_direction() {
        assert_eq!(orig(b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n"), Search::NoMatch);
        assert_eq!(reply(b"PORT 10,0,1,2,156,64\r\n"), Search::NoMatch);
        assert_eq!(reply(b"EPRT |1|10.0.1.2|40001|\r\n"), Search::NoMatch);
    }

    // ---- 227 ----

    #[test]
    fn pasv_valid() {
        let s = reply(b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n");
        assert_eq!(matched(s), (FtpType::Pasv, S, 50000));
        let Search::Match(cmd) = s else { unreachable!() };
        assert_eq!((cmd.off, cmd.len), (27, 15));
        // No parentheses, any terminator that is not a digit or comma.
        assert_eq!(matched(reply(b"227 =10,0,2,2,195,80\r\n")).2, 50000);
        assert_eq!(matched(reply(b"227 10,0,2,2,195,80 ok")).2, 50000);
        assert_eq!(matched(reply(b"227 10,0,2,2,195,80\0")).2, 50000);
        assert_eq!(matched(reply(b"227 10,0,2,2,0,0)")).2, 0);
        // Case-insensitive on digits is trivially exact.
        assert_eq!(reply(b"227Entering (10,0,2,2,195,80)\r\n"), Search::NoMatch);
    }

    #[test]
    fn pasv_partial_and_malformed() {
        for p in [&b"2"[..], b"22", b"227", b"227 "] {
            assert_eq!(reply(p), PASV_P, "{p:?}");
        }
        // Split reply: the data ends inside the numbers.
        assert_eq!(reply(b"227 Entering Passive Mode (10,0,2,2,"), PASV_P);
        assert_eq!(reply(b"227 Entering Passive Mode (10,0,2,2,195,80"), PASV_P);
        // No digit at all.
        assert_eq!(reply(b"227 Entering Passive Mode\r\n"), PASV_P);
        // A stray digit before the address is parsed from the wrong place.
        assert_eq!(reply(b"227 Mode 3 (10,0,2,2,195,80)\r\n"), PASV_P);
        // Five or seven numbers.
        assert_eq!(reply(b"227 (10,0,2,2,195)\r\n"), PASV_P);
        assert_eq!(reply(b"227 (10,0,2,2,195,80,1)\r\n"), PASV_P);
        // Other replies and near-misses.
        assert_eq!(reply(b"220 ready\r\n"), Search::NoMatch);
        assert_eq!(reply(b"2270 (10,0,2,2,195,80)\r\n"), Search::NoMatch);
        assert_eq!(reply(b"228 "), Search::NoMatch);
        assert_eq!(reply(b"23"), Search::NoMatch);
    }

    // ---- EPRT ----

    #[test]
    fn eprt_valid() {
        let s = orig(b"EPRT |1|10.0.1.2|40001|\r\n");
        assert_eq!(matched(s), (FtpType::Eprt, C, 40001));
        let Search::Match(cmd) = s else { unreachable!() };
        assert_eq!((cmd.off, cmd.len), (5, 18));
        assert_eq!(matched(orig(b"eprt !1!10.0.1.2!40001!")).2, 40001);
        // 32-bit accumulation, no octet check.
        assert_eq!(matched(orig(b"EPRT |1|10.0.0.258|1|")).1, Addr::v4([10, 0, 1, 2]));
        // 16-bit wrapping port: 65537 -> 1.
        assert_eq!(matched(orig(b"EPRT |1|10.0.1.2|65537|")).2, 1);
        // IPv6 on an IPv6 connection.
        let (kind, addr, port) = matched(search(Dir::Original, L3::V6, c6(), b"EPRT |2|2001:db8::2|40001|\r\n"));
        assert_eq!((kind, addr, port), (FtpType::Eprt, c6(), 40001));
        let (_, addr, _) = matched(search(Dir::Original, L3::V6, c6(), b"EPRT |2|::ffff:1.2.3.4|7|\r\n"));
        assert_eq!(addr, Addr::v6("::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap().octets()));
    }

    #[test]
    fn eprt_malformed() {
        for p in [&b"E"[..], b"EP", b"EPR", b"EPRT", b"EPRT ", b"EPRT |1|", b"EPRT |1|1"] {
            assert_eq!(orig(p), EPRT_P, "{p:?}");
        }
        for bad in [
            &b"EPRT |1|10.0.1.2|40001"[..],
            b"EPRT |1|10.0.1.2|0|\r\n",
            b"EPRT |1|10.0.1.2||\r\n",
            b"EPRT |1|10.0.1.2|65536|\r\n",
            b"EPRT |1|10.0.1.2|4000a|\r\n",
            b"EPRT |2|10.0.1.2|40001|\r\n",
            b"EPRT |3|10.0.1.2|40001|\r\n",
            b"EPRT 1|1|10.0.1.2|40001|\r\n",
            b"EPRT \x7f1\x7f10.0.1.2\x7f40001\x7f\r\n",
            b"EPRT  1 10.0.1.2 40001 \r\n",
            b"EPRT |1!10.0.1.2|40001|\r\n",
            b"EPRT |1|10.0.1|40001|\r\n",
            b"EPRT |1|10.0.1.2.3|40001|\r\n",
            b"EPRT |1|10,0,1,2|40001|\r\n",
            b"EPRT .1.10.0.1.2.40001.\r\n",
            b"EPRT\r\n",
        ] {
            assert_eq!(orig(bad), EPRT_P, "{:?}", String::from_utf8_lossy(bad));
        }
        // |1| on an IPv6 connection, bad IPv6 text.
        for bad in [&b"EPRT |1|10.0.1.2|40001|\r\n"[..], b"EPRT |2|2001:db8::2::1|40001|\r\n", b"EPRT |2|::1"] {
            assert_eq!(search(Dir::Original, L3::V6, c6(), bad), EPRT_P, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    // ---- 229 ----

    #[test]
    fn epsv_valid() {
        let s = reply(b"229 Entering Extended Passive Mode (|||50001|)\r\n");
        assert_eq!(matched(s), (FtpType::Epsv, S, 50001));
        let Search::Match(cmd) = s else { unreachable!() };
        assert_eq!((cmd.off, cmd.len), (36, 9));
        assert_eq!(matched(reply(b"229 (!!!1!")).2, 1);
        // The address is always the sender's own, also on IPv6.
        assert_eq!(matched(search(Dir::Reply, L3::V6, c6(), b"229 (|||50001|)\r\n")).1, c6());
        // The skip is the first '(' anywhere; no ')' is needed.
        assert_eq!(matched(reply(b"229 x (|||50001|")), (FtpType::Epsv, S, 50001));
    }

    #[test]
    fn epsv_malformed() {
        for p in [&b"2"[..], b"22", b"229", b"229 ", b"229 (", b"229 (|||", b"229 (|||5000"] {
            assert_eq!(reply(p), if p.len() < 3 { PASV_P } else { EPSV_P }, "{p:?}");
        }
        for bad in [
            &b"229 Entering Extended Passive Mode (|||0|)\r\n"[..],
            b"229 Entering Extended Passive Mode (||||)\r\n",
            b"229 Entering Extended Passive Mode (1111|)\r\n",
            b"229 Entering Extended Passive Mode (|| |50001|)\r\n",
            b"229 Entering Extended Passive Mode (|!|50001|)\r\n",
            b"229 Entering Extended Passive Mode ( |||50001|)\r\n",
            b"229 Entering Extended Passive Mode (|||50001)\r\n",
            b"229 Entering Extended Passive Mode\r\n",
            b"229 (|||50001 |)",
            b"229 x(y (|||50001|)",
        ] {
            assert_eq!(reply(bad), EPSV_P, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
