//! The management plane: the appliance's own addresses on the link, served
//! by a smoltcp stack fed from the bridge (issue 6).
//!
//! Sans-IO like the pipeline: the bridge asks [`Mgmt::classify`] about each
//! frame arriving on [`Mgmt::port`], hands the ones for us to
//! [`Mgmt::receive`], and calls [`Mgmt::poll`] with the time; smoltcp's
//! frames come back through a callback and go out of the same port.
//!
//! * ARP, NDP and ping (ICMP echo) are answered by smoltcp itself.
//! * HTTP/1.1 on `http_port` ([`http`]): `GET /conntrack[?format=json]`,
//!   `/expect`, `/stats`, `/metrics`, `/events`, and `POST /reload` with
//!   `Authorization: Bearer <token>`. Several sockets, so a held `/events`
//!   does not block other requests.
//! * Access control happens before smoltcp sees a frame: only sources in
//!   `allow` get anything (ARP by its sender address; NDP also from
//!   link-local and unspecified sources, which address resolution needs);
//!   the rest is dropped and counted.
//!
//! Memory is bounded: frame queues, socket buffers, request heads and the
//! per-client `/events` backlog all have fixed limits. A response body is
//! built whole by [`MgmtApp`], so `/conntrack` on a full table takes one
//! listing's worth per open request.

mod device;
mod http;
pub mod render;
#[cfg(test)]
mod tests;

use self::device::QueueDevice;
use self::http::{Parsed, Route, Status};
use config::{MgmtPort, Prefix};
use ct_core::listing::{event_line, ListOptions};
use ct_core::table::CtEvent;
use ct_core::Instant;
use rings::PortId;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// What the bridge does with a frame that arrived on [`Mgmt::port`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// For us (unicast to our MAC, or ARP/NDP resolution of one of our
    /// addresses): give it to [`Mgmt::receive`]; do not bridge or track it.
    Take,
    /// A broadcast we also want a copy of (ARP about other hosts): give it
    /// to [`Mgmt::receive`] and bridge it as usual.
    Copy,
    /// Transit: not ours.
    Ignore,
}

/// The management plane's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MgmtStats {
    /// Frames queued for the stack.
    pub frames_in: u64,
    /// Frames the stack sent.
    pub frames_out: u64,
    /// HTTP requests whose head was read (answered or refused).
    pub http_requests: u64,
    /// Frames from sources outside `allow`, dropped before the stack.
    pub refused_acl: u64,
    /// `POST /reload` without the right token (or with none configured).
    pub refused_token: u64,
    /// Frames dropped because the receive queue was full.
    pub queue_drops: u64,
    /// Frames given to us that were not ARP, IPv4 or IPv6, or too short.
    pub malformed: u64,
    /// Event lines not delivered to an `/events` client that fell behind.
    pub events_dropped: u64,
}

/// What the service asks of the appliance. [`render`] has the formats, so
/// an implementation is a thin adapter over the pipeline.
pub trait MgmtApp {
    /// `/proc/net/nf_conntrack` lines ([`render::conntrack_proc`]).
    fn conntrack_proc(&self, now: Instant, out: &mut String);
    /// The table as JSON ([`render::conntrack_json`]).
    fn conntrack_json(&self, now: Instant, out: &mut String);
    /// `conntrack -L` lines ([`render::conntrack_list`]).
    fn conntrack_list(&self, now: Instant, out: &mut String);
    /// `/proc/net/nf_conntrack_expect` lines ([`render::expect_proc`]).
    fn expect_proc(&self, now: Instant, out: &mut String);
    /// Statistics as JSON ([`render::stats_json`]).
    fn stats_json(&self, now: Instant, mgmt: &MgmtStats, out: &mut String);
    /// Prometheus text exposition ([`render::metrics`]).
    fn metrics(&self, now: Instant, mgmt: &MgmtStats, out: &mut String);
    /// Reload the configuration, as SIGHUP does; the message is sent back.
    fn reload(&mut self) -> Result<String, String>;
    /// Connection events since the last call
    /// (`Conntrack::drain_events`). Called on every poll, so the
    /// tracker's queue never fills while nobody watches.
    fn drain_events(&mut self, out: &mut Vec<CtEvent>);
}

