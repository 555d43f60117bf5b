//! The TCP tracker: K-TCP `nf_conntrack_proto_tcp.c` (CONNTRACK_SPEC §4).
//!
//! Heads up! Before working on this file read CONNTRACK_SPEC §4 and the
//! kernel's `nf_conntrack_tcp_packet`: every branch below mirrors one there,
//! in the same order, and the differential tests compare us with the kernel
//! packet by packet.
//!
//! * [`tables`]: the transition table and the legal flag combinations.
//! * [`window`]: sequence/window tracking (`tcp_in_window`).
//! * this file: `tcp_new`, `nf_conntrack_tcp_packet` (IGNORED packets and
//!   resync, re-open, challenge ACKs, simultaneous open, RST checks,
//!   timeouts, ASSURED) and `nf_tcp_handle_invalid`.
//!
//! The state is plain `Copy` data stored inline in the table entry; nothing
//! here allocates or panics.

mod tables;
mod window;

#[cfg(test)]
mod tests;

pub use self::tables::{transition, valid_flags, TcpClass, Transition};
pub use self::window::{TcpCtFlags, TcpSide};

use self::window::{read_options, seg_end, WindowAction};
use crate::config::{CtConfig, TcpKnobs, TcpTimeouts};
use crate::invalid::InvalidReason;
use crate::seq::before;
use crate::status::Status;
use crate::tuple::Dir;
use crate::wire::TcpSeg;
use core::time::Duration;

/// TCP conntrack states (K-TCPH `enum tcp_conntrack`; SYN_SENT2 reuses the
/// obsolete LISTEN slot).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TcpConntrack {
    #[default]
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    SynSent2 = 9,
}

impl TcpConntrack {
    /// All states, in kernel order (the transition table's columns).
    pub const ALL: [TcpConntrack; 10] = [
        TcpConntrack::None,
        TcpConntrack::SynSent,
        TcpConntrack::SynRecv,
        TcpConntrack::Established,
        TcpConntrack::FinWait,
        TcpConntrack::CloseWait,
        TcpConntrack::LastAck,
        TcpConntrack::TimeWait,
        TcpConntrack::Close,
        TcpConntrack::SynSent2,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            TcpConntrack::None => "NONE",
            TcpConntrack::SynSent => "SYN_SENT",
            TcpConntrack::SynRecv => "SYN_RECV",
            TcpConntrack::Established => "ESTABLISHED",
            TcpConntrack::FinWait => "FIN_WAIT",
            TcpConntrack::CloseWait => "CLOSE_WAIT",
            TcpConntrack::LastAck => "LAST_ACK",
            TcpConntrack::TimeWait => "TIME_WAIT",
            TcpConntrack::Close => "CLOSE",
            TcpConntrack::SynSent2 => "SYN_SENT2",
        }
    }
}

/// The timeout of a state (`timeouts[state]`). NONE never persists; the
/// kernel's slot 0 holds the SYN_SENT value.
pub fn state_timeout(t: &TcpTimeouts, s: TcpConntrack) -> Duration {
    match s {
        TcpConntrack::None | TcpConntrack::SynSent => t.syn_sent,
        TcpConntrack::SynRecv => t.syn_recv,
        TcpConntrack::Established => t.established,
        TcpConntrack::FinWait => t.fin_wait,
        TcpConntrack::CloseWait => t.close_wait,
        TcpConntrack::LastAck => t.last_ack,
        TcpConntrack::TimeWait => t.time_wait,
        TcpConntrack::Close => t.close,
        TcpConntrack::SynSent2 => t.syn_sent2,
    }
}

/// What the table tells the tracker about the entry and the packet.
pub struct TcpCx {
    /// Direction of the packet.
    pub dir: Dir,
    /// The entry's status bits before this packet.
    pub status: Status,
    /// The entry is in the table (false only for its first packet, right
    /// after [`TcpState::new`]).
    pub confirmed: bool,
    /// Time left before the entry expires.
    pub remaining: Duration,
}

