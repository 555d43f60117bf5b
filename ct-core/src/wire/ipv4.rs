//! IPv4 header view ([RFC 791 § 3.1]), options included.
//!
//! [RFC 791 § 3.1]: https://www.rfc-editor.org/rfc/rfc791#section-3.1

use super::{checksum, Fragment, IpPacket};
use crate::invalid::InvalidReason;
use crate::tuple::{Addr, L3};

mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const SRC: Range<usize> = 12..16;
    pub(super) const DST: Range<usize> = 16..20;
    pub(super) const HEADER_LEN: usize = 20;
}

const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Check the option list: EOL ends it, NOP is one byte, every other option
/// has a length byte of at least 2 that stays inside the header.
fn options_ok(mut opts: &[u8]) -> bool {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            0 => return true,
            1 => opts = rest,
            _ => {
                let Some(&len) = rest.first() else { return false };
                let len = usize::from(len);
                if len < 2 || len > opts.len() {
                    return false;
                }
                opts = &opts[len..];
            }
        }
    }
    true
}

/// Parse an IPv4 packet. `quoted`: the packet sits inside an ICMP error, so
/// it may be cut short after its header and its checksum is not checked.
pub(super) fn parse(b: &[u8], quoted: bool) -> Result<IpPacket<'_>, InvalidReason> {
    let bad_len = if quoted { InvalidReason::IcmpErrorBadQuote } else { InvalidReason::Ipv4BadLength };
    if b.len() < field::HEADER_LEN {
        return Err(if quoted { InvalidReason::IcmpErrorBadQuote } else { InvalidReason::Ipv4Truncated });
    }
    if b[field::VER_IHL] >> 4 != 4 {
        return Err(InvalidReason::Ipv4BadVersion);
    }
    let hlen = usize::from(b[field::VER_IHL] & 0x0f) * 4;
    if hlen < field::HEADER_LEN {
        return Err(InvalidReason::Ipv4BadIhl);
    }
    if hlen > b.len() {
        return Err(if quoted { InvalidReason::IcmpErrorBadQuote } else { InvalidReason::Ipv4Truncated });
    }
    let total = usize::from(be16(b, field::LENGTH));
    if total < hlen || (!quoted && total > b.len()) {
        return Err(bad_len);
    }
    if !quoted && !checksum::ipv4_header_ok(&b[..hlen]) {
        return Err(InvalidReason::Ipv4BadChecksum);
    }
    if !options_ok(&b[field::HEADER_LEN..hlen]) {
        return Err(InvalidReason::Ipv4BadOptions);
    }
    let flg_off = be16(b, field::FLG_OFF);
    let fragment = match (flg_off & OFFSET_MASK, flg_off & FLAG_MF != 0) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::NonFirst,
    };
    let end = total.min(b.len());
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&b[field::SRC]);
    dst.copy_from_slice(&b[field::DST]);
    Ok(IpPacket {
        l3: L3::V4,
        src: Addr::v4(src),
        dst: Addr::v4(dst),
        proto: b[field::PROTOCOL],
        ttl: b[field::TTL],
        ident: u32::from(be16(b, field::IDENT)),
        ip_len: total as u32,
        fragment,
        l4: &b[hlen..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.1.2 -> 10.0.2.2, UDP, id 0x1234, 8 bytes of payload, valid checksum.
    fn packet() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        let c = checksum::checksum(&p, 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 8, 0, 0]);
        p
    }

    #[test]
    fn parse_basic_and_strip_padding() {
        let mut p = packet();
        p.extend_from_slice(&[0; 18]); // Ethernet padding
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.ttl, ip.ident, ip.ip_len, ip.l4.len()), (17, 64, 0x1234, 28, 8));
        assert_eq!(ip.src, Addr::v4([10, 0, 1, 2]));
        assert_eq!(ip.fragment, Fragment::None);
    }

    #[test]
    fn header_errors() {
        let p = packet();
        assert_eq!(parse(&p[..19], false).unwrap_err(), InvalidReason::Ipv4Truncated);
        let mut q = p.clone();
        q[0] = 0x44;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadIhl);
        let mut q = p.clone();
        q[0] = 0x55;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadVersion);
        let mut q = p.clone();
        q[3] = 29;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadLength);
        let mut q = p.clone();
        q[8] = 1;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadChecksum);
        // Quoted: bad checksum and short body are fine.
        let ip = parse(&q[..24], true).unwrap();
        assert_eq!(ip.l4.len(), 4);
    }

    #[test]
    fn options_and_fragments() {
        // IHL 6 with NOP NOP NOP EOL.
        let mut p = vec![0x46, 0, 0, 32, 0, 1, 0x20, 0, 64, 6, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2, 1, 1, 1, 0];
        p.extend_from_slice(&[0; 8]);
        let c = checksum::checksum(&p[..24], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.l4.len(), ip.fragment), (8, Fragment::First));
        // Option with a length running past the header.
        let mut q = p.clone();
        q[20..24].copy_from_slice(&[7, 9, 0, 0]);
        q[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&q[..24], 0);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadOptions);
        // Non-first fragment.
        let mut q = p.clone();
        q[6..8].copy_from_slice(&[0, 3]);
        q[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&q[..24], 0);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(parse(&q, false).unwrap().fragment, Fragment::NonFirst);
    }
}
