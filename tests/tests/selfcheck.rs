//! Checks of the test machinery itself that need no root: every frame of every scenario parses
//! with etherparse and its checksums are right unless the scenario corrupts them on purpose;
//! fragments carry the offset, MF flag and ID they were built with, and the datagrams
//! reassembled from them are the datagrams built whole, with correct L4 checksums; the pcap writer
//! round-trips; the ctwall config names only known knobs.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::collections::HashMap;
use std::net::IpAddr;
use tests::scenario::{DEFRAG_KNOBS, KNOWN_KNOBS};
use tests::trace::{self, Checksum, Csum, FrameSpec, Pkt, L4};

fn addr_octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// Verifies the L4 checksum of `l4` (the transport bytes) for a packet `src`→`dst`.
fn l4_checksum_ok(src: IpAddr, dst: IpAddr, proto: u8, l4: &[u8]) -> bool {
    let mut c = Checksum::new();
    if !(proto == 1 && src.is_ipv4()) {
        c.add_pseudo(src, dst, proto, l4.len() as u32);
    }
    c.add(l4);
    c.finish() == 0
}

/// Frames a scenario malforms on purpose at layer 4 (truncated, raw TCP/UDP/ICMP bytes, a UDP
/// length that disagrees with the data).
fn deliberately_malformed(p: &Pkt) -> bool {
    p.cut.is_some()
        || matches!(p.l4, L4::Raw { proto: 1 | 6 | 17 | 58, .. })
        || matches!(&p.l4, L4::Udp { len: Some(l), payload, .. } if *l as usize != payload.len() + 8)
}

/// A fragment's (ID, byte offset, more-fragments flag, data), read from the raw IP packet
/// (etherparse 0.16 misreads the IPv6 fragment offset, so neither it nor its reassembly is
/// used for fragments).
fn raw_fragment(ip: &[u8]) -> (u32, usize, bool, Vec<u8>) {
    if ip[0] >> 4 == 4 {
        let hlen = 4 * usize::from(ip[0] & 0x0f);
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let fl = u16::from_be_bytes([ip[6], ip[7]]);
        let id = u32::from(u16::from_be_bytes([ip[4], ip[5]]));
        return (id, usize::from(fl & 0x1fff) * 8, fl & 0x2000 != 0, ip[hlen..total].to_vec());
    }
    let end = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let (mut nh, mut off) = (ip[6], 40);
    while matches!(nh, 0 | 43 | 60) {
        nh = ip[off];
        off += (usize::from(ip[off + 1]) + 1) * 8;
    }
    assert_eq!(nh, 44, "no Fragment header after the unfragmentable headers");
    let fo = u16::from_be_bytes([ip[off + 2], ip[off + 3]]);
    let id = u32::from_be_bytes([ip[off + 4], ip[off + 5], ip[off + 6], ip[off + 7]]);
    (id, usize::from(fo >> 3) * 8, fo & 1 != 0, ip[off + 8..end].to_vec())
}

/// The fragments seen so far of each datagram, by offset.
type Queues = HashMap<(IpAddr, IpAddr, u32), std::collections::BTreeMap<usize, (bool, Vec<u8>)>>;

/// Checks a fragment's headers against its [`trace::Piece`] and queues its data; returns the
/// datagram's fragmentable bytes once the queued fragments chain from offset 0 to one
/// without the more-fragments flag (a simple reassembly of the test's own).
fn check_piece(name: &str, index: u32, p: &Pkt, ip: &[u8], queues: &mut Queues) -> Option<Vec<u8>> {
    let pc = p.piece.expect("a fragment");
    let (id, offset, more, data) = raw_fragment(ip);
    assert_eq!(
        (id, offset, more, data.len()),
        (pc.id, pc.offset as usize, pc.more, pc.len as usize),
        "{name}: frame {index} fragment"
    );
    let q = queues.entry((p.src, p.dst, pc.id)).or_default();
    q.insert(offset, (more, data));
    let mut whole = Vec::new();
    while let Some((more, data)) = q.get(&whole.len()) {
        whole.extend_from_slice(data);
        if !more {
            q.clear();
            return Some(whole);
        }
    }
    None
}

