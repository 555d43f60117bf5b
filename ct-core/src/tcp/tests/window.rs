//! Window tracking details (CONNTRACK_SPEC §4.3, §4.6, §4.9).

use super::Host::{C, S};
use super::*;
use TcpConntrack::{Established, SynRecv, SynSent2};

static WS7: [u8; 4] = [1, 3, 3, 7];
static WS5_SACKOK: [u8; 6] = [1, 3, 3, 5, 4, 2];
static SACKOK: [u8; 2] = [4, 2];

#[test]
fn new_syn_initialises_original_side() {
    let k = TcpKnobs::default();
    let st = TcpState::new(&data(SYN, 1000, 0, 0, 10), &k).unwrap();
    let o = st.side(Dir::Original);
    assert_eq!((o.end, o.maxend, o.maxwin, o.scale), (1011, 1011, 1, 0));
    assert_eq!(o.flags, TcpCtFlags::empty());
    assert_eq!(*st.side(Dir::Reply), TcpSide::default());
    assert_eq!(st.state(), TcpConntrack::None);
    assert_eq!(st.last_packet().0, TcpClass::None);

    let st = TcpState::new(&opts(SYN, 1000, 0, 500, &WS5_SACKOK), &k).unwrap();
    let o = st.side(Dir::Original);
    assert_eq!((o.end, o.maxwin, o.scale), (1001, 500, 5));
    assert_eq!(o.flags, TcpCtFlags::WINDOW_SCALE | TcpCtFlags::SACK_PERM);
}

#[test]
fn new_pickup_initialises_original_side() {
    let st = TcpState::new(&data(PSHACK, 1000, 77, 300, 20), &TcpKnobs::default()).unwrap();
    let o = st.side(Dir::Original);
    assert_eq!((o.end, o.maxwin, o.maxend), (1020, 300, 1320));
    let both = TcpCtFlags::SACK_PERM | TcpCtFlags::BE_LIBERAL;
    assert_eq!((o.flags, st.side(Dir::Reply).flags), (both, both));
}

#[test]
fn new_refuses_other_classes() {
    let k = TcpKnobs::default();
    for f in [SYNACK, FINACK, RST, RSTACK] {
        assert_eq!(TcpState::new(&seg(f, 1, 1, 1), &k), Err(InvalidReason::TcpInvalidNew), "{f:?}");
    }
    let strict = TcpKnobs { loose: false, ..TcpKnobs::default() };
    assert_eq!(TcpState::new(&seg(ACK, 1, 1, 1), &strict), Err(InvalidReason::TcpInvalidNew));
    assert!(TcpState::new(&seg(SYN, 1, 0, 1), &strict).is_ok());
}

#[test]
fn window_scaling_when_both_sides_offer_it() {
    let mut n = Net::new();
    n.send(C, opts(SYN, 1000, 0, 1000, &WS7));
    n.send(S, opts(SYNACK, 5000, 1001, 2000, &WS5_SACKOK));
    assert_eq!((n.e().st.side(Dir::Original).scale, n.e().st.side(Dir::Reply).scale), (7, 5));
    // The SYN/ACK's window is not scaled: C may send up to 1001 + 2000.
    assert_eq!(n.e().st.side(Dir::Original).maxend, 1001 + 2000);
    n.send(C, seg(ACK, 1001, 5001, 100));
    // C's window of 100 is scaled by 7.
    assert_eq!(n.e().st.side(Dir::Reply).maxend, 5001 + (100 << 7));
    n.send(S, seg(ACK, 5001, 1001, 100));
    // S's window of 100 is scaled by 5 and moves C's right edge.
    assert_eq!(n.e().st.side(Dir::Original).maxend, 1001 + (100 << 5));
    assert_eq!(n.e().st.side(Dir::Reply).maxwin, 100 << 5);
    // Data up to the scaled window is fine, beyond it by more than a window is not.
    assert_eq!(n.send(S, data(PSHACK, 5001 + (100 << 7) - 10, 1001, 100, 10)), Ct::Established);
    assert_eq!(n.send(S, data(PSHACK, 5001 + (100 << 7) + 200_000, 1001, 100, 10)), Ct::Invalid);
}

