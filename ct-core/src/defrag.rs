//! IP fragment reassembly ahead of tracking (`nf_defrag_ipv4`,
//! `nf_defrag_ipv6`): conntrack never sees a fragment; the reassembled
//! datagram goes through the raw stage, tracking, the filter and the
//! helpers as one packet.
//!
//! Owns: one table of reassembly queues per address family, shared by every
//! worker (fragments of one datagram may reach different queues of a NIC),
//! each behind one lock, with its memory allocated once: an arena of
//! `*_high_thresh` bytes in blocks, fragment records and queues from fixed
//! pools, a key index that never grows. Held fragments are copied out of
//! the receive buffer (the caller's frame, e.g. a UMEM frame, is free as soon
//! as [`Defrag::add`] returns), so held fragments can never starve receive.
//! Calls nothing else in the crate but the wire constants.
//!
//! Semantics, as the kernel's `ip_frag_queue`, `inet_frag_queue_insert`,
//! `ip_frag_reasm` (IPv4) and `nf_ct_frag6_queue`, `nf_ct_frag6_reasm`
//! (IPv6) decide:
//! * A queue is keyed by (source, destination, identification, protocol,
//!   VLAN) for IPv4 and (source, destination, identification, VLAN, and the
//!   ingress port when the destination is link-local or multicast) for IPv6.
//!   It lives `ipfrag_time` (30 s) / `frag6_timeout` (60 s) from its first
//!   fragment; a queue that times out forwards nothing.
//! * A fragment wholly inside data already received in one run is a
//!   duplicate and is dropped alone; any other overlap discards the whole
//!   datagram (IPv4 as current kernels, IPv6 per RFC 5722 §4).
//! * IPv4: a last fragment inconsistent with an earlier one, data beyond a
//!   known end, a zero-length fragment or a datagram over 65535 bytes
//!   discards the datagram; a non-last fragment whose length is not a
//!   multiple of 8 is trimmed; more than `ipfrag_max_dist` fragments from
//!   the same source between two fragments of a datagram restarts its queue
//!   (`ip_frag_too_far`).
//! * IPv6: an inconsistent last fragment, data beyond the end, a zero-length
//!   fragment or an end past 65535 drops that fragment only; a non-last
//!   fragment not a multiple of 8 kills the queue and passes on as it is
//!   (then INVALID to conntrack, RFC 8200 §4.5), as does a first fragment
//!   without the header chain up to the upper-layer header (RFC 7112).
//!   Atomic fragments (offset 0, M clear) never get here: the wire view
//!   treats them as unfragmented (RFC 6946).
//! * Memory: the arena holds `*_high_thresh` bytes; when it is full, new
//!   fragments are dropped until queues complete or time out (the kernel's
//!   `inet_frag_find` refuses above `high_thresh`; `low_thresh` is obsolete
//!   since Linux 4.17 and kept for its name only).

use crate::time::Instant;
use crate::tuple::{Addr, L3};
use crate::wire::{ipv6, Fragment, IpPacket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Bytes per arena block.
const BLOCK: usize = 256;
/// Fragments one queue may hold (a 65535-byte datagram in 64-byte pieces).
pub const MAX_FRAGS_PER_QUEUE: usize = 1024;
/// No index.
const NIL: u32 = u32::MAX;
/// Largest IP datagram (IPv4 total length, IPv6 payload length).
const MAX_DATAGRAM: usize = 65535;
/// Sources remembered for `ipfrag_max_dist` (direct-mapped).
const PEERS: usize = 1024;

/// Reassembly limits, by the kernel's sysctl names.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DefragConfig {
    /// `net.ipv4.ipfrag_time`.
    pub ipfrag_time: Duration,
    /// `net.ipv4.ipfrag_high_thresh`: bytes held for IPv4 reassembly.
    pub ipfrag_high_thresh: usize,
    /// `net.ipv4.ipfrag_low_thresh` (obsolete since Linux 4.17).
    pub ipfrag_low_thresh: usize,
    /// `net.ipv4.ipfrag_max_dist`; 0 disables the check.
    pub ipfrag_max_dist: u32,
    /// `net.netfilter.nf_conntrack_frag6_timeout`.
    pub frag6_timeout: Duration,
    /// `net.netfilter.nf_conntrack_frag6_high_thresh`.
    pub frag6_high_thresh: usize,
    /// `net.netfilter.nf_conntrack_frag6_low_thresh` (obsolete, as IPv4's).
    pub frag6_low_thresh: usize,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            ipfrag_time: Duration::from_secs(30),
            ipfrag_high_thresh: 4 << 20,
            ipfrag_low_thresh: 3 << 20,
            ipfrag_max_dist: 64,
            frag6_timeout: Duration::from_secs(60),
            frag6_high_thresh: 4 << 20,
            frag6_low_thresh: 3 << 20,
        }
    }
}

