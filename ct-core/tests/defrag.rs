//! Reassembly ahead of tracking (`ct_core::defrag`, CONNTRACK_SPEC §11):
//! orders, duplicates, overlaps, bad lengths, limits, IPv6 specifics.

use ct_core::defrag::{Defrag, DefragConfig, FragDrop, FragOutcome, Ingress, Reassembly};
use ct_core::wire::{parse_ip, Fragment};
use ct_core::Instant;
use std::time::Duration;

mod common;
use common::{csum, udp};

const C: [u8; 4] = [10, 0, 1, 2];
const S: [u8; 4] = [10, 0, 2, 2];

/// An Ethernet frame around `ip`.
fn eth(ip: &[u8], v6: bool) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    f.extend_from_slice(ip);
    f
}

/// IPv4 fragment of `dgram` (a whole IPv4 packet, 20-byte header) covering
/// payload bytes `off..end`, with MF as given.
fn frag4(dgram: &[u8], id: u16, off: usize, end: usize, mf: bool) -> Vec<u8> {
    let data = &dgram[20 + off..20 + end];
    let mut h = dgram[..20].to_vec();
    h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let fo = (off / 8) as u16 | if mf { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&fo.to_be_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(data);
    eth(&h, false)
}

/// A UDP datagram of `n` payload bytes (IPv4, id 0).
fn big_udp(n: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    udp(C, S, 4000, 53, &payload)
}

struct H {
    d: Defrag,
    out: Reassembly,
}

impl H {
    fn new(cfg: DefragConfig) -> H {
        H { d: Defrag::new(cfg), out: Reassembly::new() }
    }

    fn add(&mut self, frame: &[u8], port: u8, t_ms: u64) -> FragOutcome {
        let ip = parse_ip(&frame[14..]).expect("well-formed fragment");
        assert_ne!(ip.fragment, Fragment::None);
        self.d.add(frame, 14, &ip, Ingress { port, vlan: None }, Instant::from_millis(t_ms), &mut self.out)
    }
}

/// Three fragments of a 3000-byte UDP datagram: (0..1480 MF, 1480..2960 MF, 2960..3008).
fn three(dgram: &[u8], id: u16) -> Vec<Vec<u8>> {
    let len = dgram.len() - 20;
    vec![frag4(dgram, id, 0, 1480, true), frag4(dgram, id, 1480, 2960, true), frag4(dgram, id, 2960, len, false)]
}

fn with_id(dgram: &[u8], id: u16) -> Vec<u8> {
    let mut d = dgram.to_vec();
    d[4..6].copy_from_slice(&id.to_be_bytes());
    d[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&d[..20], 0);
    d[10..12].copy_from_slice(&c.to_be_bytes());
    d
}

#[test]
fn every_order_reassembles_the_datagram_and_keeps_the_frames_in_arrival_order() {
    let dgram = big_udp(3000);
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let mut h = H::new(DefragConfig::default());
        let fr = three(&dgram, 7);
        for (i, &k) in order.iter().enumerate() {
            let r = h.add(&fr[k], k as u8 % 2, i as u64);
            if i < 2 {
                assert_eq!(r, FragOutcome::Held, "{order:?} #{i}");
            } else {
                assert_eq!(r, FragOutcome::Complete, "{order:?}");
            }
        }
        assert_eq!(h.out.datagram, with_id(&dgram, 7), "{order:?}: the datagram as sent");
        let ip = parse_ip(&h.out.datagram).unwrap();
        assert_eq!((ip.fragment, ip.l4.len()), (Fragment::None, 3008));
        let frames: Vec<&[u8]> = h.out.spans.iter().map(|s| h.out.frame(s)).collect();
        let want: Vec<&[u8]> = order.iter().map(|&k| fr[k].as_slice()).collect();
        assert_eq!(frames, want, "{order:?}: original frames in arrival order");
        assert_eq!(h.out.spans.iter().map(|s| s.port).collect::<Vec<_>>(), order.map(|k| k as u8 % 2));
        assert_eq!(h.out.first_frame(), Some(fr[0].as_slice()));
        let st = h.d.stats();
        assert_eq!((st.held, st.reassembled, st.queues, st.mem), (2, 1, 0, 0));
    }
}

