//! The connection table and the per-packet algorithm (K-CORE
//! `nf_conntrack_in`, `resolve_normal_ct`, `init_conntrack`,
//! `nf_conntrack_handle_icmp`; K-PROTO `nf_confirm`).
//!
//! Per packet the caller does:
//! 1. [`Conntrack::track`]: classify, look up or create (unconfirmed), run
//!    the L4 tracker, decide ctinfo. Returns an [`Outcome`].
//! 2. Its ruleset, on `Outcome::state`.
//! 3. If accepted: the connection's helper (see the `helpers` crate), which may
//!    register expectations with [`Conntrack::expect`]; then
//!    [`Conntrack::confirm`]. If dropped: [`Conntrack::discard`], so a dropped
//!    first packet leaves no state.
//!
//! Layout: entries live in a slab of slots addressed by [`EntryId`] (slot +
//! generation, so stale ids never reach a reused slot); an index maps
//! `(zone, tuple)` to `(slot, direction)` with two keys per confirmed
//! entry. Nothing holds a pointer into another entry, which keeps the layout
//! open to a shared, lock-free table.

use crate::config::CtConfig;
use crate::expect::{EntryId, ExpectPolicy, ExpectRequest, Expectation, LineTrack};
use crate::icmp::{self, IcmpClass};
use crate::invalid::{InvalidCounters, InvalidReason};
use crate::status::{CtInfo, CtState, Status};
use crate::tcp::{TcpConntrack, TcpCx, TcpState, TcpVerdict};
use crate::time::Instant;
use crate::tuple::{proto, Addr, Dir, Tuple, Zone, L3};
use crate::udp::{self, UdpState};
use crate::wire::icmp::IcmpMsg;
use crate::wire::udp::UdpDgram;
use crate::wire::{checksum, parse_quoted_ip, Fragment, IpPacket, TcpSeg};
use core::time::Duration;
use std::collections::{HashMap, VecDeque};

/// Protocol state stored inline in an entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProtoState {
    Tcp(TcpState),
    Udp(UdpState),
    Icmp,
    /// GRE keeps the timeouts it was created with (`ct->proto.gre`), in seconds.
    Gre {
        timeout: u32,
        stream_timeout: u32,
    },
    Generic,
}

/// Per-direction accounting (`nf_conntrack_acct`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The helper attached to a connection and its per-connection state.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HelperSlot {
    /// Index in the caller's helper registry.
    pub id: u8,
    /// Name for listings (`helper=ftp`).
    pub name: &'static str,
    pub line: LineTrack,
}

/// What the pre-tracking stage (raw table) decided for a packet.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    pub zone: Zone,
    /// `CT --notrack`: the packet is UNTRACKED.
    pub notrack: bool,
    /// `ct helper set`: attach this helper to a connection the packet creates.
    pub helper: Option<(u8, &'static str)>,
}

/// One connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub orig: Tuple,
    pub reply: Tuple,
    pub zone: Zone,
    pub status: Status,
    /// Absolute expiry time.
    pub deadline: Instant,
    pub proto: ProtoState,
    pub mark: u32,
    pub helper: Option<HelperSlot>,
    /// The master connection, for entries created from an expectation.
    pub master: Option<EntryId>,
    /// Packet and byte counters per direction (kept when `acct` is on).
    pub counters: [Counter; 2],
    pub created: Instant,
}

impl Entry {
    pub fn tuple(&self, dir: Dir) -> &Tuple {
        match dir {
            Dir::Original => &self.orig,
            Dir::Reply => &self.reply,
        }
    }

    pub fn tcp_state(&self) -> Option<TcpConntrack> {
        match &self.proto {
            ProtoState::Tcp(t) => Some(t.state()),
            _ => None,
        }
    }

    /// Time left before expiry, zero once expired.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_since(now)
    }

    /// `nf_ct_is_expired`: the deadline has been reached.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.deadline <= now
    }

    /// Evictable under pressure: not ASSURED, or a closing TCP connection.
    pub fn can_early_drop(&self) -> bool {
        !self.status.contains(Status::ASSURED) || matches!(&self.proto, ProtoState::Tcp(t) if t.can_early_drop())
    }
}

/// The result of [`Conntrack::track`] for one packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// What `--ctstate` matches.
    pub state: CtState,
    /// The kernel's ctinfo, for packets attached to an entry.
    pub info: Option<CtInfo>,
    /// Why the packet is INVALID.
    pub reason: Option<InvalidReason>,
    /// The entry the packet is attached to (the master for ICMP errors).
    pub conn: Option<EntryId>,
    /// The entry was created by this packet and awaits confirmation.
    pub new: bool,
    /// No room in the table: the packet must be dropped before the ruleset.
    pub table_full: bool,
}

impl Outcome {
    fn invalid(reason: InvalidReason) -> Outcome {
        Outcome { state: CtState::Invalid, info: None, reason: Some(reason), conn: None, new: false, table_full: false }
    }

    fn untracked() -> Outcome {
        Outcome { state: CtState::Untracked, info: None, reason: None, conn: None, new: false, table_full: false }
    }

    fn attached(info: CtInfo, conn: Option<EntryId>, new: bool) -> Outcome {
        Outcome { state: info.state(), info: Some(info), reason: None, conn, new, table_full: false }
    }

    fn full() -> Outcome {
        Outcome { table_full: true, ..Outcome::untracked() }
    }

    /// `ct direction`: none for INVALID and UNTRACKED packets.
    pub fn dir(&self) -> Option<Dir> {
        self.info.map(|i| if i.is_reply() { Dir::Reply } else { Dir::Original })
    }
}

/// Table statistics, named as in `/proc/net/stat/nf_conntrack`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub found: u64,
    pub invalid: u64,
    pub ignore: u64,
    pub insert: u64,
    pub insert_failed: u64,
    /// Packets dropped because the table was full.
    pub drop: u64,
    pub early_drop: u64,
    pub icmp_error: u64,
    pub expect_new: u64,
    pub expect_create: u64,
    pub expect_delete: u64,
    pub delete: u64,
    pub untracked: u64,
}