#[test]
fn window_scaling_off_unless_both_offer_it() {
    let mut n = Net::new();
    n.send(C, opts(SYN, 1000, 0, 1000, &WS7));
    n.send(S, seg(SYNACK, 5000, 1001, 2000));
    let st = n.e().st;
    assert_eq!((st.side(Dir::Original).scale, st.side(Dir::Reply).scale), (0, 0));
    assert!(st.side(Dir::Original).flags.contains(TcpCtFlags::WINDOW_SCALE));
}

#[test]
fn options_reset_flags_but_absence_keeps_them() {
    let mut side = TcpSide {
        scale: 3,
        flags: TcpCtFlags::WINDOW_SCALE | TcpCtFlags::BE_LIBERAL | TcpCtFlags::MAXACK_SET,
        ..TcpSide::default()
    };
    window::read_options(&seg(SYN, 0, 0, 0), &mut side);
    assert_eq!(side.scale, 3);
    assert_eq!(side.flags, TcpCtFlags::WINDOW_SCALE | TcpCtFlags::BE_LIBERAL | TcpCtFlags::MAXACK_SET);
    window::read_options(&opts(SYN, 0, 0, 0, &SACKOK), &mut side);
    assert_eq!(side.scale, 0);
    assert_eq!(side.flags, TcpCtFlags::BE_LIBERAL | TcpCtFlags::SACK_PERM);
    // The last window-scale option wins, capped at 14.
    static TWO_WS: [u8; 6] = [3, 3, 2, 3, 3, 20];
    window::read_options(&opts(SYN, 0, 0, 0, &TWO_WS), &mut side);
    assert_eq!(side.scale, 14);
}

fn sack_handshake(n: &mut Net) {
    n.send(C, opts(SYN, 1000, 0, WIN, &SACKOK));
    n.send(S, opts(SYNACK, 5000, 1001, WIN, &SACKOK));
    n.send(C, seg(ACK, 1001, 5001, WIN));
    n.send(S, data(PSHACK, 5001, 1001, WIN, 1000));
}

#[test]
fn sack_blocks_count_as_acknowledgement() {
    // SACK block 5501..6001 within what S sent: fine.
    static SACK_OK: [u8; 12] = [1, 1, 5, 10, 0, 0, 0x15, 0x7d, 0, 0, 0x17, 0x71];
    let mut n = Net::new();
    sack_handshake(&mut n);
    assert_eq!(n.send(C, opts(ACK, 1001, 5001, WIN, &SACK_OK)), Ct::Established);
    // Right edge 7001: S never sent that far.
    static SACK_BAD: [u8; 12] = [1, 1, 5, 10, 0, 0, 0x15, 0x7d, 0, 0, 0x1b, 0x59];
    assert_eq!(n.send(C, opts(ACK, 1001, 5001, WIN, &SACK_BAD)), Ct::Invalid);
    assert_eq!(n.last, Some(TcpVerdict::Invalid { reason: InvalidReason::TcpAckOverUpper, timeout: None }));
    // Without SACK-permitted on S the blocks are not looked at.
    let mut n = Net::new();
    n.send(C, opts(SYN, 1000, 0, WIN, &SACKOK));
    n.send(S, seg(SYNACK, 5000, 1001, WIN));
    n.send(C, seg(ACK, 1001, 5001, WIN));
    n.send(S, data(PSHACK, 5001, 1001, WIN, 1000));
    assert_eq!(n.send(C, opts(ACK, 1001, 5001, WIN, &SACK_BAD)), Ct::Established);
}

#[test]
fn unacknowledged_data_caps_timeout() {
    let mut n = Net::new();
    handshake(&mut n);
    n.send(S, data(PSHACK, 5001, 1001, WIN, 10));
    n.expect(Established, 300, true);
    assert!(n.e().st.side(Dir::Reply).flags.contains(TcpCtFlags::DATA_UNACKNOWLEDGED));
    n.send(C, seg(ACK, 1001, 5005, WIN)); // partial ACK
    n.expect(Established, 300, true);
    n.send(C, seg(ACK, 1001, 5011, WIN));
    n.expect(Established, 432_000, true);
    assert!(!n.e().st.side(Dir::Reply).flags.contains(TcpCtFlags::DATA_UNACKNOWLEDGED));
}

