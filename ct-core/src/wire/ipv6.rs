//! IPv6 header view ([RFC 8200 § 3]) and the extension header walk
//! (the kernel's `ipv6_skip_exthdr`).
//!
//! The fixed-header checks follow `ip6_rcv_core()`: the payload length must
//! fit in the packet and link padding beyond it is trimmed. A payload length
//! of 0 is an empty payload, except in front of a Hop-by-Hop header, where
//! it announces a jumbogram ([RFC 2675]); jumbograms are not supported and
//! count as a bad length.
//!
//! [RFC 8200 § 3]: https://www.rfc-editor.org/rfc/rfc8200#section-3
//! [RFC 2675]: https://www.rfc-editor.org/rfc/rfc2675

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

/// Offsets inside an extension header.
mod ext {
    pub(super) const NXT_HDR: usize = 0;
    pub(super) const LEN: usize = 1;
    /// Fragment header: offset (13 bits), reserved (2), M flag (1).
    pub(super) const FRAG_OFF: core::ops::Range<usize> = 2..4;
    /// Every extension header is a multiple of 8 bytes, at least 8.
    pub(super) const MIN_LEN: usize = 8;
}

/// Next-header values of the extension headers the walk steps over
/// (`ipv6_ext_hdr()`), and No Next Header, which here ends the walk like an
/// upper-layer protocol (the kernel's walk fails on it instead).
pub mod next {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

/// Length of the IPv6 fixed header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Extension headers walked at most; a longer chain is treated as malformed.
pub const MAX_EXT_HEADERS: usize = 16;

const FRAG_OFFSET_MASK: u16 = 0xfff8;
const FRAG_MORE: u16 = 0x0001;

/// Parse an IPv6 packet and walk its extension header chain to the
/// upper-layer header.
///
/// `proto` is the first next-header value that is not Hop-by-Hop, Routing,
/// Fragment, AH or Destination Options (59, No Next Header, included). A
/// non-first fragment ends the walk at its Fragment header: `proto` is that
/// header's next header and `l4` the fragment data.
///
/// `quoted`: the packet sits inside an ICMPv6 error; the payload length may
/// exceed the bytes present, and failures are
/// [`InvalidReason::IcmpErrorBadQuote`].
pub(super) fn parse(b: &[u8], quoted: bool) -> Result<IpPacket<'_>, InvalidReason> {
    let (truncated, bad_len, bad_ext) = if quoted {
        (InvalidReason::IcmpErrorBadQuote, InvalidReason::IcmpErrorBadQuote, InvalidReason::IcmpErrorBadQuote)
    } else {
        (InvalidReason::Ipv6Truncated, InvalidReason::Ipv6BadLength, InvalidReason::Ipv6BadExtHeader)
    };
    let Some(hdr) = b.first_chunk::<{ field::HEADER_LEN }>() else {
        return Err(truncated);
    };
    if hdr[0] >> 4 != 6 {
        return Err(truncated);
    }
    let plen = usize::from(u16::from_be_bytes([hdr[field::LENGTH.start], hdr[field::LENGTH.start + 1]]));
    let first_next = hdr[field::NXT_HDR];
    let total = field::HEADER_LEN + plen;
    if !quoted {
        //= https://www.rfc-editor.org/rfc/rfc2675#section-2
        //# The Payload Length field in the IPv6 header must be set to zero in
        //# every packet that carries the Jumbo Payload option.
        if plen == 0 && first_next == next::HOP_BY_HOP {
            return Err(bad_len);
        }
        if total > b.len() {
            return Err(bad_len);
        }
    }
    // The datagram without link padding (or the part of it that was quoted).
    let body = b.get(..total.min(b.len())).unwrap_or(b);

