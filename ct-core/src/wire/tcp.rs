//! TCP header view ([RFC 9293 § 3.1]) and the per-segment summary the tracker reads.
//!
//! [RFC 9293 § 3.1]: https://www.rfc-editor.org/rfc/rfc9293#section-3.1

use crate::invalid::InvalidReason;
use bitflags::bitflags;

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ: Range<usize> = 4..8;
    pub(super) const ACK: Range<usize> = 8..12;
    pub(super) const DATA_OFF: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const HEADER_LEN: usize = 20;
}

/// Minimum TCP header length.
pub const HEADER_LEN: usize = field::HEADER_LEN;

bitflags! {
    /// The eight TCP flag bits (byte 13 of the header).
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Flags: u8 {
        const FIN = 0x01;
        const SYN = 0x02;
        const RST = 0x04;
        const PSH = 0x08;
        const ACK = 0x10;
        const URG = 0x20;
        const ECE = 0x40;
        const CWR = 0x80;
    }
}

/// Option kinds the tracker reads.
mod opt {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const WINDOW: u8 = 3;
    pub(super) const SACK_PERM: u8 = 4;
    pub(super) const SACK: u8 = 5;
}

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

/// A checked TCP segment: header fields, the option bytes and the payload.
/// Built by [`TcpSeg::parse`]; fields are public so tests can build one directly.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TcpSeg<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    /// Raw (unscaled) window field.
    pub window: u16,
    pub checksum: u16,
    /// Bytes between the fixed header and the payload.
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> TcpSeg<'a> {
    /// Parse `l4`, the bytes from the TCP header to the end of the IP payload.
    /// Errors when the header is cut short or the data offset is below 5 or
    /// points past the end (K-TCP `tcp_error`: "truncated packet" / "bad header length").
    pub fn parse(l4: &'a [u8]) -> Result<TcpSeg<'a>, InvalidReason> {
        if l4.len() < HEADER_LEN {
            return Err(InvalidReason::TcpTruncated);
        }
        let hlen = usize::from(l4[field::DATA_OFF] >> 4) * 4;
        if hlen < HEADER_LEN || hlen > l4.len() {
            return Err(InvalidReason::TcpTruncated);
        }
        Ok(TcpSeg {
            sport: be16(l4, field::SRC_PORT),
            dport: be16(l4, field::DST_PORT),
            seq: be32(l4, field::SEQ),
            ack: be32(l4, field::ACK),
            flags: Flags::from_bits_retain(l4[field::FLAGS]),
            window: be16(l4, field::WINDOW),
            checksum: be16(l4, field::CHECKSUM),
            options: &l4[HEADER_LEN..hlen],
            payload: &l4[hlen..],
        })
    }

    /// A segment with the given fields and no options or payload (tests, generators).
    pub const fn bare(sport: u16, dport: u16, seq: u32, ack: u32, flags: Flags, window: u16) -> TcpSeg<'static> {
        TcpSeg { sport, dport, seq, ack, flags, window, checksum: 0, options: &[], payload: &[] }
    }

    /// Payload length in sequence space (without SYN/FIN).
    pub fn payload_len(&self) -> u32 {
        // A payload never exceeds an IP datagram (65535 bytes), so it fits.
        u32::try_from(self.payload.len()).unwrap_or(u32::MAX)
    }

    /// Iterate `(kind, value)` over well-formed options, stopping like the
    /// kernel's `tcp_options()` at EOL, at a length below 2 or at a length that
    /// runs past the option area.
    pub fn options(&self) -> OptionIter<'a> {
        OptionIter { rest: self.options }
    }

    /// Window scale from the window-scale option, capped at 14 (RFC 7323
    /// § 2.3). With several, the last one counts, as in the kernel's
    /// `tcp_options()`.
    pub fn window_scale(&self) -> Option<u8> {
        self.options().filter(|(k, v)| *k == opt::WINDOW && v.len() == 1).last().map(|(_, v)| v[0].min(14))
    }

    /// Whether the SACK-permitted option is present.
    pub fn sack_permitted(&self) -> bool {
        self.options().any(|(k, v)| k == opt::SACK_PERM && v.is_empty())
    }

    /// The highest SACK right edge after `ack` in the first well-formed SACK
    /// option (length 2 + 8n, n >= 1), or `ack` (K-TCP `tcp_sack`, which
    /// stops at that option).
    pub fn sack_max(&self, ack: u32) -> u32 {
        let Some((_, v)) = self.options().find(|(k, v)| *k == opt::SACK && v.len() >= 8 && v.len() % 8 == 0) else {
            return ack;
        };
        v.chunks_exact(8).map(|b| u32::from_be_bytes([b[4], b[5], b[6], b[7]])).fold(ack, |sack, right| {
            if crate::seq::after(right, sack) {
                right
            } else {
                sack
            }
        })
    }
}