#[test]
fn every_scenario_frame_parses_and_checksums_verify() {
    let mut checked = 0;
    let mut reassembled = 0;
    for (name, ctor) in tests::scenarios::all() {
        let sc = ctor();
        assert_eq!(sc.name, name, "scenario registered under another name");
        for (k, _) in &sc.sysctls {
            assert!(KNOWN_KNOBS.contains(k), "{name}: unknown knob {k}");
        }
        for (k, _) in &sc.defrag {
            assert!(DEFRAG_KNOBS.iter().any(|(d, _)| d == k), "{name}: unknown defrag knob {k}");
        }
        for f in &sc.frames {
            if let FrameSpec::Ip(Pkt { src: IpAddr::V4(_), piece: Some(pc), .. }) = &f.spec {
                // The ID in a reassembled datagram's log line must name no unfragmented frame.
                assert!(pc.id as usize > sc.frames.len(), "{name}: IPv4 fragment ID {} is a frame number", pc.id);
            }
        }
        for n in &sc.held {
            assert!(matches!(&sc.frames[n - 1].spec, FrameSpec::Ip(p) if p.piece.is_some()), "{name}: held frame {n}");
        }
        let mut queues = Queues::new();
        let mut last = 0;
        for (i, f) in sc.frames.iter().enumerate() {
            assert!(f.t_us >= last, "{name}: frame {} goes back in time", i + 1);
            last = f.t_us;
            let index = i as u32 + 1;
            let bytes = f.spec.render(index, false);
            assert!(bytes.len() >= 60, "{name}: frame {index} shorter than the Ethernet minimum");
            let FrameSpec::Ip(p) = &f.spec else { continue };
            let (src_mac, dst_mac) = f.spec.side().macs();
            assert_eq!(&bytes[0..6], &dst_mac, "{name}: frame {index} destination MAC");
            assert_eq!(&bytes[6..12], &src_mac, "{name}: frame {index} source MAC");
            // Fragments: checked by hand (etherparse 0.16 misreads IPv6 fragment offsets).
            if p.piece.is_some() {
                let off = if p.vlan.is_some() { 18 } else { 14 };
                let hdr_ok = if p.src.is_ipv4() {
                    etherparse::Ipv4HeaderSlice::from_slice(&bytes[off..]).is_ok()
                } else {
                    etherparse::Ipv6HeaderSlice::from_slice(&bytes[off..]).is_ok()
                };
                assert!(hdr_ok, "{name}: frame {index} ({}): bad IP header", f.note);
                if let Some(data) = check_piece(name, index, p, &bytes[off..], &mut queues) {
                    // The whole datagram as built, minus its IP header: the fragmentable part
                    // (these scenarios put only Destination Options before L4 in it).
                    let whole = Pkt { piece: None, ..p.clone() }.ip_bytes(index);
                    let (mut proto, mut at) =
                        if p.src.is_ipv4() { (whole[9], 4 * usize::from(whole[0] & 0x0f)) } else { (whole[6], 40) };
                    assert_eq!(data, whole[at..], "{name}: frame {index}: reassembled datagram differs");
                    while p.src.is_ipv6() && proto == 60 {
                        proto = whole[at];
                        at += (usize::from(whole[at + 1]) + 1) * 8;
                    }
                    let l4 = &whole[at..];
                    assert!(l4_checksum_ok(p.src, p.dst, proto, l4), "{name}: frame {index}: reassembled L4 checksum");
                    reassembled += 1;
                }
                checked += 1;
                continue;
            }
            let sliced = match SlicedPacket::from_ethernet(&bytes) {
                Ok(s) => s,
                Err(e) if deliberately_malformed(p) => {
                    // Only the IP header must be sound.
                    let off = if p.vlan.is_some() { 18 } else { 14 };
                    let ok = if p.src.is_ipv4() {
                        etherparse::Ipv4HeaderSlice::from_slice(&bytes[off..]).is_ok()
                    } else {
                        etherparse::Ipv6HeaderSlice::from_slice(&bytes[off..]).is_ok()
                    };
                    assert!(ok, "{name}: frame {index} ({}): bad IP header ({e:?})", f.note);
                    checked += 1;
                    continue;
                }
                Err(e) => panic!("{name}: frame {index} ({}) does not parse: {e:?}", f.note),
            };
            if p.vlan.is_some() {
                assert!(sliced.vlan.is_some(), "{name}: frame {index} lost its VLAN tag");
                let stripped = f.spec.render(index, true);
                let s2 = SlicedPacket::from_ethernet(&stripped).expect("stripped frame parses");
                assert!(s2.vlan.is_none());
            }
            // IP layer: addresses, frame index in IP ID / flow label.
            match &sliced.net {
                Some(NetSlice::Ipv4(ip)) => {
                    let h = ip.header();
                    assert_eq!(IpAddr::V4(h.source_addr()), p.src);
                    assert_eq!(IpAddr::V4(h.destination_addr()), p.dst);
                    assert_eq!(h.identification(), p.ip_id.unwrap_or(index as u16), "{name}: frame {index} IP ID");
                    let hdr = h.to_header();
                    let good = hdr.calc_header_checksum() == hdr.header_checksum;
                    assert_eq!(good, p.ip_csum == Csum::Correct, "{name}: frame {index} IPv4 header checksum");
                }
                Some(NetSlice::Ipv6(ip)) => {
                    let h = ip.header();
                    assert_eq!(IpAddr::V6(h.source_addr()), p.src);
                    assert_eq!(IpAddr::V6(h.destination_addr()), p.dst);
                    assert_eq!(h.flow_label().value(), p.flow.unwrap_or(index), "{name}: frame {index} flow label");
                }
                other => panic!("{name}: frame {index}: no IP layer: {other:?}"),
            }
            // L4 checksum over the bytes that follow the IP headers.
            let (proto, l4_bytes): (u8, Vec<u8>) = match &sliced.net {
                Some(NetSlice::Ipv4(ip)) => (ip.payload().ip_number.0, ip.payload().payload.to_vec()),
                Some(NetSlice::Ipv6(ip)) => (ip.payload().ip_number.0, ip.payload().payload.to_vec()),
                _ => unreachable!(),
            };
            let has_csum = matches!(p.l4, L4::Tcp { .. } | L4::Udp { .. } | L4::Icmp { .. });
            let full = p.cut.is_none()
                && !matches!(&p.l4, L4::Udp { len: Some(l), payload, .. } if *l as usize != payload.len() + 8);
            if has_csum && full {
                let ok = l4_checksum_ok(p.src, p.dst, proto, &l4_bytes);
                let udp_zero = matches!(p.l4, L4::Udp { .. }) && l4_bytes[6..8] == [0, 0];
                match p.l4_csum {
                    Csum::Correct => assert!(ok, "{name}: frame {index} ({}): bad L4 checksum", f.note),
                    Csum::Corrupt => assert!(!ok, "{name}: frame {index}: checksum should be corrupt"),
                    Csum::Value(0) => assert!(udp_zero, "{name}: frame {index}: checksum should be 0"),
                    Csum::Value(_) => {}
                }
                // etherparse agrees on ports for TCP/UDP.
                match (&p.l4, &sliced.transport) {
                    (L4::Tcp { sport, dport, seq, .. }, Some(TransportSlice::Tcp(t))) => {
                        assert_eq!(
                            (t.source_port(), t.destination_port(), t.sequence_number()),
                            (*sport, *dport, *seq)
                        );
                    }
                    (L4::Udp { sport, dport, .. }, Some(TransportSlice::Udp(u))) => {
                        assert_eq!((u.source_port(), u.destination_port()), (*sport, *dport));
                    }
                    _ => {}
                }
            }
            checked += 1;
        }
        // The rendered pcap round-trips.
        let mut buf = Vec::new();
        trace::write_pcap(&mut buf, &sc.rendered(false)).unwrap();
        assert_eq!(trace::read_pcap(&buf).unwrap(), sc.rendered(false), "{name}: pcap round trip");
        assert_eq!(sc.sides().len(), sc.frames.len());
        let cfg = sc.ctwall_config();
        let path = std::path::PathBuf::from(format!("{name}.ron"));
        let parsed = config::Config::parse(&cfg, &path)
            .unwrap_or_else(|e| panic!("{name}: ctwall rejects the scenario config: {e}\n{cfg}"));
        for (k, v) in &sc.defrag {
            let d = &parsed.defrag;
            let got = match *k {
                "ipfrag_time" => i64::from(d.ipfrag_time.0),
                "ipfrag_high_thresh" => i64::from(d.ipfrag_high_thresh.0),
                "ipfrag_low_thresh" => i64::from(d.ipfrag_low_thresh.0),
                "ipfrag_max_dist" => i64::from(d.ipfrag_max_dist),
                "frag6_timeout" => i64::from(d.frag6_timeout.0),
                "frag6_high_thresh" => i64::from(d.frag6_high_thresh.0),
                "frag6_low_thresh" => i64::from(d.frag6_low_thresh.0),
                other => panic!("{name}: defrag knob {other} has no ctwall setting"),
            };
            assert_eq!(got, *v, "{name}: defrag {k} in the ctwall config");
        }
        assert_eq!(parsed.helpers.0.is_empty(), !sc.helpers, "{name}: helpers");
    }
    assert!(checked > 500, "only {checked} IP frames checked");
    assert!(reassembled >= 30, "only {reassembled} fragmented datagrams reassembled");
}