/// Why a fragment was dropped.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FragDrop {
    /// Wholly inside data already held: dropped alone.
    Duplicate,
    /// Overlaps held data: the datagram is discarded.
    Overlap,
    /// An inconsistent last fragment, data beyond the end, or no data.
    BadLength,
    /// The datagram would exceed 65535 bytes.
    TooBig,
    /// The reassembly memory is full.
    MemoryLimit,
    /// More than [`MAX_FRAGS_PER_QUEUE`] fragments in one datagram.
    TooManyFragments,
}

impl FragDrop {
    pub const fn name(self) -> &'static str {
        match self {
            FragDrop::Duplicate => "duplicate",
            FragDrop::Overlap => "overlap",
            FragDrop::BadLength => "bad_length",
            FragDrop::TooBig => "too_big",
            FragDrop::MemoryLimit => "memory_limit",
            FragDrop::TooManyFragments => "too_many_fragments",
        }
    }
}

/// What became of a fragment.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FragOutcome {
    /// Not reassembled: process the frame as it is (a fragment the kernel
    /// also passes on, which conntrack then sees as a fragment).
    Pass,
    /// Held until the rest arrives.
    Held,
    /// Dropped (see [`FragDrop`] for what happened to its datagram).
    Dropped(FragDrop),
    /// It completed its datagram: [`Reassembly`] holds the datagram and the
    /// original frames.
    Complete,
}

/// One original fragment frame in [`Reassembly::frames`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameSpan {
    pub start: u32,
    pub len: u32,
    /// Ingress port (the caller's number).
    pub port: u8,
    /// The fragment at offset 0.
    pub first: bool,
}

/// A completed datagram: the reassembled IP packet and the original
/// fragment frames in arrival order. Reused from call to call, so its
/// buffers grow to their high-water mark once and are not allocated per
/// packet.
#[derive(Debug, Default)]
pub struct Reassembly {
    /// The IP datagram (from its IP header).
    pub datagram: Vec<u8>,
    /// The frames, back to back.
    pub frames: Vec<u8>,
    pub spans: Vec<FrameSpan>,
}

impl Reassembly {
    /// Buffers sized for the largest datagram.
    pub fn new() -> Self {
        Reassembly {
            datagram: Vec::with_capacity(MAX_DATAGRAM + 64),
            frames: Vec::with_capacity(2 * MAX_DATAGRAM),
            spans: Vec::with_capacity(64),
        }
    }

    /// The frame of span `s`.
    pub fn frame(&self, s: &FrameSpan) -> &[u8] {
        self.frames.get(s.start as usize..(s.start + s.len) as usize).unwrap_or_default()
    }

    /// The first fragment's frame (offset 0).
    pub fn first_frame(&self) -> Option<&[u8]> {
        self.spans.iter().find(|s| s.first).map(|s| self.frame(s))
    }
}

/// Counters, shared by every worker.
#[derive(Debug, Default)]
struct Counters {
    held: AtomicU64,
    reassembled: AtomicU64,
    passed: AtomicU64,
    timeout: AtomicU64,
    reinit: AtomicU64,
    drops: [AtomicU64; 6],
    /// Queues per family (IPv4, IPv6), written under the family's lock: lets
    /// [`Defrag::expire`] skip the locks when nothing is held.
    live: [AtomicU64; 2],
}

/// A snapshot of the reassembly counters (both families).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments held for later.
    pub held: u64,
    /// Datagrams reassembled.
    pub reassembled: u64,
    /// Fragments passed on as they are (not reassembled).
    pub passed: u64,
    /// Queues that timed out (their fragments forwarded nowhere).
    pub timeout: u64,
    /// Queues restarted by `ipfrag_max_dist`.
    pub reinit: u64,
    pub duplicate: u64,
    pub overlap: u64,
    pub bad_length: u64,
    pub too_big: u64,
    pub memory_limit: u64,
    pub too_many_fragments: u64,
    /// Bytes held now.
    pub mem: u64,
    /// Queues now.
    pub queues: u64,
}

