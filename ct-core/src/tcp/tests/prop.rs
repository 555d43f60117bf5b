//! `packet()` and `new()` never panic, whatever the state and segment.

use super::*;
use proptest::prelude::*;

fn any_side() -> impl Strategy<Value = TcpSide> {
    (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u8>()).prop_map(
        |(end, maxend, maxwin, maxack, scale, flags)| TcpSide {
            end,
            maxend,
            maxwin,
            maxack,
            scale,
            flags: TcpCtFlags::from_bits_retain(flags),
        },
    )
}

fn any_state() -> impl Strategy<Value = TcpState> {
    (
        any_side(),
        any_side(),
        0usize..10,
        0u8..2,
        any::<u8>(),
        0usize..6,
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u8>(), any::<u8>()),
    )
        .prop_map(|(o, r, s, last_dir, retrans, li, (last_seq, last_ack, last_end, last_win, last_wscale, lf))| {
            TcpState {
                seen: [o, r],
                state: TcpConntrack::ALL[s],
                last_dir,
                retrans,
                last_index: TcpClass::ALL[li],
                last_seq,
                last_ack,
                last_end,
                last_win,
                last_wscale,
                last_flags: TcpCtFlags::from_bits_retain(lf),
            }
        })
}

#[derive(Clone, Debug)]
struct Pkt {
    reply: bool,
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    options: Vec<u8>,
    len: usize,
}

fn any_pkt() -> impl Strategy<Value = Pkt> {
    (
        any::<bool>(),
        prop_oneof![any::<u8>(), Just(0x02), Just(0x12), Just(0x10), Just(0x11), Just(0x04), Just(0x14)],
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..40),
        0usize..3000,
    )
        .prop_map(|(reply, flags, seq, ack, window, options, len)| Pkt {
            reply,
            flags,
            seq,
            ack,
            window,
            options,
            len,
        })
}

fn any_cfg() -> impl Strategy<Value = CtConfig> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<u8>()).prop_map(
        |(loose, be_liberal, ignore_invalid_rst, mr)| CtConfig {
            tcp_knobs: TcpKnobs { loose, be_liberal, ignore_invalid_rst, max_retrans: mr },
            ..CtConfig::default()
        },
    )
}

fn run(st: &mut TcpState, p: &Pkt, status: u16, remaining: u32, cfg: &CtConfig) -> TcpVerdict {
    let s = TcpSeg {
        options: &p.options,
        payload: &ZEROS[..p.len],
        ..TcpSeg::bare(1, 2, p.seq, p.ack, TcpFlags::from_bits_retain(p.flags), p.window)
    };
    let dir = if p.reply { Dir::Reply } else { Dir::Original };
    let cx = TcpCx {
        dir,
        status: Status::from_bits_retain(status),
        confirmed: true,
        remaining: Duration::from_secs(u64::from(remaining)),
    };
    st.packet(&cx, &s, cfg)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn packet_never_panics_on_any_state(mut st in any_state(), pkts in proptest::collection::vec(any_pkt(), 1..8),
                                       status in any::<u16>(), remaining in any::<u32>(), cfg in any_cfg()) {
        for p in &pkts {
            let v = run(&mut st, p, status, remaining, &cfg);
            if let TcpVerdict::Invalid { timeout: Some(t), .. } = v {
                prop_assert_eq!(t, cfg.tcp.unacknowledged);
            }
        }
    }

    #[test]
    fn connection_from_new_never_panics(first in any_pkt(), pkts in proptest::collection::vec(any_pkt(), 0..24),
                                        cfg in any_cfg()) {
        let s = TcpSeg {
            options: &first.options,
            payload: &ZEROS[..first.len],
            ..TcpSeg::bare(1, 2, first.seq, first.ack, TcpFlags::from_bits_retain(first.flags), first.window)
        };
        let Ok(mut st) = TcpState::new(&s, &cfg.tcp_knobs) else { return Ok(()); };
        let cx = TcpCx { dir: Dir::Original, status: Status::empty(), confirmed: false, remaining: Duration::ZERO };
        let v = st.packet(&cx, &s, &cfg);
        prop_assert!(matches!(v, TcpVerdict::Accept { timeout: Some(_), set_assured: false, delete: false }), "{:?}", v);
        let mut status = Status::CONFIRMED;
        for p in &pkts {
            match run(&mut st, p, status.bits(), 100, &cfg) {
                TcpVerdict::Accept { set_assured, delete, .. } => {
                    if delete { break; }
                    if set_assured { status |= Status::ASSURED; }
                    if p.reply { status |= Status::SEEN_REPLY; }
                }
                TcpVerdict::Ignore => if p.reply { status |= Status::SEEN_REPLY; },
                TcpVerdict::Invalid { .. } => {}
                TcpVerdict::Repeat => break,
            }
            prop_assert!(st.state() != TcpConntrack::None);
        }
    }
}
