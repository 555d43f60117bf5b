//! The bump-in-the-wire loop: frames from both ports through the pipeline,
//! forwarded to the other port, dropped, or rejected back to the sender;
//! periodic expiry; rule reloads that leave the connection table alone.

use crate::pipeline::{FragStatus, Pipeline, Policy, Verdict};
use ct_core::wire::{parse_frame, parse_ip};
use ct_core::Instant;
use rings::{Action, PacketIo, PortId};
use std::io;

/// Frames taken per receive batch.
pub const BATCH: usize = 64;
/// Table slots visited by the expiry sweep per batch: bounded work.
pub const GC_BUDGET: usize = 256;

/// Builds the answer to a rejected packet (TCP RST / ICMP unreachable).
pub type RejectBuilder = fn(&[u8], &ct_core::wire::IpPacket<'_>) -> Option<Vec<u8>>;

/// Bridge counters beyond the pipeline's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    pub forwarded: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub reject_sent: u64,
    pub non_ip_dropped: u64,
    /// Frames for the management plane (not bridged, not tracked).
    pub taken: u64,
    /// Fragments held for reassembly (each is later forwarded or dropped
    /// with its datagram, or forgotten when its queue times out).
    pub frag_held: u64,
}

/// The stateful bridge between two ports.
pub struct Bridge {
    pub pipeline: Pipeline,
    pub policy: Box<dyn Policy + Send>,
    /// Bridge ARP, LLDP and other non-IP frames.
    pub bridge_non_ip: bool,
    reject: RejectBuilder,
    stats: BridgeStats,
}

impl Bridge {
    pub fn new(
        pipeline: Pipeline,
        policy: Box<dyn Policy + Send>,
        bridge_non_ip: bool,
        reject: RejectBuilder,
    ) -> Bridge {
        Bridge { pipeline, policy, bridge_non_ip, reject, stats: BridgeStats::default() }
    }

    pub fn stats(&self) -> &BridgeStats {
        &self.stats
    }

    /// Swap the ruleset; the connection table is untouched.
    pub fn set_policy(&mut self, policy: Box<dyn Policy + Send>, bridge_non_ip: bool) {
        self.policy = policy;
        self.bridge_non_ip = bridge_non_ip;
    }

    /// One receive batch from `io` at time `now`; transmits what it decided.
    /// Returns the number of frames handled.
    pub fn poll(&mut self, io: &mut dyn PacketIo, now: Instant) -> io::Result<usize> {
        self.poll_with(io, now, &mut |_, _| false)
    }

