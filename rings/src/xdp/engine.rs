//! The AF_XDP datapath logic, written against a small [`Rings`] trait so the
//! frame bookkeeping can be tested without a NIC (see the simulated kernel in
//! the tests below).
//!
//! Every UMEM frame is, between calls, in exactly one of these places:
//!
//! | place | counted by |
//! |---|---|
//! | a port's fill ring or RX ring (owned by the kernel for receive) | `fill_out[port]` |
//! | a port's TX ring or completion ring (owned by the kernel for transmit) | `tx_out[port]` |
//! | `pending[port]`: queued by `send`/forwarding, not yet on the TX ring | `pending[port].len()` |
//! | the free list | `free.len()` |
//!
//! and during [`Engine::rx_batch`] also "in hand" (consumed from an RX ring,
//! not yet answered). Outside `rx_batch` the places add up to the frame
//! count (the tests check it after every step). Every move between places takes
//! exactly the descriptors a ring reports it took, whatever their number, so
//! no frame is ever in two places.
//!
//! A [`Budget`] bounds each port's share: its fill ring is stocked with at
//! most `fill[p]` frames, and at most `tx[p]` frames are in flight towards
//! its wire (`pending[p]` plus `tx_out[p]`), of which forwarding may use all
//! but `send_reserve[p]`. The budgets add up to no more than the frame count,
//! so the free list always holds
//! `Σ (fill[p] - fill_out[p]) + Σ (tx[p] - in_flight[p])` frames or more:
//! refills never run short, and a port below its TX bound always finds a
//! frame for [`Engine::send`], however long the other port's transmissions
//! stall.

use crate::{Action, PortId, RxMeta};
use std::io;

/// Ring operations of one AF_XDP port pair sharing a UMEM. Ports are indexed
/// 0 (inside) and 1 (outside).
pub(crate) trait Rings {
    /// A frame descriptor: address and length of a UMEM frame.
    type Desc: Copy + Default;

    /// Consume received frames into `out`; returns how many.
    fn rx_consume(&mut self, port: usize, out: &mut [Self::Desc]) -> usize;
    /// Run `f` on the bytes of the frame `d` describes (its current length).
    fn with_frame<T>(&mut self, d: &mut Self::Desc, f: impl FnOnce(&mut [u8]) -> T) -> T;
    /// The largest frame a UMEM frame holds.
    fn capacity(&self) -> usize;
    /// Replace the contents of frame `d` with `bytes`; `false` if they do not fit.
    fn write_frame(&mut self, d: &mut Self::Desc, bytes: &[u8]) -> bool;
    /// Free slots on the TX ring, at least `want` if that many are free.
    fn tx_free(&mut self, port: usize, want: u32) -> u32;
    /// Put all of `descs` on the TX ring (the caller checked [`Rings::tx_free`]).
    fn tx_produce(&mut self, port: usize, descs: &[Self::Desc]) -> usize;
    /// Descriptors still on the TX ring, not yet taken by the kernel.
    fn tx_queued(&mut self, port: usize) -> u32;
    /// Whether transmission needs a `sendto()` kick (need_wakeup flag, or copy mode).
    fn tx_needs_kick(&self, port: usize) -> bool;
    /// Kick transmission (one `sendto()`).
    fn tx_kick(&mut self, port: usize) -> io::Result<()>;
    /// Free slots on the fill ring, at least `want` if that many are free.
    fn fill_free(&mut self, port: usize, want: u32) -> u32;
    /// Put all of `descs` on the fill ring (the caller checked [`Rings::fill_free`]).
    fn fill_produce(&mut self, port: usize, descs: &[Self::Desc]) -> usize;
    /// Whether the fill ring's need_wakeup flag is set.
    fn fill_needs_wakeup(&self, port: usize) -> bool;
    /// Wake the kernel to resume receiving (a non-blocking poll).
    fn rx_kick(&mut self, port: usize) -> io::Result<()>;
    /// Consume completed transmissions into `out`; returns how many.
    fn comp_consume(&mut self, port: usize, out: &mut [Self::Desc]) -> usize;
}

/// Counters kept by the engine.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) rx: u64,
    /// Frames received per port (inside, outside).
    pub(crate) rx_port: [u64; 2],
    pub(crate) forwarded: u64,
    pub(crate) dropped: u64,
    pub(crate) sent: u64,
    pub(crate) tx: u64,
    pub(crate) tx_completed: u64,
    pub(crate) tx_ring_full: u64,
    pub(crate) send_no_frame: u64,
    pub(crate) tx_backlog_full: u64,
    pub(crate) fill_starved: u64,
    pub(crate) tx_kicks: u64,
    pub(crate) rx_kicks: u64,
}

