//! IPv4 header view ([RFC 791 § 3.1]), options included.
//!
//! The checks and their order follow the kernel's `ip_rcv_core()`, which
//! runs before the conntrack hook: header present, version and IHL, header
//! within the packet, header checksum, then the total length (at least the
//! header, at most the packet; link padding beyond it is trimmed, as
//! `pskb_trim_rcsum` does). The option list is checked for well-formed
//! lengths as `ip_options_compile()` does.
//!
//! A packet quoted inside an ICMP error is read like the kernel's
//! `ipv4_get_l4proto()` reads it: the header must be complete, its checksum
//! and options are not looked at, and the datagram may be cut short.
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

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = field::HEADER_LEN;
/// Length of the longest IPv4 header (IHL 15).
pub const MAX_HEADER_LEN: usize = 60;

/// Flags and fragment offset word.
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// Option kinds with no length byte.
mod opt {
    pub(super) const EOL: u8 = 0;
    pub(super) const NOP: u8 = 1;
}

/// Read a big-endian u16 at `r`; callers have checked the length.
fn be16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Check the option list as `ip_options_compile()` walks it: EOL ends the
/// list (whatever follows is ignored), NOP is one byte, every other option
/// has a length byte of at least 2 that keeps it inside the header.
fn options_ok(mut opts: &[u8]) -> bool {
    while let Some((&kind, rest)) = opts.split_first() {
        match kind {
            opt::EOL => return true,
            opt::NOP => opts = rest,
            _ => {
                //= https://www.rfc-editor.org/rfc/rfc791#section-3.1
                //# The option-length octet counts the option-type octet and the
                //# option-length octet as well as the option-data octets.
                let Some(&len) = rest.first() else { return false };
                match opts.get(usize::from(len)..) {
                    Some(tail) if len >= 2 => opts = tail,
                    _ => return false,
                }
            }
        }
    }
    true
}