    /// [`Bridge::poll`] with a look at every frame first: `take` returns
    /// `true` for a frame that is not transit (the management plane's), which
    /// is then neither tracked nor forwarded.
    pub fn poll_with(
        &mut self,
        io: &mut dyn PacketIo,
        now: Instant,
        take: &mut dyn FnMut(&[u8], PortId) -> bool,
    ) -> io::Result<usize> {
        let mut rejects: Vec<(PortId, Vec<u8>)> = Vec::new();
        let (pipe, policy, stats) = (&mut self.pipeline, &*self.policy, &mut self.stats);
        let (bridge_non_ip, reject) = (self.bridge_non_ip, self.reject);
        let n = io.rx_batch(BATCH, &mut |frame, meta| {
            if take(frame, meta.port) {
                stats.taken += 1;
                return Action::Drop;
            }
            let d = pipe.process(frame, meta.port, now, policy);
            match d.frag {
                FragStatus::Held => {
                    stats.frag_held += 1;
                    return Action::Drop;
                }
                FragStatus::Dropped(_) => {
                    stats.dropped += 1;
                    return Action::Drop;
                }
                FragStatus::Complete { frames } => {
                    // The datagram's verdict; its fragments (this frame
                    // among them) go out after the batch, as received.
                    match d.verdict {
                        Verdict::Accept => stats.forwarded += u64::from(frames),
                        Verdict::Drop => stats.dropped += u64::from(frames),
                        Verdict::Reject => {
                            stats.rejected += u64::from(frames);
                            let first = pipe.first_fragment();
                            let answer = first.and_then(|f| {
                                parse_frame(f).ok().and_then(|l2| parse_ip(l2.l3).ok().and_then(|ip| reject(f, &ip)))
                            });
                            if let Some(a) = answer {
                                rejects.push((meta.port, a));
                            }
                        }
                    }
                    return Action::Drop;
                }
                FragStatus::None => {}
            }
            let verdict = if d.l4.is_none() && d.outcome.state == ct_core::CtState::Untracked && !bridge_non_ip {
                stats.non_ip_dropped += 1;
                Verdict::Drop
            } else {
                d.verdict
            };
            match verdict {
                Verdict::Accept => {
                    stats.forwarded += 1;
                    Action::Forward(meta.port.other())
                }
                Verdict::Drop => {
                    stats.dropped += 1;
                    Action::Drop
                }
                Verdict::Reject => {
                    stats.rejected += 1;
                    let answer =
                        parse_frame(frame).ok().and_then(|l2| parse_ip(l2.l3).ok().and_then(|ip| reject(frame, &ip)));
                    if let Some(a) = answer {
                        rejects.push((meta.port, a));
                    }
                    Action::Drop
                }
            }
        })?;
        for (port, frame) in rejects {
            io.send(port, &frame)?;
            self.stats.reject_sent += 1;
        }
        self.pipeline.drain_emit(|port, frame| io.send(port, frame))?;
        io.flush()?;
        self.pipeline.housekeeping(now, GC_BUDGET);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{AcceptAll, DropStates};
    use ct_core::table::Conntrack;
    use ct_core::{CtConfig, CtState};
    use helpers::HelperRegistry;
    use rings::mem::MemIo;
    use rings::RxMeta;

    /// Ethernet/IPv4 (UDP) around `l4`, with IP id `id` and the flags and
    /// offset word `fo`.
    fn eth_ipv4(src: [u8; 4], dst: [u8; 4], id: u16, fo: u16, l4: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6..8].copy_from_slice(&fo.to_be_bytes());
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = ct_core::wire::checksum::checksum(&ip, 0);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip);
        f.extend_from_slice(l4);
        f
    }

    fn frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
        let mut u = sp.to_be_bytes().to_vec();
        u.extend_from_slice(&dp.to_be_bytes());
        u.extend_from_slice(&[0, 8, 0, 0]);
        eth_ipv4(src, dst, 1, 0, &u)
    }

    fn no_answer(_: &[u8], _: &ct_core::wire::IpPacket<'_>) -> Option<Vec<u8>> {
        None
    }

    fn echo_answer(f: &[u8], _: &ct_core::wire::IpPacket<'_>) -> Option<Vec<u8>> {
        Some(f.to_vec())
    }

    fn bridge(policy: Box<dyn Policy + Send>, non_ip: bool, reject: RejectBuilder) -> Bridge {
        Bridge::new(
            Pipeline::new(Conntrack::new(CtConfig::default()), HelperRegistry::default()),
            policy,
            non_ip,
            reject,
        )
    }

    #[test]
    fn forwards_to_the_other_port_and_keeps_state_across_policy_swaps() {
        let mut b = bridge(Box::new(AcceptAll), true, no_answer);
        let mut io = MemIo::new();
        io.push(frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), RxMeta { ts_ns: 0, port: PortId::Inside });
        assert_eq!(b.poll(&mut io, Instant::ZERO).unwrap(), 1);
        assert_eq!(io.tx[0].0, PortId::Outside);
        // New rules: drop NEW. The reply is ESTABLISHED and still crosses.
        b.set_policy(Box::new(DropStates(CtState::New.bit())), true);
        io.push(frame([10, 0, 0, 2], [10, 0, 0, 1], 2, 1), RxMeta { ts_ns: 0, port: PortId::Outside });
        io.push(frame([10, 0, 0, 2], [10, 0, 0, 1], 7, 8), RxMeta { ts_ns: 0, port: PortId::Outside });
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert_eq!(io.tx.len(), 2);
        assert_eq!(io.tx[1].0, PortId::Inside);
        assert_eq!((b.stats().forwarded, b.stats().dropped), (2, 1));
    }

    #[test]
    fn vlan_tagged_frames_are_tracked_inside_and_forwarded_with_their_tag() {
        let tag = |f: Vec<u8>| {
            let mut t = f[..12].to_vec();
            t.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]); // VLAN 42
            t.extend_from_slice(&f[12..]);
            t
        };
        let mut b = bridge(Box::new(DropStates(CtState::New.bit())), true, no_answer);
        let mut io = MemIo::new();
        // Rules that drop NEW: an unsolicited tagged frame from outside stays out.
        io.push(tag(frame([10, 0, 0, 2], [10, 0, 0, 1], 5, 6)), RxMeta { ts_ns: 0, port: PortId::Outside });
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert!(io.tx.is_empty());
        // Accept-all rules let a tagged request from inside open a connection...
        b.set_policy(Box::new(AcceptAll), true);
        let out = tag(frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2));
        io.push(out.clone(), RxMeta { ts_ns: 0, port: PortId::Inside });
        b.poll(&mut io, Instant::ZERO).unwrap();
        // ...whose tagged answer is ESTABLISHED under the NEW-dropping rules again.
        b.set_policy(Box::new(DropStates(CtState::New.bit())), true);
        io.push(tag(frame([10, 0, 0, 2], [10, 0, 0, 1], 2, 1)), RxMeta { ts_ns: 0, port: PortId::Outside });
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert_eq!(io.tx.len(), 2, "the request and its ESTABLISHED answer cross");
        assert_eq!(io.tx[0], (PortId::Outside, out), "forwarded byte for byte, tag included");
        assert_eq!(&io.tx[1].1[12..16], &[0x81, 0x00, 0x00, 0x2a]);
        assert_eq!(b.pipeline.conntrack().count(), 1);
    }

    /// A UDP datagram of `n` payload bytes as Ethernet frames of IPv4
    /// fragments of at most 1480 data bytes, in offset order.
    fn fragments(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, n: usize, id: u16) -> Vec<Vec<u8>> {
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sp.to_be_bytes());
        l4.extend_from_slice(&dp.to_be_bytes());
        l4.extend_from_slice(&((8 + n) as u16).to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend((0..n).map(|i| i as u8));
        l4.chunks(1480)
            .enumerate()
            .map(|(i, data)| {
                let more = (i + 1) * 1480 < l4.len();
                let fo = (i * 1480 / 8) as u16 | if more { 0x2000 } else { 0 };
                eth_ipv4(src, dst, id, fo, data)
            })
            .collect()
    }

    /// Inside may open; outside gets only answers.
    struct Stateful;
    impl Policy for Stateful {
        fn filter(&self, v: &crate::pipeline::FrameView<'_>, _: Instant) -> Verdict {
            match (v.port, v.outcome.state) {
                (PortId::Inside, _) | (_, CtState::Established) => Verdict::Accept,
                _ => Verdict::Drop,
            }
        }
    }

    /// Issue 12: fragments are reassembled before tracking, the datagram is
    /// decided once, and its original fragments leave unchanged, in the
    /// order they came, by the other port; a dropped datagram sends none.
    #[test]
    fn fragmented_datagrams_cross_whole_or_not_at_all() {
        let mut b = bridge(Box::new(Stateful), true, no_answer);
        let mut io = MemIo::new();
        let (a, c) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let at = |port| RxMeta { ts_ns: 0, port };
        let req = fragments(a, c, 4000, 53, 4000, 1);
        for k in [2, 0, 1] {
            io.push(req[k].clone(), at(PortId::Inside));
        }
        b.poll(&mut io, Instant::ZERO).unwrap();
        let out: Vec<_> = io.tx.drain(..).collect();
        assert_eq!(out, [2, 0, 1].map(|k| (PortId::Outside, req[k].clone())), "all three, as received");
        assert_eq!(b.pipeline.conntrack().count(), 1, "one connection for the datagram");
        // The fragmented answer is ESTABLISHED.
        let reply = fragments(c, a, 53, 4000, 3000, 2);
        for f in &reply {
            io.push(f.clone(), at(PortId::Outside));
        }
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert_eq!(
            io.tx.drain(..).map(|(p, _)| p).collect::<Vec<_>>(),
            [PortId::Inside, PortId::Inside, PortId::Inside]
        );
        // An unsolicited fragmented datagram from outside: nothing crosses.
        for f in fragments(c, a, 53, 9999, 3000, 3) {
            io.push(f, at(PortId::Outside));
        }
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert!(io.tx.is_empty());
        let st = b.stats();
        assert_eq!((st.frag_held, st.forwarded, st.dropped), (6, 6, 3));
        let d = b.pipeline.defrag().stats();
        assert_eq!((d.held, d.reassembled, d.queues, d.mem), (6, 3, 0, 0));
        assert_eq!(b.pipeline.stats().frames, 9);
    }

    /// A rejected fragmented datagram: no fragment crosses, and the answer
    /// is built from the first fragment (an ICMP error quotes it, as the
    /// kernel's does), out of the ingress port.
    #[test]
    fn a_rejected_fragmented_datagram_is_answered_from_its_first_fragment() {
        struct RejectOutside;
        impl Policy for RejectOutside {
            fn filter(&self, v: &crate::pipeline::FrameView<'_>, _: Instant) -> Verdict {
                if v.port == PortId::Outside {
                    Verdict::Reject
                } else {
                    Verdict::Accept
                }
            }
        }
        let mut b = bridge(Box::new(RejectOutside), true, echo_answer);
        let mut io = MemIo::new();
        let fr = fragments([10, 0, 0, 2], [10, 0, 0, 1], 53, 9999, 4000, 4);
        for k in [1, 2, 0] {
            io.push(fr[k].clone(), RxMeta { ts_ns: 0, port: PortId::Outside });
        }
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert_eq!(io.tx, [(PortId::Outside, fr[0].clone())], "one answer, from the first fragment");
        let s = b.stats();
        assert_eq!((s.rejected, s.reject_sent, s.forwarded), (3, 1, 0));
    }

    #[test]
    fn rejects_answer_out_of_the_ingress_port_and_non_ip_follows_config() {
        struct RejectAll;
        impl Policy for RejectAll {
            fn filter(&self, v: &crate::pipeline::FrameView<'_>, _: Instant) -> Verdict {
                if v.ip.is_some() {
                    Verdict::Reject
                } else {
                    Verdict::Accept
                }
            }
        }
        let mut b = bridge(Box::new(RejectAll), false, echo_answer);
        let mut io = MemIo::new();
        io.push(frame([10, 0, 0, 1], [10, 0, 0, 2], 1, 2), RxMeta { ts_ns: 0, port: PortId::Outside });
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend_from_slice(&[0; 28]);
        io.push(arp, RxMeta { ts_ns: 0, port: PortId::Inside });
        b.poll(&mut io, Instant::ZERO).unwrap();
        assert_eq!(io.tx.len(), 1);
        assert_eq!(io.tx[0].0, PortId::Outside, "the answer leaves by the ingress port");
        let s = b.stats();
        assert_eq!((s.rejected, s.reject_sent, s.non_ip_dropped), (1, 1, 1));
    }
}