/// Iterator over TCP options; see [`TcpSeg::options`].
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, tail) = self.rest.split_first()?;
            match kind {
                opt::EOL => {
                    self.rest = &[];
                    return None;
                }
                opt::NOP => self.rest = tail,
                _ => {
                    let len = usize::from(*tail.first()?);
                    if len < 2 || len > self.rest.len() {
                        self.rest = &[];
                        return None;
                    }
                    let value = &self.rest[2..len];
                    self.rest = &self.rest[len..];
                    return Some((kind, value));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SYN 40000 -> 80, seq 1000, win 64240, MSS 1460, SACK-perm, TS, NOP, WS 7.
    static SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0, 0x12, 0x34,
        0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parse_syn_with_options() {
        let s = TcpSeg::parse(&SYN).unwrap();
        assert_eq!((s.sport, s.dport, s.seq, s.ack, s.window), (40000, 80, 1000, 0, 64240));
        assert_eq!(s.flags, Flags::SYN);
        assert_eq!(s.window_scale(), Some(7));
        assert!(s.sack_permitted());
        assert!(s.payload.is_empty());
        let kinds: Vec<u8> = s.options().map(|(k, _)| k).collect();
        assert_eq!(kinds, [2, 4, 8, 3]);
    }

    #[test]
    fn truncated_and_bad_offset() {
        assert_eq!(TcpSeg::parse(&SYN[..19]), Err(InvalidReason::TcpTruncated));
        let mut b = SYN;
        b[12] = 0x40; // doff 4
        assert_eq!(TcpSeg::parse(&b), Err(InvalidReason::TcpTruncated));
        b[12] = 0xf0; // doff 15 = 60 bytes > 40
        assert_eq!(TcpSeg::parse(&b), Err(InvalidReason::TcpTruncated));
    }

    #[test]
    fn window_scale_capped_and_bad_lengths_stop() {
        let mut b = SYN;
        b[39] = 20;
        assert_eq!(TcpSeg::parse(&b).unwrap().window_scale(), Some(14));
        b[21] = 1; // MSS option length 1: parsing stops
        let s = TcpSeg::parse(&b).unwrap();
        assert_eq!(s.options().count(), 0);
        assert_eq!(s.window_scale(), None);
    }

    #[test]
    fn sack_max_takes_highest_right_edge() {
        let opts = [1u8, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, 0, 0, 0, 40];
        let mut s = TcpSeg::bare(1, 2, 0, 5, Flags::ACK, 100);
        s.options = &opts;
        assert_eq!(s.sack_max(5), 40);
        assert_eq!(s.sack_max(50), 50);
        s.options = &opts[..10];
        assert_eq!(s.sack_max(5), 5, "length 8 is not 2 + 8n");
        // Only the first well-formed SACK option counts.
        let two = [5u8, 10, 0, 0, 0, 1, 0, 0, 0, 9, 5, 10, 0, 0, 0, 1, 0, 0, 0, 99];
        s.options = &two;
        assert_eq!(s.sack_max(5), 9);
    }

    #[test]
    fn last_window_scale_wins() {
        let opts = [3u8, 3, 2, 3, 3, 9];
        let mut s = TcpSeg::bare(1, 2, 0, 0, Flags::SYN, 100);
        s.options = &opts;
        assert_eq!(s.window_scale(), Some(9));
    }
}
