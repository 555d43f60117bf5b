//! Traffic generator: Ethernet/IPv4 frames with valid checksums.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::io;
use std::path::Path;
use std::time::Duration;

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn sum(b: &[u8]) -> u32 {
    b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &mut [u8], csum_at: Option<usize>) -> Vec<u8> {
    if let Some(at) = csum_at {
        let ph = sum(&src) + sum(&dst) + u32::from(proto) + l4.len() as u32;
        let c = fold(ph + sum(l4));
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let total = 20 + l4.len();
    let mut ip = [0u8; 20];
    ip[..12].copy_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = fold(sum(&ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + total);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

#[allow(clippy::too_many_arguments)]
fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64000u16.to_be_bytes());
    frame(src, dst, 6, &mut t, Some(16))
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: usize) -> Vec<u8> {
    let len = 8 + payload;
    let mut u = vec![0u8; len];
    u[0..2].copy_from_slice(&sp.to_be_bytes());
    u[2..4].copy_from_slice(&dp.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    frame(src, dst, 17, &mut u, Some(6))
}

fn ping(src: [u8; 4], dst: [u8; 4], ty: u8, id: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, (id >> 8) as u8, id as u8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    let c = fold(sum(&m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    frame(src, dst, 1, &mut m, None)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

/// About `n` frames (timestamps in ns, 2 µs apart): for every 20 frames one
/// TCP connection (3-way handshake, 6 request/response exchanges with ACKs,
/// FIN close: 20 frames), and every tenth connection slot a UDP pair and a
/// ping pair instead. Connections overlap: 64 are open at any time.
pub(crate) fn traffic(n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut flows: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut out = Vec::with_capacity(n);
    let mut i: u32 = 0;
    while out.len() < n {
        while flows.len() < 64 {
            i = i.wrapping_add(1);
            let c = [10, 1, (i >> 8) as u8, i as u8];
            let s = [10, 2, 0, (i % 50) as u8 + 1];
            let sp = 1024 + (i % 60000) as u16;
            let mut f = Vec::new();
            if i.is_multiple_of(10) {
                f.push(udp(c, s, sp, 53, 40));
                f.push(udp(s, c, 53, sp, 120));
                f.push(ping(c, s, 8, sp));
                f.push(ping(s, c, 0, sp));
            } else {
                let (mut cs, mut ss) = (1000u32, 5000u32);
                f.push(tcp(c, s, sp, 80, cs, 0, SYN, 0));
                f.push(tcp(s, c, 80, sp, ss, cs + 1, SYN | ACK, 0));
                cs += 1;
                ss += 1;
                f.push(tcp(c, s, sp, 80, cs, ss, ACK, 0));
                for _ in 0..6 {
                    f.push(tcp(c, s, sp, 80, cs, ss, PSH | ACK, 100));
                    cs += 100;
                    f.push(tcp(s, c, 80, sp, ss, cs, PSH | ACK, 400));
                    ss += 400;
                    f.push(tcp(c, s, sp, 80, cs, ss, ACK, 0));
                }
                f.push(tcp(c, s, sp, 80, cs, ss, FIN | ACK, 0));
                f.push(tcp(s, c, 80, sp, ss, cs + 1, FIN | ACK, 0));
                f.push(tcp(c, s, sp, 80, cs + 1, ss + 1, ACK, 0));
            }
            f.reverse();
            flows.push(f);
        }
        // Round-robin over open flows.
        let k = out.len() % flows.len();
        if let Some(fr) = flows[k].pop() {
            out.push((out.len() as u64 * 2_000, fr));
        }
        if flows[k].is_empty() {
            flows.swap_remove(k);
        }
    }
    out
}

pub(crate) fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) -> io::Result<()> {
    let file = io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::with_header(file, PcapHeader::default()).map_err(io::Error::other)?;
    for (ts, f) in frames {
        w.write_packet(&PcapPacket::new(Duration::from_nanos(*ts), f.len() as u32, f)).map_err(io::Error::other)?;
    }
    Ok(())
}
