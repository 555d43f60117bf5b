//! UDP, UDP-Lite and GRE trackers (K-UDP `nf_conntrack_udp_packet`,
//! `nf_conntrack_proto_gre.c`). No state machine: a deadline, a
//! "stream" timestamp, and the ASSURED bit.

use crate::invalid::InvalidReason;
use crate::status::Status;
use crate::time::Instant;
use core::time::Duration;

/// Per-entry UDP state.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpState {
    /// `ct->proto.udp.stream_ts`: two seconds after the first packet.
    pub stream_ts: Instant,
}

/// What the core does after a UDP packet was accepted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Refresh {
    pub timeout: Duration,
    pub set_assured: bool,
}

/// The grace period before a replied flow counts as a stream.
pub const STREAM_GRACE: Duration = Duration::from_secs(2);

impl UdpState {
    /// State of a new entry created at `now`.
    pub fn new(now: Instant) -> UdpState {
        UdpState { stream_ts: now + STREAM_GRACE }
    }

    /// Timeout choice for a packet at `now` (`status` as before this packet):
    /// unreplied and young replied flows get `unreplied`; a replied flow
    /// still talking after the grace period gets `stream` and ASSURED.
    pub fn packet(&self, status: Status, now: Instant, unreplied: Duration, stream: Duration) -> Refresh {
        if status.contains(Status::SEEN_REPLY) && now > self.stream_ts {
            Refresh { timeout: stream, set_assured: !status.contains(Status::NAT_CLASH) }
        } else {
            Refresh { timeout: unreplied, set_assured: false }
        }
    }
}

/// GRE tuple keys `(srckey, dstkey)` (`gre_pkt_to_tuple`): zero for
/// version 0 and short headers; for version 1 (enhanced GRE, PPTP) the
/// destination key is the call ID and the source key zero (it would come
/// from the PPTP helper's keymap). Version 1 must carry PPP.
pub fn gre_keys(l4: &[u8]) -> Result<(u16, u16), InvalidReason> {
    const VERSION_MASK: u8 = 0x07;
    const PROTO_PPP: [u8; 2] = [0x88, 0x0b];
    match l4 {
        [_, f1, ..] if f1 & VERSION_MASK != 1 => Ok((0, 0)),
        [_, _, p0, p1, _, _, c0, c1, ..] => {
            if [*p0, *p1] != PROTO_PPP {
                return Err(InvalidReason::GreBadProto);
            }
            Ok((0, u16::from_be_bytes([*c0, *c1])))
        }
        _ => Ok((0, 0)),
    }
}

/// GRE: unreplied
/// timeout until a reply was seen, then the stream timeout and ASSURED.
pub fn gre_packet(status: Status, unreplied: Duration, stream: Duration) -> Refresh {
    if status.contains(Status::SEEN_REPLY) {
        Refresh { timeout: stream, set_assured: !status.contains(Status::NAT_CLASH) }
    } else {
        Refresh { timeout: unreplied, set_assured: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: Duration = Duration::from_secs(30);
    const S: Duration = Duration::from_secs(120);

    #[test]
    fn two_second_rule() {
        let st = UdpState::new(Instant::from_secs(10));
        let r = Status::SEEN_REPLY | Status::CONFIRMED;
        // unreplied: always 30 s
        assert_eq!(
            st.packet(Status::CONFIRMED, Instant::from_secs(20), U, S),
            Refresh { timeout: U, set_assured: false }
        );
        // replied but within 2 s of the first packet
        assert_eq!(st.packet(r, Instant::from_millis(11_000), U, S), Refresh { timeout: U, set_assured: false });
        assert_eq!(st.packet(r, Instant::from_secs(12), U, S), Refresh { timeout: U, set_assured: false });
        // replied and later than 2 s
        assert_eq!(st.packet(r, Instant::from_millis(12_500), U, S), Refresh { timeout: S, set_assured: true });
        assert!(!st.packet(r | Status::NAT_CLASH, Instant::from_secs(13), U, S).set_assured);
    }

    #[test]
    fn gre_keys_by_version() {
        assert_eq!(gre_keys(&[0, 0, 0x08, 0x00]), Ok((0, 0)));
        assert_eq!(gre_keys(&[0x30, 0x81, 0x88, 0x0b, 0, 0, 0x12, 0x34]), Ok((0, 0x1234)));
        assert_eq!(gre_keys(&[0x30, 0x81, 0x08, 0x00, 0, 0, 0x12, 0x34]), Err(InvalidReason::GreBadProto));
        assert_eq!(gre_keys(&[0x30, 0x81, 0x88, 0x0b]), Ok((0, 0)));
        assert_eq!(gre_keys(&[0x30]), Ok((0, 0)));
    }

    #[test]
    fn gre_assures_after_reply() {
        let (u, s) = (Duration::from_secs(30), Duration::from_secs(180));
        assert_eq!(gre_packet(Status::empty(), u, s).timeout, u);
        assert_eq!(gre_packet(Status::SEEN_REPLY, u, s), Refresh { timeout: s, set_assured: true });
    }
}