/// Frames taken from one RX ring per step of `rx_batch`.
const RX_CHUNK: usize = 64;
/// Completions reaped per ring call.
const COMP_CHUNK: usize = 256;

/// How one UMEM's frames are shared between the two ports (see the module
/// comment).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Frames each port's fill ring (with its RX ring) is stocked with.
    pub(crate) fill: [u32; 2],
    /// Frames in flight towards each port's wire at most: queued, on the TX
    /// ring or on the completion ring.
    pub(crate) tx: [u32; 2],
    /// Of `tx`, kept for frames [`Engine::send`] originates: forwarding
    /// stops at `tx - send_reserve`.
    pub(crate) send_reserve: [u32; 2],
}

impl Budget {
    /// Half of `frames` for each port: a fill ring of a quarter of them (at
    /// most `fill_size`), and the rest of the half in flight on TX (at most
    /// `tx_size`, the TX ring), an eighth of that (at least one frame, when
    /// the bound is above one) reserved for sends.
    pub(crate) fn split(frames: u32, fill_size: u32, tx_size: u32) -> Budget {
        let fill = (frames / 4).min(fill_size).max(1);
        let tx = (frames / 2).saturating_sub(fill).min(tx_size).max(1);
        let send_reserve = (tx / 8).max(1).min(tx - 1);
        Budget { fill: [fill; 2], tx: [tx; 2], send_reserve: [send_reserve; 2] }
    }

    /// Frames the budget hands out when every share is used up.
    fn frames(&self) -> u64 {
        (0..2).map(|p| u64::from(self.fill[p]) + u64::from(self.tx[p])).sum()
    }
}

pub(crate) struct Engine<R: Rings> {
    pub(crate) rings: R,
    free: Vec<R::Desc>,
    fill_out: [u32; 2],
    tx_out: [u32; 2],
    budget: Budget,
    pending: [Vec<R::Desc>; 2],
    scratch: Vec<R::Desc>,
    next_port: usize,
    pub(crate) counters: Counters,
}

impl<R: Rings> Engine<R> {
    /// `frames` are all the UMEM's frames (all free), shared out by `budget`.
    ///
    /// # Panics
    /// If the budget hands out more frames than there are, or reserves a
    /// port's whole TX bound for sends ([`Budget::split`] does neither).
    pub(crate) fn new(rings: R, frames: Vec<R::Desc>, budget: Budget) -> Self {
        let total = u32::try_from(frames.len()).expect("frame count fits u32");
        assert!(budget.frames() <= u64::from(total), "{budget:?} hands out more than {total} frames");
        for p in 0..2 {
            assert!(budget.send_reserve[p] < budget.tx[p].max(1), "{budget:?} leaves forwarding nothing");
        }
        Engine {
            rings,
            free: frames,
            fill_out: [0; 2],
            tx_out: [0; 2],
            budget,
            pending: [Vec::new(), Vec::new()],
            scratch: vec![R::Desc::default(); RX_CHUNK.max(COMP_CHUNK)],
            next_port: 0,
            counters: Counters::default(),
        }
    }

    pub(crate) fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// Frames in flight towards port `p`'s wire: queued or with the kernel.
    fn in_flight(&self, p: usize) -> u32 {
        u32::try_from(self.pending[p].len()).unwrap_or(u32::MAX).saturating_add(self.tx_out[p])
    }

    /// Move completed transmissions of both ports to the free list.
    pub(crate) fn reap(&mut self) {
        for p in 0..2 {
            while self.tx_out[p] > 0 {
                let n = self.rings.comp_consume(p, &mut self.scratch[..COMP_CHUNK]);
                if n == 0 {
                    break;
                }
                self.free.extend_from_slice(&self.scratch[..n]);
                self.tx_out[p] -= n as u32;
                self.counters.tx_completed += n as u64;
            }
        }
    }