/// What happened to a connection (`conntrack -E`'s `[NEW]`, `[UPDATE]`,
/// `[DESTROY]`; K-CORE `nf_conntrack_event_cache`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The entry was confirmed (`IPCT_NEW`).
    New,
    /// It saw its first reply, became ASSURED, or its TCP state changed
    /// (`IPCT_REPLY`, `IPCT_ASSURED`, `IPCT_PROTOINFO`).
    Update,
    /// A confirmed entry was removed: expiry, eviction, TCP re-open or
    /// [`Conntrack::kill`] (`IPCT_DESTROY`).
    Destroy,
}

impl EventKind {
    /// The tag `conntrack -E` prints, without brackets.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::New => "NEW",
            EventKind::Update => "UPDATE",
            EventKind::Destroy => "DESTROY",
        }
    }
}

/// One connection event with a snapshot of the entry as it was then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEvent {
    pub kind: EventKind,
    pub entry: Entry,
    /// Time left at the event; `None` for DESTROY (conntrack -E prints no
    /// timeout there).
    pub remaining: Option<Duration>,
}

/// The bounded event queue of [`Conntrack::enable_events`]: when it is
/// full, new events are dropped and counted (as a netlink listener that
/// does not read gets `ENOBUFS`).
#[derive(Clone, Debug)]
struct EventRing {
    queue: VecDeque<CtEvent>,
    cap: usize,
    lost: u64,
}

impl EventRing {
    fn push(&mut self, ev: CtEvent) {
        if self.queue.len() < self.cap {
            self.queue.push_back(ev);
        } else {
            self.lost += 1;
        }
    }
}

/// The parts of an entry whose change is an UPDATE event.
fn update_key(e: &Entry) -> (Status, Option<TcpConntrack>) {
    (e.status & (Status::SEEN_REPLY | Status::ASSURED), e.tcp_state())
}

/// Why an expectation could not be registered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ExpectError {
    /// The master is gone.
    NoMaster,
    /// Clashes with an expectation of another master (`-EBUSY`).
    Busy,
    /// The same expectation exists for another master or class (`-EALREADY`).
    Already,
    /// The global expectation table is full.
    TableFull,
}

#[derive(Clone, Debug, Default)]
struct Slot {
    generation: u32,
    entry: Option<Entry>,
    /// Position on an early-drop list.
    link: Link,
}

/// Parsed layer-4 view of a packet.
enum L4<'a> {
    Tcp(TcpSeg<'a>),
    Udp,
    Icmp(IcmpMsg<'a>),
    Gre((u16, u16)),
    Generic,
}

/// Slots scanned for an expired entry when the table is full and no
/// early-drop candidate is left.
const EVICTION_SCAN: usize = 64;
/// No slot (end of an intrusive list).
const NIL: u32 = u32::MAX;

/// The early-drop lists an entry can be on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum EvictList {
    /// Confirmed without ASSURED: evicted first.
    Unassured = 0,
    /// ASSURED TCP connections that started closing: evicted next.
    Closing = 1,
}

/// The list an entry belongs on, if any.
fn evict_list(e: &Entry) -> Option<EvictList> {
    if !e.status.contains(Status::CONFIRMED) {
        None
    } else if !e.status.contains(Status::ASSURED) {
        Some(EvictList::Unassured)
    } else if e.can_early_drop() {
        Some(EvictList::Closing)
    } else {
        None
    }
}

/// Links of an intrusive doubly linked list through the slots.
#[derive(Copy, Clone, Debug)]
struct Link {
    prev: u32,
    next: u32,
    list: Option<EvictList>,
}

impl Default for Link {
    fn default() -> Self {
        Link { prev: NIL, next: NIL, list: None }
    }
}

#[derive(Copy, Clone, Debug)]
struct ListHead {
    head: u32,
    tail: u32,
}

impl Default for ListHead {
    fn default() -> Self {
        ListHead { head: NIL, tail: NIL }
    }
}

/// The table state behind the [`Conntrack`] handles.
#[derive(Debug)]
struct Inner {
    cfg: CtConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<(Zone, Tuple), (u32, Dir)>,
    /// Allocated entries, unconfirmed ones included (`nf_conntrack_count`).
    count: usize,
    expects: Vec<Expectation>,
    gc_cursor: usize,
    evict_cursor: usize,
    /// Early-drop candidates of the whole table, oldest first, so a full
    /// table finds a victim wherever it is (not in a few buckets) in O(1);
    /// indexed by [`EvictList`].
    evict: [ListHead; 2],
    stats: Stats,
    invalid: InvalidCounters,
    /// Connection events, when enabled.
    events: Option<EventRing>,
}

impl Inner {
    fn new(cfg: CtConfig) -> Inner {
        Inner {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            count: 0,
            expects: Vec::new(),
            gc_cursor: 0,
            evict_cursor: 0,
            evict: [ListHead::default(); 2],
            stats: Stats::default(),
            invalid: InvalidCounters::default(),
            events: None,
        }
    }

    /// Record connection events ([`CtEvent`]) in a queue of at most `cap`
    /// events, to be taken with [`Conntrack::drain_events`]; `cap == 0`
    /// turns recording off (the default) and forgets queued events.
    fn enable_events(&mut self, cap: usize) {
        self.events = (cap > 0).then(|| EventRing { queue: VecDeque::with_capacity(cap.min(1024)), cap, lost: 0 });
    }

    /// Move the queued events, oldest first, to the end of `out`.
    fn drain_events(&mut self, out: &mut Vec<CtEvent>) {
        if let Some(r) = self.events.as_mut() {
            out.extend(r.queue.drain(..));
        }
    }

