//! The shared, preallocated connection store behind [`crate::table`]: slots,
//! a hash index with lock-free lookups, per-entry locks, and a timer wheel.
//!
//! One [`Pool`] per address family (IPv4 keys take 16 bytes, IPv6 keys 40),
//! each allocated once from its configured maximum:
//!
//! * **Slots.** A slot holds the entry's key (the original tuple and zone,
//!   as atomics), its mutable part ([`Body`]) behind its own mutex, and the
//!   links of the index and the timer lists. A free slot is on a Treiber
//!   stack whose head carries a tag, so a pop that raced with a pop and a
//!   push fails its compare-and-swap instead of taking a slot twice (ABA).
//! * **Generations.** `gen` is odd while the slot is free and even while it
//!   holds an entry; an [`crate::expect::EntryId`] names `(slot, gen)`, so a
//!   stale id never reaches the next entry in the same slot.
//! * **Index.** Chained hashing like the kernel's: every entry has two nodes
//!   (original and reply direction), each on the chain of its tuple's hash.
//!   A chain ends in a "nulls" marker naming its bucket. Readers walk a
//!   chain without a lock and check a node's key between two reads of the
//!   slot's `gen` (a seqlock); a reader that was carried to another chain by
//!   a slot being reused sees the wrong nulls marker and starts again.
//!   Writers (insert at confirmation, unlink at deletion) take the striped
//!   lock of the bucket.
//! * **Timers.** Expiry uses time buckets: a wheel of [`WHEEL`] one-second
//!   lists per eviction class. An entry is filed under its deadline's
//!   second when confirmed; a refresh that pushes the deadline later leaves
//!   it where it is (the wheel re-files it when it comes round), one that
//!   brings it earlier or changes its class moves it. The wheel is advanced
//!   by whoever calls the collector, at most a budget of entries per call;
//!   its position inside a second's lists is kept across calls ([`Cursor`]),
//!   so entries a whole turn or more from their deadline, re-filed onto the
//!   list being walked, wait behind the pass instead of holding it back.
//!   The three classes are the eviction order: not ASSURED, ASSURED but
//!   closing, and the rest, so early drop finds its candidates over the
//!   whole table without a scan.
//!
//! Lock order (no path takes them the other way): the wheel cursor, then one
//! entry's body, then up to two index stripes (lower index first), then one
//! timer list; the expectation stripes, the event queue and the helper
//! extension pool are leaves.

use crate::expect::LineTrack;
use crate::sync::{lock, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::tuple::{Addr, Dir, Tuple, Zone, L3};
use std::hash::BuildHasher;

/// No slot.
pub(crate) const NIL: u32 = u32::MAX;
/// Marks a chain end; the low bits name the chain's bucket.
const NULLS: u32 = 1 << 31;
/// Seconds covered by one turn of the timer wheel.
#[cfg(not(loom))]
pub(crate) const WHEEL: usize = 1024;
/// Small under loom: every lock is a modelled object.
#[cfg(loom)]
pub(crate) const WHEEL: usize = 4;
const GRANULE_NS: u64 = 1_000_000_000;
/// Eviction classes of the timer wheel.
const CLASSES: usize = Class::ALL.len();
/// `Body::filed` of an entry on no timer list (unconfirmed).
pub(crate) const NOT_FILED: u16 = u16::MAX;
/// Index writer locks per pool.
#[cfg(not(loom))]
const STRIPES: usize = 1024;
#[cfg(loom)]
const STRIPES: usize = 2;
/// Most slots a pool can hold (node ids use one bit for the direction and
/// the nulls bit).
pub(crate) const MAX_SLOTS: u32 = 1 << 30;

/// The eviction class an entry is filed under.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Confirmed without ASSURED: evicted first.
    Unassured = 0,
    /// ASSURED TCP connections or SCTP associations that started closing:
    /// evicted next.
    Closing = 1,
    /// Everything else: never evicted, only expired.
    Kept = 2,
}

impl Class {
    /// Every class, in eviction order (`Class as usize` indexes it).
    pub(crate) const ALL: [Class; 3] = [Class::Unassured, Class::Closing, Class::Kept];
}

/// The stored form of an entry's mutable part (76 bytes).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Body {
    /// Expiry time in nanoseconds, low and high word.
    pub(crate) deadline: [u32; 2],
    /// Protocol state (`TcpState::pack`, `SctpState::pack`, the UDP stream
    /// time, GRE timeouts).
    pub(crate) proto: [u32; crate::tcp::PACKED_WORDS],
    pub(crate) mark: u32,
    pub(crate) status: u16,
    /// Which variant `proto` holds.
    pub(crate) kind: u8,
    /// Helper id plus one; 0 = none.
    pub(crate) helper: u8,
    /// Timer list the entry is on (class * WHEEL + bucket), or [`NOT_FILED`].
    pub(crate) filed: u16,
    /// Helper extension index plus one; 0 = none.
    pub(crate) ext: u16,
}

