//! Internet checksum ([RFC 1071]) and incremental update ([RFC 1624]).
//!
//! [`l4_ok`] checks the L4 checksum the way the kernel's `nf_checksum()`
//! does when `nf_conntrack_checksum=1`: over every byte from the L4 header to
//! the end of the IP payload, with the pseudo-header length taken from that
//! span (not from the UDP length field), and with the addresses as they
//! appear in the IP header (for IPv6 the kernel does not look for a final
//! destination in a routing header, and neither do we).
//!
//! [RFC 1071]: https://www.rfc-editor.org/rfc/rfc1071
//! [RFC 1624]: https://www.rfc-editor.org/rfc/rfc1624

use super::IpPacket;
use crate::tuple::{proto, L3};

/// Bytes summed between two folds of the wide accumulators; keeps the sum
/// exact for inputs of any length.
const SUPERBLOCK: usize = 1 << 20;

#[inline(always)]
fn ne64(b: &[u8; 8]) -> u64 {
    u64::from_ne_bytes(*b)
}

/// `w` split into two 32-bit halves and added: `2^32 ≡ 1 (mod 0xffff)`,
/// so this keeps the one's-complement value.
#[inline(always)]
fn halves(w: u64) -> u64 {
    (w >> 32) + (w & 0xffff_ffff)
}

/// Fold a wide sum to 16 bits with end-around carries.
#[inline(always)]
fn fold(mut acc: u64) -> u16 {
    acc = halves(acc); // < 2^33
    acc = (acc & 0xffff) + (acc >> 16); // < 2^18
    acc = (acc & 0xffff) + (acc >> 16); // <= 0xffff + 3
    acc = (acc & 0xffff) + (acc >> 16); // <= 0xffff
    acc as u16
}

/// One's-complement sum of `data` read as *native-endian* 16-bit words
/// (at most [`SUPERBLOCK`] bytes), folded to 16 bits.
///
/// RFC 1071 § 2(B): the sum is byte-order independent, so summing
/// native-endian words and swapping the result once gives the big-endian
/// sum without swapping every word.
#[inline]
fn sum_native(data: &[u8]) -> u16 {
    // Four independent accumulators of 32-bit halves; each grows by less
    // than 2^33 per 32-byte block, so none can overflow within a superblock.
    let (mut a0, mut a1, mut a2, mut a3) = (0u64, 0u64, 0u64, 0u64);
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        if let (Some(w0), Some(w1), Some(w2), Some(w3)) =
            (b[0..8].first_chunk(), b[8..16].first_chunk(), b[16..24].first_chunk(), b[24..32].first_chunk())
        {
            a0 += halves(ne64(w0));
            a1 += halves(ne64(w1));
            a2 += halves(ne64(w2));
            a3 += halves(ne64(w3));
        }
    }
    let mut acc = (a0 + a1) + (a2 + a3);
    let mut rest = blocks.remainder();
    while let [a, b, c, d, tail @ ..] = rest {
        acc += u64::from(u32::from_ne_bytes([*a, *b, *c, *d]));
        rest = tail;
    }
    // An odd last byte is the high byte of a word padded with zero.
    acc += match rest {
        [a, b, c] => u64::from(u16::from_ne_bytes([*a, *b])) + u64::from(u16::from_ne_bytes([*c, 0])),
        [a, b] => u64::from(u16::from_ne_bytes([*a, *b])),
        [a] => u64::from(u16::from_ne_bytes([*a, 0])),
        _ => 0,
    };
    fold(acc)
}

/// One's-complement sum of `data` (big-endian 16-bit words, an odd last
/// byte padded with zero), added to `initial`, folded to 16 bits.
///
/// The result is 0 only when `data` and `initial` are all zero; a correct
/// checksum over data that includes its checksum field sums to `0xffff`.
pub fn ones_complement_sum(data: &[u8], initial: u32) -> u16 {
    let mut acc = u64::from(initial);
    // Every superblock but the last has an even length, so word alignment
    // carries over from one to the next.
    for part in data.chunks(SUPERBLOCK) {
        let native = sum_native(part);
        acc += u64::from(u16::from_be_bytes(native.to_ne_bytes()));
    }
    fold(acc)
}