    /// Events dropped because the queue was full.
    fn events_lost(&self) -> u64 {
        self.events.as_ref().map_or(0, |r| r.lost)
    }

    fn config(&self) -> &CtConfig {
        &self.cfg
    }

    /// Replace the settings; existing entries keep their deadlines.
    fn set_config(&mut self, cfg: CtConfig) {
        self.cfg = cfg;
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn invalid_counters(&self) -> &InvalidCounters {
        &self.invalid
    }

    /// Allocated entries, unconfirmed ones included.
    fn count(&self) -> usize {
        self.count
    }

    fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.slots.get(id.slot as usize).filter(|s| s.generation == id.generation).and_then(|s| s.entry.as_ref())
    }

    fn entry_mut(&mut self, id: EntryId) -> Option<&mut Entry> {
        self.slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation).and_then(|s| s.entry.as_mut())
    }

    /// Confirmed, unexpired entries, in slot order.
    fn entries(&self, now: Instant) -> impl Iterator<Item = (EntryId, &Entry)> + '_ {
        self.slots.iter().enumerate().filter_map(move |(i, s)| {
            let e = s.entry.as_ref()?;
            let id = EntryId { slot: u32::try_from(i).ok()?, generation: s.generation };
            (e.status.contains(Status::CONFIRMED) && !e.is_expired(now)).then_some((id, e))
        })
    }

    /// Pending, unexpired expectations.
    fn expectations(&self, now: Instant) -> impl Iterator<Item = &Expectation> + '_ {
        self.expects.iter().filter(move |x| x.expires > now)
    }

    /// Look up a tuple; an expired entry counts as absent and is reaped.
    fn lookup(&mut self, zone: Zone, t: &Tuple, now: Instant) -> Option<(EntryId, Dir)> {
        let &(slot, dir) = self.index.get(&(zone, *t))?;
        let s = &self.slots[slot as usize];
        let id = EntryId { slot, generation: s.generation };
        if s.entry.as_ref().is_some_and(|e| e.is_expired(now)) {
            self.kill(id);
            return None;
        }
        Some((id, dir))
    }

    // ---------------------------------------------------------------
    // The per-packet path
    // ---------------------------------------------------------------

    /// Track one IP packet. See the module documentation for the protocol.
    fn track(&mut self, ip: &IpPacket<'_>, tmpl: &Template, now: Instant) -> Outcome {
        if tmpl.notrack {
            self.stats.untracked += 1;
            return Outcome::untracked();
        }
        let out = self.track_inner(ip, tmpl, now).unwrap_or_else(Outcome::invalid);
        match out.state {
            CtState::Invalid => {
                if let Some(r) = out.reason {
                    self.invalid.inc(r);
                }
                self.stats.invalid += 1;
            }
            CtState::Untracked if !out.table_full => self.stats.untracked += 1,
            _ => {}
        }
        out
    }

    fn track_inner(&mut self, ip: &IpPacket<'_>, tmpl: &Template, now: Instant) -> Result<Outcome, InvalidReason> {
        if ip.fragment == Fragment::NonFirst {
            return Err(InvalidReason::Fragment);
        }
        let verify = self.cfg.checksum && ip.fragment == Fragment::None;
        let l4 = match (ip.proto, ip.l3) {
            (proto::TCP, _) => {
                let seg = TcpSeg::parse(ip.l4)?;
                if verify && !checksum::l4_ok(ip) {
                    return Err(InvalidReason::TcpBadChecksum);
                }
                L4::Tcp(seg)
            }
            (proto::UDP, _) => {
                let d = UdpDgram::parse(ip.l4)?;
                if verify && d.checksum != 0 && !checksum::l4_ok(ip) {
                    return Err(InvalidReason::UdpBadChecksum);
                }
                L4::Udp
            }
            (proto::UDPLITE, _) => {
                // `udplite_error`: the length field is the checksum coverage
                // (0 = everything); a checksum is mandatory. The partial
                // coverage checksum itself is not verified here.
                let d = UdpDgram::parse_quoted(ip.l4)?;
                let cov = usize::from(d.length);
                if cov != 0 && (cov < 8 || cov > ip.l4.len()) {
                    return Err(InvalidReason::UdpBadLength);
                }
                if d.checksum == 0 {
                    return Err(InvalidReason::UdpBadChecksum);
                }
                L4::Udp
            }
            (proto::ICMP, L3::V4) | (proto::ICMPV6, L3::V6) => {
                let m = IcmpMsg::parse(ip.l4)?;
                if verify && !checksum::l4_ok(ip) {
                    return Err(InvalidReason::IcmpBadChecksum);
                }
                let class = match ip.l3 {
                    L3::V4 => icmp::classify_v4(m.ty)?,
                    L3::V6 => icmp::classify_v6(m.ty),
                };
                match class {
                    IcmpClass::Untracked => return Ok(Outcome::untracked()),
                    IcmpClass::Error => return self.icmp_error(ip, m.body, tmpl.zone, now),
                    IcmpClass::Redirect => {
                        let quote = redirect_quote(ip, &m)?;
                        return self.icmp_error(ip, quote, tmpl.zone, now);
                    }
                    IcmpClass::Query => L4::Icmp(m),
                }
            }
            (proto::GRE, _) => L4::Gre(udp::gre_keys(ip.l4)?),
            _ => L4::Generic,
        };
        let tuple = tuple_of(ip, &l4);
        self.resolve(ip, &l4, tuple, tmpl, now)
    }

    /// Look up or create the entry and run the L4 tracker.
    fn resolve(
        &mut self,
        ip: &IpPacket<'_>,
        l4: &L4<'_>,
        tuple: Tuple,
        tmpl: &Template,
        now: Instant,
    ) -> Result<Outcome, InvalidReason> {
        // A TCP re-open (`-NF_REPEAT`) kills the old entry and goes round once more.
        for _ in 0..2 {
            match self.lookup(tmpl.zone, &tuple, now) {
                Some((id, dir)) => {
                    self.stats.found += 1;
                    match self.existing(id, dir, ip, l4, now)? {
                        Some(out) => return Ok(out),
                        None => continue,
                    }
                }
                None => return self.create(ip, l4, tuple, tmpl, now),
            }
        }
        Err(InvalidReason::TcpInvalidTransition)
    }

    /// A packet of a confirmed entry. `Ok(None)` asks for a repeat.
    fn existing(
        &mut self,
        id: EntryId,
        dir: Dir,
        ip: &IpPacket<'_>,
        l4: &L4<'_>,
        now: Instant,
    ) -> Result<Option<Outcome>, InvalidReason> {
        let cfg = &self.cfg;
        let Some(e) = self.slots[id.slot as usize].entry.as_mut() else {
            return Err(InvalidReason::TcpInvalidTransition);
        };
        let info = ctinfo(e.status, dir);
        let before = self.events.is_some().then(|| update_key(e));
        let mut delete = false;
        let cx = TcpCx { dir, status: e.status, confirmed: true, remaining: e.remaining(now) };
        match (&mut e.proto, l4) {
            (ProtoState::Tcp(st), L4::Tcp(seg)) => match st.packet(&cx, seg, cfg) {
                TcpVerdict::Accept { timeout, set_assured, delete: del } => {
                    if del {
                        account(e, cfg, dir, ip);
                        delete = true;
                    } else if let Some(t) = timeout {
                        refresh(e, cfg, dir, ip, now, t);
                    }
                    if set_assured {
                        e.status |= Status::ASSURED;
                    }
                }
                TcpVerdict::Ignore => self.stats.ignore += 1,
                TcpVerdict::Invalid { reason, timeout } => {
                    if let Some(t) = timeout {
                        e.deadline = now + t;
                    }
                    return Err(reason);
                }
                TcpVerdict::Repeat => {
                    self.kill(id);
                    return Ok(None);
                }
            },
            (ProtoState::Udp(st), L4::Udp) => {
                let r = st.packet(e.status, now, cfg.udp, cfg.udp_stream);
                refresh(e, cfg, dir, ip, now, r.timeout);
                if r.set_assured {
                    e.status |= Status::ASSURED;
                }
            }
            (ProtoState::Gre { timeout, stream_timeout }, L4::Gre(_)) => {
                let secs = |s: &u32| Duration::from_secs(u64::from(*s));
                let r = udp::gre_packet(e.status, secs(timeout), secs(stream_timeout));
                refresh(e, cfg, dir, ip, now, r.timeout);
                if r.set_assured {
                    e.status |= Status::ASSURED;
                }
            }
            (ProtoState::Icmp, L4::Icmp(_)) => {
                let t = if e.orig.l3 == L3::V4 { cfg.icmp } else { cfg.icmpv6 };
                refresh(e, cfg, dir, ip, now, t);
            }
            (ProtoState::Generic, L4::Generic) => refresh(e, cfg, dir, ip, now, cfg.generic),
            // The tuple carries the protocol, so the kinds always agree.
            _ => return Err(InvalidReason::TcpInvalidTransition),
        }
        if dir == Dir::Reply {
            e.status |= Status::SEEN_REPLY;
        }
        if let (Some(before), Some(ring)) = (before, self.events.as_mut()) {
            if !delete && update_key(e) != before {
                ring.push(CtEvent { kind: EventKind::Update, entry: e.clone(), remaining: Some(e.remaining(now)) });
            }
        }
        if delete {
            self.kill(id);
            return Ok(Some(Outcome::attached(info, None, false)));
        }
        self.relist(id.slot);
        Ok(Some(Outcome::attached(info, Some(id), false)))
    }

    /// The first packet of an unknown tuple (`init_conntrack`).
    fn create(
        &mut self,
        ip: &IpPacket<'_>,
        l4: &L4<'_>,
        orig: Tuple,
        tmpl: &Template,
        now: Instant,
    ) -> Result<Outcome, InvalidReason> {
        let reply = orig.invert().ok_or(InvalidReason::IcmpNoInverse)?;
        if !self.make_room(now) {
            self.stats.drop += 1;
            return Ok(Outcome::full());
        }
        // The expectation is consumed at allocation, whatever happens next.
        let mut status = Status::empty();
        let mut master = None;
        let mut mark = 0;
        if let Some(exp) = self.take_expectation(&orig, tmpl.zone, now) {
            status |= Status::EXPECTED;
            master = Some(exp.master);
            mark = self.entry(exp.master).map_or(0, |m| m.mark);
        }
        let helper = tmpl.helper.map(|(id, name)| HelperSlot { id, name, line: LineTrack::default() });
        if helper.is_some() {
            status |= Status::HELPER;
        }
        let cfg = &self.cfg;
        let mut e = Entry {
            orig,
            reply,
            zone: tmpl.zone,
            status,
            deadline: now,
            proto: ProtoState::Generic,
            mark,
            helper,
            master,
            counters: [Counter::default(); 2],
            created: now,
        };
        match l4 {
            L4::Tcp(seg) => {
                let mut st = TcpState::new(seg, &cfg.tcp_knobs)?;
                let cx = TcpCx { dir: Dir::Original, status, confirmed: false, remaining: Duration::ZERO };
                match st.packet(&cx, seg, cfg) {
                    TcpVerdict::Accept { timeout, set_assured, .. } => {
                        e.proto = ProtoState::Tcp(st);
                        if let Some(t) = timeout {
                            refresh(&mut e, cfg, Dir::Original, ip, now, t);
                        }
                        if set_assured {
                            e.status |= Status::ASSURED;
                        }
                    }
                    TcpVerdict::Invalid { reason, .. } => return Err(reason),
                    TcpVerdict::Ignore | TcpVerdict::Repeat => return Err(InvalidReason::TcpInvalidNew),
                }
            }
            L4::Udp => {
                let st = UdpState::new(now);
                e.proto = ProtoState::Udp(st);
                refresh(&mut e, cfg, Dir::Original, ip, now, cfg.udp);
            }
            L4::Icmp(_) => {
                let ok = match orig.l3 {
                    L3::V4 => icmp::v4_valid_new(orig.icmp_type()),
                    L3::V6 => icmp::v6_valid_new(orig.icmp_type()),
                };
                if !ok {
                    return Err(InvalidReason::IcmpInvalidNew);
                }
                e.proto = ProtoState::Icmp;
                let t = if orig.l3 == L3::V4 { cfg.icmp } else { cfg.icmpv6 };
                refresh(&mut e, cfg, Dir::Original, ip, now, t);
            }
            L4::Gre(_) => {
                let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
                e.proto = ProtoState::Gre { timeout: secs(cfg.gre), stream_timeout: secs(cfg.gre_stream) };
                refresh(&mut e, cfg, Dir::Original, ip, now, cfg.gre);
            }
            L4::Generic => refresh(&mut e, cfg, Dir::Original, ip, now, cfg.generic),
        }
        let info = ctinfo(e.status, Dir::Original);
        let id = self.alloc(e);
        Ok(Outcome::attached(info, Some(id), true))
    }

    /// ICMP/ICMPv6 error correlation (`nf_conntrack_inet_error`): "Are they
    /// talking about one of our connections?"
    fn icmp_error(
        &mut self,
        outer: &IpPacket<'_>,
        quote: &[u8],
        zone: Zone,
        now: Instant,
    ) -> Result<Outcome, InvalidReason> {
        let inner = parse_quoted_ip(quote).map_err(|_| InvalidReason::IcmpErrorBadQuote);
        let found = inner.and_then(|inner| {
            if inner.fragment == Fragment::NonFirst || inner.l3 != outer.l3 {
                return Err(InvalidReason::IcmpErrorBadQuote);
            }
            let t = quoted_tuple(&inner)?;
            // The quoted packet is the offending one; the error travels the other way.
            let inv = t.invert().ok_or(InvalidReason::IcmpErrorBadQuote)?;
            let (id, dir) = self.lookup(zone, &inv, now).ok_or(InvalidReason::IcmpErrorNoConnection)?;
            let e = self.entry(id).ok_or(InvalidReason::IcmpErrorNoConnection)?;
            if e.tuple(dir).dst != outer.dst {
                return Err(InvalidReason::IcmpErrorOuterDaddr);
            }
            Ok((id, dir))
        });
        match found {
            Ok((id, dir)) => {
                let info = if dir == Dir::Reply { CtInfo::RelatedReply } else { CtInfo::Related };
                Ok(Outcome::attached(info, Some(id), false))
            }
            Err(r) => {
                self.stats.icmp_error += 1;
                Err(r)
            }
        }
    }

    /// Confirm the entry the packet created, after the ruleset accepted it
    /// (and its helper ran). A no-op for packets of confirmed entries.
    fn confirm(&mut self, out: &Outcome, now: Instant) {
        let Some(id) = out.conn.filter(|_| out.new) else { return };
        let Some(e) = self.entry(id) else { return };
        let keys = [((e.zone, e.orig), Dir::Original), ((e.zone, e.reply), Dir::Reply)];
        if keys.iter().any(|(k, _)| self.index.contains_key(k)) {
            // Single writer: only reachable if two unconfirmed entries race.
            self.stats.insert_failed += 1;
            self.kill(id);
            return;
        }
        for (k, d) in keys {
            self.index.insert(k, (id.slot, d));
        }
        if let Some(e) = self.entry_mut(id) {
            e.status |= Status::CONFIRMED;
        }
        self.relist(id.slot);
        self.stats.insert += 1;
        if let Some(ring) = self.events.as_mut() {
            if let Some(e) = self.slots[id.slot as usize].entry.as_ref() {
                ring.push(CtEvent { kind: EventKind::New, entry: e.clone(), remaining: Some(e.remaining(now)) });
            }
        }
    }

    /// Forget the unconfirmed entry of a dropped packet.
    fn discard(&mut self, out: &Outcome) {
        if let Some(id) = out.conn.filter(|_| out.new) {
            self.kill(id);
        }
    }

    /// The helper state of a connection with the tuples it needs.
    fn helper_state(&mut self, id: EntryId) -> Option<(Tuple, Tuple, Zone, &mut HelperSlot)> {
        let e = self.entry_mut(id)?;
        let (o, r, z) = (e.orig, e.reply, e.zone);
        Some((o, r, z, e.helper.as_mut()?))
    }

    /// Set a connection's mark (`CONNMARK`/`ct mark set`).
    fn set_mark(&mut self, id: EntryId, mark: u32) {
        if let Some(e) = self.entry_mut(id) {
            e.mark = mark;
        }
    }

    // ---------------------------------------------------------------
    // Allocation, deletion, expiry
    // ---------------------------------------------------------------

    fn alloc(&mut self, e: Entry) -> EntryId {
        self.count += 1;
        if let Some(slot) = self.free.pop() {
            let s = &mut self.slots[slot as usize];
            s.entry = Some(e);
            return EntryId { slot, generation: s.generation };
        }
        let slot = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot { generation: 0, entry: Some(e), link: Link::default() });
        EntryId { slot, generation: 0 }
    }

    /// Remove an entry (confirmed or not) and its pending expectations.
    fn kill(&mut self, id: EntryId) -> bool {
        let Some(s) = self.slots.get_mut(id.slot as usize).filter(|s| s.generation == id.generation) else {
            return false;
        };
        let Some(e) = s.entry.take() else { return false };
        s.generation = s.generation.wrapping_add(1);
        self.unlink(id.slot);
        self.free.push(id.slot);
        self.count -= 1;
        if e.status.contains(Status::CONFIRMED) {
            self.index.remove(&(e.zone, e.orig));
            self.index.remove(&(e.zone, e.reply));
            self.stats.delete += 1;
            if let Some(ring) = self.events.as_mut() {
                ring.push(CtEvent { kind: EventKind::Destroy, entry: e, remaining: None });
            }
        }
        let before = self.expects.len();
        self.expects.retain(|x| x.master != id);
        self.stats.expect_delete += (before - self.expects.len()) as u64;
        true
    }

    /// Take a slot off its early-drop list.
    fn unlink(&mut self, slot: u32) {
        let Some(link) = self.slots.get(slot as usize).map(|s| s.link) else { return };
        let Some(list) = link.list else { return };
        match link.prev {
            NIL => self.evict[list as usize].head = link.next,
            p => self.slots[p as usize].link.next = link.next,
        }
        match link.next {
            NIL => self.evict[list as usize].tail = link.prev,
            n => self.slots[n as usize].link.prev = link.prev,
        }
        self.slots[slot as usize].link = Link::default();
    }

    /// Put a slot on the early-drop list its entry belongs on now (at the
    /// tail when it moves), or on none.
    fn relist(&mut self, slot: u32) {
        let Some(s) = self.slots.get(slot as usize) else { return };
        let want = s.entry.as_ref().and_then(evict_list);
        if want == s.link.list {
            return;
        }
        self.unlink(slot);
        let Some(list) = want else { return };
        let tail = self.evict[list as usize].tail;
        self.slots[slot as usize].link = Link { prev: tail, next: NIL, list: Some(list) };
        match tail {
            NIL => self.evict[list as usize].head = slot,
            t => self.slots[t as usize].link.next = slot,
        }
        self.evict[list as usize].tail = slot;
    }

    /// Ensure there is room for one more entry (`nf_conntrack_max`), like
    /// `early_drop` but over the whole table's candidates, in O(1): the
    /// oldest non-ASSURED entry, else the oldest closing TCP connection,
    /// else an expired entry. An ASSURED connection that is not closing is
    /// never evicted.
    fn make_room(&mut self, now: Instant) -> bool {
        let max = self.cfg.max_entries as usize;
        if max == 0 || self.count < max {
            return true;
        }
        for list in [EvictList::Unassured, EvictList::Closing] {
            let head = self.evict[list as usize].head;
            if head != NIL {
                let s = &self.slots[head as usize];
                let expired = s.entry.as_ref().is_some_and(|e| e.is_expired(now));
                let id = EntryId { slot: head, generation: s.generation };
                self.kill(id);
                if !expired {
                    self.stats.early_drop += 1;
                }
                return true;
            }
        }
        // No candidate: an expired entry the collector has not reached yet.
        let n = self.slots.len();
        for _ in 0..EVICTION_SCAN.min(n) {
            let i = self.evict_cursor % n;
            self.evict_cursor = self.evict_cursor.wrapping_add(1);
            let s = &self.slots[i];
            if s.entry.as_ref().is_some_and(|e| e.status.contains(Status::CONFIRMED) && e.is_expired(now)) {
                let id = EntryId { slot: i as u32, generation: s.generation };
                self.kill(id);
                return true;
            }
        }
        false
    }

    /// Reap expired entries and expectations, visiting at most `budget`
    /// slots. Returns the number of entries removed.
    fn gc(&mut self, now: Instant, budget: usize) -> usize {
        let before = self.expects.len();
        self.expects.retain(|x| x.expires > now);
        self.stats.expect_delete += (before - self.expects.len()) as u64;
        let n = self.slots.len();
        let mut reaped = 0;
        for _ in 0..budget.min(n) {
            let i = self.gc_cursor % n;
            self.gc_cursor = self.gc_cursor.wrapping_add(1);
            let s = &self.slots[i];
            if s.entry.as_ref().is_some_and(|e| e.status.contains(Status::CONFIRMED) && e.is_expired(now)) {
                let id = EntryId { slot: i as u32, generation: s.generation };
                reaped += usize::from(self.kill(id));
            }
        }
        reaped
    }

    // ---------------------------------------------------------------
    // Expectations
    // ---------------------------------------------------------------

    /// Register an expectation for `master` (`nf_ct_expect_related`).
    fn expect(
        &mut self,
        master: EntryId,
        req: ExpectRequest,
        policy: ExpectPolicy,
        helper: &'static str,
        now: Instant,
    ) -> Result<(), ExpectError> {
        let zone = self.entry(master).ok_or(ExpectError::NoMaster)?.zone;
        self.expects.retain(|x| x.expires > now);
        // An identical expectation of the same master is replaced; one of
        // another master (or class) is refused; any overlap is a clash.
        let mut i = 0;
        while i < self.expects.len() {
            let x = &self.expects[i];
            if x.req.tuple == req.tuple
                && x.req.match_src_addr == req.match_src_addr
                && x.req.match_sport == req.match_sport
                && x.zone == zone
            {
                if x.master != master || x.req.class != req.class {
                    return Err(ExpectError::Already);
                }
                self.expects.remove(i);
                self.stats.expect_delete += 1;
                continue;
            }
            if x.clashes(&req, zone) {
                return Err(ExpectError::Busy);
            }
            i += 1;
        }
        if policy.max_expected > 0 {
            let mine = |x: &Expectation| x.master == master && x.req.class == req.class;
            while self.expects.iter().filter(|x| mine(x)).count() >= policy.max_expected as usize {
                // Oldest first: expectations are kept in registration order.
                let Some(pos) = self.expects.iter().position(mine) else { break };
                self.expects.remove(pos);
                self.stats.expect_delete += 1;
            }
        }
        if self.expects.len() >= self.cfg.max_expectations as usize {
            return Err(ExpectError::TableFull);
        }
        self.expects.push(Expectation { req, zone, master, helper, created: now, expires: now + policy.timeout });
        self.stats.expect_create += 1;
        Ok(())
    }

    /// Find and unlink the expectation a new connection matches. The
    /// master must be confirmed.
    fn take_expectation(&mut self, t: &Tuple, zone: Zone, now: Instant) -> Option<Expectation> {
        if self.expects.is_empty() {
            return None;
        }
        let pos = self.expects.iter().position(|x| {
            x.expires > now
                && x.matches(t, zone)
                && self.entry(x.master).is_some_and(|m| m.status.contains(Status::CONFIRMED) && !m.is_expired(now))
        })?;
        self.stats.expect_new += 1;
        Some(self.expects.remove(pos))
    }
}