#[test]
fn a_duplicate_is_dropped_alone_and_an_overlap_discards_the_datagram() {
    let dgram = big_udp(3000);
    let fr = three(&dgram, 9);
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&fr[0], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&fr[0], 0, 1), FragOutcome::Dropped(FragDrop::Duplicate));
    // A piece inside the first fragment's run is a duplicate too.
    assert_eq!(h.add(&frag4(&dgram, 9, 8, 64, true), 0, 1), FragOutcome::Dropped(FragDrop::Duplicate));
    assert_eq!(h.add(&fr[1], 0, 2), FragOutcome::Held);
    assert_eq!(h.add(&fr[2], 0, 3), FragOutcome::Complete);

    // Partial overlap: the whole datagram goes, later fragments start afresh.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&fr[0], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag4(&dgram, 9, 1472, 2960, true), 0, 1), FragOutcome::Dropped(FragDrop::Overlap));
    assert_eq!(h.d.stats().queues, 0);
    assert_eq!(h.add(&fr[1], 0, 2), FragOutcome::Held);
    assert_eq!(h.add(&fr[2], 0, 3), FragOutcome::Held, "the first fragment went with the overlap");
    // Overlap inside (not a duplicate: it spans two runs).
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&fr[2], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&fr[0], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag4(&dgram, 9, 1400, 2968, true), 0, 1), FragOutcome::Dropped(FragDrop::Overlap));
    let st = h.d.stats();
    assert_eq!((st.overlap, st.queues, st.mem), (1, 0, 0));
}

#[test]
fn bad_lengths_and_sizes() {
    let dgram = big_udp(3000);
    let fr = three(&dgram, 3);
    // A second last fragment with another end.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&fr[2], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag4(&dgram, 3, 2960, 3000, false), 0, 0), FragOutcome::Dropped(FragDrop::BadLength));
    assert_eq!(h.d.stats().queues, 0, "IPv4 discards the datagram");
    // Data beyond a known end.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag4(&dgram, 3, 1480, 1488, false), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag4(&dgram, 3, 1488, 1496, true), 0, 0), FragOutcome::Dropped(FragDrop::BadLength));
    // Zero length.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag4(&dgram, 3, 1480, 1480, true), 0, 0), FragOutcome::Dropped(FragDrop::BadLength));
    // A non-last fragment not a multiple of 8 is trimmed: 0..1484 keeps 0..1480.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag4(&dgram, 3, 0, 1484, true), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag4(&dgram, 3, 1480, 3008, false), 0, 0), FragOutcome::Complete);
    assert_eq!(h.out.datagram, with_id(&dgram, 3));
    // Over 65535: fragments up to offset 65528 plus 16 bytes more (20 + 65544).
    let mut huge = dgram[..20].to_vec();
    huge.resize(20 + 65544, 0x5a);
    let mut h = H::new(DefragConfig::default());
    let mut off = 0;
    while off < 65528 {
        let end = (off + 1480).min(65528);
        assert_eq!(h.add(&frag4(&huge, 4, off, end, true), 0, 0), FragOutcome::Held, "at {off}");
        off = end;
    }
    assert_eq!(h.add(&frag4(&huge, 4, 65528, 65544, false), 0, 0), FragOutcome::Dropped(FragDrop::TooBig));
    let st = h.d.stats();
    assert_eq!((st.too_big, st.queues, st.mem), (1, 0, 0));
}

#[test]
fn a_missing_fragment_times_out_and_forwards_nothing() {
    let dgram = big_udp(3000);
    let fr = three(&dgram, 5);
    let cfg = DefragConfig { ipfrag_time: Duration::from_secs(30), ..DefragConfig::default() };
    let mut h = H::new(cfg);
    assert_eq!(h.add(&fr[0], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&fr[1], 0, 1000), FragOutcome::Held);
    h.d.expire(Instant::from_millis(29_999));
    assert_eq!(h.d.stats().queues, 1);
    h.d.expire(Instant::from_secs(30));
    let st = h.d.stats();
    assert_eq!((st.timeout, st.queues, st.mem), (1, 0, 0));
    // The last fragment alone now starts a new queue.
    assert_eq!(h.add(&fr[2], 0, 30_001), FragOutcome::Held);
}

#[test]
fn memory_is_bounded_and_refuses_rather_than_grows() {
    let dgram = big_udp(3000);
    let cfg = DefragConfig { ipfrag_high_thresh: 64 << 10, ..DefragConfig::default() };
    let mut h = H::new(cfg);
    let mut held = 0;
    let mut refused = 0;
    for id in 0..200u16 {
        match h.add(&frag4(&dgram, id, 0, 1480, true), 0, 0) {
            FragOutcome::Held => held += 1,
            FragOutcome::Dropped(FragDrop::MemoryLimit) => refused += 1,
            r => panic!("{r:?}"),
        }
    }
    let st = h.d.stats();
    assert!(st.mem <= 64 << 10, "{st:?}");
    assert_eq!((held + refused, st.memory_limit), (200, refused));
    assert!(held >= 40 && refused > 0, "{held} held, {refused} refused");
}

#[test]
fn max_dist_restarts_a_queue_that_fell_far_behind() {
    let dgram = big_udp(3000);
    let fr = three(&dgram, 1);
    let mut h = H::new(DefragConfig { ipfrag_max_dist: 4, ..DefragConfig::default() });
    assert_eq!(h.add(&fr[0], 0, 0), FragOutcome::Held);
    // Five fragments of other datagrams from the same source.
    for id in 100..105 {
        assert_eq!(h.add(&frag4(&dgram, id, 0, 8, true), 0, 0), FragOutcome::Held);
    }
    assert_eq!(h.add(&fr[1], 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&fr[2], 0, 0), FragOutcome::Held, "the first fragment was dropped with the restart");
    assert_eq!(h.d.stats().reinit, 1);
}

