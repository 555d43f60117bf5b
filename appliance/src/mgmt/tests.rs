//! The management plane driven in memory: a second smoltcp interface plays
//! the operator's host, and frames are moved between the two by hand.

use super::device::QueueDevice;
use super::*;
use crate::pipeline::PipelineStats;
use ct_core::table::{Conntrack, Template};
use ct_core::wire::parse_ip;
use ct_core::CtConfig;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    Ipv4Packet, Ipv4Repr,
};

const SERVER_MAC: [u8; 6] = [0x02, 0xc7, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const TOKEN: &str = "0123456789abcdef-token";

fn mgmt_config(extra: &str) -> config::Mgmt {
    let text = format!("(mgmt: (addresses: [\"10.0.0.250/24\", \"fd00::fa/64\"], token: \"{TOKEN}\"{extra}))");
    config::Config::parse(&text, std::path::Path::new("t.ron")).unwrap().mgmt.unwrap()
}

/// The appliance side: a real table with events on.
struct App {
    ct: Conntrack,
    pipeline: PipelineStats,
    reloads: u32,
}

impl App {
    fn new() -> App {
        let mut ct = Conntrack::new(CtConfig { checksum: false, ..CtConfig::default() });
        ct.enable_events(64);
        App { ct, pipeline: PipelineStats::default(), reloads: 0 }
    }

    fn snapshot<'a>(
        &'a self,
        table: &'a ct_core::table::Stats,
        invalid: &'a ct_core::invalid::InvalidCounters,
        now: Instant,
    ) -> render::Snapshot<'a> {
        const RULES: &[render::RuleCounter<'static>] = &[render::RuleCounter {
            chain: "inside_to_outside",
            rule: "say \"hi\"\\",
            packets: 7,
            bytes: 700,
            action: "drop",
        }];
        const WORKERS: &[render::WorkerCounters] = &[render::WorkerCounters {
            worker: 1,
            queue: 1,
            cpu: Some(1),
            frames: 5,
            rx: [2, 3],
            mgmt_handoff: 1,
            mgmt_handoff_dropped: 0,
            io_errors: 4,
        }];
        let defrag = ct_core::defrag::DefragStats { held: 3, reassembled: 1, overlap: 2, ..Default::default() };
        render::Snapshot {
            ct: &self.ct,
            table,
            pipeline: &self.pipeline,
            invalid,
            rules: RULES,
            workers: WORKERS,
            defrag,
            now,
        }
    }

    /// A UDP datagram through the table, confirmed.
    fn udp(&mut self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, now: Instant) {
        let mut p = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        let mut sum: u32 = p.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        let ip = parse_ip(&p).unwrap();
        let o = self.ct.track(&ip, &Template::default(), now);
        self.ct.confirm(&o, now);
    }
}

impl MgmtApp for App {
    fn conntrack_proc(&self, now: Instant, out: &mut String) {
        render::conntrack_proc(&self.ct, now, out);
    }
    fn conntrack_list(&self, now: Instant, out: &mut String) {
        render::conntrack_list(&self.ct, now, out);
    }
    fn conntrack_json(&self, now: Instant, out: &mut String) {
        render::conntrack_json(&self.ct, now, out);
    }
    fn expect_proc(&self, now: Instant, out: &mut String) {
        render::expect_proc(&self.ct, now, out);
    }
    fn stats_json(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        let (table, invalid) = (self.ct.stats(), self.ct.invalid_counters());
        render::stats_json(&self.snapshot(table, invalid, now), mgmt, out);
    }
    fn metrics(&self, now: Instant, mgmt: &MgmtStats, out: &mut String) {
        let (table, invalid) = (self.ct.stats(), self.ct.invalid_counters());
        render::metrics(&self.snapshot(table, invalid, now), mgmt, out);
    }
    fn reload(&mut self) -> Result<String, String> {
        self.reloads += 1;
        Ok("reloaded".into())
    }
    fn drain_events(&mut self, out: &mut Vec<CtEvent>) {
        self.ct.drain_events(out);
    }
}

/// The operator's host: its own smoltcp interface.
struct Client {
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
}

