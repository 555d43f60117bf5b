//! Tuples: the identity of a connection in one direction (K-TUP).
//!
//! A tuple is `{src addr, src l4, l3, dst addr, dst l4, l4 proto}`. The l4
//! fields are protocol specific: ports for TCP/UDP (and UDP-Lite, SCTP,
//! DCCP), the echo identifier and `type << 8 | code` for ICMP/ICMPv6, and zero
//! for every other protocol (the generic tracker: all traffic of one IP
//! protocol between two hosts is one connection).

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Layer-3 family.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum L3 {
    V4 = 2,
    V6 = 10,
}

impl L3 {
    /// The `AF_*` number the kernel prints (`ipv4 2`, `ipv6 10`).
    pub const fn number(self) -> u8 {
        self as u8
    }

    pub const fn name(self) -> &'static str {
        match self {
            L3::V4 => "ipv4",
            L3::V6 => "ipv6",
        }
    }
}

/// IP protocol numbers ct-core knows by name.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;
}

/// An IPv4 or IPv6 address, stored in 16 bytes (IPv4 in the first four).
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub [u8; 16]);

impl Addr {
    pub const fn v4(o: [u8; 4]) -> Addr {
        Addr([o[0], o[1], o[2], o[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    pub const fn v6(o: [u8; 16]) -> Addr {
        Addr(o)
    }

    pub fn from_ip(ip: IpAddr) -> (L3, Addr) {
        match ip {
            IpAddr::V4(a) => (L3::V4, Addr::v4(a.octets())),
            IpAddr::V6(a) => (L3::V6, Addr::v6(a.octets())),
        }
    }

    pub fn to_ip(self, l3: L3) -> IpAddr {
        match l3 {
            L3::V4 => IpAddr::V4(Ipv4Addr::new(self.0[0], self.0[1], self.0[2], self.0[3])),
            L3::V6 => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }

    pub fn v4_octets(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0[4..].iter().all(|&b| b == 0) {
            write!(f, "{}", Ipv4Addr::from(self.v4_octets()))
        } else {
            write!(f, "{}", Ipv6Addr::from(self.0))
        }
    }
}

/// Direction of a packet relative to its connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    /// Same direction as the packet that created the entry.
    Original = 0,
    /// The other direction.
    Reply = 1,
}

impl Dir {
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn flip(self) -> Dir {
        match self {
            Dir::Original => Dir::Reply,
            Dir::Reply => Dir::Original,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Dir::Original => "original",
            Dir::Reply => "reply",
        }
    }
}

/// A conntrack zone id (`CT --zone`). Zone 0 is the default.
pub type Zone = u16;

/// One direction of a connection.
///
/// `sport`/`dport` hold the protocol's l4 identity: ports, or for ICMP and
/// ICMPv6 `sport` = identifier and `dport` = `type << 8 | code`; zero for the
/// generic tracker.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct Tuple {
    pub l3: L3,
    pub proto: u8,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
}

impl Tuple {
    /// ICMP/ICMPv6 type of a query tuple.
    pub const fn icmp_type(&self) -> u8 {
        (self.dport >> 8) as u8
    }

    /// ICMP/ICMPv6 code of a query tuple.
    pub const fn icmp_code(&self) -> u8 {
        self.dport as u8
    }

    /// ICMP/ICMPv6 identifier of a query tuple.
    pub const fn icmp_id(&self) -> u16 {
        self.sport
    }

    /// The reply-direction tuple (`nf_ct_invert_tuple`). `None` when the
    /// protocol cannot invert it: ICMP types without a request/reply pair.
    pub fn invert(&self) -> Option<Tuple> {
        let (sport, dport) = match self.proto {
            proto::ICMP if self.l3 == L3::V4 => {
                let t = icmp_v4_inverse(self.icmp_type())?;
                (self.sport, u16::from(t) << 8 | u16::from(self.icmp_code()))
            }
            proto::ICMPV6 if self.l3 == L3::V6 => {
                let t = icmp_v6_inverse(self.icmp_type())?;
                (self.sport, u16::from(t) << 8 | u16::from(self.icmp_code()))
            }
            _ => (self.dport, self.sport),
        };
        Some(Tuple { l3: self.l3, proto: self.proto, src: self.dst, dst: self.src, sport, dport })
    }
}

/// ICMPv4 request/reply pairing (K-ICMP `invmap`).
pub const fn icmp_v4_inverse(t: u8) -> Option<u8> {
    match t {
        8 => Some(0),
        0 => Some(8),
        13 => Some(14),
        14 => Some(13),
        15 => Some(16),
        16 => Some(15),
        17 => Some(18),
        18 => Some(17),
        _ => None,
    }
}

/// ICMPv6 request/reply pairing (K-ICMP6 `invmap`).
pub const fn icmp_v6_inverse(t: u8) -> Option<u8> {
    match t {
        128 => Some(129),
        129 => Some(128),
        139 => Some(140),
        140 => Some(139),
        _ => None,
    }
}

/// Protocol name as `/proc/net/nf_conntrack` prints it (`unknown` otherwise).
pub const fn proto_name(p: u8) -> &'static str {
    match p {
        proto::TCP => "tcp",
        proto::UDP => "udp",
        proto::ICMP => "icmp",
        proto::ICMPV6 => "icmpv6",
        proto::SCTP => "sctp",
        proto::GRE => "gre",
        proto::UDPLITE => "udplite",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(proto: u8, sport: u16, dport: u16) -> Tuple {
        Tuple { l3: L3::V4, proto, src: Addr::v4([10, 0, 1, 2]), dst: Addr::v4([10, 0, 2, 2]), sport, dport }
    }

    #[test]
    fn tcp_inverts_ports_and_addresses() {
        let r = t(proto::TCP, 40000, 80).invert().unwrap();
        assert_eq!((r.src, r.dst, r.sport, r.dport), (Addr::v4([10, 0, 2, 2]), Addr::v4([10, 0, 1, 2]), 80, 40000));
        assert_eq!(r.invert().unwrap(), t(proto::TCP, 40000, 80));
    }

    #[test]
    fn icmp_echo_maps_type_keeps_id_and_code() {
        let r = t(proto::ICMP, 77, 8 << 8).invert().unwrap();
        assert_eq!((r.sport, r.icmp_type(), r.icmp_code()), (77, 0, 0));
        assert!(t(proto::ICMP, 1, 9 << 8).invert().is_none());
        assert!(t(proto::ICMP, 1, 3 << 8 | 3).invert().is_none());
    }

    #[test]
    fn generic_swaps_addresses_only() {
        let r = t(253, 0, 0).invert().unwrap();
        assert_eq!((r.sport, r.dport, r.src), (0, 0, Addr::v4([10, 0, 2, 2])));
    }
}
