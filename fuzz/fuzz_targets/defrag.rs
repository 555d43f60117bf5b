//! The reassembler on random fragment streams: IPv4 and IPv6 fragments
//! built from the input (so they parse and reach reassembly) with random
//! ids, offsets, lengths, flags and clock steps, plus raw frames as they
//! come. Checks: no panic; the memory held never exceeds its bound; a
//! completed datagram parses as one unfragmented packet whose original
//! fragments are all frames that were fed; timed-out queues are reaped.
//!
//! Input: records `[dt][flags][len][len bytes]` (see records.rs). Flags:
//! bit 0 IPv6, bit 1 More Fragments, bit 2 raw frame, bits 3-4 the id,
//! bit 5 the ingress port; the first two record bytes are the offset in
//! 8-byte units (IPv4: 13 bits).
#![no_main]

#[path = "records.rs"]
mod records;

use ct_core::defrag::{Defrag, DefragConfig, FragOutcome, Ingress, Reassembly};
use ct_core::wire::{parse_frame, parse_ip, Fragment};
use ct_core::Instant;
use libfuzzer_sys::fuzz_target;
use records::records;
use std::collections::HashSet;
use std::time::Duration;

const MEM: usize = 64 << 10;

fn frame(v6: bool, id: u8, off: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[44, 64]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(&[17, 0]);
        f.extend_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&u32::from(id).to_be_bytes());
    } else {
        f.extend_from_slice(&[0x08, 0x00]);
        let mut h = vec![0x45, 0, 0, 0, 0, id, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        h[6..8].copy_from_slice(&((off & 0x1fff) | if more { 0x2000 } else { 0 }).to_be_bytes());
        let c = ct_core::wire::checksum::checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&h);
    }
    f.extend_from_slice(data);
    f
}

fuzz_target!(|data: &[u8]| {
    let cfg = DefragConfig {
        ipfrag_high_thresh: MEM,
        frag6_high_thresh: MEM,
        ipfrag_time: Duration::from_secs(3),
        frag6_timeout: Duration::from_secs(3),
        ipfrag_max_dist: 8,
        ..DefragConfig::default()
    };
    let d = Defrag::new(cfg);
    let mut out = Reassembly::new();
    let mut now = Instant::ZERO;
    let mut fed: HashSet<Vec<u8>> = HashSet::new();
    for r in records(data) {
        now = now + r.dt;
        let f = if r.flags & 4 != 0 {
            r.frame.to_vec()
        } else {
            let [a, b, rest @ ..] = r.frame else { continue };
            let off = u16::from_be_bytes([*a, *b]) % (if r.flags & 1 != 0 { 8192 } else { 8192 });
            // Repeat the data so fragments reach realistic sizes.
            let data: Vec<u8> = rest.iter().cycle().take(rest.len() * 8).copied().collect();
            frame(r.flags & 1 != 0, (r.flags >> 3) & 3, off, r.flags & 2 != 0, &data)
        };
        let Ok(l2) = parse_frame(&f) else { continue };
        let Ok(ip) = parse_ip(l2.l3) else { continue };
        if ip.fragment == Fragment::None {
            continue;
        }
        fed.insert(f.clone());
        let at = Ingress { port: (r.flags >> 5) & 1, vlan: None };
        if d.add(&f, l2.l3_offset, &ip, at, now, &mut out) == FragOutcome::Complete {
            let dg = parse_ip(&out.datagram).expect("a reassembled datagram parses");
            assert_eq!(dg.fragment, Fragment::None);
            assert!(!out.spans.is_empty() && out.spans.iter().filter(|s| s.first).count() == 1);
            for s in &out.spans {
                assert!(fed.contains(out.frame(s)), "an original fragment that was never fed");
            }
        }
        let st = d.stats();
        assert!(st.mem as usize <= 2 * MEM, "memory {} over its bound", st.mem);
    }
    d.expire(now + Duration::from_secs(4));
    let st = d.stats();
    assert_eq!((st.queues, st.mem), (0, 0), "every queue reaped after its timeout");
});