#[test]
fn zero_window_caps_timeout() {
    let mut n = Net::new();
    handshake(&mut n);
    n.send(C, seg(ACK, 1001, 5001, 0));
    n.expect(Established, 300, true);
    n.send(C, seg(ACK, 1001, 5001, 10));
    n.expect(Established, 432_000, true);
}

#[test]
fn overshoot_band_records_data() {
    let mut n = Net::new();
    data_phase(&mut n);
    assert_eq!(n.send(C, data(PSHACK, 65111, 5001, WIN, 100)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
    let o = *n.e().st.side(Dir::Original);
    assert_eq!(o.end, 65211);
    assert!(o.flags.contains(TcpCtFlags::DATA_UNACKNOWLEDGED));
    // S may now acknowledge it without "ACK is over the upper bound".
    assert_eq!(n.send(S, seg(ACK, 5001, 65211, WIN)), Ct::Established);
    assert!(matches!(n.last, Some(TcpVerdict::Accept { .. })));
}

#[test]
fn overly_delayed_ack_is_ignored() {
    let mut n = Net::new();
    handshake(&mut n);
    let mut seq = 5001u32;
    for _ in 0..50 {
        n.send(S, data(PSHACK, seq, 1001, WIN, 1460));
        seq += 1460;
        n.send(C, seg(ACK, 1001, seq, WIN));
    }
    // An ACK more than MAXACKWINDOW (66000) behind S's end.
    assert_eq!(n.send(C, seg(ACK, 1001, 5001, WIN)), Ct::Established);
    assert_eq!(n.last, Some(TcpVerdict::Ignore));
}

#[test]
fn pickup_keepalive_reply() {
    let mut n = Net::new();
    n.send(C, seg(ACK, 1101, 5001, WIN));
    n.send(S, seg(ACK, 5001, 1101, WIN));
    n.send(C, seg(ACK, 1101, 5001, WIN));
    // A keep-alive from C (seq one below) and S's reply acking end + 1 are fine.
    assert_eq!(n.send(C, seg(ACK, 1100, 5001, WIN)), Ct::Established);
    assert_eq!(n.send(S, seg(ACK, 5001, 1101, WIN)), Ct::Established);
}

#[test]
fn pickup_first_reply_side_init() {
    let mut n = Net::new();
    n.send(C, seg(ACK, 1101, 5001, 100));
    // Before S speaks, C's ack could not be checked (liberal).
    assert_eq!(
        *n.e().st.side(Dir::Reply),
        TcpSide { flags: TcpCtFlags::SACK_PERM | TcpCtFlags::BE_LIBERAL, ..TcpSide::default() }
    );
    n.send(S, data(ACK, 5001, 1101, 200, 10));
    let r = *n.e().st.side(Dir::Reply);
    assert_eq!((r.end, r.maxwin, r.maxend), (5011, 200, 5211));
}

#[test]
fn syn_with_higher_isn_reinitialises_in_syn_sent() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 1000, 0, WIN));
    assert_eq!(n.send(C, seg(SYN, 9000, 0, 100)), Ct::New);
    let o = *n.e().st.side(Dir::Original);
    assert_eq!((o.end, o.maxend, o.maxwin), (9001, 9001, 100));
    assert_eq!(n.send(S, seg(SYNACK, 5000, 9001, WIN)), Ct::Established);
    assert_eq!(n.state(), SynRecv);
}

#[test]
fn simultaneous_open_reply_syn_accepted_immediately() {
    let mut n = Net::new();
    n.send(C, seg(SYN, 100, 0, WIN));
    // Even a bogus ack field is irrelevant: a reply SYN without ACK is
    // accepted as soon as its side is initialised.
    assert_eq!(n.send(S, seg(SYN, 900, 0, 0)), Ct::Established);
    assert_eq!(n.state(), SynSent2);
    let r = *n.e().st.side(Dir::Reply);
    assert_eq!((r.end, r.maxwin), (901, 1));
    // A retransmitted simultaneous SYN with a higher ISN is not re-inited
    // (state is SYN_SENT2, not SYN_SENT/SYN_RECV).
    assert_eq!(n.send(S, seg(SYN, 950, 0, 0)), Ct::Established);
    assert_eq!(n.e().st.side(Dir::Reply).end, 951);
}
