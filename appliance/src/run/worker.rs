//! One worker thread of `ctwall run`: the AF_XDP sockets of one queue, a
//! bridge whose pipeline shares the connection table with the other
//! workers, and — in worker 0 — the management plane.
//!
//! Per batch a worker checks whether a reload installed new rules (one
//! atomic load), receives and forwards, and runs the bounded expiry sweep;
//! every [`PUBLISH_EVERY`] it publishes its counters for the main thread.
//!
//! A packet I/O error (say `ENXIO` from `sendto()`: the kernel unbinds an
//! AF_XDP socket whose interface goes away) is logged with the worker,
//! queue, interface and errno, and counted (`io_errors`); the worker closes
//! its sockets and opens them again after a back-off ([`Backoff`]), as
//! often as it takes for the interface to come back. The other workers go
//! on forwarding meanwhile; the XDP programs stay attached.

use super::{add_xdp, lock, Shared, Totals, WorkerStats};
use crate::bridge::Bridge;
use crate::mgmt::{render, Classifier, Disposition, Mgmt, MgmtApp, MgmtStats};
use crate::pipeline::Pipeline;
use crate::reject;
use ct_core::Instant;
use rings::xdp::{PortFault, Reopen, XdpIo, XdpStats};
use rings::{PacketIo, PortId};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long the idle loop sleeps in `poll(2)` when no frame is pending.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Publish the counters this often.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// The first wait before reopening the sockets after an I/O error; it
/// doubles with every failure up to [`BACKOFF_MAX`], and starts again once
/// reopened sockets have run for [`BACKOFF_RESET`] without an error.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const BACKOFF_RESET: Duration = Duration::from_secs(10);

