//! `bench`: ctwall's load harness.
//!
//! `replay` builds a capture of N frames of realistic traffic (TCP
//! connections with handshake, data, ACKs and FIN close; UDP request/reply
//! pairs; pings), then measures `ctwall replay` on it: the pipeline alone
//! (frames already in memory) and the real binary end to end (pcap read,
//! JSON lines written to /dev/null), in the same run.

mod gen;

use appliance::pipeline::{AcceptAll, Verdict};
use appliance::replay::pipeline_for;
use clap::{Parser, Subcommand};
use ct_core::Instant;
use rings::PortId;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant as Clock;

#[derive(Parser)]
#[command(name = "bench", about = "ctwall load harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
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
}

fn main() -> Result<(), String> {
    match Cli::parse().cmd {
        Cmd::Replay { frames, out, ctwall } => replay(frames, &out, ctwall),
    }
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