/// The tracker's decision for one packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpVerdict {
    /// Accepted. `timeout: Some(t)` refreshes the deadline to now + t;
    /// `None` leaves it. `set_assured` sets ASSURED. `delete` removes the
    /// entry at once (an RST on an entry without a reply).
    Accept { timeout: Option<Duration>, set_assured: bool, delete: bool },
    /// IGNORED: accepted with its normal ctinfo; state and timeout unchanged.
    Ignore,
    /// INVALID. `timeout: Some(t)` lowers the deadline to now + t
    /// (`nf_tcp_handle_invalid`).
    Invalid { reason: InvalidReason, timeout: Option<Duration> },
    /// `-NF_REPEAT`: delete the entry and handle the packet again as the
    /// first packet of a new connection.
    Repeat,
}

/// `struct ip_ct_tcp`: the per-connection TCP data (60 bytes).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    /// Window data per direction, indexed by [`Dir::index`].
    seen: [TcpSide; 2],
    state: TcpConntrack,
    /// Direction (0 original, 1 reply) of the last packet recorded.
    last_dir: u8,
    /// Identical ACK-class packets in a row.
    retrans: u8,
    /// Class of the last packet recorded.
    last_index: TcpClass,
    /// seq of the last recorded packet.
    last_seq: u32,
    /// ack of the last recorded ACK (or of a possible challenge ACK).
    last_ack: u32,
    /// end (seq + len) of the last recorded packet.
    last_end: u32,
    /// Raw window of the last recorded packet.
    last_win: u16,
    /// Window scale of the last ignored SYN.
    last_wscale: u8,
    /// Options of the last ignored SYN, plus CHALLENGE_ACK and
    /// SIMULTANEOUS_OPEN.
    last_flags: TcpCtFlags,
}

/// Words of [`TcpState::pack`]: the table stores the state in 56 bytes.
pub(crate) const PACKED_WORDS: usize = 14;

impl TcpState {
    /// The state as 14 words, for the table's compact entries.
    pub(crate) fn pack(&self) -> [u32; PACKED_WORDS] {
        let [a, b] = &self.seen;
        let side = |s: &TcpSide| u32::from(s.scale) | u32::from(s.flags.bits()) << 8;
        [
            a.end,
            a.maxend,
            a.maxwin,
            a.maxack,
            b.end,
            b.maxend,
            b.maxwin,
            b.maxack,
            side(a) | side(b) << 16,
            self.state as u32
                | u32::from(self.last_dir) << 8
                | u32::from(self.retrans) << 16
                | (self.last_index as u32) << 24,
            self.last_seq,
            self.last_ack,
            self.last_end,
            u32::from(self.last_win) | u32::from(self.last_wscale) << 16 | u32::from(self.last_flags.bits()) << 24,
        ]
    }

    /// The inverse of [`TcpState::pack`].
    pub(crate) fn unpack(w: &[u32; PACKED_WORDS]) -> TcpState {
        let byte = |v: u32, i: u32| (v >> (8 * i)) as u8;
        let side = |i: usize, sf: u32| TcpSide {
            end: w[i],
            maxend: w[i + 1],
            maxwin: w[i + 2],
            maxack: w[i + 3],
            scale: byte(sf, 0),
            flags: TcpCtFlags::from_bits_retain(byte(sf, 1)),
        };
        TcpState {
            seen: [side(0, w[8]), side(4, w[8] >> 16)],
            state: TcpConntrack::ALL.get(usize::from(byte(w[9], 0))).copied().unwrap_or_default(),
            last_dir: byte(w[9], 1),
            retrans: byte(w[9], 2),
            last_index: TcpClass::from_index(byte(w[9], 3)),
            last_seq: w[10],
            last_ack: w[11],
            last_end: w[12],
            last_win: w[13] as u16,
            last_wscale: byte(w[13], 2),
            last_flags: TcpCtFlags::from_bits_retain(byte(w[13], 3)),
        }
    }
}