impl Body {
    pub(crate) fn deadline_ns(&self) -> u64 {
        u64::from(self.deadline[0]) | u64::from(self.deadline[1]) << 32
    }

    pub(crate) fn set_deadline_ns(&mut self, ns: u64) {
        self.deadline = [ns as u32, (ns >> 32) as u32];
    }
}

/// Word offsets in a slot's index record (see [`Pool::rec`]): what a
/// lookup reads, kept together so that visiting a chain node touches one
/// cache line.
const GEN: usize = 0;
const NEXT: usize = 1;
const KEY: usize = 3;

/// The rest of an entry's storage: what only its owner and the timer lists
/// touch.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Previous and next slot on the timer list; `[1]` links the free list.
    tlink: [AtomicU32; 2],
    pub(crate) body: Mutex<Body>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            tlink: [AtomicU32::new(NIL), AtomicU32::new(NIL)],
            body: Mutex::new(Body { filed: NOT_FILED, ..Body::default() }),
        }
    }
}

/// Head, tail and length of one timer list.
#[derive(Copy, Clone, Debug)]
struct TimerList {
    head: u32,
    tail: u32,
}

/// The timer wheel's position. A pass over one second's lists examines the
/// entries that were on each list when the pass reached it, however many
/// calls that takes: entries re-filed onto the same list (their deadline
/// is a whole turn or more away) go behind the count and wait for the next
/// turn, so a second holding more far-deadline entries than one call's
/// budget cannot hold the wheel back.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// The second being processed; `None` before the first run.
    pub(crate) second: Option<u64>,
    /// The class whose list is being walked.
    pub(crate) class: usize,
    /// Entries of that list still to examine in this pass; `None` until
    /// the pass reaches the list.
    pub(crate) left: Option<u32>,
}

/// Key words of the widest (IPv6) key.
pub(crate) const KEY_WORDS: usize = 10;

/// A packed key: the first `width` words are used.
pub(crate) type Key = [u32; KEY_WORDS];

/// Key words per family: one word per address for IPv4, four for IPv6,
/// then ports, then protocol and zone.
pub(crate) const fn key_width(l3: L3) -> usize {
    match l3 {
        L3::V4 => 4,
        L3::V6 => KEY_WORDS,
    }
}

/// Pack a zone and tuple into key words.
pub(crate) fn pack_key(zone: Zone, t: &Tuple) -> Key {
    let w = key_width(t.l3);
    let aw = (w - 2) / 2;
    let word = |a: &Addr, i: usize| u32::from_be_bytes([a.0[4 * i], a.0[4 * i + 1], a.0[4 * i + 2], a.0[4 * i + 3]]);
    let mut k = [0u32; KEY_WORDS];
    for i in 0..aw {
        k[i] = word(&t.src, i);
        k[aw + i] = word(&t.dst, i);
    }
    k[w - 2] = u32::from(t.sport) << 16 | u32::from(t.dport);
    k[w - 1] = u32::from(t.proto) << 16 | u32::from(zone);
    k
}

/// The inverse of [`pack_key`] for a key of `width` words.
pub(crate) fn unpack_key(k: &[u32]) -> (Zone, Tuple) {
    let w = k.len();
    let aw = (w - 2) / 2;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    for i in 0..aw {
        src[4 * i..4 * i + 4].copy_from_slice(&k[i].to_be_bytes());
        dst[4 * i..4 * i + 4].copy_from_slice(&k[aw + i].to_be_bytes());
    }
    let l3 = if aw == 1 { L3::V4 } else { L3::V6 };
    let t = Tuple {
        l3,
        proto: (k[w - 1] >> 16) as u8,
        src: Addr(src),
        dst: Addr(dst),
        sport: (k[w - 2] >> 16) as u16,
        dport: k[w - 2] as u16,
    };
    (k[w - 1] as u16, t)
}

#[cfg(not(loom))]
type Seed = std::collections::hash_map::RandomState;
/// Fixed under loom: a model must run the same way every time.
#[cfg(loom)]
type Seed = std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// A pool of entries of one address family.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Box<[Slot]>,
    /// Key words per entry.
    width: usize,
    /// Each slot's index record, `KEY + width` words: its generation (odd:
    /// free or being reused; even: the entry's), the next node on the
    /// chains of its original and reply nodes, and the packed original
    /// tuple and zone (written only while the slot is not reachable from
    /// the index).
    hot: Box<[AtomicU32]>,
    /// Treiber stack of free slots: tag (high 32 bits) and slot.
    free: AtomicU64,
    /// Slots in use (`nf_conntrack_count`, unconfirmed entries included).
    used: AtomicU32,
    heads: Box<[AtomicU32]>,
    mask: u32,
    stripes: Box<[Mutex<()>]>,
    timers: Box<[Mutex<TimerList>]>,
    /// Length of each timer list, for lock-free emptiness checks.
    lens: Box<[AtomicU32]>,
    /// Where the wheel is: the second being processed and the position
    /// inside it, kept across calls.
    cursor: Mutex<Cursor>,
    /// The earliest second an entry may be filed under: one past the second
    /// the wheel is processing (or has processed), so a list whose pass has
    /// begun only receives entries whose deadline is a whole turn away.
    cursor_at: AtomicU64,
    /// Every second before this one is done: the collector's lock-free
    /// "nothing to do" check.
    done_to: AtomicU64,
    seed: Seed,
    /// Per-direction packets and bytes (`nf_conntrack_acct`), when enabled.
    counters: Option<Box<[[AtomicU64; 4]]>>,
}

