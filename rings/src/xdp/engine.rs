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
//! not yet answered). [`Engine::accounted`] sums the places; it always equals
//! the frame count outside `rx_batch`.

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
    pub(crate) fill_starved: u64,
    pub(crate) tx_kicks: u64,
    pub(crate) rx_kicks: u64,
}

/// Frames taken from one RX ring per step of `rx_batch`.
const RX_CHUNK: usize = 64;
/// Completions reaped per ring call.
const COMP_CHUNK: usize = 256;

pub(crate) struct Engine<R: Rings> {
    pub(crate) rings: R,
    total: u32,
    free: Vec<R::Desc>,
    fill_out: [u32; 2],
    fill_target: [u32; 2],
    tx_out: [u32; 2],
    tx_size: [u32; 2],
    pending: [Vec<R::Desc>; 2],
    scratch: Vec<R::Desc>,
    next_port: usize,
    pub(crate) counters: Counters,
}

impl<R: Rings> Engine<R> {
    /// `frames` are all the UMEM's frames (all free); `fill_target` is how
    /// many frames each port's fill ring is kept stocked with.
    pub(crate) fn new(rings: R, frames: Vec<R::Desc>, fill_target: [u32; 2], tx_size: [u32; 2]) -> Self {
        let total = u32::try_from(frames.len()).expect("frame count fits u32");
        Engine {
            rings,
            total,
            free: frames,
            fill_out: [0; 2],
            fill_target,
            tx_out: [0; 2],
            tx_size,
            pending: [Vec::new(), Vec::new()],
            scratch: vec![R::Desc::default(); RX_CHUNK.max(COMP_CHUNK)],
            next_port: 0,
            counters: Counters::default(),
        }
    }

    /// Frames accounted for in all places (equals the frame count outside `rx_batch`).
    pub(crate) fn accounted(&self) -> u32 {
        let pending = self.pending[0].len() + self.pending[1].len() + self.free.len();
        u32::try_from(pending).unwrap_or(u32::MAX)
            + self.fill_out[0]
            + self.fill_out[1]
            + self.tx_out[0]
            + self.tx_out[1]
    }

    pub(crate) fn total(&self) -> u32 {
        self.total
    }