#[test]
fn at_least_45_scenarios_with_unique_names() {
    let all = tests::scenarios::all();
    let names: std::collections::BTreeSet<_> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), all.len(), "duplicate scenario names");
    assert!(all.len() >= 45, "only {} scenarios", all.len());
}

#[test]
fn known_packets_have_known_bytes() {
    // A SYN C:40000 -> S:80 seq 1000 as frame 1: checked against values computed by hand and
    // by etherparse's own serializer.
    let p = Pkt::tcp(trace::C, 40000, trace::S, 80, trace::flags::SYN, 1000, 0);
    let ip = p.ip_bytes(1);
    assert_eq!(&ip[..4], &[0x45, 0, 0, 40]);
    assert_eq!(&ip[4..6], &[0, 1], "IP ID = frame index");
    let eth = etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [10, 0, 2, 2], 64).tcp(40000, 80, 1000, 64000).syn();
    let mut expected = Vec::new();
    eth.write(&mut expected, &[]).unwrap();
    // etherparse uses IP ID 0 (and maybe DF): patch ID 1 / no flags, fix the header checksum.
    expected[4..6].copy_from_slice(&[0, 1]);
    expected[6..8].copy_from_slice(&[0, 0]);
    expected[10..12].copy_from_slice(&[0, 0]);
    let mut c = Checksum::new();
    c.add(&expected[..20]);
    expected[10..12].copy_from_slice(&c.finish().to_be_bytes());
    assert_eq!(ip, expected);

    // ICMPv6 echo: checksum verified against etherparse's builder.
    let p = Pkt::icmp_query(trace::C6, trace::S6, 128, 7, 1, b"abcd");
    let ip = p.ip_bytes(0);
    let b = etherparse::PacketBuilder::ipv6(trace::C6.octets(), trace::S6.octets(), 64).icmpv6_echo_request(7, 1);
    let mut expected = Vec::new();
    b.write(&mut expected, b"abcd").unwrap();
    assert_eq!(ip[40..], expected[40..]);
    assert_eq!(addr_octets(p.src), trace::C6.octets().to_vec());

    // Side selection: towards the C side from S, everything else from C.
    assert_eq!(trace::side_for_dst(trace::C.into()), trace::Side::S);
    assert_eq!(trace::side_for_dst(trace::X.into()), trace::Side::S);
    assert_eq!(trace::side_for_dst(trace::S.into()), trace::Side::C);
    assert_eq!(trace::side_for_dst(trace::R.into()), trace::Side::C);
    assert_eq!(trace::side_for_dst(trace::X6.into()), trace::Side::S);
    assert_eq!(trace::side_for_dst(trace::S6.into()), trace::Side::C);
}

