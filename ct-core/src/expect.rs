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

/// Stripes of the expectation table.
const EXPECT_STRIPES: usize = 64;

/// The shared expectation table: stripes keyed by what every expectation
/// matches exactly (zone, family, protocol, destination address and port),
/// each behind its own lock, with an atomic length so the common case, a
/// new connection when nothing is expected there, takes no lock. A claim
/// removes the expectation under the stripe's lock, so of two workers that
/// see the same expected connection, exactly one gets it.
#[derive(Debug)]
pub(crate) struct ExpectTable {
    stripes: Box<[crate::sync::Mutex<Vec<Expectation>>]>,
    lens: Box<[crate::sync::AtomicU32]>,
    /// Registered expectations, against `cap`.
    count: crate::sync::AtomicU32,
    cap: u32,
}

impl ExpectTable {
    /// A table of at most `cap` expectations, its storage allocated now.
    pub(crate) fn new(cap: u32) -> Self {
        let per = (cap as usize).div_ceil(EXPECT_STRIPES).max(1) * 2;
        ExpectTable {
            stripes: (0..EXPECT_STRIPES).map(|_| crate::sync::Mutex::new(Vec::with_capacity(per))).collect(),
            lens: (0..EXPECT_STRIPES).map(|_| crate::sync::AtomicU32::new(0)).collect(),
            count: crate::sync::AtomicU32::new(0),
            cap,
        }
    }

    fn stripe(zone: Zone, t: &Tuple) -> usize {
        // FNV-1a over the exactly matched fields: the stripe only spreads
        // lock contention, so it needs no secret seed.
        let mut h: u32 = 0x811c_9dc5;
        let mut eat = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        t.dst.0.iter().for_each(|&b| eat(b));
        t.dport.to_be_bytes().into_iter().chain(zone.to_be_bytes()).for_each(&mut eat);
        eat(t.proto);
        h as usize % EXPECT_STRIPES
    }

    /// Remove expectations of stripe `i` (locked as `v`) that `drop` selects.
    fn remove_where(&self, i: usize, v: &mut Vec<Expectation>, mut drop: impl FnMut(&Expectation) -> bool) -> u64 {
        let before = v.len();
        v.retain(|x| !drop(x));
        let gone = before - v.len();
        // Relaxed: counts; the expectations themselves move under the lock.
        self.lens[i].store(v.len() as u32, crate::sync::Ordering::Relaxed);
        self.count.fetch_sub(gone as u32, crate::sync::Ordering::Relaxed);
        gone as u64
    }

    /// Take the expectation a new connection `t` matches (`alive` checks its
    /// master). Returns it and the number of stale expectations removed.
    pub(crate) fn take(
        &self,
        t: &Tuple,
        zone: Zone,
        now: Instant,
        alive: impl Fn(EntryId) -> bool,
    ) -> (Option<Expectation>, u64) {
        let i = Self::stripe(zone, t);
        // Relaxed: a hint; a racing registration is as if it came later.
        if self.lens[i].load(crate::sync::Ordering::Relaxed) == 0 {
            return (None, 0);
        }
        // One pass: the expired ones go, and the first live match is claimed.
        let mut claimed = None;
        let gone = self.remove_where(i, &mut crate::sync::lock(&self.stripes[i]), |x| {
            if x.expires <= now {
                return true;
            }
            let hit = claimed.is_none() && x.matches(t, zone);
            if hit {
                claimed = Some(*x);
            }
            hit
        });
        let stale = gone - u64::from(claimed.is_some());
        // Checked after the claim, without the stripe lock held (the lock
        // order puts entry locks first): a master that died meanwhile has
        // its expectations removed anyway.
        (claimed.filter(|x| alive(x.master)), stale)
    }