    pub(crate) fn free_frames(&self) -> usize {
        self.free.len()
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

    /// Stock both fill rings up to their targets from the free list; wake
    /// the kernel where the fill ring asks for it.
    pub(crate) fn refill(&mut self) -> io::Result<()> {
        let want = [0, 1].map(|p| self.fill_target[p].saturating_sub(self.fill_out[p]));
        // When the free frames do not cover both deficits, split them so that
        // neither port is left without receive buffers.
        // First raise the emptier ring to the other's level, then share.
        let mut avail = u32::try_from(self.free.len()).unwrap_or(u32::MAX);
        let (lo, hi) = if self.fill_out[0] <= self.fill_out[1] { (0, 1) } else { (1, 0) };
        let mut give = [0; 2];
        give[lo] = (self.fill_out[hi] - self.fill_out[lo]).min(want[lo]).min(avail);
        avail -= give[lo];
        let rest_lo = want[lo] - give[lo];
        let more = rest_lo.min((avail / 2).max(avail.saturating_sub(want[hi]))).min(avail);
        give[lo] += more;
        give[hi] = want[hi].min(avail - more);
        for p in 0..2 {
            if give[p] < want[p] {
                self.counters.fill_starved += 1;
            }
            if give[p] > 0 {
                let n = self.rings.fill_free(p, give[p]).min(give[p]) as usize;
                if n > 0 {
                    let from = self.free.len() - n;
                    let done = self.rings.fill_produce(p, &self.free[from..]);
                    debug_assert_eq!(done, n);
                    self.free.truncate(self.free.len() - done);
                    self.fill_out[p] += done as u32;
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
        if room > 0 {
            let done = self.rings.tx_produce(p, &self.pending[p][..room]);
            debug_assert_eq!(done, room);
            self.tx_out[p] += done as u32;
            self.counters.tx += done as u64;
        }
        if room < n {
            self.counters.tx_ring_full += (n - room) as u64;
            self.free.extend_from_slice(&self.pending[p][room..]);
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
                                self.pending[port_index(out)].push(d);
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
        debug_assert_eq!(self.accounted(), self.total(), "a UMEM frame leaked");
        Ok(handled)
    }

    /// Copy `frame` into a free UMEM frame and queue it for `port`. Returns
    /// `Ok(false)` when no frame is free (counted).
    pub(crate) fn send(&mut self, port: PortId, frame: &[u8]) -> io::Result<bool> {
        if frame.len() > self.rings.capacity() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {} bytes does not fit a UMEM frame ({})", frame.len(), self.rings.capacity()),
            ));
        }
        if self.free.is_empty() {
            self.reap();
        }
        let Some(mut d) = self.free.pop() else {
            self.counters.send_no_frame += 1;
            return Ok(false);
        };
        if !self.rings.write_frame(&mut d, frame) {
            self.free.push(d);
            return Err(io::Error::other("could not write a frame into the UMEM"));
        }
        self.counters.sent += 1;
        self.pending[port_index(port)].push(d);
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
        let rounds = (self.tx_size[0].max(self.tx_size[1]) / 32 + 4) as usize;
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
        debug_assert_eq!(self.accounted(), self.total(), "a UMEM frame leaked");
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
            for _ in 0..self.kick_limit {
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

    fn engine(frames: usize, ring: usize, fill_target: u32) -> Engine<Sim> {
        let (sim, descs) = Sim::new(frames, ring);
        let mut e = Engine::new(sim, descs, [fill_target; 2], [ring as u32; 2]);
        e.refill().unwrap();
        e
    }

    /// Every frame is in exactly one place, and the addresses are all distinct.
    fn check(e: &Engine<Sim>) {
        assert_eq!(e.accounted(), e.total());
        let s = &e.rings;
        for p in 0..2 {
            assert_eq!(e.fill_out[p] as usize, s.ports[p].fill.len() + s.ports[p].rx.len());
            assert_eq!(e.tx_out[p] as usize, s.ports[p].tx.len() + s.ports[p].comp.len());
        }
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
        assert_eq!(addrs.len(), e.total() as usize, "a frame is in two places or lost");
        assert_eq!(e.free.len() + s.kernel_held() + e.pending[0].len() + e.pending[1].len(), e.total() as usize);
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
        // TX ring of 8, 30 frames forwarded in one batch, the kernel never sends.
        let mut e = engine(128, 32, 32);
        e.rings.tx_ring = 8;
        e.tx_size = [8, 8];
        for _ in 0..30 {
            assert!(e.rings.arrive(0, &[3; 40]));
        }
        e.rings.kick_limit = 0;
        let n = e.rx_batch(64, 0, &mut |_, m| Action::Forward(m.port.other())).unwrap();
        assert_eq!(n, 30);
        assert_eq!(e.counters.tx, 8);
        assert_eq!(e.counters.tx_ring_full, 22);
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
        // 4 frames, fill target 2 per port: nothing free for send.
        let mut e = engine(4, 4, 2);
        assert!(!e.send(PortId::Inside, &[1; 10]).unwrap());
        assert_eq!(e.counters.send_no_frame, 1);
        assert_eq!(e.send(PortId::Inside, &[0; FRAME + 1]).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        check(&e);
        let mut e = engine(8, 4, 2);
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
    fn starvation_is_counted_and_recovers() {
        // 16 frames, each fill ring wants 16: they share what there is.
        let mut e = engine(16, 16, 16);
        assert!(e.counters.fill_starved > 0);
        assert_eq!(e.fill_out, [8, 8]);
        for _ in 0..8 {
            assert!(e.rings.arrive(0, &[1; 8]));
        }
        assert!(!e.rings.arrive(0, &[2; 8]));
        assert_eq!(e.rings.ports[0].rx_dropped_no_fill, 1);
        e.rx_batch(64, 0, &mut |_, _| Action::Drop).unwrap();
        check(&e);
        assert_eq!(e.fill_out, [8, 8]);
    }

    /// A pseudo-random mix of arrivals, actions, sends, stalls and flushes.
    #[test]
    fn random_traffic_never_leaks() {
        let mut e = engine(96, 32, 24);
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
                    if e.send(PortId::Inside, &[9; 14]).unwrap() {
                        sent_ok += 1;
                    }
                }
                4 => e.rings.kick_limit = (rnd() % 40) as usize,
                _ => e.flush().unwrap(),
            }
            check(&e);
        }
        e.rings.kick_limit = 32;
        e.flush().unwrap();
        e.flush().unwrap();
        check(&e);
        assert_eq!(e.tx_out, [0, 0]);
        let c = e.counters;
        assert_eq!(c.sent, sent_ok);
        assert_eq!(c.forwarded + c.sent, c.tx + c.tx_ring_full);
        assert_eq!(c.tx, c.tx_completed);
        assert_eq!(c.rx_port[0] + c.rx_port[1], c.rx);
        let wire = (e.rings.ports[0].wire.len() + e.rings.ports[1].wire.len()) as u64;
        assert_eq!(wire, c.tx_completed);
    }
}
