//! ICMP ([RFC 792]) and ICMPv6 ([RFC 4443 § 2.1]) header view: both share
//! the layout type, code, checksum, four bytes of rest-of-header, body.
//!
//! [RFC 792]: https://www.rfc-editor.org/rfc/rfc792
//! [RFC 4443 § 2.1]: https://www.rfc-editor.org/rfc/rfc4443#section-2.1

use crate::invalid::InvalidReason;

/// ICMP header length (with the rest-of-header word).
pub const HEADER_LEN: usize = 8;

/// ICMPv4 message types ([RFC 792], [RFC 950]).
///
/// [RFC 792]: https://www.rfc-editor.org/rfc/rfc792
/// [RFC 950]: https://www.rfc-editor.org/rfc/rfc950
pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACH: u8 = 3;
    pub const SOURCE_QUENCH: u8 = 4;
    pub const REDIRECT: u8 = 5;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAMETER_PROBLEM: u8 = 12;
    pub const TIMESTAMP: u8 = 13;
    pub const TIMESTAMP_REPLY: u8 = 14;
    pub const INFO_REQUEST: u8 = 15;
    pub const INFO_REPLY: u8 = 16;
    pub const ADDRESS_MASK: u8 = 17;
    pub const ADDRESS_MASK_REPLY: u8 = 18;
}

/// ICMPv6 message types ([RFC 4443], [RFC 4861]).
///
/// [RFC 4443]: https://www.rfc-editor.org/rfc/rfc4443
/// [RFC 4861]: https://www.rfc-editor.org/rfc/rfc4861
pub mod v6 {
    pub const DEST_UNREACH: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Whether an ICMPv4 type is an error that quotes the offending datagram:
/// the kernel's `icmp_is_err()` (destination unreachable, source quench,
/// redirect, time exceeded, parameter problem).
pub const fn is_v4_error(ty: u8) -> bool {
    matches!(ty, v4::DEST_UNREACH | v4::SOURCE_QUENCH | v4::REDIRECT | v4::TIME_EXCEEDED | v4::PARAMETER_PROBLEM)
}

/// Whether an ICMPv6 type is an error message (the kernel's `icmpv6_error`
/// correlates every type below 128).
pub const fn is_v6_error(ty: u8) -> bool {
    //= https://www.rfc-editor.org/rfc/rfc4443#section-2.1
    //# Error messages are identified as such by a zero in the high-order bit
    //# of their message Type field values.
    ty < 128
}

/// A checked ICMP or ICMPv6 message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IcmpMsg<'a> {
    pub ty: u8,
    pub code: u8,
    pub checksum: u16,
    /// Bytes 4..6: the echo/timestamp/info identifier.
    pub ident: u16,
    pub rest_of_header: [u8; 4],
    /// After the 8-byte header: for errors, the quoted packet.
    pub body: &'a [u8],
}

impl<'a> IcmpMsg<'a> {
    pub fn parse(l4: &'a [u8]) -> Result<IcmpMsg<'a>, InvalidReason> {
        match l4 {
            [ty, code, c0, c1, r0, r1, r2, r3, body @ ..] => Ok(IcmpMsg {
                ty: *ty,
                code: *code,
                checksum: u16::from_be_bytes([*c0, *c1]),
                ident: u16::from_be_bytes([*r0, *r1]),
                rest_of_header: [*r0, *r1, *r2, *r3],
                body,
            }),
            _ => Err(InvalidReason::IcmpTruncated),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Echo request, id 77, seq 1, "pi" (checksum 0x8748).
    static ECHO_BYTES: [u8; 10] = [8, 0, 0x87, 0x48, 0, 77, 0, 1, b'p', b'i'];

    // Port unreachable quoting 10.0.1.2:40000 -> 10.0.2.2:53 (IP header and
    // the first 8 bytes of UDP).
    static UNREACH_BYTES: [u8; 36] = [
        0x03, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // type 3 code 3, unused
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x11, 0x9a, 0x0a, 0x00, 0x01, 0x02, 0x0a, 0x00,
        0x02, 0x02, // quoted IPv4 header
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // quoted UDP header
    ];

    #[test]
    fn echo() {
        let e = IcmpMsg::parse(&ECHO_BYTES).unwrap();
        assert_eq!((e.ty, e.code, e.checksum, e.ident, e.body), (8, 0, 0x8748, 77, &b"pi"[..]));
        assert_eq!(e.rest_of_header, [0, 77, 0, 1]);
        assert!(!is_v4_error(e.ty));
    }

    #[test]
    fn error_with_quote() {
        let m = IcmpMsg::parse(&UNREACH_BYTES).unwrap();
        assert_eq!((m.ty, m.code, m.body.len()), (v4::DEST_UNREACH, 3, 28));
        assert!(is_v4_error(m.ty));
        let inner = crate::wire::parse_quoted_ip(m.body).unwrap();
        assert_eq!((inner.proto, inner.ip_len, inner.l4.len()), (17, 28, 8));
        let udp = crate::wire::udp::UdpDgram::parse_quoted(inner.l4).unwrap();
        assert_eq!((udp.sport, udp.dport), (40000, 53));
    }

    #[test]
    fn truncated_variants() {
        for n in 0..HEADER_LEN {
            assert_eq!(IcmpMsg::parse(&ECHO_BYTES[..n]).unwrap_err(), InvalidReason::IcmpTruncated, "len {n}");
        }
        let m = IcmpMsg::parse(&ECHO_BYTES[..8]).unwrap();
        assert!(m.body.is_empty());
        assert_eq!(m.ident, 77);
    }

    #[test]
    fn error_types() {
        let v4: Vec<u8> = (0..=255).filter(|&t| is_v4_error(t)).collect();
        assert_eq!(v4, [3, 4, 5, 11, 12]);
        assert!((0..128).all(is_v6_error));
        assert!((128..=255).all(|t| !is_v6_error(t)));
        assert!(!is_v6_error(v6::ECHO_REQUEST) && is_v6_error(v6::PACKET_TOO_BIG));
    }
}