/// Result of the RST checks (the `TCP_CONNTRACK_CLOSE` case).
enum RstCheck {
    /// Run the window check, then move to the given state.
    Window(TcpConntrack),
    /// Skip the window check and move to the given state.
    Skip(TcpConntrack),
}

impl TcpState {
    /// The connection state.
    pub fn state(&self) -> TcpConntrack {
        self.state
    }

    /// Window data of one direction (read-only; for listings and tests).
    pub fn side(&self, dir: Dir) -> &TcpSide {
        &self.seen[dir.index()]
    }

    /// Identical ACK-class packets counted in a row.
    pub fn retrans(&self) -> u8 {
        self.retrans
    }

    /// Class and direction of the last packet recorded ("last_index",
    /// "last_dir").
    pub fn last_packet(&self) -> (TcpClass, Dir) {
        (self.last_index, if self.last_dir == 0 { Dir::Original } else { Dir::Reply })
    }

    /// `tcp_new` (after `tcp_error`'s flag check): the data for the first
    /// packet of a connection. A SYN starts in SYN_SENT; a plain ACK is
    /// picked up mid-stream when `loose` is on, with both directions liberal
    /// and SACK-permitted. Everything else is refused (§4.3). The state
    /// stays NONE: [`TcpState::packet`] makes the transition.
    pub fn new(seg: &TcpSeg<'_>, knobs: &TcpKnobs) -> Result<TcpState, InvalidReason> {
        if !valid_flags(seg.flags) {
            return Err(InvalidReason::TcpBadFlags);
        }
        let mut st = TcpState::default();
        let orig = &mut st.seen[Dir::Original.index()];
        match transition(Dir::Original, TcpClass::of(seg.flags), TcpConntrack::None) {
            Transition::To(TcpConntrack::SynSent) => {
                orig.end = seg_end(seg);
                orig.maxwin = u32::from(seg.window).max(1);
                orig.maxend = orig.end;
                read_options(seg, orig);
            }
            Transition::To(_) if knobs.loose => {
                // Mid-stream: the history is lost, use what the packet says.
                orig.end = seg_end(seg);
                orig.maxwin = u32::from(seg.window).max(1);
                orig.maxend = orig.end.wrapping_add(orig.maxwin);
                // Assume SACK, and be liberal because the window scale is unknown.
                let flags = TcpCtFlags::SACK_PERM | TcpCtFlags::BE_LIBERAL;
                st.seen[0].flags = flags;
                st.seen[1].flags = flags;
            }
            _ => return Err(InvalidReason::TcpInvalidNew),
        }
        st.last_index = TcpClass::None;
        Ok(st)
    }

