//! The per-frame pipeline (CONNTRACK_SPEC §1, "for the appliance"):
//! layer-2 walk → pre-tracking (helper assignment, zone) → track → filter
//! → (if accepted) helper + confirm.

use arrayvec::ArrayVec;
use ct_core::defrag::{Defrag, DefragConfig, FragDrop, FragOutcome, Ingress, Reassembly};
use ct_core::expect::EntryId;
use ct_core::invalid::InvalidCounters;
use ct_core::table::{Confirm, Conntrack, Outcome, Template};
use ct_core::tuple::proto;
use ct_core::wire::udp::UdpDgram;
use ct_core::wire::{ethertype, parse_frame, parse_ip, Fragment, IpPacket, TcpSeg};
use ct_core::{CtInfo, Instant, InvalidReason};
use helpers::{DropReason, HelperCx, HelperRegistry, HelperVerdict};
use rings::PortId;

/// The ruleset's answer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    /// Drop, and answer the sender (TCP RST or ICMP unreachable).
    Reject,
}

impl Verdict {
    pub const fn name(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        }
    }
}

/// What the pre-tracking stage (the raw table) decides.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDecision {
    /// `CT --notrack`.
    pub notrack: bool,
    /// `CT --zone`.
    pub zone: u16,
    /// `CT --helper NAME`: the helper for a connection this packet creates,
    /// ahead of the port-based assignment.
    pub helper: Option<&'static str>,
}

/// The ruleset as the pipeline sees it: a pre-tracking stage and a filter.
pub trait Policy {
    /// Pre-tracking stage for an IP packet.
    fn raw(&self, _port: PortId, _vlan: Option<u16>, _ip: &IpPacket<'_>) -> RawDecision {
        RawDecision::default()
    }

    /// The filter stage, after tracking.
    fn filter(&self, view: &FrameView<'_>, now: Instant) -> Verdict;
}

/// A shared ruleset (the run loop keeps a handle to read its counters).
impl<P: Policy + ?Sized> Policy for std::sync::Arc<P> {
    fn raw(&self, port: PortId, vlan: Option<u16>, ip: &IpPacket<'_>) -> RawDecision {
        (**self).raw(port, vlan, ip)
    }

    fn filter(&self, view: &FrameView<'_>, now: Instant) -> Verdict {
        (**self).filter(view, now)
    }
}

/// Accept everything: the default configuration without rules.
#[derive(Copy, Clone, Debug, Default)]
pub struct AcceptAll;

impl Policy for AcceptAll {
    fn filter(&self, _view: &FrameView<'_>, _now: Instant) -> Verdict {
        Verdict::Accept
    }
}

/// Drop every packet of a tracked state in `states` (tests, fuzzing).
#[derive(Copy, Clone, Debug, Default)]
pub struct DropStates(pub u8);

impl Policy for DropStates {
    fn filter(&self, view: &FrameView<'_>, _now: Instant) -> Verdict {
        if self.0 & view.outcome.state.bit() != 0 {
            Verdict::Drop
        } else {
            Verdict::Accept
        }
    }
}

/// Why the pipeline itself (not the ruleset) dropped a frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// No room in the connection table.
    TableFull,
    /// The connection's helper refused the packet.
    Helper(DropReason),
    /// Another worker confirmed the same new connection first.
    InsertFailed,
}

impl DropCause {
    pub const fn name(self) -> &'static str {
        match self {
            DropCause::TableFull => "table_full",
            DropCause::InsertFailed => "insert_failed",
            DropCause::Helper(r) => r.name(),
        }
    }
}

/// What the ruleset sees of a frame.
#[derive(Copy, Clone, Debug)]
pub struct FrameView<'a> {
    /// The whole frame, from the Ethernet header.
    pub frame: &'a [u8],
    pub port: PortId,
    /// The outermost VLAN id, for tagged frames.
    pub vlan: Option<u16>,
    /// The tracker's verdict, with the connection's status bits.
    pub outcome: &'a Outcome,
    /// The IP packet, for IPv4/IPv6 frames that parsed.
    pub ip: Option<&'a IpPacket<'a>>,
}