    /// Stock both fill rings up to their budgets from the free list (which
    /// holds enough, see the module comment); wake the kernel where the fill
    /// ring asks for it.
    pub(crate) fn refill(&mut self) -> io::Result<()> {
        for p in 0..2 {
            let want = self.budget.fill[p].saturating_sub(self.fill_out[p]);
            if want > 0 {
                let free = u32::try_from(self.free.len()).unwrap_or(u32::MAX);
                let n = self.rings.fill_free(p, want).min(want).min(free) as usize;
                let from = self.free.len() - n;
                // The ring took the first `done` of what it was offered:
                // exactly those leave the free list.
                let done = self.rings.fill_produce(p, &self.free[from..]).min(n);
                self.free.drain(from..from + done);
                self.fill_out[p] += done as u32;
                if done < want as usize {
                    self.counters.fill_starved += 1;
                }
            }
            if self.fill_out[p] > 0 && self.rings.fill_needs_wakeup(p) {
                self.counters.rx_kicks += 1;
                self.rings.rx_kick(p)?;
            }
        }
        Ok(())
    }

    /// Move `pending[p]` onto the TX ring; what does not fit is dropped
    /// (recycled) and counted.
    fn transmit(&mut self, p: usize) {
        let n = self.pending[p].len();
        if n == 0 {
            return;
        }
        let room = self.rings.tx_free(p, n as u32).min(n as u32) as usize;
        // The ring took the first `done` of what it was offered; the rest
        // go back to the free list.
        let done = if room > 0 { self.rings.tx_produce(p, &self.pending[p][..room]).min(room) } else { 0 };
        self.tx_out[p] += done as u32;
        self.counters.tx += done as u64;
        if done < n {
            self.counters.tx_ring_full += (n - done) as u64;
            self.free.extend_from_slice(&self.pending[p][done..]);
        }
        self.pending[p].clear();
    }

    /// Kick each port whose TX ring holds descriptors and asks for it.
    fn kick(&mut self) -> io::Result<bool> {
        let mut queued = false;
        for p in 0..2 {
            if self.tx_out[p] > 0 && self.rings.tx_queued(p) > 0 {
                queued = true;
                if self.rings.tx_needs_kick(p) {
                    self.counters.tx_kicks += 1;
                    self.rings.tx_kick(p)?;
                }
            }
        }
        Ok(queued)
    }

    pub(crate) fn rx_batch(
        &mut self,
        max: usize,
        ts_ns: u64,
        f: &mut dyn FnMut(&mut [u8], RxMeta) -> Action,
    ) -> io::Result<usize> {
        self.reap();
        self.refill()?;
        let mut handled = 0;
        let first = self.next_port;
        self.next_port ^= 1;
        // Alternate between the ports chunk by chunk so one busy port cannot
        // starve the other within a batch.
        let mut idle = [false; 2];
        let mut p = first;
        while handled < max && !(idle[0] && idle[1]) {
            if !idle[p] {
                let want = (max - handled).min(RX_CHUNK);
                let n = self.rings.rx_consume(p, &mut self.scratch[..want]);
                if n == 0 {
                    idle[p] = true;
                } else {
                    self.fill_out[p] -= n as u32;
                    self.counters.rx += n as u64;
                    self.counters.rx_port[p] += n as u64;
                    let port = if p == 0 { PortId::Inside } else { PortId::Outside };
                    let meta = RxMeta { ts_ns, port };
                    for i in 0..n {
                        let mut d = self.scratch[i];
                        match self.rings.with_frame(&mut d, |bytes| f(bytes, meta)) {
                            Action::Forward(out) => {
                                self.counters.forwarded += 1;
                                let o = port_index(out);
                                if self.in_flight(o) < self.budget.tx[o] - self.budget.send_reserve[o] {
                                    self.pending[o].push(d);
                                } else {
                                    self.counters.tx_backlog_full += 1;
                                    self.free.push(d);
                                }
                            }
                            Action::Drop => {
                                self.counters.dropped += 1;
                                self.free.push(d);
                            }
                        }
                    }
                    handled += n;
                }
            }
            p ^= 1;
        }
        if handled > 0 {
            self.transmit(0);
            self.transmit(1);
            self.kick()?;
            self.refill()?;
        }
        Ok(handled)
    }

