//! The whole pipeline — parser, trackers, ICMP error correlation, helpers,
//! expectations, confirmation and expiry — on arbitrary frame sequences.
//!
//! Input: records `[dt: 1 byte][flags: 1 byte][len: 1 byte][len bytes]`.
//! `dt` advances the clock (in units of 100 ms, so timeouts fire), flags bit 0
//! drops the frame in the "ruleset", bit 1 picks the ingress port. Checks:
//! no panic; INVALID/UNTRACKED packets carry no direction; a dropped frame
//! that created an entry leaves none; the table never exceeds its limit.
#![no_main]

#[path = "records.rs"]
mod records;

use appliance::pipeline::{DropStates, Pipeline};
use ct_core::table::Conntrack;
use ct_core::{CtConfig, CtState, Instant};
use helpers::ftp::{Ftp, FtpConfig};
use helpers::tftp::Tftp;
use helpers::HelperRegistry;
use libfuzzer_sys::fuzz_target;
use records::{records, Record};
use rings::PortId;
use std::sync::Arc;

const MAX: u32 = 16;

fuzz_target!(|data: &[u8]| {
    let reg = HelperRegistry::builder()
        .register(Arc::new(Ftp::new(FtpConfig { loose: data.first().is_some_and(|b| b & 1 == 1) })), &[21])
        .and_then(|b| b.register(Arc::new(Tftp::new()), &[69]))
        .expect("distinct ports")
        .build();
    let cfg = CtConfig { max_entries: MAX, max_entries_v6: MAX, max_expectations: 8, ..CtConfig::default() };
    let mut pipe = Pipeline::new(Conntrack::new(cfg), reg);
    let mut now = Instant::ZERO;
    for Record { dt, flags, frame } in records(data) {
        now = now + dt;
        let port = if flags & 2 == 0 { PortId::Inside } else { PortId::Outside };
        let drop = flags & 1 == 1;
        let before = pipe.conntrack().count();
        let policy = DropStates(if drop { 0xff } else { 0 });
        let d = pipe.process(frame, port, now, &policy);
        let o = d.outcome;
        if matches!(o.state, CtState::Invalid | CtState::Untracked) {
            assert!(o.dir().is_none() && o.conn.is_none());
        }
        if drop && o.new {
            assert!(pipe.conntrack().count() <= before, "a dropped first packet left state");
        }
        // MAX entries per family.
        assert!(pipe.conntrack().count() <= 2 * MAX as usize);
        // Fragments of accepted datagrams go out only when accepted.
        let emitted = pipe.drain_emit(|_, _| Ok::<(), std::convert::Infallible>(())).unwrap_or_else(|e| match e {});
        assert!(emitted == 0 || (d.verdict == appliance::pipeline::Verdict::Accept && !drop));
        pipe.housekeeping(now, 4);
    }
});
