//! Window (sequence) tracking: K-TCP `tcp_in_window`, `tcp_init_sender`,
//! `tcp_options`, `tcp_sack` (CONNTRACK_SPEC §4.6).
//!
//! Based on "Real Stateful TCP Packet Filtering in IP Filter" (G. van Rooij),
//! with the bounds relaxed as in the kernel so a segment only has to
//! intersect the window. Per direction we keep `end` (highest seq + len
//! sent), `maxend` (highest seq the peer's ack + window allows), `maxwin`
//! (largest window advertised, scaled) and `maxack`:
//!
//! * I.   upper bound for data: `seq <= sender.maxend`
//! * II.  lower bound for data: `end >= sender.end - receiver.maxwin`
//! * III. upper bound for (s)ack: `sack <= receiver.end`
//! * IV.  lower bound for (s)ack: `sack >= receiver.end - MAXACKWINDOW`
//!
//! All sequence arithmetic wraps, and comparisons use [`before`]/[`after`].

use super::tables::TcpClass;
use super::TcpConntrack;
use super::TcpState;
use crate::invalid::InvalidReason;
use crate::seq::{after, before};
use crate::tuple::Dir;
use crate::wire::{TcpFlags, TcpSeg};
use bitflags::bitflags;

bitflags! {
    /// Per-direction flags (`ip_ct_tcp_state.flags`, K-TCPH
    /// `IP_CT_TCP_FLAG_*`). The two high bits only appear in the
    /// connection-wide "last flags" (`last_flags`) but share the byte, as in
    /// the kernel, because a resync copies `last_flags` into a direction.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
    pub struct TcpCtFlags: u8 {
        /// The sender advertised window scaling.
        const WINDOW_SCALE = 0x01;
        /// The sender allows SACK.
        const SACK_PERM = 0x02;
        /// This side sent the first FIN.
        const CLOSE_INIT = 0x04;
        /// Window violations by this sender are accepted.
        const BE_LIBERAL = 0x08;
        /// This sender has data the peer has not acknowledged yet.
        const DATA_UNACKNOWLEDGED = 0x10;
        /// `maxack` holds a value.
        const MAXACK_SET = 0x20;
        /// `IP_CT_EXP_CHALLENGE_ACK`: a SYN was ignored in LAST_ACK, so the
        /// next ACK from the other side may be an RFC 5961 challenge ACK.
        const CHALLENGE_ACK = 0x40;
        /// `IP_CT_TCP_SIMULTANEOUS_OPEN`: SYN_SENT2 was visited.
        const SIMULTANEOUS_OPEN = 0x80;
    }
}

/// What the window tracker knows about one direction
/// (`struct ip_ct_tcp_state`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpSide {
    /// Highest `seq + len` sent (`td_end`).
    pub end: u32,
    /// Highest sequence number the peer allows this side to send (`td_maxend`).
    pub maxend: u32,
    /// Largest window advertised, scaled (`td_maxwin`); 0 = nothing seen yet.
    pub maxwin: u32,
    /// Highest ack sent (`td_maxack`), valid with `MAXACK_SET`.
    pub maxack: u32,
    /// Window scale shift (`td_scale`).
    pub scale: u8,
    pub flags: TcpCtFlags,
}

impl TcpSide {
    /// `nf_ct_tcp_state_reset`: forget everything but the liberal flag.
    pub(super) fn reset(&mut self) {
        *self = TcpSide { flags: self.flags & TcpCtFlags::BE_LIBERAL, ..TcpSide::default() };
    }
}

/// The result of the window check (`enum nf_ct_tcp_action`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum WindowAction {
    Accept,
    Ignore,
    Invalid(InvalidReason),
}

/// `MAXACKWINCONST`.
const MAX_ACK_WINDOW_MIN: u32 = 66_000;

/// `segment_seq_plus_len`: the sequence number after the segment, counting
/// SYN and FIN as one each.
pub(super) fn seg_end(seg: &TcpSeg<'_>) -> u32 {
    seg.seq
        .wrapping_add(seg.payload_len())
        .wrapping_add(u32::from(seg.flags.contains(TcpFlags::SYN)))
        .wrapping_add(u32::from(seg.flags.contains(TcpFlags::FIN)))
}

