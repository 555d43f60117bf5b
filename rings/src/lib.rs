//! Packet I/O for ctwall, behind one batch trait.
//!
//! The implementation owns the frame buffers: a caller sees each received
//! frame once, mutably, and answers with an [`Action`]. Returning the
//! action (instead of handing buffers around) is what keeps an AF_XDP
//! UMEM frame from leaking: every frame is either forwarded or recycled.
//!
//! * [`pcap::PcapIo`]: frames from a pcap or pcapng file, with the capture's
//!   timestamps (replay).
//! * [`mem::MemIo`]: frames from a queue in memory (tests, benchmarks), with
//!   the forwarded frames collected per port.
//! * [`xdp::XdpIo`] (feature `af-xdp`): AF_XDP sockets on two interfaces
//!   sharing one UMEM, one socket pair per queue; with [`cpu`] (pinning
//!   worker threads), the only `unsafe` of the crate.
#![deny(unsafe_code)]

pub mod cpu;
pub mod mem;
pub mod pcap;
#[cfg(feature = "af-xdp")]
pub mod xdp;

use std::io;

/// A port of the bridge.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortId {
    Inside,
    Outside,
}

impl PortId {
    pub const fn other(self) -> PortId {
        match self {
            PortId::Inside => PortId::Outside,
            PortId::Outside => PortId::Inside,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            PortId::Inside => "inside",
            PortId::Outside => "outside",
        }
    }
}

/// Metadata of a received frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// Receive time in nanoseconds (capture timestamp, or a monotonic clock).
    pub ts_ns: u64,
    /// The port the frame arrived on.
    pub port: PortId,
}

/// What to do with a received frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send it out of this port (usually the other one).
    Forward(PortId),
    /// Recycle the buffer.
    Drop,
}

/// Batch packet I/O.
pub trait PacketIo {
    /// Receive up to `max` frames, calling `f` on each. Returns the number of
    /// frames handled; `Ok(0)` when nothing is pending (or, for finite
    /// sources, at the end — see [`PacketIo::is_finished`]).
    fn rx_batch(&mut self, max: usize, f: &mut dyn FnMut(&mut [u8], RxMeta) -> Action) -> io::Result<usize>;

    /// Transmit a frame the caller built (a TCP RST or ICMP error answering
    /// a rejected packet) out of `port`. The bytes are copied.
    fn send(&mut self, port: PortId, frame: &[u8]) -> io::Result<()>;

    /// Push out frames queued for transmission.
    fn flush(&mut self) -> io::Result<()>;

    /// A finite source (a capture file) has delivered its last frame.
    fn is_finished(&self) -> bool {
        false
    }
}