/// Where a fragment came in: the caller's port number and the outermost
/// VLAN id.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ingress {
    pub port: u8,
    pub vlan: Option<u16>,
}

/// The shared reassembly tables: a handle, cloned for each worker.
#[derive(Clone, Debug)]
pub struct Defrag {
    v4: Arc<Mutex<Table>>,
    v6: Arc<Mutex<Table>>,
    counters: Arc<Counters>,
    cfg: DefragConfig,
}

impl Defrag {
    /// Tables with their memory allocated now.
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            v4: Arc::new(Mutex::new(Table::new(cfg.ipfrag_high_thresh))),
            v6: Arc::new(Mutex::new(Table::new(cfg.frag6_high_thresh))),
            counters: Arc::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &DefragConfig {
        &self.cfg
    }

    /// Take a fragment. `frame` is the whole frame and `ip_off` where its IP
    /// header starts; `ip` its parsed view (a fragment: `ip.fragment` is
    /// not `None`); `at` where it came in. On [`FragOutcome::Complete`]
    /// `out` holds the datagram and frames.
    pub fn add(
        &self,
        frame: &[u8],
        ip_off: usize,
        ip: &IpPacket<'_>,
        at: Ingress,
        now: Instant,
        out: &mut Reassembly,
    ) -> FragOutcome {
        let bytes = frame.get(ip_off..).unwrap_or_default();
        let Some(f) = FragInfo::parse(bytes, ip, at.port, at.vlan) else {
            self.counters.passed.fetch_add(1, Ordering::Relaxed);
            return FragOutcome::Pass;
        };
        let (table, timeout) = match ip.l3 {
            L3::V4 => (&self.v4, self.cfg.ipfrag_time),
            L3::V6 => (&self.v6, self.cfg.frag6_timeout),
        };
        let max_dist = if ip.l3 == L3::V4 { self.cfg.ipfrag_max_dist } else { 0 };
        let mut t = lock(table);
        let c = &self.counters;
        // Relaxed: statistics only.
        c.timeout.fetch_add(t.expire(now), Ordering::Relaxed);
        let r = t.add(&f, frame, ip_off, now + timeout, max_dist, out);
        let n = match r {
            Added::Held => &c.held,
            Added::Complete => &c.reassembled,
            Added::Pass => &c.passed,
            Added::Dropped(d) => &c.drops[d as usize],
        };
        n.fetch_add(1, Ordering::Relaxed);
        if t.reinits > 0 {
            c.reinit.fetch_add(std::mem::take(&mut t.reinits), Ordering::Relaxed);
        }
        // Relaxed: a hint for `expire`; the table is read under its lock.
        c.live[usize::from(ip.l3 == L3::V6)].store(t.index.len() as u64, Ordering::Relaxed);
        match r {
            Added::Held => FragOutcome::Held,
            Added::Complete => FragOutcome::Complete,
            Added::Pass => FragOutcome::Pass,
            Added::Dropped(d) => FragOutcome::Dropped(d.drop()),
        }
    }

