//! ICMP ([RFC 792]) and ICMPv6 ([RFC 4443 § 2.1]) header view: both share
//! the layout type, code, checksum, four bytes of rest-of-header, body.
//!
//! [RFC 792]: https://www.rfc-editor.org/rfc/rfc792
//! [RFC 4443 § 2.1]: https://www.rfc-editor.org/rfc/rfc4443#section-2.1

use crate::invalid::InvalidReason;

/// ICMP header length (with the rest-of-header word).
pub const HEADER_LEN: usize = 8;

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

    #[test]
    fn echo_and_truncation() {
        let m = [8, 0, 0xf7, 0xff, 0, 77, 0, 1, b'p', b'i'];
        let e = IcmpMsg::parse(&m).unwrap();
        assert_eq!((e.ty, e.code, e.ident, e.body), (8, 0, 77, &b"pi"[..]));
        assert_eq!(e.rest_of_header, [0, 77, 0, 1]);
        assert_eq!(IcmpMsg::parse(&m[..7]).unwrap_err(), InvalidReason::IcmpTruncated);
        assert!(IcmpMsg::parse(&m[..8]).unwrap().body.is_empty());
    }
}
