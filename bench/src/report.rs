//! The results: a table on stdout, a JSON summary (the last line), and
//! `report.md` with PNG plots.

use crate::core::{Established, Fragmented, Mixed, NewFlows};
use crate::e2e::{PathKind, Run};
use plotters::prelude::*;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) established: Vec<Established>,
    pub(crate) skipped_16m: Option<String>,
    pub(crate) new_flows: NewFlows,
    pub(crate) mixed: Mixed,
    pub(crate) fragmented: Fragmented,
    /// Aggregate Mpps of two workers sharing one table and the one-worker
    /// Mpps at the same flow count.
    pub(crate) two_workers: (f64, f64, usize),
    pub(crate) table: Vec<TableRun>,
    pub(crate) e2e: Result<Vec<Run>, String>,
    /// /proc/loadavg when the run started and when it ended: other work on
    /// the machine moves every figure.
    pub(crate) loadavg: (String, String),
}

/// The connection table alone, filled to capacity with UDP connections.
pub(crate) struct TableRun {
    pub(crate) l3: String,
    pub(crate) conns: usize,
    /// Everything the table allocated, per connection (allocator-measured).
    pub(crate) bytes_per_conn: f64,
    /// New connections per second while filling (track + confirm).
    pub(crate) fill_per_s: f64,
    /// `Conntrack::lookup` (the lock-free index) of random existing tuples,
    /// one core.
    pub(crate) lookups_per_s: f64,
    /// The same lookups in a `std::collections::HashMap` of the same tuples.
    pub(crate) hashmap_lookups_per_s: f64,
}

fn table_run<'a>(r: &'a Results, l3: &str, conns: usize) -> Option<&'a TableRun> {
    r.table.iter().find(|t| t.l3 == l3 && t.conns == conns)
}

fn est(r: &Results, flows: usize) -> Option<&Established> {
    r.established.iter().find(|e| e.flows == flows)
}

fn main_run(r: &Results, path: PathKind, size: usize) -> Option<&Run> {
    let runs = r.e2e.as_ref().ok()?;
    let flows = runs.iter().find(|x| x.latency.is_some()).map(|x| x.flows)?;
    runs.iter().find(|x| x.path == path && x.frame_len == size && x.flows == flows && x.latency.is_some())
}

fn ratio(r: &Results, other: PathKind, size: usize) -> Option<f64> {
    let c = main_run(r, PathKind::Ctwall, size)?;
    let o = main_run(r, other, size)?;
    (o.delivered_pps > 0.0).then(|| c.delivered_pps / o.delivered_pps)
}

fn fmt_flows(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}Mi", n >> 20),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn num(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, |x| json!((x * 1000.0).round() / 1000.0))
}

pub(crate) fn summary(r: &Results) -> Value {
    let one_m = est(r, 1_000_000);
    let (two, one, _) = r.two_workers;
    let lat = main_run(r, PathKind::Ctwall, 64).and_then(|x| x.latency.as_ref());
    let mut e2e = serde_json::Map::new();
    if let Ok(runs) = &r.e2e {
        for x in runs.iter().filter(|x| x.latency.is_some()) {
            e2e.insert(
                format!("{}_{}b", x.path.key(), x.frame_len),
                json!({"delivered_mpps": num(Some(x.delivered_pps / 1e6)), "gbps": num(Some(x.gbps())),
                       "offered_mpps": num(Some(x.offered_pps / 1e6)),
                       "latency_p50_us": num(x.latency.as_ref().map(|l| l.pct(50.0))),
                       "latency_p99_us": num(x.latency.as_ref().map(|l| l.pct(99.0)))}),
            );
        }
    }
    json!({
        "mode": if r.quick { "quick" } else { "full" },
        "core_mpps_10k": num(est(r, 10_000).map(|e| e.mpps)),
        "core_mpps_1m": num(one_m.map(|e| e.mpps)),
        "core_mpps_16m": num(est(r, 16_000_000).map(|e| e.mpps)),
        "core_ns_per_packet_1m": num(one_m.map(|e| e.ns_per_packet)),
        "new_conns_per_s": num(Some(r.new_flows.tcp_conns_per_s)),
        "new_udp_flows_per_s": num(Some(r.new_flows.udp_flows_per_s)),
        "mixed_mpps": num(Some(r.mixed.mpps)),
        "mixed_gbps": num(Some(r.mixed.gbps)),
        "fragmented_mpps": num(Some(r.fragmented.mpps)),
        "fragmented_datagrams_per_s": num(Some(r.fragmented.datagrams_per_s)),
        "bytes_per_conn_v4": num(table_run(r, "V4", 1 << 20).map(|t| t.bytes_per_conn)),
        "bytes_per_conn_v6": num(table_run(r, "V6", 1 << 20).map(|t| t.bytes_per_conn)),
        "lookups_per_s_1m": num(table_run(r, "V4", 1 << 20).map(|t| t.lookups_per_s)),
        "lookups_per_s_16m": num(table_run(r, "V4", 16 << 20).map(|t| t.lookups_per_s)),
        "two_worker_speedup": num(Some(two / one)),
        "two_worker_mode": "two threads on one shared table",
        "e2e_ratio_vs_noop": num(ratio(r, PathKind::Noop, 64)),
        "e2e_ratio_vs_linux_ct": num(ratio(r, PathKind::LinuxCt, 64)),
        "e2e_ratio_vs_linux_bridge": num(ratio(r, PathKind::LinuxBridge, 64)),
        "latency_p50_us": num(lat.map(|l| l.pct(50.0))),
        "latency_p99_us": num(lat.map(|l| l.pct(99.0))),
        "e2e": Value::Object(e2e),
        "e2e_skipped": r.e2e.as_ref().err(),
        "loadavg_start": r.loadavg.0,
        "loadavg_end": r.loadavg.1,
    })
}