    /// Drop the queues whose time is up (held fragments go nowhere).
    pub fn expire(&self, now: Instant) {
        for (i, t) in [&self.v4, &self.v6].into_iter().enumerate() {
            let c = &self.counters;
            // Relaxed: a hint (see `add`); a queue created meanwhile is
            // reaped by the next call, or by the next fragment's.
            if c.live[i].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut t = lock(t);
            // Relaxed: statistics only.
            c.timeout.fetch_add(t.expire(now), Ordering::Relaxed);
            c.live[i].store(t.index.len() as u64, Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> DefragStats {
        let c = &self.counters;
        // Relaxed: statistics only.
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (mut mem, mut queues) = (0, 0);
        for t in [&self.v4, &self.v6] {
            let t = lock(t);
            mem += (t.arena.used() * BLOCK) as u64;
            queues += t.index.len() as u64;
        }
        DefragStats {
            held: g(&c.held),
            reassembled: g(&c.reassembled),
            passed: g(&c.passed),
            timeout: g(&c.timeout),
            reinit: g(&c.reinit),
            duplicate: g(&c.drops[Drop::Duplicate as usize]),
            overlap: g(&c.drops[Drop::Overlap as usize]),
            bad_length: g(&c.drops[Drop::BadLength as usize]),
            too_big: g(&c.drops[Drop::TooBig as usize]),
            memory_limit: g(&c.drops[Drop::MemoryLimit as usize]),
            too_many_fragments: g(&c.drops[Drop::TooManyFragments as usize]),
            mem,
            queues,
        }
    }
}

/// [`FragDrop`] as an array index.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Drop {
    Duplicate = 0,
    Overlap = 1,
    BadLength = 2,
    TooBig = 3,
    MemoryLimit = 4,
    TooManyFragments = 5,
}

impl Drop {
    fn drop(self) -> FragDrop {
        match self {
            Drop::Duplicate => FragDrop::Duplicate,
            Drop::Overlap => FragDrop::Overlap,
            Drop::BadLength => FragDrop::BadLength,
            Drop::TooBig => FragDrop::TooBig,
            Drop::MemoryLimit => FragDrop::MemoryLimit,
            Drop::TooManyFragments => FragDrop::TooManyFragments,
        }
    }
}

enum Added {
    Held,
    Complete,
    Pass,
    Dropped(Drop),
}

/// A queue's key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: Addr,
    dst: Addr,
    id: u32,
    /// IPv4 protocol; 0 for IPv6.
    proto: u8,
    vlan: Option<u16>,
    /// IPv6 link-local or multicast destinations: the ingress port.
    port: Option<u8>,
}

/// What reassembly needs of one fragment.
#[derive(Copy, Clone, Debug)]
struct FragInfo {
    key: Key,
    l3: L3,
    /// Byte offset of the fragment data in the datagram.
    offset: usize,
    more: bool,
    /// Where the fragment data starts and ends, from the IP header.
    data: (usize, usize),
    /// IPv6: where the Fragment header starts, the offset of the next-header
    /// byte that names it, and its next header.
    frag_hdr: usize,
    prev_nh: usize,
    next: u8,
    /// IPv6 non-last fragment whose length is not a multiple of 8.
    unrounded: bool,
    /// Ingress port.
    port: u8,
}

impl FragInfo {
    /// `None`: not a fragment to reassemble (pass it on).
    fn parse(b: &[u8], ip: &IpPacket<'_>, port: u8, vlan: Option<u16>) -> Option<FragInfo> {
        if ip.fragment == Fragment::None {
            return None;
        }
        match ip.l3 {
            L3::V4 => {
                let hlen = usize::from(*b.first()? & 0x0f) * 4;
                let total = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
                let id = u16::from_be_bytes([*b.get(4)?, *b.get(5)?]);
                let fo = u16::from_be_bytes([*b.get(6)?, *b.get(7)?]);
                let key = Key { src: ip.src, dst: ip.dst, id: u32::from(id), proto: ip.proto, vlan, port: None };
                Some(FragInfo {
                    key,
                    l3: L3::V4,
                    offset: usize::from(fo & 0x1fff) * 8,
                    more: fo & 0x2000 != 0,
                    data: (hlen, total.max(hlen).min(b.len())),
                    frag_hdr: 0,
                    prev_nh: 0,
                    next: ip.proto,
                    unrounded: false,
                    port,
                })
            }
            L3::V6 => {
                // `find_prev_fhdr`: the Fragment header within the
                // unfragmentable part.
                let end = (ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([*b.get(4)?, *b.get(5)?]))).min(b.len());
                let (mut nh, mut at, mut prev) = (*b.get(6)?, ipv6::HEADER_LEN, 6);
                for _ in 0..ipv6::MAX_EXT_HEADERS {
                    match nh {
                        ipv6::next::FRAGMENT => break,
                        ipv6::next::HOP_BY_HOP | ipv6::next::ROUTING | ipv6::next::DEST_OPTS | ipv6::next::AUTH => {
                            let h = b.get(at..at + 2)?;
                            let len = if nh == ipv6::next::AUTH {
                                (usize::from(h[1]) + 2) * 4
                            } else {
                                (usize::from(h[1]) + 1) * 8
                            };
                            prev = at;
                            nh = h[0];
                            at += len;
                        }
                        _ => return None,
                    }
                }
                if nh != ipv6::next::FRAGMENT {
                    return None;
                }
                let h = b.get(at..at + 8)?;
                if at + 8 > end {
                    return None;
                }
                let fo = u16::from_be_bytes([h[2], h[3]]);
                let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                let (offset, more) = (usize::from(fo & 0xfff8), fo & 1 != 0);
                // RFC 8200 §4.5, RFC 7112 (`ipv6_frag_thdr_truncated`): a
                // first fragment must hold the header chain and the start
                // of the upper-layer header (ICMPv6: all 8 bytes).
                let need = if ip.proto == crate::tuple::proto::ICMPV6 { 8 } else { 1 };
                if offset == 0 && ip.l4.len() < need {
                    return None;
                }
                let data = (at + 8, end);
                let d = &ip.dst.0;
                let scoped = d[0] == 0xff || (d[0] == 0xfe && d[1] & 0xc0 == 0x80);
                let key = Key { src: ip.src, dst: ip.dst, id, proto: 0, vlan, port: scoped.then_some(port) };
                let len = data.1 - data.0;
                Some(FragInfo {
                    key,
                    l3: L3::V6,
                    offset,
                    more,
                    data,
                    frag_hdr: at,
                    prev_nh: prev,
                    next: h[0],
                    unrounded: more && len % 8 != 0,
                    port,
                })
            }
        }
    }
}