/// TCP sockets serving HTTP: requests in flight at once.
const SOCKETS: usize = 8;
/// Frames the receive and transmit queues hold.
const QUEUE: usize = 256;
const RX_BUFFER: usize = 4096;
const TX_BUFFER: usize = 64 * 1024;
/// A request head must arrive within this time.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A response must be taken within this time.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// After the response, how long to wait for the client to close first (so
/// TIME_WAIT stays with the client and the socket is free at once).
const LINGER: Duration = Duration::from_secs(2);
/// Bytes of event lines kept for one `/events` client.
const EVENTS_BACKLOG: usize = 256 * 1024;
/// Dead peers are dropped after this much silence (keep-alives are sent
/// every [`KEEP_ALIVE`]).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// One HTTP socket's progress.
#[derive(Debug)]
enum Conn {
    /// Listening.
    Idle,
    /// Reading the request head.
    Reading { head: Vec<u8>, since: Instant },
    /// Sending a response; `sent` bytes are in the socket.
    Writing { out: Vec<u8>, sent: usize, since: Instant },
    /// Streaming `/events`; `pending` is not yet in the socket.
    Streaming { pending: Vec<u8> },
    /// FIN sent; waiting for the socket to close.
    Closing,
}

/// Which frames are the management plane's ([`Mgmt::classify`]), as a
/// value other worker threads can hold: they pass those frames to the thread
/// that runs the [`Mgmt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classifier {
    port: PortId,
    mac: [u8; 6],
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

/// The management plane: a smoltcp interface and its HTTP service.
pub struct Mgmt {
    classifier: Classifier,
    allow: Vec<Prefix>,
    token: Option<Vec<u8>>,
    http_port: u16,
    iface: Interface,
    dev: QueueDevice,
    sockets: SocketSet<'static>,
    conns: Vec<(SocketHandle, Conn)>,
    stats: MgmtStats,
    events: Vec<CtEvent>,
}

impl std::fmt::Debug for Mgmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mgmt")
            .field("port", &self.classifier.port)
            .field("v4", &self.classifier.v4)
            .field("v6", &self.classifier.v6)
            .field("http_port", &self.http_port)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn smol_time(now: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now.as_nanos() / 1000).unwrap_or(i64::MAX))
}

fn http_socket() -> tcp::Socket<'static> {
    let mut s =
        tcp::Socket::new(tcp::SocketBuffer::new(vec![0; RX_BUFFER]), tcp::SocketBuffer::new(vec![0; TX_BUFFER]));
    s.set_timeout(Some(SOCKET_TIMEOUT.into()));
    s.set_keep_alive(Some(KEEP_ALIVE.into()));
    s
}

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];
/// ICMPv6 next header.
const ICMPV6: u8 = 58;
/// ICMPv6 Neighbor Solicitation (RFC 4861 § 4.3).
const NEIGHBOR_SOLICIT: u8 = 135;