/// Sum of the pseudo-header for TCP/UDP/ICMPv6 ([RFC 9293 § 3.1],
/// [RFC 8200 § 8.1]): source, destination, upper-layer length, protocol.
///
/// [RFC 9293 § 3.1]: https://www.rfc-editor.org/rfc/rfc9293#section-3.1
/// [RFC 8200 § 8.1]: https://www.rfc-editor.org/rfc/rfc8200#section-8.1
pub fn pseudo_header_sum(ip: &IpPacket<'_>, l4_len: usize) -> u32 {
    let addrs = match ip.l3 {
        L3::V4 => ones_complement_sum(&ip.src.0[..4], u32::from(ones_complement_sum(&ip.dst.0[..4], 0))),
        L3::V6 => ones_complement_sum(&ip.src.0, u32::from(ones_complement_sum(&ip.dst.0, 0))),
    };
    // IPv6 carries a 32-bit upper-layer length; both halves go in.
    let len = l4_len as u64;
    u32::from(addrs) + u32::from(ip.proto) + ((len >> 16) & 0xffff) as u32 + (len & 0xffff) as u32
}

/// Verify the L4 checksum over `ip.l4`.
///
/// * TCP and UDP (IPv4 and IPv6) and ICMPv6 (IPv6 only) with the
///   pseudo-header, whose length is `ip.l4.len()` (`skb->len - dataoff` in
///   `nf_ip_checksum` / `nf_ip6_checksum`).
/// * ICMP (IPv4 only) without a pseudo-header.
/// * A zero UDP checksum means "none" and is accepted for IPv4 and IPv6
///   alike, as the kernel's `udp_error()` does (RFC 8200 § 8.1 would make
///   it mandatory for IPv6; conntrack does not enforce that).
/// * Every other protocol (including ICMP over IPv6, ICMPv6 over IPv4 and
///   UDP-Lite, whose coverage rules live with its tracker) has nothing to
///   verify here: `true`.
///
/// Under `cfg(fuzzing)` this always returns `true` so the fuzzer can reach
/// the code behind it (as smoltcp's `verify_checksum` does).
pub fn l4_ok(ip: &IpPacket<'_>) -> bool {
    if cfg!(fuzzing) {
        return true;
    }
    let data = ip.l4;
    let sum = match (ip.proto, ip.l3) {
        (proto::TCP, _) | (proto::ICMPV6, L3::V6) => ones_complement_sum(data, pseudo_header_sum(ip, data.len())),
        (proto::UDP, _) => {
            //= https://www.rfc-editor.org/rfc/rfc768
            //# If the computed checksum is zero, it is transmitted as all ones
            //# (the equivalent in one's complement arithmetic).  An all zero
            //# transmitted checksum value means that the transmitter generated
            //# no checksum
            if data.get(6..8) == Some(&[0, 0]) {
                return true;
            }
            ones_complement_sum(data, pseudo_header_sum(ip, data.len()))
        }
        (proto::ICMP, L3::V4) => ones_complement_sum(data, 0),
        _ => return true,
    };
    sum == 0xffff
}

/// Verify an IPv4 header checksum over `hdr` (the whole header, options
/// included). Always `true` under `cfg(fuzzing)`.
pub fn ipv4_header_ok(hdr: &[u8]) -> bool {
    cfg!(fuzzing) || ones_complement_sum(hdr, 0) == 0xffff
}

/// The checksum field value for `data` (with its checksum field zeroed)
/// plus `initial` (e.g. [`pseudo_header_sum`]): the complement of the sum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    !ones_complement_sum(data, initial)
}

/// Incremental update of a checksum field when one 16-bit word of the
/// covered data changes from `old_word` to `new_word` ([RFC 1624 § 3],
/// eqn. 3: `HC' = ~(~HC + ~m + m')`), e.g. a TTL decrement or a port
/// rewrite.
///
/// [RFC 1624 § 3]: https://www.rfc-editor.org/rfc/rfc1624#section-3
pub fn update16(old_csum: u16, old_word: u16, new_word: u16) -> u16 {
    let sum = u64::from(!old_csum) + u64::from(!old_word) + u64::from(new_word);
    !fold(sum)
}