/// `tcp_options`: with an option area present, reset the scale and all flags
/// but BE_LIBERAL, then record window scale (the last one wins, capped at 14)
/// and SACK-permitted. Without options nothing changes.
pub(super) fn read_options(seg: &TcpSeg<'_>, side: &mut TcpSide) {
    if seg.options.is_empty() {
        return;
    }
    side.scale = 0;
    side.flags &= TcpCtFlags::BE_LIBERAL;
    if seg.sack_permitted() {
        side.flags |= TcpCtFlags::SACK_PERM;
    }
    if let Some(shift) = seg.window_scale() {
        side.scale = shift;
        side.flags |= TcpCtFlags::WINDOW_SCALE;
    }
}

/// `tcp_init_sender`: (re)initialise the sender from a SYN or SYN/ACK. When
/// the reply side answers and not both sides offered window scaling,
/// scaling is off in both directions (RFC 7323 § 1.3).
fn init_sender(sender: &mut TcpSide, receiver: &mut TcpSide, seg: &TcpSeg<'_>, end: u32, dir: Dir) {
    sender.end = end;
    sender.maxend = end;
    sender.maxwin = u32::from(seg.window).max(1);
    read_options(seg, sender);
    if dir == Dir::Reply
        && !(sender.flags.contains(TcpCtFlags::WINDOW_SCALE) && receiver.flags.contains(TcpCtFlags::WINDOW_SCALE))
    {
        sender.scale = 0;
        receiver.scale = 0;
    }
}

/// `MAXACKWINDOW(sender)`.
fn max_ack_window(sender: &TcpSide) -> u32 {
    sender.maxwin.max(MAX_ACK_WINDOW_MIN)
}

impl TcpState {
    /// The two directions, as (sender, receiver) for a packet going `dir`.
    fn sides(&mut self, dir: Dir) -> (&mut TcpSide, &mut TcpSide) {
        let [orig, reply] = &mut self.seen;
        match dir {
            Dir::Original => (orig, reply),
            Dir::Reply => (reply, orig),
        }
    }

    /// `tcp_in_window`. `liberal_knob` is `nf_conntrack_tcp_be_liberal`.
    /// Updates the sender/receiver data and the retransmission counter; the
    /// state itself is the caller's business. Note that it reads the *stored*
    /// state (`self.state`), which is still the state before this packet.
    pub(super) fn in_window(
        &mut self,
        dir: Dir,
        class: TcpClass,
        seg: &TcpSeg<'_>,
        liberal_knob: bool,
    ) -> WindowAction {
        let stored_state = self.state;
        let has_ack = seg.flags.contains(TcpFlags::ACK);
        let has_syn = seg.flags.contains(TcpFlags::SYN);
        let has_rst = seg.flags.contains(TcpFlags::RST);
        let (sender, receiver) = self.sides(dir);

        let mut seq = seg.seq;
        let mut ack = seg.ack;
        let win_raw = seg.window;
        let mut win = u32::from(win_raw);
        let mut end = seg_end(seg);
        let mut sack = if receiver.flags.contains(TcpCtFlags::SACK_PERM) { seg.sack_max(ack) } else { ack };
        // No NAT sequence adjustment in a bridge: the receiver offset is 0.

        if sender.maxwin == 0 {
            if has_syn {
                // A SYN/ACK answering the SYN, or a reply-direction SYN in a
                // simultaneous open.
                init_sender(sender, receiver, seg, end, dir);
                if !has_ack {
                    return WindowAction::Accept;
                }
            } else {
                // A connection picked up in the middle: guess from this packet.
                sender.end = end;
                let swin = win.wrapping_shl(u32::from(sender.scale));
                sender.maxwin = swin.max(1);
                sender.maxend = end.wrapping_add(sender.maxwin);
                if receiver.maxwin == 0 {
                    // Nothing seen the other way yet: let III and IV pass.
                    receiver.end = sack;
                    receiver.maxend = sack;
                } else if sack == receiver.end.wrapping_add(1) {
                    // Most likely the answer to a keep-alive (needed for III).
                    receiver.end = receiver.end.wrapping_add(1);
                }
            }
        } else if has_syn
            && after(end, sender.end)
            && matches!(stored_state, TcpConntrack::SynSent | TcpConntrack::SynRecv)
        {
            // RFC 793: a reinitialised TCP only has to use higher sequence
            // numbers. Start this direction over, as for the first SYN(/ACK).
            init_sender(sender, receiver, seg, end, dir);
            if dir == Dir::Reply && !has_ack {
                return WindowAction::Accept;
            }
        }

        if !has_ack || (has_rst && ack == 0) {
            // No ACK: pretend it acknowledges everything seen. Some stacks
            // send RST+ACK with ack 0; treat those the same.
            ack = receiver.end;
            sack = receiver.end;
        }

        if has_rst && seq == 0 && stored_state == TcpConntrack::SynSent {
            // An RST answering our SYN.
            seq = sender.end;
            end = sender.end;
        }

        let liberal = liberal_knob || sender.flags.contains(TcpCtFlags::BE_LIBERAL);
        let verdict = |a: WindowAction| if liberal { WindowAction::Accept } else { a };
        let max_ack_win = max_ack_window(sender);

        // I. upper bound for data.
        if !before(seq, sender.maxend.wrapping_add(1)) {
            let overshot = end.wrapping_sub(sender.maxend).wrapping_add(1);
            let ack_ok = after(sack, receiver.end.wrapping_sub(max_ack_win).wrapping_sub(1));
            let in_recv_win =
                receiver.maxwin != 0 && after(end, sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1));
            if in_recv_win && ack_ok && overshot <= receiver.maxwin && before(sack, receiver.end.wrapping_add(1)) {
                // The sender went beyond the receiver's window by less than
                // a window. Remember the data, so an ACK for it is not
                // "over the upper bound" later, but do not act on it.
                sender.end = end;
                sender.flags |= TcpCtFlags::DATA_UNACKNOWLEDGED;
                return verdict(WindowAction::Ignore);
            }
            return verdict(WindowAction::Invalid(InvalidReason::TcpSeqOverUpper));
        }

