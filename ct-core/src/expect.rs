//! Expectations: a master connection announces a future connection, and the
//! first packet matching it creates a RELATED child (K-EXP, K-CORE
//! `init_conntrack`, CONNTRACK_SPEC §8.4).
//!
//! * Matching: the candidate's original tuple equals the expectation on
//!   destination address, destination port, protocol and family; the
//!   source address and port are compared under the mask. Zones must be equal.
//! * One-shot: removed when a child is *allocated*, even if that first
//!   packet is later dropped.
//! * Lifetime: fixed at registration (policy timeout), not refreshed.
//! * Per master and class: at most `max_expected`; registering one more
//!   evicts the oldest. An identical expectation from the same master replaces
//!   the old one. One that clashes with another master's is refused.
//! * Global cap: registration fails when the table holds `max` expectations.
//! * A master's death removes its pending expectations.

use crate::time::Instant;
use crate::tuple::{Addr, Tuple, Zone};
use core::time::Duration;

/// Identifies an entry in the connection table: slot index plus a
/// generation, so a stale id never names a reused slot.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    pub slot: u32,
    pub generation: u32,
}

/// A helper's expectation policy (`struct nf_conntrack_expect_policy`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ExpectPolicy {
    pub max_expected: u32,
    pub timeout: Duration,
}

impl ExpectPolicy {
    /// FTP and TFTP: one expectation per master, 300 s.
    pub const KERNEL_DEFAULT: ExpectPolicy = ExpectPolicy { max_expected: 1, timeout: Duration::from_secs(300) };
}

/// What a helper asks for; the table turns it into an [`Expectation`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ExpectRequest {
    /// The expected child's original tuple. `src` and `sport` are ignored
    /// where the mask is a wildcard.
    pub tuple: Tuple,
    /// Compare the source address (`false` = any source address).
    pub match_src_addr: bool,
    /// Compare the source port (`false` = any source port; FTP and TFTP).
    pub match_sport: bool,
    /// Expectation class (FTP and TFTP use 0).
    pub class: u8,
}

/// A registered expectation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub req: ExpectRequest,
    pub zone: Zone,
    pub master: EntryId,
    /// Name of the helper that created it, for listings.
    pub helper: &'static str,
    pub created: Instant,
    pub expires: Instant,
}

impl Expectation {
    /// Whether `t` (a candidate child's original tuple, in `zone`) matches.
    pub fn matches(&self, t: &Tuple, zone: Zone) -> bool {
        let e = &self.req;
        zone == self.zone
            && t.l3 == e.tuple.l3
            && t.proto == e.tuple.proto
            && t.dst == e.tuple.dst
            && t.dport == e.tuple.dport
            && (!e.match_src_addr || t.src == e.tuple.src)
            && (!e.match_sport || t.sport == e.tuple.sport)
    }

    /// Two expectations could match the same packet (K-EXP `expect_clash`):
    /// equal under the intersection of their masks.
    pub fn clashes(&self, other: &ExpectRequest, zone: Zone) -> bool {
        let a = &self.req;
        let src_addr = !(a.match_src_addr && other.match_src_addr) || a.tuple.src == other.tuple.src;
        let sport = !(a.match_sport && other.match_sport) || a.tuple.sport == other.tuple.sport;
        zone == self.zone
            && a.tuple.l3 == other.tuple.l3
            && a.tuple.proto == other.tuple.proto
            && a.tuple.dst == other.tuple.dst
            && a.tuple.dport == other.tuple.dport
            && src_addr
            && sport
    }

    /// The source address as listed: the address, or zero for a wildcard.
    pub fn listed_src(&self) -> (Addr, u16) {
        let src = if self.req.match_src_addr { self.req.tuple.src } else { Addr::default() };
        let sport = if self.req.match_sport { self.req.tuple.sport } else { 0 };
        (src, sport)
    }
}

/// Per-connection state a line-oriented helper keeps (K-FTP
/// `struct nf_ct_ftp_master`): per direction, up to two sequence numbers
/// that immediately follow a segment ending in `\n`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LineTrack {
    pub seq_aft_nl: [[u32; 2]; 2],
    pub seq_aft_nl_num: [u8; 2],
}