    let mut nh = first_next;
    let mut off = field::HEADER_LEN;
    let mut fragment = Fragment::None;
    // One more round than headers, for the upper-layer value after the last.
    for _ in 0..=MAX_EXT_HEADERS {
        let len = match nh {
            next::HOP_BY_HOP | next::ROUTING | next::DEST_OPTS | next::AUTH | next::FRAGMENT => {
                let h = body.get(off..off + ext::MIN_LEN).ok_or(bad_ext)?;
                let len = match nh {
                    next::FRAGMENT => {
                        let frag_off = u16::from_be_bytes([h[ext::FRAG_OFF.start], h[ext::FRAG_OFF.start + 1]]);
                        if frag_off & FRAG_OFFSET_MASK != 0 {
                            // `ipv6_skip_exthdr` stops here: what follows is
                            // the middle of the datagram.
                            return Ok(packet(
                                hdr,
                                h[ext::NXT_HDR],
                                total,
                                Fragment::NonFirst,
                                body,
                                off + ext::MIN_LEN,
                            ));
                        }
                        if frag_off & FRAG_MORE != 0 {
                            fragment = Fragment::First;
                        }
                        ext::MIN_LEN
                    }
                    // `ipv6_authlen`: AH counts 4-byte words, minus 2.
                    next::AUTH => (usize::from(h[ext::LEN]) + 2) * 4,
                    // `ipv6_optlen`: 8-byte units, not counting the first.
                    _ => (usize::from(h[ext::LEN]) + 1) * 8,
                };
                nh = h[ext::NXT_HDR];
                len
            }
            _ => return Ok(packet(hdr, nh, total, fragment, body, off)),
        };
        off += len;
        if off > body.len() {
            return Err(bad_ext);
        }
    }
    Err(bad_ext)
}