impl Client {
    fn new(addrs: &[(IpAddress, u8)]) -> Client {
        let mut dev = QueueDevice::new(QUEUE);
        let mut ic = IfaceConfig::new(EthernetAddress(CLIENT_MAC).into());
        ic.random_seed = 7;
        let mut iface = Interface::new(ic, &mut dev, smol_time(Instant::ZERO));
        iface.update_ip_addrs(|a| {
            for &(addr, len) in addrs {
                a.push(IpCidr::new(addr, len)).unwrap();
            }
        });
        Client { iface, dev, sockets: SocketSet::new(Vec::new()) }
    }
}

/// The two stacks on one virtual link, on a virtual clock.
struct Net {
    mgmt: Mgmt,
    app: App,
    client: Client,
    now: Instant,
    /// Frames the server sent, for the tests that inspect them.
    seen: Vec<Vec<u8>>,
}

const V4: IpAddress = IpAddress::Ipv4(Ipv4Addr::new(10, 0, 0, 250));
const V6: IpAddress = IpAddress::Ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfa));

impl Net {
    fn new(cfg: &config::Mgmt, client: &[(IpAddress, u8)]) -> Net {
        Net {
            mgmt: Mgmt::new(cfg, Instant::ZERO),
            app: App::new(),
            client: Client::new(client),
            now: Instant::ZERO,
            seen: Vec::new(),
        }
    }

    fn default_pair() -> Net {
        Net::new(
            &mgmt_config(""),
            &[(IpAddress::v4(10, 0, 0, 1), 24), (IpAddress::Ipv6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), 64)],
        )
    }

    /// Hand a frame to the server as the bridge would.
    fn deliver(&mut self, frame: &[u8]) {
        if self.mgmt.classify(frame) != Disposition::Ignore {
            self.mgmt.receive(frame);
        }
    }

    /// Advance 1 ms: both stacks poll, frames cross the link.
    fn step(&mut self) {
        self.now = self.now + Duration::from_millis(1);
        let t = smol_time(self.now);
        self.client.iface.poll(t, &mut self.client.dev, &mut self.client.sockets);
        let frames: Vec<Vec<u8>> = self.client.dev.drain_tx().collect();
        for f in frames {
            self.deliver(&f);
        }
        let (client, seen) = (&mut self.client.dev, &mut self.seen);
        self.mgmt.poll(self.now, &mut self.app, &mut |f| {
            seen.push(f.to_vec());
            assert!(client.push_rx(f), "client queue overflow");
        });
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    /// Open a connection to the server and send `request`.
    fn open(&mut self, server: IpAddress, port: u16, local_port: u16, request: &[u8]) -> SocketHandle {
        let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 1 << 20]), tcp::SocketBuffer::new(vec![0; 16384]));
        s.connect(self.client.iface.context(), (server, port), local_port).unwrap();
        let h = self.client.sockets.add(s);
        // Neighbour discovery holds the first segment back for up to a second.
        for _ in 0..2000 {
            self.step();
            if self.client.sockets.get::<tcp::Socket>(h).may_send() {
                break;
            }
        }
        let s = self.client.sockets.get_mut::<tcp::Socket>(h);
        assert!(s.may_send(), "connection to {server}:{port} not established: {}", s.state());
        assert_eq!(s.send_slice(request).unwrap(), request.len());
        h
    }

    /// Take what the client socket has received so far.
    fn read(&mut self, h: SocketHandle) -> Vec<u8> {
        let s = self.client.sockets.get_mut::<tcp::Socket>(h);
        let mut out = Vec::new();
        while s.can_recv() {
            s.recv(|d| {
                out.extend_from_slice(d);
                (d.len(), ())
            })
            .unwrap();
        }
        out
    }

    /// One request/response exchange, as curl does it: read until the
    /// server's FIN or a full Content-Length, then close.
    fn request(&mut self, server: IpAddress, local_port: u16, request: &[u8]) -> String {
        let h = self.open(server, 80, local_port, request);
        let mut got = Vec::new();
        for _ in 0..3000 {
            self.step();
            got.extend(self.read(h));
            if complete(&got) || !self.client.sockets.get::<tcp::Socket>(h).may_recv() {
                break;
            }
        }
        self.client.sockets.get_mut::<tcp::Socket>(h).close();
        self.run(50);
        String::from_utf8(got).unwrap()
    }

    fn get(&mut self, path: &str, local_port: u16) -> String {
        self.request(V4, local_port, format!("GET {path} HTTP/1.1\r\nHost: ctwall\r\n\r\n").as_bytes())
    }
}

