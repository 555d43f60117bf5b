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

    static DGRAM: [u8; 12] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0xab, 0xcd, b'a', b'b', b'c', b'd'];

    #[test]
    fn parse_and_padding() {
        let d = UdpDgram::parse(&DGRAM).unwrap();
        assert_eq!((d.sport, d.dport, d.length, d.checksum, d.payload), (5353, 53, 12, 0xabcd, &b"abcd"[..]));
        let mut padded = DGRAM.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(UdpDgram::parse(&padded).unwrap().payload, b"abcd");
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(UdpDgram::parse(&DGRAM[..7]).unwrap_err(), InvalidReason::UdpTruncated);
        assert_eq!(UdpDgram::parse(&DGRAM[..11]).unwrap_err(), InvalidReason::UdpBadLength);
        let mut d = DGRAM;
        d[5] = 7;
        assert_eq!(UdpDgram::parse(&d).unwrap_err(), InvalidReason::UdpBadLength);
        assert_eq!(UdpDgram::parse_quoted(&DGRAM[..8]).unwrap().dport, 53);
    }
}
