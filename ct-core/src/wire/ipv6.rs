//! IPv6 header view ([RFC 8200 § 3]) and the extension header walk
//! (the kernel's `ipv6_skip_exthdr`).
//!
//! [RFC 8200 § 3]: https://www.rfc-editor.org/rfc/rfc8200#section-3

use super::{Fragment, IpPacket};
use crate::invalid::InvalidReason;
use crate::tuple::{Addr, L3};

mod field {
    use core::ops::Range;
    pub(super) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const NXT_HDR: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC: Range<usize> = 8..24;
    pub(super) const DST: Range<usize> = 24..40;
    pub(super) const HEADER_LEN: usize = 40;
}

mod next {
    pub(super) const HOP_BY_HOP: u8 = 0;
    pub(super) const ROUTING: u8 = 43;
    pub(super) const FRAGMENT: u8 = 44;
    pub(super) const AUTH: u8 = 51;
    pub(super) const DEST_OPTS: u8 = 60;
}

/// Extension headers walked at most; a longer chain is treated as malformed.
const MAX_EXT_HEADERS: usize = 16;

/// Parse an IPv6 packet. `quoted`: inside an ICMPv6 error, possibly cut short.
pub(super) fn parse(b: &[u8], quoted: bool) -> Result<IpPacket<'_>, InvalidReason> {
    let trunc = if quoted { InvalidReason::IcmpErrorBadQuote } else { InvalidReason::Ipv6Truncated };
    if b.len() < field::HEADER_LEN || b[0] >> 4 != 6 {
        return Err(trunc);
    }
    let r = field::VER_TC_FLOW;
    let vtf = u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]]);
    let plen = usize::from(u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]]));
    let total = field::HEADER_LEN + plen;
    if !quoted && (plen == 0 || total > b.len()) {
        return Err(InvalidReason::Ipv6BadLength);
    }
    let end = total.min(b.len());
    let body = &b[..end];
    // Walk the chain.
    let mut nh = b[field::NXT_HDR];
    let mut off = field::HEADER_LEN;
    let mut fragment = Fragment::None;
    let ext_err = if quoted { InvalidReason::IcmpErrorBadQuote } else { InvalidReason::Ipv6BadExtHeader };
    for _ in 0..=MAX_EXT_HEADERS {
        match nh {
            next::HOP_BY_HOP | next::ROUTING | next::DEST_OPTS | next::AUTH | next::FRAGMENT => {}
            _ => {
                let mut src = [0u8; 16];
                let mut dst = [0u8; 16];
                src.copy_from_slice(&b[field::SRC]);
                dst.copy_from_slice(&b[field::DST]);
                return Ok(IpPacket {
                    l3: L3::V6,
                    src: Addr::v6(src),
                    dst: Addr::v6(dst),
                    proto: nh,
                    ttl: b[field::HOP_LIMIT],
                    ident: vtf & 0x000f_ffff,
                    ip_len: total as u32,
                    fragment,
                    l4: body.get(off..).unwrap_or(&[]),
                });
            }
        }
        let hdr = body.get(off..off + 8).ok_or(ext_err)?;
        let len = match nh {
            next::FRAGMENT => {
                let frag_off = u16::from_be_bytes([hdr[2], hdr[3]]);
                fragment = match (frag_off & 0xfff8, frag_off & 1 != 0) {
                    (0, false) => fragment,
                    (0, true) => Fragment::First,
                    _ => Fragment::NonFirst,
                };
                8
            }
            next::AUTH => (usize::from(hdr[1]) + 2) * 4,
            _ => (usize::from(hdr[1]) + 1) * 8,
        };
        nh = hdr[0];
        off += len;
        if off > body.len() {
            return Err(ext_err);
        }
    }
    Err(ext_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(nh: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let plen = ext.len() + l4.len();
        let mut p = vec![0x60, 0x01, 0x23, 0x45, (plen >> 8) as u8, plen as u8, nh, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn plain_tcp() {
        let p = packet(6, &[], &[1; 20]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.ttl, ip.ident, ip.ip_len, ip.l4.len()), (6, 64, 0x12345, 60, 20));
        assert_eq!(ip.fragment, Fragment::None);
    }

    #[test]
    fn extension_chain() {
        // Hop-by-hop (8 bytes) -> dest opts (16 bytes) -> UDP.
        let mut ext = vec![60, 0, 1, 4, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let p = packet(0, &ext, &[0; 8]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.l4.len()), (17, 8));
        // Truncated chain.
        let p = packet(0, &ext[..12], &[]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadExtHeader);
    }

    #[test]
    fn fragments_and_no_next_header() {
        let p = packet(44, &[58, 0, 0, 1, 0, 0, 0, 7], &[128, 0, 0, 0, 0, 0, 0, 0]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.fragment), (58, Fragment::First));
        let p = packet(44, &[58, 0, 0, 0x10, 0, 0, 0, 7], &[0; 8]);
        assert_eq!(parse(&p, false).unwrap().fragment, Fragment::NonFirst);
        let p = packet(59, &[], &[]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadLength);
        let p = packet(59, &[], &[0]);
        assert_eq!(parse(&p, false).unwrap().proto, 59);
    }

    #[test]
    fn lengths() {
        let p = packet(6, &[], &[1; 20]);
        assert_eq!(parse(&p[..59], false).unwrap_err(), InvalidReason::Ipv6BadLength);
        assert_eq!(parse(&p[..39], false).unwrap_err(), InvalidReason::Ipv6Truncated);
        assert_eq!(parse(&p[..48], true).unwrap().l4.len(), 8);
        // A chain of hop-by-hop headers longer than the bound.
        let ext: Vec<u8> = (0..20).flat_map(|_| [0u8, 0, 0, 0, 0, 0, 0, 0]).collect();
        let p = packet(0, &ext, &[]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadExtHeader);
    }
}