#[test]
fn fragments_split_the_datagram_and_its_headers() {
    use tests::trace::{Ext6, ROUTER_ALERT_MLD};
    // IPv4: same ID, MF on all but the last, offsets in 8-byte units, one header checksum each.
    let d = Pkt::udp(trace::C, 1, trace::S, 2, &[7; 3000]);
    let f = d.fragments(0x4001, 1480);
    assert_eq!(f.len(), 3);
    let whole = d.ip_bytes(1);
    for (k, (p, (off, more))) in f.iter().zip([(0, true), (1480, true), (2960, false)]).enumerate() {
        let ip = p.ip_bytes(k as u32 + 1);
        assert_eq!(
            raw_fragment(&ip),
            (0x4001, off, more, whole[20 + off..(20 + off + 1480).min(whole.len())].to_vec())
        );
        let mut c = Checksum::new();
        c.add(&ip[..20]);
        assert_eq!(c.finish(), 0, "fragment {k}: IPv4 header checksum");
    }
    // IPv6: Hop-by-Hop stays in front of the Fragment header, Destination Options go after it
    // (RFC 8200 §4.5); the flow label is the frame index.
    let d = Pkt::udp(trace::C6, 1, trace::S6, 2, &[7; 100])
        .ext(Ext6::HopByHop(ROUTER_ALERT_MLD.to_vec()))
        .ext(Ext6::DestOpts(vec![1, 4, 0, 0, 0, 0]));
    let p = d.piece(77, 8, 16, true);
    let ip = p.ip_bytes(5);
    assert_eq!(u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]) & 0xfffff, 5);
    assert_eq!((ip[6], ip[40], ip[48]), (0, 44, 60), "IPv6 -> HBH -> Fragment -> DestOpts");
    assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 8 + 8 + 16);
    let whole = d.ip_bytes(5);
    assert_eq!(raw_fragment(&ip), (77, 8, true, whole[48 + 8..48 + 24].to_vec()));
    // Bytes past the datagram's end are zeros.
    let past = d.piece(77, d.frag_len().next_multiple_of(8), 8, false).ip_bytes(6);
    assert_eq!(raw_fragment(&past).3, vec![0; 8]);
}

#[test]
fn defrag_knobs_reach_the_ctwall_config() {
    let sc = tests::scenarios::by_name("frag_timeout").expect("scenario");
    assert!(sc.ctwall_config().contains("    defrag: (ipfrag_time: 2, frag6_timeout: 2),\n"), "{}", sc.ctwall_config());
    let plain = tests::scenarios::by_name("udp_request_reply").expect("scenario");
    assert!(!plain.ctwall_config().contains("defrag"));
}
