//! STUB: replaced by the TCP tracker implementation.
use crate::config::{CtConfig, TcpKnobs};
use crate::invalid::InvalidReason;
use crate::status::Status;
use crate::tuple::Dir;
use crate::wire::{TcpFlags, TcpSeg};
use core::time::Duration;

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TcpConntrack {
    #[default]
    None = 0,
    SynSent = 1,
    SynRecv = 2,
    Established = 3,
    FinWait = 4,
    CloseWait = 5,
    LastAck = 6,
    TimeWait = 7,
    Close = 8,
    SynSent2 = 9,
}

impl TcpConntrack {
    pub const fn name(self) -> &'static str {
        match self {
            TcpConntrack::None => "NONE",
            TcpConntrack::SynSent => "SYN_SENT",
            TcpConntrack::SynRecv => "SYN_RECV",
            TcpConntrack::Established => "ESTABLISHED",
            TcpConntrack::FinWait => "FIN_WAIT",
            TcpConntrack::CloseWait => "CLOSE_WAIT",
            TcpConntrack::LastAck => "LAST_ACK",
            TcpConntrack::TimeWait => "TIME_WAIT",
            TcpConntrack::Close => "CLOSE",
            TcpConntrack::SynSent2 => "SYN_SENT2",
        }
    }
}

pub struct TcpCx {
    pub dir: Dir,
    pub status: Status,
    pub confirmed: bool,
    pub remaining: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TcpVerdict {
    Accept { timeout: Option<Duration>, set_assured: bool, delete: bool },
    Ignore,
    Invalid { reason: InvalidReason, timeout: Option<Duration> },
    Repeat,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpState {
    state: TcpConntrack,
}

pub fn valid_flags(_f: TcpFlags) -> bool {
    todo!()
}

impl TcpState {
    pub fn state(&self) -> TcpConntrack {
        self.state
    }
    pub fn new(_seg: &TcpSeg<'_>, _knobs: &TcpKnobs) -> Result<TcpState, InvalidReason> {
        todo!()
    }
    pub fn packet(&mut self, _cx: &TcpCx, _seg: &TcpSeg<'_>, _cfg: &CtConfig) -> TcpVerdict {
        todo!()
    }
    pub fn can_early_drop(&self) -> bool {
        todo!()
    }
}
