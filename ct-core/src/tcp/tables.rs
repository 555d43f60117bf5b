//! The two lookup tables of the TCP tracker, transcribed from K-TCP
//! (`net/netfilter/nf_conntrack_proto_tcp.c`): the state transition table
//! `tcp_conntracks[dir][class][state]` and the legal flag combinations
//! `tcp_valid_flags[]` (CONNTRACK_SPEC §4.1, §4.2, §4.4).
//!
//! The per-cell comments paraphrase the kernel's. The special handling that
//! runs *after* a lookup (re-open, resync, challenge ACK, simultaneous open,
//! RST checks) lives in `super` (`TcpState::packet`).

use super::TcpConntrack;
use crate::tuple::Dir;
use crate::wire::TcpFlags;

/// The class of a segment, "index" in K-TCP (`get_conntrack_index`). The
/// discriminants are the kernel's `enum tcp_bit_set`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TcpClass {
    /// SYN without ACK.
    Syn = 0,
    /// SYN with ACK.
    SynAck = 1,
    /// FIN (without SYN or RST).
    Fin = 2,
    /// ACK (without SYN, FIN or RST).
    Ack = 3,
    /// RST, whatever else is set.
    Rst = 4,
    /// None of RST, SYN, FIN, ACK. Also what `tcp_new` leaves in `last_index`.
    #[default]
    None = 5,
}

impl TcpClass {
    /// The class with this discriminant (`None` for anything else).
    pub(crate) const fn from_index(i: u8) -> TcpClass {
        match i {
            0 => TcpClass::Syn,
            1 => TcpClass::SynAck,
            2 => TcpClass::Fin,
            3 => TcpClass::Ack,
            4 => TcpClass::Rst,
            _ => TcpClass::None,
        }
    }
}

impl TcpClass {
    /// All classes, in table order.
    pub const ALL: [TcpClass; 6] =
        [TcpClass::Syn, TcpClass::SynAck, TcpClass::Fin, TcpClass::Ack, TcpClass::Rst, TcpClass::None];

    /// Classify by precedence: RST, then SYN (SYN+ACK if ACK), then FIN, then
    /// ACK, else NONE. PSH, URG, ECE and CWR play no part (§4.1).
    pub fn of(f: TcpFlags) -> TcpClass {
        if f.contains(TcpFlags::RST) {
            TcpClass::Rst
        } else if f.contains(TcpFlags::SYN) {
            if f.contains(TcpFlags::ACK) {
                TcpClass::SynAck
            } else {
                TcpClass::Syn
            }
        } else if f.contains(TcpFlags::FIN) {
            TcpClass::Fin
        } else if f.contains(TcpFlags::ACK) {
            TcpClass::Ack
        } else {
            TcpClass::None
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            TcpClass::Syn => "SYN",
            TcpClass::SynAck => "SYN+ACK",
            TcpClass::Fin => "FIN",
            TcpClass::Ack => "ACK",
            TcpClass::Rst => "RST",
            TcpClass::None => "NONE",
        }
    }
}

/// One cell of the transition table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// Move to this state (subject to the window check and the special cases).
    To(TcpConntrack),
    /// `sIG`: accept the packet but change nothing; it may belong to a real
    /// connection we are out of sync with (§4.5).
    Ignore,
    /// `sIV`: the packet is INVALID.
    Invalid,
}

const SS: Transition = Transition::To(TcpConntrack::SynSent);
const SR: Transition = Transition::To(TcpConntrack::SynRecv);
const ES: Transition = Transition::To(TcpConntrack::Established);
const FW: Transition = Transition::To(TcpConntrack::FinWait);
const CW: Transition = Transition::To(TcpConntrack::CloseWait);
const LA: Transition = Transition::To(TcpConntrack::LastAck);
const TW: Transition = Transition::To(TcpConntrack::TimeWait);
const CL: Transition = Transition::To(TcpConntrack::Close);
const S2: Transition = Transition::To(TcpConntrack::SynSent2);
const IG: Transition = Transition::Ignore;
const IV: Transition = Transition::Invalid;