/// Fixed blocks of bytes with chain links and a free stack.
#[derive(Debug)]
struct Arena {
    data: Box<[u8]>,
    next: Box<[u32]>,
    free: Vec<u32>,
}

impl Arena {
    fn new(bytes: usize) -> Arena {
        let n = (bytes / BLOCK).clamp(1, NIL as usize - 1);
        Arena {
            data: vec![0; n * BLOCK].into_boxed_slice(),
            next: vec![NIL; n].into(),
            free: (0..n as u32).rev().collect(),
        }
    }

    fn used(&self) -> usize {
        self.next.len() - self.free.len()
    }

    /// Store `bytes` in a chain of blocks; `None` if there is not room.
    fn store(&mut self, bytes: &[u8]) -> Option<u32> {
        if bytes.len().div_ceil(BLOCK).max(1) > self.free.len() {
            return None;
        }
        let mut head = NIL;
        // Filled back to front so each block links to the one after it.
        for chunk in bytes.chunks(BLOCK).rev() {
            let b = self.free.pop()?;
            let at = b as usize * BLOCK;
            self.data[at..at + chunk.len()].copy_from_slice(chunk);
            self.next[b as usize] = head;
            head = b;
        }
        if head == NIL {
            head = self.free.pop()?;
            self.next[head as usize] = NIL;
        }
        Some(head)
    }

    /// Copy `len` bytes from offset `from` of the chain at `head` onto `out`.
    fn read(&self, head: u32, from: usize, len: usize, out: &mut Vec<u8>) {
        let (mut b, mut skip, mut left) = (head, from, len);
        while b != NIL && left > 0 {
            if skip >= BLOCK {
                skip -= BLOCK;
            } else {
                let at = b as usize * BLOCK + skip;
                let n = (BLOCK - skip).min(left);
                out.extend_from_slice(&self.data[at..at + n]);
                left -= n;
                skip = 0;
            }
            b = self.next[b as usize];
        }
    }

    fn release(&mut self, head: u32) {
        let mut b = head;
        while b != NIL {
            let n = self.next[b as usize];
            self.next[b as usize] = NIL;
            self.free.push(b);
            b = n;
        }
    }
}

/// One held fragment.
#[derive(Copy, Clone, Debug)]
struct Rec {
    off: u32,
    end: u32,
    /// The first fragment of its run (a run: fragments appended back to
    /// back at the tail, `inet_frag_queue_insert`'s fragrun).
    run: u32,
    /// On a run's first fragment: where the run ends.
    run_end: u32,
    /// Next fragment in arrival order.
    next: u32,
    block: u32,
    frame_len: u32,
    ip_off: u32,
    /// Where the fragment data starts, from the IP header.
    data_off: u32,
    port: u8,
}

