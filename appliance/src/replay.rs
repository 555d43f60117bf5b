//! `ctwall replay`: run a capture through the pipeline, with the capture's
//! timestamps as the clock, and report every frame and the final table.

use crate::pipeline::{Decision, FragStatus, Pipeline, Verdict};
use crate::rules::Ruleset;
use crate::settings;
use config::Config;
use ct_core::invalid::InvalidCounters;
use ct_core::listing::{conntrack_line, expect_line, seconds_left, ListOptions};
use ct_core::table::{Conntrack, Entry};
use ct_core::{CtState, Instant};
use rings::pcap::PcapIo;
use rings::{Action, PacketIo};
use serde_json::{json, Value};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Output format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per frame, then the table, expectations and stats.
    Jsonl,
    /// Aligned text, then the table in `conntrack -L` format.
    Text,
}

/// What to replay.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub trace: PathBuf,
    pub config: Option<PathBuf>,
    pub format: Format,
}

/// Why a replay failed.
#[derive(Debug)]
pub enum ReplayError {
    Config(config::ConfigError),
    Helpers(helpers::RegistryError),
    Capture { path: PathBuf, err: io::Error },
    Output(io::Error),
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Config(e) => write!(f, "{e}"),
            ReplayError::Helpers(e) => write!(f, "helpers: {e}"),
            ReplayError::Capture { path, err } => write!(f, "{}: {err}", path.display()),
            ReplayError::Output(e) => write!(f, "writing output: {e}"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// Totals of a replay.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ReplaySummary {
    pub frames: u64,
    pub entries: usize,
}

/// Slots visited by the expiry sweep per frame: bounded work per packet.
const GC_BUDGET_PER_FRAME: usize = 4;

/// Build the pipeline for a configuration file (or the defaults).
pub fn pipeline_for(config: Option<&Path>) -> Result<(Pipeline, Config), ReplayError> {
    let cfg = match config {
        Some(p) => Config::load(p).map_err(ReplayError::Config)?,
        None => Config::default(),
    };
    let reg = settings::helper_registry(&cfg).map_err(ReplayError::Helpers)?;
    Ok((settings::pipeline(&cfg, reg), cfg))
}

/// Replay `opts.trace`, writing the report to `out`.
pub fn run(opts: &ReplayOptions, out: &mut dyn Write) -> Result<ReplaySummary, ReplayError> {
    let (mut pipe, cfg) = pipeline_for(opts.config.as_deref())?;
    // The configuration's rules, as `ctwall run` applies them (pcapng
    // interface 1 is the outside port, everything else the inside port).
    let rules = Ruleset::compile(&cfg);
    let cap_err = |err| ReplayError::Capture { path: opts.trace.clone(), err };
    let mut io = PcapIo::open(&opts.trace).map_err(cap_err)?;
    let mut n: u64 = 0;
    let mut now = Instant::ZERO;
    let mut write_err = None;
    let mut line = String::with_capacity(256);
    while !io.is_finished() {
        io.rx_batch(64, &mut |frame, meta| {
            n += 1;
            now = Instant::from_nanos(meta.ts_ns);
            let d = pipe.process(frame, meta.port, now, &rules);
            pipe.housekeeping(now, GC_BUDGET_PER_FRAME);
            // A capture is not retransmitted: the fragments of accepted
            // datagrams go nowhere.
            let _ = pipe.drain_emit(|_, _| Ok::<(), std::convert::Infallible>(()));
            line.clear();
            frame_line(&mut line, n, meta.ts_ns, &d, pipe.conntrack(), opts.format);
            if write_err.is_none() {
                write_err = out.write_all(line.as_bytes()).err();
            }
            match d.verdict {
                Verdict::Accept => Action::Forward(meta.port.other()),
                Verdict::Drop | Verdict::Reject => Action::Drop,
            }
        })
        .map_err(cap_err)?;
        if let Some(e) = write_err.take() {
            return Err(ReplayError::Output(e));
        }
    }
    let entries = final_report(&pipe, now, opts.format, out).map_err(ReplayError::Output)?;
    out.flush().map_err(ReplayError::Output)?;
    Ok(ReplaySummary { frames: n, entries })
}

fn frame_line(out: &mut String, n: u64, ts_ns: u64, d: &Decision, ct: &Conntrack, format: Format) {
    use std::fmt::Write as _;
    let o = &d.outcome;
    let entry = o.conn.and_then(|id| ct.entry(id));
    let tcp_state = entry.as_ref().and_then(|e| e.tcp_state()).map(|s| s.name());
    let l4 = d.l4.map(ct_core::tuple::proto_name);
    // A fragment held or dropped by reassembly has no state or verdict of
    // its own: conntrack never sees it (the kernel logs nothing for it).
    let (state, dir, verdict, frag) = match d.frag {
        FragStatus::None => (o.state.name(), o.dir().map(|d| d.name()), d.verdict.name(), None),
        FragStatus::Held => ("NONE", None, "held", Some("held")),
        FragStatus::Dropped(r) => ("NONE", None, "drop", Some(r.name())),
        FragStatus::Complete { .. } => (o.state.name(), o.dir().map(|d| d.name()), d.verdict.name(), Some("complete")),
    };
    match format {
        Format::Jsonl => {
            // Hand-written: this runs for every frame, and every value is a
            // plain identifier, so nothing needs escaping.
            fn q(out: &mut String, s: Option<&str>) {
                match s {
                    Some(s) => {
                        out.push('"');
                        out.push_str(s);
                        out.push('"');
                    }
                    None => out.push_str("null"),
                }
            }
            let _ =
                write!(out, "{{\"n\":{n},\"ts\":{}.{:09},\"ctstate\":", ts_ns / 1_000_000_000, ts_ns % 1_000_000_000);
            q(out, Some(state));
            out.push_str(",\"dir\":");
            q(out, dir);
            out.push_str(",\"verdict\":");
            q(out, Some(verdict));
            out.push_str(",\"frag\":");
            q(out, frag);
            out.push_str(",\"l4\":");
            q(out, l4);
            out.push_str(",\"tcp_state\":");
            q(out, tcp_state);
            out.push_str(",\"status\":[");
            if let Some(e) = entry {
                for (i, name) in e.status.names().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    q(out, Some(name));
                }
            }
            out.push_str("],\"reason\":");
            q(out, o.reason.map(|r| r.name()));
            out.push_str(",\"drop_reason\":");
            q(out, d.drop_cause.map(|c| c.name()));
            out.push_str("}\n");
        }
        Format::Text => {
            let _ = write!(
                out,
                "{n:>7} {:<11} {:<8} {:<6} {:<7} {:<11}",
                state,
                dir.unwrap_or("-"),
                verdict,
                l4.unwrap_or("-"),
                tcp_state.unwrap_or("-"),
            );
            if let Some(r) = o.reason {
                let _ = write!(out, " reason={r}");
            }
            if let Some(c) = d.drop_cause {
                let _ = write!(out, " drop={}", c.name());
            }
            if let Some(f) = frag {
                let _ = write!(out, " frag={f}");
            }
            if o.state == CtState::Untracked && d.l4.is_none() {
                out.push_str(" (not IP)");
            }
            out.push('\n');
        }
    }
}