/// A whole response by its Content-Length.
fn complete(r: &[u8]) -> bool {
    let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&r[..end]).to_ascii_lowercase();
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| r.len() >= end + 4 + n)
}

fn body(r: &str) -> &str {
    r.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn eth(dst: [u8; 6], proto: EthernetProtocol, payload_len: usize) -> (Vec<u8>, EthernetRepr) {
    let repr = EthernetRepr { src_addr: EthernetAddress(CLIENT_MAC), dst_addr: EthernetAddress(dst), ethertype: proto };
    (vec![0; repr.buffer_len() + payload_len], repr)
}

fn arp_request(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(CLIENT_MAC),
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let (mut buf, e) = eth([0xff; 6], EthernetProtocol::Arp, arp.buffer_len());
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    e.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    buf
}

fn ping(src: Ipv4Addr, dst: Ipv4Addr, dst_mac: [u8; 6]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"ctwall ping" };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: smoltcp::wire::IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let (mut buf, e) = eth(dst_mac, EthernetProtocol::Ipv4, ip.buffer_len() + icmp.buffer_len());
    let caps = ChecksumCapabilities::default();
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    e.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
    buf
}

#[test]
fn classify_takes_ours_copies_foreign_arp_ignores_transit() {
    let m = Mgmt::new(&mgmt_config(""), Instant::ZERO);
    assert_eq!(m.port(), PortId::Inside);
    let ours = Ipv4Addr::new(10, 0, 0, 250);
    let other = Ipv4Addr::new(10, 0, 0, 7);
    let me = Ipv4Addr::new(10, 0, 0, 1);
    assert_eq!(m.classify(&arp_request(me, ours)), Disposition::Take);
    assert_eq!(m.classify(&arp_request(me, other)), Disposition::Copy);
    assert_eq!(m.classify(&ping(me, ours, SERVER_MAC)), Disposition::Take);
    // Transit unicast between two other hosts, and to a host at our address but another MAC.
    assert_eq!(m.classify(&ping(me, other, [0x02, 0, 0, 0, 0, 9])), Disposition::Ignore);
    assert_eq!(m.classify(&ping(me, ours, [0x02, 0, 0, 0, 0, 9])), Disposition::Ignore);
    // Hostile input: short, odd broadcast, IPv4 multicast.
    for f in [&[][..], &[0xff; 5], &[0xff; 13], &[0xff; 20]] {
        assert_eq!(m.classify(f), Disposition::Ignore, "{f:?}");
    }
    let mut mc = ping(me, Ipv4Addr::new(224, 0, 0, 1), [0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(m.classify(&mc), Disposition::Ignore);
    mc.truncate(30);
    assert_eq!(m.classify(&mc), Disposition::Ignore);
    let mut arp = arp_request(me, ours);
    arp.truncate(40);
    assert_eq!(m.classify(&arp), Disposition::Ignore, "ARP cut before the target");
    // Another thread's copy of the classifier decides the same.
    let c = std::thread::spawn({
        let c = m.classifier();
        move || (c.port(), c.classify(&arp_request(me, ours)), c.classify(&ping(me, other, [2, 0, 0, 0, 0, 9])))
    });
    assert_eq!(c.join().unwrap(), (PortId::Inside, Disposition::Take, Disposition::Ignore));
}

#[test]
fn answers_arp_and_ping() {
    let mut net = Net::default_pair();
    let me = Ipv4Addr::new(10, 0, 0, 1);
    let ours = Ipv4Addr::new(10, 0, 0, 250);
    net.deliver(&arp_request(me, ours));
    net.step();
    let reply = net.seen.iter().find_map(|f| {
        let e = EthernetFrame::new_checked(&f[..]).ok()?;
        (e.ethertype() == EthernetProtocol::Arp)
            .then(|| ArpRepr::parse(&ArpPacket::new_checked(e.payload()).ok()?).ok())?
    });
    match reply {
        Some(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) => {
            assert_eq!(operation, ArpOperation::Reply);
            assert_eq!(source_hardware_addr, EthernetAddress(SERVER_MAC));
            assert_eq!((source_protocol_addr, target_protocol_addr), (ours, me));
        }
        other => panic!("no ARP reply: {other:?} in {:?}", net.seen),
    }
    net.seen.clear();
    net.deliver(&ping(me, ours, SERVER_MAC));
    net.step();
    let echo = net.seen.iter().find_map(|f| {
        let e = EthernetFrame::new_checked(&f[..]).ok()?;
        let ip = Ipv4Packet::new_checked(e.payload()).ok()?;
        let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
        let r = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).ok()?;
        matches!(r, Icmpv4Repr::EchoReply { ident: 0x1234, seq_no: 1, data: b"ctwall ping" })
            .then(|| (ip.src_addr(), ip.dst_addr(), e.dst_addr()))
    });
    assert_eq!(echo, Some((ours, me, EthernetAddress(CLIENT_MAC))), "{:?}", net.seen);
    assert!(net.mgmt.stats().frames_in >= 2 && net.mgmt.stats().frames_out >= 2);
}

#[test]
fn conntrack_listing_over_http_v4_and_v6() {
    let mut net = Net::default_pair();
    net.app.udp([10, 0, 1, 2], [10, 0, 2, 2], 5353, 53, Instant::ZERO);
    let r = net.get("/conntrack", 40001);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Content-Type: text/plain"), "{r}");
    let lines: Vec<&str> = body(&r).lines().collect();
    assert_eq!(lines.len(), 1, "{r}");
    assert!(
        lines[0].starts_with("ipv4     2 udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 [UNREPLIED]"),
        "{}",
        lines[0]
    );
    // Over IPv6 (neighbour discovery first), as JSON.
    let r = net.request(V6, 40002, b"GET /conntrack?format=json HTTP/1.1\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    assert_eq!(v[0]["orig"]["sport"], 5353);
    let line = v[0]["line"].as_str().unwrap();
    assert!(line.starts_with("ipv4     2 udp      17 ") && line.contains("dport=53 [UNREPLIED]"), "{line}");
    // The listening sockets come back: more requests than sockets.
    for i in 0..(SOCKETS as u16 + 2) {
        let r = net.get("/expect", 41000 + i);
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && body(&r).is_empty(), "{r}");
    }
    assert_eq!(net.mgmt.stats().http_requests, SOCKETS as u64 + 4);
}

#[test]
fn errors_404_405_400_431() {
    let mut net = Net::default_pair();
    assert!(net.get("/nothing", 40010).starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(net.get("/reload", 40011).starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    assert!(net.request(V4, 40012, b"BREW /pot HTCPCP/1.0\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
    let mut big = b"GET /stats HTTP/1.1\r\nX: ".to_vec();
    big.resize(http::MAX_REQUEST + 100, b'a');
    let r = net.request(V4, 40013, &big);
    assert!(r.starts_with("HTTP/1.1 431 "), "{r}");
    // A request that never completes is dropped after the timeout.
    let h = net.open(V4, 80, 40014, b"GET /stats HTTP/1.1\r\n");
    net.run(REQUEST_TIMEOUT.as_millis() as u64 + 500);
    let s = net.client.sockets.get::<tcp::Socket>(h);
    assert!(!s.is_active(), "{}", s.state());
}

/// A minimal checker of the Prometheus text format (0.0.4): every sample's
/// family is declared once with HELP and TYPE before its samples, names and
/// labels are well formed, counters end in `_total`, values are numbers, no
/// series repeats.
fn check_prometheus(text: &str) -> usize {
    use std::collections::{HashMap, HashSet};
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut helps: HashSet<&str> = HashSet::new();
    let mut series: HashSet<&str> = HashSet::new();
    let mut samples = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(name_ok(name) && !help.is_empty(), "{line}");
            assert!(helps.insert(name), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind), "{line}");
            assert!(helps.contains(name), "TYPE before HELP: {line}");
            assert!(types.insert(name, kind).is_none(), "TYPE twice: {line}");
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "stray line {line:?}");
            let (series_id, value) = line.rsplit_once(' ').expect("sample has a value");
            value.parse::<f64>().unwrap_or_else(|_| panic!("bad value: {line}"));
            let name = match series_id.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').expect("labels closed");
                    // name="value" pairs, values with \\ \" \n escapes only.
                    let mut rest = labels;
                    while !rest.is_empty() {
                        let (k, v) = rest.split_once("=\"").expect("label=\"");
                        assert!(name_ok(k), "label name {k:?} in {line}");
                        let mut chars = v.char_indices();
                        let end = loop {
                            match chars.next().expect("label value closed") {
                                (_, '\\') => assert!(matches!(chars.next(), Some((_, '\\' | '"' | 'n'))), "{line}"),
                                (i, '"') => break i,
                                _ => {}
                            }
                        };
                        rest = v[end + 1..].strip_prefix(',').unwrap_or(&v[end + 1..]);
                    }
                    name
                }
                None => series_id,
            };
            assert!(name_ok(name) && name.starts_with("ctwall_"), "{line}");
            let kind = types.get(name).unwrap_or_else(|| panic!("sample before TYPE: {line}"));
            assert!(*kind != "counter" || name.ends_with("_total"), "{line}");
            assert!(series.insert(series_id), "repeated series: {line}");
            samples += 1;
        }
    }
    samples
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let mut net = Net::default_pair();
    net.app.udp([10, 0, 1, 2], [10, 0, 2, 2], 5353, 53, Instant::ZERO);
    let r = net.get("/metrics", 40020);
    assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
    let text = body(&r);
    assert!(check_prometheus(text) > 50);
    assert!(text.contains("\nctwall_conntrack_entries 1\n"), "{text}");
    assert!(text.contains("\nctwall_invalid_total{reason=\"tcp_bad_flags\"} 0\n"), "{text}");
    assert!(
        text.contains("ctwall_rule_packets_total{chain=\"inside_to_outside\",rule=\"say \\\"hi\\\"\\\\\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("ctwall_rule_bytes_total{chain=\"inside_to_outside\",rule=\"say \\\"hi\\\"\\\\\"} 700\n"),
        "{text}"
    );
    assert!(text.contains("\nctwall_mgmt_http_requests_total 1\n"), "{text}");
    assert!(text.contains("\nctwall_worker_frames_total{worker=\"1\",queue=\"1\"} 5\n"), "{text}");
    assert!(text.contains("\nctwall_worker_rx_frames_total{worker=\"1\",queue=\"1\",port=\"outside\"} 3\n"), "{text}");
    assert!(text.contains("\nctwall_worker_io_errors_total{worker=\"1\",queue=\"1\"} 4\n"), "{text}");
    assert!(text.contains("\nctwall_defrag_held_total 3\n"), "{text}");
    assert!(text.contains("\nctwall_defrag_drops_total{reason=\"overlap\"} 2\n"), "{text}");
    // The checker itself refuses what it should.
    for bad in [
        "ctwall_x 1\n",
        "# HELP ctwall_x h\n# TYPE ctwall_x counter\nctwall_x 1\n",
        "# HELP ctwall_x_total h\n# TYPE ctwall_x_total counter\nctwall_x_total one\n",
        "# HELP ctwall_x_total h\n# TYPE ctwall_x_total counter\nctwall_x_total{a=\"b} 1\n",
        "# HELP ctwall_x_total h\n# TYPE ctwall_x_total counter\nctwall_x_total 1\nctwall_x_total 2\n",
    ] {
        assert!(std::panic::catch_unwind(|| check_prometheus(bad)).is_err(), "accepted {bad:?}");
    }
    let r = net.get("/stats", 40021);
    let v: serde_json::Value = serde_json::from_str(body(&r)).unwrap();
    assert_eq!(v["table"]["entries"], 1);
    assert_eq!(v["rules"][0]["packets"], 7);
    assert_eq!((v["rules"][0]["bytes"].as_u64(), v["rules"][0]["action"].as_str()), (Some(700), Some("drop")));
    assert_eq!(v["invalid_reasons"]["tcp_bad_flags"], 0);
    assert_eq!(v["mgmt"]["http_requests"], 2);
    let w = &v["workers"][0];
    assert_eq!((w["worker"].as_u64(), w["queue"].as_u64(), w["cpu"].as_u64()), (Some(1), Some(1), Some(1)));
    assert_eq!((w["rx"]["inside"].as_u64(), w["rx"]["outside"].as_u64()), (Some(2), Some(3)));
    assert_eq!(w["io_errors"].as_u64(), Some(4));
    assert_eq!((v["defrag"]["held"].as_u64(), v["defrag"]["overlap"].as_u64()), (Some(3), Some(2)));
}