    /// Register `x` (`nf_ct_expect_related`). Returns the number of
    /// expectations removed on the way (replaced, over the master's limit,
    /// expired).
    pub(crate) fn insert(&self, x: Expectation, max_expected: u32) -> Result<u64, crate::table::ExpectError> {
        use crate::table::ExpectError;
        let i = Self::stripe(x.zone, &x.req.tuple);
        let mut removed = 0;
        {
            let mut v = crate::sync::lock(&self.stripes[i]);
            removed += self.remove_where(i, &mut v, |o| o.expires <= x.created);
            let same = |o: &Expectation| {
                o.req.tuple == x.req.tuple
                    && o.req.match_src_addr == x.req.match_src_addr
                    && o.req.match_sport == x.req.match_sport
                    && o.zone == x.zone
            };
            // An identical expectation of the same master is replaced; one
            // of another master (or class) is refused; any overlap clashes.
            if v.iter().any(|o| same(o) && (o.master != x.master || o.req.class != x.req.class)) {
                return Err(ExpectError::Already);
            }
            removed += self.remove_where(i, &mut v, same);
            if v.iter().any(|o| o.clashes(&x.req, x.zone)) {
                return Err(ExpectError::Busy);
            }
        }
        if max_expected > 0 {
            let mine = |o: &Expectation| o.master == x.master && o.req.class == x.req.class;
            loop {
                // How many the master has, and when its oldest was made.
                let (mut n, mut oldest) = (0usize, None::<Instant>);
                for stripe in self.stripes.iter() {
                    for o in crate::sync::lock(stripe).iter().filter(|o| mine(o)) {
                        n += 1;
                        oldest = Some(oldest.map_or(o.created, |t| t.min(o.created)));
                    }
                }
                let Some(t) = oldest.filter(|_| n >= max_expected as usize) else { break };
                let mut first = true;
                for j in 0..EXPECT_STRIPES {
                    let mut v = crate::sync::lock(&self.stripes[j]);
                    removed += self.remove_where(j, &mut v, |o| {
                        let hit = first && mine(o) && o.created == t;
                        first &= !hit;
                        hit
                    });
                }
            }
        }
        // Relaxed: the cap is a count; the reservation is undone on failure.
        if self.count.fetch_add(1, crate::sync::Ordering::Relaxed) >= self.cap {
            self.count.fetch_sub(1, crate::sync::Ordering::Relaxed);
            return Err(ExpectError::TableFull);
        }
        let mut v = crate::sync::lock(&self.stripes[i]);
        v.push(x);
        self.lens[i].store(v.len() as u32, crate::sync::Ordering::Relaxed);
        Ok(removed)
    }

    /// `f` over every stripe, each locked in turn.
    fn for_each_stripe<'a, R: 'a>(
        &'a self,
        mut f: impl FnMut(&Vec<Expectation>) -> R + 'a,
    ) -> impl Iterator<Item = R> + 'a {
        (0..EXPECT_STRIPES).map(move |j| f(&crate::sync::lock(&self.stripes[j])))
    }

    /// No expectation is registered (a hint: lock-free).
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(crate::sync::Ordering::Relaxed) == 0
    }

    /// Remove the expectations of `master`, or all expired ones when
    /// `master` is `None`. Returns how many went.
    pub(crate) fn purge(&self, master: Option<EntryId>, now: Instant) -> u64 {
        let mut n = 0;
        for j in 0..EXPECT_STRIPES {
            if self.lens[j].load(crate::sync::Ordering::Relaxed) == 0 {
                continue;
            }
            let mut v = crate::sync::lock(&self.stripes[j]);
            n += self.remove_where(j, &mut v, |o| match master {
                Some(m) => o.master == m,
                None => o.expires <= now,
            });
        }
        n
    }

    /// Pending, unexpired expectations, oldest first.
    pub(crate) fn list(&self, now: Instant) -> Vec<Expectation> {
        let mut all: Vec<Expectation> = self
            .for_each_stripe(|v| v.iter().filter(|x| x.expires > now).copied().collect::<Vec<_>>())
            .flatten()
            .collect();
        all.sort_by_key(|x| x.created);
        all
    }
}
