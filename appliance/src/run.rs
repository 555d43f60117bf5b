//! `ctwall run`: the appliance. Loads the configuration, attaches AF_XDP to
//! both ports on one queue per worker, and bridges until SIGINT/SIGTERM;
//! reloads the rules on SIGHUP, prints the connection table on SIGUSR1.
//!
//! Threads: one worker per AF_XDP queue ([`worker`]), each with its own
//! sockets, pipeline and bridge, all on one shared connection table — the
//! NIC spreads flows over its queues by its own hash, so the two directions
//! of a connection may well reach different workers. The management plane
//! (if configured) lives in worker 0; the others hand it the frames that are
//! its. The main thread keeps the signals: it reloads (compiling the rules
//! once and handing them to every worker), prints the table, logs the
//! counters summed over the workers, and at the end stops and joins them;
//! the XDP programs are detached when the last worker's sockets close.
//!
//! Failures: a worker's packet I/O error is logged and counted, and the
//! worker reopens its sockets after a back-off while the others keep
//! forwarding ([`worker`]). A worker that panics or fails otherwise fails
//! closed ([`supervise`]): every worker stops, the XDP programs are
//! detached, and `run` returns an error (the process exits non-zero, for a
//! supervisor to restart it).

mod worker;

use crate::bridge::BridgeStats;
use crate::mgmt::render::WorkerCounters;
use crate::mgmt::Mgmt;
use crate::pipeline::{Pipeline, PipelineStats};
use crate::rules::Ruleset;
use crate::settings;
use config::{Config, ConfigError, IfName};
use ct_core::invalid::InvalidCounters;
use ct_core::table::{Conntrack, Stats};
use ct_core::{CtConfig, Instant};
use helpers::HelperRegistry;
use rings::xdp::{KernelStats, XdpIo, XdpStats};
use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;
use tracing::{error, info, warn};
use worker::{MgmtRole, Worker};

/// Command-line options of `ctwall run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Overrides `interfaces.inside`.
    pub inside: Option<String>,
    /// Overrides `interfaces.outside`.
    pub outside: Option<String>,
    /// `--mgmt ADDR/PREFIX`: a management address on the inside port
    /// (replaces the file's `mgmt` section).
    pub mgmt: Option<String>,
}

/// Connection events the tracker queues between two polls of the
/// management plane.
const EVENT_QUEUE: usize = 4096;

/// Log the counters this often while running.
const STATS_EVERY: Duration = Duration::from_secs(60);
/// At most one "table full" warning this often.
const TABLE_FULL_LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the main thread looks at the signal flags and the workers.
const MAIN_TICK: Duration = Duration::from_millis(20);
/// Frames the other workers may have queued for the management plane
/// (worker 0) at once; more are dropped and counted.
const MGMT_HANDOFF_QUEUE: usize = 256;

/// Load the configuration, apply the command-line interface names and check
/// that both interfaces exist and have the queues the workers bind.
pub fn load(opts: &RunOptions) -> Result<Config, String> {
    let mut cfg = Config::load(&opts.config).map_err(|e| e.to_string())?;
    let mut from_file = true;
    for (flag, value, slot) in [
        ("--inside", &opts.inside, &mut cfg.interfaces.inside),
        ("--outside", &opts.outside, &mut cfg.interfaces.outside),
    ] {
        if let Some(v) = value {
            *slot = IfName::try_from(v.clone()).map_err(|e| format!("{flag}: expected {e}"))?;
            from_file = false;
        }
    }
    if let Some(m) = &opts.mgmt {
        let addr = config::IfAddr::try_from(m.clone()).map_err(|e| format!("--mgmt: expected {e}"))?;
        cfg.mgmt = Some(config::Mgmt::for_address(addr));
    }
    if cfg.interfaces.inside == cfg.interfaces.outside {
        return Err(format!(
            "inside and outside are both {:?}; expected two different interfaces",
            cfg.interfaces.inside.0
        ));
    }
    if from_file {
        cfg.check_interfaces_exist(&opts.config).map_err(|e: ConfigError| e.to_string())?;
    } else {
        for (what, name) in [("inside", &cfg.interfaces.inside), ("outside", &cfg.interfaces.outside)] {
            if !std::path::Path::new("/sys/class/net").join(&name.0).exists() {
                return Err(format!("{what} interface {:?} does not exist", name.0));
            }
        }
        cfg.check_queues(&opts.config).map_err(|e| e.to_string())?;
    }
    Ok(cfg)
}