    /// `nf_conntrack_tcp_packet`: track one packet of the connection.
    ///
    /// `cx.confirmed == false` means the state was just made by
    /// [`TcpState::new`] for this same packet (the kernel runs `tcp_new`
    /// inside this function; here the table does it first).
    pub fn packet(&mut self, cx: &TcpCx, seg: &TcpSeg<'_>, cfg: &CtConfig) -> TcpVerdict {
        if !valid_flags(seg.flags) {
            return invalid(InvalidReason::TcpBadFlags);
        }
        let dir = cx.dir;
        let class = TcpClass::of(seg.flags);
        let mut old_state = self.state;
        let mut check_window = true;

        let new_state = match transition(dir, class, old_state) {
            Transition::Invalid => return invalid(InvalidReason::TcpInvalidTransition),
            Transition::To(TcpConntrack::SynSent) if old_state as u8 >= TcpConntrack::TimeWait as u8 => {
                // RFC 1122 lets a SYN reopen a connection in TIME-WAIT; the
                // kernel does so whenever the old connection was closed (a
                // FIN was seen) or aborted (the last packet was an RST from
                // this same side). Otherwise treat it as an ignored SYN.
                let closed = (self.seen[0].flags | self.seen[1].flags).contains(TcpCtFlags::CLOSE_INIT);
                let aborted = self.last_dir == dir as u8 && self.last_index == TcpClass::Rst;
                if closed || aborted {
                    return TcpVerdict::Repeat;
                }
                if !self.ignored(dir, class, old_state, seg) {
                    return TcpVerdict::Ignore;
                }
                old_state = TcpConntrack::SynSent;
                TcpConntrack::SynRecv
            }
            Transition::Ignore => {
                if !self.ignored(dir, class, old_state, seg) {
                    return TcpVerdict::Ignore;
                }
                old_state = TcpConntrack::SynSent;
                TcpConntrack::SynRecv
            }
            Transition::To(TcpConntrack::TimeWait) => {
                // RFC 5961: a spurious SYN in LAST_ACK draws a challenge ACK,
                // which must not be taken for the ACK of the last FIN.
                if old_state == TcpConntrack::LastAck
                    && class == TcpClass::Ack
                    && self.last_dir != dir as u8
                    && self.last_index == TcpClass::Syn
                    && self.last_flags.contains(TcpCtFlags::CHALLENGE_ACK)
                {
                    self.last_flags.remove(TcpCtFlags::CHALLENGE_ACK);
                    return TcpVerdict::Ignore;
                }
                TcpConntrack::TimeWait
            }
            Transition::To(TcpConntrack::SynSent2) => {
                // The table alone cannot follow a simultaneous open.
                self.last_flags |= TcpCtFlags::SIMULTANEOUS_OPEN;
                TcpConntrack::SynSent2
            }
            Transition::To(TcpConntrack::SynRecv) => {
                if dir == Dir::Reply
                    && class == TcpClass::Ack
                    && self.last_flags.contains(TcpCtFlags::SIMULTANEOUS_OPEN)
                {
                    TcpConntrack::Established
                } else {
                    TcpConntrack::SynRecv
                }
            }
            Transition::To(TcpConntrack::Close) if class == TcpClass::Rst => {
                match self.rst_checks(cx, seg, old_state, cfg.tcp_knobs.ignore_invalid_rst) {
                    Ok(RstCheck::Window(s)) => s,
                    Ok(RstCheck::Skip(s)) => {
                        check_window = false;
                        s
                    }
                    Err(reason) => return invalid(reason),
                }
            }
            Transition::To(s) => s,
        };

        if check_window {
            match self.in_window(dir, class, seg, cfg.tcp_knobs.be_liberal) {
                WindowAction::Accept => {}
                WindowAction::Ignore => return TcpVerdict::Ignore,
                WindowAction::Invalid(reason) => {
                    let timeout = self.handle_invalid(cx, class, &cfg.tcp);
                    return TcpVerdict::Invalid { reason, timeout };
                }
            }
        }

        // From here on the packet is in window.
        self.last_index = class;
        self.last_dir = dir as u8;
        self.state = new_state;
        if old_state != new_state && new_state == TcpConntrack::FinWait {
            self.seen[dir.index()].flags |= TcpCtFlags::CLOSE_INIT;
        }

        let t = &cfg.tcp;
        let state_t = state_timeout(t, new_state);
        let unacked = (self.seen[0].flags | self.seen[1].flags).contains(TcpCtFlags::DATA_UNACKNOWLEDGED);
        let mut timeout = if self.retrans >= cfg.tcp_knobs.max_retrans && state_t > t.max_retrans {
            t.max_retrans
        } else if class == TcpClass::Rst {
            t.close
        } else if unacked && state_t > t.unacknowledged {
            t.unacknowledged
        } else if self.last_win == 0 && state_t > t.max_retrans {
            t.max_retrans
        } else {
            state_t
        };

        if !cx.status.contains(Status::SEEN_REPLY) {
            if class == TcpClass::Rst {
                // The only answer is an RST: not a connection, drop the
                // entry at once (the RST itself passes).
                return TcpVerdict::Accept { timeout: None, set_assured: false, delete: true };
            }
            if class == TcpClass::Syn && old_state == TcpConntrack::SynSent {
                // A retransmitted SYN does not extend the entry's life, or
                // port reuse could keep it alive forever.
                return TcpVerdict::Accept { timeout: None, set_assured: false, delete: false };
            }
            if new_state == TcpConntrack::Established && timeout > t.unacknowledged {
                // Picked up mid-stream without a reply yet.
                timeout = t.unacknowledged;
            }
            return TcpVerdict::Accept { timeout: Some(timeout), set_assured: false, delete: false };
        }
        let set_assured = !cx.status.contains(Status::ASSURED)
            && matches!(old_state, TcpConntrack::SynRecv | TcpConntrack::Established)
            && new_state == TcpConntrack::Established;
        TcpVerdict::Accept { timeout: Some(timeout), set_assured, delete: false }
    }