/// Where a lookup found a tuple.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) slot: u32,
    pub(crate) gen: u32,
    pub(crate) dir: Dir,
}

impl Pool {
    /// A pool of `cap` slots (at least one, at most [`MAX_SLOTS`]) for
    /// family `l3`.
    pub(crate) fn new(l3: L3, cap: u32, acct: bool) -> Self {
        let cap = cap.clamp(1, MAX_SLOTS);
        let width = key_width(l3);
        let slots: Box<[Slot]> = (0..cap).map(|_| Slot::new()).collect();
        let stride = KEY + width;
        let hot: Box<[AtomicU32]> = (0..cap as usize * stride)
            .map(|w| {
                AtomicU32::new(match w % stride {
                    GEN => 1,
                    o if o < KEY => NIL,
                    _ => 0,
                })
            })
            .collect();
        // Link every slot on the free list, lowest first.
        for (i, s) in slots.iter().enumerate() {
            let next = if i + 1 < slots.len() { i as u32 + 1 } else { NIL };
            s.tlink[1].store(next, Ordering::Relaxed);
        }
        let buckets = cap.next_power_of_two();
        Pool {
            slots,
            width,
            hot,
            free: AtomicU64::new(0),
            used: AtomicU32::new(0),
            heads: (0..buckets).map(|b| AtomicU32::new(NULLS | b)).collect(),
            mask: buckets - 1,
            stripes: (0..STRIPES.min(buckets as usize)).map(|_| Mutex::new(())).collect(),
            timers: (0..CLASSES * WHEEL).map(|_| Mutex::new(TimerList { head: NIL, tail: NIL })).collect(),
            lens: (0..CLASSES * WHEEL).map(|_| AtomicU32::new(0)).collect(),
            cursor: Mutex::new(Cursor::default()),
            cursor_at: AtomicU64::new(0),
            done_to: AtomicU64::new(0),
            seed: Seed::default(),
            counters: acct.then(|| {
                (0..cap).map(|_| std::array::from_fn(|_| AtomicU64::new(0))).collect::<Box<[[AtomicU64; 4]]>>()
            }),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn used(&self) -> usize {
        // Relaxed: a statistic; no data is published through it.
        self.used.load(Ordering::Relaxed) as usize
    }

    pub(crate) fn slot(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)
    }

    /// The generation of a slot now (odd = free).
    pub(crate) fn gen(&self, i: u32) -> u32 {
        // Acquire: pairs with the Release stores of `gen` in `alloc` and
        // `release`.
        self.rec(i).map_or(1, |r| r[GEN].load(Ordering::Acquire))
    }

    /// Slot `i`'s index record.
    fn rec(&self, i: u32) -> Option<&[AtomicU32]> {
        let stride = KEY + self.width;
        self.hot.get(i as usize * stride..(i as usize + 1) * stride)
    }

    fn key_cells(&self, i: u32) -> &[AtomicU32] {
        self.rec(i).map_or(&[], |r| &r[KEY..])
    }

    /// The chain link of slot `i`'s node in direction `dir` (0 original).
    fn next_cell(&self, i: u32, dir: usize) -> Option<&AtomicU32> {
        self.rec(i).map(|r| &r[NEXT + (dir & 1)])
    }

    /// Read a slot's key, Acquire: pairs with the Release stores in
    /// [`Pool::alloc`], so a reader that sees a new key also sees the odd
    /// `gen` stored before it (and rejects the read).
    fn key_words(&self, i: u32) -> Key {
        let mut k = [0u32; KEY_WORDS];
        for (w, c) in k.iter_mut().zip(self.key_cells(i)) {
            *w = c.load(Ordering::Acquire);
        }
        k
    }

    /// The key of a live slot; stable while its body lock is held.
    pub(crate) fn key(&self, i: u32) -> Option<(Zone, Tuple)> {
        self.slot(i)?;
        Some(unpack_key(&self.key_words(i)[..self.width]))
    }

    pub(crate) fn counters(&self, i: u32) -> Option<&[AtomicU64; 4]> {
        self.counters.as_ref()?.get(i as usize)
    }

    fn bucket(&self, k: &Key) -> u32 {
        let h = self.seed.hash_one(&k[..self.width]);
        (h ^ (h >> 32)) as u32 & self.mask
    }

    // -----------------------------------------------------------------
    // Allocation
    // -----------------------------------------------------------------

    /// Take a free slot and write `key` into it. Returns `(slot, gen)`; the
    /// caller initialises the body under its lock before anyone can find
    /// it. `None` when the pool is full.
    pub(crate) fn alloc(&self, zone: Zone, orig: &Tuple) -> Option<(u32, u32)> {
        // Acquire: pairs with the Release CAS in `push_free`, so the free
        // slot's link read below is the one stored before it was pushed.
        let mut head = self.free.load(Ordering::Acquire);
        let slot = loop {
            let idx = head as u32;
            let s = self.slot(idx)?;
            // Relaxed: a stale link only makes the CAS below fail, because
            // any pop or push in between changed the tag.
            let next = s.tlink[1].load(Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(next);
            // AcqRel on success: Acquire for the slot's state as freed,
            // Release for the tag other poppers compare against.
            match self.free.compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break idx,
                Err(h) => head = h,
            }
        };
        let s = &self.slots[slot as usize];
        // Relaxed: a statistic.
        self.used.fetch_add(1, Ordering::Relaxed);
        s.tlink[0].store(NIL, Ordering::Relaxed);
        s.tlink[1].store(NIL, Ordering::Relaxed);
        // Release: a lock-free reader that loads a new key word (Acquire)
        // also sees the odd `gen` of the free slot, so its seqlock check
        // fails instead of matching half a key.
        for (w, v) in self.key_cells(slot).iter().zip(pack_key(zone, orig)) {
            w.store(v, Ordering::Release);
        }
        if let Some(c) = self.counters(slot) {
            for x in c {
                // Relaxed: statistics; the slot is not reachable yet.
                x.store(0, Ordering::Relaxed);
            }
        }
        let gen = &self.rec(slot)?[GEN];
        let g = gen.load(Ordering::Relaxed).wrapping_add(1);
        // Release: pairs with the Acquire `gen` loads of readers: who sees
        // this generation sees the key.
        gen.store(g, Ordering::Release);
        Some((slot, g))
    }

    /// Return a slot to the free list. The caller holds its body lock, and
    /// the entry is on no chain and no timer list.
    pub(crate) fn release(&self, slot: u32, body: &mut Body) {
        let Some(s) = self.slot(slot) else { return };
        *body = Body { filed: NOT_FILED, ..Body::default() };
        // Release: pairs with the Acquire `gen` loads of lock-free readers
        // and of `gen()`; the slot is free from here on.
        if let Some(r) = self.rec(slot) {
            r[GEN].fetch_add(1, Ordering::Release);
        }
        self.used.fetch_sub(1, Ordering::Relaxed);
        // Relaxed first read: the CAS below validates it.
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            s.tlink[1].store(head as u32, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(slot);
            // Release: pairs with the Acquire load/CAS in `alloc`, which
            // then sees the link stored above.
            match self.free.compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    // -----------------------------------------------------------------
    // Index
    // -----------------------------------------------------------------

    /// Whether node `(slot, dir)` carries `k` (its own key for the original
    /// direction, the inverse for the reply direction), checked between two
    /// reads of the generation. Returns the generation on a match.
    fn node_matches(&self, slot: u32, dir: usize, k: &Key, inv: Option<&Key>) -> Option<u32> {
        let gen = &self.rec(slot)?[GEN];
        // Acquire: pairs with the Release store of `gen` in `alloc`.
        let g1 = gen.load(Ordering::Acquire);
        let want = if dir == 0 { Some(k) } else { inv };
        let w = want?;
        if g1 & 1 == 1 || self.key_words(slot) != *w {
            return None;
        }
        // Acquire: the key loads above are Acquire, so this load sees any
        // `gen` change that preceded a key word they observed.
        (gen.load(Ordering::Acquire) == g1).then_some(g1)
    }

    /// Find `t` (with inverse `inv`) in zone `zone` without taking a lock.
    /// The entry may have been deleted since; callers check `gen` under its
    /// body lock.
    pub(crate) fn find(&self, zone: Zone, t: &Tuple, inv: Option<&Tuple>) -> Option<Found> {
        let k = pack_key(zone, t);
        // `inv` is the tuple a reply node stores the inverse of: a reply node
        // carries `t` when its entry's original tuple is `inv`.
        let ik = inv.map(|i| pack_key(zone, i));
        let b = self.bucket(&k);
        loop {
            // Acquire: pairs with the Release head store in `link`, so the
            // node's `next` link and key are visible.
            let mut cur = self.heads[b as usize].load(Ordering::Acquire);
            while cur & NULLS == 0 {
                let (slot, dir) = (cur >> 1, (cur & 1) as usize);
                if let Some(gen) = self.node_matches(slot, dir, &k, ik.as_ref()) {
                    let dir = if dir == 0 { Dir::Original } else { Dir::Reply };
                    return Some(Found { slot, gen, dir });
                }
                // Acquire: pairs with the Release link stores in `link` and
                // `unlink`.
                cur = self.next_cell(slot, dir)?.load(Ordering::Acquire);
            }
            if cur & !NULLS == b {
                return None;
            }
            // Carried to another chain by a reused slot: start again.
        }
    }

    /// Insert both nodes of a confirmed entry. On a clash (either tuple is
    /// already in the table) nothing changes and the other entry is
    /// returned.
    pub(crate) fn link(&self, slot: u32, zone: Zone, orig: &Tuple, reply: &Tuple) -> Result<(), Found> {
        let (k, rk) = (pack_key(zone, orig), pack_key(zone, reply));
        let (b0, b1) = (self.bucket(&k), self.bucket(&rk));
        let _guards = self.lock_stripes(b0, b1);
        // Under the stripe locks the chains are stable and hold live entries.
        if let Some(f) = self.scan_locked(b0, &k, Some(&rk)).or_else(|| self.scan_locked(b1, &rk, Some(&k))) {
            return Err(f);
        }
        for (dir, b) in [(0usize, b0), (1, b1)] {
            let head = &self.heads[b as usize];
            let Some(next) = self.next_cell(slot, dir) else { continue };
            // Relaxed: the stripe lock orders writers; readers reach this
            // link through the Release head store below.
            next.store(head.load(Ordering::Relaxed), Ordering::Relaxed);
            // Release: pairs with the Acquire head loads in `find`.
            head.store(slot << 1 | dir as u32, Ordering::Release);
        }
        Ok(())
    }

    /// An entry of chain `b` with tuple `k` (a match in either direction).
    fn scan_locked(&self, b: u32, k: &Key, inv: Option<&Key>) -> Option<Found> {
        let mut cur = self.heads[b as usize].load(Ordering::Acquire);
        while cur & NULLS == 0 {
            let (slot, dir) = (cur >> 1, (cur & 1) as usize);
            if let Some(gen) = self.node_matches(slot, dir, k, inv) {
                let dir = if dir == 0 { Dir::Original } else { Dir::Reply };
                return Some(Found { slot, gen, dir });
            }
            cur = self.next_cell(slot, dir)?.load(Ordering::Acquire);
        }
        None
    }

    fn lock_stripes(&self, b0: u32, b1: u32) -> [Option<crate::sync::MutexGuard<'_, ()>>; 2] {
        let (i0, i1) = (b0 as usize % self.stripes.len(), b1 as usize % self.stripes.len());
        let (lo, hi) = (i0.min(i1), i0.max(i1));
        let first = lock(&self.stripes[lo]);
        let second = (hi != lo).then(|| lock(&self.stripes[hi]));
        [Some(first), second]
    }

    /// Remove both nodes of a confirmed entry from the index. A node's own
    /// link is left as it is, so a reader standing on it walks on.
    pub(crate) fn unlink(&self, slot: u32, zone: Zone, orig: &Tuple, reply: &Tuple) {
        let (k, rk) = (pack_key(zone, orig), pack_key(zone, reply));
        let (b0, b1) = (self.bucket(&k), self.bucket(&rk));
        let _guards = self.lock_stripes(b0, b1);
        for (dir, b) in [(0u32, b0), (1, b1)] {
            let node = slot << 1 | dir;
            let mut prev = &self.heads[b as usize];
            loop {
                let cur = prev.load(Ordering::Relaxed);
                if cur & NULLS != 0 {
                    break;
                }
                let Some(link) = self.next_cell(cur >> 1, (cur & 1) as usize) else { break };
                if cur == node {
                    // Release: pairs with the Acquire link loads in `find`.
                    prev.store(link.load(Ordering::Relaxed), Ordering::Release);
                    break;
                }
                prev = link;
            }
        }
    }

    // -----------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------

    /// The timer list for `class` and a deadline: the deadline's second,
    /// or the first second the wheel has not begun if that is later (a
    /// deadline that has passed, or a worker whose clock lags another's).
    fn list_of(&self, class: Class, deadline_ns: u64) -> usize {
        // Relaxed: `file` checks its choice again under the list's lock,
        // which orders it after `expire`'s `set_cursor_at` (see there).
        let second = (deadline_ns / GRANULE_NS).max(self.cursor_at.load(Ordering::Relaxed));
        wheel_list(class as usize, second)
    }

    /// Put an entry on the timer list of its class and deadline.
    pub(crate) fn file(&self, slot: u32, body: &mut Body, class: Class) {
        let mut idx = self.list_of(class, body.deadline_ns());
        let mut l = lock(&self.timers[idx]);
        // The wheel may have begun this list's pass between the choice and
        // the lock (`expire` publishes `cursor_at` before it counts a list,
        // under the list's lock): choose again under the lock, so a list
        // being walked never receives an entry that is due.
        loop {
            let again = self.list_of(class, body.deadline_ns());
            if again == idx {
                break;
            }
            drop(l);
            idx = again;
            l = lock(&self.timers[idx]);
        }
        let s = &self.slots[slot as usize];
        // Relaxed: timer links are only touched under the list's lock.
        s.tlink[0].store(l.tail, Ordering::Relaxed);
        s.tlink[1].store(NIL, Ordering::Relaxed);
        match l.tail {
            NIL => l.head = slot,
            t => self.slots[t as usize].tlink[1].store(slot, Ordering::Relaxed),
        }
        l.tail = slot;
        // Relaxed: read lock-free only as an emptiness hint; `timer_count`
        // reads it under the list's lock.
        self.lens[idx].fetch_add(1, Ordering::Relaxed);
        body.filed = idx as u16;
    }

    /// Take an entry off its timer list.
    pub(crate) fn unfile(&self, slot: u32, body: &mut Body) {
        let idx = body.filed;
        if idx == NOT_FILED {
            return;
        }
        let mut l = lock(&self.timers[idx as usize]);
        let s = &self.slots[slot as usize];
        let (prev, next) = (s.tlink[0].load(Ordering::Relaxed), s.tlink[1].load(Ordering::Relaxed));
        match prev {
            NIL => l.head = next,
            p => self.slots[p as usize].tlink[1].store(next, Ordering::Relaxed),
        }
        match next {
            NIL => l.tail = prev,
            n => self.slots[n as usize].tlink[0].store(prev, Ordering::Relaxed),
        }
        s.tlink[0].store(NIL, Ordering::Relaxed);
        s.tlink[1].store(NIL, Ordering::Relaxed);
        self.lens[idx as usize].fetch_sub(1, Ordering::Relaxed);
        body.filed = NOT_FILED;
    }

    /// After a refresh from `old_deadline`: move the entry if its class
    /// changed or its deadline came earlier than the list it is on; a later
    /// deadline is left to the wheel.
    pub(crate) fn refile(&self, slot: u32, body: &mut Body, class: Class, old_deadline: u64) {
        if body.filed == NOT_FILED {
            return;
        }
        let want = self.list_of(class, body.deadline_ns());
        let same_class = usize::from(body.filed) / WHEEL == class as usize;
        if same_class && (want == usize::from(body.filed) || body.deadline_ns() >= old_deadline) {
            return;
        }
        self.unfile(slot, body);
        self.file(slot, body, class);
    }

    /// The first entry of timer list `idx`.
    pub(crate) fn timer_head(&self, idx: usize) -> Option<u32> {
        let h = lock(self.timers.get(idx)?).head;
        (h != NIL).then_some(h)
    }

    /// Entries on timer list `idx` (a hint).
    pub(crate) fn timer_len(&self, idx: usize) -> u32 {
        self.lens.get(idx).map_or(0, |l| l.load(Ordering::Relaxed))
    }

    /// Entries on timer list `idx`, read under the list's lock: every
    /// entry filed before this call is counted, and every one filed after
    /// it chose its list after the caller's last `set_cursor_at`.
    pub(crate) fn timer_count(&self, idx: usize) -> u32 {
        let Some(m) = self.timers.get(idx) else { return 0 };
        let _l = lock(m);
        // Relaxed: `fetch_add`/`fetch_sub` happen under this lock.
        self.lens[idx].load(Ordering::Relaxed)
    }

    pub(crate) fn cursor(&self) -> &Mutex<Cursor> {
        &self.cursor
    }

    /// The earliest second an entry may be filed under (called with the
    /// cursor locked, before the lists of `second - 1` are counted).
    pub(crate) fn set_cursor_at(&self, second: u64) {
        // Relaxed: `file` re-reads it under the list's lock, and
        // `timer_count`'s lock of the same list orders the two.
        self.cursor_at.store(second, Ordering::Relaxed);
    }

    /// Every second before `done_to()` has been processed.
    pub(crate) fn done_to(&self) -> u64 {
        // Relaxed: a hint for skipping the cursor lock; `expire` works
        // from the cursor, read under its lock.
        self.done_to.load(Ordering::Relaxed)
    }

    pub(crate) fn set_done_to(&self, second: u64) {
        // Relaxed: see `done_to`.
        self.done_to.store(second, Ordering::Relaxed);
    }
}

/// The timer list and second of a wheel position.
pub(crate) fn wheel_list(class: usize, second: u64) -> usize {
    class * WHEEL + (second % WHEEL as u64) as usize
}

/// The wheel second of an instant.
pub(crate) fn wheel_second(ns: u64) -> u64 {
    ns / GRANULE_NS
}

/// Per-connection helper state kept outside the entries (FTP's line
/// tracking): a fixed pool, so entries stay small.
#[derive(Debug)]
pub(crate) struct HelperExt {
    lines: Box<[Mutex<LineTrack>]>,
    free: Mutex<Vec<u16>>,
}

impl HelperExt {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.clamp(1, usize::from(u16::MAX));
        HelperExt {
            lines: (0..cap).map(|_| Mutex::new(LineTrack::default())).collect(),
            free: Mutex::new((1..=cap as u16).rev().collect()),
        }
    }

    /// A fresh extension (index plus one), or `None` when all are in use.
    pub(crate) fn alloc(&self) -> Option<u16> {
        let i = lock(&self.free).pop()?;
        *lock(&self.lines[usize::from(i - 1)]) = LineTrack::default();
        Some(i)
    }

    pub(crate) fn free(&self, i: u16) {
        if i != 0 && usize::from(i) <= self.lines.len() {
            lock(&self.free).push(i);
        }
    }

    pub(crate) fn line(&self, i: u16) -> Option<&Mutex<LineTrack>> {
        self.lines.get(usize::from(i).checked_sub(1)?)
    }
}

/// Loom models of the lock-free parts (`RUSTFLAGS="--cfg loom" cargo test
/// -p ct-core --release --lib loom_models`; `scripts/test.sh` runs them with
/// a preemption bound of [`loom_models::PREEMPTION_BOUND`]).
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::expect::{EntryId, ExpectRequest, ExpectTable, Expectation};
    use crate::time::Instant;
    use crate::tuple::proto;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;
    use loom::thread;

    /// Preemptions per execution loom explores.
    pub(super) const PREEMPTION_BOUND: usize = 3;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(PREEMPTION_BOUND);
        b.check(f);
    }