/// The readable table (also the body of report.md).
pub(crate) fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "load average at start: {}; at the end: {}\n", r.loadavg.0, r.loadavg.1);
    let _ = writeln!(s, "## core (in memory, example rules, one thread unless said)\n");
    let _ = writeln!(s, "| scenario | result |\n|---|---|");
    for e in &r.established {
        let _ = writeln!(
            s,
            "| established TCP, {} flows | {:.2} Mpps per core, {:.0} ns/packet ({} packets) |",
            fmt_flows(e.flows),
            e.mpps,
            e.ns_per_packet,
            e.packets
        );
    }
    if let Some(why) = &r.skipped_16m {
        let _ = writeln!(s, "| established TCP, 16M flows | skipped: {why} |");
    }
    for t in &r.table {
        let _ = writeln!(
            s,
            "| table alone, {} {} connections at capacity | {:.1} B/conn (allocator-measured), {:.2} M lookups/s (std HashMap of the same tuples: {:.2} M/s), {:.0} k inserts/s |",
            t.l3,
            fmt_flows(t.conns),
            t.bytes_per_conn,
            t.lookups_per_s / 1e6,
            t.hashmap_lookups_per_s / 1e6,
            t.fill_per_s / 1e3
        );
    }
    let n = &r.new_flows;
    let _ = writeln!(
        s,
        "| new TCP connections (SYN … FIN, 6 frames) | {:.0} conn/s ({:.2} Mpps, {} connections) |",
        n.tcp_conns_per_s, n.tcp_mpps, n.tcp_conns
    );
    let _ =
        writeln!(s, "| new UDP flows (request + reply) | {:.0} flows/s ({} flows) |", n.udp_flows_per_s, n.udp_flows);
    let m = &r.mixed;
    let _ = writeln!(
        s,
        "| mixed IMIX (TCP, UDP, ICMP, FTP with RELATED data) | {:.2} Mpps, {:.2} Gbit/s, avg {:.0} B, {:.1} % accepted, {} RELATED over {} FTP sessions ({} frames) |",
        m.mpps, m.gbps, m.avg_frame, m.accepted_pct, m.related, m.ftp_sessions, m.frames
    );
    let f = &r.fragmented;
    let _ = writeln!(
        s,
        "| fragmented UDP (4000-byte requests, 3000-byte answers, 3 fragments each; reassembled, tracked once, fragments handed back) | {:.2} Mpps of fragments, {:.0} datagrams/s, {:.2} Gbit/s, {:.1} % of datagrams accepted ({} datagrams in {} frames) |",
        f.mpps, f.datagrams_per_s, f.gbps, f.accepted_pct, f.datagrams, f.frames
    );
    let (two, one, flows) = r.two_workers;
    let _ = writeln!(
        s,
        "| two workers sharing one table ({} flows split in two) | {:.2} Mpps vs {:.2} Mpps on one: speedup {:.2} |",
        fmt_flows(flows),
        two,
        one,
        two / one
    );
    let _ = writeln!(s, "\n## e2e (veth, namespaces; UDP inside → outside)\n");
    match &r.e2e {
        Err(why) => {
            let _ = writeln!(s, "skipped: {why}");
        }
        Ok(runs) => {
            let _ = writeln!(
                s,
                "| path | frame | flows | offered Mpps | delivered Mpps | loss | Gbit/s | lat p50 µs | p99 µs | p99.9 µs | lat frames recv/sent |\n|---|---|---|---|---|---|---|---|---|---|---|"
            );
            for x in runs.iter().filter(|x| x.latency.is_some()) {
                let l = x.latency.as_ref();
                let p = |q| l.map_or(f64::NAN, |l| l.pct(q));
                let _ = writeln!(
                    s,
                    "| {} | {} B | {} | {:.3} | {:.3} | {:.1} % | {:.2} | {:.0} | {:.0} | {:.0} | {}/{} |",
                    x.path.label(),
                    x.frame_len,
                    x.flows,
                    x.offered_pps / 1e6,
                    x.delivered_pps / 1e6,
                    100.0 - x.delivered_pps * 100.0 / x.offered_pps.max(1.0),
                    x.gbps(),
                    p(50.0),
                    p(99.0),
                    p(99.9),
                    l.map_or(0, |l| l.samples_us.len()),
                    l.map_or(0, |l| l.sent)
                );
            }
            let sweep: Vec<_> = runs.iter().filter(|x| x.latency.is_none()).collect();
            if !sweep.is_empty() {
                let _ = writeln!(s, "\n| path (64 B) | flows | delivered Mpps |\n|---|---|---|");
                for x in sweep {
                    let _ = writeln!(s, "| {} | {} | {:.3} |", x.path.label(), x.flows, x.delivered_pps / 1e6);
                }
            }
            let _ = writeln!(s);
            for size in [64, 1514] {
                let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.2}"));
                let _ = writeln!(
                    s,
                    "ctwall / no-op forwarder at {size} B: {}; ctwall / Linux bridge + conntrack: {}; ctwall / plain Linux bridge: {}",
                    f(ratio(r, PathKind::Noop, size)),
                    f(ratio(r, PathKind::LinuxCt, size)),
                    f(ratio(r, PathKind::LinuxBridge, size))
                );
            }
            if let Some(n) = runs.iter().find_map(|x| x.kernel_ct_entries) {
                let _ = writeln!(
                    s,
                    "\n(the Linux conntrack path held {n} entries in its table at the end: the rules were live)"
                );
            }
        }
    }
    s
}

