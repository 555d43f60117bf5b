//! TCP scenarios (spec §4, §13 items 1–22).

use super::{filler, Ctor, Flow};
use crate::scenario::{Builder, Scenario};
use crate::trace::{flags::*, Pkt, TcpOpt, C, C6, S, S6};

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("tcp_handshake", tcp_handshake),
    ("tcp_data_unacked", tcp_data_unacked),
    ("tcp_data_acked", tcp_data_acked),
    ("tcp_fin_wait", tcp_fin_wait),
    ("tcp_close_wait", tcp_close_wait),
    ("tcp_last_ack", tcp_last_ack),
    ("tcp_time_wait", tcp_time_wait),
    ("tcp_combined_fin_close", tcp_combined_fin_close),
    ("tcp_reopen_time_wait", tcp_reopen_time_wait),
    ("tcp_reopen_time_wait_reply_dir", tcp_reopen_time_wait_reply_dir),
    ("tcp_syn_retrans_no_refresh", tcp_syn_retrans_no_refresh),
    ("tcp_syn_retrans_expiry", tcp_syn_retrans_expiry),
    ("tcp_syn_retrans_after_synack", tcp_syn_retrans_after_synack),
    ("tcp_port_closed_rst", tcp_port_closed_rst),
    ("tcp_port_closed_then_syn", tcp_port_closed_then_syn),
    ("tcp_simultaneous_open_s2", tcp_simultaneous_open_s2),
    ("tcp_simultaneous_open", tcp_simultaneous_open),
    ("tcp_synack_without_syn", tcp_synack_without_syn),
    ("tcp_invalid_first_packets", tcp_invalid_first_packets),
    ("tcp_pickup_first_ack", tcp_pickup_first_ack),
    ("tcp_pickup_reply", tcp_pickup_reply),
    ("tcp_pickup_assured", tcp_pickup_assured),
    ("tcp_pickup_liberal_window", tcp_pickup_liberal_window),
    ("tcp_loose_off", tcp_loose_off),
    ("tcp_invalid_flag_combos", tcp_invalid_flag_combos),
    ("tcp_valid_odd_flags", tcp_valid_odd_flags),
    ("tcp_ack_in_syn_sent", tcp_ack_in_syn_sent),
    ("tcp_synack_bad_ack_then_good", tcp_synack_bad_ack_then_good),
    ("tcp_rst_exact", tcp_rst_exact),
    ("tcp_rst_below_maxack", tcp_rst_below_maxack),
    ("tcp_rst_below_maxack_ignore_invalid", tcp_rst_below_maxack_ignore_invalid),
    ("tcp_rst_inexact_in_window", tcp_rst_inexact_in_window),
    ("tcp_rst_inexact_then_challenge_ack", tcp_rst_inexact_then_challenge_ack),
    ("tcp_rst_challenge_ack_then_exact", tcp_rst_challenge_ack_then_exact),
    ("tcp_rst_out_of_window", tcp_rst_out_of_window),
    ("tcp_rst_just_past_right_edge", tcp_rst_just_past_right_edge),
    ("tcp_rst_inexact_while_closing", tcp_rst_inexact_while_closing),
    ("tcp_data_far_out_of_window", tcp_data_far_out_of_window),
    ("tcp_data_slightly_beyond_window", tcp_data_slightly_beyond_window),
    ("tcp_ack_of_unseen_data", tcp_ack_of_unseen_data),
    ("tcp_be_liberal", tcp_be_liberal),
    ("tcp_old_retransmission", tcp_old_retransmission),
    ("tcp_retrans_counter_3", tcp_retrans_counter_3),
    ("tcp_retrans_counter_4", tcp_retrans_counter_4),
    ("tcp_retrans_counter_reset", tcp_retrans_counter_reset),
    ("tcp_stale_established_resync", tcp_stale_established_resync),
    ("tcp_stale_established_reuse", tcp_stale_established_reuse),
    ("tcp_syn_in_last_ack_challenge", tcp_syn_in_last_ack_challenge),
    ("tcp_syn_sent_challenge_ack_rst", tcp_syn_sent_challenge_ack_rst),
    ("tcp_wscale_sack", tcp_wscale_sack),
    ("tcp_zero_window", tcp_zero_window),
    ("tcp_bad_checksum", tcp_bad_checksum),
    ("tcp_bad_checksum_checksum_off", tcp_bad_checksum_checksum_off),
    ("tcp_short_header", tcp_short_header),
    ("ipv6_tcp_handshake_close", ipv6_tcp_handshake_close),
    ("ipv6_tcp_ext_headers", ipv6_tcp_ext_headers),
    ("vlan_tcp_handshake", vlan_tcp_handshake),
    ("ipv4_options_tcp", ipv4_options_tcp),
    ("tcp_syn_higher_isn_reinit", tcp_syn_higher_isn_reinit),
    ("tcp_fin_wait_data_from_fin_sender", tcp_fin_wait_data_from_fin_sender),
    ("tcp_wscale_only_on_syn", tcp_wscale_only_on_syn),
    ("tcp_keepalive", tcp_keepalive),
];

