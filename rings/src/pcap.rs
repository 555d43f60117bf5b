//! Frames from a capture file (pcap or pcapng), with the capture's
//! timestamps as receive times.

use crate::{Action, PacketIo, PortId, RxMeta};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

enum Reader {
    Pcap(PcapReader<BufReader<File>>),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A capture file as a packet source. Only Ethernet captures are accepted.
/// In pcapng files, interface 1 is the outside port and every other
/// interface the inside; classic pcap frames all arrive on the inside.
pub struct PcapIo {
    reader: Reader,
    finished: bool,
    /// Frames delivered so far.
    pub frames: u64,
    /// Frames handed to [`PacketIo::send`].
    pub sent: u64,
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn pcap_err(e: pcap_file::PcapError) -> io::Error {
    match e {
        pcap_file::PcapError::IoError(e) => e,
        other => invalid(format!("corrupt capture: {other}")),
    }
}

impl PcapIo {
    /// Open a pcap or pcapng file, recognised by its magic number.
    pub fn open(path: &Path) -> io::Result<PcapIo> {
        let mut f = File::open(path)?;
        let mut magic = [0u8; 4];
        f.read_exact(&mut magic).map_err(|_| invalid("not a capture file: shorter than a header"))?;
        f.seek(SeekFrom::Start(0))?;
        let buf = BufReader::new(f);
        let reader = match u32::from_le_bytes(magic) {
            0x0a0d_0d0a => Reader::PcapNg(PcapNgReader::new(buf).map_err(pcap_err)?),
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let r = PcapReader::new(buf).map_err(pcap_err)?;
                let dl = r.header().datalink;
                if dl != DataLink::ETHERNET {
                    return Err(invalid(format!("unsupported link type {dl:?}: only Ethernet captures")));
                }
                Reader::Pcap(r)
            }
            m => return Err(invalid(format!("not a pcap or pcapng file (magic {m:#010x})"))),
        };
        Ok(PcapIo { reader, finished: false, frames: 0, sent: 0 })
    }

    /// The next frame as (bytes, ts_ns, port), or `None` at the end.
    fn next_frame(&mut self) -> io::Result<Option<(Vec<u8>, u64, PortId)>> {
        match &mut self.reader {
            Reader::Pcap(r) => match r.next_packet() {
                None => Ok(None),
                Some(Err(e)) => Err(pcap_err(e)),
                Some(Ok(p)) => {
                    let ts = u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX);
                    Ok(Some((p.data.into_owned(), ts, PortId::Inside)))
                }
            },
            Reader::PcapNg(r) => loop {
                let block = match r.next_block() {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(pcap_err(e)),
                    Some(Ok(b)) => b,
                };
                let (iface, raw_ts, data) = match block {
                    Block::EnhancedPacket(p) => (p.interface_id, p.timestamp.as_nanos(), p.data.into_owned()),
                    Block::SimplePacket(p) => (0, 0, p.data.into_owned()),
                    _ => continue,
                };
                let idb = r
                    .interfaces()
                    .get(iface as usize)
                    .ok_or_else(|| invalid(format!("corrupt capture: packet on undeclared interface {iface}")))?;
                if idb.linktype != DataLink::ETHERNET {
                    return Err(invalid(format!("unsupported link type {:?}: only Ethernet captures", idb.linktype)));
                }
                // The parser hands the raw timestamp units over as nanoseconds;
                // scale them by the interface's resolution (default 10^-6 s).
                let resol = idb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
                        _ => None,
                    })
                    .unwrap_or(6);
                let ts = scale_ts(raw_ts, resol);
                let port = if iface == 1 { PortId::Outside } else { PortId::Inside };
                return Ok(Some((data, ts, port)));
            },
        }
    }
}

/// Convert a pcapng timestamp in units of the interface resolution to ns.
fn scale_ts(raw: u128, resol: u8) -> u64 {
    let ns = if resol & 0x80 != 0 {
        // Negative powers of two.
        let shift = u32::from(resol & 0x7f);
        if shift >= 128 {
            0
        } else {
            raw.saturating_mul(1_000_000_000) >> shift
        }
    } else if resol <= 9 {
        raw.saturating_mul(10u128.pow(9 - u32::from(resol)))
    } else {
        raw / 10u128.pow(u32::from(resol.min(38)) - 9)
    };
    u64::try_from(ns).unwrap_or(u64::MAX)
}

impl PacketIo for PcapIo {
    fn rx_batch(&mut self, max: usize, f: &mut dyn FnMut(&mut [u8], RxMeta) -> Action) -> io::Result<usize> {
        let mut n = 0;
        while n < max && !self.finished {
            match self.next_frame()? {
                None => self.finished = true,
                Some((mut data, ts_ns, port)) => {
                    self.frames += 1;
                    f(&mut data, RxMeta { ts_ns, port });
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// A capture has no wire: generated frames are counted and discarded.
    fn send(&mut self, _port: PortId, _frame: &[u8]) -> io::Result<()> {
        self.sent += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use std::time::Duration;

    fn tmp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rings-{}-{name}", std::process::id()))
    }

    #[test]
    fn reads_pcap_with_timestamps() {
        let p = tmp("a.pcap");
        let mut w = PcapWriter::with_header(File::create(&p).unwrap(), PcapHeader::default()).unwrap();
        w.write_packet(&PcapPacket::new(Duration::from_micros(1_500_000), 3, &[1, 2, 3])).unwrap();
        w.write_packet(&PcapPacket::new(Duration::from_micros(2_000_001), 1, &[9])).unwrap();
        drop(w);
        let mut io = PcapIo::open(&p).unwrap();
        let mut got = vec![];
        while !io.is_finished() {
            io.rx_batch(8, &mut |f, m| {
                got.push((f.to_vec(), m.ts_ns));
                Action::Drop
            })
            .unwrap();
        }
        assert_eq!(got, vec![(vec![1, 2, 3], 1_500_000_000), (vec![9], 2_000_001_000)]);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let p = tmp("b.pcap");
        std::fs::write(&p, b"hello world, not a capture").unwrap();
        let e = PcapIo::open(&p).err().unwrap();
        assert!(e.to_string().contains("not a pcap"), "{e}");
        std::fs::write(&p, b"ab").unwrap();
        assert!(PcapIo::open(&p).is_err());
        // A valid header followed by a truncated record.
        let mut w = PcapWriter::with_header(Vec::new(), PcapHeader::default()).unwrap();
        w.write_packet(&PcapPacket::new(Duration::ZERO, 4, &[1, 2, 3, 4])).unwrap();
        let mut bytes = w.into_writer();
        bytes.truncate(bytes.len() - 2);
        std::fs::write(&p, &bytes).unwrap();
        let mut io = PcapIo::open(&p).unwrap();
        assert!(io.rx_batch(8, &mut |_, _| Action::Drop).is_err());
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn pcapng_resolution_scaling() {
        assert_eq!(scale_ts(1_500_000, 6), 1_500_000_000);
        assert_eq!(scale_ts(7, 9), 7);
        assert_eq!(scale_ts(3, 0), 3_000_000_000);
        assert_eq!(scale_ts(1 << 10, 0x8a), 1_000_000_000);
        assert_eq!(scale_ts(5_000, 12), 5);
    }
}