#[test]
fn sources_outside_allow_get_nothing() {
    let cfg = mgmt_config(", allow: [\"10.0.0.0/28\"]");
    let mut net = Net::new(&cfg, &[(IpAddress::v4(10, 0, 0, 100), 24)]);
    let mut s = tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 4096]), tcp::SocketBuffer::new(vec![0; 4096]));
    s.connect(net.client.iface.context(), (V4, 80), 40030).unwrap();
    let h = net.client.sockets.add(s);
    net.run(500);
    assert!(net.seen.is_empty(), "the server sent {:?}", net.seen);
    assert!(!net.client.sockets.get::<tcp::Socket>(h).may_send());
    let refused = net.mgmt.stats().refused_acl;
    assert!(refused > 0);
    // A ping straight at our MAC is refused too, and counted.
    net.deliver(&ping(Ipv4Addr::new(10, 0, 0, 100), Ipv4Addr::new(10, 0, 0, 250), SERVER_MAC));
    net.step();
    assert!(net.seen.is_empty());
    assert_eq!(net.mgmt.stats().refused_acl, refused + 1);
    assert_eq!(net.mgmt.stats().frames_in, 0);
    // Garbage for our MAC is counted as malformed, not queued.
    let mut junk = SERVER_MAC.to_vec();
    junk.extend_from_slice(&[0; 6]);
    junk.extend_from_slice(&[0x88, 0xcc, 1, 2, 3]);
    net.deliver(&junk);
    net.deliver(&SERVER_MAC);
    assert_eq!(net.mgmt.stats().malformed, 2);
}