/// The CPU of each worker: `cpus` in turn if configured; else, for several
/// workers, the CPUs this process may use in turn; a single worker is not
/// pinned.
fn plan_cpus(cfg: &Config, allowed: &[usize]) -> Vec<Option<usize>> {
    let n = cfg.workers.0 as usize;
    match &cfg.cpus {
        Some(c) => (0..n).map(|i| Some(c.for_worker(i) as usize)).collect(),
        None if n > 1 && !allowed.is_empty() => (0..n).map(|i| Some(allowed[i % allowed.len()])).collect(),
        None => vec![None; n],
    }
}

/// Run the bridge until SIGINT or SIGTERM.
pub fn run(opts: &RunOptions) -> Result<(), String> {
    let cfg = load(opts)?;
    let allowed = rings::cpu::allowed_cpus().map_err(|e| format!("sched_getaffinity: {e}"))?;
    cfg.check_cpus(&allowed, &opts.config).map_err(|e| e.to_string())?;
    let n = cfg.workers.0 as usize;
    for w in crate::lint::warnings(&cfg) {
        warn!("{}: {w}", opts.config.display());
    }
    let rules = Arc::new(Ruleset::compile(&cfg));
    let helpers = settings::helper_registry(&cfg).map_err(|e| format!("{}: helpers: {e}", opts.config.display()))?;
    let mut first = settings::pipeline(&cfg, helpers.clone());
    if cfg.mgmt.is_some() {
        first.enable_events(EVENT_QUEUE);
    }
    let mut pipelines: Vec<Pipeline> = (1..n).map(|_| first.worker()).collect();
    pipelines.insert(0, first);
    // The main thread's handle: SIGUSR1 dumps and the entry count.
    let table = pipelines[0].conntrack().worker();

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal handler: {e}"))?;
    }
    for (sig, flag) in [(signal_hook::consts::SIGHUP, &hup), (signal_hook::consts::SIGUSR1, &usr1)] {
        signal_hook::flag::register(sig, Arc::clone(flag)).map_err(|e| format!("signal handler: {e}"))?;
    }

    let ios = XdpIo::open_queues(&settings::xdp_config(&cfg), cfg.workers.0)
        .map_err(|e| format!("AF_XDP on {} / {} ({n} queues): {e}", cfg.interfaces.inside, cfg.interfaces.outside))?;
    let mode = ios[0].mode_in_use().to_owned();
    let cpus = plan_cpus(&cfg, &allowed);
    let start = std::time::Instant::now();
    let clock = move || Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));

    let mut roles: Vec<MgmtRole> = (0..n).map(|_| MgmtRole::None).collect();
    if let Some(m) = &cfg.mgmt {
        let addrs: Vec<String> = m.addresses.0.iter().map(|a| a.to_string()).collect();
        info!(port = ?m.port, addresses = %addrs.join(" "), http_port = m.http_port.0, "management plane");
        let mgmt = Mgmt::new(m, clock());
        let (tx, rx) = mpsc::sync_channel(MGMT_HANDOFF_QUEUE);
        for role in roles.iter_mut().skip(1) {
            *role = MgmtRole::Handoff { classifier: mgmt.classifier(), to: tx.clone() };
        }
        roles[0] = MgmtRole::Owner { mgmt: Box::new(mgmt), handed: (n > 1).then_some(rx) };
    }

    let shared = Arc::new(Shared {
        opts: opts.clone(),
        stop: Arc::clone(&stop),
        start,
        state: Mutex::new(Installed { ct: settings::ct_config(&cfg), rules, running: cfg.clone(), generation: 0 }),
        generation: AtomicU64::new(0),
        helpers,
        published: (0..n).map(|_| Mutex::new(WorkerStats::default())).collect(),
    });
    let mut handles = Vec::with_capacity(n);
    let (started_tx, started) = mpsc::channel::<usize>();
    let zipped = ios.into_iter().zip(pipelines).zip(roles.into_iter().zip(cpus));
    for (index, ((io, pipeline), (role, cpu))) in zipped.enumerate() {
        let w = Worker::new(index, io, pipeline, cpu, role, &shared);
        let (sh, started) = (Arc::clone(&shared), started_tx.clone());
        match spawn_worker(index, Arc::clone(&stop), move || w.run(&sh, &started)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                let _ = join_all(handles);
                return Err(format!("cannot start worker {index}: {e}"));
            }
        }
    }
    drop(started_tx);
    // Ready once every worker is pinned and polling (a worker that fails
    // to start drops its sender without a word).
    if started.iter().take(n).count() < n {
        stop.store(true, Ordering::Relaxed);
        return join_all(handles).and(Err("a worker failed to start".into()));
    }
    info!(
        config = %opts.config.display(),
        inside = %cfg.interfaces.inside,
        outside = %cfg.interfaces.outside,
        workers = n,
        mode = %mode,
        "ready: bridging"
    );

    let mut next_stats = STATS_EVERY;
    let mut full_logged = (0u64, Duration::ZERO);
    // Relaxed: each flag is set by signal-hook's handler (or, for `stop`, by
    // a failing worker) and read or cleared here; none carries data.
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(MAIN_TICK);
        if handles.iter().any(|h| h.is_finished()) {
            break;
        }
        if hup.swap(false, Ordering::Relaxed) {
            let _ = shared.reload();
        }
        let totals = shared.totals();
        let full = totals.pipeline.table_full;
        if full > full_logged.0 && start.elapsed() >= full_logged.1 {
            warn!(
                dropped = full - full_logged.0,
                max = shared.state().running.conntrack.max.0,
                "connection table full: new connections dropped (no non-ASSURED or closing entry to evict)"
            );
            full_logged = (full, start.elapsed() + TABLE_FULL_LOG_EVERY);
        }
        if usr1.swap(false, Ordering::Relaxed) {
            dump_table(&table, &totals.invalid, clock());
        }
        if start.elapsed() >= next_stats {
            next_stats += STATS_EVERY;
            log_stats(&shared, &table);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let result = join_all(handles);
    log_stats(&shared, &table);
    if result.is_ok() {
        info!("stopped; XDP programs detached");
    }
    result
}

