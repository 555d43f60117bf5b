//! One test per cell of `tcp_conntracks` (2 directions x 6 classes x 10
//! states). The expected values below were written out from the tables of
//! CONNTRACK_SPEC §4.4, not from `tables.rs`. Each cell is checked twice:
//!
//! 1. the raw lookup [`transition`];
//! 2. the behaviour of [`TcpState::packet`] on a neutral connection in that
//!    state (liberal windows, no remembered packet, SEEN_REPLY|ASSURED), so
//!    the table is really the one `packet` uses. On a neutral connection a
//!    SYN that would re-open TIME_WAIT/CLOSE is IGNORED (footnote 1: no
//!    CLOSE_INIT, no earlier RST), and a NONE-class packet never reaches the
//!    table because no NONE-class flag byte is valid (§4.2).

use super::*;

/// Expected cell values, named as in the spec.
#[allow(clippy::upper_case_acronyms)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum E {
    SS,
    SR,
    ES,
    FW,
    CW,
    LA,
    TW,
    CL,
    S2,
    IG,
    IV,
}

fn expected_transition(e: E) -> Transition {
    use TcpConntrack as T;
    match e {
        E::SS => Transition::To(T::SynSent),
        E::SR => Transition::To(T::SynRecv),
        E::ES => Transition::To(T::Established),
        E::FW => Transition::To(T::FinWait),
        E::CW => Transition::To(T::CloseWait),
        E::LA => Transition::To(T::LastAck),
        E::TW => Transition::To(T::TimeWait),
        E::CL => Transition::To(T::Close),
        E::S2 => Transition::To(T::SynSent2),
        E::IG => Transition::Ignore,
        E::IV => Transition::Invalid,
    }
}

/// A valid flag byte of each class.
fn flags_of(class: TcpClass) -> TcpFlags {
    match class {
        TcpClass::Syn => SYN,
        TcpClass::SynAck => SYNACK,
        TcpClass::Fin => FINACK,
        TcpClass::Ack => ACK,
        TcpClass::Rst => RST,
        TcpClass::None => PSH,
    }
}

fn check_cell(dir: Dir, class: TcpClass, state: TcpConntrack, exp: E, cell: &str) {
    let want = expected_transition(exp);
    let got = transition(dir, class, state);
    assert_eq!(got, want, "cell {cell} ({} {} in {}): table lookup", dir.name(), class.name(), state.name());

    let mut cfg = CtConfig::default();
    cfg.tcp_knobs.be_liberal = true;
    let cx = TcpCx { dir, status: Status::SEEN_REPLY | Status::ASSURED, confirmed: true, remaining: secs(100) };
    let mut st = TcpState { state, ..TcpState::default() };
    let before = st;
    let s = seg(flags_of(class), 1, 1, 1000);
    let v = st.packet(&cx, &s, &cfg);
    let reopen_cell = exp == E::SS && matches!(state, TcpConntrack::TimeWait | TcpConntrack::Close);
    let observed = match v {
        TcpVerdict::Accept { .. } => Transition::To(st.state()),
        TcpVerdict::Ignore => Transition::Ignore,
        TcpVerdict::Invalid { reason: InvalidReason::TcpInvalidTransition, timeout: None } => Transition::Invalid,
        TcpVerdict::Invalid { reason: InvalidReason::TcpBadFlags, timeout: None } if class == TcpClass::None => {
            Transition::Invalid
        }
        other => panic!("cell {cell}: unexpected verdict {other:?}"),
    };
    let want_behaviour = if reopen_cell { Transition::Ignore } else { want };
    assert_eq!(
        observed,
        want_behaviour,
        "cell {cell} ({} {} in {}): behaviour",
        dir.name(),
        class.name(),
        state.name()
    );
    if observed != want || reopen_cell {
        assert_eq!(st.state(), before.state(), "cell {cell}: an IGNORED/INVALID packet changed the state");
    }
    if matches!(observed, Transition::Invalid) {
        assert_eq!(st, before, "cell {cell}: an INVALID table cell touched the state");
    }
}

