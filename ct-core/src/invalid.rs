//! Why a packet is INVALID: one `Copy` reason per cause, each counted.

use core::fmt;

macro_rules! reasons {
    ($($(#[$m:meta])* $name:ident => $text:literal,)*) => {
        /// The cause of an INVALID verdict. Every variant has a counter in
        /// [`InvalidCounters`] and a stable snake_case name for JSON,
        /// `/stats` and metrics.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum InvalidReason {
            $($(#[$m])* $name,)*
        }

        impl InvalidReason {
            /// All reasons, in counter order.
            pub const ALL: &'static [InvalidReason] = &[$(InvalidReason::$name,)*];

            /// Stable snake_case identifier.
            pub const fn name(self) -> &'static str {
                match self { $(InvalidReason::$name => $text,)* }
            }
        }
    };
}

reasons! {
    // ---- layer 2 / layer 3 ----
    /// Ethernet header or VLAN tag cut short.
    L2Truncated => "l2_truncated",
    /// More VLAN tags than we parse (two).
    L2TooManyTags => "l2_too_many_tags",
    /// IPv4 header shorter than 20 bytes or than its IHL.
    Ipv4Truncated => "ipv4_truncated",
    /// IPv4 version field is not 4.
    Ipv4BadVersion => "ipv4_bad_version",
    /// IHL below 5.
    Ipv4BadIhl => "ipv4_bad_ihl",
    /// Total length below the header length or beyond the frame.
    Ipv4BadLength => "ipv4_bad_length",
    /// Header checksum wrong (the kernel drops these in ip_rcv).
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// Malformed IPv4 option list.
    Ipv4BadOptions => "ipv4_bad_options",
    /// IPv6 fixed header cut short or version field wrong.
    Ipv6Truncated => "ipv6_truncated",
    /// Payload length beyond the frame.
    Ipv6BadLength => "ipv6_bad_length",
    /// Extension header chain cut short or malformed.
    Ipv6BadExtHeader => "ipv6_bad_ext_header",
    /// Non-first fragment: its L4 header cannot be located.
    Fragment => "fragment",
    // ---- TCP ----
    /// TCP header cut short or data offset below 5.
    TcpTruncated => "tcp_truncated",
    /// TCP checksum wrong.
    TcpBadChecksum => "tcp_bad_checksum",
    /// Flag combination not in the kernel's `tcp_valid_flags`.
    TcpBadFlags => "tcp_bad_flags",
    /// First packet of a connection is not a SYN (or an ACK with loose pickup).
    TcpInvalidNew => "tcp_invalid_new",
    /// The transition table says INVALID for this packet class and state.
    TcpInvalidTransition => "tcp_invalid_transition",
    /// Segment starts beyond the receiver's window ("SEQ is over the upper bound").
    TcpSeqOverUpper => "tcp_seq_over_upper_bound",
    /// Acknowledges data never sent ("ACK is over the upper bound").
    TcpAckOverUpper => "tcp_ack_over_upper_bound",
    /// RST sequence below what the peer acknowledged.
    TcpInvalidRst => "tcp_invalid_rst",
    /// A malformed TCP option list.
    TcpBadOptions => "tcp_bad_options",
    // ---- UDP ----
    /// UDP header cut short.
    UdpTruncated => "udp_truncated",
    /// Length field below 8 or beyond the datagram.
    UdpBadLength => "udp_bad_length",
    /// Non-zero checksum wrong.
    UdpBadChecksum => "udp_bad_checksum",
    // ---- ICMP / ICMPv6 ----
    /// ICMP header cut short.
    IcmpTruncated => "icmp_truncated",
    /// ICMP checksum wrong.
    IcmpBadChecksum => "icmp_bad_checksum",
    /// ICMPv4 type above 18.
    IcmpBadType => "icmp_bad_type",
    /// A type with no request/reply pair, so the tuple cannot be inverted.
    IcmpNoInverse => "icmp_no_inverse",
    /// A reply type cannot create a connection.
    IcmpInvalidNew => "icmp_invalid_new",
    /// The error's quoted packet is truncated or unusable.
    IcmpErrorBadQuote => "icmp_error_bad_quote",
    /// The error is about no known connection.
    IcmpErrorNoConnection => "icmp_error_no_connection",
    /// Outer destination differs from the connection's ("outer daddr != inner").
    IcmpErrorOuterDaddr => "icmp_error_outer_daddr",
    /// ICMPv6 redirect without hop limit 255, link-local source or code 0.
    Icmpv6BadRedirect => "icmpv6_bad_redirect",
    // ---- SCTP ----
    /// SCTP common header, or the fixed part of an INIT/INIT ACK, cut short.
    SctpTruncated => "sctp_truncated",
    /// CRC32c wrong.
    SctpBadChecksum => "sctp_bad_checksum",
    /// No chunk, a zero chunk length, or a chunk that must be first or alone
    /// is not (`do_basic_checks`).
    SctpBadChunks => "sctp_bad_chunks",
    /// A first packet that cannot open a path: ABORT, SHUTDOWN COMPLETE,
    /// COOKIE ACK, or no control chunk (`sctp_new`).
    SctpInvalidNew => "sctp_invalid_new",
    /// Verification tag check failed (RFC 9260 §8.5).
    SctpBadVtag => "sctp_bad_vtag",
    /// The transition table says INVALID for this chunk and state.
    SctpInvalidTransition => "sctp_invalid_transition",
    // ---- GRE ----
    /// GRE version 1 carrying something other than PPP.
    GreBadProto => "gre_bad_proto",
}

impl InvalidReason {
    /// Number of reasons; the size of a counter array.
    pub const COUNT: usize = Self::ALL.len();

    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`InvalidReason`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidCounters([u64; InvalidReason::COUNT]);

impl Default for InvalidCounters {
    fn default() -> Self {
        InvalidCounters([0; InvalidReason::COUNT])
    }
}

impl InvalidCounters {
    pub fn inc(&mut self, r: InvalidReason) {
        self.0[r.index()] += 1;
    }

    pub fn get(&self, r: InvalidReason) -> u64 {
        self.0[r.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (InvalidReason, u64)> + '_ {
        InvalidReason::ALL.iter().map(|&r| (r, self.get(r)))
    }

    pub fn merge(&mut self, other: &InvalidCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexes_dense() {
        let mut names: Vec<_> = InvalidReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), InvalidReason::COUNT);
        for (i, r) in InvalidReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn counters_count() {
        let mut c = InvalidCounters::default();
        c.inc(InvalidReason::TcpBadFlags);
        c.inc(InvalidReason::TcpBadFlags);
        c.inc(InvalidReason::Fragment);
        assert_eq!(c.get(InvalidReason::TcpBadFlags), 2);
        assert_eq!(c.total(), 3);
    }
}