/// The wait before the next attempt to open the sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    /// The wait after one more failure.
    fn fail(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

/// A worker's part in the management plane.
pub(super) enum MgmtRole {
    /// No management plane configured.
    None,
    /// Worker 0: runs the stack, answers out of its own queue, and takes
    /// the frames the other workers hand over (`handed`, with several workers).
    Owner { mgmt: Box<Mgmt>, handed: Option<Receiver<Vec<u8>>> },
    /// The other workers: frames for the management plane go to worker 0
    /// through a bounded queue; when it is full they are dropped and counted.
    Handoff { classifier: Classifier, to: SyncSender<Vec<u8>> },
}

pub(super) struct Worker {
    index: usize,
    queue: u32,
    /// Interface names (inside, outside), for the log.
    interfaces: [String; 2],
    /// The sockets; `None` after an I/O error until they are reopened.
    io: Option<XdpIo>,
    reopen: Reopen,
    /// The counters of sockets closed after an I/O error.
    closed_xdp: XdpStats,
    io_errors: u64,
    backoff: Backoff,
    /// With `io` open: when it was opened. Without: when to try again.
    since: Duration,
    bridge: Bridge,
    cpu: Option<usize>,
    role: MgmtRole,
    /// The reload generation whose rules `bridge` runs.
    generation: u64,
    handoff: Handoff,
}

/// Frames handed to worker 0, and dropped because its queue was full.
#[derive(Copy, Clone, Debug, Default)]
struct Handoff {
    sent: u64,
    dropped: u64,
}

impl Worker {
    pub(super) fn new(
        index: usize,
        io: XdpIo,
        pipeline: Pipeline,
        cpu: Option<usize>,
        role: MgmtRole,
        shared: &Shared,
    ) -> Worker {
        let st = shared.state();
        let mut bridge =
            Bridge::new(pipeline, Box::new(Arc::clone(&st.rules)), st.running.bridge_non_ip, reject::build_reject);
        // Tracker settings apply per handle.
        bridge.pipeline.set_ct_config(st.ct.clone());
        Worker {
            index,
            queue: io.queue(),
            interfaces: io.modes().clone().map(|m| m.interface),
            reopen: io.reopener(),
            io: Some(io),
            closed_xdp: XdpStats::default(),
            io_errors: 0,
            backoff: Backoff::new(),
            since: Duration::ZERO,
            bridge,
            cpu,
            role,
            generation: st.generation,
            handoff: Handoff::default(),
        }
    }

    /// Bridge until `shared.stop`; publishes the final counters on the way
    /// out. Sends its index to `started` once pinned.
    pub(super) fn run(mut self, shared: &Shared, started: &Sender<usize>) -> Result<(), String> {
        let (i, q) = (self.index, self.queue);
        match self.cpu {
            Some(c) => {
                rings::cpu::pin_current_thread(c).map_err(|e| format!("worker {i}: cannot pin to cpu {c}: {e}"))?;
                info!(worker = i, queue = q, cpu = c, "worker running, pinned");
            }
            None => info!(worker = i, queue = q, "worker running, not pinned"),
        }
        let _ = started.send(i);
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut next_publish = Duration::ZERO;
        // Relaxed: a flag without data (see `run`).
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                break;
            }
            self.apply_reload(shared);
            if self.io.is_some() {
                if let Err(e) = self.step(shared, &mut out) {
                    self.io_failed(shared, &e);
                } else if shared.start.elapsed() >= self.since + BACKOFF_RESET {
                    self.backoff = Backoff::new();
                }
            } else {
                self.try_reopen(shared);
            }
            if shared.start.elapsed() >= next_publish {
                shared.publish(i, self.stats());
                next_publish = shared.start.elapsed() + PUBLISH_EVERY;
            }
        }
        shared.publish(i, self.stats());
        Ok(())
    }

    /// A packet I/O error: log and count it, close the sockets, and set
    /// the time to open them again.
    fn io_failed(&mut self, shared: &Shared, e: &io::Error) {
        self.io_errors += 1;
        let fault = PortFault::of(e);
        let interface = fault.map_or("-", |f| self.interfaces[usize::from(f.port == PortId::Outside)].as_str());
        let errno = fault.map_or(e, |f| &f.source).raw_os_error();
        let wait = self.backoff.fail();
        error!(
            worker = self.index,
            queue = self.queue,
            interface,
            errno = %errno.map_or_else(|| "-".to_string(), |n| n.to_string()),
            retry_in_ms = wait.as_millis() as u64,
            "packet I/O error, closing the sockets to open them again: {e}"
        );
        if let Some(io) = self.io.take() {
            add_xdp(&mut self.closed_xdp, &io.stats());
        }
        self.since = shared.start.elapsed() + wait;
    }

    /// Without sockets: once the back-off is over, open them again;
    /// meanwhile sleep in short steps (to notice `stop`).
    fn try_reopen(&mut self, shared: &Shared) {
        let now = shared.start.elapsed();
        if now < self.since {
            std::thread::sleep((self.since - now).min(IDLE_WAIT));
            return;
        }
        match self.reopen.open() {
            Ok(io) => {
                info!(worker = self.index, queue = self.queue, mode = %io.mode_in_use(), "sockets open again");
                self.io = Some(io);
                self.since = shared.start.elapsed();
            }
            Err(e) => {
                let wait = self.backoff.fail();
                warn!(
                    worker = self.index,
                    queue = self.queue,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot open the sockets again yet: {e}"
                );
                self.since = shared.start.elapsed() + wait;
            }
        }
    }

    /// Take the rules and tracker settings of a reload, if there was one.
    fn apply_reload(&mut self, shared: &Shared) {
        // Acquire: pairs with the Release store in `Shared::reload`.
        if shared.generation.load(Ordering::Acquire) == self.generation {
            return;
        }
        let st = shared.state();
        self.bridge.set_policy(Box::new(Arc::clone(&st.rules)), st.running.bridge_non_ip);
        self.bridge.pipeline.set_ct_config(st.ct.clone());
        self.generation = st.generation;
    }

    fn stats(&self) -> WorkerStats {
        collect(&self.bridge, self.xdp_stats(), self.queue, self.cpu, self.handoff, self.io_errors)
    }

    /// The socket counters, those of closed sockets included.
    fn xdp_stats(&self) -> XdpStats {
        xdp_stats(self.closed_xdp, self.io.as_ref())
    }

    /// One receive batch (and the management plane's turn); sleeps in
    /// `poll(2)` when nothing arrived. Needs the sockets open.
    fn step(&mut self, shared: &Shared, out: &mut Vec<Vec<u8>>) -> io::Result<()> {
        let now = shared.clock();
        let Worker { index, queue, io, bridge, cpu, role, handoff, io_errors, closed_xdp, .. } = self;
        let Some(io) = io else { return Ok(()) };
        let n = match role {
            MgmtRole::None => bridge.poll(io, now)?,
            MgmtRole::Owner { mgmt, .. } => bridge.poll_with(io, now, &mut |frame, port| {
                if port != mgmt.port() {
                    return false;
                }
                match mgmt.classify(frame) {
                    Disposition::Take => {
                        mgmt.receive(frame);
                        true
                    }
                    Disposition::Copy => {
                        mgmt.receive(frame);
                        false
                    }
                    Disposition::Ignore => false,
                }
            })?,
            MgmtRole::Handoff { classifier, to } => bridge.poll_with(io, now, &mut |frame, port| {
                if port != classifier.port() {
                    return false;
                }
                let take = match classifier.classify(frame) {
                    Disposition::Take => true,
                    Disposition::Copy => false,
                    Disposition::Ignore => return false,
                };
                match to.try_send(frame.to_vec()) {
                    Ok(()) => handoff.sent += 1,
                    Err(_) => handoff.dropped += 1,
                }
                take
            })?,
        };
        if let MgmtRole::Owner { mgmt, handed } = role {
            if let Some(rx) = handed {
                while let Ok(f) = rx.try_recv() {
                    mgmt.receive(&f);
                }
            }
            let mut app = App {
                shared,
                index: *index,
                bridge,
                io: &*io,
                closed_xdp: *closed_xdp,
                queue: *queue,
                cpu: *cpu,
                handoff: *handoff,
                io_errors: *io_errors,
            };
            mgmt.poll(shared.clock(), &mut app, &mut |f| out.push(f.to_vec()));
            for f in out.drain(..) {
                io.send(mgmt.port(), &f)?;
            }
            io.flush()?;
        }
        if n == 0 {
            io.wait(IDLE_WAIT)?;
        }
        Ok(())
    }
}

