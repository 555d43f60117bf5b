//! `ctwall run`: the appliance. Loads the configuration, attaches AF_XDP
//! to both ports, bridges until SIGINT/SIGTERM, reloads the rules on SIGHUP,
//! prints the connection table on SIGUSR1.

use crate::bridge::Bridge;
use crate::mgmt::{render, Disposition, Mgmt, MgmtApp, MgmtStats};
use crate::pipeline::Pipeline;
use crate::rules::Ruleset;
use crate::{reject, settings};
use config::{Config, ConfigError, IfName};
use ct_core::table::Conntrack;
use ct_core::Instant;
use rings::xdp::XdpIo;
use rings::PacketIo;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

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

/// How long the idle loop sleeps in `poll(2)` when no frame is pending.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Log the counters this often while running.
const STATS_EVERY: Duration = Duration::from_secs(60);
/// At most one "table full" warning this often.
const TABLE_FULL_LOG_EVERY: Duration = Duration::from_secs(5);

/// Load the configuration, apply the command-line interface names and check
/// that both interfaces exist.
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
    }
    Ok(cfg)
}

/// Run the bridge until SIGINT or SIGTERM.
pub fn run(opts: &RunOptions) -> Result<(), String> {
    let cfg = load(opts)?;
    let rules = Arc::new(Ruleset::compile(&cfg));
    let helpers = settings::helper_registry(&cfg).map_err(|e| format!("{}: helpers: {e}", opts.config.display()))?;
    let pipeline = Pipeline::new(Conntrack::new(settings::ct_config(&cfg)), helpers);
    let mut bridge = Bridge::new(pipeline, Box::new(Arc::clone(&rules)), cfg.bridge_non_ip, reject::build_reject);

    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal handler: {e}"))?;
    }
    for (sig, flag) in [(signal_hook::consts::SIGHUP, &hup), (signal_hook::consts::SIGUSR1, &usr1)] {
        signal_hook::flag::register(sig, Arc::clone(flag)).map_err(|e| format!("signal handler: {e}"))?;
    }

    let mut io = XdpIo::open(&settings::xdp_config(&cfg))
        .map_err(|e| format!("AF_XDP on {} / {}: {e}", cfg.interfaces.inside, cfg.interfaces.outside))?;
    info!(
        config = %opts.config.display(),
        inside = %cfg.interfaces.inside,
        outside = %cfg.interfaces.outside,
        mode = %io.mode_in_use(),
        "ready: bridging"
    );

    let start = std::time::Instant::now();
    let clock = || Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    let mut mgmt = cfg.mgmt.as_ref().map(|m| {
        bridge.pipeline.enable_events(EVENT_QUEUE);
        let addrs: Vec<String> = m.addresses.0.iter().map(|a| a.to_string()).collect();
        info!(port = ?m.port, addresses = %addrs.join(" "), http_port = m.http_port.0, "management plane");
        Mgmt::new(m, clock())
    });
    let mut running = cfg;
    let mut rules = rules;
    let mut next_stats = STATS_EVERY;
    let mut full_logged = (0u64, Duration::ZERO);
    let mut mgmt_out: Vec<Vec<u8>> = Vec::new();
    // Relaxed: each flag is set by signal-hook's handler and read or cleared
    // only here; it carries no data, so no other access pairs with it.
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        let n = match mgmt.as_mut() {
            None => bridge.poll(&mut io, now),
            Some(m) => bridge.poll_with(&mut io, now, &mut |frame, port| {
                if port != m.port() {
                    return false;
                }
                match m.classify(frame) {
                    Disposition::Take => {
                        m.receive(frame);
                        true
                    }
                    Disposition::Copy => {
                        m.receive(frame);
                        false
                    }
                    Disposition::Ignore => false,
                }
            }),
        }
        .map_err(|e| format!("packet I/O: {e}"))?;
        if let Some(m) = mgmt.as_mut() {
            let mut app = App { opts, running: &mut running, bridge: &mut bridge, rules: &mut rules };
            m.poll(clock(), &mut app, &mut |f| mgmt_out.push(f.to_vec()));
            for f in mgmt_out.drain(..) {
                io.send(m.port(), &f).map_err(|e| format!("packet I/O: {e}"))?;
            }
            io.flush().map_err(|e| format!("packet I/O: {e}"))?;
        }
        if n == 0 {
            io.wait(IDLE_WAIT).map_err(|e| format!("packet I/O: {e}"))?;
        }
        if hup.swap(false, Ordering::Relaxed) {
            if let Ok(r) = reload(opts, &mut running, &mut bridge) {
                rules = r;
            }
        }
        let full = bridge.pipeline.stats().table_full;
        if full > full_logged.0 && start.elapsed() >= full_logged.1 {
            warn!(
                dropped = full - full_logged.0,
                max = running.conntrack.max.0,
                "connection table full: new connections dropped (no non-ASSURED or closing entry to evict)"
            );
            full_logged = (full, start.elapsed() + TABLE_FULL_LOG_EVERY);
        }
        if usr1.swap(false, Ordering::Relaxed) {
            dump_table(&bridge, clock());
        }
        if start.elapsed() >= next_stats {
            next_stats += STATS_EVERY;
            log_stats(&bridge, &io, &rules);
        }
    }
    log_stats(&bridge, &io, &rules);
    drop(io);
    info!("stopped; XDP programs detached");
    Ok(())
}

