//! The answer to a rejected packet, sent back out of its ingress port as if
//! from the destination: a TCP RST for TCP (iptables `REJECT --reject-with
//! tcp-reset`), an ICMP or ICMPv6 port unreachable for everything else (the
//! iptables and ip6tables `REJECT` default). Built like the kernel's
//! `nf_send_reset` / `nf_send_unreach`: never about a RST, an ICMP error, a
//! non-first fragment or a broadcast or multicast destination.

use ct_core::tuple::{proto, L3};
use ct_core::wire::checksum::{checksum, pseudo_header_sum};
use ct_core::wire::icmp::{is_v4_error, is_v6_error};
use ct_core::wire::{parse_frame, Fragment, IpPacket, TcpFlags, TcpSeg};

/// Hop limit of generated packets.
const TTL: u8 = 64;
/// An ICMPv4 error is at most this long at the IP layer (RFC 1812 4.3.2.3).
const ICMP4_MAX: usize = 576;
/// An ICMPv6 error fits the IPv6 minimum MTU (RFC 4443 2.4 (c)).
const ICMP6_MAX: usize = 1280;

/// The frame answering `frame` (whose IP packet is `ip`), or `None` when
/// the rules say to stay silent.
pub fn build_reject(frame: &[u8], ip: &IpPacket<'_>) -> Option<Vec<u8>> {
    let l2 = parse_frame(frame).ok()?;
    // A group address at layer 2 (bit 0 of the first octet) or layer 3.
    if ip.fragment == Fragment::NonFirst || l2.dst_mac[0] & 1 != 0 || is_multicast(ip) {
        return None;
    }
    let mut out = Vec::with_capacity(128);
    // Ethernet header and tags of the original, MACs swapped.
    out.extend_from_slice(frame.get(..l2.l3_offset)?);
    out[0..6].copy_from_slice(&l2.src_mac);
    out[6..12].copy_from_slice(&l2.dst_mac);
    let l3_at = out.len();
    let ok = if ip.proto == proto::TCP {
        tcp_reset(ip, &mut out)
    } else {
        let quoted = l2.l3.get(..usize::try_from(ip.ip_len).ok()?).unwrap_or(l2.l3);
        unreachable(ip, quoted, &mut out)
    };
    (ok.is_some() && out.len() > l3_at).then_some(out)
}

fn is_multicast(ip: &IpPacket<'_>) -> bool {
    let d = ip.dst.0;
    match ip.l3 {
        L3::V4 => d[0] >= 224 || d[..4] == [0; 4],
        L3::V6 => d[0] == 0xff || d == [0; 16],
    }
}

/// Append an IP header (source and destination swapped) for an upper-layer
/// payload of `len` bytes.
fn ip_header(ip: &IpPacket<'_>, l4_proto: u8, len: usize, out: &mut Vec<u8>) -> Option<()> {
    match ip.l3 {
        L3::V4 => {
            let total = u16::try_from(20 + len).ok()?;
            let start = out.len();
            out.extend_from_slice(&[0x45, 0]);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, TTL, l4_proto, 0, 0]);
            out.extend_from_slice(&ip.dst.0[..4]);
            out.extend_from_slice(&ip.src.0[..4]);
            let c = checksum(&out[start..], 0);
            out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        }
        L3::V6 => {
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
            out.extend_from_slice(&[l4_proto, TTL]);
            out.extend_from_slice(&ip.dst.0);
            out.extend_from_slice(&ip.src.0);
        }
    }
    Some(())
}