/// Spec §13 (1) up to and including step `upto` (1..=9):
/// 1 SYN, 2 SYN/ACK, 3 ACK, 4 C data 100 B, 5 S ACK, 6 C FIN, 7 S ACK, 8 S FIN, 9 C ACK.
fn spec1(b: &mut Builder, upto: u8) -> Flow {
    let f = Flow::std();
    let steps: [(Pkt, &str); 9] = [
        (f.c(SYN, 1000, 0), "C>S SYN"),
        (f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK"),
        (f.c(ACK, 1001, 5001), "C>S ACK"),
        (f.c(PSH | ACK, 1001, 5001).payload(&filler(100)), "C>S data 100"),
        (f.s(ACK, 5001, 1101), "S>C ACK 1101"),
        (f.c(FIN | ACK, 1101, 5001), "C>S FIN/ACK"),
        (f.s(ACK, 5001, 1102), "S>C ACK 1102"),
        (f.s(FIN | ACK, 5001, 1102), "S>C FIN/ACK"),
        (f.c(ACK, 1102, 5002), "C>S ACK 5002"),
    ];
    for (p, note) in steps.into_iter().take(upto as usize) {
        b.send(p, note);
    }
    f
}

fn spec1_scenario(name: &'static str, about: &'static str, upto: u8) -> Scenario {
    let mut b = Builder::new(name, about);
    spec1(&mut b, upto);
    b.build()
}

fn tcp_handshake() -> Scenario {
    spec1_scenario("tcp_handshake", "§13(1) handshake: NEW, ESTABLISHED; ESTABLISHED [ASSURED]", 3)
}

fn tcp_data_unacked() -> Scenario {
    spec1_scenario("tcp_data_unacked", "§13(1) data not yet acknowledged: timeout 300", 4)
}

fn tcp_data_acked() -> Scenario {
    spec1_scenario("tcp_data_acked", "§13(1) data acknowledged: timeout back to established", 5)
}

fn tcp_fin_wait() -> Scenario {
    spec1_scenario("tcp_fin_wait", "§13(1) C FIN: FIN_WAIT", 6)
}

fn tcp_close_wait() -> Scenario {
    spec1_scenario("tcp_close_wait", "§13(1) S ACKs the FIN: CLOSE_WAIT", 7)
}

fn tcp_last_ack() -> Scenario {
    spec1_scenario("tcp_last_ack", "§13(1) S FIN: LAST_ACK", 8)
}

fn tcp_time_wait() -> Scenario {
    spec1_scenario("tcp_time_wait", "§13(1) graceful close: TIME_WAIT, still [ASSURED]", 9)
}

fn tcp_combined_fin_close() -> Scenario {
    let mut b = Builder::new("tcp_combined_fin_close", "§13(2) FIN, FIN/ACK acking it (FW->LA), ACK: TIME_WAIT");
    let f = spec1(&mut b, 5);
    b.send(f.c(FIN | ACK, 1101, 5001), "C>S FIN/ACK");
    b.send(f.s(FIN | ACK, 5001, 1102), "S>C FIN/ACK ack 1102");
    b.send(f.c(ACK, 1102, 5002), "C>S ACK 5002");
    b.build()
}

fn tcp_reopen_time_wait() -> Scenario {
    let mut b = Builder::new("tcp_reopen_time_wait", "§13(3) new SYN in TIME_WAIT re-opens: NEW, fresh SYN_SENT");
    let f = spec1(&mut b, 9);
    b.send(f.c(SYN, 900_000, 0), "C>S SYN (new ISN)");
    b.build()
}

fn tcp_reopen_time_wait_reply_dir() -> Scenario {
    let mut b =
        Builder::new("tcp_reopen_time_wait_reply_dir", "§4.4 fn.1 reply-direction SYN in TIME_WAIT: roles swapped");
    let f = spec1(&mut b, 9);
    b.send(f.s(SYN, 700_000, 0), "S>C SYN (new ISN)");
    b.send(f.c(SYN | ACK, 300_000, 700_001), "C>S SYN/ACK");
    b.build()
}

fn tcp_syn_retrans_no_refresh() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_retrans_no_refresh",
        "§13(4) retransmitted SYNs before a reply do not refresh the SYN_SENT timeout",
    )
    .sysctl("tcp_timeout_syn_sent", 4);
    let f = Flow::std();
    for t in [0.0, 1.5, 3.0] {
        b.at(t);
        b.send(f.c(SYN, 1000, 0), "C>S SYN");
    }
    b.build()
}

