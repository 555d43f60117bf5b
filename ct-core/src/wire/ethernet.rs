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

/// Length of the Ethernet II header without tags.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of one 802.1Q / 802.1ad tag.
pub const TAG_LEN: usize = field::TAG_LEN;

/// Walk the Ethernet header and its VLAN tags (TPID 0x8100 or 0x88a8, in
/// any order, at most two). The ethertype after the tags is reported as is;
/// the caller decides what to do with non-IP frames.
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

    // 02:00:00:00:00:02 -> 02:00:00:00:00:01, 802.1ad VID 10, 802.1Q PCP 3
    // VID 100, IPv4, then the first two bytes of an IP header.
    static FRAME_BYTES: [u8; 24] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00,
        0x60, 0x64, 0x08, 0x00, 0x45, 0x00,
    ];

    fn frame(tags: &[(u16, u16)], et: u16) -> Vec<u8> {
        let mut f = FRAME_BYTES[..12].to_vec();
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&et.to_be_bytes());
        f.extend_from_slice(&[0x45, 0]);
        f
    }

    #[test]
    fn double_tagged() {
        let p = parse(&FRAME_BYTES).unwrap();
        assert_eq!(p.dst_mac, [2, 0, 0, 0, 0, 1]);
        assert_eq!(p.src_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(&p.vlans[..], &[VlanTag { tpid: 0x88a8, tci: 10 }, VlanTag { tpid: 0x8100, tci: 0x6064 }]);
        assert_eq!(p.vlans[1].vid(), 100);
        assert_eq!((p.ethertype, p.l3_offset, p.l3), (ethertype::IPV4, 22, &[0x45, 0][..]));
    }

    #[test]
    fn untagged() {
        let f = frame(&[], ethertype::IPV4);
        let p = parse(&f).unwrap();
        assert_eq!((p.ethertype, p.l3_offset, p.l3.len(), p.vlans.len()), (0x0800, 14, 2, 0));
        assert_eq!(p.src_mac, [2, 0, 0, 0, 0, 2]);
        // Nothing after the header is fine: the IP layer will complain.
        let p = parse(&f[..14]).unwrap();
        assert!(p.l3.is_empty());
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
        // Any order of TPIDs.
        let f = frame(&[(0x8100, 1), (0x88a8, 2)], ethertype::IPV4);
        assert_eq!(parse(&f).unwrap().l3_offset, 22);
    }

    #[test]
    fn too_many_tags() {
        for tags in [[(0x8100, 1), (0x8100, 2), (0x8100, 3)], [(0x88a8, 1), (0x8100, 2), (0x88a8, 3)]] {
            let f = frame(&tags, ethertype::IPV4);
            assert_eq!(parse(&f).unwrap_err(), InvalidReason::L2TooManyTags);
        }
    }

    #[test]
    fn truncated_variants() {
        for n in 0..22 {
            assert_eq!(parse(&FRAME_BYTES[..n]).unwrap_err(), InvalidReason::L2Truncated, "len {n}");
        }
        assert!(parse(&FRAME_BYTES[..22]).unwrap().l3.is_empty());
        let f = frame(&[(0x8100, 5)], ethertype::IPV4);
        for n in 0..18 {
            assert_eq!(parse(&f[..n]).unwrap_err(), InvalidReason::L2Truncated, "len {n}");
        }
        assert!(parse(&f[..18]).is_ok());
    }

    #[test]
    fn matches_etherparse() {
        use etherparse::{PacketBuilder, VlanId};
        let mut f = Vec::new();
        PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
            .double_vlan(VlanId::try_new(300).unwrap(), VlanId::try_new(4000).unwrap())
            .ipv6([1; 16], [2; 16], 9)
            .udp(1, 2)
            .write(&mut f, b"x")
            .unwrap();
        let p = parse(&f).unwrap();
        let e = etherparse::SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::LinkSlice::Ethernet2(eth)) = e.link else { panic!() };
        assert_eq!((p.src_mac, p.dst_mac), (eth.source(), eth.destination()));
        let Some(etherparse::VlanSlice::DoubleVlan(v)) = e.vlan else { panic!() };
        // etherparse reports the ethertype after each tag: the next TPID.
        assert_eq!(p.vlans[0].tpid, ethertype::QINQ);
        assert_eq!(p.vlans[1].tpid, v.outer().ether_type().0);
        assert_eq!(p.vlans[0].vid(), v.outer().vlan_identifier().value());
        assert_eq!(p.vlans[1].vid(), v.inner().vlan_identifier().value());
        assert_eq!(p.ethertype, v.inner().ether_type().0);
        let Some(etherparse::NetSlice::Ipv6(ip)) = e.net else { panic!() };
        assert!(p.l3.starts_with(ip.header().slice()));
        assert_eq!(p.l3.len(), f.len() - p.l3_offset);
    }
}