/// What reassembly did with a frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FragStatus {
    /// Not a fragment, or one passed on as it is.
    None,
    /// Held until its datagram is complete: no verdict of its own, not
    /// forwarded now.
    Held,
    /// Dropped by reassembly (a duplicate, or its datagram discarded).
    Dropped(FragDrop),
    /// It completed a datagram of `frames` fragments: the decision is the
    /// datagram's; on accept the original fragments wait in
    /// [`Pipeline::drain_emit`] (this frame among them, in arrival order).
    Complete { frames: u16 },
}

/// The pipeline's decision for one frame.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub verdict: Verdict,
    pub drop_cause: Option<DropCause>,
    /// L4 protocol number, for IP frames.
    pub l4: Option<u8>,
    pub frag: FragStatus,
}

impl Decision {
    /// A fragment that gets no verdict of its own (held or dropped by
    /// reassembly): the frame is not forwarded now.
    fn fragment(frag: FragStatus) -> Decision {
        Decision { outcome: Outcome::untracked(), verdict: Verdict::Drop, drop_cause: None, l4: None, frag }
    }
}

/// Frame counters kept by the pipeline (the tracker keeps its own).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineStats {
    pub frames: u64,
    pub non_ip: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub table_full: u64,
    /// New connections another worker had confirmed first (TCP, ICMP).
    pub insert_failed: u64,
    pub helper_partial_match: u64,
    pub helper_expect_failed: u64,
    /// Frames INVALID before tracking (layer 2 or 3).
    pub wire_invalid: InvalidCounters,
}

/// Fragments of accepted datagrams waiting to go out: frames back to back,
/// each with its egress port.
#[derive(Debug, Default)]
struct Emit {
    bytes: Vec<u8>,
    frames: Vec<(u32, u32, PortId)>,
}

/// Conntrack plus helpers: the stateful half of the appliance.
#[derive(Debug)]
pub struct Pipeline {
    ct: Conntrack,
    helpers: HelperRegistry,
    stats: PipelineStats,
    defrag: Defrag,
    reasm: Reassembly,
    emit: Emit,
}

const fn port_number(p: PortId) -> u8 {
    match p {
        PortId::Inside => 0,
        PortId::Outside => 1,
    }
}

impl Pipeline {
    /// A pipeline with the kernel's default reassembly limits.
    pub fn new(ct: Conntrack, helpers: HelperRegistry) -> Pipeline {
        Pipeline::with_defrag(ct, helpers, Defrag::new(DefragConfig::default()))
    }

    /// A pipeline reassembling fragments in `defrag` (shared with the
    /// other workers' pipelines).
    pub fn with_defrag(ct: Conntrack, helpers: HelperRegistry, defrag: Defrag) -> Pipeline {
        Pipeline {
            ct,
            helpers,
            stats: PipelineStats::default(),
            defrag,
            reasm: Reassembly::new(),
            emit: Emit { bytes: Vec::with_capacity(1 << 18), frames: Vec::with_capacity(256) },
        }
    }

    /// A pipeline for another worker thread: the same connection table,
    /// reassembly queues and helpers, its own frame counters.
    pub fn worker(&self) -> Pipeline {
        Pipeline::with_defrag(self.ct.worker(), self.helpers.clone(), self.defrag.clone())
    }

    /// The reassembly tables.
    pub fn defrag(&self) -> &Defrag {
        &self.defrag
    }

    /// The first fragment of the datagram the last [`Pipeline::process`]
    /// completed (what a reject answers: an ICMP error quoting it).
    pub fn first_fragment(&self) -> Option<&[u8]> {
        self.reasm.first_frame()
    }

    /// Hand every fragment of the accepted datagrams to `send` with its
    /// egress port, in arrival order, and forget them. A driver calls it
    /// after every batch (nothing else empties the queue).
    pub fn drain_emit<E>(&mut self, mut send: impl FnMut(PortId, &[u8]) -> Result<(), E>) -> Result<usize, E> {
        let n = self.emit.frames.len();
        let mut r = Ok(n);
        for &(start, len, port) in &self.emit.frames {
            if let Err(e) = send(port, &self.emit.bytes[start as usize..(start + len) as usize]) {
                r = Err(e);
                break;
            }
        }
        self.emit.bytes.clear();
        self.emit.frames.clear();
        r
    }