/// Whether `p` contains `a` (same family, equal leading `p.len` bits).
fn prefix_contains(p: &Prefix, a: IpAddr) -> bool {
    let bits = |x: IpAddr| match x {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ((pb, pw), (ab, aw)) = (bits(p.addr), bits(a));
    let mask = u128::MAX.checked_shl(128 - u32::from(p.len.min(128))).unwrap_or(0);
    pw == aw && (pb & mask) == (ab & mask)
}

fn v4_at(frame: &[u8], at: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = frame.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn v6_at(frame: &[u8], at: usize) -> Option<Ipv6Addr> {
    let b: [u8; 16] = frame.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

impl Classifier {
    /// The port the addresses live on.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// Decide about a frame that arrived on [`Classifier::port`]. A transit
    /// unicast frame costs one MAC compare.
    pub fn classify(&self, frame: &[u8]) -> Disposition {
        let Some(dst) = frame.get(0..6) else { return Disposition::Ignore };
        if dst == self.mac {
            return Disposition::Take;
        }
        if dst[0] & 1 == 0 {
            return Disposition::Ignore;
        }
        match frame.get(12..14) {
            Some(et) if et == ETHERTYPE_ARP && !self.v4.is_empty() => {
                // Ethernet/IPv4 ARP: target protocol address at 24..28 of the ARP body.
                match v4_at(frame, 14 + 24) {
                    Some(tpa) if self.v4.contains(&tpa) => Disposition::Take,
                    Some(_) => Disposition::Copy,
                    None => Disposition::Ignore,
                }
            }
            Some(et) if et == ETHERTYPE_IPV6 && !self.v6.is_empty() => {
                // A Neighbor Solicitation for one of our addresses, without
                // extension headers (RFC 4861 § 4.3: target at 8..24).
                let ns = frame.get(14 + 6) == Some(&ICMPV6) && frame.get(14 + 40) == Some(&NEIGHBOR_SOLICIT);
                match v6_at(frame, 14 + 40 + 8) {
                    Some(target) if ns && self.v6.contains(&target) => Disposition::Take,
                    _ => Disposition::Ignore,
                }
            }
            _ => Disposition::Ignore,
        }
    }
}

impl Mgmt {
    /// A management plane with the configured addresses, listening for HTTP.
    pub fn new(cfg: &config::Mgmt, now: Instant) -> Mgmt {
        let mut dev = QueueDevice::new(QUEUE);
        let mut ic = IfaceConfig::new(EthernetAddress(cfg.mac.0).into());
        // Seeds the initial sequence numbers: the time and the MAC.
        ic.random_seed = now.as_nanos()
            ^ u64::from_be_bytes([
                0,
                0,
                cfg.mac.0[0],
                cfg.mac.0[1],
                cfg.mac.0[2],
                cfg.mac.0[3],
                cfg.mac.0[4],
                cfg.mac.0[5],
            ]);
        let mut iface = Interface::new(ic, &mut dev, smol_time(now));
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        iface.update_ip_addrs(|addrs| {
            for a in &cfg.addresses.0 {
                // Config validation already refuses non-unicast addresses and
                // over-long prefixes; smoltcp would panic on them.
                let cidr = match a.addr {
                    IpAddr::V4(x) if a.len <= 32 && !x.is_broadcast() && !x.is_multicast() && !x.is_unspecified() => {
                        IpCidr::new(IpAddress::Ipv4(x), a.len)
                    }
                    IpAddr::V6(x) if a.len <= 128 && !x.is_multicast() && !x.is_unspecified() => {
                        IpCidr::new(IpAddress::Ipv6(x), a.len)
                    }
                    _ => continue,
                };
                if addrs.push(cidr).is_ok() {
                    match a.addr {
                        IpAddr::V4(x) => v4.push(x),
                        IpAddr::V6(x) => v6.push(x),
                    }
                }
            }
        });
        let http_port = cfg.http_port.0;
        let mut sockets = SocketSet::new(Vec::new());
        let conns = (0..SOCKETS)
            .map(|_| {
                let mut s = http_socket();
                // Only fails for port 0, which the configuration refuses.
                let _ = s.listen(http_port);
                (sockets.add(s), Conn::Idle)
            })
            .collect();
        let port = match cfg.port {
            MgmtPort::Inside => PortId::Inside,
            MgmtPort::Outside => PortId::Outside,
        };
        Mgmt {
            classifier: Classifier { port, mac: cfg.mac.0, v4, v6 },
            allow: cfg.allow.clone(),
            token: cfg.token.as_ref().map(|t| t.0.as_bytes().to_vec()),
            http_port,
            iface,
            dev,
            sockets,
            conns,
            stats: MgmtStats::default(),
            events: Vec::new(),
        }
    }

    /// The port the addresses live on.
    pub fn port(&self) -> PortId {
        self.classifier.port
    }

    /// The frame classifier, for other threads.
    pub fn classifier(&self) -> Classifier {
        self.classifier.clone()
    }

    pub fn stats(&self) -> &MgmtStats {
        &self.stats
    }

    /// Decide about a frame that arrived on [`Mgmt::port`] ([`Classifier::classify`]).
    pub fn classify(&self, frame: &[u8]) -> Disposition {
        self.classifier.classify(frame)
    }

    fn allowed(&self, a: IpAddr) -> bool {
        self.allow.iter().any(|p| prefix_contains(p, a))
    }

    /// Whether a frame from this source may reach the stack; counts refusals.
    fn admit(&mut self, frame: &[u8]) -> bool {
        let src = match frame.get(12..14) {
            // ARP: the sender protocol address, at 14..18 of the ARP body.
            Some(et) if et == ETHERTYPE_ARP => v4_at(frame, 14 + 14).map(IpAddr::V4),
            Some(et) if et == ETHERTYPE_IPV4 => v4_at(frame, 14 + 12).map(IpAddr::V4),
            Some(et) if et == ETHERTYPE_IPV6 => match v6_at(frame, 14 + 8) {
                // Router/neighbour discovery (types 133-137) comes from
                // link-local or unspecified sources; resolution needs it.
                Some(s)
                    if (s.is_unspecified() || s.is_unicast_link_local())
                        && frame.get(14 + 6) == Some(&ICMPV6)
                        && frame.get(14 + 40).is_some_and(|t| (133..=137).contains(t)) =>
                {
                    return true;
                }
                other => other.map(IpAddr::V6),
            },
            _ => None,
        };
        match src {
            None => {
                self.stats.malformed += 1;
                false
            }
            Some(a) if self.allowed(a) => true,
            Some(_) => {
                self.stats.refused_acl += 1;
                false
            }
        }
    }

    /// Queue a frame [`Mgmt::classify`] did not ignore. Sources outside
    /// `allow` are dropped here; a full queue drops too. Both are counted.
    pub fn receive(&mut self, frame: &[u8]) {
        if !self.admit(frame) {
            return;
        }
        if self.dev.push_rx(frame) {
            self.stats.frames_in += 1;
        } else {
            self.stats.queue_drops += 1;
        }
    }

    /// Run the stack and the HTTP service at `now`; frames to send out of
    /// [`Mgmt::port`] are passed to `out`.
    pub fn poll(&mut self, now: Instant, app: &mut dyn MgmtApp, out: &mut dyn FnMut(&[u8])) {
        let t = smol_time(now);
        self.events.clear();
        app.drain_events(&mut self.events);
        let mut lines = String::new();
        if self.conns.iter().any(|(_, c)| matches!(c, Conn::Streaming { .. })) {
            let opts = ListOptions::default();
            for ev in &self.events {
                lines.push_str(&event_line(ev, &opts));
                lines.push('\n');
            }
        }
        // A few rounds so a burst of received frames is answered in one call;
        // each round empties the transmit queue.
        for _ in 0..4 {
            self.iface.poll(t, &mut self.dev, &mut self.sockets);
            let mut cx = Cx { now, app: &mut *app, stats: &mut self.stats, token: self.token.as_deref() };
            for (h, conn) in &mut self.conns {
                let sock = self.sockets.get_mut::<tcp::Socket>(*h);
                serve(sock, conn, self.http_port, &mut cx, &lines);
            }
            lines.clear();
            self.iface.poll(t, &mut self.dev, &mut self.sockets);
            for f in self.dev.drain_tx() {
                self.stats.frames_out += 1;
                out(&f);
            }
            if self.dev.rx_len() == 0 {
                break;
            }
        }
    }
}

/// What serving a socket needs besides the socket.
struct Cx<'a> {
    now: Instant,
    app: &'a mut dyn MgmtApp,
    stats: &'a mut MgmtStats,
    token: Option<&'a [u8]>,
}

/// Move one HTTP socket along.
fn serve(sock: &mut tcp::Socket<'_>, conn: &mut Conn, port: u16, cx: &mut Cx<'_>, lines: &str) {
    match sock.state() {
        tcp::State::Closed => {
            *conn = Conn::Idle;
            let _ = sock.listen(port);
            return;
        }
        tcp::State::Listen => {
            *conn = Conn::Idle;
            return;
        }
        // Handshake in progress: nothing to read or write yet.
        tcp::State::SynReceived | tcp::State::SynSent => return,
        _ => {}
    }
    if let Conn::Idle = conn {
        *conn = Conn::Reading { head: Vec::new(), since: cx.now };
    }
    match conn {
        Conn::Idle | Conn::Closing => {}
        Conn::Reading { head, since } => {
            while sock.can_recv() && head.len() < http::MAX_REQUEST {
                let room = http::MAX_REQUEST - head.len();
                let got = sock.recv(|d| {
                    let n = d.len().min(room);
                    head.extend_from_slice(&d[..n]);
                    (n, n)
                });
                if !matches!(got, Ok(n) if n > 0) {
                    break;
                }
            }
            match http::parse(head) {
                Parsed::Incomplete => {
                    if !sock.may_recv() || cx.now.saturating_since(*since) > REQUEST_TIMEOUT {
                        sock.abort();
                    }
                }
                Parsed::Refuse(status) => {
                    cx.stats.http_requests += 1;
                    *conn = writing(http::error(status, "bad request"), cx.now);
                }
                Parsed::Request { route, bearer } => {
                    cx.stats.http_requests += 1;
                    *conn = answer(route, bearer.as_deref(), cx);
                }
            }
            if !matches!(conn, Conn::Reading { .. }) {
                push(sock, conn, cx.now, lines, cx.stats);
            }
        }
        Conn::Writing { .. } | Conn::Streaming { .. } => push(sock, conn, cx.now, lines, cx.stats),
    }
}

fn writing(out: Vec<u8>, now: Instant) -> Conn {
    Conn::Writing { out, sent: 0, since: now }
}

/// Answer a parsed request.
fn answer(route: Route, bearer: Option<&[u8]>, cx: &mut Cx<'_>) -> Conn {
    let mut body = String::new();
    let now = cx.now;
    let (status, ctype) = match route {
        Route::ConntrackProc => {
            cx.app.conntrack_proc(now, &mut body);
            (Status::Ok, http::TEXT)
        }
        Route::ConntrackJson => {
            cx.app.conntrack_json(now, &mut body);
            (Status::Ok, http::JSON)
        }
        Route::ConntrackList => {
            cx.app.conntrack_list(now, &mut body);
            (Status::Ok, http::TEXT)
        }
        Route::Expect => {
            cx.app.expect_proc(now, &mut body);
            (Status::Ok, http::TEXT)
        }
        Route::Stats => {
            cx.app.stats_json(now, cx.stats, &mut body);
            (Status::Ok, http::JSON)
        }
        Route::Metrics => {
            cx.app.metrics(now, cx.stats, &mut body);
            (Status::Ok, http::METRICS)
        }
        Route::Events => return Conn::Streaming { pending: http::EVENTS_HEAD.to_vec() },
        Route::Reload => {
            let refusal = match (cx.token, bearer) {
                (None, _) => Some((Status::Forbidden, "write endpoints are disabled: no token is configured")),
                (Some(_), None) => Some((Status::Unauthorized, "this endpoint needs Authorization: Bearer <token>")),
                (Some(t), Some(b)) if !http::token_matches(b, t) => Some((Status::Forbidden, "wrong token")),
                (Some(_), Some(_)) => None,
            };
            if let Some((status, msg)) = refusal {
                cx.stats.refused_token += 1;
                return writing(http::error(status, msg), now);
            }
            match cx.app.reload() {
                Ok(msg) => {
                    body = msg;
                    body.push('\n');
                    (Status::Ok, http::TEXT)
                }
                Err(e) => return writing(http::error(Status::InternalError, &e), now),
            }
        }
    };
    writing(http::response(status, ctype, body.as_bytes()), now)
}

/// Put what is pending into the socket; close when done.
fn push(sock: &mut tcp::Socket<'_>, conn: &mut Conn, now: Instant, lines: &str, stats: &mut MgmtStats) {
    match conn {
        Conn::Writing { out, sent, since } => {
            if *sent < out.len() {
                if let Ok(n) = sock.send_slice(&out[*sent..]) {
                    *sent += n;
                }
            }
            let waited = now.saturating_since(*since);
            if *sent < out.len() {
                if waited > RESPONSE_TIMEOUT {
                    sock.abort();
                }
            } else if !sock.may_recv() || waited > LINGER {
                // The client closed (or took too long to): close our half.
                sock.close();
                *conn = Conn::Closing;
            }
        }
        Conn::Streaming { pending } => {
            if !sock.may_recv() {
                // The client went away.
                sock.close();
                *conn = Conn::Closing;
                return;
            }
            if pending.len() + lines.len() <= EVENTS_BACKLOG {
                pending.extend_from_slice(lines.as_bytes());
            } else {
                stats.events_dropped += lines.lines().count() as u64;
            }
            if let Ok(n) = sock.send_slice(pending) {
                pending.drain(..n);
            }
        }
        Conn::Idle | Conn::Reading { .. } | Conn::Closing => {}
    }
}