    /// Copy `frame` into a free UMEM frame and queue it for `port`. Returns
    /// `Ok(false)` (counted) when `port` has its whole TX budget in flight:
    /// its transmissions are not completing. Below that bound a frame is
    /// always free (see the module comment), whatever the other port does.
    pub(crate) fn send(&mut self, port: PortId, frame: &[u8]) -> io::Result<bool> {
        if frame.len() > self.rings.capacity() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {} bytes does not fit a UMEM frame ({})", frame.len(), self.rings.capacity()),
            ));
        }
        let p = port_index(port);
        if self.in_flight(p) >= self.budget.tx[p] {
            self.reap();
            if self.in_flight(p) >= self.budget.tx[p] {
                self.counters.send_no_frame += 1;
                return Ok(false);
            }
        }
        let mut d = self.free.pop().expect("the budget keeps a free frame for a port below its TX bound");
        if !self.rings.write_frame(&mut d, frame) {
            self.free.push(d);
            return Err(io::Error::other("could not write a frame into the UMEM"));
        }
        self.counters.sent += 1;
        self.pending[p].push(d);
        Ok(true)
    }

    /// Put queued frames on the TX rings and kick until the kernel has taken
    /// them (copy mode sends at most 32 per kick), reaping completions between
    /// kicks; then refill the fill rings.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.transmit(0);
        self.transmit(1);
        // Enough rounds to drain full rings at 32 descriptors per kick, with
        // slack; stop early when the kernel makes no progress.
        let rounds = (self.budget.tx[0].max(self.budget.tx[1]) / 32 + 4) as usize;
        let mut last = u32::MAX;
        for _ in 0..rounds {
            self.reap();
            let queued = self.rings.tx_queued(0) + self.rings.tx_queued(1);
            if queued == 0 || queued >= last {
                break;
            }
            last = queued;
            if !self.kick()? {
                break;
            }
        }
        self.reap();
        self.refill()?;
        Ok(())
    }
}

fn port_index(p: PortId) -> usize {
    match p {
        PortId::Inside => 0,
        PortId::Outside => 1,
    }
}

#[cfg(test)]
mod tests {
    //! A simulated kernel: bounded rings, an RX path that takes frames from
    //! the fill ring, and a copy-mode TX path that sends at most 32
    //! descriptors per kick.
    use super::*;
    use std::collections::VecDeque;

    const FRAME: usize = 64;

    #[derive(Copy, Clone, Default, Debug, PartialEq, Eq)]
    struct D {
        addr: usize,
        len: usize,
    }

    #[derive(Default)]
    struct SimPort {
        fill: VecDeque<D>,
        rx: VecDeque<D>,
        tx: VecDeque<D>,
        comp: VecDeque<D>,
        wire: Vec<Vec<u8>>,
        rx_dropped_no_fill: u64,
    }

    struct Sim {
        mem: Vec<u8>,
        ring: usize,
        tx_ring: usize,
        kick_limit: usize,
        /// A stalled port's kernel never transmits (a dead link).
        stalled: [bool; 2],
        /// The most descriptors one fill or TX produce call takes.
        produce_limit: usize,
        ports: [SimPort; 2],
    }

    impl Sim {
        fn new(frames: usize, ring: usize) -> (Sim, Vec<D>) {
            let descs = (0..frames).map(|i| D { addr: i * FRAME, len: 0 }).collect();
            let sim = Sim {
                mem: vec![0; frames * FRAME],
                ring,
                tx_ring: ring,
                kick_limit: 32,
                stalled: [false; 2],
                produce_limit: usize::MAX,
                ports: [SimPort::default(), SimPort::default()],
            };
            (sim, descs)
        }

        /// A frame arrives on `p`: the kernel takes a fill entry and posts it on RX.
        fn arrive(&mut self, p: usize, bytes: &[u8]) -> bool {
            let port = &mut self.ports[p];
            if port.rx.len() == self.ring {
                return false;
            }
            let Some(mut d) = port.fill.pop_front() else {
                port.rx_dropped_no_fill += 1;
                return false;
            };
            self.mem[d.addr..d.addr + bytes.len()].copy_from_slice(bytes);
            d.len = bytes.len();
            self.ports[p].rx.push_back(d);
            true
        }

        /// Frames in the kernel's hands, both ports.
        fn kernel_held(&self) -> usize {
            self.ports.iter().map(|p| p.fill.len() + p.rx.len() + p.tx.len() + p.comp.len()).sum()
        }
    }

