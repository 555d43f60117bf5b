//! Tests of the TCP tracker.
//!
//! * `cells`: one test per cell of both transition tables (120), against an
//!   expected table written out from CONNTRACK_SPEC §4.4, both as a lookup
//!   and as the behaviour of `packet()` on a neutral connection.
//! * `flags`: the flag-validity table, one test per valid combination plus
//!   all 256 flag bytes.
//! * `scenarios`: CONNTRACK_SPEC §13 scenarios 1-22 and the kernel's
//!   packetdrill selftests, driven through a small emulation of the table.
//! * `window`: window tracking details (scaling, SACK, bands, timeouts).
//! * `prop`: `packet()` never panics.

mod cells;
mod flags;
mod prop;
mod scenarios;
mod window;

use super::*;
use crate::wire::TcpFlags;

pub(super) const SYN: TcpFlags = TcpFlags::SYN;
pub(super) const ACK: TcpFlags = TcpFlags::ACK;
pub(super) const FIN: TcpFlags = TcpFlags::FIN;
pub(super) const RST: TcpFlags = TcpFlags::RST;
pub(super) const PSH: TcpFlags = TcpFlags::PSH;
pub(super) const SYNACK: TcpFlags = TcpFlags::SYN.union(TcpFlags::ACK);
pub(super) const FINACK: TcpFlags = TcpFlags::FIN.union(TcpFlags::ACK);
pub(super) const RSTACK: TcpFlags = TcpFlags::RST.union(TcpFlags::ACK);
pub(super) const PSHACK: TcpFlags = TcpFlags::PSH.union(TcpFlags::ACK);

/// The default window of the scenarios.
pub(super) const WIN: u16 = 64000;

static ZEROS: [u8; 65536] = [0; 65536];

/// A segment without options or payload.
pub(super) fn seg(flags: TcpFlags, seq: u32, ack: u32, win: u16) -> TcpSeg<'static> {
    TcpSeg::bare(40000, 80, seq, ack, flags, win)
}

/// A segment with `len` payload bytes.
pub(super) fn data(flags: TcpFlags, seq: u32, ack: u32, win: u16, len: usize) -> TcpSeg<'static> {
    TcpSeg { payload: &ZEROS[..len], ..seg(flags, seq, ack, win) }
}

/// A segment with options.
pub(super) fn opts(flags: TcpFlags, seq: u32, ack: u32, win: u16, options: &'static [u8]) -> TcpSeg<'static> {
    TcpSeg { options, ..seg(flags, seq, ack, win) }
}

pub(super) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The endpoints of the scenarios.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Host {
    C,
    S,
}

/// What the ruleset would see for a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(super) enum Ct {
    New,
    Established,
    Invalid,
}

/// One table entry as the core keeps it.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) st: TcpState,
    pub(super) status: Status,
    pub(super) deadline: Duration,
    /// Which host sent the packet that created the entry.
    pub(super) originator: Host,
}

/// A one-connection emulation of the table (what `table.rs` does around
/// the tracker): creation via `new` + `packet`, SEEN_REPLY after accepted
/// reply packets, ASSURED, timeouts, deletion, repeat, expiry.
pub(super) struct Net {
    pub(super) cfg: CtConfig,
    /// Virtual time since the start.
    pub(super) now: Duration,
    pub(super) entry: Option<Entry>,
    /// The tracker's verdict for the last packet.
    pub(super) last: Option<TcpVerdict>,
}

impl Net {
    pub(super) fn new() -> Net {
        Net::with(CtConfig::default())
    }