/// Start worker `index`'s thread running `body` under [`supervise`].
fn spawn_worker(
    index: usize,
    stop: Arc<AtomicBool>,
    body: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<Result<(), String>>> {
    std::thread::Builder::new().name(format!("ctwall-w{index}")).spawn(move || supervise(index, &stop, body))
}

/// Run worker `index`'s `body` at its thread's boundary: a panic is caught
/// and logged with the worker id, and a panic or an error fails closed: it
/// sets `stop`, so every worker stops (their sockets close and the last
/// one detaches the XDP programs) and `run` returns the error. The body
/// owns the worker, so unwinding closes its sockets too.
fn supervise(index: usize, stop: &AtomicBool, body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    // AssertUnwindSafe: whatever the body shared (the connection table,
    // the published counters) is not used for forwarding again: every
    // worker stops.
    let e = match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            error!(worker = index, "{e}");
            e
        }
        Err(payload) => {
            let what = panic_text(payload.as_ref());
            error!(worker = index, panic = %what, "worker panicked: failing closed, every worker stops");
            format!("worker {index} panicked: {what}")
        }
    };
    // Relaxed: a flag without data, as for the signal handlers.
    stop.store(true, Ordering::Relaxed);
    Err(e)
}

/// The message of a panic (`panic!` with a literal or a formatted string).
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Join every worker; the first failure is the result.
fn join_all(handles: Vec<std::thread::JoinHandle<Result<(), String>>>) -> Result<(), String> {
    let mut result = Ok(());
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap_or_else(|_| Err(format!("worker {i} panicked")));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// The rules and tracker settings in force, and the configuration they came
/// from.
struct Installed {
    running: Config,
    rules: Arc<Ruleset>,
    ct: CtConfig,
    /// Bumped by every reload.
    generation: u64,
}

/// What the threads of `ctwall run` share.
struct Shared {
    opts: RunOptions,
    /// Set by SIGINT/SIGTERM, or by a failing worker: every worker stops.
    stop: Arc<AtomicBool>,
    /// The clock's zero.
    start: std::time::Instant,
    state: Mutex<Installed>,
    /// `state.generation`, for the workers' per-batch check without the lock.
    generation: AtomicU64,
    /// The helpers loaded at start (a reload cannot add any).
    helpers: HelperRegistry,
    /// Each worker's counters as it last published them.
    published: Vec<Mutex<WorkerStats>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, Installed> {
        lock(&self.state)
    }

    fn clock(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn publish(&self, worker: usize, stats: WorkerStats) {
        *lock(&self.published[worker]) = stats;
    }

    /// Every worker's last published counters.
    fn workers(&self) -> Vec<WorkerStats> {
        self.published.iter().map(|m| lock(m).clone()).collect()
    }

    /// The workers' counters, added up.
    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for w in &self.published {
            t.add(&lock(w));
        }
        t
    }

    /// SIGHUP (or `POST /reload`): re-read the file; on any error keep the
    /// running rules. On success every worker takes the new rules and tracker
    /// settings before its next batch.
    fn reload(&self) -> Result<(), String> {
        let mut st = self.state();
        let opts = &self.opts;
        let mut new = match load(opts) {
            Ok(c) => c,
            Err(e) => {
                error!("reload refused, the running rules stay: {e}");
                return Err(format!("reload refused, the running rules stay: {e}"));
            }
        };
        let running = &st.running;
        if new.interfaces != running.interfaces || new.xdp != running.xdp {
            warn!("interfaces and AF_XDP settings change only with a restart; the running ones stay");
        }
        if new.workers != running.workers || new.cpus != running.cpus {
            warn!("workers and cpus change only with a restart; the running ones stay");
        }
        if new.helpers != running.helpers {
            warn!("helper assignments change only with a restart; the running ones stay");
        }
        for r in &new.raw {
            if let config::RawAction::Helper(k) = r.action {
                if self.helpers.by_name(k.name()).is_none() {
                    warn!(
                        helper = k.name(),
                        "a raw rule names a helper that starts only with a restart; it attaches nothing until then"
                    );
                }
            }
        }
        if new.mgmt != running.mgmt {
            warn!("management settings change only with a restart; the running ones stay");
        }
        if new.defrag != running.defrag {
            warn!(
                "defrag settings change only with a restart (its memory is allocated at start); the running ones stay"
            );
        }
        let (k, r) = (&mut new.conntrack, &running.conntrack);
        if (k.max, k.max_v6, k.expect_max, k.acct) != (r.max, r.max_v6, r.expect_max, r.acct) {
            warn!("conntrack max, max_v6, expect_max and acct change only with a restart (the table is allocated at start); the running ones stay");
            (k.max, k.max_v6, k.expect_max, k.acct) = (r.max, r.max_v6, r.expect_max, r.acct);
        }
        for w in crate::lint::warnings(&new) {
            warn!("{}: {w}", opts.config.display());
        }
        let rules = Arc::new(Ruleset::compile(&new));
        let ct = settings::ct_config(&new);
        let kept = Config {
            interfaces: running.interfaces.clone(),
            xdp: running.xdp.clone(),
            workers: running.workers,
            cpus: running.cpus.clone(),
            helpers: running.helpers.clone(),
            mgmt: running.mgmt.clone(),
            defrag: running.defrag.clone(),
            ..new
        };
        (st.rules, st.ct, st.running) = (rules, ct, kept);
        st.generation += 1;
        // Release: pairs with the workers' Acquire load; they then lock
        // `state` anyway, which orders the data itself.
        self.generation.store(st.generation, Ordering::Release);
        info!(config = %opts.config.display(), "reloaded the rules; the connection table is untouched");
        Ok(())
    }
}

/// One worker's counters, published for the main thread and the
/// management plane.
#[derive(Clone, Debug, Default)]
struct WorkerStats {
    queue: u32,
    cpu: Option<usize>,
    pipeline: PipelineStats,
    bridge: BridgeStats,
    /// The tracker statistics of the worker's table handle.
    table: Stats,
    /// The handle's and the wire walk's INVALID counters.
    invalid: InvalidCounters,
    xdp: XdpStats,
    mgmt_handoff: u64,
    mgmt_handoff_dropped: u64,
    /// Packet I/O errors (see `worker`).
    io_errors: u64,
}

impl WorkerStats {
    fn row(&self, worker: usize) -> WorkerCounters {
        WorkerCounters {
            worker,
            queue: self.queue,
            cpu: self.cpu,
            frames: self.pipeline.frames,
            rx: self.xdp.rx_port,
            mgmt_handoff: self.mgmt_handoff,
            mgmt_handoff_dropped: self.mgmt_handoff_dropped,
            io_errors: self.io_errors,
        }
    }
}

/// Counters summed over the workers.
#[derive(Clone, Debug, Default)]
struct Totals {
    pipeline: PipelineStats,
    bridge: BridgeStats,
    table: Stats,
    invalid: InvalidCounters,
    xdp: XdpStats,
}

impl Totals {
    /// Add one worker's counters. Every struct is taken apart field by
    /// field, without `..`: a counter added to one of them is a compile
    /// error here until it is summed too.
    fn add(&mut self, w: &WorkerStats) {
        let PipelineStats {
            frames,
            non_ip,
            accepted,
            dropped,
            table_full,
            insert_failed,
            helper_partial_match,
            helper_expect_failed,
            wire_invalid,
        } = &w.pipeline;
        let p = &mut self.pipeline;
        p.frames += frames;
        p.non_ip += non_ip;
        p.accepted += accepted;
        p.dropped += dropped;
        p.table_full += table_full;
        p.insert_failed += insert_failed;
        p.helper_partial_match += helper_partial_match;
        p.helper_expect_failed += helper_expect_failed;
        p.wire_invalid.merge(wire_invalid);
        let BridgeStats { forwarded, dropped, rejected, reject_sent, non_ip_dropped, taken, frag_held } = &w.bridge;
        let b = &mut self.bridge;
        b.forwarded += forwarded;
        b.dropped += dropped;
        b.rejected += rejected;
        b.reject_sent += reject_sent;
        b.non_ip_dropped += non_ip_dropped;
        b.taken += taken;
        b.frag_held += frag_held;
        let Stats {
            found,
            invalid,
            ignore,
            insert,
            insert_failed,
            clash_resolve,
            drop,
            early_drop,
            icmp_error,
            expect_new,
            expect_create,
            expect_delete,
            delete,
            untracked,
            helper_state_full,
        } = &w.table;
        let t = &mut self.table;
        t.found += found;
        t.invalid += invalid;
        t.ignore += ignore;
        t.insert += insert;
        t.insert_failed += insert_failed;
        t.clash_resolve += clash_resolve;
        t.drop += drop;
        t.early_drop += early_drop;
        t.icmp_error += icmp_error;
        t.expect_new += expect_new;
        t.expect_create += expect_create;
        t.expect_delete += expect_delete;
        t.delete += delete;
        t.untracked += untracked;
        t.helper_state_full += helper_state_full;
        self.invalid.merge(&w.invalid);
        add_xdp(&mut self.xdp, &w.xdp);
    }
}

/// Add `from` to `x`, field by field without `..` (see [`Totals::add`]).
fn add_xdp(x: &mut XdpStats, from: &XdpStats) {
    let XdpStats {
        rx,
        rx_port,
        forwarded,
        dropped,
        sent,
        tx,
        tx_completed,
        tx_ring_full,
        send_no_frame,
        tx_backlog_full,
        fill_starved,
        tx_kicks,
        rx_kicks,
        kernel,
    } = from;
    x.rx += rx;
    x.rx_port[0] += rx_port[0];
    x.rx_port[1] += rx_port[1];
    x.forwarded += forwarded;
    x.dropped += dropped;
    x.sent += sent;
    x.tx += tx;
    x.tx_completed += tx_completed;
    x.tx_ring_full += tx_ring_full;
    x.send_no_frame += send_no_frame;
    x.tx_backlog_full += tx_backlog_full;
    x.fill_starved += fill_starved;
    x.tx_kicks += tx_kicks;
    x.rx_kicks += rx_kicks;
    for (k, l) in x.kernel.iter_mut().zip(kernel) {
        let KernelStats {
            rx_dropped,
            rx_invalid_descs,
            tx_invalid_descs,
            rx_ring_full,
            rx_fill_ring_empty,
            tx_ring_empty,
        } = l;
        k.rx_dropped += rx_dropped;
        k.rx_invalid_descs += rx_invalid_descs;
        k.tx_invalid_descs += tx_invalid_descs;
        k.rx_ring_full += rx_ring_full;
        k.rx_fill_ring_empty += rx_fill_ring_empty;
        k.tx_ring_empty += tx_ring_empty;
    }
}

/// SIGUSR1: the table and expectations in `conntrack -L` format on stdout.
fn dump_table(ct: &Conntrack, invalid: &InvalidCounters, now: Instant) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let r = crate::replay::table_text(ct, invalid, now, &mut out).and_then(|_| std::io::Write::flush(&mut out));
    if let Err(e) = r {
        warn!("could not write the table to stdout: {e}");
    }
}