#[test]
fn reload_needs_the_token() {
    let mut net = Net::default_pair();
    let post = |auth: &str| format!("POST /reload HTTP/1.1\r\nContent-Length: 0\r\n{auth}\r\n");
    let r = net.request(V4, 40040, post("").as_bytes());
    assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{r}");
    let r = net.request(V4, 40041, post("Authorization: Bearer wrong-token-0123456\r\n").as_bytes());
    assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
    assert_eq!((net.app.reloads, net.mgmt.stats().refused_token), (0, 2));
    let r = net.request(V4, 40042, post(&format!("Authorization: Bearer {TOKEN}\r\n")).as_bytes());
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && body(&r) == "reloaded\n", "{r}");
    assert_eq!(net.app.reloads, 1);

    // Without a configured token, write endpoints are always refused.
    let mut cfg = mgmt_config("");
    cfg.token = None;
    let mut net = Net::new(&cfg, &[(IpAddress::v4(10, 0, 0, 1), 24)]);
    let r = net.request(V4, 40043, post(&format!("Authorization: Bearer {TOKEN}\r\n")).as_bytes());
    assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{r}");
    assert_eq!((net.app.reloads, net.mgmt.stats().refused_token), (0, 1));
}

#[test]
fn events_stream_new_and_destroy_while_other_requests_are_served() {
    let mut net = Net::default_pair();
    let h = net.open(V4, 80, 40050, b"GET /events HTTP/1.1\r\n\r\n");
    net.run(20);
    let head = String::from_utf8(net.read(h)).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && !head.contains("Content-Length"), "{head}");
    net.app.udp([10, 0, 1, 2], [10, 0, 2, 2], 5353, 53, net.now);
    net.run(20);
    // The stream is held open; another request still gets its answer.
    let r = net.get("/conntrack", 40051);
    assert!(body(&r).contains("sport=5353"), "{r}");
    net.app.ct.gc(net.now + Duration::from_secs(31), 100);
    net.run(20);
    let text = String::from_utf8(net.read(h)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("    [NEW] udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53"), "{text}");
    assert!(lines[1].starts_with("[DESTROY] udp      17 src=10.0.1.2"), "{text}");
    // The client hangs up: the socket is closed and listens again.
    net.client.sockets.get_mut::<tcp::Socket>(h).close();
    net.run(100);
    assert!(net.mgmt.conns.iter().all(|(_, c)| matches!(c, Conn::Idle)), "{:?}", net.mgmt.conns);
}

#[test]
fn full_receive_queue_drops_and_counts() {
    let mut m = Mgmt::new(&mgmt_config(""), Instant::ZERO);
    let f = ping(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 250), SERVER_MAC);
    for _ in 0..QUEUE + 3 {
        m.receive(&f);
    }
    assert_eq!((m.stats().frames_in, m.stats().queue_drops), (QUEUE as u64, 3));
}
