//! In-memory packet I/O: a queue of frames in, forwarded frames collected.

use crate::{Action, PacketIo, PortId, RxMeta};
use std::collections::VecDeque;
use std::io;

/// Frames fed from memory; forwarded frames are collected per port.
#[derive(Debug, Default)]
pub struct MemIo {
    rx: VecDeque<(Vec<u8>, RxMeta)>,
    /// Frames sent out, with the port they left by.
    pub tx: Vec<(PortId, Vec<u8>)>,
    /// Frames dropped.
    pub dropped: u64,
}

impl MemIo {
    pub fn new() -> MemIo {
        MemIo::default()
    }

    /// Queue a frame for reception.
    pub fn push(&mut self, frame: Vec<u8>, meta: RxMeta) {
        self.rx.push_back((frame, meta));
    }

    pub fn pending(&self) -> usize {
        self.rx.len()
    }
}

impl PacketIo for MemIo {
    fn rx_batch(&mut self, max: usize, f: &mut dyn FnMut(&mut [u8], RxMeta) -> Action) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            let Some((mut frame, meta)) = self.rx.pop_front() else { break };
            match f(&mut frame, meta) {
                Action::Forward(port) => self.tx.push((port, frame)),
                Action::Drop => self.dropped += 1,
            }
            n += 1;
        }
        Ok(n)
    }

    fn send(&mut self, port: PortId, frame: &[u8]) -> io::Result<()> {
        self.tx.push((port, frame.to_vec()));
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_collects() {
        let mut io = MemIo::new();
        for i in 0..5u8 {
            io.push(vec![i], RxMeta { ts_ns: u64::from(i), port: PortId::Inside });
        }
        let mut seen = vec![];
        let n = io
            .rx_batch(3, &mut |f, m| {
                seen.push((f[0], m.ts_ns));
                if f[0] == 1 {
                    Action::Drop
                } else {
                    Action::Forward(m.port.other())
                }
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(seen, [(0, 0), (1, 1), (2, 2)]);
        assert_eq!(io.tx, vec![(PortId::Outside, vec![0]), (PortId::Outside, vec![2])]);
        assert_eq!(io.dropped, 1);
        assert!(!io.is_finished());
        assert_eq!(io.rx_batch(10, &mut |_, _| Action::Drop).unwrap(), 2);
        assert!(io.is_finished());
        io.send(PortId::Inside, &[7]).unwrap();
        assert_eq!(io.tx.last(), Some(&(PortId::Inside, vec![7])));
    }
}