    impl Rings for Sim {
        type Desc = D;
        fn rx_consume(&mut self, port: usize, out: &mut [D]) -> usize {
            let mut n = 0;
            while n < out.len() {
                let Some(d) = self.ports[port].rx.pop_front() else { break };
                out[n] = d;
                n += 1;
            }
            n
        }
        fn with_frame<T>(&mut self, d: &mut D, f: impl FnOnce(&mut [u8]) -> T) -> T {
            f(&mut self.mem[d.addr..d.addr + d.len])
        }
        fn capacity(&self) -> usize {
            FRAME
        }
        fn write_frame(&mut self, d: &mut D, bytes: &[u8]) -> bool {
            if bytes.len() > FRAME {
                return false;
            }
            self.mem[d.addr..d.addr + bytes.len()].copy_from_slice(bytes);
            d.len = bytes.len();
            true
        }
        fn tx_free(&mut self, port: usize, _want: u32) -> u32 {
            (self.tx_ring - self.ports[port].tx.len()) as u32
        }
        fn tx_produce(&mut self, port: usize, descs: &[D]) -> usize {
            let descs = &descs[..descs.len().min(self.produce_limit)];
            assert!(self.ports[port].tx.len() + descs.len() <= self.tx_ring, "TX ring overrun");
            self.ports[port].tx.extend(descs.iter().copied());
            descs.len()
        }
        fn tx_queued(&mut self, port: usize) -> u32 {
            self.ports[port].tx.len() as u32
        }
        fn tx_needs_kick(&self, _port: usize) -> bool {
            true
        }
        fn tx_kick(&mut self, port: usize) -> io::Result<()> {
            let limit = if self.stalled[port] { 0 } else { self.kick_limit };
            for _ in 0..limit {
                if self.ports[port].comp.len() == self.ring {
                    break;
                }
                let Some(d) = self.ports[port].tx.pop_front() else { break };
                let bytes = self.mem[d.addr..d.addr + d.len].to_vec();
                self.ports[port].wire.push(bytes);
                self.ports[port].comp.push_back(d);
            }
            Ok(())
        }
        fn fill_free(&mut self, port: usize, _want: u32) -> u32 {
            (self.ring - self.ports[port].fill.len()) as u32
        }
        fn fill_produce(&mut self, port: usize, descs: &[D]) -> usize {
            let descs = &descs[..descs.len().min(self.produce_limit)];
            assert!(self.ports[port].fill.len() + descs.len() <= self.ring, "fill ring overrun");
            self.ports[port].fill.extend(descs.iter().copied());
            descs.len()
        }
        fn fill_needs_wakeup(&self, _port: usize) -> bool {
            false
        }
        fn rx_kick(&mut self, _port: usize) -> io::Result<()> {
            Ok(())
        }
        fn comp_consume(&mut self, port: usize, out: &mut [D]) -> usize {
            let mut n = 0;
            while n < out.len() {
                let Some(d) = self.ports[port].comp.pop_front() else { break };
                out[n] = d;
                n += 1;
            }
            n
        }
    }

    /// `frames` frames, rings of `ring` descriptors, each fill ring stocked
    /// with `fill` frames and each port's TX bound the TX ring.
    fn engine(frames: usize, ring: usize, fill: u32) -> Engine<Sim> {
        let (sim, descs) = Sim::new(frames, ring);
        let tx = ring as u32;
        let budget = Budget { fill: [fill; 2], tx: [tx; 2], send_reserve: [(tx / 8).max(1); 2] };
        let mut e = Engine::new(sim, descs, budget);
        e.refill().unwrap();
        e
    }

    /// Frames the simulated UMEM holds.
    fn total(e: &Engine<Sim>) -> usize {
        e.rings.mem.len() / FRAME
    }

