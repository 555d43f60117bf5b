//! CONNTRACK_SPEC §13 scenarios 1-22 (TCP), then the kernel's packetdrill
//! selftests (`tools/testing/selftests/net/netfilter/packetdrill/`) and a few
//! more paths (challenge ACKs, re-open rules, `nf_tcp_handle_invalid`).
//!
//! C = client (10.0.1.2:40000), S = server (10.0.2.2:80); C ISN 1000, S ISN
//! 5000, windows 64000, no scaling or SACK unless stated.

use super::Host::{C, S};
use super::*;
use TcpConntrack::{Close, CloseWait, Established, FinWait, LastAck, SynRecv, SynSent, SynSent2, TimeWait};

fn invalid_reason(n: &Net) -> Option<InvalidReason> {
    match n.last {
        Some(TcpVerdict::Invalid { reason, .. }) => Some(reason),
        _ => None,
    }
}

/// Scenario 1: Normal handshake, data, graceful close.
#[test]
fn s01_handshake_data_graceful_close() {
    let mut n = Net::new();
    assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);
    assert!(n.unreplied());
    assert_eq!(n.send(S, seg(SYNACK, 5000, 1001, WIN)), Ct::Established);
    n.expect(SynRecv, 60, false);
    assert!(!n.unreplied());
    assert_eq!(n.send(C, seg(ACK, 1001, 5001, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
    assert_eq!(n.send(C, data(PSHACK, 1001, 5001, WIN, 100)), Ct::Established);
    n.expect(Established, 300, true);
    assert_eq!(n.send(S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
    assert_eq!(n.send(C, seg(FINACK, 1101, 5001, WIN)), Ct::Established);
    n.expect(FinWait, 120, true);
    assert_eq!(n.send(S, seg(ACK, 5001, 1102, WIN)), Ct::Established);
    n.expect(CloseWait, 60, true);
    assert_eq!(n.send(S, seg(FINACK, 5001, 1102, WIN)), Ct::Established);
    n.expect(LastAck, 30, true);
    assert_eq!(n.send(C, seg(ACK, 1102, 5002, WIN)), Ct::Established);
    n.expect(TimeWait, 120, true);
    // The entry vanishes 120 s later: a late ACK then finds nothing and,
    // as a mid-stream pickup, creates a new entry.
    n.advance(secs(120));
    assert_eq!(n.send(C, seg(ACK, 1102, 5002, WIN)), Ct::New);
}

/// Scenario 2: Close with a combined FIN (FIN_WAIT -> LAST_ACK on the FIN row).
#[test]
fn s02_combined_fin() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(C, seg(FINACK, 1101, 5001, WIN));
    n.expect(FinWait, 120, true);
    assert_eq!(n.send(S, seg(FINACK, 5001, 1102, WIN)), Ct::Established);
    n.expect(LastAck, 30, true);
    assert_eq!(n.send(C, seg(ACK, 1102, 5002, WIN)), Ct::Established);
    n.expect(TimeWait, 120, true);
}

fn time_wait(n: &mut Net) {
    data_phase(n);
    n.send(C, seg(FINACK, 1101, 5001, WIN));
    n.send(S, seg(ACK, 5001, 1102, WIN));
    n.send(S, seg(FINACK, 5001, 1102, WIN));
    n.send(C, seg(ACK, 1102, 5002, WIN));
    n.expect(TimeWait, 120, true);
}

/// Scenario 3: Re-use from TIME_WAIT: CLOSE_INIT was set by the FIN, so the SYN
/// replaces the entry.
#[test]
fn s03_reuse_from_time_wait() {
    let mut n = Net::new();
    time_wait(&mut n);
    assert_eq!(n.send(C, seg(SYN, 900_000, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);
    assert!(n.unreplied());
    assert_eq!(n.e().originator, C);
}

/// Scenario 3b: A reply-direction SYN in TIME_WAIT re-opens with the roles swapped.
#[test]
fn s03b_reply_syn_reopens_with_roles_swapped() {
    let mut n = Net::new();
    time_wait(&mut n);
    assert_eq!(n.send(S, seg(SYN, 700_000, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);
    assert_eq!(n.e().originator, S);
    assert_eq!(n.send(C, seg(SYNACK, 3000, 700_001, WIN)), Ct::Established);
    n.expect(SynRecv, 60, false);
}

/// Scenario 4: SYN retransmissions before any reply do not refresh the timeout
/// (`conntrack_tcp_unreplied.sh`).
#[test]
fn s04_syn_retransmission_keeps_deadline() {
    let mut cfg = CtConfig::default();
    cfg.tcp.syn_sent = secs(10);
    let mut n = Net::with(cfg);
    for (t, left) in [(0, 10), (3, 7), (6, 4), (9, 1)] {
        n.now = secs(t);
        assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::New, "t={t}");
        n.expect(SynSent, left, false);
        if t > 0 {
            assert_eq!(n.last, Some(TcpVerdict::Accept { timeout: None, set_assured: false, delete: false }));
        }
    }
    n.now = secs(11);
    assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::New);
    n.expect(SynSent, 10, false);
}

/// Scenario 5: A SYN retransmitted after the SYN/ACK is ESTABLISHED (IGNORED), and
/// refreshes nothing.
#[test]
fn s05_syn_retransmission_after_synack() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    n.send(S, seg(SYNACK, 5000, 1001, WIN));
    n.advance(secs(5));
    assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(SynRecv, 55, false);
    assert_eq!(n.send(C, seg(ACK, 1001, 5001, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
}

/// Scenario 6: Port closed: the RST/ACK passes and deletes the entry at once.
#[test]
fn s06_port_closed() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    assert_eq!(n.send(S, seg(RSTACK, 0, 1001, 0)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Accept { timeout: None, set_assured: false, delete: true }));
    assert!(n.entry.is_none());
    assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::New);
}

/// Scenario 7: Simultaneous open.
#[test]
fn s07_simultaneous_open() {
    let mut n = Net::new();
    assert_eq!(n.send(C, seg(SYN, 100, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);
    assert!(n.unreplied());
    assert_eq!(n.send(S, seg(SYN, 900, 0, WIN)), Ct::Established);
    assert_eq!(n.state(), SynSent2);
    assert!(!n.unreplied());
    assert_eq!(n.send(C, seg(SYNACK, 100, 901, WIN)), Ct::Established);
    n.expect(SynRecv, 60, false);
    assert_eq!(n.send(S, seg(SYNACK, 900, 101, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    assert_eq!(n.state(), SynRecv);
    assert_eq!(n.send(S, seg(ACK, 901, 101, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
}

/// Scenario 8: Mid-stream pickup with loose=1.
#[test]
fn s08_midstream_pickup() {
    let mut n = Net::new();
    assert_eq!(n.send(C, seg(ACK, 1101, 5001, WIN)), Ct::New);
    n.expect(Established, 300, false);
    assert!(n.unreplied());
    assert_eq!(n.send(S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
    n.expect(Established, 300, false);
    assert!(!n.unreplied());
    assert_eq!(n.send(C, seg(ACK, 1101, 5001, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
    // Both sides are liberal: window violations are never INVALID.
    assert_eq!(n.send(C, data(PSHACK, 1101 + 10_000_000, 5001, WIN, 10)), Ct::Established);
    assert_eq!(n.send(S, seg(ACK, 5001, 999_999_999, WIN)), Ct::Established);
    assert!(n.e().st.side(Dir::Original).flags.contains(TcpCtFlags::BE_LIBERAL | TcpCtFlags::SACK_PERM));
    assert!(n.e().st.side(Dir::Reply).flags.contains(TcpCtFlags::BE_LIBERAL | TcpCtFlags::SACK_PERM));
}

/// Scenario 9: Pickup blocked by `! --syn -m state --state NEW -j DROP`.
#[test]
fn s09_pickup_blocked_by_ruleset() {
    let mut n = Net::new();
    assert_eq!(n.send_with(C, seg(ACK, 1101, 5001, WIN), false), Ct::New);
    assert!(n.entry.is_none());
    assert_eq!(n.send_with(S, seg(ACK, 5001, 1101, WIN), false), Ct::New);
    assert!(n.entry.is_none());
}

/// Scenario 10: loose=0: no pickup, SYNs still work.
#[test]
fn s10_loose_off() {
    let mut cfg = CtConfig::default();
    cfg.tcp_knobs.loose = false;
    let mut n = Net::with(cfg);
    assert_eq!(n.send(C, seg(ACK, 1101, 5001, WIN)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpInvalidNew));
    assert!(n.entry.is_none());
    assert_eq!(n.send(C, seg(SYN, 1000, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);
}

/// Scenario 11: First-packet and flag validation.
#[test]
fn s11_first_packet_and_flag_validation() {
    for f in [SYNACK, FINACK, RST, RSTACK] {
        let mut n = Net::new();
        assert_eq!(n.send(C, seg(f, 1000, 1, WIN)), Ct::Invalid, "{f:?}");
        assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpInvalidNew));
        assert!(n.entry.is_none());
    }
    let mut n = Net::new();
    data_phase(&mut n);
    n.advance(secs(1));
    let urg = TcpFlags::URG;
    for f in [SYN | FIN, FIN, TcpFlags::empty(), PSH, FIN | PSH | urg, SYN | RST, SYNACK | urg, RSTACK | urg] {
        assert_eq!(n.send(C, seg(f, 1101, 5001, WIN)), Ct::Invalid, "{f:?}");
        assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpBadFlags));
        n.expect(Established, 431_999, true);
    }
    // ECE, CWR and PSH are masked out.
    assert_eq!(n.send(C, seg(SYN | TcpFlags::ECE | TcpFlags::CWR, 1101, 0, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    assert_eq!(n.send(C, seg(PSHACK | urg, 1101, 5001, WIN)), Ct::Established);
    let mut n = Net::new();
    assert_eq!(n.send(C, seg(SYN | TcpFlags::ECE | TcpFlags::CWR, 1000, 0, WIN)), Ct::New);
}

/// Scenario 12: An ACK from the client in SYN_SENT is INVALID.
#[test]
fn s12_client_ack_in_syn_sent() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    n.advance(secs(1));
    assert_eq!(n.send(C, seg(ACK, 1001, 5001, WIN)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpInvalidTransition));
    n.expect(SynSent, 119, false);
    assert!(n.unreplied());
}

/// Scenario 13: SYN/ACK with a wrong ack, then the right one (re-initialises the
/// reply side; packetdrill `conntrack_synack_old.pkt`).
#[test]
fn s13_bad_synack_then_good_one() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    assert_eq!(n.send(S, seg(SYNACK, 4000, 424_242, WIN)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpAckOverUpper));
    n.expect(SynSent, 120, false);
    assert!(n.unreplied());
    assert_eq!(n.e().st.side(Dir::Reply).end, 4001);
    assert_eq!(n.send(S, seg(SYNACK, 5000, 1001, WIN)), Ct::Established);
    n.expect(SynRecv, 60, false);
    assert_eq!(n.e().st.side(Dir::Reply).end, 5001);
}

/// Scenario 14: Exact RST: CLOSE, 10 s, ASSURED kept.
#[test]
fn s14_exact_rst() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.e().st.side(Dir::Reply).maxack, 1101);
    assert_eq!(n.send(C, seg(RST, 1101, 0, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// Scenario 15: RST below what the peer acknowledged.
#[test]
fn s15_rst_below_maxack() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.advance(secs(1));
    assert_eq!(n.send(C, seg(RST, 1050, 0, 0)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpInvalidRst));
    n.expect(Established, 431_999, true);

    let mut cfg = CtConfig::default();
    cfg.tcp_knobs.ignore_invalid_rst = true;
    let mut n = Net::with(cfg);
    data_phase(&mut n);
    assert_eq!(n.send(C, seg(RST, 1050, 0, 0)), Ct::Established);
    n.expect(Established, 10, true);
}

/// Scenario 16: In-window but inexact RST (RFC 5961): state kept, 10 s; the
/// challenge ACK passes (300 s); the exact RST closes.
#[test]
fn s16_inexact_rst_and_challenge_ack() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(C, seg(RST, 1200, 0, 0)), Ct::Established);
    n.expect(Established, 10, true);
    assert_eq!(n.send(S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
    n.expect(Established, 300, true);
    assert_eq!(n.send(C, seg(RST, 1101, 0, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// Scenario 17: RSTs out of window are INVALID (mirror of
/// `conntrack_rst_invalid.pkt` in our numbers), then the exact one closes.
#[test]
fn s17_rst_out_of_window() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.advance(secs(1));
    for (seq, why) in [
        (0, InvalidReason::TcpInvalidRst),
        (1101 + 1_000_000, InvalidReason::TcpSeqOverUpper),
        (42, InvalidReason::TcpInvalidRst),
        (1100, InvalidReason::TcpInvalidRst),
    ] {
        assert_eq!(n.send(C, seg(RST, seq, 0, 0)), Ct::Invalid, "seq {seq}");
        assert_eq!(invalid_reason(&n), Some(why), "seq {seq}");
        n.expect(Established, 431_999, true);
    }
    assert_eq!(n.send(C, seg(RST, 1101, 0, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// Scenario 17b: An RST just beyond the right edge (by less than the receiver's max
/// window) is IGNORED, not INVALID.
#[test]
fn s17b_rst_slightly_beyond_right_edge_is_ignored() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.e().st.side(Dir::Original).maxend, 1101 + 64000);
    n.advance(secs(1));
    assert_eq!(n.send(C, seg(RST, 1101 + 64000 + 10, 0, 0)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(Established, 431_999, true);
}

/// Scenario 18: Inexact RST while closing: no checks, CLOSE.
#[test]
fn s18_inexact_rst_while_closing() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(C, seg(FINACK, 1101, 5001, WIN));
    n.send(S, seg(ACK, 5001, 1102, WIN));
    n.expect(CloseWait, 60, true);
    assert_eq!(n.send(S, seg(RST, 9999, 0, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// Scenario 19: Window checks on data.
#[test]
fn s19_window_checks_on_data() {
    // Far beyond the right edge.
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(C, data(PSHACK, 1101 + 500_000, 5001, WIN, 100)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpSeqOverUpper));
    // 10 bytes past the right edge: IGNORED, no refresh.
    let mut n = Net::new();
    data_phase(&mut n);
    n.advance(secs(1));
    assert_eq!(n.send(C, data(PSHACK, 65111, 5001, WIN, 100)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(Established, 431_999, true);
    // Acknowledging data S never sent.
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(C, seg(ACK, 1101, 9000, WIN)), Ct::Invalid);
    assert_eq!(invalid_reason(&n), Some(InvalidReason::TcpAckOverUpper));
    // be_liberal: both pass.
    let mut cfg = CtConfig::default();
    cfg.tcp_knobs.be_liberal = true;
    let mut n = Net::with(cfg);
    data_phase(&mut n);
    assert_eq!(n.send(C, data(PSHACK, 1101 + 500_000, 5001, WIN, 100)), Ct::Established);
    assert_eq!(n.send(C, seg(ACK, 1101, 9000, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
}

/// Scenario 20: A very old retransmission is IGNORED; the latest one is accepted
/// (`conntrack_ack_loss_stall.pkt`).
#[test]
fn s20_very_old_retransmission() {
    let mut n = Net::new();
    handshake(&mut n);
    let mut seq = 5001u32;
    for _ in 0..137 {
        assert_eq!(n.send(S, data(PSHACK, seq, 1001, WIN, 1460)), Ct::Established);
        seq += 1460;
        assert_eq!(n.send(C, seg(ACK, 1001, seq, WIN)), Ct::Established);
    }
    assert!(seq - 5001 >= 200_000);
    n.advance(secs(10));
    assert_eq!(n.send(S, data(PSHACK, 5001, 1001, WIN, 1460)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(Established, 431_990, true);
    assert_eq!(n.send(S, data(PSHACK, seq - 1460, 1001, WIN, 1460)), Ct::Established);
    assert!(matches!(n.last, Some(TcpVerdict::Accept { .. })));
    n.expect(Established, 432_000, true);
}

/// Scenario 21: Stale ESTABLISHED entry and port reuse: the ignored SYN and the
/// matching SYN/ACK resync the entry to SYN_RECV.
#[test]
fn s21_stale_entry_resync() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(C, seg(SYN, 777_000, 0, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(Established, 432_000, true);
    assert_eq!(n.send(S, seg(SYNACK, 333_000, 777_001, WIN)), Ct::Established);
    n.expect(SynRecv, 60, true);
    assert_eq!(n.e().st.side(Dir::Original).end, 777_001);
    assert_eq!(n.e().st.side(Dir::Reply).end, 333_001);
    assert_eq!(n.send(C, seg(ACK, 777_001, 333_001, WIN)), Ct::Established);
    n.expect(Established, 432_000, true);
}

/// Scenario 22: Identical ACKs count as retransmissions and cap the timeout.
#[test]
fn s22_retransmission_counter() {
    let mut n = Net::new();
    data_phase(&mut n);
    for (i, t) in [432_000, 432_000, 432_000, 300].into_iter().enumerate() {
        assert_eq!(n.send(C, seg(ACK, 1101, 5001, WIN)), Ct::Established);
        assert_eq!(n.e().st.retrans(), i as u8);
        n.expect(Established, t, true);
    }
    assert_eq!(n.send(S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
    assert_eq!(n.e().st.retrans(), 0);
    n.expect(Established, 432_000, true);
}

// ------------------------------------------------------------------ more paths

/// RFC 5961 in LAST_ACK: the challenge ACK answering an ignored SYN does
/// not complete the close; the real last ACK does.
#[test]
fn last_ack_challenge_ack_is_ignored() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(C, seg(FINACK, 1101, 5001, WIN));
    n.send(S, seg(FINACK, 5001, 1102, WIN));
    n.expect(LastAck, 30, true);
    assert_eq!(n.send(C, seg(SYN, 900_000, 0, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    assert_eq!(n.send(S, seg(ACK, 5002, 1102, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(LastAck, 30, true);
    assert_eq!(n.send(C, seg(ACK, 1102, 5002, WIN)), Ct::Established);
    n.expect(TimeWait, 120, true);
}

/// Without the ignored SYN the same reply ACK moves LAST_ACK -> TIME_WAIT.
#[test]
fn last_ack_reply_ack_without_syn() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(S, seg(FINACK, 5001, 1101, WIN));
    n.send(C, seg(FINACK, 1101, 5002, WIN));
    n.expect(LastAck, 30, true);
    assert_eq!(n.send(S, seg(ACK, 5002, 1102, WIN)), Ct::Established);
    n.expect(TimeWait, 120, true);
}

/// SYN in CLOSE after an RST from the same side re-opens; from the other
/// side (and without CLOSE_INIT) it is ignored.
#[test]
fn reopen_after_rst_depends_on_direction() {
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(C, seg(RST, 1101, 0, 0));
    n.expect(Close, 10, true);
    assert_eq!(n.send(C, seg(SYN, 1_000_000, 0, WIN)), Ct::New);
    n.expect(SynSent, 120, false);

    let mut n = Net::new();
    data_phase(&mut n);
    n.send(S, seg(RST, 5001, 0, 0));
    n.expect(Close, 10, true);
    assert_eq!(n.send(C, seg(SYN, 1_000_000, 0, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    n.expect(Close, 10, true);
}

/// `nf_tcp_handle_invalid`: an out-of-window FIN answering an RST from the
/// other side lowers a long timeout to 300 s (and only when > 120 s remain).
#[test]
fn handle_invalid_lowers_timeout() {
    let mut n = Net::new();
    data_phase(&mut n);
    // An out-of-window RST from S is recorded as the last packet...
    assert_eq!(n.send(S, seg(RST, 5001 + 10_000_000, 0, 0)), Ct::Invalid);
    assert_eq!(n.e().st.last_packet(), (TcpClass::Rst, Dir::Reply));
    n.expect(Established, 432_000, true);
    // ... so an out-of-window FIN from C lowers the timeout.
    assert_eq!(n.send(C, seg(FINACK, 1101 + 10_000_000, 5001, WIN)), Ct::Invalid);
    assert_eq!(n.last, Some(TcpVerdict::Invalid { reason: InvalidReason::TcpSeqOverUpper, timeout: Some(secs(300)) }));
    n.expect(Established, 300, true);
    // Not below 120 s remaining.
    n.advance(secs(181));
    assert_eq!(n.send(C, seg(FINACK, 1101 + 10_000_000, 5001, WIN)), Ct::Invalid);
    assert_eq!(n.last, Some(TcpVerdict::Invalid { reason: InvalidReason::TcpSeqOverUpper, timeout: None }));
    n.expect(Established, 119, true);
}

/// Not ASSURED: nothing is lowered or recorded.
#[test]
fn handle_invalid_needs_assured() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    n.send(S, seg(SYNACK, 5000, 1001, WIN));
    let before = n.e().st;
    assert_eq!(n.send(C, seg(FINACK, 1001 + 10_000_000, 5001, WIN)), Ct::Invalid);
    assert_eq!(n.e().st, before);
}

/// A reply SYN+ACK in ESTABLISHED that matches no ignored SYN is IGNORED and
/// remembered; it does not resync.
#[test]
fn late_synack_is_ignored() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(S, seg(SYNACK, 5000, 1001, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    assert_eq!(n.e().st.last_packet(), (TcpClass::SynAck, Dir::Reply));
    n.expect(Established, 432_000, true);
}

/// A resync carries the ignored SYN's window scale and SACK option.
#[test]
fn resync_keeps_syn_options() {
    static WS7_SACK: [u8; 8] = [1, 3, 3, 7, 1, 1, 4, 2];
    static WS5: [u8; 4] = [1, 3, 3, 5];
    let mut n = Net::new();
    data_phase(&mut n);
    n.send(C, opts(SYN, 777_000, 0, 1000, &WS7_SACK));
    n.send(S, opts(SYNACK, 333_000, 777_001, 2000, &WS5));
    n.expect(SynRecv, 60, true);
    let o = *n.e().st.side(Dir::Original);
    let r = *n.e().st.side(Dir::Reply);
    assert_eq!((o.scale, o.maxwin, o.end), (7, 1000, 777_001));
    assert!(o.flags.contains(TcpCtFlags::WINDOW_SCALE | TcpCtFlags::SACK_PERM));
    assert_eq!((r.scale, r.maxwin), (5, 2000));
    assert!(r.flags.contains(TcpCtFlags::WINDOW_SCALE));
    assert!(!o.flags.contains(TcpCtFlags::CLOSE_INIT));
}

// ------------------------------------------------------------------ packetdrill

// <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 8>
static PD_SYN_OPTS: [u8; 20] = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 8];
// <mss 1460,nop,nop,TS val 1 ecr 1,nop,wscale 0>
static PD_SYNACK_WS0: [u8; 20] = [2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 1, 1, 3, 3, 0];
// <mss 1460>
static PD_MSS: [u8; 4] = [2, 4, 5, 0xb4];
// <mss 1000,nop,wscale 7, TS val 1 ecr 0,nop,nop>
static PD_SYN_WS7: [u8; 20] = [2, 4, 3, 0xe8, 1, 3, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1];
// <mss 1000,nop,wscale 0, TS val 233 ecr 0,nop,nop>
static PD_SYN_WS0: [u8; 20] = [2, 4, 3, 0xe8, 1, 3, 3, 0, 8, 10, 0, 0, 0, 233, 0, 0, 0, 0, 1, 1];
// <mss 1460,nop,nop,TS val 100 ecr 1,nop,wscale 8>
static PD_SYNACK_WS8: [u8; 20] = [2, 4, 5, 0xb4, 1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 1, 1, 3, 3, 8];
// <nop,nop,TS val 1 ecr 1>
static PD_TS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 1];

/// `conntrack_syn_challenge_ack.pkt`: SYN, challenge ACK from an old
/// incarnation, RST with seq = that ack, SYN again -> a new connection.
/// (The kernel retransmits the SYN at once after such an RST, which is
/// why the selftest already sees SYN_SENT [UNREPLIED] after the RST.)
#[test]
fn packetdrill_syn_challenge_ack() {
    let mut n = Net::new();
    assert_eq!(n.send(C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS)), Ct::New);
    assert_eq!(n.send(S, opts(ACK, 145_824_453, 643_160_523, 240, &PD_SYNACK_WS0)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    assert_eq!(n.send(C, seg(RST, 643_160_523, 0, 0)), Ct::Established);
    assert_eq!(n.state(), Close);
    assert_eq!(n.send(C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS)), Ct::New);
    n.expect(SynSent, 120, false);
    assert!(n.unreplied());
    assert_eq!(n.send(S, opts(SYNACK, 0, 1, 250, &PD_SYNACK_WS0)), Ct::Established);
    assert_eq!(n.send(C, opts(ACK, 1, 1, 256, &PD_TS)), Ct::Established);
    n.expect(Established, 432_000, true);
}

/// `conntrack_synack_old.pkt`: a SYN/ACK for an old incarnation is INVALID
/// (the only INVALID packet), the correct one is accepted later.
#[test]
fn packetdrill_synack_old() {
    let mut n = Net::new();
    let mut invalid = 0;
    let mut go = |n: &mut Net, h, s| {
        let ct = n.send(h, s);
        invalid += usize::from(ct == Ct::Invalid);
        ct
    };
    go(&mut n, C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS));
    assert_eq!(go(&mut n, S, opts(SYNACK, 145_824_453, 643_160_523, 240, &PD_SYNACK_WS0)), Ct::Invalid);
    n.advance(secs(1));
    assert_eq!(go(&mut n, C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS)), Ct::New);
    assert_eq!(n.state(), SynSent);
    assert!(n.unreplied());
    assert_eq!(go(&mut n, S, opts(SYNACK, 145_758_918, 1, 250, &PD_SYNACK_WS0)), Ct::Established);
    assert_eq!(n.state(), SynRecv);
    assert_eq!(go(&mut n, C, opts(ACK, 1, 145_758_919, 256, &PD_TS)), Ct::Established);
    n.expect(Established, 432_000, true);
    assert_eq!(go(&mut n, C, TcpSeg { payload: &[0], ..opts(PSHACK, 1, 145_758_919, 256, &PD_TS) }), Ct::Established);
    assert_eq!(n.state(), Established);
    assert_eq!(invalid, 1);
}

/// `conntrack_inexact_rst.pkt`: an inexact RST while closing is not INVALID.
#[test]
fn packetdrill_inexact_rst() {
    let mut n = Net::new();
    let cs = [
        (C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS)),
        (S, opts(SYNACK, 1, 1, 65535, &PD_MSS)),
        (C, seg(ACK, 1, 1, 65535)),
        (S, data(ACK, 1, 1, 65535, 1000)),
        (S, data(ACK, 1001, 1, 65535, 1000)),
        (S, data(ACK, 2001, 1, 65535, 1000)),
        (C, seg(ACK, 1, 1001, 65535)),
        (C, seg(ACK, 1, 2001, 65535)),
        (C, seg(ACK, 1, 3001, 65535)),
        (C, data(PSHACK, 1, 3001, 65535, 1000)),
        (S, seg(FINACK, 3001, 1001, 65535)),
        (C, seg(ACK, 1001, 3002, 65535)),
    ];
    for (i, (h, s)) in cs.into_iter().enumerate() {
        assert_ne!(n.send(h, s), Ct::Invalid, "packet {i}: {:?}", n.last);
    }
    assert_eq!(n.state(), CloseWait);
    assert_eq!(n.send(C, seg(RSTACK, 1001, 3002, 65535)), Ct::Established);
    assert_eq!(n.state(), Close);
    assert_eq!(n.send(S, seg(RST, 2001, 0, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// `conntrack_rst_invalid.pkt`: four out-of-window RSTs are INVALID and
/// the state stays ESTABLISHED; the exact RST closes.
#[test]
fn packetdrill_rst_invalid() {
    let mut n = Net::new();
    let mut invalid = 0;
    let mut go = |n: &mut Net, h, s| {
        let ct = n.send(h, s);
        invalid += usize::from(ct == Ct::Invalid);
        assert_eq!(n.state(), Established, "{:?}", n.last);
        ct
    };
    n.send(C, opts(SYN, 0, 0, 65535, &PD_SYN_OPTS));
    n.send(S, opts(SYNACK, 1, 1, 65535, &PD_MSS));
    go(&mut n, C, seg(ACK, 1, 1, 65535));
    go(&mut n, S, data(ACK, 1, 1, 65535, 1000));
    go(&mut n, S, data(ACK, 1001, 1, 65535, 1000));
    go(&mut n, S, data(ACK, 2001, 1, 65535, 1000));
    go(&mut n, C, seg(ACK, 1, 1001, 65535));
    go(&mut n, C, seg(ACK, 1, 2001, 65535));
    go(&mut n, C, seg(ACK, 1, 3001, 65535));
    assert_eq!(go(&mut n, S, seg(RST, 0, 0, 0)), Ct::Invalid);
    assert_eq!(go(&mut n, S, seg(RST, 1_000_000, 0, 0)), Ct::Invalid);
    assert_eq!(go(&mut n, S, seg(RST, 42, 0, 0)), Ct::Invalid);
    go(&mut n, C, data(PSHACK, 1, 3001, 65535, 1000));
    go(&mut n, S, seg(ACK, 3001, 1001, 65535));
    assert_eq!(go(&mut n, S, seg(RSTACK, 3000, 1001, 0)), Ct::Invalid);
    assert_eq!(invalid, 4);
    assert_eq!(n.send(S, seg(RSTACK, 3001, 1001, 0)), Ct::Established);
    n.expect(Close, 10, true);
}

/// `conntrack_synack_reuse.pkt`: a SYN on an ESTABLISHED entry draws a
/// challenge ACK, the client's RST closes, the SYN retransmit re-opens and
/// the SYN/ACK takes the new entry to SYN_RECV. Nothing is INVALID.
#[test]
fn packetdrill_synack_reuse() {
    let mut n = Net::new();
    let cs = [
        (C, opts(SYN, 0, 0, 32792, &PD_SYN_WS7)),
        (S, opts(SYNACK, 0, 1, 65535, &PD_SYNACK_WS8)),
        (C, opts(ACK, 1, 1, 257, &PD_TS)),
        (C, TcpSeg { payload: &[0; 100], ..opts(PSHACK, 1, 1, 257, &PD_TS) }),
        (S, opts(ACK, 1, 101, 256, &PD_TS)),
        (C, opts(SYN, 2000, 0, 32792, &PD_SYN_WS7)),
        (S, opts(ACK, 1, 101, 256, &PD_TS)),
        (C, seg(RSTACK, 101, 1, 257)),
        (C, opts(SYN, 2000, 0, 32792, &PD_SYN_WS0)),
        (S, opts(SYNACK, 50_000, 2001, 65535, &PD_SYNACK_WS8)),
    ];
    let mut states = Vec::new();
    for (i, (h, s)) in cs.into_iter().enumerate() {
        assert_ne!(n.send(h, s), Ct::Invalid, "packet {i}: {:?}", n.last);
        states.push(n.state());
    }
    assert_eq!(
        states,
        [SynSent, SynRecv, Established, Established, Established, Established, Established, Close, SynSent, SynRecv]
    );
}
