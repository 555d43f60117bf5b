//! The kernel's textual address parsers as the FTP helper uses them for
//! `EPRT |2|…|` (`in6_pton`, which calls `in4_pton` for an embedded
//! dotted quad), in `net/core/utils.c`.
//!
//! This is a transliteration of the kernel's state machine, quirks included,
//! because the accepted syntax decides whether a packet is dropped:
//!
//! * A NUL byte, the delimiter, or the end of the input ends the address.
//! * `::` writes a zero word before the compression point; the final
//!   reordering puts it back in place, so addresses come out right.
//! * A dotted quad may end the address only where the last 32 bits are, and
//!   a `:` may end it like the delimiter (the returned end then points at
//!   that `:`).
//! * Dotted-quad octets are decimal, at most 255, non-empty; `0` is fine.
//!
//! Every index is checked, so no input panics; where the kernel code could
//! never step outside its buffer, the checks never fire.

const XDIGIT: i32 = 0x0001_0000;
const DIGIT: i32 = 0x0002_0000;
const COLON_MASK: i32 = 0x0070_0000;
const COLON_1: i32 = 0x0010_0000;
const COLON_2: i32 = 0x0020_0000;
const COLON_1_2: i32 = 0x0040_0000;
const DOT: i32 = 0x0080_0000;
const DELIM: i32 = 0x1000_0000;
const NULL: i32 = 0x2000_0000;
const UNKNOWN: i32 = 0x4000_0000;