/// [`update16`] for a 32-bit field (an IPv4 address): both halves at once.
pub fn update32(old_csum: u16, old: u32, new: u32) -> u16 {
    let sum = u64::from(!old_csum) + halves(u64::from(!old)) + halves(u64::from(new));
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tuple::Addr;
    use crate::wire::Fragment;
    use proptest::prelude::*;

    /// Word-at-a-time reference sum, straight from RFC 1071 § 4.1.
    fn reference_sum(data: &[u8], initial: u32) -> u16 {
        let mut acc = u64::from(initial);
        for c in data.chunks(2) {
            acc += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 § 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0), 0xddf2);
        assert_eq!(ones_complement_sum(&[0x01], 0), 0x0100);
        assert_eq!(ones_complement_sum(&[], 0x1_0001), 0x0002);
        assert_eq!(ones_complement_sum(&[], 0), 0);
        assert_eq!(ones_complement_sum(&[0xff, 0xff], 0), 0xffff);
        assert_eq!(ones_complement_sum(&[0xff; 64], u32::MAX), 0xffff);
    }

    #[test]
    fn wide_and_narrow_sums_agree() {
        let data: Vec<u8> = (0..1601u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..4 {
            for n in (0..100).chain([575, 576, 577, 1500, 1501, 1597]) {
                let d = &data[start..start + n];
                assert_eq!(ones_complement_sum(d, 0), reference_sum(d, 0), "start {start} len {n}");
                assert_eq!(ones_complement_sum(d, 0x2_3456), reference_sum(d, 0x2_3456), "start {start} len {n}");
            }
        }
        // Saturated words cannot overflow the accumulators.
        let ones = vec![0xffu8; 70_001];
        assert_eq!(ones_complement_sum(&ones, u32::MAX), reference_sum(&ones, u32::MAX));
    }

    #[test]
    fn sum_across_superblocks() {
        let data: Vec<u8> = (0..SUPERBLOCK as u32 * 2 + 3).map(|i| (i * 13 + (i >> 9)) as u8).collect();
        assert_eq!(ones_complement_sum(&data, 0), reference_sum(&data, 0));
    }

    // 10.0.1.2 -> 10.0.2.2, TTL 64, ICMP, id 0x1234, DF, checksum filled in.
    static IPV4_HEADER: [u8; 20] = [0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 64, 1, 0x11, 0x72, 10, 0, 1, 2, 10, 0, 2, 2];

    #[test]
    fn ipv4_header_checksum() {
        assert!(ipv4_header_ok(&IPV4_HEADER));
        let mut h = IPV4_HEADER;
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(checksum(&h, 0), 0x1172);
        let mut h = IPV4_HEADER;
        h[8] = 63;
        assert!(!ipv4_header_ok(&h));
        assert!(!ipv4_header_ok(&[0; 20]), "all zero sums to 0, not 0xffff");
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut h = IPV4_HEADER;
        let c = u16::from_be_bytes([h[10], h[11]]);
        // Decrement the TTL (word 4: ttl|proto).
        let old = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new = u16::from_be_bytes([h[8], h[9]]);
        let inc = update16(c, old, new);
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&h, 0));
        // Rewrite the source address.
        h[10..12].copy_from_slice(&inc.to_be_bytes());
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        h[12..16].copy_from_slice(&[192, 168, 77, 1]);
        let inc = update32(inc, old, u32::from_be_bytes([192, 168, 77, 1]));
        h[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&h, 0));
    }

    fn ip<'a>(l3: L3, src: Addr, dst: Addr, proto: u8, l4: &'a [u8]) -> IpPacket<'a> {
        IpPacket { l3, src, dst, proto, ttl: 64, ident: 0, ip_len: 0, fragment: Fragment::None, l4 }
    }

    // UDP 5353 -> 53, "abcd", checksummed for 10.0.1.2 -> 10.0.2.2.
    static UDP4: [u8; 12] = [0x14, 0xe9, 0x00, 0x35, 0x00, 0x0c, 0x0e, 0xee, b'a', b'b', b'c', b'd'];
    // ICMP echo request id 77 seq 1 "pi".
    static ICMP4: [u8; 10] = [8, 0, 0x87, 0x48, 0, 77, 0, 1, b'p', b'i'];

    #[test]
    fn l4_checksums() {
        let (a, b) = (Addr::v4([10, 0, 1, 2]), Addr::v4([10, 0, 2, 2]));
        assert!(l4_ok(&ip(L3::V4, a, b, proto::UDP, &UDP4)));
        assert!(!l4_ok(&ip(L3::V4, b, Addr::v4([10, 0, 2, 3]), proto::UDP, &UDP4)));
        // Swapping source and destination keeps the sum.
        assert!(l4_ok(&ip(L3::V4, b, a, proto::UDP, &UDP4)));
        let mut u = UDP4;
        u[8] = b'x';
        assert!(!l4_ok(&ip(L3::V4, a, b, proto::UDP, &u)));
        // Zero means no checksum, for IPv4 and IPv6.
        u[6..8].copy_from_slice(&[0, 0]);
        assert!(l4_ok(&ip(L3::V4, a, b, proto::UDP, &u)));
        assert!(l4_ok(&ip(L3::V6, a, b, proto::UDP, &u)));
        // Trailing bytes beyond the UDP length are summed (the kernel
        // checksums to the end of the IP payload).
        let mut long = UDP4.to_vec();
        long.extend_from_slice(&[1, 2]);
        assert!(!l4_ok(&ip(L3::V4, a, b, proto::UDP, &long)));

        assert!(l4_ok(&ip(L3::V4, a, b, proto::ICMP, &ICMP4)));
        assert!(!l4_ok(&ip(L3::V4, a, b, proto::ICMP, &ICMP4[..9])));
        // ICMP has no pseudo-header: any addresses.
        assert!(l4_ok(&ip(L3::V4, Addr::default(), b, proto::ICMP, &ICMP4)));
        // Not checked: ICMP over IPv6, unknown protocols.
        assert!(l4_ok(&ip(L3::V6, a, b, proto::ICMP, &[0; 3])));
        assert!(l4_ok(&ip(L3::V4, a, b, 99, &[1, 2, 3])));
        // Empty TCP cannot be valid.
        assert!(!l4_ok(&ip(L3::V4, a, b, proto::TCP, &[])));
    }

    /// Frames built by etherparse (the oracle) carry valid checksums; one
    /// flipped L4 byte breaks them.
    #[test]
    fn etherparse_frames_verify() {
        use etherparse::PacketBuilder;
        let payload = b"hello, checksum";
        let mut frames = Vec::new();
        let v4 = || PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 0, 1, 2], [10, 0, 2, 2], 64);
        let v6 = || PacketBuilder::ethernet2([2; 6], [4; 6]).ipv6([0xfd; 16], [0xfe; 16], 64);
        let mut f = Vec::new();
        v4().udp(1000, 53).write(&mut f, payload).unwrap();
        frames.push((f, 6));
        let mut f = Vec::new();
        v4().tcp(40000, 80, 7, 4096).syn().write(&mut f, payload).unwrap();
        frames.push((f, 16));
        let mut f = Vec::new();
        v4().icmpv4_echo_request(9, 1).write(&mut f, payload).unwrap();
        frames.push((f, 2));
        let mut f = Vec::new();
        v6().udp(1000, 53).write(&mut f, payload).unwrap();
        frames.push((f, 6));
        let mut f = Vec::new();
        v6().tcp(40000, 80, 7, 4096).ack(99).write(&mut f, payload).unwrap();
        frames.push((f, 16));
        let mut f = Vec::new();
        v6().icmpv6_echo_request(9, 1).write(&mut f, payload).unwrap();
        frames.push((f, 2));
        for (f, csum_at) in frames {
            let fr = crate::wire::parse_frame(&f).unwrap();
            let p = crate::wire::parse_ip(fr.l3).unwrap();
            assert!(l4_ok(&p), "{p:?}");
            let l4_start = f.len() - p.l4.len();
            for i in 0..p.l4.len() {
                if p.proto == proto::UDP && (i == csum_at || i == csum_at + 1) {
                    continue;
                }
                let mut g = f.clone();
                g[l4_start + i] ^= 0x5a;
                let fr = crate::wire::parse_frame(&g).unwrap();
                let p = crate::wire::parse_ip(fr.l3).unwrap();
                assert!(!l4_ok(&p), "byte {i} of {p:?}");
            }
        }
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300), init in any::<u32>()) {
            prop_assert_eq!(ones_complement_sum(&data, init), reference_sum(&data, init));
        }

        #[test]
        fn update16_matches_recompute(mut data in proptest::collection::vec(any::<u8>(), 4..64), at in any::<usize>(), new in any::<u16>()) {
            // Word 0 holds the checksum, another word changes.
            let words = data.len() / 2;
            let at = 1 + at % (words - 1);
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data, 0);
            let old = u16::from_be_bytes([data[2 * at], data[2 * at + 1]]);
            data[2 * at..2 * at + 2].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update16(c, old, new), checksum(&data, 0));
        }

        #[test]
        fn update32_matches_recompute(mut data in proptest::collection::vec(any::<u8>(), 8..64), new in any::<u32>()) {
            data[0] = 0;
            data[1] = 0;
            let c = checksum(&data, 0);
            let old = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            data[4..8].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update32(c, old, new), checksum(&data, 0));
        }
    }
}