fn tcp_syn_retrans_expiry() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_retrans_expiry",
        "§13(4) the SYN_SENT entry expires after the first SYN; next SYN is fresh",
    )
    .sysctl("tcp_timeout_syn_sent", 2);
    let f = Flow::std();
    for t in [0.0, 1.0, 2.6] {
        b.at(t);
        b.send(f.c(SYN, 1000, 0), "C>S SYN");
    }
    b.build()
}

fn tcp_syn_retrans_after_synack() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_retrans_after_synack",
        "§13(5) SYN again after the SYN/ACK: ESTABLISHED (not NEW), SYN_RECV not refreshed",
    );
    let f = Flow::std();
    f.syn(&mut b);
    f.synack(&mut b);
    b.wait(2.0);
    b.send(f.c(SYN, 1000, 0), "C>S SYN again (2 s later)");
    b.build()
}

fn tcp_port_closed_rst() -> Scenario {
    let mut b = Builder::new("tcp_port_closed_rst", "§13(6) RST/ACK to a SYN: ESTABLISHED reply, entry deleted");
    let f = Flow::std();
    f.syn(&mut b);
    b.send(f.s(RST | ACK, 0, 1001), "S>C RST/ACK seq 0");
    b.build()
}

fn tcp_port_closed_then_syn() -> Scenario {
    let mut b = Builder::new("tcp_port_closed_then_syn", "§13(6) after the RST/ACK a new SYN is NEW");
    let f = Flow::std();
    f.syn(&mut b);
    b.send(f.s(RST | ACK, 0, 1001), "S>C RST/ACK seq 0");
    b.send(f.c(SYN, 1000, 0), "C>S SYN again");
    b.build()
}

fn simultaneous(b: &mut Builder, upto: usize) {
    let f = Flow::new(C, 5000, S, 6000);
    let steps = [
        (f.c(SYN, 100, 0), "A>B SYN"),
        (f.s(SYN, 900, 0), "B>A SYN"),
        (f.c(SYN | ACK, 100, 901), "A>B SYN/ACK"),
        (f.s(SYN | ACK, 900, 101), "B>A SYN/ACK"),
        (f.s(ACK, 901, 101), "B>A ACK"),
    ];
    for (p, n) in steps.into_iter().take(upto) {
        b.send(p, n);
    }
}

fn tcp_simultaneous_open_s2() -> Scenario {
    let mut b = Builder::new("tcp_simultaneous_open_s2", "§13(7) simultaneous open: SYN, SYN -> SYN_SENT2");
    simultaneous(&mut b, 2);
    b.build()
}

fn tcp_simultaneous_open() -> Scenario {
    let mut b = Builder::new("tcp_simultaneous_open", "§13(7) simultaneous open to ESTABLISHED [ASSURED]");
    simultaneous(&mut b, 5);
    b.build()
}