/// `hex_to_bin`.
fn hex_to_bin(c: u8) -> Option<i32> {
    match c {
        b'0'..=b'9' => Some(i32::from(c - b'0')),
        b'a'..=b'f' => Some(i32::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(i32::from(c - b'A' + 10)),
        _ => None,
    }
}

/// `xdigit2bin` for a real delimiter (never the kernel's `-1`).
fn xdigit2bin(c: u8, delim: u8) -> i32 {
    if c == delim || c == 0 {
        return DELIM;
    }
    if c == b':' {
        return COLON_MASK;
    }
    if c == b'.' {
        return DOT;
    }
    match hex_to_bin(c) {
        Some(val) => val | XDIGIT | if val < 10 { DIGIT } else { 0 },
        None => UNKNOWN,
    }
}

/// The byte at `s`, or NUL once `srclen` bytes are used up (the kernel's
/// `srclen > 0 ? *s : '\0'`).
fn at(src: &[u8], s: usize, srclen: i32) -> u8 {
    if srclen > 0 {
        src.get(s).copied().unwrap_or(0)
    } else {
        0
    }
}

/// `in4_pton(src + start, srclen, …, delim, &end)`: the four octets and the
/// index where parsing stopped (`Err` carries it too, as the kernel sets
/// `*end` on failure as well).
pub(crate) fn in4_pton(src: &[u8], start: usize, mut srclen: i32, delim: u8) -> Result<([u8; 4], usize), usize> {
    let mut s = start;
    let mut dbuf = [0u8; 4];
    let mut d = 0usize;
    let mut i = 0u32;
    let mut w: i32 = 0;
    loop {
        let c = xdigit2bin(at(src, s, srclen), delim);
        if c & (DIGIT | DOT | DELIM | COLON_MASK) == 0 {
            return Err(s);
        }
        if c & (DOT | DELIM | COLON_MASK) != 0 {
            if w == 0 {
                return Err(s);
            }
            // `w` carries flag bits above bit 15; the octet is its low byte.
            *dbuf.get_mut(d).ok_or(s)? = (w & 0xff) as u8;
            d += 1;
            w = 0;
            i += 1;
            if c & (DELIM | COLON_MASK) != 0 {
                if i != 4 {
                    return Err(s);
                }
                break;
            }
        } else {
            w = w.wrapping_mul(10).wrapping_add(c);
            if (w & 0xffff) > 255 {
                return Err(s);
            }
        }
        if i >= 4 {
            return Err(s);
        }
        s += 1;
        srclen -= 1;
    }
    Ok((dbuf, s))
}

/// `in6_pton(src, srclen, …, delim, &end)` with `srclen = min(len, 0xffff)`:
/// the address and the index of the byte that ended it.
pub(crate) fn in6_pton(src: &[u8], delim: u8) -> Result<([u8; 16], usize), usize> {
    let mut srclen = i32::try_from(src.len().min(0xffff)).unwrap_or(0xffff);
    let mut s = 0usize;
    let mut tok: Option<usize> = None;
    let mut d = 0usize;
    let mut dc: Option<usize> = None;
    let mut dbuf = [0u8; 16];
    let mut state = COLON_1_2 | XDIGIT | NULL;
    let mut w: i32 = 0;

    loop {
        let c = xdigit2bin(at(src, s, srclen), delim);
        if c & state == 0 {
            return Err(s);
        }
        if c & (DELIM | COLON_MASK) != 0 {
            // Process one 16-bit word.
            if state & NULL == 0 {
                let word = dbuf.get_mut(d..d + 2).ok_or(s)?;
                word[0] = ((w >> 8) & 0xff) as u8;
                word[1] = (w & 0xff) as u8;
                d += 2;
            }
            w = 0;
            if c & DELIM != 0 {
                break;
            }
            state = match state & COLON_MASK {
                COLON_2 => {
                    dc = Some(d);
                    if d >= dbuf.len() {
                        XDIGIT | DELIM | NULL
                    } else {
                        XDIGIT | DELIM
                    }
                }
                m if m == COLON_1 | COLON_1_2 => XDIGIT | COLON_2,
                COLON_1 => XDIGIT,
                COLON_1_2 => COLON_2,
                _ => 0,
            };
            tok = Some(s + 1);
        } else if c & DOT != 0 {
            let t = tok.unwrap_or(s);
            let len = srclen.wrapping_add(i32::try_from(s - t).unwrap_or(0));
            match in4_pton(src, t, len, delim) {
                Ok((quad, end)) => {
                    s = end;
                    dbuf.get_mut(d..d + 4).ok_or(s)?.copy_from_slice(&quad);
                    d += 4;
                    break;
                }
                Err(end) => return Err(end),
            }
        } else {
            w = (w << 4) | (0xff & c);
            state = COLON_1 | DELIM;
            if w & 0xf000 == 0 {
                state |= XDIGIT;
            }
            if dc.is_none() && d + 2 < dbuf.len() {
                state |= COLON_1_2;
                state &= !DELIM;
            }
            if d + 2 >= dbuf.len() {
                state &= !(COLON_1 | COLON_1_2);
            }
        }
        // cont:
        if (dc.is_some() && d + 4 < dbuf.len()) || d + 4 == dbuf.len() {
            state |= DOT;
        }
        if d >= dbuf.len() {
            state &= !(XDIGIT | COLON_MASK);
        }
        s += 1;
        srclen -= 1;
    }

    let mut dst = [0u8; 16];
    match dc {
        None => dst = dbuf,
        Some(dc) => {
            // Words after the compression point go to the end, zeros fill
            // the gap, words before it stay in front.
            let tail = dbuf.get(dc..d).ok_or(s)?;
            let gap_end = dst.len().checked_sub(tail.len()).ok_or(s)?;
            dst.get_mut(gap_end..).ok_or(s)?.copy_from_slice(tail);
            let head = dbuf.get(..dc.min(gap_end)).ok_or(s)?;
            dst[..head.len()].copy_from_slice(head);
        }
    }
    Ok((dst, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv6Addr;

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<Ipv6Addr>().unwrap().octets()
    }

    fn ok(text: &[u8]) -> ([u8; 16], usize) {
        in6_pton(text, b'|').unwrap_or_else(|e| panic!("{:?} failed at {e}", String::from_utf8_lossy(text)))
    }

    #[test]
    fn full_and_compressed_forms() {
        assert_eq!(ok(b"2001:db8:0:0:0:0:0:1|"), (v6("2001:db8::1"), 20));
        assert_eq!(ok(b"2001:db8::1|"), (v6("2001:db8::1"), 11));
        assert_eq!(ok(b"::1|"), (v6("::1"), 3));
        assert_eq!(ok(b"::|"), (v6("::"), 2));
        assert_eq!(ok(b"1::|"), (v6("1::"), 3));
        assert_eq!(ok(b"1:2:3:4:5:6::|"), (v6("1:2:3:4:5:6::"), 13));
        assert_eq!(ok(b"1:2:3:4:5:6:7::|"), (v6("1:2:3:4:5:6:7:0"), 15));
        assert_eq!(ok(b"::2:3:4:5:6:7:8|"), (v6("0:2:3:4:5:6:7:8"), 15));
        assert_eq!(ok(b"FE80::A:b|"), (v6("fe80::a:b"), 9));
    }

    #[test]
    fn embedded_dotted_quad() {
        assert_eq!(ok(b"::ffff:10.0.1.2|"), (v6("::ffff:10.0.1.2"), 15));
        assert_eq!(ok(b"::ffff:0.0.0.0|"), (v6("::ffff:0.0.0.0"), 14));
        assert_eq!(ok(b"::1.2.3.4|"), (v6("::1.2.3.4"), 9));
        assert_eq!(ok(b"1:2:3:4:5:6:1.2.3.4|"), (v6("1:2:3:4:5:6:102:304"), 19));
        // A dotted quad may end at a ':' as well; the end points at it.
        assert_eq!(ok(b"::ffff:1.2.3.4:9|"), (v6("::ffff:1.2.3.4"), 14));
        // Where the last 32 bits are not, a '.' is refused.
        assert!(in6_pton(b"1.2.3.4|", b'|').is_err());
        assert!(in6_pton(b"1:2:3:4:5:6:7:1.2.3.4|", b'|').is_err());
        // Octet > 255, empty octet, hex digit, too few octets.
        assert!(in6_pton(b"::ffff:1.2.3.256|", b'|').is_err());
        assert!(in6_pton(b"::ffff:1..3.4|", b'|').is_err());
        assert!(in6_pton(b"::ffff:1.a.3.4|", b'|').is_err());
        assert!(in6_pton(b"::ffff:1.2.3|", b'|').is_err());
    }

    #[test]
    fn ends_at_nul_delimiter_or_input_end() {
        assert_eq!(ok(b"::1\0rest"), (v6("::1"), 3));
        assert_eq!(ok(b"::1"), (v6("::1"), 3));
        // The delimiter is checked first, so it may be a hex digit.
        assert_eq!(in6_pton(b"::1a", b'a').unwrap(), (v6("::1"), 3));
    }

    #[test]
    fn malformed() {
        for bad in [
            &b"|"[..],
            b"",
            b":1|",
            b"1:2|",
            b"1:::2|",
            b"1::2::3|",
            b"12345::|",
            b"1:2:3:4:5:6:7:8:9|",
            b"g::|",
            b"::1 |",
            b"1:2:3:4:5:6:7:8::|",
        ] {
            assert!(in6_pton(bad, b'|').is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn in4_alone() {
        assert_eq!(in4_pton(b"10.0.1.2|", 0, 9, b'|'), Ok(([10, 0, 1, 2], 8)));
        assert_eq!(in4_pton(b"000000000000000001.2.3.4|", 0, 25, b'|'), Ok(([1, 2, 3, 4], 24)));
        assert!(in4_pton(b"1.2.3.4.5|", 0, 10, b'|').is_err());
        // Cut short by srclen: the end reads as NUL, which is a delimiter.
        assert_eq!(in4_pton(b"1.2.3.4999", 0, 7, b'|'), Ok(([1, 2, 3, 4], 7)));
    }
}