        // III. upper bound for (s)ack: no acknowledging unseen data.
        if !before(sack, receiver.end.wrapping_add(1)) {
            return verdict(WindowAction::Invalid(InvalidReason::TcpAckOverUpper));
        }

        // II. lower bound for data: more than a window behind is a stale
        // retransmission of data already acknowledged.
        let in_recv_win = receiver.maxwin == 0 || after(end, sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1));
        if !in_recv_win {
            return verdict(WindowAction::Ignore);
        }

        // IV. lower bound for (s)ack: an overly delayed ACK.
        if !after(sack, receiver.end.wrapping_sub(max_ack_win).wrapping_sub(1)) {
            return verdict(WindowAction::Ignore);
        }

        // The window of a SYN is never scaled (RFC 7323 § 2.2).
        if !has_syn {
            win = win.wrapping_shl(u32::from(sender.scale));
        }

        // Update the sender.
        let swin = win.wrapping_add(sack.wrapping_sub(ack));
        if sender.maxwin < swin {
            sender.maxwin = swin;
        }
        if after(end, sender.end) {
            sender.end = end;
            sender.flags |= TcpCtFlags::DATA_UNACKNOWLEDGED;
        }
        if has_ack {
            if !sender.flags.contains(TcpCtFlags::MAXACK_SET) {
                sender.maxack = ack;
                sender.flags |= TcpCtFlags::MAXACK_SET;
            } else if after(ack, sender.maxack) {
                sender.maxack = ack;
            }
        }

        // Update the receiver.
        if receiver.maxwin != 0 && after(end, sender.maxend) {
            receiver.maxwin = receiver.maxwin.wrapping_add(end.wrapping_sub(sender.maxend));
        }
        if after(sack.wrapping_add(win), receiver.maxend.wrapping_sub(1)) {
            receiver.maxend = sack.wrapping_add(win);
            if win == 0 {
                receiver.maxend = receiver.maxend.wrapping_add(1);
            }
        }
        if ack == receiver.end {
            receiver.flags.remove(TcpCtFlags::DATA_UNACKNOWLEDGED);
        }

        // Count identical ACK-class packets (retransmissions).
        if class == TcpClass::Ack {
            if self.last_dir == dir as u8
                && self.last_seq == seq
                && self.last_ack == ack
                && self.last_end == end
                && self.last_win == win_raw
            {
                self.retrans = self.retrans.wrapping_add(1);
            } else {
                self.last_dir = dir as u8;
                self.last_seq = seq;
                self.last_ack = ack;
                self.last_end = end;
                self.last_win = win_raw;
                self.retrans = 0;
            }
        }

        WindowAction::Accept
    }
}