/// SIGUSR1: the table and expectations in `conntrack -L` format on stdout.
fn dump_table(bridge: &Bridge, now: Instant) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let r = crate::replay::final_report(&bridge.pipeline, now, crate::replay::Format::Text, &mut out)
        .and_then(|_| std::io::Write::flush(&mut out));
    if let Err(e) = r {
        warn!("could not write the table to stdout: {e}");
    }
}

fn log_stats(bridge: &Bridge, io: &XdpIo, rules: &Ruleset) {
    let p = bridge.pipeline.stats();
    let b = bridge.stats();
    let x = io.stats();
    info!(
        frames = p.frames,
        forwarded = b.forwarded,
        dropped = b.dropped,
        rejected = b.rejected,
        non_ip = p.non_ip,
        table_full = p.table_full,
        entries = bridge.pipeline.conntrack().count(),
        tx_ring_full = x.tx_ring_full,
        fill_starved = x.fill_starved,
        tx_kicks = x.tx_kicks,
        rx_kicks = x.rx_kicks,
        kernel_rx_dropped = x.kernel[0].rx_dropped + x.kernel[1].rx_dropped,
        kernel_rx_ring_full = x.kernel[0].rx_ring_full + x.kernel[1].rx_ring_full,
        kernel_fill_empty = x.kernel[0].rx_fill_ring_empty + x.kernel[1].rx_fill_ring_empty,
        log_suppressed = rules.log_suppressed(),
        "counters"
    );
    for r in rules.counters() {
        if r.packets > 0 {
            info!(chain = r.chain, rule = %r.rule, action = r.action, packets = r.packets, bytes = r.bytes, "rule");
        }
    }
}

/// What the management plane reads and asks for.
struct App<'a> {
    opts: &'a RunOptions,
    running: &'a mut Config,
    bridge: &'a mut Bridge,
    rules: &'a mut Arc<Ruleset>,
}

impl App<'_> {
    fn snapshot<T>(&self, now: Instant, f: impl FnOnce(&render::Snapshot<'_>) -> T) -> T {
        let counters = self.rules.counters();
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
        let invalid = self.bridge.pipeline.invalid_counters();
        let p = &self.bridge.pipeline;
        f(&render::Snapshot { ct: p.conntrack(), pipeline: p.stats(), invalid: &invalid, rules: &rules, now })
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
        *self.rules = reload(self.opts, self.running, self.bridge)?;
        Ok(format!("reloaded {}; the connection table is untouched\n", self.opts.config.display()))
    }

    fn drain_events(&mut self, out: &mut Vec<ct_core::table::CtEvent>) {
        self.bridge.pipeline.drain_events(out);
    }
}

/// SIGHUP (or `POST /reload`): re-read the file; on any error keep the
/// running rules. Returns the new ruleset when it was installed.
fn reload(opts: &RunOptions, running: &mut Config, bridge: &mut Bridge) -> Result<Arc<Ruleset>, String> {
    let new = match load(opts) {
        Ok(c) => c,
        Err(e) => {
            error!("reload refused, the running rules stay: {e}");
            return Err(format!("reload refused, the running rules stay: {e}"));
        }
    };
    if new.interfaces != running.interfaces || new.xdp != running.xdp {
        warn!("interfaces and AF_XDP settings change only with a restart; the running ones stay");
    }
    if new.helpers != running.helpers {
        warn!("helper assignments change only with a restart; the running ones stay");
    }
    for r in &new.raw {
        if let config::RawAction::Helper(k) = r.action {
            if !bridge.pipeline.has_helper(k.name()) {
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
    let rules = Arc::new(Ruleset::compile(&new));
    bridge.set_policy(Box::new(Arc::clone(&rules)), new.bridge_non_ip);
    bridge.pipeline.set_ct_config(settings::ct_config(&new));
    info!(config = %opts.config.display(), "reloaded the rules; the connection table is untouched");
    *running = Config {
        interfaces: running.interfaces.clone(),
        xdp: running.xdp.clone(),
        helpers: running.helpers.clone(),
        mgmt: running.mgmt.clone(),
        ..new
    };
    Ok(rules)
}
