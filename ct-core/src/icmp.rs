//! ICMP and ICMPv6 classification (K-ICMP, K-ICMP6): which messages are
//! errors to correlate, which are queries that may create an entry, which
//! are untracked, and which are INVALID outright.

use crate::invalid::InvalidReason;
use crate::wire::icmp::is_v4_error;

/// `NR_ICMP_TYPES`: ICMPv4 types above this are INVALID.
pub const NR_ICMP_TYPES: u8 = 18;

/// How the tracker treats one ICMP/ICMPv6 message before any lookup.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum IcmpClass {
    /// An error: correlate the quoted packet with its connection.
    Error,
    /// ICMPv6 redirect: an error-like message whose quote sits in an ND option.
    Redirect,
    /// A query or reply: normal tracking by (id, type, code).
    Query,
    /// ND / MLD: never tracked.
    Untracked,
}

/// Classify an ICMPv4 message (`nf_conntrack_icmpv4_error`).
pub fn classify_v4(ty: u8) -> Result<IcmpClass, InvalidReason> {
    //= RFC 1122 § 3.2.2: unknown ICMP message types MUST be silently discarded.
    if ty > NR_ICMP_TYPES {
        return Err(InvalidReason::IcmpBadType);
    }
    Ok(if is_v4_error(ty) { IcmpClass::Error } else { IcmpClass::Query })
}

/// Classify an ICMPv6 message (`icmpv6_error`, `noct_valid_new`).
pub fn classify_v6(ty: u8) -> IcmpClass {
    match ty {
        // MLD query/report/done, RS, RA, NS, NA, MLDv2 report, MRD adv/sol.
        130..=136 | 143 | 151 | 152 => IcmpClass::Untracked,
        137 => IcmpClass::Redirect,
        0..=127 => IcmpClass::Error,
        _ => IcmpClass::Query,
    }
}

/// Whether an entry may be created by this (original-tuple) ICMPv4 type.
pub const fn v4_valid_new(ty: u8) -> bool {
    matches!(ty, 8 | 13 | 15 | 17)
}

/// Whether an entry may be created by this ICMPv6 type.
pub const fn v6_valid_new(ty: u8) -> bool {
    matches!(ty, 128 | 139)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_classes() {
        assert_eq!(classify_v4(8), Ok(IcmpClass::Query));
        assert_eq!(classify_v4(3), Ok(IcmpClass::Error));
        assert_eq!(classify_v4(11), Ok(IcmpClass::Error));
        assert_eq!(classify_v4(9), Ok(IcmpClass::Query));
        assert_eq!(classify_v4(19), Err(InvalidReason::IcmpBadType));
        assert!(v4_valid_new(13) && !v4_valid_new(0) && !v4_valid_new(14));
    }

    #[test]
    fn v6_classes() {
        assert_eq!(classify_v6(1), IcmpClass::Error);
        assert_eq!(classify_v6(2), IcmpClass::Error);
        assert_eq!(classify_v6(135), IcmpClass::Untracked);
        assert_eq!(classify_v6(143), IcmpClass::Untracked);
        assert_eq!(classify_v6(137), IcmpClass::Redirect);
        assert_eq!(classify_v6(128), IcmpClass::Query);
        assert_eq!(classify_v6(141), IcmpClass::Query);
        assert!(v6_valid_new(128) && !v6_valid_new(129) && !v6_valid_new(141));
    }
}