    pub fn conntrack(&self) -> &Conntrack {
        &self.ct
    }

    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Record connection events (NEW/UPDATE/DESTROY) in a queue of `cap`
    /// (0 turns it off), for the management plane's `/events`.
    pub fn enable_events(&mut self, cap: usize) {
        self.ct.enable_events(cap);
    }

    /// Move the recorded events to `out`.
    pub fn drain_events(&mut self, out: &mut Vec<ct_core::table::CtEvent>) {
        self.ct.drain_events(out);
    }

    /// New tracker settings (timeouts, knobs) for future packets; entries
    /// keep their deadlines.
    pub fn set_ct_config(&mut self, cfg: ct_core::CtConfig) {
        self.ct.set_config(cfg);
    }

    /// INVALID counters of the tracker and of the wire walk, added up.
    pub fn invalid_counters(&self) -> InvalidCounters {
        let mut c = self.ct.invalid_counters().clone();
        c.merge(&self.stats.wire_invalid);
        c
    }

    /// Reap expired state, visiting at most `budget` table slots, and
    /// reassembly queues whose time is up.
    pub fn housekeeping(&mut self, now: Instant, budget: usize) -> usize {
        self.defrag.expire(now);
        self.ct.gc(now, budget)
    }

    /// Process one frame through `policy`.
    pub fn process(&mut self, frame: &[u8], port: PortId, now: Instant, policy: &dyn Policy) -> Decision {
        self.stats.frames += 1;
        let d = self.process_inner(frame, port, now, policy);
        match (d.frag, d.verdict) {
            // No verdict of its own yet.
            (FragStatus::Held, _) => {}
            (_, Verdict::Accept) => self.stats.accepted += 1,
            (_, Verdict::Drop | Verdict::Reject) => self.stats.dropped += 1,
        }
        match d.drop_cause {
            Some(DropCause::TableFull) => self.stats.table_full += 1,
            Some(DropCause::InsertFailed) => self.stats.insert_failed += 1,
            Some(DropCause::Helper(DropReason::PartialMatch)) => self.stats.helper_partial_match += 1,
            Some(DropCause::Helper(DropReason::ExpectFailed)) => self.stats.helper_expect_failed += 1,
            None => {}
        }
        d
    }

    fn process_inner(&mut self, frame: &[u8], port: PortId, now: Instant, policy: &dyn Policy) -> Decision {
        let l2 = match parse_frame(frame) {
            Ok(l2) => l2,
            Err(r) => return self.untracked_or_invalid(frame, port, None, Some(r), policy, now),
        };
        let vlan = l2.vlans.first().map(|t| t.vid());
        if l2.ethertype != ethertype::IPV4 && l2.ethertype != ethertype::IPV6 {
            self.stats.non_ip += 1;
            return self.untracked_or_invalid(frame, port, vlan, None, policy, now);
        }
        let ip = match parse_ip(l2.l3) {
            Ok(ip) => ip,
            Err(r) => return self.untracked_or_invalid(frame, port, vlan, Some(r), policy, now),
        };
        if ip.fragment != Fragment::None {
            // Reassembly first (`nf_defrag_ipv4`/`ipv6` at priority -400):
            // conntrack and the rules see the datagram, once.
            let at = Ingress { port: port_number(port), vlan };
            match self.defrag.add(frame, l2.l3_offset, &ip, at, now, &mut self.reasm) {
                FragOutcome::Pass => {}
                FragOutcome::Held => return Decision::fragment(FragStatus::Held),
                FragOutcome::Dropped(r) => return Decision::fragment(FragStatus::Dropped(r)),
                FragOutcome::Complete => return self.complete(frame, port, vlan, now, policy),
            }
        }
        self.decide(frame, port, vlan, &ip, now, policy)
    }

