//! Connection status bits, per-packet ctinfo and the ctstate rules match on
//! (K-CMN `enum ip_conntrack_status`, `enum ip_conntrack_info`; K-XTC).

use bitflags::bitflags;

bitflags! {
    /// `ct->status`, with the kernel's bit numbers.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// Created from an expectation (never cleared).
        const EXPECTED = 1 << 0;
        /// A reply-direction packet was accepted by the L4 tracker.
        const SEEN_REPLY = 1 << 1;
        /// Not early-dropped while the table is under pressure.
        const ASSURED = 1 << 2;
        /// Inserted into the table (the creating packet was accepted).
        const CONFIRMED = 1 << 3;
        const SRC_NAT = 1 << 4;
        const DST_NAT = 1 << 5;
        const SEQ_ADJUST = 1 << 6;
        const SRC_NAT_DONE = 1 << 7;
        const DST_NAT_DONE = 1 << 8;
        /// Being removed.
        const DYING = 1 << 9;
        /// Traffic does not refresh the timeout.
        const FIXED_TIMEOUT = 1 << 10;
        const TEMPLATE = 1 << 11;
        const NAT_CLASH = 1 << 12;
        /// A helper was attached explicitly.
        const HELPER = 1 << 13;
        const OFFLOAD = 1 << 14;
        const HW_OFFLOAD = 1 << 15;
    }
}

impl Status {
    /// Names of the bits `--ctstatus` knows, in kernel order, for listings
    /// and JSON output.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        self.iter_names().map(|(n, _)| n)
    }
}

/// The kernel's `enum ip_conntrack_info` for a packet attached to an entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtInfo {
    Established = 0,
    Related = 1,
    New = 2,
    EstablishedReply = 3,
    RelatedReply = 4,
}

impl CtInfo {
    /// The state a rule sees for a packet with this ctinfo.
    pub const fn state(self) -> CtState {
        match self {
            CtInfo::Established | CtInfo::EstablishedReply => CtState::Established,
            CtInfo::Related | CtInfo::RelatedReply => CtState::Related,
            CtInfo::New => CtState::New,
        }
    }

    pub const fn is_reply(self) -> bool {
        matches!(self, CtInfo::EstablishedReply | CtInfo::RelatedReply)
    }
}

/// What `--ctstate` / `ct state` matches on.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CtState {
    Invalid = 0,
    Established = 1,
    Related = 2,
    New = 3,
    Untracked = 4,
}

impl CtState {
    pub const ALL: [CtState; 5] =
        [CtState::Invalid, CtState::Established, CtState::Related, CtState::New, CtState::Untracked];

    pub const fn name(self) -> &'static str {
        match self {
            CtState::Invalid => "INVALID",
            CtState::Established => "ESTABLISHED",
            CtState::Related => "RELATED",
            CtState::New => "NEW",
            CtState::Untracked => "UNTRACKED",
        }
    }

    /// A one-bit mask, so a rule's set of states is a `u8`.
    pub const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn from_name(s: &str) -> Option<CtState> {
        CtState::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctinfo_maps_to_state() {
        assert_eq!(CtInfo::New.state(), CtState::New);
        assert_eq!(CtInfo::EstablishedReply.state(), CtState::Established);
        assert_eq!(CtInfo::RelatedReply.state(), CtState::Related);
        assert!(CtInfo::RelatedReply.is_reply() && !CtInfo::Related.is_reply());
    }

    #[test]
    fn status_bits_match_kernel_values() {
        assert_eq!(Status::EXPECTED.bits(), 0x1);
        assert_eq!(Status::SEEN_REPLY.bits(), 0x2);
        assert_eq!(Status::ASSURED.bits(), 0x4);
        assert_eq!(Status::CONFIRMED.bits(), 0x8);
        assert_eq!(Status::DYING.bits(), 0x200);
        assert_eq!(Status::HELPER.bits(), 1 << 13);
        let names: Vec<_> = (Status::SEEN_REPLY | Status::CONFIRMED).names().collect();
        assert_eq!(names, ["SEEN_REPLY", "CONFIRMED"]);
    }

    #[test]
    fn state_names_round_trip() {
        for s in CtState::ALL {
            assert_eq!(CtState::from_name(&s.name().to_lowercase()), Some(s));
        }
        assert_eq!(CtState::from_name("SNAT"), None);
    }
}
