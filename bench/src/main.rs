//! `bench`: ctwall's load harness (issue 7).
//!
//! Without a subcommand it runs every scenario and reports: `core` (the
//! pipeline in memory with the example rules: established TCP at 10k, 1M
//! and 16M flows, new TCP connections and UDP flows, a mixed IMIX profile
//! with ICMP and FTP, one worker against two on one shared table; the
//! table alone: bytes per connection and lookups per second) and `e2e` (namespaces and veth: a no-op AF_XDP forwarder, `ctwall
//! run`, a Linux bridge with conntrack, a plain Linux bridge). `--quick` runs
//! each briefly. The table goes to stdout, then a JSON summary as the last
//! line; `report.md` and PNG plots go to `target/bench/`.
//!
//! `replay` times `ctwall replay` on a generated capture; `noop-forward` is
//! the e2e reference forwarder.
#![deny(unsafe_code)]

mod alloc;
mod core;
mod e2e;
mod frames;
mod gen;
mod noop;
mod report;
mod sock;
mod table;

use appliance::pipeline::{AcceptAll, Verdict};
use appliance::replay::pipeline_for;
use clap::{Parser, Subcommand};
use ct_core::Instant;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rings::PortId;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant as Clock;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

/// The rules every scenario runs with.
const RULES: &str = include_str!("../../config/examples/bridge.ron");
const RULES_PATH: &str = "config/examples/bridge.ron";

#[derive(Parser)]
#[command(name = "bench", about = "ctwall load harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Every scenario briefly: core at 1M flows (16M skipped), e2e a few seconds each.
    #[arg(long)]
    quick: bool,
    /// The ctwall binary for e2e (default: built with cargo next to this one).
    #[arg(long)]
    ctwall: Option<PathBuf>,
    /// Where report.md and the plots go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench"))]
    out: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Frames per second of `ctwall replay` on a generated capture.
    Replay {
        /// Frames in the capture.
        #[arg(long, default_value_t = 1_000_000)]
        frames: usize,
        /// Where to write the capture.
        #[arg(long, default_value = "target/bench/replay.pcap")]
        out: PathBuf,
        /// The ctwall binary (default: next to this one).
        #[arg(long)]
        ctwall: Option<PathBuf>,
    },
    /// The e2e reference: forward every frame unchanged between two
    /// interfaces with AF_XDP (no parsing, no table).
    /// The connection table alone: bytes per connection, lookups per second
    /// (1Mi IPv4 and IPv6 connections; with --big also 16Mi IPv4).
    Table {
        #[arg(long)]
        big: bool,
    },
    NoopForward {
        #[arg(long)]
        inside: String,
        #[arg(long)]
        outside: String,
        /// Stop by itself after this long.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Some(Cmd::Replay { frames, out, ctwall }) => replay(frames, &out, ctwall),
        Some(Cmd::NoopForward { inside, outside, seconds }) => noop::forward(&inside, &outside, seconds),
        Some(Cmd::Table { big }) => table_scenarios(!big).map(|_| ()),
        None => bench(cli.quick, cli.ctwall, &cli.out),
    };
    if let Err(e) = r {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{prefix:>24} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_owned());
    pb
}

/// Memory the 16M-flow scenario needs at most (frames, table, index).
const NEED_16M: u64 = 12 << 30;

fn mem_available() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
}

/// The first three fields of /proc/loadavg.
fn loadavg() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn bench(quick: bool, ctwall: Option<PathBuf>, out: &Path) -> Result<(), String> {
    // Ctrl-C or SIGTERM: stop children, delete the namespaces, exit.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .map_err(|e| format!("signal handler: {e}"))?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("bench: signal {sig}, cleaning up");
            e2e::cleanup_all();
            std::process::exit(130);
        }
    });
    let load_start = loadavg();
    let cfg = config::Config::parse(RULES, Path::new(RULES_PATH)).map_err(|e| e.to_string())?;
    let t = Clock::now();

    // e2e first decides whether it can run, so a CI without root fails fast.
    let e2e_skip = e2e::unavailable();
    if let Some(why) = &e2e_skip {
        if std::env::var("CTWALL_REQUIRE_ROOT").as_deref() == Ok("1") {
            return Err(format!("CTWALL_REQUIRE_ROOT=1 but e2e cannot run: {why}"));
        }
        eprintln!("bench: e2e SKIPPED: {why}");
    }

    let min_packets = if quick { 2_000_000 } else { 8_000_000 };
    let mut sizes = vec![10_000, 1_000_000];
    let mut skipped_16m = None;
    if quick {
        skipped_16m = Some("quick mode".to_owned());
    } else {
        match mem_available() {
            Some(m) if m >= NEED_16M => sizes.push(16_000_000),
            m => {
                skipped_16m = Some(format!(
                    "needs {} GiB free, {} available",
                    NEED_16M >> 30,
                    m.map_or("unknown".into(), |m| format!("{} GiB", m >> 30))
                ))
            }
        }
    }
    let mut established = Vec::new();
    for n in sizes {
        let e = core::established(&cfg, n, min_packets)?;
        eprintln!("bench: established {n}: {:.2} Mpps (setup {:.1} s)", e.mpps, e.setup_s);
        established.push(e);
    }
    let one = established.iter().find(|e| e.flows == 1_000_000).map_or(0.0, |e| e.mpps);
    let two = core::shared_two(&cfg, 1_000_000, min_packets)?;
    let table = table_scenarios(quick)?;
    let new_flows = core::new_flows(&cfg, if quick { 200_000 } else { 1_000_000 })?;
    let mixed = core::mixed(&cfg, if quick { 300_000 } else { 2_000_000 })?;
    let fragmented = core::fragmented(&cfg, if quick { 20_000 } else { 200_000 })?;
    eprintln!("bench: core done in {:.1} s", t.elapsed().as_secs_f64());

    let e2e = match e2e_skip {
        Some(why) => Err(why),
        None => {
            std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let rules = out.join("rules.ron");
            std::fs::write(&rules, RULES).map_err(|e| format!("{}: {e}", rules.display()))?;
            let plan = e2e::Plan {
                secs: if quick { 2.0 } else { 8.0 },
                sweep_secs: 4.0,
                latency_secs: if quick { 0.5 } else { 3.0 },
                flows: 1000,
                sizes: vec![64, 1514],
                sweep: if quick { Vec::new() } else { vec![1, 100, 10_000, 100_000] },
                ctwall: e2e::ctwall_binary(ctwall)?,
                rules,
            };
            Ok(e2e::run_all(&plan)?)
        }
    };
    let results = report::Results {
        quick,
        established,
        skipped_16m,
        new_flows,
        mixed,
        fragmented,
        two_workers: (two, one, 1_000_000),
        table,
        e2e,
        loadavg: (load_start, loadavg()),
    };
    println!("{}", report::table(&results));
    for f in report::write(&results, out)? {
        println!("wrote {f}");
    }
    eprintln!("bench: done in {:.1} s", t.elapsed().as_secs_f64());
    println!("{}", report::summary(&results));
    Ok(())
}

