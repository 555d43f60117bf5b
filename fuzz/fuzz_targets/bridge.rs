//! The appliance's frame path on arbitrary frames: the example ruleset
//! (raw and filter chains, reject answers built from the hostile frame) and
//! the management plane (classify, access list, smoltcp) in front of it.
//!
//! Input: records `[dt: 1 byte][flags: 1 byte][len: 1 byte][len bytes]`;
//! `dt` advances the clock in 100 ms steps, flags bit 0 picks the ingress
//! port. Checks: no panic; a forwarded frame leaves byte for byte as it came
//! in, out of the other port; every reject answer and every management frame
//! is a well-formed frame; the table stays within its limit.
#![no_main]

#[path = "records.rs"]
mod records;

use appliance::bridge::Bridge;
use appliance::mgmt::{render, Disposition, Mgmt, MgmtApp, MgmtStats};
use appliance::pipeline::Pipeline;
use appliance::reject::build_reject;
use appliance::rules::Ruleset;
use ct_core::invalid::InvalidCounters;
use ct_core::table::{Conntrack, CtEvent};
use ct_core::wire::{parse_frame, parse_ip};
use ct_core::{CtConfig, Instant};
use helpers::HelperRegistry;
use libfuzzer_sys::fuzz_target;
use records::{records, Record};
use rings::mem::MemIo;
use rings::{PortId, RxMeta};
use std::path::Path;
use std::sync::{Arc, LazyLock};

const MAX: u32 = 16;

/// The management plane's view of the bridge.
struct App<'a>(&'a Pipeline);

impl App<'_> {
    /// What `/stats` and `/metrics` render (`invalid`: the pipeline's sum).
    fn snapshot<'b>(&'b self, now: Instant, invalid: &'b InvalidCounters) -> render::Snapshot<'b> {
        let ct = self.0.conntrack();
        let (table, pipeline, defrag) = (ct.stats(), self.0.stats(), self.0.defrag().stats());
        render::Snapshot { ct, table, pipeline, invalid, rules: &[], workers: &[], defrag, now }
    }
}

impl MgmtApp for App<'_> {
    fn conntrack_proc(&self, now: Instant, out: &mut String) {
        render::conntrack_proc(self.0.conntrack(), now, out);
    }
    fn conntrack_json(&self, now: Instant, out: &mut String) {
        render::conntrack_json(self.0.conntrack(), now, out);
    }
    fn conntrack_list(&self, now: Instant, out: &mut String) {
        render::conntrack_list(self.0.conntrack(), now, out);
    }
    fn expect_proc(&self, now: Instant, out: &mut String) {
        render::expect_proc(self.0.conntrack(), now, out);
    }
    fn stats_json(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        render::stats_json(&self.snapshot(now, &self.0.invalid_counters()), mgmt, out);
    }
    fn metrics(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        render::metrics(&self.snapshot(now, &self.0.invalid_counters()), mgmt, out);
    }
    fn reload(&mut self) -> Result<String, String> {
        Err("not in the fuzzer".into())
    }
    fn drain_events(&mut self, _out: &mut Vec<CtEvent>) {}
}

/// The example configuration, parsed once.
static CONFIG: LazyLock<config::Config> = LazyLock::new(|| {
    let text = include_str!("../../config/examples/bridge.ron");
    config::Config::parse(text, Path::new("bridge.ron")).expect("the example parses")
});

fuzz_target!(|data: &[u8]| {
    let cfg = &*CONFIG;
    let rules = Arc::new(Ruleset::compile(cfg));
    let ct =
        CtConfig { max_entries: MAX, max_entries_v6: MAX, max_expectations: 8, ..appliance::settings::ct_config(cfg) };
    let reg = appliance::settings::helper_registry(cfg).unwrap_or_else(|_| HelperRegistry::default());
    let mut bridge = Bridge::new(Pipeline::new(Conntrack::new(ct), reg), Box::new(rules), true, build_reject);
    let mgmt_cfg = config::Mgmt::for_address(config::IfAddr::try_from("10.0.0.250/24".to_string()).expect("valid"));
    let mut mgmt = Mgmt::new(&mgmt_cfg, Instant::ZERO);
    let mut now = Instant::ZERO;
    for Record { dt, flags, frame } in records(data) {
        now = now + dt;
        let port = if flags & 1 == 0 { PortId::Inside } else { PortId::Outside };
        let mut io = MemIo::new();
        io.push(frame.to_vec(), RxMeta { ts_ns: now.as_nanos(), port });
        let mut taken = false;
        bridge
            .poll_with(&mut io, now, &mut |f, p| {
                if p != mgmt.port() {
                    return false;
                }
                match mgmt.classify(f) {
                    Disposition::Take => {
                        mgmt.receive(f);
                        taken = true;
                        true
                    }
                    Disposition::Copy => {
                        mgmt.receive(f);
                        false
                    }
                    Disposition::Ignore => false,
                }
            })
            .expect("in-memory I/O does not fail");
        for (out_port, out) in &io.tx {
            if *out_port == port.other() {
                assert_eq!(out.as_slice(), frame, "a forwarded frame changed");
            } else {
                // A reject answer: a well-formed IP packet in a frame.
                let l2 = parse_frame(out).expect("reject answers parse at layer 2");
                parse_ip(l2.l3).expect("reject answers parse at layer 3");
            }
        }
        assert!(!(taken && !io.tx.is_empty()), "a frame for the management plane was bridged");
        let mut sent = Vec::new();
        mgmt.poll(now, &mut App(&bridge.pipeline), &mut |f| sent.push(f.to_vec()));
        for f in &sent {
            parse_frame(f).expect("management frames parse");
        }
        // MAX entries per family.
        assert!(bridge.pipeline.conntrack().count() <= 2 * MAX as usize);
    }
});