    /// Every frame is in exactly one place, the addresses are all distinct,
    /// every port keeps to its budget and the free list covers what the
    /// budget still owes.
    fn check(e: &Engine<Sim>) {
        let counted = e.free.len() + e.pending[0].len() + e.pending[1].len();
        let counted = counted + (e.fill_out[0] + e.fill_out[1] + e.tx_out[0] + e.tx_out[1]) as usize;
        assert_eq!(counted, total(e), "the counts lost or made up a frame");
        let s = &e.rings;
        let mut owed = 0;
        for p in 0..2 {
            assert_eq!(e.fill_out[p] as usize, s.ports[p].fill.len() + s.ports[p].rx.len());
            assert_eq!(e.tx_out[p] as usize, s.ports[p].tx.len() + s.ports[p].comp.len());
            assert!(e.fill_out[p] <= e.budget.fill[p] && e.in_flight(p) <= e.budget.tx[p], "port {p} over budget");
            owed += e.budget.fill[p] - e.fill_out[p] + e.budget.tx[p] - e.in_flight(p);
        }
        assert!(e.free.len() >= owed as usize, "{} free frames, {owed} owed", e.free.len());
        let mut addrs: Vec<usize> = e.free.iter().map(|d| d.addr).collect();
        for p in 0..2 {
            addrs.extend(e.pending[p].iter().map(|d| d.addr));
            let sp = &s.ports[p];
            for q in [&sp.fill, &sp.rx, &sp.tx, &sp.comp] {
                addrs.extend(q.iter().map(|d| d.addr));
            }
        }
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), total(e), "a frame is in two places or lost");
        assert_eq!(e.free.len() + s.kernel_held() + e.pending[0].len() + e.pending[1].len(), total(e));
    }

    #[test]
    fn forward_moves_descriptors_and_bytes() {
        let mut e = engine(64, 16, 8);
        check(&e);
        assert_eq!(e.free_frames(), 48);
        for i in 0..5u8 {
            assert!(e.rings.arrive(0, &[i; 20]));
        }
        assert!(e.rings.arrive(1, &[9; 30]));
        let mut seen = vec![];
        let n = e
            .rx_batch(64, 7, &mut |f, m| {
                seen.push((f[0], m.port, m.ts_ns));
                if f[0] == 9 {
                    return Action::Drop;
                }
                f[1] = 0xee; // in-place edit
                Action::Forward(m.port.other())
            })
            .unwrap();
        assert_eq!(n, 6);
        check(&e);
        e.flush().unwrap();
        check(&e);
        let wire = &e.rings.ports[1].wire;
        assert_eq!(wire.len(), 5);
        assert!(wire.iter().enumerate().all(|(i, w)| w.len() == 20 && w[0] == i as u8 && w[1] == 0xee));
        assert!(e.rings.ports[0].wire.is_empty());
        assert_eq!(seen.iter().filter(|s| s.1 == PortId::Outside).count(), 1);
        assert!(seen.iter().all(|s| s.2 == 7));
        assert_eq!(e.counters.forwarded, 5);
        assert_eq!(e.counters.dropped, 1);
        assert_eq!(e.counters.rx_port, [5, 1]);
        // The completions are reaped and the frames recycled into the fill rings.
        assert_eq!(e.tx_out, [0, 0]);
        assert_eq!(e.fill_out, [8, 8]);
    }

    #[test]
    fn nothing_pending_returns_zero() {
        let mut e = engine(32, 8, 4);
        assert_eq!(e.rx_batch(64, 0, &mut |_, _| Action::Drop).unwrap(), 0);
        e.flush().unwrap();
        check(&e);
    }

    #[test]
    fn max_is_respected_and_ports_alternate() {
        let mut e = engine(256, 64, 64);
        for _ in 0..40 {
            e.rings.arrive(0, &[0; 10]);
            e.rings.arrive(1, &[1; 10]);
        }
        let mut ports = vec![];
        let n = e
            .rx_batch(50, 0, &mut |_, m| {
                ports.push(m.port);
                Action::Drop
            })
            .unwrap();
        assert_eq!(n, 50);
        check(&e);
        assert!(ports.contains(&PortId::Inside) && ports.contains(&PortId::Outside));
        assert_eq!(e.rx_batch(1000, 0, &mut |_, _| Action::Drop).unwrap(), 30);
        check(&e);
    }

    #[test]
    fn full_tx_ring_drops_and_recycles() {
        // A TX ring of 8 under a TX bound of 32 (28 for forwarding), 30
        // frames forwarded in one batch, the kernel never sends.
        let mut e = engine(128, 32, 32);
        e.rings.tx_ring = 8;
        for _ in 0..30 {
            assert!(e.rings.arrive(0, &[3; 40]));
        }
        e.rings.kick_limit = 0;
        let n = e.rx_batch(64, 0, &mut |_, m| Action::Forward(m.port.other())).unwrap();
        assert_eq!(n, 30);
        assert_eq!(e.counters.tx, 8);
        assert_eq!(e.counters.tx_backlog_full, 2);
        assert_eq!(e.counters.tx_ring_full, 20);
        check(&e);
        e.flush().unwrap();
        check(&e);
        // The kernel resumes: everything drains back.
        e.rings.kick_limit = 32;
        e.flush().unwrap();
        check(&e);
        assert_eq!(e.rings.ports[1].wire.len(), 8);
        assert_eq!(e.tx_out, [0, 0]);
    }

    #[test]
    fn flush_keeps_kicking_past_32_per_kick() {
        let mut e = engine(1024, 256, 200);
        for _ in 0..200 {
            assert!(e.rings.arrive(1, &[5; 60]));
        }
        // rx_batch kicks once (32 frames); flush must send the remaining 168.
        e.rx_batch(256, 0, &mut |_, m| Action::Forward(m.port.other())).unwrap();
        check(&e);
        assert_eq!(e.rings.ports[0].wire.len(), 32);
        e.flush().unwrap();
        check(&e);
        assert_eq!(e.rings.ports[0].wire.len(), 200);
        assert_eq!(e.counters.tx_completed, 200);
        assert!(e.counters.tx_kicks >= 7);
    }

    #[test]
    fn send_copies_and_reports_exhaustion() {
        // TX bound of 4 per port; port 0 never completes a transmission:
        // its fifth frame is refused, port 1 still sends.
        let mut e = engine(16, 4, 2);
        e.rings.stalled[0] = true;
        for _ in 0..4 {
            assert!(e.send(PortId::Inside, &[1; 10]).unwrap());
            e.flush().unwrap();
        }
        assert!(!e.send(PortId::Inside, &[1; 10]).unwrap());
        assert_eq!(e.counters.send_no_frame, 1);
        assert!(e.send(PortId::Outside, &[2; 10]).unwrap());
        assert_eq!(e.send(PortId::Inside, &[0; FRAME + 1]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        check(&e);
        e.flush().unwrap();
        assert_eq!((e.rings.ports[0].wire.len(), e.rings.ports[1].wire.len()), (0, 1));
        let mut e = engine(12, 4, 2);
        // A recycled frame held an older, longer packet: the new one replaces it.
        e.rings.arrive(0, &[7; 50]);
        e.rx_batch(8, 0, &mut |_, _| Action::Drop).unwrap();
        for i in 0..4u8 {
            assert!(e.send(PortId::Outside, &[i; 12]).unwrap());
        }
        check(&e);
        e.flush().unwrap();
        check(&e);
        let wire = &e.rings.ports[1].wire;
        assert_eq!(wire.len(), 4);
        assert!(wire.iter().enumerate().all(|(i, w)| w == &vec![i as u8; 12]));
    }

    #[test]
    fn budget_split_fits_the_frames_and_reserves_for_sends() {
        // The default configuration: 4096 frames, rings of 2048.
        let b = Budget::split(4096, 2048, 2048);
        assert_eq!(b, Budget { fill: [1024; 2], tx: [1024; 2], send_reserve: [128; 2] });
        for frames in 8..300 {
            for ring in [1, 2, 4, 64, 4096] {
                let b = Budget::split(frames, ring, ring);
                assert!(b.frames() <= u64::from(frames), "{frames} {ring}: {b:?}");
                assert!(b.fill[0] >= 1 && b.tx[0] >= 1 && b.tx[0] <= ring && b.fill[0] <= ring, "{b:?}");
                assert!(b.send_reserve[0] < b.tx[0] && (b.tx[0] < 2 || b.send_reserve[0] >= 1), "{b:?}");
                // Engine::new accepts it.
                let (sim, descs) = Sim::new(frames as usize, 8);
                Engine::new(sim, descs, b);
            }
        }
    }

    #[test]
    #[should_panic(expected = "hands out more than 16 frames")]
    fn an_overcommitted_budget_is_refused() {
        let (sim, descs) = Sim::new(16, 16);
        Engine::new(sim, descs, Budget { fill: [8; 2], tx: [4; 2], send_reserve: [1; 2] });
    }

    /// Issue 11 item 4.1: port 1 never completes a transmission (a dead
    /// link); port 0 keeps receiving, forwarding to port 1 and answering
    /// some frames itself (rejects). Its answers must all go out.
    #[test]
    fn a_stalled_port_cannot_starve_the_other_of_send_frames() {
        let (sim, descs) = Sim::new(64, 32);
        let mut e = Engine::new(sim, descs, Budget::split(64, 32, 32));
        e.refill().unwrap();
        e.rings.stalled[1] = true;
        let mut answered = 0;
        for round in 0..50u8 {
            for _ in 0..8 {
                e.rings.arrive(0, &[round; 20]);
            }
            let mut rejects = 0;
            e.rx_batch(64, 0, &mut |f, _| {
                if f[0] % 2 == 0 {
                    Action::Forward(PortId::Outside)
                } else {
                    rejects += 1;
                    Action::Drop
                }
            })
            .unwrap();
            for _ in 0..rejects {
                assert!(e.send(PortId::Inside, &[0xaa; 14]).unwrap(), "round {round}: no frame for a reject");
                answered += 1;
            }
            e.flush().unwrap();
            check(&e);
        }
        assert_eq!(e.counters.send_no_frame, 0);
        assert_eq!(e.rings.ports[0].wire.len(), answered);
        assert!(e.rings.ports[1].wire.is_empty());
        // Forwarding to the dead port stopped at its bound, short of the reserve.
        assert_eq!(e.in_flight(1), e.budget.tx[1] - e.budget.send_reserve[1]);
        assert!(e.counters.tx_backlog_full > 0);
    }

    /// Issue 11 item 4.3: rings that take fewer descriptors than offered
    /// (libxdp reserves all or nothing, but the engine must not rely on it)
    /// leave every frame in exactly one place, in release builds too.
    #[test]
    fn partial_ring_production_never_owns_a_frame_twice() {
        let (mut sim, descs) = Sim::new(64, 32);
        sim.produce_limit = 3;
        let mut e = Engine::new(sim, descs, Budget::split(64, 32, 32));
        e.refill().unwrap();
        check(&e);
        assert_eq!(e.fill_out, [3, 3]);
        e.refill().unwrap();
        for i in 0..6u8 {
            assert!(e.rings.arrive(0, &[i; 20]));
        }
        e.rx_batch(64, 0, &mut |_, _| Action::Forward(PortId::Outside)).unwrap();
        check(&e);
        e.flush().unwrap();
        check(&e);
        let c = e.counters;
        assert_eq!((c.forwarded, c.tx, c.tx_ring_full), (6, 3, 3));
        assert!(c.fill_starved > 0);
        assert_eq!(e.rings.ports[1].wire.len(), 3);
    }

    /// A pseudo-random mix of arrivals, actions, sends, stalls and flushes.
    #[test]
    fn random_traffic_never_leaks() {
        let mut e = engine(112, 32, 24);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut sent_ok = 0u64;
        for _ in 0..5000 {
            match rnd() % 6 {
                0 | 1 => {
                    for _ in 0..rnd() % 40 {
                        let p = (rnd() % 2) as usize;
                        let len = 1 + (rnd() % FRAME as u64) as usize;
                        e.rings.arrive(p, &vec![p as u8; len]);
                    }
                }
                2 => {
                    let r = rnd();
                    let max = (r % 100) as usize;
                    e.rx_batch(max, 0, &mut |f, m| match (r >> 8) % 3 {
                        0 => Action::Drop,
                        1 => Action::Forward(m.port),
                        _ => {
                            f[0] ^= 1;
                            Action::Forward(m.port.other())
                        }
                    })
                    .unwrap();
                }
                3 => {
                    let port = if rnd() % 2 == 0 { PortId::Inside } else { PortId::Outside };
                    let p = port_index(port);
                    let below = e.in_flight(p) < e.budget.tx[p];
                    let ok = e.send(port, &[9; 14]).unwrap();
                    assert!(ok || !below, "a port below its TX bound was refused a frame");
                    sent_ok += u64::from(ok);
                }
                4 => {
                    e.rings.kick_limit = (rnd() % 40) as usize;
                    e.rings.stalled[(rnd() % 2) as usize] = rnd() % 4 == 0;
                }
                _ => e.flush().unwrap(),
            }
            check(&e);
        }
        e.rings.kick_limit = 32;
        e.rings.stalled = [false; 2];
        e.flush().unwrap();
        e.flush().unwrap();
        check(&e);
        assert_eq!(e.tx_out, [0, 0]);
        let c = e.counters;
        assert_eq!(c.sent, sent_ok);
        assert!(c.send_no_frame > 0 && c.tx_backlog_full > 0, "the stalls reached the bounds: {c:?}");
        assert_eq!(c.forwarded + c.sent, c.tx + c.tx_ring_full + c.tx_backlog_full);
        assert_eq!(c.tx, c.tx_completed);
        assert_eq!(c.rx_port[0] + c.rx_port[1], c.rx);
        let wire = (e.rings.ports[0].wire.len() + e.rings.ports[1].wire.len()) as u64;
        assert_eq!(wire, c.tx_completed);
    }
}