/// The table alone: bytes per connection (IPv4 and IPv6, filled to
/// capacity) and lookups per second at 1M and, outside quick mode, 16M
/// IPv4 connections.
fn table_scenarios(quick: bool) -> Result<Vec<report::TableRun>, String> {
    use ct_core::tuple::L3;
    let mut runs = Vec::new();
    let mut sizes = vec![(L3::V4, 1u32 << 20), (L3::V6, 1 << 20)];
    if !quick && mem_available().is_some_and(|m| m >= NEED_16M) {
        sizes.push((L3::V4, 16 << 20));
    }
    for (l3, n) in sizes {
        let f = table::fill(l3, n)?;
        if f.fill_bytes != 0 {
            return Err(format!("table {l3:?} {n}: the packet path allocated {} bytes", f.fill_bytes));
        }
        let count = if quick { 2_000_000 } else { 10_000_000 };
        let lookups = table::lookups(&f, count)?;
        let (bytes_per_conn, fill_per_s) = (f.bytes_per_conn, f64::from(n) / f.fill_s);
        // The table goes before the HashMap is built: both at 16Mi would not fit.
        drop(f);
        let hashmap = table::hashmap_lookups(l3, n, count)?;
        eprintln!(
            "bench: table {l3:?} {n}: {:.1} B/conn, {:.2} M lookups/s (std HashMap: {:.2} M/s)",
            bytes_per_conn,
            lookups / 1e6,
            hashmap / 1e6
        );
        runs.push(report::TableRun {
            l3: format!("{l3:?}"),
            conns: n as usize,
            bytes_per_conn,
            fill_per_s,
            lookups_per_s: lookups,
            hashmap_lookups_per_s: hashmap,
        });
    }
    Ok(runs)
}

fn replay(n: usize, out: &std::path::Path, ctwall: Option<PathBuf>) -> Result<(), String> {
    let t = Clock::now();
    let frames = gen::traffic(n);
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    gen::write_pcap(out, &frames).map_err(|e| format!("{}: {e}", out.display()))?;
    let bytes: usize = frames.iter().map(|(_, f)| f.len()).sum();
    println!(
        "capture: {} frames, {} bytes, {} ({:.1} s to build)",
        frames.len(),
        bytes,
        out.display(),
        t.elapsed().as_secs_f64()
    );

    // 1. The pipeline alone, frames in memory.
    let (mut pipe, _) = pipeline_for(None).map_err(|e| e.to_string())?;
    let t = Clock::now();
    let mut accepted = 0u64;
    for (ts, f) in &frames {
        let d = pipe.process(f, PortId::Inside, Instant::from_nanos(*ts), &AcceptAll);
        accepted += u64::from(d.verdict == Verdict::Accept);
        pipe.housekeeping(Instant::from_nanos(*ts), 4);
    }
    let secs = t.elapsed().as_secs_f64();
    let s = pipe.conntrack().stats();
    println!(
        "pipeline (in memory):    {:>10.0} frames/s  {:>6.0} ns/frame  accepted {accepted}, inserted {}, invalid {}",
        n as f64 / secs,
        secs * 1e9 / n as f64,
        s.insert,
        s.invalid
    );

    // 2. The real binary, end to end.
    let bin = ctwall.unwrap_or_else(|| {
        std::env::current_exe().ok().and_then(|p| p.parent().map(|d| d.join("ctwall"))).unwrap_or_default()
    });
    for format in ["jsonl", "text"] {
        let t = Clock::now();
        let st = Command::new(&bin)
            .args(["replay", "--format", format])
            .arg(out)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("{}: {e} (build it with `cargo build --release --bins`)", bin.display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !st.success() {
            return Err(format!("ctwall replay failed: {st}"));
        }
        println!(
            "ctwall replay --format {format:<5}: {:>10.0} frames/s  ({secs:.2} s, output to /dev/null)",
            n as f64 / secs
        );
    }
    Ok(())
}
