//! UDP header view ([RFC 768]).
//!
//! [RFC 768]: https://www.rfc-editor.org/rfc/rfc768

use crate::invalid::InvalidReason;

/// UDP header length.
pub const HEADER_LEN: usize = 8;

/// A checked UDP datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct UdpDgram<'a> {
    pub sport: u16,
    pub dport: u16,
    pub length: u16,
    pub checksum: u16,
    pub payload: &'a [u8],
}

impl<'a> UdpDgram<'a> {
    fn header(l4: &'a [u8]) -> Result<(u16, u16, u16, u16), InvalidReason> {
        match l4 {
            [a, b, c, d, e, f, g, h, ..] => Ok((
                u16::from_be_bytes([*a, *b]),
                u16::from_be_bytes([*c, *d]),
                u16::from_be_bytes([*e, *f]),
                u16::from_be_bytes([*g, *h]),
            )),
            _ => Err(InvalidReason::UdpTruncated),
        }
    }

    /// Parse `l4` (bytes to the end of the IP payload). The length field
    /// must be at least 8 and at most what is there (K-UDP `udp_error`);
    /// bytes beyond it are ignored.
    pub fn parse(l4: &'a [u8]) -> Result<UdpDgram<'a>, InvalidReason> {
        let (sport, dport, length, checksum) = Self::header(l4)?;
        let len = usize::from(length);
        if len < HEADER_LEN || len > l4.len() {
            return Err(InvalidReason::UdpBadLength);
        }
        Ok(UdpDgram { sport, dport, length, checksum, payload: &l4[HEADER_LEN..len] })
    }

    /// The header of a datagram quoted in an ICMP error: only the first 8
    /// bytes are needed; the payload is left empty.
    pub fn parse_quoted(l4: &'a [u8]) -> Result<UdpDgram<'a>, InvalidReason> {
        let (sport, dport, length, checksum) = Self::header(l4)?;
        Ok(UdpDgram { sport, dport, length, checksum, payload: &[] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 5353 -> 53, length 12, checksum 0xabcd, "abcd".
    static PACKET_BYTES: [u8; 12] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0xab, 0xcd, b'a', b'b', b'c', b'd'];

    #[test]
    fn parse_basic() {
        let d = UdpDgram::parse(&PACKET_BYTES).unwrap();
        assert_eq!((d.sport, d.dport, d.length, d.checksum, d.payload), (5353, 53, 12, 0xabcd, &b"abcd"[..]));
    }

    #[test]
    fn trailing_bytes_ignored() {
        let mut padded = PACKET_BYTES.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(UdpDgram::parse(&padded).unwrap().payload, b"abcd");
    }

    #[test]
    fn truncated_variants() {
        for n in 0..HEADER_LEN {
            assert_eq!(UdpDgram::parse(&PACKET_BYTES[..n]).unwrap_err(), InvalidReason::UdpTruncated, "len {n}");
            assert_eq!(UdpDgram::parse_quoted(&PACKET_BYTES[..n]).unwrap_err(), InvalidReason::UdpTruncated);
        }
        // The length field says 12: anything shorter is cut.
        for n in HEADER_LEN..12 {
            assert_eq!(UdpDgram::parse(&PACKET_BYTES[..n]).unwrap_err(), InvalidReason::UdpBadLength, "len {n}");
            // A quote needs only the header.
            let q = UdpDgram::parse_quoted(&PACKET_BYTES[..n]).unwrap();
            assert_eq!((q.sport, q.dport, q.length, q.payload), (5353, 53, 12, &[][..]));
        }
    }

    #[test]
    fn length_field() {
        for (len, ok) in [(0u16, false), (7, false), (8, true), (11, true), (12, true), (13, false), (0xffff, false)] {
            let mut d = PACKET_BYTES;
            d[4..6].copy_from_slice(&len.to_be_bytes());
            match UdpDgram::parse(&d) {
                Ok(u) => {
                    assert!(ok, "length {len}");
                    assert_eq!(u.payload, &PACKET_BYTES[8..usize::from(len)]);
                }
                Err(e) => {
                    assert!(!ok, "length {len}");
                    assert_eq!(e, InvalidReason::UdpBadLength);
                }
            }
        }
    }
}
