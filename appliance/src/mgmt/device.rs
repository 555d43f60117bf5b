//! A smoltcp [`Device`] over two in-memory frame queues: the bridge puts
//! frames for the management address in, and takes smoltcp's frames out.
//! No sockets, no clock.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use std::collections::VecDeque;

/// The largest Ethernet frame smoltcp may send (1500-byte MTU plus header).
pub(crate) const MAX_FRAME: usize = 1514;

/// Bounded receive and transmit queues.
#[derive(Debug)]
pub(crate) struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    /// Frames each queue holds at most.
    cap: usize,
}

impl QueueDevice {
    pub(crate) fn new(cap: usize) -> QueueDevice {
        QueueDevice { rx: VecDeque::new(), tx: VecDeque::new(), cap }
    }

    /// Queue a received frame; `false` (and nothing queued) when full.
    pub(crate) fn push_rx(&mut self, frame: &[u8]) -> bool {
        if self.rx.len() >= self.cap {
            return false;
        }
        self.rx.push_back(frame.to_vec());
        true
    }

    /// Frames waiting for smoltcp.
    pub(crate) fn rx_len(&self) -> usize {
        self.rx.len()
    }

    /// Take the frames smoltcp sent, oldest first.
    pub(crate) fn drain_tx(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.tx.drain(..)
    }
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken, TxToken<'_>)> {
        // An answer needs room: leave the frame queued until there is some.
        if self.tx.len() >= self.cap {
            return None;
        }
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken { queue: &mut self.tx, cap: self.cap }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        (self.tx.len() < self.cap).then_some(TxToken { queue: &mut self.tx, cap: self.cap })
    }
}

pub(crate) struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

pub(crate) struct TxToken<'a> {
    queue: &'a mut VecDeque<Vec<u8>>,
    cap: usize,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        // `transmit`/`receive` checked for room; a token is used once.
        if self.queue.len() < self.cap {
            self.queue.push_back(frame);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};

    #[test]
    fn queues_are_bounded() {
        let mut d = QueueDevice::new(2);
        assert!(d.push_rx(&[1]) && d.push_rx(&[2]));
        assert!(!d.push_rx(&[3]), "third frame refused");
        assert_eq!(d.rx_len(), 2);
        let t = Instant::ZERO;
        let (rx, _) = d.receive(t).unwrap();
        assert_eq!(rx.consume(|b| b.to_vec()), [1]);
        d.transmit(t).unwrap().consume(3, |b| b.copy_from_slice(&[7, 8, 9]));
        d.transmit(t).unwrap().consume(1, |b| b[0] = 5);
        assert!(d.transmit(t).is_none(), "tx full");
        assert!(d.receive(t).is_none(), "no receive without room to answer");
        let out: Vec<Vec<u8>> = d.drain_tx().collect();
        assert_eq!(out, [vec![7, 8, 9], vec![5]]);
        assert!(d.receive(t).is_some());
    }
}