const NOTES: &str = "\
## How it is measured

- **core**: `appliance::pipeline::Pipeline` with the rules of `config/examples/bridge.ron` (compiled
  `Ruleset`), frames built in advance in one buffer, `process()` per frame and the expiry sweep every
  64 frames as the run loop does, simulated clock 200 ns per frame. Established flows are brought up
  by real handshakes first (not timed), then one ACK per flow (client and server alternating) is
  replayed in a scattered order. Every frame must be accepted or the scenario fails.
- **table alone**: a table allocated for N connections of one family is filled to capacity through
  the packet path (UDP first packets, track + confirm); bytes per connection = live heap bytes (a
  counting wrapper around mimalloc as the global allocator) from before the table was made to after
  it is full, divided by N, so it includes everything the table allocated; the fill must allocate
  nothing. Lookups = `Conntrack::lookup` (the lock-free index) of random existing tuples on one
  core, next to a `std::collections::HashMap` of the same tuples (one thread, no locks, no
  expiry) as a yardstick for this machine's memory.
- **two workers**: two threads on one shared table, each driving half of the flows (as two AF_XDP
  queues with flow-hashing RSS would). Speedup = aggregate rate / one-worker rate on the same total
  flow count; on a 2-core machine nothing else runs meanwhile.
- **e2e**: namespaces `gen | middle | sink` joined by veth pairs; the generator is an AF_PACKET socket
  (`sendmmsg`, qdisc bypassed) in a thread of this process, sending UDP frames over many flows at the
  highest rate it can; delivered = receive counter of the sink's interface over the send time.
  Offered = what the generator got out; when a path delivers nearly all of it (loss near 0 %), the
  generator, not the path, was the limit, and a ratio between two such paths says only that both
  kept up. Latency: a paced run (10 kpps), a receiver thread polling its socket without sleeping
  reads the send time (this process's monotonic clock, shared across namespaces) from each
  payload. Frame sizes are without FCS. Everything (generator, middle, sink) shares the machine's CPUs: the absolute figures
  are the machine's, the ratios are the point.
- The Linux reference with conntrack is br_netfilter with an nftables `inet` forward chain (the
  kernel here has no bridge-family conntrack); the bridge port is carried into it by a mark set in a
  `bridge` prerouting chain.
";

pub(crate) fn write(r: &Results, dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut md = String::new();
    let _ = writeln!(md, "# ctwall bench ({} mode)\n", if r.quick { "quick" } else { "full" });
    md.push_str(&table(r));
    let mut pngs = Vec::new();
    let flows_png = dir.join("throughput_vs_flows.png");
    plot_flows(r, &flows_png)?;
    pngs.push(flows_png.display().to_string());
    let _ = writeln!(md, "\n![throughput against flows](throughput_vs_flows.png)\n");
    if r.e2e.is_ok() {
        let lat_png = dir.join("latency.png");
        plot_latency(r, &lat_png)?;
        pngs.push(lat_png.display().to_string());
        let _ = writeln!(md, "![one-way latency distribution](latency.png)\n");
    }
    md.push_str(NOTES);
    let _ =
        writeln!(md, "\n## Summary\n\n```json\n{}\n```", serde_json::to_string_pretty(&summary(r)).unwrap_or_default());
    let p = dir.join("report.md");
    std::fs::write(&p, md).map_err(|e| format!("{}: {e}", p.display()))?;
    pngs.insert(0, p.display().to_string());
    Ok(pngs)
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

fn color(p: PathKind) -> RGBColor {
    match p {
        PathKind::Noop => COLORS[3],
        PathKind::Ctwall => COLORS[1],
        PathKind::LinuxCt => COLORS[2],
        PathKind::LinuxBridge => COLORS[4],
    }
}

fn plot_err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn plot_flows(r: &Results, path: &Path) -> Result<(), String> {
    register_font();
    let mut series: Vec<Series> = vec![(
        "core: established TCP, one core".into(),
        COLORS[0],
        r.established.iter().map(|e| (e.flows as f64, e.mpps)).collect(),
    )];
    if let Ok(runs) = &r.e2e {
        for p in PathKind::ALL {
            let mut pts: Vec<(f64, f64)> = runs
                .iter()
                .filter(|x| x.path == p && x.frame_len == 64)
                .map(|x| (x.flows as f64, x.delivered_pps / 1e6))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            if !pts.is_empty() {
                series.push((format!("e2e 64 B: {}", p.label()), color(p), pts));
            }
        }
    }
    let xs = series.iter().flat_map(|s| s.2.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::MAX, 1.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let ymax = series.iter().flat_map(|s| s.2.iter().map(|p| p.1)).fold(0.1f64, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Throughput against number of flows", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin / 2.0..xmax * 2.0).log_scale(), 0f64..ymax)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("flows")
        .y_desc("Mpps")
        .x_label_formatter(&|x| fmt_flows(*x as usize))
        .draw()
        .map_err(plot_err)?;
    for (name, c, pts) in series {
        let c2 = c;
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c2.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled()))).map_err(plot_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

fn plot_latency(r: &Results, path: &Path) -> Result<(), String> {
    register_font();
    let mut series = Vec::new();
    for p in PathKind::ALL {
        if let Some(l) = main_run(r, p, 64).and_then(|x| x.latency.as_ref()) {
            let n = l.samples_us.len();
            if n == 0 {
                continue;
            }
            let step = (n / 400).max(1);
            let pts: Vec<(f64, f64)> = (0..n)
                .step_by(step)
                .chain(std::iter::once(n - 1))
                .map(|i| (l.samples_us[i].max(0.1), (i + 1) as f64 * 100.0 / n as f64))
                .collect();
            series.push((p, pts));
        }
    }
    let xs = series.iter().flat_map(|s| s.1.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::MAX, 1.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("One-way latency, 64-byte frames at 10 kpps (CDF)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin.min(xmax) * 0.8..xmax * 1.2).log_scale(), 0f64..100.0)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("latency (µs)").y_desc("% of frames at or below").draw().map_err(plot_err)?;
    for (p, pts) in series {
        let c = color(p);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(plot_err)?
            .label(p.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}
