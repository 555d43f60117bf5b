//! Checks of the test machinery itself that need no root: every frame of every scenario parses
//! with etherparse and its checksums are right unless the scenario corrupts them on purpose;
//! the pcap writer round-trips; the ctwall config names only known knobs.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::IpAddr;
use tests::scenario::KNOWN_KNOBS;
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

#[test]
fn every_scenario_frame_parses_and_checksums_verify() {
    let mut checked = 0;
    for (name, ctor) in tests::scenarios::all() {
        let sc = ctor();
        assert_eq!(sc.name, name, "scenario registered under another name");
        for (k, _) in &sc.sysctls {
            assert!(KNOWN_KNOBS.contains(k), "{name}: unknown knob {k}");
        }
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
        let parsed = config::Config::parse(&cfg, std::path::Path::new(&format!("{name}.ron")))
            .unwrap_or_else(|e| panic!("{name}: ctwall rejects the scenario config: {e}\n{cfg}"));
        assert_eq!(parsed.helpers.0.is_empty(), !sc.helpers, "{name}: helpers");
    }
    assert!(checked > 500, "only {checked} IP frames checked");
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