/// A handle on the connection table. [`Conntrack::worker`] makes another
/// handle on the same table for another thread.
#[derive(Debug)]
pub struct Conntrack {
    inner: std::sync::Arc<std::sync::Mutex<Inner>>,
}

impl Conntrack {
    pub fn new(cfg: CtConfig) -> Conntrack {
        Conntrack { inner: std::sync::Arc::new(std::sync::Mutex::new(Inner::new(cfg))) }
    }

    /// Another handle on the same table, for another worker thread.
    pub fn worker(&self) -> Conntrack {
        Conntrack { inner: std::sync::Arc::clone(&self.inner) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record connection events ([`CtEvent`]) in a queue of at most `cap`
    /// events, to be taken with [`Conntrack::drain_events`]; `cap == 0`
    /// turns recording off (the default) and forgets queued events.
    pub fn enable_events(&mut self, cap: usize) {
        self.lock().enable_events(cap);
    }

    /// Move the queued events, oldest first, to the end of `out`.
    pub fn drain_events(&mut self, out: &mut Vec<CtEvent>) {
        self.lock().drain_events(out);
    }

    /// Events dropped because the queue was full.
    pub fn events_lost(&self) -> u64 {
        self.lock().events_lost()
    }

    pub fn config(&self) -> CtConfig {
        self.lock().config().clone()
    }

    /// Replace the settings; existing entries keep their deadlines.
    pub fn set_config(&mut self, cfg: CtConfig) {
        self.lock().set_config(cfg);
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats().clone()
    }

    pub fn invalid_counters(&self) -> InvalidCounters {
        self.lock().invalid_counters().clone()
    }

    /// Allocated entries, unconfirmed ones included.
    pub fn count(&self) -> usize {
        self.lock().count()
    }

    /// A snapshot of one entry.
    pub fn entry(&self, id: EntryId) -> Option<Entry> {
        self.lock().entry(id).cloned()
    }

    /// Snapshots of the confirmed, unexpired entries, in slot order.
    pub fn entries(&self, now: Instant) -> impl Iterator<Item = (EntryId, Entry)> {
        let v: Vec<(EntryId, Entry)> = self.lock().entries(now).map(|(id, e)| (id, e.clone())).collect();
        v.into_iter()
    }

    /// Pending, unexpired expectations.
    pub fn expectations(&self, now: Instant) -> impl Iterator<Item = Expectation> {
        let v: Vec<Expectation> = self.lock().expectations(now).cloned().collect();
        v.into_iter()
    }

    /// Look up a tuple; an expired entry counts as absent and is reaped.
    pub fn lookup(&mut self, zone: Zone, t: &Tuple, now: Instant) -> Option<(EntryId, Dir)> {
        self.lock().lookup(zone, t, now)
    }

    /// Track one IP packet. See the module documentation for the protocol.
    pub fn track(&mut self, ip: &IpPacket<'_>, tmpl: &Template, now: Instant) -> Outcome {
        self.lock().track(ip, tmpl, now)
    }

    /// Confirm the entry the packet created, after the ruleset accepted it
    /// (and its helper ran). A no-op for packets of confirmed entries.
    pub fn confirm(&mut self, out: &Outcome, now: Instant) {
        self.lock().confirm(out, now);
    }

    /// Forget the unconfirmed entry of a dropped packet.
    pub fn discard(&mut self, out: &Outcome) {
        self.lock().discard(out);
    }

    /// Run `f` on a connection's helper state, with its tuples and zone,
    /// while no other worker can change the connection.
    pub fn with_helper<R>(
        &mut self,
        id: EntryId,
        f: impl FnOnce(&Tuple, &Tuple, Zone, &mut HelperSlot) -> R,
    ) -> Option<R> {
        let mut g = self.lock();
        let (o, r, z, slot) = g.helper_state(id)?;
        Some(f(&o, &r, z, slot))
    }

    /// Set a connection's mark (`CONNMARK`/`ct mark set`).
    pub fn set_mark(&mut self, id: EntryId, mark: u32) {
        self.lock().set_mark(id, mark);
    }

    /// Remove an entry (confirmed or not) and its pending expectations.
    pub fn kill(&mut self, id: EntryId) -> bool {
        self.lock().kill(id)
    }

    /// Reap expired entries and expectations with bounded work. Returns the
    /// number of entries removed.
    pub fn gc(&mut self, now: Instant, budget: usize) -> usize {
        self.lock().gc(now, budget)
    }

    /// Register an expectation for `master` (`nf_ct_expect_related`).
    pub fn expect(
        &mut self,
        master: EntryId,
        req: ExpectRequest,
        policy: ExpectPolicy,
        helper: &'static str,
        now: Instant,
    ) -> Result<(), ExpectError> {
        self.lock().expect(master, req, policy, helper, now)
    }
}

/// ctinfo from the entry's status and the packet's direction.
fn ctinfo(status: Status, dir: Dir) -> CtInfo {
    match dir {
        Dir::Reply => CtInfo::EstablishedReply,
        Dir::Original if status.contains(Status::SEEN_REPLY) => CtInfo::Established,
        Dir::Original if status.contains(Status::EXPECTED) => CtInfo::Related,
        Dir::Original => CtInfo::New,
    }
}

fn account(e: &mut Entry, cfg: &CtConfig, dir: Dir, ip: &IpPacket<'_>) {
    if cfg.acct {
        let c = &mut e.counters[dir.index()];
        c.packets += 1;
        c.bytes += u64::from(ip.ip_len);
    }
}

/// `nf_ct_refresh_acct`: count the packet and move the deadline (up or
/// down), unless the entry has a fixed timeout.
fn refresh(e: &mut Entry, cfg: &CtConfig, dir: Dir, ip: &IpPacket<'_>, now: Instant, timeout: Duration) {
    account(e, cfg, dir, ip);
    if !e.status.contains(Status::FIXED_TIMEOUT) {
        e.deadline = now + timeout;
    }
}

fn tuple_of(ip: &IpPacket<'_>, l4: &L4<'_>) -> Tuple {
    let (sport, dport) = match l4 {
        L4::Tcp(seg) => (seg.sport, seg.dport),
        L4::Udp => ports(ip.l4),
        L4::Icmp(m) => (m.ident, u16::from(m.ty) << 8 | u16::from(m.code)),
        L4::Gre(keys) => *keys,
        L4::Generic => (0, 0),
    };
    Tuple { l3: ip.l3, proto: ip.proto, src: ip.src, dst: ip.dst, sport, dport }
}

/// The first four bytes of a TCP/UDP header as ports.
fn ports(l4: &[u8]) -> (u16, u16) {
    match l4 {
        [a, b, c, d, ..] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
        _ => (0, 0),
    }
}

/// The tuple of a quoted packet (`nf_ct_get_tuplepr`): ports need 4 bytes,
/// an ICMP header 8.
fn quoted_tuple(inner: &IpPacket<'_>) -> Result<Tuple, InvalidReason> {
    let (sport, dport) = match (inner.proto, inner.l3) {
        (proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP, _) => {
            if inner.l4.len() < 4 {
                return Err(InvalidReason::IcmpErrorBadQuote);
            }
            ports(inner.l4)
        }
        (proto::ICMP, L3::V4) | (proto::ICMPV6, L3::V6) => {
            let m = IcmpMsg::parse(inner.l4).map_err(|_| InvalidReason::IcmpErrorBadQuote)?;
            (m.ident, u16::from(m.ty) << 8 | u16::from(m.code))
        }
        _ => (0, 0),
    };
    Ok(Tuple { l3: inner.l3, proto: inner.proto, src: inner.src, dst: inner.dst, sport, dport })
}

/// The quoted packet of an ICMPv6 redirect (K-ICMP6, CONNTRACK_SPEC §6.4):
/// code 0, hop limit 255, a link-local source, and a first ND option of
/// type 4 (Redirected Header).
fn redirect_quote<'a>(ip: &IpPacket<'a>, m: &IcmpMsg<'a>) -> Result<&'a [u8], InvalidReason> {
    let link_local = ip.src.0[0] == 0xfe && ip.src.0[1] & 0xc0 == 0x80;
    if m.code != 0 || ip.ttl != 255 || !link_local {
        return Err(InvalidReason::Icmpv6BadRedirect);
    }
    // Body: target (16) and destination (16) addresses, then options.
    let opts = m.body.get(32..).ok_or(InvalidReason::Icmpv6BadRedirect)?;
    match opts {
        [4, len, _, _, _, _, _, _, rest @ ..] if *len > 0 => {
            let avail = (usize::from(*len) * 8).saturating_sub(8).min(rest.len());
            Ok(&rest[..avail])
        }
        _ => Err(InvalidReason::Icmpv6BadRedirect),
    }
}

/// Whether an address is the unspecified address (wildcard in listings).
pub fn is_unspecified(a: &Addr) -> bool {
    a.0.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_ip;

    fn udp(sp: u16, dp: u16, fwd: bool) -> Vec<u8> {
        let (a, b) = if fwd { ([10, 0, 0, 1], [10, 0, 0, 2]) } else { ([10, 0, 0, 2], [10, 0, 0, 1]) };
        let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&a);
        p.extend_from_slice(&b);
        let c = checksum::checksum(&p, 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&sp.to_be_bytes());
        p.extend_from_slice(&dp.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]); // no UDP checksum
        p
    }