    /// The datagram in `self.reasm` is complete: decide it as one packet;
    /// on accept, queue its original fragments for the other ports.
    fn complete(
        &mut self,
        frame: &[u8],
        port: PortId,
        vlan: Option<u16>,
        now: Instant,
        policy: &dyn Policy,
    ) -> Decision {
        let dgram = std::mem::take(&mut self.reasm.datagram);
        let mut d = match parse_ip(&dgram) {
            Ok(ip) => self.decide(frame, port, vlan, &ip, now, policy),
            Err(r) => self.untracked_or_invalid(frame, port, vlan, Some(r), policy, now),
        };
        self.reasm.datagram = dgram;
        d.frag = FragStatus::Complete { frames: self.reasm.spans.len() as u16 };
        if d.verdict == Verdict::Accept {
            for s in &self.reasm.spans {
                let start = self.emit.bytes.len() as u32;
                self.emit.bytes.extend_from_slice(self.reasm.frame(s));
                let from = if s.port == 0 { PortId::Inside } else { PortId::Outside };
                self.emit.frames.push((start, s.len, from.other()));
            }
        }
        d
    }

    /// Raw stage, tracking, filter, helper and confirmation for one IP
    /// packet (a frame's own, or a reassembled datagram).
    fn decide(
        &mut self,
        frame: &[u8],
        port: PortId,
        vlan: Option<u16>,
        ip: &IpPacket<'_>,
        now: Instant,
        policy: &dyn Policy,
    ) -> Decision {
        let raw = policy.raw(port, vlan, ip);
        let helper = match raw.helper {
            Some(name) => self.named_helper(name, ip.proto),
            None => self.assign_helper(ip),
        };
        let tmpl = Template { zone: raw.zone, notrack: raw.notrack, helper };
        let outcome = self.ct.track(ip, &tmpl, now);
        let l4 = Some(ip.proto);
        if outcome.table_full {
            let drop_cause = Some(DropCause::TableFull);
            return Decision { outcome, verdict: Verdict::Drop, drop_cause, l4, frag: FragStatus::None };
        }
        let view = FrameView { frame, port, vlan, outcome: &outcome, ip: Some(ip) };
        let mut verdict = policy.filter(&view, now);
        let mut drop_cause = None;
        if verdict == Verdict::Accept {
            if let Some(cause) = self.run_helper(ip, &outcome, now) {
                verdict = Verdict::Drop;
                drop_cause = Some(DropCause::Helper(cause));
            }
        }
        match verdict {
            Verdict::Accept => {
                if self.ct.confirm(&outcome, now) == Confirm::Failed {
                    // Another worker inserted the same TCP/ICMP connection
                    // first; the kernel drops the loser (`insert_failed`).
                    verdict = Verdict::Drop;
                    drop_cause = Some(DropCause::InsertFailed);
                }
            }
            Verdict::Drop | Verdict::Reject => self.ct.discard(&outcome),
        }
        Decision { outcome, verdict, drop_cause, l4, frag: FragStatus::None }
    }

    /// Frames that never reach the tracker: non-IP (UNTRACKED) or broken
    /// below layer 4 (INVALID, counted by reason).
    fn untracked_or_invalid(
        &mut self,
        frame: &[u8],
        port: PortId,
        vlan: Option<u16>,
        reason: Option<InvalidReason>,
        policy: &dyn Policy,
        now: Instant,
    ) -> Decision {
        let outcome = match reason {
            Some(r) => {
                self.stats.wire_invalid.inc(r);
                Outcome::invalid(r)
            }
            None => Outcome::untracked(),
        };
        let verdict = policy.filter(&FrameView { frame, port, vlan, outcome: &outcome, ip: None }, now);
        Decision { outcome, verdict, drop_cause: None, l4: None, frag: FragStatus::None }
    }

    /// Whether a helper of this name is loaded (helpers load at start).
    pub fn has_helper(&self, name: &str) -> bool {
        self.helpers.by_name(name).is_some()
    }

    /// `CT --helper NAME` from the pre-tracking stage: only for packets of
    /// the helper's protocol.
    fn named_helper(&self, name: &str, proto: u8) -> Option<(u8, &'static str)> {
        let id = self.helpers.by_name(name)?;
        let h = self.helpers.get(id)?;
        (h.proto() == proto).then_some((id, h.name()))
    }

    /// `ct helper set` by protocol and destination port.
    fn assign_helper(&self, ip: &IpPacket<'_>) -> Option<(u8, &'static str)> {
        if self.helpers.is_empty() || !matches!(ip.proto, proto::TCP | proto::UDP) {
            return None;
        }
        let dport = u16::from_be_bytes([*ip.l4.get(2)?, *ip.l4.get(3)?]);
        let id = self.helpers.lookup(ip.proto, dport)?;
        Some((id, self.helpers.get(id)?.name()))
    }