/// One datagram being reassembled.
#[derive(Copy, Clone, Debug)]
struct Queue {
    key: Key,
    deadline: Instant,
    /// Fragments in arrival order.
    head: u32,
    tail: u32,
    count: u32,
    /// The fragment with the highest end, and that end.
    last: u32,
    last_end: u32,
    /// Bytes of data held, and the datagram's length as far as known.
    meat: u32,
    len: u32,
    first_in: bool,
    last_in: bool,
    /// IPv6: the first fragment's Fragment header offset, the offset of the
    /// next-header byte naming it, and its next header.
    frag_hdr: u32,
    prev_nh: u32,
    next: u8,
    /// `ipfrag_max_dist`: the source's slot, its generation and counter.
    peer: (u32, u32, u32),
    /// Queues in creation order (the expiry order).
    older: u32,
    newer: u32,
}

/// Lock a table; a panic while it was held leaves plain data behind.
fn lock(m: &Mutex<Table>) -> MutexGuard<'_, Table> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A source's fragment counter (`inet_peer.rid`).
#[derive(Copy, Clone, Debug, Default)]
struct Peer {
    addr: Addr,
    gen: u32,
    rid: u32,
}

/// One family's reassembly state.
#[derive(Debug)]
struct Table {
    arena: Arena,
    recs: Box<[Rec]>,
    free_recs: Vec<u32>,
    queues: Box<[Queue]>,
    free_queues: Vec<u32>,
    index: HashMap<Key, u32>,
    /// Oldest and newest queue.
    oldest: u32,
    newest: u32,
    peers: Box<[Peer]>,
    /// Queues restarted since the caller last looked.
    reinits: u64,
    /// Scratch for sorting a queue's fragments by offset.
    order: Vec<u32>,
}

impl Table {
    fn new(bytes: usize) -> Table {
        let arena = Arena::new(bytes);
        let n = arena.next.len();
        let nq = (n / 2).max(1);
        let rec = Rec {
            off: 0,
            end: 0,
            run: NIL,
            run_end: 0,
            next: NIL,
            block: NIL,
            frame_len: 0,
            ip_off: 0,
            data_off: 0,
            port: 0,
        };
        let key = Key { src: Addr::default(), dst: Addr::default(), id: 0, proto: 0, vlan: None, port: None };
        let q = Queue {
            key,
            deadline: Instant::ZERO,
            head: NIL,
            tail: NIL,
            count: 0,
            last: NIL,
            last_end: 0,
            meat: 0,
            len: 0,
            first_in: false,
            last_in: false,
            frag_hdr: 0,
            prev_nh: 0,
            next: 0,
            peer: (NIL, 0, 0),
            older: NIL,
            newer: NIL,
        };
        Table {
            arena,
            recs: vec![rec; n].into(),
            free_recs: (0..n as u32).rev().collect(),
            queues: vec![q; nq].into(),
            free_queues: (0..nq as u32).rev().collect(),
            index: HashMap::with_capacity(nq),
            oldest: NIL,
            newest: NIL,
            peers: vec![Peer::default(); PEERS].into(),
            reinits: 0,
            order: Vec::with_capacity(MAX_FRAGS_PER_QUEUE),
        }
    }

    /// Free the queues whose deadline has passed; returns how many.
    fn expire(&mut self, now: Instant) -> u64 {
        let mut n = 0;
        while self.oldest != NIL && self.queues[self.oldest as usize].deadline <= now {
            self.kill(self.oldest);
            n += 1;
        }
        n
    }

    /// Free a queue's fragments (the queue stays).
    fn clear(&mut self, qi: u32) {
        let q = &mut self.queues[qi as usize];
        let mut r = q.head;
        (q.head, q.tail, q.count, q.last, q.last_end, q.meat, q.len) = (NIL, NIL, 0, NIL, 0, 0, 0);
        (q.first_in, q.last_in) = (false, false);
        while r != NIL {
            let rec = self.recs[r as usize];
            self.arena.release(rec.block);
            self.free_recs.push(r);
            r = rec.next;
        }
    }

    /// Remove a queue and its fragments.
    fn kill(&mut self, qi: u32) {
        self.clear(qi);
        let q = self.queues[qi as usize];
        self.index.remove(&q.key);
        match q.older {
            NIL => self.oldest = q.newer,
            o => self.queues[o as usize].newer = q.newer,
        }
        match q.newer {
            NIL => self.newest = q.older,
            n => self.queues[n as usize].older = q.older,
        }
        self.free_queues.push(qi);
    }

