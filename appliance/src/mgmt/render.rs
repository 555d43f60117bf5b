//! Ready-made renderings of the appliance's state for [`super::MgmtApp`]:
//! the table in the kernel's formats and as JSON, statistics as JSON, and
//! metrics in the Prometheus text exposition format (version 0.0.4).

use super::MgmtStats;
use crate::pipeline::PipelineStats;
use ct_core::defrag::DefragStats;
use ct_core::invalid::InvalidCounters;
use ct_core::listing::{conntrack_line, expect_line, proc_line, seconds_left, ListOptions};
use ct_core::table::{Conntrack, Entry, Stats};
use ct_core::{Instant, InvalidReason};
use serde_json::{json, Value};
use std::fmt::Write;

/// One rule's counter, as the ruleset keeps it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RuleCounter<'a> {
    /// The chain (`raw`, `inside_to_outside`, ...).
    pub chain: &'a str,
    /// The rule's name.
    pub rule: &'a str,
    /// Packets that matched it.
    pub packets: u64,
    /// Their bytes at the IP layer (as `iptables -v`).
    pub bytes: u64,
    /// What it does (`accept`, `drop`, ..., `policy` rows carry the policy).
    pub action: &'a str,
}

/// One worker thread's own counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    pub worker: usize,
    /// The AF_XDP queue it serves.
    pub queue: u32,
    /// The CPU it is pinned to.
    pub cpu: Option<usize>,
    /// Frames through its pipeline.
    pub frames: u64,
    /// Frames its sockets received, per port (inside, outside).
    pub rx: [u64; 2],
    /// Frames for the management plane it passed to worker 0, and those it
    /// dropped because worker 0's queue was full.
    pub mgmt_handoff: u64,
    pub mgmt_handoff_dropped: u64,
    /// Packet I/O errors of its sockets (each closes them; they are opened
    /// again after a back-off).
    pub io_errors: u64,
}

/// What the statistics are made of. With several workers, the counters
/// are their sums.
#[derive(Copy, Clone, Debug)]
pub struct Snapshot<'a> {
    /// A handle on the table (entries, expectations, settings).
    pub ct: &'a Conntrack,
    /// The tracker's statistics.
    pub table: &'a Stats,
    pub pipeline: &'a PipelineStats,
    /// The tracker's and the wire walk's INVALID counters added up
    /// (`Pipeline::invalid_counters`).
    pub invalid: &'a InvalidCounters,
    pub rules: &'a [RuleCounter<'a>],
    /// Per worker thread (empty: not shown).
    pub workers: &'a [WorkerCounters],
    /// Reassembly (shared by the workers: not a sum).
    pub defrag: DefragStats,
    pub now: Instant,
}

/// The reassembly counters as JSON (`/stats`, `ctwall replay`).
pub fn defrag_json(d: &DefragStats) -> Value {
    json!({
        "held": d.held, "reassembled": d.reassembled, "passed": d.passed, "timeout": d.timeout,
        "reinit": d.reinit, "duplicate": d.duplicate, "overlap": d.overlap, "bad_length": d.bad_length,
        "too_big": d.too_big, "memory_limit": d.memory_limit, "too_many_fragments": d.too_many_fragments,
        "mem": d.mem, "queues": d.queues,
    })
}

fn list_options(ct: &Conntrack) -> ListOptions {
    ListOptions { counters: ct.config().acct }
}

/// `/proc/net/nf_conntrack`: one line per confirmed entry.
pub fn conntrack_proc(ct: &Conntrack, now: Instant, out: &mut String) {
    let opts = list_options(ct);
    for (_, e) in ct.entries(now) {
        out.push_str(&proc_line(&e, now, &opts));
        out.push('\n');
    }
}

/// `conntrack -L`: one line per confirmed entry.
pub fn conntrack_list(ct: &Conntrack, now: Instant, out: &mut String) {
    let opts = list_options(ct);
    for (_, e) in ct.entries(now) {
        out.push_str(&conntrack_line(&e, now, &opts));
        out.push('\n');
    }
}

/// `/proc/net/nf_conntrack_expect`: one line per pending expectation.
pub fn expect_proc(ct: &Conntrack, now: Instant, out: &mut String) {
    for x in ct.expectations(now) {
        out.push_str(&expect_line(&x, now));
        out.push('\n');
    }
}