    /// `tcp_can_early_drop`: a closing connection may be evicted even when
    /// ASSURED (§4.10).
    pub fn can_early_drop(&self) -> bool {
        closing(self.state)
    }

    /// The IGNORE case of `nf_conntrack_tcp_packet` (§4.5). Returns true
    /// when the packet resyncs the connection (a SYN/ACK answering a SYN we
    /// ignored): the caller then proceeds as SYN_SENT -> SYN_RECV. Otherwise
    /// the packet is remembered and the caller returns IGNORED.
    fn ignored(&mut self, dir: Dir, class: TcpClass, old_state: TcpConntrack, seg: &TcpSeg<'_>) -> bool {
        if class == TcpClass::SynAck
            && self.last_index == TcpClass::Syn
            && self.last_dir != dir as u8
            && seg.ack == self.last_end
        {
            // Client and server agree, we are the ones out of sync: adopt
            // the ignored SYN as the handshake, and start this side afresh.
            let syn_side = &mut self.seen[usize::from(self.last_dir & 1)];
            syn_side.end = self.last_end;
            syn_side.maxend = self.last_end;
            syn_side.maxwin = u32::from(self.last_win).max(1);
            syn_side.scale = self.last_wscale;
            self.last_flags.remove(TcpCtFlags::CHALLENGE_ACK);
            syn_side.flags = self.last_flags;
            self.seen[dir.index()].reset();
            return true;
        }
        self.last_index = class;
        self.last_dir = dir as u8;
        self.last_seq = seg.seq;
        self.last_end = seg_end(seg);
        self.last_win = seg.window;

        if class == TcpClass::Syn && dir == Dir::Original {
            // Perhaps the endpoints are in sync and we are not: keep the
            // SYN's options for a resync. If the peer implements RFC 5961 it
            // may answer with a challenge ACK instead, which in LAST_ACK
            // looks like the final ACK.
            let mut opts = TcpSide::default();
            read_options(seg, &mut opts);
            self.last_flags = TcpCtFlags::empty();
            self.last_wscale = 0;
            if opts.flags.contains(TcpCtFlags::WINDOW_SCALE) {
                self.last_flags |= TcpCtFlags::WINDOW_SCALE;
                self.last_wscale = opts.scale;
            }
            if opts.flags.contains(TcpCtFlags::SACK_PERM) {
                self.last_flags |= TcpCtFlags::SACK_PERM;
            }
            if old_state == TcpConntrack::LastAck {
                self.last_flags |= TcpCtFlags::CHALLENGE_ACK;
            }
        }

        if old_state == TcpConntrack::SynSent && class == TcpClass::Ack && dir == Dir::Reply {
            // Possibly a challenge ACK answering the SYN.
            self.last_ack = seg.ack;
        }
        false
    }