/// IPv6 fragment of `payload` (the bytes after the Fragment header of the
/// whole datagram: UDP header and data) covering `off..end`.
fn frag6(payload: &[u8], id: u32, off: usize, end: usize, more: bool, dst_ll: bool) -> Vec<u8> {
    let data = &payload[off..end];
    let mut h = vec![0x60, 0, 0, 1];
    h.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[44, 64]);
    h.extend_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    if dst_ll {
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        h.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    }
    let fo = (off as u16) | u16::from(more);
    h.extend_from_slice(&[17, 0]);
    h.extend_from_slice(&fo.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(data);
    eth(&h, true)
}

fn udp6_payload(n: usize) -> Vec<u8> {
    let mut u = vec![0x0f, 0xa0, 0, 53];
    u.extend_from_slice(&((8 + n) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend((0..n).map(|i| i as u8));
    u
}

#[test]
fn ipv6_reassembles_without_the_fragment_header() {
    let p = udp6_payload(3000);
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag6(&p, 77, 1448, 3008, false, false), 1, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 77, 0, 1448, true, false), 1, 1), FragOutcome::Complete);
    let d = &h.out.datagram;
    assert_eq!((d[6], u16::from_be_bytes([d[4], d[5]])), (17, 3008), "next header UDP, payload length");
    assert_eq!(&d[40..], &p[..]);
    let ip = parse_ip(d).unwrap();
    assert_eq!((ip.fragment, ip.proto, ip.l4.len()), (Fragment::None, 17, 3008));
}

#[test]
fn ipv6_errors_drop_the_fragment_or_pass_it_on() {
    let p = udp6_payload(3000);
    // An inconsistent last fragment drops only itself.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag6(&p, 1, 1448, 3008, false, false), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 1, 1448, 3000, false, false), 0, 0), FragOutcome::Dropped(FragDrop::BadLength));
    assert_eq!(h.add(&frag6(&p, 1, 0, 1448, true, false), 0, 0), FragOutcome::Complete);
    // Overlap kills the queue (RFC 5722).
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag6(&p, 2, 0, 1448, true, false), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 2, 1440, 3008, false, false), 0, 0), FragOutcome::Dropped(FragDrop::Overlap));
    assert_eq!(h.d.stats().queues, 0);
    // A non-last fragment not a multiple of 8: the queue goes, the fragment passes on.
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag6(&p, 3, 1448, 3008, false, false), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 3, 0, 1444, true, false), 0, 0), FragOutcome::Pass);
    assert_eq!(h.d.stats().queues, 0);
    // A first fragment without the start of the upper-layer header (RFC 7112).
    assert_eq!(h.add(&frag6(&p, 6, 0, 0, true, false), 0, 0), FragOutcome::Pass);
    assert_eq!((h.d.stats().queues, h.d.stats().passed), (0, 2));
}

#[test]
fn ipv6_link_local_fragments_are_kept_apart_by_port() {
    let p = udp6_payload(3000);
    let mut h = H::new(DefragConfig::default());
    assert_eq!(h.add(&frag6(&p, 4, 0, 1448, true, true), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 4, 1448, 3008, false, true), 1, 0), FragOutcome::Held, "other port, other queue");
    assert_eq!(h.add(&frag6(&p, 4, 1448, 3008, false, true), 0, 0), FragOutcome::Complete);
    // Global destinations ignore the port.
    assert_eq!(h.add(&frag6(&p, 5, 0, 1448, true, false), 0, 0), FragOutcome::Held);
    assert_eq!(h.add(&frag6(&p, 5, 1448, 3008, false, false), 1, 0), FragOutcome::Complete);
}

#[test]
fn workers_share_the_queues() {
    let dgram = big_udp(3000);
    let fr = three(&dgram, 8);
    let d = Defrag::new(DefragConfig::default());
    let other = d.clone();
    let mut o = Reassembly::new();
    let add = |d: &Defrag, f: &[u8], o: &mut Reassembly| {
        let ip = parse_ip(&f[14..]).unwrap();
        d.add(f, 14, &ip, Ingress::default(), Instant::ZERO, o)
    };
    assert_eq!(add(&d, &fr[0], &mut o), FragOutcome::Held);
    let t = std::thread::spawn(move || {
        let mut o = Reassembly::new();
        add(&other, &fr[1], &mut o)
    });
    assert_eq!(t.join().unwrap(), FragOutcome::Held);
    assert_eq!(add(&d, &three(&dgram, 8)[2], &mut o), FragOutcome::Complete);
    assert_eq!(o.spans.len(), 3);
}