fn tcp_synack_without_syn() -> Scenario {
    let mut b = Builder::new("tcp_synack_without_syn", "§4.3 SYN/ACK as first packet: INVALID, no entry");
    let f = Flow::std();
    b.send(f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK (no SYN)");
    b.build()
}

fn tcp_invalid_first_packets() -> Scenario {
    let mut b = Builder::new(
        "tcp_invalid_first_packets",
        "§13(11) first packet FIN/ACK, RST, RST/ACK, SYN/ACK, PSH/ACK+FIN: INVALID, no entries",
    );
    for (i, (fl, n)) in [
        (FIN | ACK, "FIN/ACK"),
        (RST, "RST"),
        (RST | ACK, "RST/ACK"),
        (SYN | ACK, "SYN/ACK"),
        (FIN | PSH | ACK, "FIN/PSH/ACK"),
    ]
    .into_iter()
    .enumerate()
    {
        let f = Flow::new(C, 41000 + i as u16, S, 80);
        b.send(f.c(fl, 1000, 5001), &format!("C>S {n} first"));
    }
    b.build()
}

fn tcp_pickup_first_ack() -> Scenario {
    let mut b = Builder::new("tcp_pickup_first_ack", "§13(8) mid-stream ACK: NEW, ESTABLISHED [UNREPLIED] 300");
    let f = Flow::std();
    b.send(f.c(ACK, 1101, 5001), "C>S ACK (pickup)");
    b.build()
}

fn tcp_pickup_reply() -> Scenario {
    let mut b = Builder::new("tcp_pickup_reply", "§13(8) picked-up connection's first reply: not ASSURED, 300");
    let f = Flow::std();
    b.send(f.c(ACK, 1101, 5001), "C>S ACK (pickup)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    b.build()
}

fn tcp_pickup_assured() -> Scenario {
    let mut b = Builder::new("tcp_pickup_assured", "§13(8) third packet of a picked-up connection: [ASSURED]");
    let f = Flow::std();
    b.send(f.c(ACK, 1101, 5001), "C>S ACK (pickup)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    b.send(f.c(ACK, 1101, 5001), "C>S ACK");
    b.build()
}

fn tcp_pickup_liberal_window() -> Scenario {
    let mut b =
        Builder::new("tcp_pickup_liberal_window", "§13(8) window violations on a picked-up connection are not INVALID");
    let f = Flow::std();
    b.send(f.c(ACK, 1101, 5001), "C>S ACK (pickup)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    b.send(f.c(PSH | ACK, 1101 + 500_000, 5001).payload(&filler(100)), "C>S data far right");
    b.send(f.c(ACK, 1101, 9000), "C>S ACK of unseen data");
    b.build()
}

fn tcp_loose_off() -> Scenario {
    let mut b = Builder::new("tcp_loose_off", "§13(10) tcp_loose=0: mid-stream ACK INVALID, SYN still NEW")
        .sysctl("tcp_loose", 0);
    let f = Flow::std();
    b.send(f.c(ACK, 1101, 5001), "C>S ACK (pickup)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK (pickup)");
    let g = Flow::new(C, 40001, S, 80);
    g.syn(&mut b);
    b.build()
}

fn tcp_invalid_flag_combos() -> Scenario {
    let mut b = Builder::new(
        "tcp_invalid_flag_combos",
        "§13(11) invalid flag combinations on an ESTABLISHED connection: INVALID, entry unchanged",
    );
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    for (fl, n) in [
        (SYN | FIN, "SYN|FIN"),
        (FIN, "FIN without ACK"),
        (0, "no flags"),
        (PSH, "PSH only"),
        (FIN | PSH | URG, "FIN|PSH|URG"),
        (SYN | RST, "SYN|RST"),
        (SYN | ACK | URG, "SYN|ACK|URG"),
        (RST | ACK | URG, "RST|ACK|URG"),
        (RST | URG, "RST|URG"),
        (FIN | RST | ACK, "FIN|RST|ACK"),
        (FIN | SYN | RST | PSH | ACK | URG, "all six"),
    ] {
        b.send(f.c(fl, 1101, 5001), &format!("C>S {n}"));
    }
    b.build()
}

fn tcp_valid_odd_flags() -> Scenario {
    let mut b = Builder::new("tcp_valid_odd_flags", "§4.2 SYN|ECE|CWR, ACK|PSH|URG, ACK|URG, FIN|ACK|URG are valid");
    let f = Flow::std();
    b.send(f.c(SYN | ECE | CWR, 1000, 0), "C>S SYN|ECE|CWR");
    b.send(f.s(SYN | ACK | ECE, 5000, 1001), "S>C SYN/ACK|ECE");
    b.send(f.c(ACK, 1001, 5001), "C>S ACK");
    b.send(f.c(ACK | PSH | URG, 1001, 5001).payload(&filler(10)).urg_ptr(5), "C>S ACK|PSH|URG data");
    b.send(f.s(ACK | URG, 5001, 1011), "S>C ACK|URG");
    b.send(f.c(FIN | ACK | URG, 1011, 5001), "C>S FIN|ACK|URG");
    b.build()
}

fn tcp_ack_in_syn_sent() -> Scenario {
    let mut b = Builder::new("tcp_ack_in_syn_sent", "§13(12) client ACK in SYN_SENT: INVALID, stays SYN_SENT");
    let f = Flow::std();
    f.syn(&mut b);
    b.send(f.c(ACK, 1001, 5001), "C>S ACK before SYN/ACK");
    b.build()
}

fn tcp_synack_bad_ack_then_good() -> Scenario {
    let mut b = Builder::new(
        "tcp_synack_bad_ack_then_good",
        "§13(13) SYN/ACK with a wrong ack: INVALID; the correct one: SYN_RECV; ACK: ASSURED",
    );
    let f = Flow::std();
    f.syn(&mut b);
    b.send(f.s(SYN | ACK, 4000, 424_242), "S>C SYN/ACK bad ack");
    b.send(f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK good");
    b.send(f.c(ACK, 1001, 5001), "C>S ACK");
    b.build()
}

fn tcp_rst_exact() -> Scenario {
    let mut b = Builder::new("tcp_rst_exact", "§13(14) exact RST after data: CLOSE 10, [ASSURED] kept");
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 1101, 0), "C>S RST seq 1101");
    b.build()
}

fn tcp_rst_below_maxack() -> Scenario {
    let mut b = Builder::new("tcp_rst_below_maxack", "§13(15) RST below the acknowledged point: INVALID");
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    b.send(f.c(RST, 1050, 0), "C>S RST seq 1050");
    b.build()
}

fn tcp_rst_below_maxack_ignore_invalid() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_below_maxack_ignore_invalid",
        "§13(15) with tcp_ignore_invalid_rst=1 the RST passes, stays ESTABLISHED, timeout 10",
    )
    .sysctl("tcp_ignore_invalid_rst", 1);
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 1050, 0), "C>S RST seq 1050");
    b.build()
}

