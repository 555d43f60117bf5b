//! Warnings about configurations that are valid but would break a network
//! in ways an operator does not expect (`ctwall check`, and at start and
//! reload of `ctwall run`).
//!
//! IPv6 neighbour discovery: conntrack leaves NDP and MLD UNTRACKED (the
//! kernel's `icmpv6_error` sets `IP_CT_UNTRACKED` for router and neighbour
//! solicitations and advertisements and multicast listener messages), so a
//! ruleset that only admits NEW/ESTABLISHED/RELATED drops them, and hosts on
//! the two sides cannot resolve each other's addresses (RFC 4861 §7.2): IPv6
//! stops working across the bridge. The check runs probe frames through the
//! real pipeline with the configuration's rules, so whatever the rules look
//! like, the warning says what they do.

use crate::pipeline::{Pipeline, Verdict};
use crate::rules::Ruleset;
use crate::settings;
use ct_core::defrag::{Defrag, DefragConfig};
use ct_core::table::Conntrack;
use ct_core::wire::{checksum, parse_ip};
use ct_core::Instant;
use rings::PortId;

/// One neighbour-discovery probe.
struct Probe {
    name: &'static str,
    ty: u8,
    src: [u8; 16],
    dst: [u8; 16],
}

const LINK_LOCAL_A: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0xff, 0xfe, 0, 0, 0x0a];
const LINK_LOCAL_B: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0xff, 0xfe, 0, 0, 0x0b];
/// The solicited-node multicast address of `LINK_LOCAL_B` (RFC 4291 §2.7.1).
const SOLICITED_B: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x0b];

const PROBES: [Probe; 2] = [
    Probe { name: "neighbour solicitations (ICMPv6 type 135)", ty: 135, src: LINK_LOCAL_A, dst: SOLICITED_B },
    Probe { name: "neighbour advertisements (ICMPv6 type 136)", ty: 136, src: LINK_LOCAL_A, dst: LINK_LOCAL_B },
];

/// An Ethernet frame with an NS or NA for `LINK_LOCAL_B` (RFC 4861 §4.3,
/// §4.4): hop limit 255, a correct checksum.
fn probe_frame(p: &Probe) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x0a, 0x86, 0xdd];
    // ICMPv6: type, code, checksum, reserved (NA: solicited flag), target.
    let mut icmp = vec![p.ty, 0, 0, 0, if p.ty == 136 { 0x40 } else { 0 }, 0, 0, 0];
    icmp.extend_from_slice(&LINK_LOCAL_B);
    let len = icmp.len() as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&p.src);
    f.extend_from_slice(&p.dst);
    let l3 = f.len() - 40;
    f.extend_from_slice(&icmp);
    let sum = match parse_ip(&f[l3..]) {
        Ok(ip) => checksum::checksum(ip.l4, checksum::pseudo_header_sum(&ip, ip.l4.len())),
        Err(_) => 0,
    };
    f[l3 + 42..l3 + 44].copy_from_slice(&sum.to_be_bytes());
    f
}

/// Warnings for `cfg`: one per port from which the rules drop neighbour
/// discovery, naming the rule (or policy) that drops it.
pub fn warnings(cfg: &config::Config) -> Vec<String> {
    let rules = Ruleset::compile(cfg);
    // A small table of the configuration's settings: the probes create no
    // entries (NDP is untracked), and nothing is allocated at full size.
    let mut ct_cfg = settings::ct_config(cfg);
    ct_cfg.max_entries = 16;
    ct_cfg.max_entries_v6 = 16;
    ct_cfg.max_expectations = 16;
    let Ok(helpers) = settings::helper_registry(cfg) else { return Vec::new() };
    // Reassembly at its smallest too (NDP probes are not fragments).
    let small = 64 << 10;
    let defrag = DefragConfig {
        ipfrag_high_thresh: small,
        ipfrag_low_thresh: small,
        frag6_high_thresh: small,
        frag6_low_thresh: small,
        ..settings::defrag_config(cfg)
    };
    let mut pipeline = Pipeline::with_defrag(Conntrack::new(ct_cfg), helpers, Defrag::new(defrag));
    let mut out = Vec::new();
    for (port, side, chain) in
        [(PortId::Inside, "inside", "inside_to_outside"), (PortId::Outside, "outside", "outside_to_inside")]
    {
        for p in &PROBES {
            let before = rules.counters();
            let d = pipeline.process(&probe_frame(p), port, Instant::ZERO, &rules);
            if d.verdict == Verdict::Accept {
                continue;
            }
            let by = rules
                .counters()
                .into_iter()
                .zip(before)
                .find(|(now, then)| now.packets != then.packets && now.action != "log")
                .map_or_else(|| "the pipeline".to_string(), |(r, _)| format!("{}: {}", r.chain, r.rule));
            out.push(format!(
                "IPv6 {} arriving on the {side} port are dropped ({by}); conntrack leaves neighbour discovery \
                 UNTRACKED, so IPv6 hosts on the two sides cannot reach each other. Accept it in {chain}, e.g. \
                 (match: (ctstate: [\"UNTRACKED\"], proto: \"icmpv6\", icmp_type: [130, 131, 132, 133, 134, 135, 136, 143]), action: \"accept\")",
                p.name
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> config::Config {
        config::Config::parse(text, Path::new("t.ron")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn probes_are_well_formed_untracked_ndp() {
        for p in &PROBES {
            let f = probe_frame(p);
            let ip = parse_ip(&f[14..]).unwrap();
            assert!(checksum::l4_ok(&ip));
            let mut pl =
                Pipeline::new(Conntrack::new(ct_core::CtConfig::default()), helpers::HelperRegistry::default());
            let d = pl.process(&f, PortId::Outside, Instant::ZERO, &crate::pipeline::AcceptAll);
            assert_eq!(d.outcome.state, ct_core::CtState::Untracked, "{}", p.name);
        }
    }

    #[test]
    fn the_example_admits_neighbour_discovery_both_ways() {
        let text = include_str!("../../config/examples/bridge.ron");
        assert_eq!(warnings(&parse(text)), Vec::<String>::new());
    }

    #[test]
    fn a_ruleset_without_ndp_is_warned_about_per_side() {
        // The example as it was before issue 11: UNTRACKED from outside
        // only for NTP.
        let w = warnings(&parse(
            r#"(filter: (
                inside_to_outside: (policy: "drop", rules: [(match: (ctstate: ["UNTRACKED"]), action: "accept")]),
                outside_to_inside: (policy: "drop", rules: [
                    (name: "out-est", match: (ctstate: ["ESTABLISHED", "RELATED"]), action: "accept"),
                    (name: "out-ntp", match: (ctstate: ["UNTRACKED"], proto: "udp", sport: [123]), action: "accept"),
                ]),
            ))"#,
        ));
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w
            .iter()
            .all(|l| l.contains("arriving on the outside port") && l.contains("outside_to_inside: policy")));
        assert!(w[0].contains("type 135") && w[1].contains("type 136"));

        let w = warnings(&parse(
            r#"(filter: (inside_to_outside: (policy: "accept", rules: [
                (name: "no-icmpv6", match: (proto: "icmpv6"), action: "drop"),
            ])))"#,
        ));
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w.iter().all(|l| l.contains("on the inside port") && l.contains("inside_to_outside: no-icmpv6")));
    }
}