/// One entry as JSON: its `/proc/net/nf_conntrack` and `conntrack -L`
/// lines and its fields (also the final table of `ctwall replay --format jsonl`).
pub fn entry_json(e: &Entry, now: Instant, opts: &ListOptions) -> Value {
    let tuple = |t: &ct_core::Tuple| {
        json!({
            "src": t.src.to_ip(t.l3).to_string(), "dst": t.dst.to_ip(t.l3).to_string(),
            "sport": t.sport, "dport": t.dport,
        })
    };
    json!({
        "line": proc_line(e, now, opts),
        "conntrack": conntrack_line(e, now, opts),
        "l3": e.orig.l3.name(),
        "proto": e.orig.proto,
        "timeout": seconds_left(e.deadline, now),
        "state": e.state_name(),
        "status": e.status.names().collect::<Vec<_>>(),
        "orig": tuple(&e.orig),
        "reply": tuple(&e.reply),
        "zone": e.zone,
        "mark": e.mark,
        "helper": e.helper.as_ref().map(|h| h.name),
        "counters": {
            "orig": {"packets": e.counters[0].packets, "bytes": e.counters[0].bytes},
            "reply": {"packets": e.counters[1].packets, "bytes": e.counters[1].bytes},
        },
    })
}

/// The table as a JSON array, an object per entry (the same fields as
/// `ctwall replay --format jsonl`'s final table), then a newline.
pub fn conntrack_json(ct: &Conntrack, now: Instant, out: &mut String) {
    let opts = list_options(ct);
    out.push('[');
    for (i, (_, e)) in ct.entries(now).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&entry_json(&e, now, &opts).to_string());
    }
    out.push_str("]\n");
}

/// `/stats`: table fill, tracker statistics, per-reason INVALID counters,
/// frame counters, per-rule counters and the management plane's own.
pub fn stats_json(s: &Snapshot<'_>, mgmt: &MgmtStats, out: &mut String) {
    let ct = s.ct;
    let t = s.table;
    let p = s.pipeline;
    let reasons: serde_json::Map<String, Value> =
        s.invalid.iter().map(|(r, c)| (r.name().to_string(), json!(c))).collect();
    let rules: Vec<Value> = s
        .rules
        .iter()
        .map(|r| json!({"chain": r.chain, "rule": r.rule, "action": r.action, "packets": r.packets, "bytes": r.bytes}))
        .collect();
    let workers: Vec<Value> = s
        .workers
        .iter()
        .map(|w| {
            json!({
                "worker": w.worker, "queue": w.queue, "cpu": w.cpu, "frames": w.frames,
                "rx": {"inside": w.rx[0], "outside": w.rx[1]},
                "mgmt_handoff": w.mgmt_handoff, "mgmt_handoff_dropped": w.mgmt_handoff_dropped,
                "io_errors": w.io_errors,
            })
        })
        .collect();
    let v = json!({
        "table": {
            "entries": ct.count(),
            "max": ct.capacity().0,
            "max_v6": ct.capacity().1,
            "expectations": ct.expectations(s.now).count(),
            "expect_max": ct.config().max_expectations,
        },
        "conntrack": {
            "found": t.found, "invalid": s.invalid.total(), "ignore": t.ignore, "insert": t.insert,
            "insert_failed": t.insert_failed, "clash_resolve": t.clash_resolve, "drop": t.drop, "early_drop": t.early_drop,
            "icmp_error": t.icmp_error, "expect_new": t.expect_new, "expect_create": t.expect_create,
            "expect_delete": t.expect_delete, "delete": t.delete, "untracked": t.untracked,
            "helper_state_full": t.helper_state_full, "events_lost": ct.events_lost(),
        },
        "invalid_reasons": reasons,
        "frames": {
            "total": p.frames, "accepted": p.accepted, "dropped": p.dropped, "non_ip": p.non_ip,
            "table_full": p.table_full, "helper_partial_match": p.helper_partial_match,
            "helper_expect_failed": p.helper_expect_failed,
        },
        "defrag": defrag_json(&s.defrag),
        "rules": rules,
        "workers": workers,
        "mgmt": mgmt_json(mgmt),
    });
    out.push_str(&v.to_string());
    out.push('\n');
}