macro_rules! cells {
    ($($name:ident: $dir:ident $class:ident $state:ident => $exp:ident;)*) => {
        $(
            #[test]
            fn $name() {
                check_cell(Dir::$dir, TcpClass::$class, TcpConntrack::$state, E::$exp, stringify!($name));
            }
        )*
        /// Every cell is listed exactly once.
        #[test]
        fn all_cells_listed() {
            let mut seen = std::collections::HashSet::new();
            $( assert!(seen.insert((Dir::$dir as u8, TcpClass::$class as u8, TcpConntrack::$state as u8))); )*
            assert_eq!(seen.len(), 2 * 6 * 10);
        }
    };
}

cells! {
    orig_syn_no: Original Syn None => SS;
    orig_syn_ss: Original Syn SynSent => SS;
    orig_syn_sr: Original Syn SynRecv => IG;
    orig_syn_es: Original Syn Established => IG;
    orig_syn_fw: Original Syn FinWait => IG;
    orig_syn_cw: Original Syn CloseWait => IG;
    orig_syn_la: Original Syn LastAck => IG;
    orig_syn_tw: Original Syn TimeWait => SS;
    orig_syn_cl: Original Syn Close => SS;
    orig_syn_s2: Original Syn SynSent2 => S2;
    orig_synack_no: Original SynAck None => IV;
    orig_synack_ss: Original SynAck SynSent => IV;
    orig_synack_sr: Original SynAck SynRecv => SR;
    orig_synack_es: Original SynAck Established => IV;
    orig_synack_fw: Original SynAck FinWait => IV;
    orig_synack_cw: Original SynAck CloseWait => IV;
    orig_synack_la: Original SynAck LastAck => IV;
    orig_synack_tw: Original SynAck TimeWait => IV;
    orig_synack_cl: Original SynAck Close => IV;
    orig_synack_s2: Original SynAck SynSent2 => SR;
    orig_fin_no: Original Fin None => IV;
    orig_fin_ss: Original Fin SynSent => IV;
    orig_fin_sr: Original Fin SynRecv => FW;
    orig_fin_es: Original Fin Established => FW;
    orig_fin_fw: Original Fin FinWait => LA;
    orig_fin_cw: Original Fin CloseWait => LA;
    orig_fin_la: Original Fin LastAck => LA;
    orig_fin_tw: Original Fin TimeWait => TW;
    orig_fin_cl: Original Fin Close => CL;
    orig_fin_s2: Original Fin SynSent2 => IV;
    orig_ack_no: Original Ack None => ES;
    orig_ack_ss: Original Ack SynSent => IV;
    orig_ack_sr: Original Ack SynRecv => ES;
    orig_ack_es: Original Ack Established => ES;
    orig_ack_fw: Original Ack FinWait => CW;
    orig_ack_cw: Original Ack CloseWait => CW;
    orig_ack_la: Original Ack LastAck => TW;
    orig_ack_tw: Original Ack TimeWait => TW;
    orig_ack_cl: Original Ack Close => CL;
    orig_ack_s2: Original Ack SynSent2 => IV;
    orig_rst_no: Original Rst None => IV;
    orig_rst_ss: Original Rst SynSent => CL;
    orig_rst_sr: Original Rst SynRecv => CL;
    orig_rst_es: Original Rst Established => CL;
    orig_rst_fw: Original Rst FinWait => CL;
    orig_rst_cw: Original Rst CloseWait => CL;
    orig_rst_la: Original Rst LastAck => CL;
    orig_rst_tw: Original Rst TimeWait => CL;
    orig_rst_cl: Original Rst Close => CL;
    orig_rst_s2: Original Rst SynSent2 => CL;
    orig_none_no: Original None None => IV;
    orig_none_ss: Original None SynSent => IV;
    orig_none_sr: Original None SynRecv => IV;
    orig_none_es: Original None Established => IV;
    orig_none_fw: Original None FinWait => IV;
    orig_none_cw: Original None CloseWait => IV;
    orig_none_la: Original None LastAck => IV;
    orig_none_tw: Original None TimeWait => IV;
    orig_none_cl: Original None Close => IV;
    orig_none_s2: Original None SynSent2 => IV;
    reply_syn_no: Reply Syn None => IV;
    reply_syn_ss: Reply Syn SynSent => S2;
    reply_syn_sr: Reply Syn SynRecv => IV;
    reply_syn_es: Reply Syn Established => IV;
    reply_syn_fw: Reply Syn FinWait => IV;
    reply_syn_cw: Reply Syn CloseWait => IV;
    reply_syn_la: Reply Syn LastAck => IV;
    reply_syn_tw: Reply Syn TimeWait => SS;
    reply_syn_cl: Reply Syn Close => IV;
    reply_syn_s2: Reply Syn SynSent2 => S2;
    reply_synack_no: Reply SynAck None => IV;
    reply_synack_ss: Reply SynAck SynSent => SR;
    reply_synack_sr: Reply SynAck SynRecv => IG;
    reply_synack_es: Reply SynAck Established => IG;
    reply_synack_fw: Reply SynAck FinWait => IG;
    reply_synack_cw: Reply SynAck CloseWait => IG;
    reply_synack_la: Reply SynAck LastAck => IG;
    reply_synack_tw: Reply SynAck TimeWait => IG;
    reply_synack_cl: Reply SynAck Close => IG;
    reply_synack_s2: Reply SynAck SynSent2 => SR;
    reply_fin_no: Reply Fin None => IV;
    reply_fin_ss: Reply Fin SynSent => IV;
    reply_fin_sr: Reply Fin SynRecv => FW;
    reply_fin_es: Reply Fin Established => FW;
    reply_fin_fw: Reply Fin FinWait => LA;
    reply_fin_cw: Reply Fin CloseWait => LA;
    reply_fin_la: Reply Fin LastAck => LA;
    reply_fin_tw: Reply Fin TimeWait => TW;
    reply_fin_cl: Reply Fin Close => CL;
    reply_fin_s2: Reply Fin SynSent2 => IV;
    reply_ack_no: Reply Ack None => IV;
    reply_ack_ss: Reply Ack SynSent => IG;
    reply_ack_sr: Reply Ack SynRecv => SR;
    reply_ack_es: Reply Ack Established => ES;
    reply_ack_fw: Reply Ack FinWait => CW;
    reply_ack_cw: Reply Ack CloseWait => CW;
    reply_ack_la: Reply Ack LastAck => TW;
    reply_ack_tw: Reply Ack TimeWait => TW;
    reply_ack_cl: Reply Ack Close => CL;
    reply_ack_s2: Reply Ack SynSent2 => IG;
    reply_rst_no: Reply Rst None => IV;
    reply_rst_ss: Reply Rst SynSent => CL;
    reply_rst_sr: Reply Rst SynRecv => CL;
    reply_rst_es: Reply Rst Established => CL;
    reply_rst_fw: Reply Rst FinWait => CL;
    reply_rst_cw: Reply Rst CloseWait => CL;
    reply_rst_la: Reply Rst LastAck => CL;
    reply_rst_tw: Reply Rst TimeWait => CL;
    reply_rst_cl: Reply Rst Close => CL;
    reply_rst_s2: Reply Rst SynSent2 => CL;
    reply_none_no: Reply None None => IV;
    reply_none_ss: Reply None SynSent => IV;
    reply_none_sr: Reply None SynRecv => IV;
    reply_none_es: Reply None Established => IV;
    reply_none_fw: Reply None FinWait => IV;
    reply_none_cw: Reply None CloseWait => IV;
    reply_none_la: Reply None LastAck => IV;
    reply_none_tw: Reply None TimeWait => IV;
    reply_none_cl: Reply None Close => IV;
    reply_none_s2: Reply None SynSent2 => IV;
}