fn tcp_reset(ip: &IpPacket<'_>, out: &mut Vec<u8>) -> Option<()> {
    let seg = TcpSeg::parse(ip.l4).ok()?;
    let f = seg.flags;
    if f.contains(TcpFlags::RST) {
        return None;
    }
    let (seq, ack, flags) = if f.contains(TcpFlags::ACK) {
        (seg.ack, 0, TcpFlags::RST)
    } else {
        let len = seg.payload_len() + u32::from(f.contains(TcpFlags::SYN)) + u32::from(f.contains(TcpFlags::FIN));
        (0, seg.seq.wrapping_add(len), TcpFlags::RST | TcpFlags::ACK)
    };
    ip_header(ip, proto::TCP, 20, out)?;
    let start = out.len();
    out.extend_from_slice(&seg.dport.to_be_bytes());
    out.extend_from_slice(&seg.sport.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    out.extend_from_slice(&[5 << 4, flags.bits(), 0, 0, 0, 0, 0, 0]);
    // The pseudo-header sum does not depend on the order of the addresses.
    let c = checksum(&out[start..], pseudo_header_sum(&IpPacket { proto: proto::TCP, ..*ip }, 20));
    out[start + 16..start + 18].copy_from_slice(&c.to_be_bytes());
    Some(())
}

fn unreachable(ip: &IpPacket<'_>, quoted: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let (l4_proto, ty, code, hdr, max) = match ip.l3 {
        L3::V4 => (proto::ICMP, 3, 3, 20, ICMP4_MAX),
        L3::V6 => (proto::ICMPV6, 1, 4, 40, ICMP6_MAX),
    };
    if ip.proto == l4_proto {
        let t = *ip.l4.first()?;
        let error = if ip.l3 == L3::V4 { is_v4_error(t) } else { is_v6_error(t) };
        if error {
            return None;
        }
    }
    let quote = &quoted[..quoted.len().min(max - hdr - 8)];
    let len = 8 + quote.len();
    ip_header(ip, l4_proto, len, out)?;
    let start = out.len();
    out.extend_from_slice(&[ty, code, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(quote);
    let init = if ip.l3 == L3::V6 { pseudo_header_sum(&IpPacket { proto: l4_proto, ..*ip }, len) } else { 0 };
    let c = checksum(&out[start..], init);
    out[start + 2..start + 4].copy_from_slice(&c.to_be_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_core::wire::checksum::l4_ok;
    use ct_core::wire::icmp::IcmpMsg;
    use ct_core::wire::parse_ip;
    use etherparse::PacketBuilder;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn answer(frame: &[u8]) -> Option<Vec<u8>> {
        let l2 = parse_frame(frame).unwrap();
        let ip = parse_ip(l2.l3).unwrap();
        build_reject(frame, &ip)
    }

    /// The answer's IP packet, checked (header and L4 checksums).
    fn check(out: &[u8]) -> (ct_core::wire::Frame<'_>, IpPacket<'_>) {
        let l2 = parse_frame(out).unwrap();
        assert_eq!((l2.dst_mac, l2.src_mac), (MAC_A, MAC_B), "MACs swapped");
        let ip = parse_ip(l2.l3).unwrap();
        assert!(l4_ok(&ip), "L4 checksum");
        (l2, ip)
    }

    fn tcp4(
        flags: impl FnOnce(
            etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        payload: &[u8],
    ) -> Vec<u8> {
        let b =
            PacketBuilder::ethernet2(MAC_A, MAC_B).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).tcp(40000, 113, 1000, 500);
        let b = flags(b);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn syn_gets_rst_ack_acknowledging_it() {
        let out = answer(&tcp4(|b| b.syn(), &[])).unwrap();
        let (_, ip) = check(&out);
        assert_eq!((ip.src.v4_octets(), ip.dst.v4_octets()), ([10, 0, 0, 2], [10, 0, 0, 1]));
        let seg = TcpSeg::parse(ip.l4).unwrap();
        assert_eq!((seg.sport, seg.dport), (113, 40000));
        assert_eq!((seg.seq, seg.ack, seg.flags.bits()), (0, 1001, (TcpFlags::RST | TcpFlags::ACK).bits()));
    }

    #[test]
    fn ack_segment_gets_rst_at_its_ack_and_rst_gets_nothing() {
        let out = answer(&tcp4(|b| b.ack(777), b"hello")).unwrap();
        let (_, ip) = check(&out);
        let seg = TcpSeg::parse(ip.l4).unwrap();
        assert_eq!((seg.seq, seg.ack, seg.flags.bits()), (777, 0, TcpFlags::RST.bits()));
        assert!(answer(&tcp4(|b| b.rst(), &[])).is_none());
    }

    #[test]
    fn udp_gets_port_unreachable_quoting_it_with_vlan_kept() {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(etherparse::VlanId::try_new(42).unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5000, 53)
            .write(&mut v, &[7; 1000])
            .unwrap();
        let out = answer(&v).unwrap();
        let (l2, ip) = check(&out);
        assert_eq!(l2.vlans.first().map(|t| t.vid()), Some(42));
        assert_eq!(ip.ip_len as usize, ICMP4_MAX);
        let m = IcmpMsg::parse(ip.l4).unwrap();
        assert_eq!((m.ty, m.code), (3, 3));
        let inner = ct_core::wire::parse_quoted_ip(m.body).unwrap();
        assert_eq!(inner.src.v4_octets(), [10, 0, 0, 1]);
        assert_eq!(&inner.l4[..4], &[0x13, 0x88, 0, 53]);
    }

    #[test]
    fn ipv6_udp_and_tcp() {
        let a6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let b6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut v = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(a6, b6, 64).udp(5000, 53).write(&mut v, &[1; 2000]).unwrap();
        let out = answer(&v).unwrap();
        let (_, ip) = check(&out);
        assert_eq!(ip.ip_len as usize, ICMP6_MAX);
        let m = IcmpMsg::parse(ip.l4).unwrap();
        assert_eq!((m.ty, m.code), (1, 4));
        let mut t = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(a6, b6, 64).tcp(1, 2, 10, 100).syn().write(&mut t, &[]).unwrap();
        let out = answer(&t).unwrap();
        let (_, ip) = check(&out);
        assert_eq!(ip.dst.0, a6);
        assert_eq!(TcpSeg::parse(ip.l4).unwrap().ack, 11);
    }

    #[test]
    fn silent_for_icmp_errors_broadcast_and_fragments() {
        let mut err = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4(etherparse::Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit))
            .write(&mut err, &[0; 28])
            .unwrap();
        assert!(answer(&err).is_none());
        let mut echo = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(1, 1)
            .write(&mut echo, &[])
            .unwrap();
        assert!(answer(&echo).is_some(), "echo requests are answered");
        let udp_to = |mac: [u8; 6], ip: [u8; 4]| {
            let mut v = Vec::new();
            PacketBuilder::ethernet2(MAC_A, mac).ipv4([10, 0, 0, 1], ip, 64).udp(1, 2).write(&mut v, &[]).unwrap();
            v
        };
        assert!(answer(&udp_to(MAC_B, [255, 255, 255, 255])).is_none());
        assert!(answer(&udp_to(MAC_B, [224, 0, 0, 1])).is_none());
        assert!(answer(&udp_to([0xff; 6], [10, 0, 0, 255])).is_none());
        assert!(answer(&udp_to(MAC_B, [10, 0, 0, 255])).is_some(), "a unicast frame to .255 may be a host");
        let mut frag = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut frag, &[0; 16])
            .unwrap();
        frag[14 + 6] = 0x00;
        frag[14 + 7] = 0x10; // fragment offset 16 (128 bytes)
        frag[14 + 10] = 0;
        frag[14 + 11] = 0;
        let c = checksum(&frag[14..34], 0);
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        assert!(answer(&frag).is_none());
    }
}