    /// The RST part of the `TCP_CONNTRACK_CLOSE` case (§4.7).
    fn rst_checks(
        &self,
        cx: &TcpCx,
        seg: &TcpSeg<'_>,
        old_state: TcpConntrack,
        ignore_invalid_rst: bool,
    ) -> Result<RstCheck, InvalidReason> {
        // Closing: the tuple may already be reused and our window data stale.
        if closing(self.state) {
            return Ok(RstCheck::Skip(TcpConntrack::Close));
        }
        let mut new_state = TcpConntrack::Close;
        let peer = &self.seen[cx.dir.flip().index()];
        let established = self.state == TcpConntrack::Established && cx.status.contains(Status::ASSURED);
        // maxack is stale if we let a SYN through.
        if peer.flags.contains(TcpCtFlags::MAXACK_SET) && self.last_index != TcpClass::Syn {
            let seq = seg.seq;
            if seq == 0 && !established {
                // Most likely the answer to a SYN we let through.
                return Ok(RstCheck::Window(new_state));
            }
            if before(seq, peer.maxack) && !ignore_invalid_rst {
                return Err(InvalidReason::TcpInvalidRst);
            }
            if !established || seq == peer.maxack {
                return Ok(RstCheck::Window(new_state));
            }
            // The RST ends a train of data from this side.
            if self.last_index == TcpClass::Ack && self.last_dir == cx.dir as u8 && seq == self.last_end {
                return Ok(RstCheck::Window(new_state));
            }
            // In window but not exact (RFC 5961 § 3.2): keep the state and
            // let the peer's challenge ACK through.
            new_state = old_state;
        }
        let answers_let_through = (cx.status.contains(Status::SEEN_REPLY) && self.last_index == TcpClass::Syn)
            || (!cx.status.contains(Status::ASSURED) && self.last_index == TcpClass::Ack);
        if answers_let_through && seg.ack == self.last_end {
            // An RST for a SYN (in window then) or an ACK (half-open
            // connection) we let through: skip the window check, since it
            // may acknowledge segments we ignored.
            return Ok(RstCheck::Skip(new_state));
        }
        // An RST answering a challenge ACK we let through in SYN_SENT.
        if old_state == TcpConntrack::SynSent
            && self.last_index == TcpClass::Ack
            && self.last_dir == Dir::Reply as u8
            && seg.seq == self.last_ack
        {
            return Ok(RstCheck::Skip(new_state));
        }
        Ok(RstCheck::Window(new_state))
    }

    /// `nf_tcp_handle_invalid`: on an ASSURED connection, an out-of-window
    /// FIN or RST answering a FIN or RST from the other side lowers a
    /// timeout of more than 120 s to the "unacknowledged" value, so dead
    /// connections we lost track of go away sooner. Otherwise a FIN/RST is
    /// remembered as the last packet.
    fn handle_invalid(&mut self, cx: &TcpCx, class: TcpClass, t: &TcpTimeouts) -> Option<Duration> {
        if !cx.status.contains(Status::ASSURED) || cx.status.contains(Status::FIXED_TIMEOUT) {
            return None;
        }
        if !matches!(class, TcpClass::Rst | TcpClass::Fin) {
            return None;
        }
        if self.last_dir != cx.dir as u8 && matches!(self.last_index, TcpClass::Fin | TcpClass::Rst) {
            if cx.remaining < Duration::from_secs(120) {
                return None;
            }
            if cx.remaining > t.unacknowledged {
                return Some(t.unacknowledged);
            }
            None
        } else {
            self.last_index = class;
            self.last_dir = cx.dir as u8;
            None
        }
    }
}

/// FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT and CLOSE.
fn closing(s: TcpConntrack) -> bool {
    matches!(
        s,
        TcpConntrack::FinWait
            | TcpConntrack::CloseWait
            | TcpConntrack::LastAck
            | TcpConntrack::TimeWait
            | TcpConntrack::Close
    )
}

fn invalid(reason: InvalidReason) -> TcpVerdict {
    TcpVerdict::Invalid { reason, timeout: None }
}
