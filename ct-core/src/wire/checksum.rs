//! Internet checksum ([RFC 1071]) and incremental update ([RFC 1624]).
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624

use super::IpPacket;
use crate::tuple::{proto, L3};

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last
/// byte padded with zero), added to `initial`, folded to 16 bits.
pub fn ones_complement_sum(data: &[u8], initial: u32) -> u16 {
    let mut acc: u64 = u64::from(initial);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Add the two 32-bit halves; a u64 accumulator cannot overflow for
        // any IP datagram.
        acc += (w >> 32) + (w & 0xffff_ffff);
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_be_bytes([p[0], p[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sum of the pseudo-header for TCP/UDP/ICMPv6 ([RFC 9293 § 3.1],
/// [RFC 8200 § 8.1]).
///
/// [RFC 9293 § 3.1]: https://www.rfc-editor.org/rfc/rfc9293#section-3.1
/// [RFC 8200 § 8.1]: https://www.rfc-editor.org/rfc/rfc8200#section-8.1
fn pseudo_header(ip: &IpPacket<'_>, len: usize) -> u32 {
    let addr_len = match ip.l3 {
        L3::V4 => 4,
        L3::V6 => 16,
    };
    let s = u32::from(ones_complement_sum(&ip.src.0[..addr_len], 0));
    let d = u32::from(ones_complement_sum(&ip.dst.0[..addr_len], 0));
    let len = len as u64;
    s + d + u32::from(ip.proto) + ((len >> 16) as u32) + ((len & 0xffff) as u32)
}

/// Verify the L4 checksum over `ip.l4`: TCP, UDP, UDP-Lite-as-UDP,
/// ICMPv6 with the pseudo-header, ICMPv4 without. A zero UDP checksum
/// means "none" and is valid for IPv4 and IPv6 alike (the kernel accepts
/// it). Other protocols have nothing to verify.
pub fn l4_ok(ip: &IpPacket<'_>) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    let data = ip.l4;
    let sum = match (ip.proto, ip.l3) {
        (proto::TCP, _) | (proto::ICMPV6, L3::V6) => ones_complement_sum(data, pseudo_header(ip, data.len())),
        (proto::UDP, _) => {
            if data.get(6..8) == Some(&[0, 0]) {
                return true;
            }
            ones_complement_sum(data, pseudo_header(ip, data.len()))
        }
        (proto::ICMP, L3::V4) => ones_complement_sum(data, 0),
        _ => return true,
    };
    sum == 0xffff
}

/// Verify an IPv4 header checksum.
pub fn ipv4_header_ok(hdr: &[u8]) -> bool {
    cfg!(fuzzing) || ones_complement_sum(hdr, 0) == 0xffff
}

/// The checksum field value for `data` (the complement of the sum).
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !ones_complement_sum(data, initial)
}

/// Incremental update when one 16-bit word changes (RFC 1624 eqn. 3:
/// `HC' = ~(~HC + ~m + m')`).
pub fn update16(old_csum: u16, old_word: u16, new_word: u16) -> u16 {
    let sum = u32::from(!old_csum) + u32::from(!old_word) + u32::from(new_word);
    let folded = (sum & 0xffff) + (sum >> 16);
    !(((folded & 0xffff) + (folded >> 16)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 § 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0), 0xddf2);
        assert_eq!(ones_complement_sum(&[0x01], 0), 0x0100);
        assert_eq!(ones_complement_sum(&[], 0x1_0001), 0x0002);
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let data: Vec<u8> = (0..1501u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in [0, 1, 2, 7, 8, 9, 15, 16, 17, 1500, 1501] {
            let slow = data[..n]
                .chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
                .fold(0u32, |a, w| {
                    let s = a + w;
                    (s & 0xffff) + (s >> 16)
                });
            assert_eq!(ones_complement_sum(&data[..n], 0), slow as u16, "len {n}");
        }
    }

    #[test]
    fn ipv4_header_checksum() {
        let mut h = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        let c = checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(ipv4_header_ok(&h));
        h[8] = 63;
        assert!(!ipv4_header_ok(&h));
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        let c = checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        // Decrement the TTL (word 4: ttl|proto).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let inc = update16(c, old, new);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&h, 0));
    }
}
