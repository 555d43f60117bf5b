//! The flag-validity table (CONNTRACK_SPEC §4.2), written out here
//! independently of `tables.rs`: after masking ECE, CWR and PSH, exactly
//! these nine values of FIN/SYN/RST/ACK/URG are legal.

use super::*;

const URG: TcpFlags = TcpFlags::URG;
const ECE: TcpFlags = TcpFlags::ECE;
const CWR: TcpFlags = TcpFlags::CWR;

/// The nine legal combinations, from the spec.
const LEGAL: [TcpFlags; 9] = [
    SYN,
    SYN.union(URG),
    SYN.union(ACK),
    RST,
    RST.union(ACK),
    FIN.union(ACK),
    FIN.union(ACK).union(URG),
    ACK,
    ACK.union(URG),
];

/// All 8 ways of adding PSH, ECE and CWR to `base` are valid, and `base`
/// passes `packet()`'s flag check (it is never TcpBadFlags).
fn row_is_valid(base: TcpFlags) {
    for extra in 0u8..8 {
        let mut f = base;
        if extra & 1 != 0 {
            f |= PSH;
        }
        if extra & 2 != 0 {
            f |= ECE;
        }
        if extra & 4 != 0 {
            f |= CWR;
        }
        assert!(valid_flags(f), "{f:?} must be valid");
        let mut st = TcpState { state: TcpConntrack::Established, ..TcpState::default() };
        let cx = TcpCx { dir: Dir::Original, status: Status::SEEN_REPLY, confirmed: true, remaining: secs(10) };
        let v = st.packet(&cx, &seg(f, 0, 0, 0), &CtConfig::default());
        assert_ne!(v, TcpVerdict::Invalid { reason: InvalidReason::TcpBadFlags, timeout: None }, "{f:?}");
    }
}

#[test]
fn row_syn() {
    row_is_valid(SYN);
}

#[test]
fn row_syn_urg() {
    row_is_valid(SYN | URG);
}

#[test]
fn row_syn_ack() {
    row_is_valid(SYN | ACK);
}

#[test]
fn row_rst() {
    row_is_valid(RST);
}

#[test]
fn row_rst_ack() {
    row_is_valid(RST | ACK);
}

#[test]
fn row_fin_ack() {
    row_is_valid(FIN | ACK);
}

#[test]
fn row_fin_ack_urg() {
    row_is_valid(FIN | ACK | URG);
}

#[test]
fn row_ack() {
    row_is_valid(ACK);
}

#[test]
fn row_ack_urg() {
    row_is_valid(ACK | URG);
}

/// Every one of the 256 flag bytes against the list.
#[test]
fn all_256_flag_bytes() {
    let mut valid = 0;
    for b in 0..=255u8 {
        let f = TcpFlags::from_bits_retain(b);
        let core = f.difference(PSH | ECE | CWR);
        let want = LEGAL.contains(&core);
        assert_eq!(valid_flags(f), want, "flags {b:#04x} ({f:?})");
        valid += usize::from(want);
    }
    assert_eq!(valid, 9 * 8);
}

/// Invalid flags are INVALID in every state and direction, before anything
/// else, and change nothing; `new` refuses them as well.
#[test]
fn invalid_flags_everywhere() {
    let cfg = CtConfig::default();
    for b in 0..=255u8 {
        let f = TcpFlags::from_bits_retain(b);
        if valid_flags(f) {
            continue;
        }
        assert_eq!(TcpState::new(&seg(f, 1, 1, 1), &cfg.tcp_knobs), Err(InvalidReason::TcpBadFlags), "{f:?}");
        for state in TcpConntrack::ALL {
            for dir in [Dir::Original, Dir::Reply] {
                let mut st = TcpState { state, ..TcpState::default() };
                let before = st;
                let cx =
                    TcpCx { dir, status: Status::SEEN_REPLY | Status::ASSURED, confirmed: true, remaining: secs(500) };
                let v = st.packet(&cx, &seg(f, 1, 1, 1), &cfg);
                assert_eq!(v, TcpVerdict::Invalid { reason: InvalidReason::TcpBadFlags, timeout: None });
                assert_eq!(st, before);
            }
        }
    }
}

/// Every NONE-class byte is invalid, so the NONE row is unreachable.
#[test]
fn none_class_is_never_valid() {
    for b in 0..=255u8 {
        let f = TcpFlags::from_bits_retain(b);
        if TcpClass::of(f) == TcpClass::None {
            assert!(!valid_flags(f), "{f:?}");
        }
    }
}