    /// The queue for `key`, created if need be.
    fn queue(&mut self, key: &Key, deadline: Instant) -> Option<u32> {
        if let Some(&qi) = self.index.get(key) {
            return Some(qi);
        }
        let qi = self.free_queues.pop()?;
        let q = &mut self.queues[qi as usize];
        *q = Queue { key: *key, deadline, older: self.newest, newer: NIL, peer: (NIL, 0, 0), ..*q };
        match self.newest {
            NIL => self.oldest = qi,
            n => self.queues[n as usize].newer = qi,
        }
        self.newest = qi;
        self.index.insert(*key, qi);
        self.clear(qi);
        Some(qi)
    }

    /// `ip_frag_too_far`: count the fragment against its source; true if
    /// the queue saw more than `max` of the source's fragments since its
    /// last one.
    fn too_far(&mut self, qi: u32, src: &Addr, max: u32) -> bool {
        let slot = (fold(src) as usize) % PEERS;
        let p = &mut self.peers[slot];
        if p.addr != *src {
            *p = Peer { addr: *src, gen: p.gen.wrapping_add(1), rid: 0 };
        }
        p.rid = p.rid.wrapping_add(1);
        let (gen, rid) = (p.gen, p.rid);
        let q = &mut self.queues[qi as usize];
        let (qs, qg, qr) = q.peer;
        q.peer = (slot as u32, gen, rid);
        q.count > 0 && qs == slot as u32 && qg == gen && rid.wrapping_sub(qr) > max
    }

    fn add(
        &mut self,
        f: &FragInfo,
        frame: &[u8],
        ip_off: usize,
        deadline: Instant,
        max_dist: u32,
        out: &mut Reassembly,
    ) -> Added {
        let Some(qi) = self.queue(&f.key, deadline) else { return Added::Dropped(Drop::MemoryLimit) };
        if max_dist > 0 && self.too_far(qi, &f.key.src, max_dist) {
            self.clear(qi);
            self.reinits += 1;
        }
        let (offset, mut end) = (f.offset, f.offset + (f.data.1 - f.data.0));
        let v6 = f.l3 == L3::V6;
        if v6 && f.unrounded {
            // `nf_ct_frag6_queue`: kill the queue, pass the fragment on.
            self.kill(qi);
            return Added::Pass;
        }
        if v6 && end > MAX_DATAGRAM {
            return self.dropped(qi, Drop::TooBig, false);
        }
        let q = self.queues[qi as usize];
        if !f.more {
            if end < q.len as usize || (q.last_in && end != q.len as usize) {
                return self.dropped(qi, Drop::BadLength, !v6);
            }
        } else {
            // IPv4 trims a non-last fragment to a multiple of 8.
            end &= !7;
            if end > q.len as usize && q.last_in {
                return self.dropped(qi, Drop::BadLength, !v6);
            }
        }
        if end == offset {
            return self.dropped(qi, Drop::BadLength, !v6);
        }
        if q.count as usize >= MAX_FRAGS_PER_QUEUE {
            return self.dropped(qi, Drop::TooManyFragments, true);
        }
        // `inet_frag_queue_insert`.
        let (off32, end32) = (offset as u32, end as u32);
        let mut run = NIL;
        if q.count > 0 {
            if q.last_end < end32 {
                if off32 < q.last_end {
                    return self.dropped(qi, Drop::Overlap, true);
                }
                if off32 == q.last_end {
                    run = self.recs[q.last as usize].run;
                }
            } else {
                let mut r = q.head;
                while r != NIL {
                    let rec = self.recs[r as usize];
                    if rec.run == r && end32 > rec.off && off32 < rec.run_end {
                        let dup = off32 >= rec.off && end32 <= rec.run_end;
                        return self.dropped(qi, if dup { Drop::Duplicate } else { Drop::Overlap }, !dup);
                    }
                    r = rec.next;
                }
            }
        }
        let Some(ri) = self.free_recs.pop() else { return Added::Dropped(Drop::MemoryLimit) };
        let Some(block) = self.arena.store(frame) else {
            self.free_recs.push(ri);
            return Added::Dropped(Drop::MemoryLimit);
        };
        let run = if run == NIL { ri } else { run };
        self.recs[ri as usize] = Rec {
            off: off32,
            end: end32,
            run,
            run_end: end32,
            next: NIL,
            block,
            frame_len: frame.len() as u32,
            ip_off: ip_off as u32,
            data_off: f.data.0 as u32,
            port: f.port,
        };
        self.recs[run as usize].run_end = self.recs[run as usize].run_end.max(end32);
        let q = &mut self.queues[qi as usize];
        match q.tail {
            NIL => q.head = ri,
            t => self.recs[t as usize].next = ri,
        }
        q.tail = ri;
        q.count += 1;
        q.meat += end32 - off32;
        if end32 > q.last_end {
            (q.last, q.last_end) = (ri, end32);
        }
        if !f.more {
            (q.last_in, q.len) = (true, end32);
        } else if end32 > q.len {
            q.len = end32;
        }
        if offset == 0 {
            q.first_in = true;
            (q.frag_hdr, q.prev_nh, q.next) = (f.frag_hdr as u32, f.prev_nh as u32, f.next);
        }
        if !(q.first_in && q.last_in && q.meat == q.len) {
            return Added::Held;
        }
        let r = self.reassemble(qi, f.l3, out);
        self.kill(qi);
        r
    }