fn tcp_rst_inexact_in_window() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_inexact_in_window",
        "§13(16) in-window inexact RST: passes, stays ESTABLISHED, timeout 10",
    );
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 1200, 0), "C>S RST seq 1200");
    b.build()
}

fn tcp_rst_inexact_then_challenge_ack() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_inexact_then_challenge_ack",
        "§13(16) the challenge ACK after an inexact RST passes and refreshes (300: data now unacknowledged)",
    );
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 1200, 0), "C>S RST seq 1200");
    b.send(f.s(ACK, 5001, 1101), "S>C challenge ACK");
    b.build()
}

fn tcp_rst_challenge_ack_then_exact() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_challenge_ack_then_exact",
        "§13(16) inexact RST, challenge ACK (refresh), exact RST: CLOSE",
    );
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 1200, 0), "C>S RST seq 1200");
    b.send(f.s(ACK, 5001, 1101), "S>C challenge ACK");
    b.send(f.c(RST, 1101, 0), "C>S RST seq 1101");
    b.build()
}

fn tcp_rst_out_of_window() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_out_of_window",
        "§13(17) RSTs with seq 0, far right, 42, maxack-1 are INVALID; the exact one closes",
    );
    let f = spec1(&mut b, 5);
    b.send(f.c(RST, 0, 0), "C>S RST seq 0");
    b.send(f.c(RST, 1101 + 1_000_000, 0), "C>S RST far right");
    b.send(f.c(RST, 42, 0), "C>S RST seq 42");
    b.send(f.c(RST, 1100, 0), "C>S RST seq 1100");
    b.send(f.c(RST, 1101, 0), "C>S RST exact");
    b.build()
}

fn tcp_rst_just_past_right_edge() -> Scenario {
    let mut b = Builder::new(
        "tcp_rst_just_past_right_edge",
        "§13(17) RST slightly beyond the right edge: IGNORED; it moves td_end, so an exact RST is ignored too",
    );
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    b.send(f.c(RST, 1101 + 64_000 + 10, 0), "C>S RST just past right edge");
    b.send(f.c(RST, 1101, 0), "C>S RST exact");
    b.build()
}

fn tcp_rst_inexact_while_closing() -> Scenario {
    let mut b = Builder::new("tcp_rst_inexact_while_closing", "§13(18) inexact RST in CLOSE_WAIT: accepted, CLOSE 10");
    let f = spec1(&mut b, 7);
    b.send(f.s(RST, 9999, 0), "S>C RST seq 9999");
    b.build()
}

fn tcp_data_far_out_of_window() -> Scenario {
    let mut b = Builder::new("tcp_data_far_out_of_window", "§13(19) data 500000 past the window: INVALID");
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    b.send(f.c(PSH | ACK, 1101 + 500_000, 5001).payload(&filler(100)), "C>S data far right");
    b.build()
}

fn tcp_data_slightly_beyond_window() -> Scenario {
    let mut b = Builder::new(
        "tcp_data_slightly_beyond_window",
        "§13(19) data 10 bytes past the right edge: ESTABLISHED but IGNORED (no refresh)",
    );
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    b.send(f.c(PSH | ACK, 65_111, 5001).payload(&filler(100)), "C>S data 10 past edge");
    b.build()
}

fn tcp_ack_of_unseen_data() -> Scenario {
    let mut b = Builder::new("tcp_ack_of_unseen_data", "§13(19) ACK for data never sent: INVALID");
    let f = spec1(&mut b, 5);
    b.wait(2.0);
    b.send(f.c(ACK, 1101, 9000), "C>S ACK 9000");
    b.build()
}

fn tcp_be_liberal() -> Scenario {
    let mut b = Builder::new("tcp_be_liberal", "§13(19) tcp_be_liberal=1: out-of-window data and ACK pass")
        .sysctl("tcp_be_liberal", 1);
    let f = spec1(&mut b, 5);
    b.send(f.c(PSH | ACK, 1101 + 500_000, 5001).payload(&filler(100)), "C>S data far right");
    b.send(f.c(ACK, 1101, 9000), "C>S ACK 9000");
    b.build()
}