/// Parse an IPv4 packet and locate its L4 header.
///
/// `quoted`: the packet sits inside an ICMP error. Then every failure is
/// [`InvalidReason::IcmpErrorBadQuote`] except a bad IHL, the checksum and
/// options are not checked, and the total length may exceed the bytes
/// present; `l4` is what is there, up to the total length.
pub(super) fn parse(b: &[u8], quoted: bool) -> Result<IpPacket<'_>, InvalidReason> {
    let (truncated, bad_len) = if quoted {
        (InvalidReason::IcmpErrorBadQuote, InvalidReason::IcmpErrorBadQuote)
    } else {
        (InvalidReason::Ipv4Truncated, InvalidReason::Ipv4BadLength)
    };
    if b.len() < field::HEADER_LEN {
        return Err(truncated);
    }
    if b[field::VER_IHL] >> 4 != 4 {
        return Err(InvalidReason::Ipv4BadVersion);
    }
    let hlen = usize::from(b[field::VER_IHL] & 0x0f) * 4;
    if hlen < field::HEADER_LEN {
        return Err(InvalidReason::Ipv4BadIhl);
    }
    let Some(header) = b.get(..hlen) else {
        return Err(truncated);
    };
    if !quoted && !checksum::ipv4_header_ok(header) {
        return Err(InvalidReason::Ipv4BadChecksum);
    }
    let total = usize::from(be16(b, field::LENGTH));
    if total < hlen || (!quoted && total > b.len()) {
        return Err(bad_len);
    }
    if !quoted && !options_ok(&header[field::HEADER_LEN..]) {
        return Err(InvalidReason::Ipv4BadOptions);
    }
    let flg_off = be16(b, field::FLG_OFF);
    let fragment = match (flg_off & OFFSET_MASK, flg_off & FLAG_MF != 0) {
        (0, false) => Fragment::None,
        (0, true) => Fragment::First,
        _ => Fragment::NonFirst,
    };
    // Link padding beyond the total length is not part of the datagram.
    let l4 = b.get(hlen..total.min(b.len())).unwrap_or_default();
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
        ip_len: u32::from(be16(b, field::LENGTH)),
        fragment,
        l4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::proto;
    use proptest::prelude::*;

    // 10.0.1.2 -> 10.0.2.2, UDP, id 0x1234, DF, TTL 64, valid checksum;
    // UDP 40000 -> 53, length 8.
    static PACKET_BYTES: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x11, 0x9a, 0x0a, 0x00, 0x01, 0x02, 0x0a, 0x00,
        0x02, 0x02, 0x9c, 0x40, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00,
    ];

    // 10.0.1.2 -> 10.0.2.2, TCP, id 1, MF, IHL 6 with NOP NOP NOP EOL; 8
    // bytes of payload.
    static OPTIONS_BYTES: [u8; 32] = [
        0x46, 0x00, 0x00, 0x20, 0x00, 0x01, 0x20, 0x00, 0x40, 0x06, 0x40, 0xd3, 0x0a, 0x00, 0x01, 0x02, 0x0a, 0x00,
        0x02, 0x02, 0x01, 0x01, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// Recompute the header checksum after a test edited the header.
    fn fix_checksum(p: &mut [u8]) {
        let hlen = usize::from(p[0] & 0x0f) * 4;
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&p[..hlen], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn parse_basic() {
        let ip = parse(&PACKET_BYTES, false).unwrap();
        assert_eq!((ip.l3, ip.proto, ip.ttl, ip.ident, ip.ip_len), (L3::V4, proto::UDP, 64, 0x1234, 28));
        assert_eq!((ip.src, ip.dst), (Addr::v4([10, 0, 1, 2]), Addr::v4([10, 0, 2, 2])));
        assert_eq!(ip.fragment, Fragment::None);
        assert_eq!(ip.l4, &PACKET_BYTES[20..]);
    }

    #[test]
    fn strips_link_padding() {
        let mut p = PACKET_BYTES.to_vec();
        p.extend_from_slice(&[0xee; 18]); // Ethernet minimum-frame padding
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.ip_len, ip.l4), (28, &PACKET_BYTES[20..]));
    }

    #[test]
    fn truncated_variants() {
        for n in 0..20 {
            assert_eq!(parse(&PACKET_BYTES[..n], false).unwrap_err(), InvalidReason::Ipv4Truncated, "len {n}");
            assert_eq!(parse(&PACKET_BYTES[..n], true).unwrap_err(), InvalidReason::IcmpErrorBadQuote, "len {n}");
        }
        for n in 20..28 {
            assert_eq!(parse(&PACKET_BYTES[..n], false).unwrap_err(), InvalidReason::Ipv4BadLength, "len {n}");
            // Quoted: the header is enough, l4 is what is there.
            assert_eq!(parse(&PACKET_BYTES[..n], true).unwrap().l4, &PACKET_BYTES[20..n]);
        }
        // IHL 6 but only 20 header bytes present.
        for n in 20..24 {
            assert_eq!(parse(&OPTIONS_BYTES[..n], false).unwrap_err(), InvalidReason::Ipv4Truncated, "len {n}");
            assert_eq!(parse(&OPTIONS_BYTES[..n], true).unwrap_err(), InvalidReason::IcmpErrorBadQuote, "len {n}");
        }
    }

    #[test]
    fn header_errors() {
        let mut q = PACKET_BYTES;
        q[0] = 0x44;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadIhl);
        assert_eq!(parse(&q, true).unwrap_err(), InvalidReason::Ipv4BadIhl);
        q[0] = 0x55;
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadVersion);
        // Total length beyond the packet, or below the header.
        for len in [29u16, 19, 0, 0xffff] {
            let mut q = PACKET_BYTES;
            q[2..4].copy_from_slice(&len.to_be_bytes());
            fix_checksum(&mut q);
            assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadLength, "total {len}");
        }
        // Quoted: a total length beyond the quote is expected, below the
        // header is not.
        let mut q = PACKET_BYTES;
        q[2..4].copy_from_slice(&1500u16.to_be_bytes());
        let ip = parse(&q, true).unwrap();
        assert_eq!((ip.ip_len, ip.l4.len()), (1500, 8));
        q[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(parse(&q, true).unwrap_err(), InvalidReason::IcmpErrorBadQuote);
    }

    #[test]
    fn checksum_checked_before_length() {
        let mut q = PACKET_BYTES;
        q[8] = 1; // TTL changed, checksum now wrong
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadChecksum);
        q[2..4].copy_from_slice(&99u16.to_be_bytes());
        assert_eq!(parse(&q, false).unwrap_err(), InvalidReason::Ipv4BadChecksum, "ip_rcv_core order");
        // Quoted: not verified.
        q[2..4].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(parse(&q, true).unwrap().ttl, 1);
    }

    #[test]
    fn options_and_fragments() {
        let ip = parse(&OPTIONS_BYTES, false).unwrap();
        assert_eq!((ip.proto, ip.l4.len(), ip.fragment), (proto::TCP, 8, Fragment::First));
        // Option lists: (bytes, valid).
        let cases: &[(&[u8], bool)] = &[
            (&[1, 1, 1, 0], true),
            (&[0, 0xff, 0xff, 0xff], true), // EOL: the rest is ignored
            (&[7, 4, 0, 0], true),          // record route, exactly 4 bytes
            (&[1, 7, 3, 0], true),          // NOP, 3-byte option
            (&[7, 9, 0, 0], false),         // length past the header
            (&[7, 1, 0, 0], false),         // length below 2
            (&[7, 0, 0, 0], false),         // length 0 would loop forever
            (&[1, 1, 1, 7], false),         // no room for the length byte
            (&[0x94, 4, 0, 0], true),       // router alert
        ];
        for (opts, ok) in cases {
            let mut q = OPTIONS_BYTES;
            q[20..24].copy_from_slice(opts);
            fix_checksum(&mut q);
            let r = parse(&q, false);
            if *ok {
                assert!(r.is_ok(), "{opts:?}");
            } else {
                assert_eq!(r.unwrap_err(), InvalidReason::Ipv4BadOptions, "{opts:?}");
                // The kernel's ipv4_get_l4proto does not look at options.
                assert!(parse(&q, true).is_ok(), "quoted {opts:?}");
            }
        }
        // Fragment offset words: (flags|offset, fragment).
        for (w, f) in [
            (0x0000u16, Fragment::None),
            (0x4000, Fragment::None),
            (0x2000, Fragment::First),
            (0x0001, Fragment::NonFirst),
            (0x2003, Fragment::NonFirst),
            (0x1fff, Fragment::NonFirst),
        ] {
            let mut q = OPTIONS_BYTES;
            q[6..8].copy_from_slice(&w.to_be_bytes());
            fix_checksum(&mut q);
            assert_eq!(parse(&q, false).unwrap().fragment, f, "{w:#06x}");
        }
    }

    #[test]
    fn longest_header() {
        let mut p = vec![0x4f, 0, 0, 64, 0, 1, 0, 0, 64, 47, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        p.extend_from_slice(&[1; 40]); // 40 NOPs
        p.extend_from_slice(&[0, 0, 8, 0]); // GRE
        fix_checksum(&mut p);
        let ip = parse(&p, false).unwrap();
        assert_eq!((ip.proto, ip.l4, ip.ip_len), (47, &[0, 0, 8, 0][..], 64));
        assert_eq!(parse(&p[..59], false).unwrap_err(), InvalidReason::Ipv4Truncated);
    }

    /// An option list of well-formed options, EOL, zero padding to 4n.
    fn option_list() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec((2u8..=255, 0usize..6), 0..5).prop_map(|opts| {
            let mut v = Vec::new();
            for (kind, data_len) in opts {
                if v.len() + 2 + data_len > 39 {
                    break;
                }
                if kind == 2 {
                    v.push(opt::NOP);
                    continue;
                }
                v.push(kind);
                v.push(2 + data_len as u8);
                v.extend(core::iter::repeat_n(kind, data_len));
            }
            if v.len() % 4 != 0 {
                v.push(opt::EOL);
            }
            while v.len() % 4 != 0 {
                v.push(0);
            }
            v
        })
    }

    proptest! {
        /// Headers written by etherparse (the oracle) parse to the fields
        /// they were built with.
        #[test]
        fn matches_etherparse(
            ident in any::<u16>(),
            df in any::<bool>(),
            mf in any::<bool>(),
            frag in prop_oneof![Just(0u16), 1u16..0x2000],
            ttl in any::<u8>(),
            protocol in any::<u8>(),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            options in option_list(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            padding in 0usize..20,
        ) {
            let mut h = etherparse::Ipv4Header::new(
                payload.len() as u16, ttl, etherparse::IpNumber(protocol), src, dst).unwrap();
            h.identification = ident;
            h.dont_fragment = df;
            h.more_fragments = mf;
            h.fragment_offset = etherparse::IpFragOffset::try_new(frag).unwrap();
            h.options = etherparse::Ipv4Options::try_from(&options[..]).unwrap();
            h.set_payload_len(payload.len()).unwrap();
            h.header_checksum = h.calc_header_checksum();
            let mut bytes = h.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            bytes.extend(core::iter::repeat_n(0xa5, padding));

            let ip = parse(&bytes, false).unwrap();
            prop_assert_eq!((ip.src, ip.dst), (Addr::v4(src), Addr::v4(dst)));
            prop_assert_eq!((ip.proto, ip.ttl, ip.ident), (protocol, ttl, u32::from(ident)));
            prop_assert_eq!(ip.ip_len as usize, h.header_len() + payload.len());
            prop_assert_eq!(ip.l4, &payload[..]);
            let expect = match (frag, mf) {
                (0, false) => Fragment::None,
                (0, true) => Fragment::First,
                _ => Fragment::NonFirst,
            };
            prop_assert_eq!(ip.fragment, expect);
            prop_assert_eq!(h.is_fragmenting_payload(), expect != Fragment::None);
            let quoted = parse(&bytes, true).unwrap();
            prop_assert_eq!(quoted.l4, ip.l4);
        }

        /// Any one flipped header byte is caught (checksum, version, IHL or
        /// length) or leaves a consistent view.
        #[test]
        fn corrupted_header_never_panics(at in 0usize..20, x in 1u8..=255) {
            let mut q = PACKET_BYTES;
            q[at] ^= x;
            prop_assert!(parse(&q, false).is_err());
            if let Ok(ip) = parse(&q, true) {
                prop_assert!(ip.l4.len() <= 8);
            }
        }
    }
}