/// Write the table, expectations and statistics at `now`; returns the
/// number of entries.
pub fn final_report(pipe: &Pipeline, now: Instant, format: Format, out: &mut dyn Write) -> io::Result<usize> {
    let ct = pipe.conntrack();
    let opts = ListOptions { counters: ct.config().acct };
    let entries: Vec<Entry> = ct.entries(now).map(|(_, e)| e).collect();
    let invalid = pipe.invalid_counters();
    match format {
        Format::Jsonl => {
            // One line, streamed entry by entry: the table may hold millions.
            out.write_all(b"{\"table\":[")?;
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, &crate::mgmt::render::entry_json(e, now, &opts))?;
            }
            out.write_all(b"]}\n")?;
            let expect: Vec<Value> = ct
                .expectations(now)
                .map(|x| json!({"line": expect_line(&x, now), "timeout": seconds_left(x.expires, now), "helper": x.helper}))
                .collect();
            writeln!(out, "{}", json!({ "expect": expect }))?;
            let s = ct.stats();
            let p = pipe.stats();
            let reasons: serde_json::Map<String, Value> =
                invalid.iter().filter(|(_, c)| *c > 0).map(|(r, c)| (r.name().to_string(), json!(c))).collect();
            writeln!(
                out,
                "{}",
                json!({"stats": {
                    "frames": p.frames, "accepted": p.accepted, "dropped": p.dropped, "non_ip": p.non_ip,
                    "table_full": p.table_full, "helper_partial_match": p.helper_partial_match,
                    "helper_expect_failed": p.helper_expect_failed,
                    "entries": ct.count(), "found": s.found, "invalid": invalid.total(), "ignore": s.ignore,
                    "insert": s.insert, "insert_failed": s.insert_failed, "early_drop": s.early_drop,
                    "icmp_error": s.icmp_error, "expect_new": s.expect_new, "expect_create": s.expect_create,
                    "expect_delete": s.expect_delete, "delete": s.delete, "untracked": s.untracked,
                    "helper_state_full": s.helper_state_full, "invalid_reasons": reasons,
                    "defrag": crate::mgmt::render::defrag_json(&pipe.defrag().stats()),
                }})
            )?;
        }
        Format::Text => text_table(ct, &entries, &invalid, now, out)?,
    }
    Ok(entries.len())
}

/// The table and expectations in `conntrack -L` format, a count line and
/// the INVALID counters (`invalid`, e.g. summed over workers): what
/// `--format text` ends with and what `ctwall run` prints on SIGUSR1.
/// Returns the number of entries shown.
pub fn table_text(ct: &Conntrack, invalid: &InvalidCounters, now: Instant, out: &mut dyn Write) -> io::Result<usize> {
    let entries: Vec<Entry> = ct.entries(now).map(|(_, e)| e).collect();
    text_table(ct, &entries, invalid, now, out)?;
    Ok(entries.len())
}

fn text_table(
    ct: &Conntrack,
    entries: &[Entry],
    invalid: &InvalidCounters,
    now: Instant,
    out: &mut dyn Write,
) -> io::Result<()> {
    let opts = ListOptions { counters: ct.config().acct };
    writeln!(out)?;
    for e in entries {
        writeln!(out, "{}", conntrack_line(e, now, &opts))?;
    }
    for x in ct.expectations(now) {
        writeln!(out, "{}", expect_line(&x, now))?;
    }
    writeln!(out, "ctwall: {} flow entries have been shown.", entries.len())?;
    if invalid.total() > 0 {
        let parts: Vec<String> = invalid.iter().filter(|(_, c)| *c > 0).map(|(r, c)| format!("{r}={c}")).collect();
        writeln!(out, "invalid: {}", parts.join(" "))?;
    }
    Ok(())
}