    /// Drop the current fragment; with `kill`, its whole datagram.
    fn dropped(&mut self, qi: u32, why: Drop, kill: bool) -> Added {
        if kill || self.queues[qi as usize].count == 0 {
            self.kill(qi);
        }
        Added::Dropped(why)
    }

    /// Build the datagram and copy out the frames (`ip_frag_reasm`,
    /// `nf_ct_frag6_reasm`).
    fn reassemble(&mut self, qi: u32, l3: L3, out: &mut Reassembly) -> Added {
        let q = self.queues[qi as usize];
        out.datagram.clear();
        out.frames.clear();
        out.spans.clear();
        self.order.clear();
        let mut r = q.head;
        let mut first = NIL;
        while r != NIL {
            let rec = self.recs[r as usize];
            if rec.off == 0 {
                first = r;
            }
            self.order.push(r);
            out.spans.push(FrameSpan {
                start: out.frames.len() as u32,
                len: rec.frame_len,
                port: rec.port,
                first: rec.off == 0,
            });
            self.arena.read(rec.block, 0, rec.frame_len as usize, &mut out.frames);
            r = rec.next;
        }
        let f = self.recs[first as usize];
        let ip_start = f.ip_off as usize;
        // The first fragment's header: IPv4's own, IPv6's unfragmentable part.
        let hdr_len = match l3 {
            L3::V4 => f.data_off as usize,
            L3::V6 => q.frag_hdr as usize,
        };
        let total = match l3 {
            L3::V4 => hdr_len + q.len as usize,
            L3::V6 => hdr_len - ipv6::HEADER_LEN + q.len as usize,
        };
        if total > MAX_DATAGRAM {
            out.spans.clear();
            out.frames.clear();
            return Added::Dropped(Drop::TooBig);
        }
        self.arena.read(f.block, ip_start, hdr_len, &mut out.datagram);
        let recs = &self.recs;
        self.order.sort_unstable_by_key(|&i| recs[i as usize].off);
        for &i in &self.order {
            let rec = self.recs[i as usize];
            let from = (rec.ip_off + rec.data_off) as usize;
            self.arena.read(rec.block, from, (rec.end - rec.off) as usize, &mut out.datagram);
        }
        let d = &mut out.datagram;
        match l3 {
            L3::V4 => {
                d[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                // Offset and MF cleared, DF kept.
                d[6] &= 0x40;
                d[7] = 0;
                d[10..12].copy_from_slice(&[0, 0]);
                let c = crate::wire::checksum::checksum(&d[..hdr_len], 0);
                d[10..12].copy_from_slice(&c.to_be_bytes());
            }
            L3::V6 => {
                d[4..6].copy_from_slice(&((total) as u16).to_be_bytes());
                if let Some(b) = d.get_mut(q.prev_nh as usize) {
                    *b = q.next;
                }
            }
        }
        Added::Complete
    }
}

/// A source address folded to 32 bits for the peer table.
fn fold(a: &Addr) -> u32 {
    a.0.chunks(4)
        .fold(0u32, |h, c| h.rotate_left(5) ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .wrapping_mul(0x9e37_79b1)
}
