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
use crate::expect::{EntryId, ExpectPolicy, ExpectRequest, ExpectTable, Expectation, LineTrack};
use crate::icmp::{self, IcmpClass};
use crate::invalid::{InvalidCounters, InvalidReason};
use crate::sctp::{SctpConntrack, SctpPkt, SctpState};
use crate::status::{CtInfo, CtState, Status};
use crate::store::{wheel_list, wheel_second, Body, Class, Cursor, HelperExt, Pool, WHEEL};
use crate::sync::{lock, try_lock, AtomicBool, Mutex, MutexGuard, Ordering};
use crate::tcp::{TcpConntrack, TcpCx, TcpState, TcpVerdict};
use crate::time::Instant;
use crate::tuple::{proto, Addr, Dir, Tuple, Zone, L3};
use crate::udp::{self, UdpState};
use crate::wire::icmp::IcmpMsg;
use crate::wire::udp::UdpDgram;
use crate::wire::{checksum, parse_quoted_ip, Fragment, IpPacket, TcpSeg};
use core::time::Duration;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

/// Protocol state stored inline in an entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ProtoState {
    Tcp(TcpState),
    Udp(UdpState),
    Sctp(SctpState),
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
    /// Packet and byte counters per direction (kept when `acct` is on).
    pub counters: [Counter; 2],
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

    pub fn sctp_state(&self) -> Option<SctpConntrack> {
        match &self.proto {
            ProtoState::Sctp(s) => Some(s.state),
            _ => None,
        }
    }

    /// The protocol state name listings print (TCP's or SCTP's).
    pub fn state_name(&self) -> Option<&'static str> {
        match &self.proto {
            ProtoState::Tcp(t) => Some(t.state().name()),
            ProtoState::Sctp(s) => Some(s.state.name()),
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

    /// Evictable under pressure: not ASSURED, or a closing TCP connection
    /// or SCTP association.
    pub fn can_early_drop(&self) -> bool {
        !self.status.contains(Status::ASSURED)
            || match &self.proto {
                ProtoState::Tcp(t) => t.can_early_drop(),
                ProtoState::Sctp(s) => s.can_early_drop(),
                _ => false,
            }
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
    /// The connection's status bits after this packet (`--ctstatus`), for
    /// packets attached to a live entry (the master for ICMP errors).
    pub status: Option<Status>,
}

impl Outcome {
    /// An INVALID packet, for `reason`.
    pub fn invalid(reason: InvalidReason) -> Outcome {
        Outcome {
            state: CtState::Invalid,
            info: None,
            reason: Some(reason),
            conn: None,
            new: false,
            table_full: false,
            status: None,
        }
    }

    /// An UNTRACKED packet (no entry).
    pub fn untracked() -> Outcome {
        Outcome {
            state: CtState::Untracked,
            info: None,
            reason: None,
            conn: None,
            new: false,
            table_full: false,
            status: None,
        }
    }

    fn attached(info: CtInfo, conn: Option<(EntryId, Status)>, new: bool) -> Outcome {
        let (conn, status) = (conn.map(|c| c.0), conn.map(|c| c.1));
        Outcome { state: info.state(), info: Some(info), reason: None, conn, new, table_full: false, status }
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
    /// New entries another worker had inserted first, the packet attached
    /// to that entry (`clash_resolve`).
    pub clash_resolve: u64,
    /// Packets dropped because the table was full.
    pub drop: u64,
    pub early_drop: u64,
    pub icmp_error: u64,
    pub expect_new: u64,
    pub expect_create: u64,
    pub expect_delete: u64,
    pub delete: u64,
    pub untracked: u64,
    /// Packets whose helper line state (FTP) could not be kept because
    /// every state slot was in use: that control connection's ALG opens
    /// nothing until one is free.
    pub helper_state_full: u64,
}

/// What happened to a connection (`conntrack -E`'s `[NEW]`, `[UPDATE]`,
/// `[DESTROY]`; K-CORE `nf_conntrack_event_cache`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The entry was confirmed (`IPCT_NEW`).
    New,
    /// It saw its first reply, became ASSURED, or its TCP or SCTP state
    /// changed (`IPCT_REPLY`, `IPCT_ASSURED`, `IPCT_PROTOINFO`).
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
fn update_key(e: &Entry) -> (Status, Option<&'static str>) {
    (e.status & (Status::SEEN_REPLY | Status::ASSURED), e.state_name())
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

/// What [`Conntrack::confirm`] did with a new entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Inserted, or nothing to insert (the packet belonged to an entry).
    Inserted,
    /// Another worker inserted the same connection first; the packet joins
    /// that entry (UDP, UDP-Lite, GRE, generic: the kernel's clash
    /// resolution; GRE since Linux 6.5).
    ClashResolved,
    /// Another worker inserted the same connection first and the protocol
    /// does not allow a clash (TCP, ICMP): drop the packet (`insert_failed`).
    Failed,
}

/// Parsed layer-4 view of a packet.
enum L4<'a> {
    Tcp(TcpSeg<'a>),
    Udp,
    Sctp(SctpPkt<'a>),
    Icmp(IcmpMsg<'a>),
    Gre((u16, u16)),
    Generic,
}

/// Timer-list entries a full pool reaps before it evicts anything.
const EXPIRE_WHEN_FULL: usize = 64;
/// Marks an [`EntryId`] slot of the IPv6 pool.
const V6_SLOT: u32 = 1 << 31;
/// Helper ids that have a name for listings.
const HELPER_NAMES: usize = 32;

/// `Body::kind` values.
mod kind {
    pub(super) const GENERIC: u8 = 0;
    pub(super) const TCP: u8 = 1;
    pub(super) const UDP: u8 = 2;
    pub(super) const ICMP: u8 = 3;
    pub(super) const GRE: u8 = 4;
    pub(super) const SCTP: u8 = 5;
}

// SCTP's packed state fits the words TCP's sizes (no entry grows).
const _: () = assert!(crate::sctp::PACKED_WORDS <= crate::tcp::PACKED_WORDS);

/// The eviction class of an entry in its present state.
fn class_of(e: &Entry) -> Class {
    if !e.status.contains(Status::ASSURED) {
        Class::Unassured
    } else if e.can_early_drop() {
        Class::Closing
    } else {
        Class::Kept
    }
}

/// Write the mutable part of `e` into its stored form; the timer and
/// helper-extension links stay.
fn store_body(b: &mut Body, e: &Entry) {
    b.set_deadline_ns(e.deadline.as_nanos());
    b.status = e.status.bits();
    b.mark = e.mark;
    b.helper = e.helper.map_or(0, |h| h.id.saturating_add(1));
    let mut w = [0u32; crate::tcp::PACKED_WORDS];
    b.kind = match e.proto {
        ProtoState::Tcp(t) => {
            w = t.pack();
            kind::TCP
        }
        ProtoState::Udp(u) => {
            let ns = u.stream_ts.as_nanos();
            w[0] = ns as u32;
            w[1] = (ns >> 32) as u32;
            kind::UDP
        }
        ProtoState::Sctp(st) => {
            w[..crate::sctp::PACKED_WORDS].copy_from_slice(&st.pack());
            kind::SCTP
        }
        ProtoState::Icmp => kind::ICMP,
        ProtoState::Gre { timeout, stream_timeout } => {
            w[0] = timeout;
            w[1] = stream_timeout;
            kind::GRE
        }
        ProtoState::Generic => kind::GENERIC,
    };
    b.proto = w;
}

fn load_proto(b: &Body) -> ProtoState {
    let w = &b.proto;
    match b.kind {
        kind::TCP => ProtoState::Tcp(TcpState::unpack(w)),
        kind::UDP => {
            ProtoState::Udp(UdpState { stream_ts: Instant::from_nanos(u64::from(w[0]) | u64::from(w[1]) << 32) })
        }
        kind::SCTP => ProtoState::Sctp(SctpState::unpack(w)),
        kind::ICMP => ProtoState::Icmp,
        kind::GRE => ProtoState::Gre { timeout: w[0], stream_timeout: w[1] },
        _ => ProtoState::Generic,
    }
}

/// The table all handles share.
#[derive(Debug)]
struct Store {
    v4: Pool,
    v6: Pool,
    expects: ExpectTable,
    ext: HelperExt,
    /// Helper names by id, for listings (`helper=ftp`).
    names: [OnceLock<&'static str>; HELPER_NAMES],
    events: Mutex<Option<EventRing>>,
    /// Whether `events` records; read on every event without the lock.
    events_on: AtomicBool,
}

impl Store {
    fn pool(&self, id: EntryId) -> (&Pool, u32) {
        if id.slot & V6_SLOT != 0 {
            (&self.v6, id.slot & !V6_SLOT)
        } else {
            (&self.v4, id.slot)
        }
    }

    fn family(&self, l3: L3) -> (&Pool, u32) {
        match l3 {
            L3::V4 => (&self.v4, 0),
            L3::V6 => (&self.v6, V6_SLOT),
        }
    }

    fn push_event(&self, ev: impl FnOnce() -> Option<CtEvent>) {
        // Relaxed: a switch; the queue itself is behind its lock.
        if !self.events_on.load(Ordering::Relaxed) {
            return;
        }
        if let Some(ev) = ev() {
            if let Some(r) = lock(&self.events).as_mut() {
                r.push(ev);
            }
        }
    }

    /// Lock the body of a live entry `id`, or `None` if it is gone.
    fn locked(&self, id: EntryId) -> Option<MutexGuard<'_, Body>> {
        let (pool, slot) = self.pool(id);
        let g = lock(&pool.slot(slot)?.body);
        (pool.gen(slot) == id.generation).then_some(g)
    }

    /// The listing view of a live entry (its body locked as `b`).
    fn view(&self, id: EntryId, b: &Body) -> Option<Entry> {
        let (pool, slot) = self.pool(id);
        let (zone, orig) = pool.key(slot)?;
        let helper = (b.helper != 0).then(|| {
            let id = b.helper - 1;
            let name = self.names.get(usize::from(id)).and_then(|n| n.get().copied()).unwrap_or("?");
            let line = self.ext.line(b.ext).map(|l| *lock(l)).unwrap_or_default();
            HelperSlot { id, name, line }
        });
        let counters = pool.counters(slot).map_or([Counter::default(); 2], |c| {
            // Relaxed: statistics, written under the entry's lock.
            let v = |i: usize| c[i].load(Ordering::Relaxed);
            [Counter { packets: v(0), bytes: v(1) }, Counter { packets: v(2), bytes: v(3) }]
        });
        Some(Entry {
            orig,
            reply: orig.invert().unwrap_or(orig),
            zone,
            status: Status::from_bits_retain(b.status),
            deadline: Instant::from_nanos(b.deadline_ns()),
            proto: load_proto(b),
            mark: b.mark,
            helper,
            counters,
        })
    }

    /// Write a view back: body fields, helper line, counters.
    fn write_back(&self, id: EntryId, b: &mut Body, e: &Entry) {
        store_body(b, e);
        let (pool, slot) = self.pool(id);
        if let (Some(h), Some(l)) = (e.helper, self.ext.line(b.ext)) {
            *lock(l) = h.line;
        }
        if let Some(c) = pool.counters(slot) {
            let [o, r] = e.counters;
            for (x, v) in c.iter().zip([o.packets, o.bytes, r.packets, r.bytes]) {
                // Relaxed: statistics; writers hold the entry's lock.
                x.store(v, Ordering::Relaxed);
            }
        }
    }
}

/// A handle on the connection table. Every worker thread has its own
/// (from [`Conntrack::worker`]) with its own settings, statistics and
/// INVALID counters; the entries, expectations and events are shared.
#[derive(Debug)]
pub struct Conntrack {
    store: Arc<Store>,
    cfg: CtConfig,
    stats: Stats,
    invalid: InvalidCounters,
}

impl Conntrack {
    /// A new table, allocated now for `cfg.max_entries` IPv4 and
    /// `cfg.max_entries_v6` IPv6 connections and `cfg.max_expectations`
    /// expectations.
    pub fn new(cfg: CtConfig) -> Conntrack {
        let store = Store {
            v4: Pool::new(L3::V4, cfg.max_entries, cfg.acct),
            v6: Pool::new(L3::V6, cfg.max_entries_v6, cfg.acct),
            expects: ExpectTable::new(cfg.max_expectations),
            ext: HelperExt::new(helper_states(&cfg)),
            names: std::array::from_fn(|_| OnceLock::new()),
            events: Mutex::new(None),
            events_on: AtomicBool::new(false),
        };
        Conntrack { store: Arc::new(store), cfg, stats: Stats::default(), invalid: InvalidCounters::default() }
    }

    /// Another handle on the same table, for another worker thread: the
    /// same settings, statistics from zero.
    pub fn worker(&self) -> Conntrack {
        Conntrack {
            store: Arc::clone(&self.store),
            cfg: self.cfg.clone(),
            stats: Stats::default(),
            invalid: InvalidCounters::default(),
        }
    }

    /// Record connection events ([`CtEvent`]) of all handles in a queue of
    /// at most `cap` events, to be taken with [`Conntrack::drain_events`];
    /// `cap == 0` turns recording off (the default) and forgets queued
    /// events.
    pub fn enable_events(&mut self, cap: usize) {
        let mut q = lock(&self.store.events);
        *q = (cap > 0).then(|| EventRing { queue: VecDeque::with_capacity(cap.min(1024)), cap, lost: 0 });
        // Relaxed: the queue is published by its lock; the flag only
        // saves taking it when recording is off.
        self.store.events_on.store(cap > 0, Ordering::Relaxed);
    }

    /// Move the queued events, oldest first, to the end of `out`.
    pub fn drain_events(&mut self, out: &mut Vec<CtEvent>) {
        if let Some(r) = lock(&self.store.events).as_mut() {
            out.extend(r.queue.drain(..));
        }
    }

    /// Events dropped because the queue was full.
    pub fn events_lost(&self) -> u64 {
        lock(&self.store.events).as_ref().map_or(0, |r| r.lost)
    }

    pub fn config(&self) -> &CtConfig {
        &self.cfg
    }

    /// Replace this handle's settings; existing entries keep their
    /// deadlines. Sizes (`max_entries*`, `max_expectations`, `acct`'s
    /// counters) were fixed when the table was made.
    pub fn set_config(&mut self, cfg: CtConfig) {
        self.cfg = cfg;
    }

    /// This handle's statistics.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// This handle's INVALID counters.
    pub fn invalid_counters(&self) -> &InvalidCounters {
        &self.invalid
    }

    /// Allocated entries, unconfirmed ones included (`nf_conntrack_count`).
    pub fn count(&self) -> usize {
        self.store.v4.used() + self.store.v6.used()
    }

    /// Entries the table can hold: IPv4 and IPv6.
    pub fn capacity(&self) -> (usize, usize) {
        (self.store.v4.capacity(), self.store.v6.capacity())
    }

    /// A snapshot of one entry.
    pub fn entry(&self, id: EntryId) -> Option<Entry> {
        let g = self.store.locked(id)?;
        self.store.view(id, &g)
    }

    /// Snapshots of the confirmed, unexpired entries: IPv4 then IPv6, in
    /// slot order.
    pub fn entries(&self, now: Instant) -> impl Iterator<Item = (EntryId, Entry)> {
        let mut v = Vec::new();
        for (pool, tag) in [(&self.store.v4, 0), (&self.store.v6, V6_SLOT)] {
            for slot in 0..pool.capacity() as u32 {
                let gen = pool.gen(slot);
                if gen & 1 == 1 {
                    continue;
                }
                let id = EntryId { slot: slot | tag, generation: gen };
                let Some(g) = self.store.locked(id) else { continue };
                let live =
                    Status::from_bits_retain(g.status).contains(Status::CONFIRMED) && g.deadline_ns() > now.as_nanos();
                if let Some(e) = live.then(|| self.store.view(id, &g)).flatten() {
                    v.push((id, e));
                }
            }
        }
        v.into_iter()
    }

    /// Pending, unexpired expectations, oldest first.
    pub fn expectations(&self, now: Instant) -> impl Iterator<Item = Expectation> {
        self.store.expects.list(now).into_iter()
    }

    /// Look up a tuple in the index, without taking a lock. The entry may
    /// have expired, or change or go before the caller looks at it:
    /// whoever acts on it checks under the entry's own lock ([`Conntrack::entry`]
    /// gives a snapshot; [`Conntrack::track`] treats an expired entry as
    /// absent and reaps it).
    pub fn lookup(&self, zone: Zone, t: &Tuple) -> Option<(EntryId, Dir)> {
        let (pool, tag) = self.store.family(t.l3);
        let inv = t.invert();
        let f = pool.find(zone, t, inv.as_ref())?;
        Some((EntryId { slot: f.slot | tag, generation: f.gen }, f.dir))
    }

    // ---------------------------------------------------------------
    // The per-packet path
    // ---------------------------------------------------------------

    /// Track one IP packet. See the module documentation for the protocol.
    pub fn track(&mut self, ip: &IpPacket<'_>, tmpl: &Template, now: Instant) -> Outcome {
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
            (proto::SCTP, _) => {
                // `sctp_error` (length, CRC32c), then `do_basic_checks`.
                if verify && ip.l4.len() >= crate::sctp::HEADER_LEN && !SctpPkt::checksum_ok(ip.l4) {
                    return Err(InvalidReason::SctpBadChecksum);
                }
                L4::Sctp(SctpPkt::parse(ip.l4)?)
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
        for _ in 0..3 {
            match self.lookup(tmpl.zone, &tuple) {
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

    /// A packet of a confirmed entry. `Ok(None)` asks for a repeat (the
    /// entry was re-opened, or went away before it could be locked).
    fn existing(
        &mut self,
        id: EntryId,
        dir: Dir,
        ip: &IpPacket<'_>,
        l4: &L4<'_>,
        now: Instant,
    ) -> Result<Option<Outcome>, InvalidReason> {
        let store = &*self.store;
        let Some(mut g) = self.store.locked(id) else { return Ok(None) };
        let Some(mut e) = store.view(id, &g) else { return Ok(None) };
        if !e.status.contains(Status::CONFIRMED) {
            return Ok(None);
        }
        if e.is_expired(now) {
            // An expired entry counts as absent: reap it, look again.
            kill_locked(store, &mut self.stats, id, &mut g);
            return Ok(None);
        }
        let info = ctinfo(e.status, dir);
        let (old_deadline, before) = (g.deadline_ns(), update_key(&e));
        let (pool, slot) = store.pool(id);
        match update(&self.cfg, &mut self.stats, &mut e, dir, ip, l4, now) {
            Err(Some(reason)) => {
                // An INVALID packet may still have moved the deadline.
                store.write_back(id, &mut g, &e);
                pool.refile(slot, &mut g, class_of(&e), old_deadline);
                Err(reason)
            }
            Err(None) => {
                kill_locked(store, &mut self.stats, id, &mut g);
                Ok(None)
            }
            Ok(true) => {
                store.write_back(id, &mut g, &e);
                kill_locked(store, &mut self.stats, id, &mut g);
                Ok(Some(Outcome::attached(info, None, false)))
            }
            Ok(false) => {
                store.write_back(id, &mut g, &e);
                pool.refile(slot, &mut g, class_of(&e), old_deadline);
                let status = e.status;
                if update_key(&e) != before {
                    store.push_event(|| {
                        Some(CtEvent { kind: EventKind::Update, remaining: Some(e.remaining(now)), entry: e })
                    });
                }
                Ok(Some(Outcome::attached(info, Some((id, status)), false)))
            }
        }
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
        if !self.make_room(orig.l3, now) {
            self.stats.drop += 1;
            return Ok(Outcome::full());
        }
        // The expectation is consumed at allocation, whatever happens next.
        let mut status = Status::empty();
        let mut mark = 0;
        if let Some(exp) = self.take_expectation(&orig, tmpl.zone, now) {
            status |= Status::EXPECTED;
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
            counters: [Counter::default(); 2],
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
            L4::Sctp(p) => {
                let mut st = SctpState::new(p)?;
                let t = st.packet(Dir::Original, false, p, &cfg.sctp, &mut e.status)?;
                e.proto = ProtoState::Sctp(st);
                // A new entry is always refreshed (the no-refresh cases
                // need a confirmed one).
                refresh(&mut e, cfg, Dir::Original, ip, now, t.unwrap_or(cfg.sctp.closed));
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
        let Some(id) = self.alloc(&e, tmpl.helper) else {
            self.stats.drop += 1;
            return Ok(Outcome::full());
        };
        Ok(Outcome::attached(info, Some((id, e.status)), true))
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
            let (id, dir) = self.lookup(zone, &inv).ok_or(InvalidReason::IcmpErrorNoConnection)?;
            let e = self.entry(id).filter(|e| e.status.contains(Status::CONFIRMED) && !e.is_expired(now));
            let e = e.ok_or(InvalidReason::IcmpErrorNoConnection)?;
            if e.tuple(dir).dst != outer.dst {
                return Err(InvalidReason::IcmpErrorOuterDaddr);
            }
            Ok((id, dir, e.status))
        });
        match found {
            Ok((id, dir, status)) => {
                let info = if dir == Dir::Reply { CtInfo::RelatedReply } else { CtInfo::Related };
                Ok(Outcome::attached(info, Some((id, status)), false))
            }
            Err(r) => {
                self.stats.icmp_error += 1;
                Err(r)
            }
        }
    }

    /// Confirm the entry the packet created, after the ruleset accepted it
    /// (and its helper ran); a no-op for packets of confirmed entries. If
    /// another worker confirmed the same connection meanwhile, this entry is
    /// dropped and the result says what becomes of the packet.
    pub fn confirm(&mut self, out: &Outcome, now: Instant) -> Confirm {
        let Some(id) = out.conn.filter(|_| out.new) else { return Confirm::Inserted };
        let store = &*self.store;
        let Some(mut g) = self.store.locked(id) else { return Confirm::Inserted };
        let (pool, slot) = store.pool(id);
        let Some((zone, orig)) = pool.key(slot) else { return Confirm::Inserted };
        let reply = orig.invert().unwrap_or(orig);
        if pool.link(slot, zone, &orig, &reply).is_err() {
            // K-CORE `__nf_ct_resolve_clash`: without NAT the two entries
            // are the same connection (or exact reverses), so protocols that
            // allow clashes attach the packet to the winner.
            let kind = g.kind;
            kill_locked(store, &mut self.stats, id, &mut g);
            return match kind {
                kind::UDP | kind::GENERIC | kind::GRE => {
                    self.stats.clash_resolve += 1;
                    Confirm::ClashResolved
                }
                _ => {
                    self.stats.insert_failed += 1;
                    Confirm::Failed
                }
            };
        }
        g.status |= Status::CONFIRMED.bits();
        let Some(e) = store.view(id, &g) else { return Confirm::Inserted };
        pool.file(slot, &mut g, class_of(&e));
        self.stats.insert += 1;
        store.push_event(|| Some(CtEvent { kind: EventKind::New, remaining: Some(e.remaining(now)), entry: e }));
        Confirm::Inserted
    }

    /// Forget the unconfirmed entry of a dropped packet.
    pub fn discard(&mut self, out: &Outcome) {
        if let Some(id) = out.conn.filter(|_| out.new) {
            self.kill(id);
        }
    }

    /// Run `f` on a connection's helper state, with its tuples and zone,
    /// while no other worker can change the connection.
    pub fn with_helper<R>(
        &mut self,
        id: EntryId,
        f: impl FnOnce(&Tuple, &Tuple, Zone, &mut HelperSlot) -> R,
    ) -> Option<R> {
        let mut g = self.store.locked(id)?;
        if g.helper == 0 {
            return None;
        }
        let e = self.store.view(id, &g)?;
        let mut h = e.helper?;
        let r = f(&e.orig, &e.reply, e.zone, &mut h);
        if h.line != e.helper?.line {
            // The state is taken when a helper first has something to keep
            // (FTP: the first line end after the handshake), so connections
            // that never carry a line (bare SYNs to port 21) hold none.
            if g.ext == 0 {
                g.ext = self.store.ext.alloc().unwrap_or(0);
            }
            match self.store.ext.line(g.ext) {
                Some(l) => *lock(l) = h.line,
                None => self.stats.helper_state_full += 1,
            }
        }
        Some(r)
    }

    /// Set a connection's mark (`CONNMARK`/`ct mark set`).
    pub fn set_mark(&mut self, id: EntryId, mark: u32) {
        if let Some(mut g) = self.store.locked(id) {
            g.mark = mark;
        }
    }

    /// Remove an entry (confirmed or not) and its pending expectations.
    pub fn kill(&mut self, id: EntryId) -> bool {
        let Some(mut g) = self.store.locked(id) else { return false };
        kill_locked(&self.store, &mut self.stats, id, &mut g);
        true
    }

    /// Allocate and fill a slot for the new (unconfirmed) entry `e`.
    fn alloc(&mut self, e: &Entry, helper: Option<(u8, &'static str)>) -> Option<EntryId> {
        let (pool, tag) = self.store.family(e.orig.l3);
        let (slot, gen) = pool.alloc(e.zone, &e.orig)?;
        let id = EntryId { slot: slot | tag, generation: gen };
        let mut g = lock(&pool.slot(slot)?.body);
        if let Some((hid, name)) = helper {
            if let Some(n) = self.store.names.get(usize::from(hid)) {
                let _ = n.set(name);
            }
        }
        self.store.write_back(id, &mut g, e);
        Some(id)
    }

    /// Ensure the pool for family `l3` has room for one more entry
    /// (`nf_conntrack_max`): reap what is due, then evict like the kernel's
    /// `early_drop` but over the whole table's candidates: the entry
    /// nearest expiry that is not ASSURED, else the nearest closing TCP
    /// connection or SCTP association. An ASSURED connection that is not
    /// closing is never evicted.
    fn make_room(&mut self, l3: L3, now: Instant) -> bool {
        let store = &*self.store;
        let (pool, tag) = store.family(l3);
        if pool.used() < pool.capacity() {
            return true;
        }
        expire(store, &mut self.stats, pool, tag, now, EXPIRE_WHEN_FULL);
        if pool.used() < pool.capacity() {
            return true;
        }
        for class in [Class::Unassured, Class::Closing] {
            if let Some(expired) = evict_one(store, &mut self.stats, pool, tag, class, now) {
                if !expired {
                    self.stats.early_drop += 1;
                }
                return true;
            }
        }
        false
    }

    /// Reap expired entries and expectations: advance the timer wheels,
    /// examining at most `budget` entries. Returns the number of entries
    /// removed.
    pub fn gc(&mut self, now: Instant, budget: usize) -> usize {
        let store = &*self.store;
        if !store.expects.is_empty() {
            self.stats.expect_delete += store.expects.purge(None, now);
        }
        let n = expire(store, &mut self.stats, &store.v4, 0, now, budget);
        n + expire(store, &mut self.stats, &store.v6, V6_SLOT, now, budget.saturating_sub(n))
    }

    // ---------------------------------------------------------------
    // Expectations
    // ---------------------------------------------------------------

    /// Register an expectation for `master` (`nf_ct_expect_related`).
    pub fn expect(
        &mut self,
        master: EntryId,
        req: ExpectRequest,
        policy: ExpectPolicy,
        helper: &'static str,
        now: Instant,
    ) -> Result<(), ExpectError> {
        let zone = {
            let _g = self.store.locked(master).ok_or(ExpectError::NoMaster)?;
            let (pool, slot) = self.store.pool(master);
            pool.key(slot).ok_or(ExpectError::NoMaster)?.0
        };
        let x = Expectation { req, zone, master, helper, created: now, expires: now + policy.timeout };
        let removed = self.store.expects.insert(x, policy.max_expected)?;
        self.stats.expect_delete += removed;
        self.stats.expect_create += 1;
        Ok(())
    }

    /// Claim the expectation a new connection matches. The master must be
    /// confirmed and alive.
    fn take_expectation(&mut self, t: &Tuple, zone: Zone, now: Instant) -> Option<Expectation> {
        let alive = |m: EntryId| {
            self.store.locked(m).is_some_and(|g| {
                Status::from_bits_retain(g.status).contains(Status::CONFIRMED) && g.deadline_ns() > now.as_nanos()
            })
        };
        let (x, stale) = self.store.expects.take(t, zone, now, alive);
        self.stats.expect_delete += stale;
        if x.is_some() {
            self.stats.expect_new += 1;
        }
        x
    }
}

/// Helper line states: as many as the table has connections (at most
/// 65535, the most a 16-bit index names); each is taken only by a
/// connection whose helper has state to keep.
fn helper_states(cfg: &CtConfig) -> usize {
    (cfg.max_entries as usize + cfg.max_entries_v6 as usize).min(usize::from(u16::MAX))
}

/// Run the L4 tracker on a confirmed entry's view. `Ok(true)`: delete
/// the entry after this packet; `Err(None)`: a TCP re-open, kill it and
/// look again.
fn update(
    cfg: &CtConfig,
    stats: &mut Stats,
    e: &mut Entry,
    dir: Dir,
    ip: &IpPacket<'_>,
    l4: &L4<'_>,
    now: Instant,
) -> Result<bool, Option<InvalidReason>> {
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
            TcpVerdict::Ignore => stats.ignore += 1,
            TcpVerdict::Invalid { reason, timeout } => {
                if let Some(t) = timeout {
                    e.deadline = now + t;
                }
                return Err(Some(reason));
            }
            TcpVerdict::Repeat => return Err(None),
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
        (ProtoState::Sctp(st), L4::Sctp(p)) => {
            if let Some(t) = st.packet(dir, true, p, &cfg.sctp, &mut e.status)? {
                refresh(e, cfg, dir, ip, now, t);
            }
        }
        (ProtoState::Icmp, L4::Icmp(_)) => {
            let t = if e.orig.l3 == L3::V4 { cfg.icmp } else { cfg.icmpv6 };
            refresh(e, cfg, dir, ip, now, t);
        }
        (ProtoState::Generic, L4::Generic) => refresh(e, cfg, dir, ip, now, cfg.generic),
        // The tuple carries the protocol, so the kinds always agree.
        _ => return Err(Some(InvalidReason::TcpInvalidTransition)),
    }
    if dir == Dir::Reply {
        e.status |= Status::SEEN_REPLY;
    }
    Ok(delete)
}
/// Remove a live entry whose body `b` is locked: off the index and the
/// timer wheel, its expectations and helper state freed, its slot free.
fn kill_locked(store: &Store, stats: &mut Stats, id: EntryId, b: &mut Body) {
    let (pool, slot) = store.pool(id);
    let status = Status::from_bits_retain(b.status);
    if status.contains(Status::CONFIRMED) {
        if let Some((zone, orig)) = pool.key(slot) {
            pool.unlink(slot, zone, &orig, &orig.invert().unwrap_or(orig));
        }
        pool.unfile(slot, b);
        stats.delete += 1;
        store.push_event(|| Some(CtEvent { kind: EventKind::Destroy, entry: store.view(id, b)?, remaining: None }));
    }
    if !store.expects.is_empty() {
        stats.expect_delete += store.expects.purge(Some(id), Instant::ZERO);
    }
    store.ext.free(b.ext);
    pool.release(slot, b);
}

/// Evict the entry of `class` nearest to expiry. Returns whether it had
/// expired, or `None` if the class is empty.
fn evict_one(store: &Store, stats: &mut Stats, pool: &Pool, tag: u32, class: Class, now: Instant) -> Option<bool> {
    let start = wheel_second(now.as_nanos());
    for i in 0..WHEEL as u64 {
        let idx = wheel_list(class as usize, start + i);
        // A head that moved away between peek and lock: look again, a
        // few times.
        for _ in 0..4 {
            if pool.timer_len(idx) == 0 {
                break;
            }
            let Some(head) = locked_head(store, pool, tag, idx) else { break };
            let Some((id, mut g)) = head else { continue };
            let expired = g.deadline_ns() <= now.as_nanos();
            kill_locked(store, stats, id, &mut g);
            return Some(expired);
        }
    }
    None
}

/// The first entry of timer list `idx`, locked: `None` if the list is
/// empty, `Some(None)` if the head moved off the list (or went) between the
/// peek and the lock.
fn locked_head<'a>(
    store: &'a Store,
    pool: &Pool,
    tag: u32,
    idx: usize,
) -> Option<Option<(EntryId, MutexGuard<'a, Body>)>> {
    let slot = pool.timer_head(idx)?;
    let id = EntryId { slot: slot | tag, generation: pool.gen(slot) };
    Some(store.locked(id).filter(|g| usize::from(g.filed) == idx).map(|g| (id, g)))
}

/// Advance the pool's timer wheel to `now`, examining at most `budget`
/// entries: expired ones are removed, others re-filed at their deadline.
/// The position inside a second's lists is kept across calls, so every
/// call makes progress: a second is done once each of its lists has had
/// the entries it held when its pass began examined once. One worker at a
/// time; the others skip. Returns the number removed.
fn expire(store: &Store, stats: &mut Stats, pool: &Pool, tag: u32, now: Instant, mut budget: usize) -> usize {
    let now_s = wheel_second(now.as_nanos());
    if pool.done_to() >= now_s {
        // Up to date: nothing is due before this second.
        return 0;
    }
    let Some(mut cur) = try_lock(pool.cursor()) else { return 0 };
    // A wheel more than a turn behind (a long idle gap) starts a turn back:
    // that turn visits every list, so nothing due is skipped.
    let floor = now_s.saturating_sub(WHEEL as u64);
    if cur.second.is_none_or(|s| s < floor) {
        *cur = Cursor { second: Some(floor), ..Cursor::default() };
    }
    let mut reaped = 0;
    while let Some(c) = cur.second.filter(|&c| c < now_s) {
        // Before any list of `c` is counted: from now on nothing due is
        // filed under `c` (see `Pool::file`).
        pool.set_cursor_at(c + 1);
        while let Some(&class) = Class::ALL.get(cur.class) {
            let idx = wheel_list(class as usize, c);
            let left = cur.left.get_or_insert_with(|| pool.timer_count(idx));
            while *left > 0 {
                if budget == 0 {
                    return reaped;
                }
                budget -= 1;
                *left -= 1;
                let Some(head) = locked_head(store, pool, tag, idx) else {
                    *left = 0;
                    break;
                };
                let Some((id, mut g)) = head else { continue };
                if g.deadline_ns() <= now.as_nanos() {
                    kill_locked(store, stats, id, &mut g);
                    reaped += 1;
                } else {
                    // Not due: to its deadline's list, or behind the count
                    // on this one if that is a whole turn or more away.
                    let slot = id.slot & !tag;
                    pool.unfile(slot, &mut g);
                    pool.file(slot, &mut g, class);
                }
            }
            cur.class += 1;
            cur.left = None;
        }
        *cur = Cursor { second: Some(c + 1), ..Cursor::default() };
        pool.set_done_to(c + 1);
    }
    reaped
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
        L4::Sctp(p) => (p.sport, p.dport),
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