/// `tcp_conntracks[2][6][TCP_CONNTRACK_MAX]`, indexed by direction, class
/// and current state. We are a man in the middle: we guess the sender's
/// state, assuming the receiver gets nothing we did not see.
#[rustfmt::skip]
pub(crate) const TRANSITIONS: [[[Transition; 10]; 6]; 2] = [
    // ---------------------------------------------------------------- ORIGINAL
    [
        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* SYN */ [SS, SS, IG, IG, IG, IG, IG, SS, SS, S2],
        // NO -> SS  a new connection starts.
        // SS -> SS  the SYN is retransmitted.
        // SR -> IG  a SYN after the handshake began: either an error the
        // ES -> IG  receiver will answer with RST, or the endpoints have
        // FW -> IG  started over and our entry is stale. Let it through and
        // CW -> IG  remember it, so a matching SYN/ACK can resync us.
        // LA -> IG
        // TW -> SS  the connection is reopened (RFC 1122 allows a new SYN
        // CL -> SS  from TIME-WAIT); checked further in `packet`.
        // S2 -> S2  a late retransmitted SYN during simultaneous open.

        //           NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* SYNACK */ [IV, IV, SR, IV, IV, IV, IV, IV, IV, SR],
        // NO -> IV  nothing to answer.
        // SS -> IV  the side that sent the SYN cannot send the SYN/ACK too.
        // SR -> SR  a late retransmitted SYN/ACK of a simultaneous open.
        // ES..CL -> IV  the client sends no SYN/ACK once past the handshake.
        // S2 -> SR  our SYN/ACK to the peer's SYN in a simultaneous open.

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* FIN */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // NO -> IV  nothing to close.
        // SS -> IV  no FIN before the SYN/ACK has been seen.
        // SR -> FW  closing starts (also straight from the handshake).
        // ES -> FW
        // FW -> LA  FINs seen both ways (or a FIN retransmitted): wait for
        // CW -> LA  the last ACK.
        // LA -> LA  a retransmitted FIN.
        // TW -> TW, CL -> CL  nothing changes.
        // S2 -> IV

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* ACK */ [ES, IV, ES, ES, CW, CW, TW, TW, CL, IV],
        // NO -> ES  assumed: a connection picked up in the middle (loose).
        // SS -> IV  no ACK before the SYN/ACK has been seen.
        // SR -> ES  the handshake completes.
        // ES -> ES
        // FW -> CW  the FIN is acknowledged.
        // CW -> CW
        // LA -> TW  the last ACK (unless it is an RFC 5961 challenge ACK).
        // TW -> TW  a retransmitted last ACK.
        // CL -> CL
        // S2 -> IV

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* RST */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // NO -> IV; everything else closes, once the RST checks pass.

        //         NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* NONE */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
        // A segment with none of RST/SYN/FIN/ACK is never valid.
    ],
    // ---------------------------------------------------------------- REPLY
    [
        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* SYN */ [IV, S2, IV, IV, IV, IV, IV, SS, IV, S2],
        // NO -> IV  unreachable: entries start from the original row.
        // SS -> S2  simultaneous open: both sides sent a SYN.
        // SR -> IV  the server sends no plain SYN after its SYN/ACK.
        // ES..LA -> IV
        // TW -> SS  reopened with the roles swapped; checked in `packet`.
        // CL -> IV
        // S2 -> S2  the simultaneous SYN is retransmitted.

        //           NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* SYNACK */ [IV, SR, IG, IG, IG, IG, IG, IG, IG, SR],
        // NO -> IV
        // SS -> SR  the normal handshake.
        // SR -> IG  a retransmitted SYN/ACK.
        // ES -> IG  a late retransmitted SYN/ACK, or the answer to a SYN we
        // FW..CL -> IG  ignored: may resync us (see `packet`).
        // S2 -> SR  simultaneous open.

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* FIN */ [IV, IV, FW, FW, LA, LA, LA, TW, CL, IV],
        // NO -> IV
        // SS -> IV  the server cannot send a FIN here.
        // SR -> FW  closing starts.
        // ES -> FW
        // FW -> LA  FINs seen both ways.
        // CW -> LA
        // LA -> LA  a retransmitted FIN.
        // TW -> TW, CL -> CL
        // S2 -> IV

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* ACK */ [IV, IG, SR, ES, CW, CW, TW, TW, CL, IG],
        // NO -> IV
        // SS -> IG  perhaps a half-open connection (or a challenge ACK).
        // SR -> SR  may answer a late retransmitted SYN (ESTABLISHED after a
        //           simultaneous open, see `packet`).
        // ES -> ES
        // FW -> CW  the FIN is acknowledged.
        // CW -> CW
        // LA -> TW  the last ACK (unless it is an RFC 5961 challenge ACK).
        // TW -> TW  a retransmitted last ACK.
        // CL -> CL
        // S2 -> IG

        //        NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* RST */ [IV, CL, CL, CL, CL, CL, CL, CL, CL, CL],
        // NO -> IV; everything else closes, once the RST checks pass.

        //         NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
        /* NONE */ [IV, IV, IV, IV, IV, IV, IV, IV, IV, IV],
    ],
];

/// Look up one cell of the transition table.
pub fn transition(dir: Dir, class: TcpClass, state: TcpConntrack) -> Transition {
    TRANSITIONS[dir.index()][class as usize][state as usize]
}

const FIN: usize = 0x01;
const SYN: usize = 0x02;
const RST: usize = 0x04;
const ACK: usize = 0x10;
const URG: usize = 0x20;

/// `tcp_valid_flags[]`: the legal values of FIN|SYN|RST|ACK|URG once PSH,
/// ECE and CWR have been masked out (PSH, ECE and CWR are always allowed).
#[rustfmt::skip]
pub(crate) const VALID_FLAGS: [bool; 64] = {
    let mut t = [false; 64];
    t[SYN] = true;              // connection request
    t[SYN | URG] = true;        // ... with urgent data (allowed, odd)
    t[SYN | ACK] = true;        // the answer to it
    t[RST] = true;              // reset
    t[RST | ACK] = true;        // reset acknowledging something
    t[FIN | ACK] = true;        // close (a FIN always carries an ACK)
    t[FIN | ACK | URG] = true;  // ... with urgent data
    t[ACK] = true;              // everything in between
    t[ACK | URG] = true;        // ... with urgent data
    t
};

/// K-TCP `tcp_error`'s flag check: after masking ECE, CWR and PSH, the flags
/// must be one of the nine combinations of [`VALID_FLAGS`] (§4.2).
pub fn valid_flags(f: TcpFlags) -> bool {
    let masked = f.bits() & !(TcpFlags::ECE | TcpFlags::CWR | TcpFlags::PSH).bits();
    VALID_FLAGS.get(usize::from(masked)).copied().unwrap_or(false)
}
