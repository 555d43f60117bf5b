//! Checked, zero-copy views over the headers ctwall reads.
//!
//! Contract (as in smoltcp's `wire`): a view is built with `new_checked` (or
//! a `parse` function) from untrusted bytes; once that succeeded, no accessor
//! panics. A malformed packet yields a typed [`InvalidReason`].
//!
//! [`parse_frame`] walks Ethernet (with up to two 802.1Q/802.1ad tags) to the
//! IP layer; [`parse_ip`] checks an IPv4 (with options) or IPv6 (with its
//! extension header chain) packet and locates the L4 header;
//! [`parse_quoted_ip`] does the same, leniently, for the packet quoted inside
//! an ICMP error.

pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use crate::invalid::InvalidReason;
use crate::tuple::{Addr, L3};
use arrayvec::ArrayVec;

pub use self::tcp::{Flags as TcpFlags, TcpSeg};

/// Ethertypes.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// One 802.1Q / 802.1ad tag.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VlanTag {
    /// 0x8100 or 0x88a8.
    pub tpid: u16,
    /// PCP, DEI and VID as on the wire.
    pub tci: u16,
}

impl VlanTag {
    pub const fn vid(&self) -> u16 {
        self.tci & 0x0fff
    }
}

/// A frame after the layer-2 walk.
#[derive(Clone, Debug)]
pub struct Frame<'a> {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Tags, outermost first.
    pub vlans: ArrayVec<VlanTag, 2>,
    /// The ethertype after the tags.
    pub ethertype: u16,
    /// Offset of the layer-3 header in the frame.
    pub l3_offset: usize,
    /// Bytes from the layer-3 header to the end of the frame.
    pub l3: &'a [u8],
}

/// Where a fragment sits in its datagram.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment.
    None,
    /// Offset 0 with more fragments following: the L4 header is present.
    First,
    /// Offset above 0: no L4 header.
    NonFirst,
}

/// A checked IPv4 or IPv6 packet with its L4 header located.
#[derive(Copy, Clone, Debug)]
pub struct IpPacket<'a> {
    pub l3: L3,
    pub src: Addr,
    pub dst: Addr,
    /// Upper-layer protocol: the IPv4 protocol field, or for IPv6 the next
    /// header after the extension header chain.
    pub proto: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification, or the IPv6 flow label.
    pub ident: u32,
    /// Length at the IP layer (IPv4 total length, IPv6 40 + payload length),
    /// the unit of `bytes=` accounting.
    pub ip_len: u32,
    pub fragment: Fragment,
    /// From the L4 header to the end of the IP payload (link padding
    /// removed). For a quoted packet: whatever the ICMP error carried.
    pub l4: &'a [u8],
}

/// Walk the Ethernet header and VLAN tags. Errors only for layer-2 problems.
pub fn parse_frame(frame: &[u8]) -> Result<Frame<'_>, InvalidReason> {
    ethernet::parse(frame)
}

/// Check an IP packet (version from the first nibble) and locate its L4
/// header. `bytes` starts at the IP header and may carry link padding.
pub fn parse_ip(bytes: &[u8]) -> Result<IpPacket<'_>, InvalidReason> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => ipv4::parse(bytes, false),
        Some(6) => ipv6::parse(bytes, false),
        Some(_) => Err(InvalidReason::Ipv4BadVersion),
        None => Err(InvalidReason::Ipv4Truncated),
    }
}

/// Parse the packet quoted inside an ICMP error: the IP header must be
/// complete, but the total length may exceed the bytes present and the
/// header checksum is not verified.
pub fn parse_quoted_ip(bytes: &[u8]) -> Result<IpPacket<'_>, InvalidReason> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => ipv4::parse(bytes, true),
        Some(6) => ipv6::parse(bytes, true),
        _ => Err(InvalidReason::IcmpErrorBadQuote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn walk(bytes: &[u8]) {
        if let Ok(f) = parse_frame(bytes) {
            for ip in [parse_ip(f.l3), parse_quoted_ip(f.l3)].into_iter().flatten() {
                let _ = checksum::l4_ok(&ip);
                if let Ok(t) = TcpSeg::parse(ip.l4) {
                    let _ = (t.window_scale(), t.sack_permitted(), t.sack_max(t.ack), t.options().count());
                }
                let _ = udp::UdpDgram::parse(ip.l4);
                if let Ok(m) = icmp::IcmpMsg::parse(ip.l4) {
                    let _ = parse_quoted_ip(m.body);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]
        #[test]
        fn no_panic_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            walk(&bytes);
        }

        #[test]
        fn no_panic_on_ip_like_frames(
            et in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100)],
            ver in prop_oneof![Just(0x45u8), Just(0x46), Just(0x4f), Just(0x60)],
            rest in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&et.to_be_bytes());
            f.push(ver);
            f.extend_from_slice(&rest);
            walk(&f);
        }
    }
}