    /// Run the connection's helper after the ruleset accepted the packet
    /// (`nf_confirm`); register what it expects. `Some` = drop the packet.
    fn run_helper(&mut self, ip: &IpPacket<'_>, out: &Outcome, now: Instant) -> Option<DropReason> {
        let (id, info) = (out.conn?, out.info?);
        if info == CtInfo::RelatedReply || !out.status.is_some_and(|s| s.contains(ct_core::Status::HELPER)) {
            return None;
        }
        let dir = out.dir()?;
        let helpers = &self.helpers;
        let mut expects = ArrayVec::new();
        let (helper, verdict) = self.ct.with_helper(id, |orig, reply, zone, slot| {
            // Not for ICMP errors about the connection.
            if orig.proto != ip.proto {
                return None;
            }
            let helper = helpers.get(slot.id)?;
            let (tcp, payload) = match ip.proto {
                proto::TCP => {
                    let seg = TcpSeg::parse(ip.l4).ok()?;
                    (Some(seg), seg.payload)
                }
                _ => (None, UdpDgram::parse(ip.l4).ok()?.payload),
            };
            let mut cx = HelperCx {
                dir,
                ctinfo: info,
                zone,
                orig: *orig,
                reply: *reply,
                tcp,
                payload,
                line: &mut slot.line,
                expects: &mut expects,
            };
            Some((helper, helper.help(&mut cx)))
        })??;
        if let HelperVerdict::Drop(r) = verdict {
            return Some(r);
        }
        let (policy, name) = (helper.policy(), helper.name());
        self.register(id, &expects, policy, name, now)
    }