/// The counters summed over the workers, each worker's own, and the rules'.
fn log_stats(shared: &Shared, table: &Conntrack) {
    let workers = shared.workers();
    let mut t = Totals::default();
    for w in &workers {
        t.add(w);
    }
    let (p, b, x) = (&t.pipeline, &t.bridge, &t.xdp);
    let rules = Arc::clone(&shared.state().rules);
    info!(
        frames = p.frames,
        forwarded = b.forwarded,
        dropped = b.dropped,
        rejected = b.rejected,
        non_ip = p.non_ip,
        table_full = p.table_full,
        entries = table.count(),
        tx_ring_full = x.tx_ring_full,
        tx_backlog_full = x.tx_backlog_full,
        send_no_frame = x.send_no_frame,
        fill_starved = x.fill_starved,
        tx_kicks = x.tx_kicks,
        rx_kicks = x.rx_kicks,
        kernel_rx_dropped = x.kernel[0].rx_dropped + x.kernel[1].rx_dropped,
        kernel_rx_ring_full = x.kernel[0].rx_ring_full + x.kernel[1].rx_ring_full,
        kernel_fill_empty = x.kernel[0].rx_fill_ring_empty + x.kernel[1].rx_fill_ring_empty,
        log_suppressed = rules.log_suppressed(),
        "counters"
    );
    for (i, w) in workers.iter().enumerate() {
        info!(
            worker = i,
            queue = w.queue,
            cpu = %w.cpu.map_or_else(|| "-".to_string(), |c| c.to_string()),
            frames = w.pipeline.frames,
            rx_inside = w.xdp.rx_port[0],
            rx_outside = w.xdp.rx_port[1],
            forwarded = w.bridge.forwarded,
            dropped = w.bridge.dropped,
            mgmt_handoff = w.mgmt_handoff,
            mgmt_handoff_dropped = w.mgmt_handoff_dropped,
            io_errors = w.io_errors,
            kernel_rx_dropped = w.xdp.kernel[0].rx_dropped + w.xdp.kernel[1].rx_dropped,
            "worker counters"
        );
    }
    for r in rules.counters() {
        if r.packets > 0 {
            info!(chain = r.chain, rule = %r.rule, action = r.action, packets = r.packets, bytes = r.bytes, "rule");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("t.ron")).unwrap()
    }

    #[test]
    fn cpus_are_planned_in_turn_and_one_worker_is_not_pinned() {
        assert_eq!(plan_cpus(&cfg("()"), &[0, 1]), vec![None]);
        assert_eq!(plan_cpus(&cfg("(workers: 3)"), &[2, 5]), vec![Some(2), Some(5), Some(2)]);
        assert_eq!(plan_cpus(&cfg("(workers: 3, cpus: [7, 1])"), &[0]), vec![Some(7), Some(1), Some(7)]);
        assert_eq!(plan_cpus(&cfg("(cpus: [1])"), &[0, 1]), vec![Some(1)]);
    }

    #[test]
    fn totals_add_up_the_workers() {
        let mut a = WorkerStats::default();
        a.pipeline.frames = 3;
        a.pipeline.table_full = 1;
        a.bridge.forwarded = 2;
        a.table.found = 5;
        a.xdp.rx_port = [1, 2];
        a.xdp.kernel[1].rx_dropped = 4;
        a.invalid.inc(ct_core::InvalidReason::Ipv4BadChecksum);
        let mut t = Totals::default();
        t.add(&a);
        t.add(&a);
        assert_eq!((t.pipeline.frames, t.pipeline.table_full, t.bridge.forwarded, t.table.found), (6, 2, 4, 10));
        assert_eq!((t.xdp.rx_port, t.xdp.kernel[1].rx_dropped), ([2, 4], 8));
        assert_eq!(t.invalid.get(ct_core::InvalidReason::Ipv4BadChecksum), 2);
    }

    /// Counts its drops: a stand-in for a worker's sockets.
    struct Sockets(Arc<std::sync::atomic::AtomicUsize>);

    impl Drop for Sockets {
        fn drop(&mut self) {
            // Relaxed: read only after `join_all`, whose joins order this
            // thread's writes before the read.
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Three workers under `spawn_worker`; worker 1 panics. Every worker
    /// stops and drops its sockets (the last one would detach the XDP
    /// programs), and the result names the worker and the panic.
    #[test]
    fn a_panicking_worker_fails_closed_and_stops_the_others() {
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let handles: Vec<_> = (0..3)
            .map(|i| {
                let (stop, sockets) = (Arc::clone(&stop), Sockets(Arc::clone(&closed)));
                spawn_worker(i, Arc::clone(&stop), move || {
                    let _sockets = sockets;
                    if i == 1 {
                        std::thread::sleep(Duration::from_millis(20));
                        panic!("boom in worker {}", i);
                    }
                    let deadline = std::time::Instant::now() + Duration::from_secs(20);
                    // Relaxed: a flag without data, as in `Worker::run`.
                    while !stop.load(Ordering::Relaxed) {
                        assert!(std::time::Instant::now() < deadline, "worker {i} never told to stop");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Ok(())
                })
                .unwrap()
            })
            .collect();
        let r = join_all(handles);
        assert_eq!(r, Err("worker 1 panicked: boom in worker 1".to_string()));
        // Relaxed: after the joins, which order the workers' writes before these reads.
        assert!(stop.load(Ordering::Relaxed));
        assert_eq!(closed.load(Ordering::Relaxed), 3, "every worker's sockets closed");
    }

    #[test]
    fn a_failing_worker_stops_all_and_a_finished_one_does_not() {
        // Relaxed throughout: one thread.
        let stop = AtomicBool::new(false);
        assert_eq!(supervise(0, &stop, || Ok(())), Ok(()));
        assert!(!stop.load(Ordering::Relaxed));
        assert_eq!(supervise(2, &stop, || Err("cannot pin".into())), Err("cannot pin".to_string()));
        assert!(stop.load(Ordering::Relaxed));
        let stop = AtomicBool::new(false);
        let r = supervise(4, &stop, || std::panic::panic_any(7u32));
        assert_eq!(r, Err("worker 4 panicked: (no message)".to_string()));
        assert!(stop.load(Ordering::Relaxed));
    }
}