    pub(super) fn with(cfg: CtConfig) -> Net {
        Net { cfg, now: Duration::ZERO, entry: None, last: None }
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// A packet the ruleset accepts.
    pub(super) fn send(&mut self, from: Host, s: TcpSeg<'_>) -> Ct {
        self.send_with(from, s, true)
    }

    /// `accepted == false`: the ruleset drops the packet, so an entry it
    /// would create is never confirmed.
    pub(super) fn send_with(&mut self, from: Host, s: TcpSeg<'_>, accepted: bool) -> Ct {
        if self.entry.as_ref().is_some_and(|e| e.deadline <= self.now) {
            self.entry = None; // expired entries are absent
        }
        let Some(e) = self.entry.as_mut() else {
            return self.create(from, s, accepted);
        };
        let dir = if from == e.originator { Dir::Original } else { Dir::Reply };
        let cx = TcpCx { dir, status: e.status, confirmed: true, remaining: e.deadline.saturating_sub(self.now) };
        let ct = if dir == Dir::Reply || e.status.contains(Status::SEEN_REPLY) { Ct::Established } else { Ct::New };
        let v = e.st.packet(&cx, &s, &self.cfg);
        self.last = Some(v);
        match v {
            TcpVerdict::Accept { timeout, set_assured, delete } => {
                if delete {
                    self.entry = None;
                    return ct;
                }
                if let Some(t) = timeout {
                    e.deadline = self.now + t;
                }
                if set_assured {
                    e.status |= Status::ASSURED;
                }
            }
            TcpVerdict::Ignore => {}
            TcpVerdict::Invalid { timeout, .. } => {
                if let Some(t) = timeout {
                    e.deadline = self.now + t;
                }
                return Ct::Invalid;
            }
            TcpVerdict::Repeat => {
                self.entry = None;
                return self.create(from, s, accepted);
            }
        }
        if dir == Dir::Reply {
            e.status |= Status::SEEN_REPLY;
        }
        ct
    }

    fn create(&mut self, from: Host, s: TcpSeg<'_>, accepted: bool) -> Ct {
        let mut st = match TcpState::new(&s, &self.cfg.tcp_knobs) {
            Ok(st) => st,
            Err(reason) => {
                self.last = Some(TcpVerdict::Invalid { reason, timeout: None });
                return Ct::Invalid;
            }
        };
        let cx = TcpCx { dir: Dir::Original, status: Status::empty(), confirmed: false, remaining: Duration::ZERO };
        let v = st.packet(&cx, &s, &self.cfg);
        self.last = Some(v);
        match v {
            TcpVerdict::Accept { timeout, set_assured, .. } => {
                let mut status = Status::CONFIRMED;
                if set_assured {
                    status |= Status::ASSURED;
                }
                if accepted {
                    let deadline = self.now + timeout.unwrap_or(Duration::ZERO);
                    self.entry = Some(Entry { st, status, deadline, originator: from });
                }
                Ct::New
            }
            _ => Ct::Invalid,
        }
    }

    pub(super) fn e(&self) -> &Entry {
        self.entry.as_ref().expect("an entry exists")
    }

    pub(super) fn state(&self) -> TcpConntrack {
        self.e().st.state()
    }

    /// Seconds left, as `/proc/net/nf_conntrack` prints them.
    pub(super) fn timeout(&self) -> u64 {
        self.e().deadline.saturating_sub(self.now).as_secs()
    }

    pub(super) fn assured(&self) -> bool {
        self.e().status.contains(Status::ASSURED)
    }

    /// `[UNREPLIED]` in listings.
    pub(super) fn unreplied(&self) -> bool {
        !self.e().status.contains(Status::SEEN_REPLY)
    }

    /// Asserts state, timeout and ASSURED at once, with a readable message.
    #[track_caller]
    pub(super) fn expect(&self, state: TcpConntrack, timeout: u64, assured: bool) {
        let got = (self.state(), self.timeout(), self.assured());
        assert_eq!(got, (state, timeout, assured), "(state, timeout, assured); last verdict {:?}", self.last);
    }
}

/// C ISN 1000, S ISN 5000, windows 64000: the three-way handshake of §13.
pub(super) fn handshake(n: &mut Net) {
    assert_eq!(n.send(Host::C, seg(SYN, 1000, 0, WIN)), Ct::New);
    assert_eq!(n.send(Host::S, seg(SYNACK, 5000, 1001, WIN)), Ct::Established);
    assert_eq!(n.send(Host::C, seg(ACK, 1001, 5001, WIN)), Ct::Established);
    n.expect(TcpConntrack::Established, 432_000, true);
}

/// Scenario 1's data phase: C sends 100 bytes, S acknowledges them.
pub(super) fn data_phase(n: &mut Net) {
    handshake(n);
    assert_eq!(n.send(Host::C, data(PSHACK, 1001, 5001, WIN, 100)), Ct::Established);
    n.expect(TcpConntrack::Established, 300, true);
    assert_eq!(n.send(Host::S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
    n.expect(TcpConntrack::Established, 432_000, true);
}

#[test]
fn state_is_compact() {
    assert!(core::mem::size_of::<TcpState>() <= 64, "TcpState is {} bytes", core::mem::size_of::<TcpState>());
    assert_eq!(core::mem::size_of::<TcpState>(), 60);
}

#[test]
fn state_names_and_order() {
    let names: Vec<_> = TcpConntrack::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "NONE",
            "SYN_SENT",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT",
            "CLOSE_WAIT",
            "LAST_ACK",
            "TIME_WAIT",
            "CLOSE",
            "SYN_SENT2"
        ]
    );
    for (i, s) in TcpConntrack::ALL.iter().enumerate() {
        assert_eq!(*s as usize, i);
    }
}

#[test]
fn classes_follow_precedence() {
    assert_eq!(TcpClass::of(RST | SYN | FIN | ACK), TcpClass::Rst);
    assert_eq!(TcpClass::of(SYN | FIN), TcpClass::Syn);
    assert_eq!(TcpClass::of(SYN | FIN | ACK), TcpClass::SynAck);
    assert_eq!(TcpClass::of(FIN | PSH), TcpClass::Fin);
    assert_eq!(TcpClass::of(PSHACK | TcpFlags::URG | TcpFlags::ECE), TcpClass::Ack);
    assert_eq!(TcpClass::of(PSH | TcpFlags::URG | TcpFlags::CWR), TcpClass::None);
    for (i, c) in TcpClass::ALL.iter().enumerate() {
        assert_eq!(*c as usize, i, "{}", c.name());
    }
}

#[test]
fn early_drop_only_when_closing() {
    for s in TcpConntrack::ALL {
        let st = TcpState { state: s, ..TcpState::default() };
        let closing = matches!(
            s,
            TcpConntrack::FinWait
                | TcpConntrack::CloseWait
                | TcpConntrack::LastAck
                | TcpConntrack::TimeWait
                | TcpConntrack::Close
        );
        assert_eq!(st.can_early_drop(), closing, "{}", s.name());
    }
}

#[test]
fn state_timeouts_map() {
    let t = TcpTimeouts::default();
    let got: Vec<u64> = TcpConntrack::ALL.iter().map(|&s| state_timeout(&t, s).as_secs()).collect();
    assert_eq!(got, [120, 120, 60, 432_000, 120, 60, 30, 120, 10, 120]);
}