    fn register(
        &mut self,
        master: EntryId,
        reqs: &[ct_core::expect::ExpectRequest],
        policy: ct_core::expect::ExpectPolicy,
        name: &'static str,
        now: Instant,
    ) -> Option<DropReason> {
        for req in reqs {
            if self.ct.expect(master, *req, policy, name, now).is_err() {
                return Some(DropReason::ExpectFailed);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ct_core::{CtConfig, CtState};

    /// Ethernet/IPv4/UDP 10.0.1.2:1000 -> 10.0.2.2:2000, checksum 0 (none).
    fn udp_frame() -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2];
        let c = ct_core::wire::checksum::checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x03, 0xe8, 0x07, 0xd0, 0, 8, 0, 0]);
        f
    }

    #[test]
    fn dropped_first_packet_leaves_no_state_and_accept_confirms() {
        let mut p = Pipeline::new(Conntrack::new(CtConfig::default()), HelperRegistry::default());
        let f = udp_frame();
        let d = p.process(&f, PortId::Inside, Instant::ZERO, &DropStates(CtState::New.bit()));
        assert_eq!((d.outcome.state, d.verdict), (CtState::New, Verdict::Drop));
        assert_eq!(p.conntrack().count(), 0);
        let d = p.process(&f, PortId::Inside, Instant::ZERO, &AcceptAll);
        assert_eq!((d.outcome.state, d.verdict), (CtState::New, Verdict::Accept));
        assert_eq!(p.conntrack().entries(Instant::ZERO).count(), 1);
        // The next one is attached to the confirmed entry; a reject drops it but keeps the entry.
        struct RejectAll;
        impl Policy for RejectAll {
            fn filter(&self, v: &FrameView<'_>, _: Instant) -> Verdict {
                assert!(v.outcome.status.is_some_and(|s| s.contains(ct_core::Status::CONFIRMED)));
                Verdict::Reject
            }
        }
        let d = p.process(&f, PortId::Inside, Instant::ZERO, &RejectAll);
        assert_eq!(d.verdict, Verdict::Reject);
        assert_eq!(p.conntrack().entries(Instant::ZERO).count(), 1);
        assert_eq!((p.stats().accepted, p.stats().dropped), (1, 2));
    }

    /// Ethernet/IPv4/TCP with a correct checksum.
    fn tcp_frame(
        src: [u8; 4],
        dst: [u8; 4],
        ports: (u16, u16),
        seq_ack: (u32, u32),
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let len = 40 + data.len();
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, (len >> 8) as u8, len as u8, 0, 1, 0, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        let c = ct_core::wire::checksum::checksum(&f[14..34], 0);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&ports.0.to_be_bytes());
        f.extend_from_slice(&ports.1.to_be_bytes());
        f.extend_from_slice(&seq_ack.0.to_be_bytes());
        f.extend_from_slice(&seq_ack.1.to_be_bytes());
        f.extend_from_slice(&[0x50, flags, 0xfa, 0xf0, 0, 0, 0, 0]);
        f.extend_from_slice(data);
        let ip = parse_ip(&f[14..]).unwrap();
        let c = ct_core::wire::checksum::checksum(ip.l4, ct_core::wire::checksum::pseudo_header_sum(&ip, ip.l4.len()));
        f[50..52].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// Issue 11: bare SYNs to the FTP port used to take the helper's line
    /// state at SYN_SENT, from a pool of max(expect_max, 1024) (4096 by default), so a SYN
    /// flood left a real FTP control connection without its ALG. The state
    /// is now taken at the first line after the handshake.
    #[test]
    fn syns_to_the_ftp_port_do_not_take_the_alg_from_real_connections() {
        let ftp = helpers::ftp::Ftp::new(helpers::ftp::FtpConfig::default());
        let reg = HelperRegistry::builder().register(std::sync::Arc::new(ftp), &[21]).unwrap().build();
        let cfg = CtConfig { max_entries: 8192, ..CtConfig::default() };
        let mut p = Pipeline::new(Conntrack::new(cfg), reg);
        let (c, s) = ([10, 0, 1, 2], [10, 0, 2, 2]);
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        const PSH: u8 = 0x08;
        for i in 0..5000u16 {
            let src = [10, 9, (i >> 8) as u8, i as u8];
            let d = p.process(
                &tcp_frame(src, s, (1024 + i, 21), (7, 0), SYN, b""),
                PortId::Outside,
                Instant::ZERO,
                &AcceptAll,
            );
            assert_eq!(d.verdict, Verdict::Accept);
        }
        let mut at = |f: Vec<u8>, port| p.process(&f, port, Instant::from_millis(10), &AcceptAll);
        at(tcp_frame(c, s, (5000, 21), (100, 0), SYN, b""), PortId::Inside);
        at(tcp_frame(s, c, (21, 5000), (900, 101), SYN | ACK, b""), PortId::Outside);
        at(tcp_frame(c, s, (5000, 21), (101, 901), ACK, b""), PortId::Inside);
        let banner = b"220 ready\r\n";
        at(tcp_frame(s, c, (21, 5000), (901, 101), PSH | ACK, banner), PortId::Outside);
        let user = b"USER ftp\r\n";
        at(tcp_frame(c, s, (5000, 21), (101, 901 + banner.len() as u32), PSH | ACK, user), PortId::Inside);
        let port = b"PORT 10,0,1,2,156,64\r\n";
        let seq = 101 + user.len() as u32;
        at(tcp_frame(c, s, (5000, 21), (seq, 901 + banner.len() as u32), PSH | ACK, port), PortId::Inside);
        let x: Vec<_> = p.conntrack().expectations(Instant::from_millis(10)).collect();
        assert_eq!(x.len(), 1, "the PORT command opened its expectation");
        assert_eq!((x[0].req.tuple.dst, x[0].req.tuple.dport), (ct_core::Addr::v4(c), 40000));
        assert_eq!(p.conntrack().stats().helper_state_full, 0);
    }

    #[test]
    fn non_ip_is_untracked_and_broken_ip_invalid() {
        let mut p = Pipeline::new(Conntrack::new(CtConfig::default()), HelperRegistry::default());
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        let d = p.process(&arp, PortId::Outside, Instant::ZERO, &AcceptAll);
        assert_eq!((d.outcome.state, d.l4), (CtState::Untracked, None));
        let mut f = udp_frame();
        f[14 + 8] = 1; // TTL change breaks the header checksum
        let d = p.process(&f, PortId::Inside, Instant::ZERO, &AcceptAll);
        assert_eq!(d.outcome.reason, Some(InvalidReason::Ipv4BadChecksum));
        assert_eq!(p.invalid_counters().get(InvalidReason::Ipv4BadChecksum), 1);
    }
}