    fn udp(sport: u16) -> Tuple {
        Tuple {
            l3: L3::V4,
            proto: proto::UDP,
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 2]),
            sport,
            dport: 53,
        }
    }

    fn inv(t: &Tuple) -> Tuple {
        t.invert().unwrap()
    }

    /// Two workers confirm the same new flow at once: exactly one entry is
    /// inserted, the other sees the clash, and a lookup finds the winner.
    #[test]
    fn loom_models_insert_race_same_tuple() {
        model(|| {
            let pool = Arc::new(Pool::new(L3::V4, 2, false));
            let wins = Arc::new(AtomicUsize::new(0));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let (pool, wins) = (Arc::clone(&pool), Arc::clone(&wins));
                    thread::spawn(move || {
                        let t = udp(1000);
                        let (slot, gen) = pool.alloc(0, &t).unwrap();
                        let mut b = lock(&pool.slot(slot).unwrap().body);
                        match pool.link(slot, 0, &t, &inv(&t)) {
                            Ok(()) => {
                                wins.fetch_add(1, Ordering::SeqCst);
                                Some((slot, gen))
                            }
                            Err(other) => {
                                assert_ne!(other.slot, slot);
                                pool.release(slot, &mut b);
                                None
                            }
                        }
                    })
                })
                .collect();
            let won: Vec<_> = hs.into_iter().filter_map(|h| h.join().unwrap()).collect();
            assert_eq!(wins.load(Ordering::SeqCst), 1);
            assert_eq!(won.len(), 1);
            assert_eq!(pool.used(), 1);
            let t = udp(1000);
            let f = pool.find(0, &t, Some(&inv(&t))).unwrap();
            assert_eq!((f.slot, f.gen, f.dir), (won[0].0, won[0].1, Dir::Original));
            let r = pool.find(0, &inv(&t), Some(&t)).unwrap();
            assert_eq!((r.slot, r.dir), (won[0].0, Dir::Reply));
        });
    }

    /// A lock-free lookup racing with the entry's expiry (off the timer
    /// list and the index, slot freed) and the slot's reuse for another
    /// flow: the lookup finds the old entry with its own generation, or
    /// nothing, never the new occupant under the old key.
    #[test]
    fn loom_models_lookup_vs_expiry_and_reuse() {
        model(|| {
            let pool = Arc::new(Pool::new(L3::V4, 1, false));
            let (a, b) = (udp(1000), udp(2000));
            let (slot, g1) = pool.alloc(0, &a).unwrap();
            {
                let mut body = lock(&pool.slot(slot).unwrap().body);
                pool.link(slot, 0, &a, &inv(&a)).unwrap();
                pool.file(slot, &mut body, Class::Unassured);
            }
            let reader = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let (a, b) = (udp(1000), udp(2000));
                    if let Some(f) = pool.find(0, &a, Some(&inv(&a))) {
                        assert_eq!((f.slot, f.gen), (slot, g1));
                    }
                    if let Some(f) = pool.find(0, &b, Some(&inv(&b))) {
                        assert_ne!(f.gen, g1);
                        assert_eq!(f.gen & 1, 0);
                    }
                })
            };
            {
                let mut body = lock(&pool.slot(slot).unwrap().body);
                pool.unfile(slot, &mut body);
                pool.unlink(slot, 0, &a, &inv(&a));
                pool.release(slot, &mut body);
            }
            let (s2, g2) = pool.alloc(0, &b).unwrap();
            assert_eq!(s2, slot);
            assert_ne!(g2, g1);
            pool.link(s2, 0, &b, &inv(&b)).unwrap();
            reader.join().unwrap();
            assert!(pool.find(0, &a, Some(&inv(&a))).is_none());
            assert_eq!(pool.find(0, &b, Some(&inv(&b))).map(|f| f.gen), Some(g2));
        });
    }

    /// The timer wheel starting its pass over second 1 (publishing the
    /// filing floor 2, then counting the list under its lock) while another
    /// worker files an entry that is due in second 1: the entry is either
    /// counted by the pass or filed under second 2, never left behind the
    /// pass on the list it has begun (where it would wait a whole turn).
    #[test]
    fn loom_models_filing_against_the_wheel_pass() {
        model(|| {
            let pool = Arc::new(Pool::new(L3::V4, 1, false));
            pool.set_cursor_at(1);
            let t = udp(1000);
            let (slot, _) = pool.alloc(0, &t).unwrap();
            let filer = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let mut body = lock(&pool.slot(slot).unwrap().body);
                    body.set_deadline_ns(1_500_000_000);
                    pool.file(slot, &mut body, Class::Unassured);
                    body.filed
                })
            };
            pool.set_cursor_at(2);
            let counted = pool.timer_count(wheel_list(0, 1));
            let filed = usize::from(filer.join().unwrap());
            assert!(
                filed == wheel_list(0, 2) || (filed == wheel_list(0, 1) && counted == 1),
                "filed on list {filed}, the pass over second 1 counted {counted}"
            );
        });
    }

    /// Free-list ABA: one worker pops while another pops twice and pushes
    /// the first slot back. No slot is ever held by two workers at once.
    #[test]
    fn loom_models_slot_reuse_is_aba_safe() {
        model(|| {
            let pool = Arc::new(Pool::new(L3::V4, 3, false));
            let held: Arc<Vec<loom::sync::atomic::AtomicBool>> =
                Arc::new((0..3).map(|_| loom::sync::atomic::AtomicBool::new(false)).collect());
            let take = |pool: &Pool, held: &[loom::sync::atomic::AtomicBool], port: u16| {
                let (slot, _) = pool.alloc(0, &udp(port)).unwrap();
                assert!(!held[slot as usize].swap(true, Ordering::SeqCst), "slot {slot} allocated twice");
                slot
            };
            let give = |pool: &Pool, held: &[loom::sync::atomic::AtomicBool], slot: u32| {
                held[slot as usize].store(false, Ordering::SeqCst);
                let mut b = lock(&pool.slot(slot).unwrap().body);
                pool.release(slot, &mut b);
            };
            let other = {
                let (pool, held) = (Arc::clone(&pool), Arc::clone(&held));
                thread::spawn(move || {
                    let x = take(&pool, &held, 1);
                    let y = take(&pool, &held, 2);
                    give(&pool, &held, x);
                    y
                })
            };
            let z = take(&pool, &held, 3);
            let y = other.join().unwrap();
            assert_ne!(y, z);
            give(&pool, &held, z);
            give(&pool, &held, y);
            assert_eq!(pool.used(), 0);
            // The free list is intact: three distinct slots, then none.
            for port in 4..7 {
                take(&pool, &held, port);
            }
            assert!(pool.alloc(0, &udp(7)).is_none());
        });
    }

    /// Two workers see the first packet of the same expected connection:
    /// exactly one claims the expectation.
    #[test]
    fn loom_models_expectation_claimed_once() {
        model(|| {
            let table = Arc::new(ExpectTable::new(4));
            let t = udp(3000);
            let req = ExpectRequest { tuple: t, match_src_addr: true, match_sport: false, class: 0 };
            let x = Expectation {
                req,
                zone: 0,
                master: EntryId { slot: 0, generation: 2 },
                helper: "tftp",
                created: Instant::ZERO,
                expires: Instant::from_secs(300),
            };
            table.insert(x, 1).unwrap();
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let table = Arc::clone(&table);
                    thread::spawn(move || table.take(&udp(3000), 0, Instant::from_secs(1), |_| true).0.is_some())
                })
                .collect();
            let claimed = hs.into_iter().map(|h| h.join().unwrap()).filter(|c| *c).count();
            assert_eq!(claimed, 1);
            assert!(table.is_empty());
        });
    }
}