fn tcp_old_retransmission() -> Scenario {
    let mut b = Builder::new(
        "tcp_old_retransmission",
        "§13(20) retransmission more than a window behind: ESTABLISHED, IGNORED (no refresh)",
    )
    .sysctl("tcp_timeout_established", 100);
    let mut f = Flow::std();
    f.handshake(&mut b);
    for i in 0..100 {
        f.s_data(&mut b, &filler(1400), &format!("S>C data #{i}"));
        if i % 10 == 9 {
            f.c_ack(&mut b);
        }
    }
    b.wait(2.0);
    b.send(f.s(PSH | ACK, 5001, f.cseq).payload(&filler(1400)), "S>C retransmit seq 5001");
    b.build()
}

fn retrans(name: &'static str, about: &'static str, times: usize, reset: bool) -> Scenario {
    let mut b = Builder::new(name, about);
    let f = spec1(&mut b, 5);
    for i in 0..times {
        b.send(f.c(ACK, 1101, 5001), &format!("C>S identical ACK #{}", i + 1));
    }
    if reset {
        b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    }
    b.build()
}

fn tcp_retrans_counter_3() -> Scenario {
    retrans("tcp_retrans_counter_3", "§13(22) three identical ACKs", 3, false)
}

fn tcp_retrans_counter_4() -> Scenario {
    retrans("tcp_retrans_counter_4", "§13(22) four identical ACKs: timeout capped to 300", 4, false)
}

fn tcp_retrans_counter_reset() -> Scenario {
    retrans("tcp_retrans_counter_reset", "§13(22) a different packet resets the counter", 4, true)
}

fn tcp_stale_established_resync() -> Scenario {
    let mut b = Builder::new(
        "tcp_stale_established_resync",
        "§13(21) SYN on a stale ESTABLISHED entry is ESTABLISHED (ignored); SYN/ACK resyncs to SYN_RECV",
    );
    let f = spec1(&mut b, 5);
    b.send(f.c(SYN, 777_000, 0), "C>S SYN new ISN");
    b.send(f.s(SYN | ACK, 333_000, 777_001), "S>C SYN/ACK");
    b.build()
}

fn tcp_stale_established_reuse() -> Scenario {
    let mut b =
        Builder::new("tcp_stale_established_reuse", "§13(21) port reuse over a stale entry ends ESTABLISHED [ASSURED]");
    let f = spec1(&mut b, 5);
    b.send(f.c(SYN, 777_000, 0), "C>S SYN new ISN");
    b.send(f.s(SYN | ACK, 333_000, 777_001), "S>C SYN/ACK");
    b.send(f.c(ACK, 777_001, 333_001), "C>S ACK");
    b.build()
}

fn tcp_syn_in_last_ack_challenge() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_in_last_ack_challenge",
        "§4.4 fn.3 SYN in LAST_ACK is ignored; the following challenge ACK does not move to TIME_WAIT",
    );
    let f = spec1(&mut b, 8);
    b.send(f.c(SYN, 900_000, 0), "C>S SYN in LAST_ACK");
    b.send(f.s(ACK, 5002, 1102), "S>C challenge ACK");
    b.build()
}

fn tcp_syn_sent_challenge_ack_rst() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_sent_challenge_ack_rst",
        "§12 conntrack_syn_challenge_ack: challenge ACK in SYN_SENT, RST, SYN again, handshake",
    );
    let f = Flow::std();
    f.syn(&mut b);
    b.send(f.s(ACK, 7000, 999_999), "S>C challenge ACK (old incarnation)");
    b.send(f.c(RST, 999_999, 0), "C>S RST seq=challenge ack");
    b.send(f.c(SYN, 1000, 0), "C>S SYN again");
    b.send(f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK");
    b.send(f.c(ACK, 1001, 5001), "C>S ACK");
    b.build()
}