/// The view once the upper-layer header is found at `l4_off` of `body`.
fn packet<'a>(
    hdr: &[u8; field::HEADER_LEN],
    proto: u8,
    total: usize,
    fragment: Fragment,
    body: &'a [u8],
    l4_off: usize,
) -> IpPacket<'a> {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&hdr[field::SRC]);
    dst.copy_from_slice(&hdr[field::DST]);
    let r = field::VER_TC_FLOW;
    let vtf = u32::from_be_bytes([hdr[r.start], hdr[r.start + 1], hdr[r.start + 2], hdr[r.start + 3]]);
    IpPacket {
        l3: L3::V6,
        src: Addr::v6(src),
        dst: Addr::v6(dst),
        proto,
        ttl: hdr[field::HOP_LIMIT],
        ident: vtf & 0x000f_ffff,
        // At most 40 + 65535.
        ip_len: total as u32,
        fragment,
        l4: body.get(l4_off..).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::proto;
    use proptest::prelude::*;

    // fd00::1:0:0:0:2 -> fd00::2:0:0:0:2 (as below), flow label 0x12345,
    // hop limit 64, Hop-by-Hop (8: PadN) -> Destination Options (16: PadN)
    // -> UDP 40000 -> 53, length 8.
    static PACKET_BYTES: [u8; 72] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x20, 0x00, 0x40, // ver, flow, plen 32, HBH, hlim
        0xfd, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0xfd, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x3c, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00, // HBH -> dest opts, PadN
        0x11, 0x01, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // -> UDP
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
    ];

    fn packet(nh: u8, ext: &[u8], l4: &[u8]) -> Vec<u8> {
        let plen = ext.len() + l4.len();
        let mut p = PACKET_BYTES[..40].to_vec();
        p[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
        p[6] = nh;
        p.extend_from_slice(ext);
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn extension_chain() {
        let ip = parse(&PACKET_BYTES, false).unwrap();
        assert_eq!((ip.l3, ip.proto, ip.ttl, ip.ident, ip.ip_len), (L3::V6, proto::UDP, 64, 0x12345, 72));
        assert_eq!(ip.src.0[..4], [0xfd, 0, 0, 1]);
        assert_eq!(ip.dst.0[15], 2);
        assert_eq!((ip.fragment, ip.l4), (Fragment::None, &PACKET_BYTES[64..]));
    }

    #[test]
    fn truncated_variants() {
        for n in 0..40 {
            assert_eq!(parse(&PACKET_BYTES[..n], false).unwrap_err(), InvalidReason::Ipv6Truncated, "len {n}");
            assert_eq!(parse(&PACKET_BYTES[..n], true).unwrap_err(), InvalidReason::IcmpErrorBadQuote, "len {n}");
        }
        for n in 40..72 {
            assert_eq!(parse(&PACKET_BYTES[..n], false).unwrap_err(), InvalidReason::Ipv6BadLength, "len {n}");
        }
        // Quoted: the chain must be complete, the upper layer need not be.
        for n in 40..64 {
            assert_eq!(parse(&PACKET_BYTES[..n], true).unwrap_err(), InvalidReason::IcmpErrorBadQuote, "len {n}");
        }
        for n in 64..72 {
            let ip = parse(&PACKET_BYTES[..n], true).unwrap();
            assert_eq!((ip.proto, ip.ip_len, ip.l4), (proto::UDP, 72, &PACKET_BYTES[64..n]));
        }
    }

    #[test]
    fn chain_cut_by_payload_length() {
        // The payload length ends the datagram inside the chain: the rest
        // of the buffer is padding and must not be read as headers.
        for plen in [0u16, 4, 8, 12, 16, 20] {
            let mut p = PACKET_BYTES;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            let err = if plen == 0 { InvalidReason::Ipv6BadLength } else { InvalidReason::Ipv6BadExtHeader };
            assert_eq!(parse(&p, false).unwrap_err(), err, "plen {plen}");
        }
        let mut p = PACKET_BYTES;
        p[4..6].copy_from_slice(&24u16.to_be_bytes());
        assert_eq!(parse(&p, false).unwrap().l4, &[] as &[u8]);
    }

    #[test]
    fn plain_and_padded() {
        let mut p = packet(proto::TCP, &[], &[1; 20]);
        p.extend_from_slice(&[0xee; 6]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.ip_len, ip.l4), (proto::TCP, 60, &[1u8; 20][..]));
    }

    #[test]
    fn zero_payload_length() {
        // An empty payload is fine (ip6_rcv_core trims to 40 bytes)...
        let mut p = packet(next::NO_NEXT, &[], &[]);
        p.extend_from_slice(&[0; 8]); // link padding
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.ip_len, ip.l4.len()), (next::NO_NEXT, 40, 0));
        let p = packet(proto::TCP, &[], &[]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.l4.len()), (proto::TCP, 0));
        // ... but before a Hop-by-Hop header it means a jumbogram.
        let mut p = packet(next::HOP_BY_HOP, &[], &[]);
        p.extend_from_slice(&[6, 0, 0xc2, 4, 0, 1, 0, 0]); // Jumbo Payload option
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadLength);
    }

    #[test]
    fn no_next_header() {
        let p = packet(next::NO_NEXT, &[], &[0xab; 3]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.l4), (next::NO_NEXT, &[0xab; 3][..]));
        // After an extension header too.
        let p = packet(next::DEST_OPTS, &[next::NO_NEXT, 0, 1, 4, 0, 0, 0, 0], &[]);
        assert_eq!(parse(&p, false).unwrap().proto, next::NO_NEXT);
    }

    #[test]
    fn fragments() {
        // First fragment: offset 0, M set; the walk goes on to the L4 header.
        let p = packet(next::FRAGMENT, &[58, 0, 0x00, 0x01, 0, 0, 0, 7], &[128, 0, 0, 0, 0, 0, 0, 0]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.fragment, ip.l4.len()), (proto::ICMPV6, Fragment::First, 8));
        // Atomic fragment (offset 0, no M): not a fragment.
        let p = packet(next::FRAGMENT, &[17, 0, 0, 0, 0, 0, 0, 7], &[0; 8]);
        assert_eq!(parse(&p, false).unwrap().fragment, Fragment::None);
        // Non-first: the walk stops, the data is not read as headers.
        let p = packet(next::FRAGMENT, &[next::HOP_BY_HOP, 0, 0x00, 0x10, 0, 0, 0, 7], &[0xff; 3]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.fragment, ip.l4), (next::HOP_BY_HOP, Fragment::NonFirst, &[0xff; 3][..]));
        let p = packet(next::FRAGMENT, &[6, 0, 0xff, 0xf9, 0, 0, 0, 7], &[]);
        assert_eq!(parse(&p, false).unwrap().fragment, Fragment::NonFirst);
        // Reserved bits alone do not make a fragment.
        let p = packet(next::FRAGMENT, &[6, 0, 0x00, 0x06, 0, 0, 0, 7], &[]);
        assert_eq!(parse(&p, false).unwrap().fragment, Fragment::None);
    }

    #[test]
    fn routing_and_auth_lengths() {
        // Routing header, Hdr Ext Len 2 -> 24 bytes.
        let mut rh = vec![next::AUTH, 2, 0, 0, 0, 0, 0, 0];
        rh.extend_from_slice(&[0; 16]);
        // AH, Payload Len 4 -> (4 + 2) * 4 = 24 bytes.
        let mut ah = vec![proto::TCP, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0; 12]);
        let ext = [rh.clone(), ah.clone()].concat();
        let p = packet(next::ROUTING, &ext, &[9; 20]);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.l4), (proto::TCP, &[9u8; 20][..]));
        // AH length running past the end.
        let mut bad = ext.clone();
        bad[25] = 10;
        let p = packet(next::ROUTING, &bad, &[9; 20]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadExtHeader);
        // Header shorter than 8 bytes at the end.
        let p = packet(next::ROUTING, &rh[..6], &[]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadExtHeader);
    }

    #[test]
    fn chain_length_bound() {
        let hbh = |n: usize| -> Vec<u8> { (0..n).flat_map(|_| [next::DEST_OPTS, 0, 1, 4, 0, 0, 0, 0]).collect() };
        let mut ext = hbh(MAX_EXT_HEADERS);
        let last = ext.len() - 8;
        ext[last] = proto::UDP;
        let p = packet(next::DEST_OPTS, &ext, &[0; 8]);
        assert_eq!(parse(&p, false).unwrap().proto, proto::UDP);
        let mut ext = hbh(MAX_EXT_HEADERS + 1);
        let last = ext.len() - 8;
        ext[last] = proto::UDP;
        let p = packet(next::DEST_OPTS, &ext, &[0; 8]);
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6BadExtHeader);
    }

    #[test]
    fn bad_version() {
        let mut p = PACKET_BYTES;
        p[0] = 0x40;
        assert_eq!(parse(&p, false).unwrap_err(), InvalidReason::Ipv6Truncated);
    }

    /// Which extension headers to build, in RFC 8200 order.
    #[derive(Debug, Clone)]
    struct Exts {
        hbh: Option<usize>,
        dest: Option<usize>,
        routing: Option<usize>,
        frag: Option<(u16, bool)>,
        auth: Option<usize>,
        final_dest: Option<usize>,
    }

    fn exts() -> impl Strategy<Value = Exts> {
        let opt_len = || proptest::option::of(0usize..3);
        (
            opt_len(),
            opt_len(),
            opt_len(),
            proptest::option::of((prop_oneof![Just(0u16), 1u16..0x2000], any::<bool>())),
            proptest::option::of(0usize..3),
            opt_len(),
        )
            .prop_map(|(hbh, dest, routing, frag, auth, final_dest)| Exts {
                hbh,
                dest,
                // Final destination options only come with a routing header.
                final_dest: final_dest.filter(|_| routing.is_some()),
                routing,
                frag,
                auth,
            })
    }

    proptest! {
        /// Chains written by etherparse (the oracle) walk to the upper layer.
        #[test]
        fn matches_etherparse(
            e in exts(),
            upper in prop_oneof![Just(6u8), Just(17), Just(58), Just(59), Just(132), Just(47)],
            flow in 0u32..0x10_0000,
            hop in any::<u8>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..48),
            padding in 0usize..8,
        ) {
            use etherparse::{IpNumber, Ipv6RawExtHeader};
            let raw = |units: usize| Ipv6RawExtHeader::new_raw(IpNumber(0), &vec![0x01; 6 + 8 * units]).unwrap();
            let mut x = etherparse::Ipv6Extensions {
                hop_by_hop_options: e.hbh.map(raw),
                destination_options: e.dest.map(raw),
                routing: e.routing.map(|u| etherparse::Ipv6RoutingExtensions {
                    routing: raw(u),
                    final_destination_options: e.final_dest.map(raw),
                }),
                fragment: e.frag.map(|(off, more)| etherparse::Ipv6FragmentHeader::new(
                    IpNumber(0), etherparse::IpFragOffset::try_new(off).unwrap(), more, 77)),
                auth: e.auth.map(|w| etherparse::IpAuthHeader::new(IpNumber(0), 1, 2, &vec![0xaa; 4 * w]).unwrap()),
            };
            let first = x.set_next_headers(IpNumber(upper));
            let h = etherparse::Ipv6Header {
                traffic_class: 0,
                flow_label: etherparse::Ipv6FlowLabel::try_new(flow).unwrap(),
                payload_length: (x.header_len() + payload.len()) as u16,
                next_header: first,
                hop_limit: hop,
                source: src,
                destination: dst,
            };
            let mut bytes = Vec::new();
            h.write(&mut bytes).unwrap();
            x.write(&mut bytes, first).unwrap();
            if let Some((off, more)) = e.frag {
                // etherparse 0.16 writes the M flag as bit 0x80 of byte 3
                // and the offset one bit short (fixed in later versions);
                // write RFC 8200 § 4.5's layout: offset << 3 | M.
                let at = 40 + [e.hbh, e.dest, e.routing].iter().flatten().map(|u| 8 + 8 * u).sum::<usize>();
                bytes[at + 2..at + 4].copy_from_slice(&(off << 3 | u16::from(more)).to_be_bytes());
            }
            bytes.extend_from_slice(&payload);
            bytes.extend(core::iter::repeat_n(0u8, padding));

            let r = parse(&bytes, false);
            if h.payload_length == 0 && first.0 == next::HOP_BY_HOP {
                prop_assert_eq!(r.unwrap_err(), InvalidReason::Ipv6BadLength);
                return Ok(());
            }
            let ip = r.unwrap();
            prop_assert_eq!((ip.src, ip.dst), (Addr::v6(src), Addr::v6(dst)));
            prop_assert_eq!((ip.ttl, ip.ident), (hop, flow));
            prop_assert_eq!(ip.ip_len as usize, 40 + x.header_len() + payload.len());
            let non_first = e.frag.is_some_and(|(off, _)| off != 0);
            if non_first {
                prop_assert_eq!(ip.fragment, Fragment::NonFirst);
                // Everything after the fragment header is fragment data.
                let after = x.auth.as_ref().map_or(0, |a| a.header_len())
                    + e.final_dest.map_or(0, |u| 8 + 8 * u);
                prop_assert_eq!(ip.l4.len(), after + payload.len());
            } else {
                prop_assert_eq!(ip.proto, upper);
                prop_assert_eq!(ip.l4, &payload[..]);
                let first_frag = e.frag.is_some_and(|(_, more)| more);
                prop_assert_eq!(ip.fragment, if first_frag { Fragment::First } else { Fragment::None });
            }
            // Quoted, cut anywhere after the chain: same upper layer.
            let quoted = parse(&bytes[..bytes.len() - padding - payload.len() / 2], true).unwrap();
            prop_assert_eq!(quoted.proto, ip.proto);
        }
    }
}