    /// Every slot is on the list its entry belongs on, and the lists are
    /// well formed (links agree both ways, heads and tails match).
    fn check_lists(ct: &Inner) {
        for (list, h) in ct.evict.iter().enumerate() {
            let (mut prev, mut cur, mut n) = (NIL, h.head, 0);
            while cur != NIL {
                let s = &ct.slots[cur as usize];
                assert_eq!(s.link.list.map(|l| l as usize), Some(list));
                assert_eq!(s.link.prev, prev);
                (prev, cur) = (cur, s.link.next);
                n += 1;
                assert!(n <= ct.slots.len(), "cycle");
            }
            assert_eq!(h.tail, prev);
        }
        for s in &ct.slots {
            assert_eq!(s.entry.as_ref().and_then(evict_list), s.link.list, "{:?}", s.entry);
        }
    }

    #[test]
    fn early_drop_lists_follow_the_entries() {
        let mut ct = Conntrack::new(CtConfig { max_entries: 64, checksum: false, ..CtConfig::default() });
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut t = 0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let port = 1 + (x % 100) as u16;
            t += x % 700;
            let now = Instant::from_millis(t);
            match (x >> 8) % 8 {
                0 => {
                    let first = ct.entries(now).next().map(|(id, _)| id);
                    if let Some(id) = first {
                        ct.kill(id);
                    }
                }
                1 => {
                    ct.gc(now, 16);
                }
                k => {
                    let pkt = udp(port, 53, k % 2 == 0);
                    let ip = parse_ip(&pkt).unwrap();
                    let o = ct.track(&ip, &Template::default(), now);
                    if k == 7 {
                        ct.discard(&o);
                    } else {
                        ct.confirm(&o, now);
                    }
                }
            }
            check_lists(&ct.lock());
        }
        assert!(ct.stats().early_drop > 0, "the table filled up and evicted");
    }
}