/// `closed` plus the counters of `io`.
fn xdp_stats(mut closed: XdpStats, io: Option<&XdpIo>) -> XdpStats {
    if let Some(io) = io {
        add_xdp(&mut closed, &io.stats());
    }
    closed
}

/// A worker's counters as of now.
fn collect(
    bridge: &Bridge,
    xdp: XdpStats,
    queue: u32,
    cpu: Option<usize>,
    handoff: Handoff,
    io_errors: u64,
) -> WorkerStats {
    let p = &bridge.pipeline;
    WorkerStats {
        queue,
        cpu,
        pipeline: p.stats().clone(),
        bridge: bridge.stats().clone(),
        table: p.conntrack().stats().clone(),
        invalid: p.invalid_counters(),
        xdp,
        mgmt_handoff: handoff.sent,
        mgmt_handoff_dropped: handoff.dropped,
        io_errors,
    }
}

/// What the management plane (in worker 0) reads and asks for.
struct App<'a> {
    shared: &'a Shared,
    index: usize,
    bridge: &'a mut Bridge,
    io: &'a XdpIo,
    /// The counters of the worker's closed sockets.
    closed_xdp: XdpStats,
    queue: u32,
    cpu: Option<usize>,
    handoff: Handoff,
    io_errors: u64,
}

impl App<'_> {
    /// The statistics summed over the workers (this one's as of now).
    fn snapshot<T>(&self, now: Instant, f: impl FnOnce(&render::Snapshot<'_>) -> T) -> T {
        let xdp = xdp_stats(self.closed_xdp, Some(self.io));
        let own = collect(self.bridge, xdp, self.queue, self.cpu, self.handoff, self.io_errors);
        self.shared.publish(self.index, own);
        let workers = self.shared.workers();
        let mut t = Totals::default();
        for w in &workers {
            t.add(w);
        }
        let rows: Vec<render::WorkerCounters> = workers.iter().enumerate().map(|(i, w)| w.row(i)).collect();
        let rules = Arc::clone(&lock(&self.shared.state).rules);
        let counters = rules.counters();
        let rules: Vec<render::RuleCounter<'_>> = counters
            .iter()
            .map(|c| render::RuleCounter {
                chain: c.chain,
                rule: &c.rule,
                packets: c.packets,
                bytes: c.bytes,
                action: c.action,
            })
            .collect();
        f(&render::Snapshot {
            ct: self.bridge.pipeline.conntrack(),
            table: &t.table,
            pipeline: &t.pipeline,
            invalid: &t.invalid,
            rules: &rules,
            workers: &rows,
            defrag: self.bridge.pipeline.defrag().stats(),
            now,
        })
    }
}

impl MgmtApp for App<'_> {
    fn conntrack_proc(&self, now: Instant, out: &mut String) {
        render::conntrack_proc(self.bridge.pipeline.conntrack(), now, out);
    }

    fn conntrack_json(&self, now: Instant, out: &mut String) {
        render::conntrack_json(self.bridge.pipeline.conntrack(), now, out);
    }

    fn conntrack_list(&self, now: Instant, out: &mut String) {
        render::conntrack_list(self.bridge.pipeline.conntrack(), now, out);
    }

    fn expect_proc(&self, now: Instant, out: &mut String) {
        render::expect_proc(self.bridge.pipeline.conntrack(), now, out);
    }

    fn stats_json(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        self.snapshot(now, |s| render::stats_json(s, mgmt, out));
    }

    fn metrics(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        self.snapshot(now, |s| render::metrics(s, mgmt, out));
    }

    fn reload(&mut self) -> Result<String, String> {
        info!("reload requested over the management plane");
        self.shared.reload()?;
        let path = self.shared.opts.config.display();
        Ok(format!("reloaded {path}; the connection table is untouched\n"))
    }

    fn drain_events(&mut self, out: &mut Vec<ct_core::table::CtEvent>) {
        self.bridge.pipeline.drain_events(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.fail().as_millis() as u64).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }
}