fn tcp_wscale_sack() -> Scenario {
    let mut b = Builder::new(
        "tcp_wscale_sack",
        "§4.6 window scaling and SACK: scaled windows, SACK blocks acknowledging beyond ack",
    );
    let f = Flow::std();
    b.send(
        f.c(SYN, 1000, 0)
            .win(65535)
            .opt(TcpOpt::Mss(1460))
            .opt(TcpOpt::SackPerm)
            .opt(TcpOpt::Nop)
            .opt(TcpOpt::WScale(7)),
        "C>S SYN wscale 7 sackOK",
    );
    b.send(
        f.s(SYN | ACK, 5000, 1001)
            .win(65535)
            .opt(TcpOpt::Mss(1460))
            .opt(TcpOpt::SackPerm)
            .opt(TcpOpt::Nop)
            .opt(TcpOpt::WScale(2)),
        "S>C SYN/ACK wscale 2 sackOK",
    );
    b.send(f.c(ACK, 1001, 5001).win(1000), "C>S ACK win 1000<<7");
    // Server sends 3 segments; the client SACKs the third before acking the first two.
    let mut seq = 5001u32;
    for i in 0..3 {
        b.send(f.s(PSH | ACK, seq, 1001).win(16000).payload(&filler(1000)), &format!("S>C data #{i}"));
        seq += 1000;
    }
    b.send(
        f.c(ACK, 1001, 5001).win(1000).opt(TcpOpt::Nop).opt(TcpOpt::Nop).opt(TcpOpt::Sack(vec![(7001, 8001)])),
        "C>S dup ACK SACK 7001-8001",
    );
    b.send(f.c(ACK, 1001, 8001).win(1000), "C>S ACK all");
    // Data far beyond an unscaled window but within the scaled one (1000 << 7 = 128000).
    b.send(f.s(PSH | ACK, 8001 + 100_000, 1001).win(16000).payload(&filler(100)), "S>C data +100000 (in scaled win)");
    b.build()
}

fn tcp_zero_window() -> Scenario {
    let mut b = Builder::new("tcp_zero_window", "§4.9 a zero window caps the timeout at 300");
    let f = spec1(&mut b, 5);
    b.send(f.c(ACK, 1101, 5001).win(0), "C>S ACK win 0");
    b.build()
}

fn tcp_bad_checksum() -> Scenario {
    let mut b = Builder::new("tcp_bad_checksum", "§4.2 bad TCP checksum: INVALID, no entry; then a good SYN");
    let f = Flow::std();
    b.send(f.c(SYN, 1000, 0).bad_l4_csum(), "C>S SYN bad csum");
    f.syn(&mut b);
    b.send(f.s(SYN | ACK, 5000, 1001).bad_l4_csum(), "S>C SYN/ACK bad csum");
    b.build()
}

fn tcp_bad_checksum_checksum_off() -> Scenario {
    let mut b = Builder::new("tcp_bad_checksum_checksum_off", "nf_conntrack_checksum=0: bad TCP checksums are tracked")
        .sysctl("checksum", 0);
    let f = Flow::std();
    b.send(f.c(SYN, 1000, 0).bad_l4_csum(), "C>S SYN bad csum");
    b.send(f.s(SYN | ACK, 5000, 1001).bad_l4_csum(), "S>C SYN/ACK bad csum");
    b.build()
}

fn tcp_short_header() -> Scenario {
    let mut b = Builder::new("tcp_short_header", "§4.2 truncated TCP header / doff < 5: INVALID");
    let f = Flow::std();
    // A SYN cut after 12 bytes of TCP header (IP total length says 40).
    let cut = f.c(SYN, 1000, 0).cut(32);
    b.send(cut, "C>S SYN cut to 12 B of TCP");
    // doff = 4 via a raw TCP header.
    let mut hdr = Vec::new();
    hdr.extend_from_slice(&40001u16.to_be_bytes());
    hdr.extend_from_slice(&80u16.to_be_bytes());
    hdr.extend_from_slice(&1000u32.to_be_bytes());
    hdr.extend_from_slice(&0u32.to_be_bytes());
    hdr.extend_from_slice(&[0x40, SYN, 0xfa, 0, 0, 0, 0, 0]);
    b.send(Pkt::raw(C, S, 6, &hdr), "C>S SYN doff=4");
    f.syn(&mut b);
    b.build()
}

fn ipv6_tcp_handshake_close() -> Scenario {
    let mut b = Builder::new("ipv6_tcp_handshake_close", "IPv6 TCP handshake, data, close");
    let mut f = Flow::new(C6, 40000, S6, 80);
    f.handshake(&mut b);
    f.c_data(&mut b, &filler(200), "C>S data");
    f.s_ack(&mut b);
    f.s_data(&mut b, &filler(300), "S>C data");
    f.c_ack(&mut b);
    b.send(f.c(FIN | ACK, f.cseq, f.sseq), "C>S FIN/ACK");
    b.send(f.s(FIN | ACK, f.sseq, f.cseq + 1), "S>C FIN/ACK");
    b.send(f.c(ACK, f.cseq + 1, f.sseq + 1), "C>S ACK");
    b.build()
}

fn ipv6_tcp_ext_headers() -> Scenario {
    use crate::trace::Ext6;
    let mut b = Builder::new("ipv6_tcp_ext_headers", "IPv6 TCP behind hop-by-hop and destination options headers");
    let f = Flow::new(C6, 40000, S6, 80);
    b.send(f.c(SYN, 1000, 0).ext(Ext6::HopByHop(vec![])).ext(Ext6::DestOpts(vec![])), "C>S SYN +HBH +DST");
    b.send(f.s(SYN | ACK, 5000, 1001).ext(Ext6::DestOpts(vec![1, 4, 0, 0, 0, 0])), "S>C SYN/ACK +DST");
    b.send(f.c(ACK, 1001, 5001).ext(Ext6::HopByHop(vec![])), "C>S ACK +HBH");
    b.build()
}