fn mgmt_json(m: &MgmtStats) -> Value {
    json!({
        "frames_in": m.frames_in, "frames_out": m.frames_out, "http_requests": m.http_requests,
        "refused_acl": m.refused_acl, "refused_token": m.refused_token, "queue_drops": m.queue_drops,
        "malformed": m.malformed, "events_dropped": m.events_dropped,
    })
}

/// A metric family's `# HELP` and `# TYPE` lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family with a single unlabelled sample.
fn single(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `/metrics`: everything of [`stats_json`] as `ctwall_*` metrics.
pub fn metrics(s: &Snapshot<'_>, mgmt: &MgmtStats, out: &mut String) {
    let ct = s.ct;
    let t = s.table;
    let p = s.pipeline;
    single(
        out,
        "ctwall_conntrack_entries",
        "gauge",
        "Connections in the table, unconfirmed included.",
        ct.count() as u64,
    );
    single(
        out,
        "ctwall_conntrack_max",
        "gauge",
        "IPv4 connections the table is allocated for (nf_conntrack_max).",
        ct.capacity().0 as u64,
    );
    single(
        out,
        "ctwall_conntrack_max_v6",
        "gauge",
        "IPv6 connections the table is allocated for.",
        ct.capacity().1 as u64,
    );
    single(
        out,
        "ctwall_conntrack_expectations",
        "gauge",
        "Pending expectations.",
        ct.expectations(s.now).count() as u64,
    );
    let counters: [(&str, &str, u64); 17] = [
        ("ctwall_conntrack_found_total", "Packets that found their connection.", t.found),
        ("ctwall_conntrack_ignore_total", "TCP packets the tracker ignored.", t.ignore),
        ("ctwall_conntrack_insert_total", "Connections confirmed.", t.insert),
        ("ctwall_conntrack_insert_failed_total", "Confirmations that lost a race (TCP, ICMP).", t.insert_failed),
        (
            "ctwall_conntrack_clash_resolve_total",
            "Confirmations that lost a race and joined the winner (UDP, GRE, generic).",
            t.clash_resolve,
        ),
        ("ctwall_conntrack_table_full_drops_total", "New connections refused because the table was full.", t.drop),
        ("ctwall_conntrack_early_drops_total", "Connections evicted to make room.", t.early_drop),
        ("ctwall_conntrack_icmp_error_total", "ICMP errors that matched no connection.", t.icmp_error),
        ("ctwall_conntrack_expect_new_total", "Connections created from an expectation.", t.expect_new),
        ("ctwall_conntrack_expect_create_total", "Expectations registered.", t.expect_create),
        ("ctwall_conntrack_expect_delete_total", "Expectations removed.", t.expect_delete),
        ("ctwall_conntrack_delete_total", "Confirmed connections removed.", t.delete),
        ("ctwall_conntrack_untracked_total", "Packets left untracked.", t.untracked),
        (
            "ctwall_conntrack_helper_state_full_total",
            "Packets whose helper line state could not be kept: every state slot was in use.",
            t.helper_state_full,
        ),
        (
            "ctwall_conntrack_events_lost_total",
            "Connection events dropped because the event queue was full.",
            ct.events_lost(),
        ),
        ("ctwall_frames_total", "Frames through the pipeline.", p.frames),
        ("ctwall_frames_non_ip_total", "Frames that were neither IPv4 nor IPv6.", p.non_ip),
    ];
    for (name, help, v) in counters {
        single(out, name, "counter", help, v);
    }
    let d = &s.defrag;
    let defrag: [(&str, &str, u64); 4] = [
        ("ctwall_defrag_held_total", "Fragments held for reassembly.", d.held),
        ("ctwall_defrag_reassembled_total", "Datagrams reassembled.", d.reassembled),
        ("ctwall_defrag_passed_total", "Fragments passed on without reassembly.", d.passed),
        ("ctwall_defrag_timeout_total", "Reassembly queues that timed out (nothing forwarded).", d.timeout),
    ];
    for (name, help, v) in defrag {
        single(out, name, "counter", help, v);
    }
    family(out, "ctwall_defrag_drops_total", "counter", "Fragments dropped by reassembly, by reason.");
    for (reason, v) in [
        ("duplicate", d.duplicate),
        ("overlap", d.overlap),
        ("bad_length", d.bad_length),
        ("too_big", d.too_big),
        ("memory_limit", d.memory_limit),
        ("too_many_fragments", d.too_many_fragments),
        ("max_dist_reinit", d.reinit),
    ] {
        let _ = writeln!(out, "ctwall_defrag_drops_total{{reason=\"{reason}\"}} {v}");
    }
    single(out, "ctwall_defrag_memory_bytes", "gauge", "Bytes held by reassembly.", d.mem);
    family(out, "ctwall_invalid_total", "counter", "INVALID packets by reason.");
    for &r in InvalidReason::ALL {
        let _ = writeln!(out, "ctwall_invalid_total{{reason=\"{}\"}} {}", r.name(), s.invalid.get(r));
    }
    family(out, "ctwall_verdicts_total", "counter", "Frames by the pipeline's verdict.");
    let _ = writeln!(out, "ctwall_verdicts_total{{verdict=\"accept\"}} {}", p.accepted);
    let _ = writeln!(out, "ctwall_verdicts_total{{verdict=\"drop\"}} {}", p.dropped);
    family(out, "ctwall_helper_drops_total", "counter", "Packets the helpers refused, by cause.");
    let _ = writeln!(out, "ctwall_helper_drops_total{{cause=\"partial_match\"}} {}", p.helper_partial_match);
    let _ = writeln!(out, "ctwall_helper_drops_total{{cause=\"expect_failed\"}} {}", p.helper_expect_failed);
    for (name, help, bytes) in [
        ("ctwall_rule_packets_total", "Packets that matched each rule.", false),
        ("ctwall_rule_bytes_total", "Bytes (IP layer) of the packets that matched each rule.", true),
    ] {
        family(out, name, "counter", help);
        for r in s.rules {
            let v = if bytes { r.bytes } else { r.packets };
            let _ = writeln!(out, "{name}{{chain=\"{}\",rule=\"{}\"}} {v}", label(r.chain), label(r.rule));
        }
    }
    if !s.workers.is_empty() {
        family(out, "ctwall_worker_frames_total", "counter", "Frames through each worker's pipeline.");
        for w in s.workers {
            let _ = writeln!(
                out,
                "ctwall_worker_frames_total{{worker=\"{}\",queue=\"{}\"}} {}",
                w.worker, w.queue, w.frames
            );
        }
        family(
            out,
            "ctwall_worker_rx_frames_total",
            "counter",
            "Frames each worker's AF_XDP sockets received, by port.",
        );
        for w in s.workers {
            for (port, v) in [("inside", w.rx[0]), ("outside", w.rx[1])] {
                let _ = writeln!(
                    out,
                    "ctwall_worker_rx_frames_total{{worker=\"{}\",queue=\"{}\",port=\"{port}\"}} {v}",
                    w.worker, w.queue
                );
            }
        }
        family(
            out,
            "ctwall_worker_io_errors_total",
            "counter",
            "Packet I/O errors of each worker's AF_XDP sockets (each closes them; they are opened again after a back-off).",
        );
        for w in s.workers {
            let _ = writeln!(
                out,
                "ctwall_worker_io_errors_total{{worker=\"{}\",queue=\"{}\"}} {}",
                w.worker, w.queue, w.io_errors
            );
        }
    }
    let m = mgmt;
    let own: [(&str, &str, u64); 8] = [
        ("frames_in", "Frames handed to the management stack.", m.frames_in),
        ("frames_out", "Frames the management stack sent.", m.frames_out),
        ("http_requests", "HTTP requests answered.", m.http_requests),
        ("refused_acl", "Frames from sources outside the allowed prefixes, dropped.", m.refused_acl),
        ("refused_token", "Write requests refused for a missing or wrong token.", m.refused_token),
        ("queue_drops", "Frames dropped because the management queue was full.", m.queue_drops),
        ("malformed", "Frames for the management address that were not ARP, IPv4 or IPv6.", m.malformed),
        ("events_dropped", "Event lines dropped for /events clients that did not keep up.", m.events_dropped),
    ];
    for (name, help, v) in own {
        single(out, &format!("ctwall_mgmt_{name}_total"), "counter", help, v);
    }
}
