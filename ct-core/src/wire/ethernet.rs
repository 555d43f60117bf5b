//! Ethernet II ([IEEE 802.3]) with up to two 802.1Q / 802.1ad tags.
//!
//! [IEEE 802.3]: https://standards.ieee.org/ieee/802.3/

use super::{ethertype, Frame, VlanTag};
use crate::invalid::InvalidReason;
use arrayvec::ArrayVec;

mod field {
    use core::ops::Range;
    pub(super) const DST: Range<usize> = 0..6;
    pub(super) const SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: usize = 12;
    pub(super) const HEADER_LEN: usize = 14;
    pub(super) const TAG_LEN: usize = 4;
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Walk the Ethernet header and its VLAN tags.
pub(super) fn parse(frame: &[u8]) -> Result<Frame<'_>, InvalidReason> {
    if frame.len() < field::HEADER_LEN {
        return Err(InvalidReason::L2Truncated);
    }
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[field::DST]);
    src_mac.copy_from_slice(&frame[field::SRC]);
    let mut off = field::ETHERTYPE;
    let mut vlans = ArrayVec::new();
    let mut et = be16(frame, off).ok_or(InvalidReason::L2Truncated)?;
    while et == ethertype::VLAN || et == ethertype::QINQ {
        let tci = be16(frame, off + 2).ok_or(InvalidReason::L2Truncated)?;
        vlans.try_push(VlanTag { tpid: et, tci }).map_err(|_| InvalidReason::L2TooManyTags)?;
        off += field::TAG_LEN;
        et = be16(frame, off).ok_or(InvalidReason::L2Truncated)?;
    }
    let l3_offset = off + 2;
    Ok(Frame { dst_mac, src_mac, vlans, ethertype: et, l3_offset, l3: &frame[l3_offset..] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tags: &[(u16, u16)], et: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(&[0x45, 0]);
        f
    }

    #[test]
    fn untagged() {
        let f = frame(&[], ethertype::IPV4);
        let p = parse(&f).unwrap();
        assert_eq!((p.ethertype, p.l3_offset, p.l3.len(), p.vlans.len()), (0x0800, 14, 2, 0));
        assert_eq!(p.src_mac, [2, 0, 0, 0, 0, 2]);
    }

    #[test]
    fn single_and_double_tags() {
        let f = frame(&[(0x8100, 0x2064)], ethertype::IPV6);
        let p = parse(&f).unwrap();
        assert_eq!((p.ethertype, p.l3_offset, p.vlans[0].vid()), (0x86dd, 18, 100));
        let f = frame(&[(0x88a8, 10), (0x8100, 20)], ethertype::ARP);
        let p = parse(&f).unwrap();
        assert_eq!((p.ethertype, p.l3_offset), (0x0806, 22));
        assert_eq!(p.vlans.iter().map(|v| v.vid()).collect::<Vec<_>>(), [10, 20]);
        let f = frame(&[(0x8100, 1), (0x8100, 2), (0x8100, 3)], ethertype::IPV4);
        assert_eq!(parse(&f).unwrap_err(), InvalidReason::L2TooManyTags);
    }

    #[test]
    fn truncated() {
        let f = frame(&[(0x8100, 5)], ethertype::IPV4);
        for n in 0..18 {
            assert_eq!(parse(&f[..n]).unwrap_err(), InvalidReason::L2Truncated, "len {n}");
        }
        assert!(parse(&f[..18]).is_ok());
    }
}