fn vlan_tcp_handshake() -> Scenario {
    let mut b = Builder::new("vlan_tcp_handshake", "802.1Q-tagged TCP (the kernel reference gets the frames untagged)");
    let f = Flow::std();
    b.send(f.c(SYN, 1000, 0).vlan(100), "C>S SYN vlan 100");
    b.send(f.s(SYN | ACK, 5000, 1001).vlan(100), "S>C SYN/ACK vlan 100");
    b.send(f.c(ACK, 1001, 5001).vlan(100), "C>S ACK vlan 100");
    b.send(f.c(PSH | ACK, 1001, 5001).payload(&filler(50)).vlan(100), "C>S data vlan 100");
    b.build()
}

fn ipv4_options_tcp() -> Scenario {
    let mut b =
        Builder::new("ipv4_options_tcp", "IPv4 headers with options (IHL > 5): the L4 header is found after them");
    let f = Flow::std();
    // Router Alert (4 bytes); NOP, NOP, timestamp-like filler.
    b.send(f.c(SYN, 1000, 0).ip_opts(&[0x94, 0x04, 0, 0]), "C>S SYN +router alert");
    b.send(f.s(SYN | ACK, 5000, 1001).ip_opts(&[1, 1, 1, 1, 1, 1, 1, 1]), "S>C SYN/ACK +8 NOPs");
    b.send(f.c(ACK, 1001, 5001).ip_opts(&[0x94, 0x04, 0, 0]), "C>S ACK +router alert");
    b.send(Pkt::udp(C, 5000, S, 53, b"q").ip_opts(&[1, 1, 1, 0]), "C>S UDP +options");
    b.build()
}

fn tcp_syn_higher_isn_reinit() -> Scenario {
    let mut b = Builder::new(
        "tcp_syn_higher_isn_reinit",
        "§4.6 a new SYN with a higher ISN in SYN_SENT re-initialises; the SYN/ACK must ack the new ISN",
    );
    let f = Flow::std();
    b.send(f.c(SYN, 1000, 0), "C>S SYN isn 1000");
    b.send(f.c(SYN, 2000, 0), "C>S SYN isn 2000");
    b.send(f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK ack 1001 (old)");
    b.send(f.s(SYN | ACK, 5000, 2001), "S>C SYN/ACK ack 2001");
    b.send(f.c(ACK, 2001, 5001), "C>S ACK");
    b.build()
}

fn tcp_fin_wait_data_from_fin_sender() -> Scenario {
    let mut b = Builder::new(
        "tcp_fin_wait_data_from_fin_sender",
        "§4.4 note: in FIN_WAIT an ACK from the FIN sender also moves to CLOSE_WAIT; its FIN again: LAST_ACK",
    );
    let f = spec1(&mut b, 6);
    b.send(f.c(ACK, 1102, 5001), "C>S ACK (FIN sender)");
    b.send(f.c(FIN | ACK, 1101, 5001), "C>S FIN/ACK retransmitted");
    b.build()
}

fn tcp_wscale_only_on_syn() -> Scenario {
    let mut b = Builder::new(
        "tcp_wscale_only_on_syn",
        "§4.6 window scale on the SYN only: both scales become 0, so data past the unscaled window is not accepted",
    );
    let f = Flow::std();
    b.send(f.c(SYN, 1000, 0).opt(TcpOpt::WScale(7)), "C>S SYN wscale 7");
    b.send(f.s(SYN | ACK, 5000, 1001), "S>C SYN/ACK no wscale");
    b.send(f.c(ACK, 1001, 5001).win(1000), "C>S ACK win 1000");
    b.send(f.s(PSH | ACK, 5001 + 100_000, 1001).payload(&filler(100)), "S>C data +100000");
    b.send(f.s(PSH | ACK, 5001 + 1000, 1001).payload(&filler(100)), "S>C data just past win 1000");
    b.build()
}

fn tcp_keepalive() -> Scenario {
    let mut b = Builder::new("tcp_keepalive", "keep-alive probes (seq = next-1, 0 or 1 byte) and their ACKs");
    let f = spec1(&mut b, 5);
    b.send(f.c(ACK, 1100, 5001), "C>S keep-alive (no data)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    b.send(f.c(ACK, 1100, 5001).payload(b"\0"), "C>S keep-alive (1 byte)");
    b.send(f.s(ACK, 5001, 1101), "S>C ACK");
    b.build()
}
