//! Table listings in the formats operators know (CONNTRACK_SPEC §10):
//! `/proc/net/nf_conntrack` (K-STD `ct_seq_show`), `conntrack -L`
//! (libnetfilter_conntrack's default output) and
//! `/proc/net/nf_conntrack_expect` (K-EXP `exp_seq_show`).

use crate::expect::Expectation;
use crate::status::Status;
use crate::table::{Counter, CtEvent, Entry, EventKind, ProtoState};
use crate::time::Instant;
use crate::tuple::{proto, proto_name, Tuple, L3};
use core::fmt::Write;
use core::net::Ipv6Addr;

/// Options for listings.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Print `packets= bytes=` (the kernel prints them when acct is on).
    pub counters: bool,
}

/// How addresses are written.
#[derive(Copy, Clone, PartialEq, Eq)]
enum AddrStyle {
    /// `%pI6`: eight groups of four hex digits.
    Proc,
    /// `inet_ntop`: compressed.
    Ntop,
}

fn write_addr(out: &mut String, t: &Tuple, src: bool, style: AddrStyle) {
    let a = if src { t.src } else { t.dst };
    let _ = match (t.l3, style) {
        (L3::V4, _) => write!(out, "{}", a.to_ip(L3::V4)),
        (L3::V6, AddrStyle::Ntop) => write!(out, "{}", Ipv6Addr::from(a.0)),
        (L3::V6, AddrStyle::Proc) => {
            let g: Vec<String> = a.0.chunks_exact(2).map(|c| format!("{:02x}{:02x}", c[0], c[1])).collect();
            write!(out, "{}", g.join(":"))
        }
    };
}

/// `src=… dst=… ` plus the protocol's l4 part.
fn write_tuple(out: &mut String, t: &Tuple, style: AddrStyle) {
    out.push_str("src=");
    write_addr(out, t, true, style);
    out.push_str(" dst=");
    write_addr(out, t, false, style);
    out.push(' ');
    let _ = match t.proto {
        proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP => write!(out, "sport={} dport={} ", t.sport, t.dport),
        proto::ICMP | proto::ICMPV6 => {
            write!(out, "type={} code={} id={} ", t.icmp_type(), t.icmp_code(), t.icmp_id())
        }
        proto::GRE => write!(out, "srckey=0x{:x} dstkey=0x{:x} ", t.sport, t.dport),
        _ => Ok(()),
    };
}

fn write_counter(out: &mut String, c: &Counter, opts: &ListOptions) {
    if opts.counters {
        let _ = write!(out, "packets={} bytes={} ", c.packets, c.bytes);
    }
}

/// The l4 tracker's part (`print_conntrack`): the TCP or SCTP state name,
/// or GRE's per-entry timeouts.
fn write_proto_state(out: &mut String, e: &Entry) {
    let _ = match &e.proto {
        ProtoState::Tcp(t) => write!(out, "{} ", t.state().name()),
        ProtoState::Sctp(st) => write!(out, "{} ", st.state.name()),
        ProtoState::Gre { timeout, stream_timeout } => {
            write!(out, "timeout={timeout}, stream_timeout={stream_timeout} ")
        }
        _ => Ok(()),
    };
}

/// Seconds left, floored, as the kernel prints them.
pub fn seconds_left(deadline: Instant, now: Instant) -> u64 {
    deadline.saturating_since(now).as_secs()
}

fn flag_assured(out: &mut String, s: Status) {
    if s.contains(Status::HW_OFFLOAD) {
        out.push_str("[HW_OFFLOAD] ");
    } else if s.contains(Status::OFFLOAD) {
        out.push_str("[OFFLOAD] ");
    } else if s.contains(Status::ASSURED) {
        out.push_str("[ASSURED] ");
    }
}

/// Both tuples with their counters, `[UNREPLIED]` between them and
/// `[ASSURED]` after: the middle of every listing and event line.
fn write_tuples(out: &mut String, e: &Entry, style: AddrStyle, opts: &ListOptions) {
    write_tuple(out, &e.orig, style);
    write_counter(out, &e.counters[0], opts);
    if !e.status.contains(Status::SEEN_REPLY) {
        out.push_str("[UNREPLIED] ");
    }
    write_tuple(out, &e.reply, style);
    write_counter(out, &e.counters[1], opts);
    flag_assured(out, e.status);
}

/// One line of `/proc/net/nf_conntrack` (without the trailing newline).
/// `use=` is printed as 2, the usual value for an idle entry.
pub fn proc_line(e: &Entry, now: Instant, opts: &ListOptions) -> String {
    let mut out = String::with_capacity(200);
    let _ = write!(
        out,
        "{:<8} {} {:<8} {} {} ",
        e.orig.l3.name(),
        e.orig.l3.number(),
        proto_name(e.orig.proto),
        e.orig.proto,
        seconds_left(e.deadline, now)
    );
    write_proto_state(&mut out, e);
    write_tuples(&mut out, e, AddrStyle::Proc, opts);
    let _ = write!(out, "mark={} zone={} use=2", e.mark, e.zone);
    out
}

/// One line of `conntrack -L` output.
pub fn conntrack_line(e: &Entry, now: Instant, opts: &ListOptions) -> String {
    let mut out = String::with_capacity(200);
    let _ = write!(out, "{:<8} {} {} ", proto_name(e.orig.proto), e.orig.proto, seconds_left(e.deadline, now));
    if let Some(st) = e.state_name() {
        // conntrack -L prints the TCP or SCTP state only (GRE timeouts are
        // not in ctnetlink).
        let _ = write!(out, "{st} ");
    }
    write_tuples(&mut out, e, AddrStyle::Ntop, opts);
    let _ = write!(out, "mark={} ", e.mark);
    if e.zone != 0 {
        let _ = write!(out, "zone={} ", e.zone);
    }
    if let Some(h) = &e.helper {
        let _ = write!(out, "helper={} ", h.name);
    }
    out.push_str("use=1");
    out
}

/// One line of `conntrack -E` output (libnetfilter_conntrack's default
/// event format): `[NEW] tcp      6 120 SYN_SENT src=… [UNREPLIED] src=…`.
/// DESTROY lines carry no timeout; a mark and a zone are printed when they
/// are not zero, as ctnetlink puts them in events only then.
pub fn event_line(ev: &CtEvent, opts: &ListOptions) -> String {
    let e = &ev.entry;
    let mut out = String::with_capacity(200);
    let tag = format!("[{}]", ev.kind.name());
    let _ = write!(out, "{tag:>9} {:<8} {} ", proto_name(e.orig.proto), e.orig.proto);
    if let (Some(left), false) = (ev.remaining, ev.kind == EventKind::Destroy) {
        let _ = write!(out, "{} ", left.as_secs());
    }
    if let Some(st) = e.state_name() {
        let _ = write!(out, "{st} ");
    }
    write_tuples(&mut out, e, AddrStyle::Ntop, opts);
    if e.mark != 0 {
        let _ = write!(out, "mark={} ", e.mark);
    }
    if e.zone != 0 {
        let _ = write!(out, "zone={} ", e.zone);
    }
    if let Some(h) = &e.helper {
        let _ = write!(out, "helper={} ", h.name);
    }
    out.truncate(out.trim_end().len());
    out
}

/// One line of `/proc/net/nf_conntrack_expect`.
pub fn expect_line(x: &Expectation, now: Instant) -> String {
    let mut out = String::with_capacity(120);
    let t = &x.req.tuple;
    let _ = write!(out, "{} l3proto = {} proto={} ", seconds_left(x.expires, now), t.l3.number(), t.proto);
    let (src, sport) = x.listed_src();
    let shown = Tuple { src, sport, ..*t };
    write_tuple(&mut out, &shown, AddrStyle::Proc);
    out.push_str(x.helper);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::{EntryId, ExpectRequest, LineTrack};
    use crate::table::HelperSlot;
    use crate::tuple::Addr;
    use crate::udp::UdpState;
    use core::time::Duration;

    fn udp_entry() -> Entry {
        let orig = Tuple {
            l3: L3::V4,
            proto: proto::UDP,
            src: Addr::v4([10, 0, 1, 2]),
            dst: Addr::v4([10, 0, 2, 2]),
            sport: 5353,
            dport: 53,
        };
        Entry {
            orig,
            reply: orig.invert().unwrap(),
            zone: 0,
            status: Status::CONFIRMED | Status::SEEN_REPLY,
            deadline: Instant::from_millis(28_500),
            proto: ProtoState::Udp(UdpState::default()),
            mark: 0,
            helper: None,
            counters: [Counter { packets: 3, bytes: 164 }, Counter { packets: 2, bytes: 112 }],
        }
    }

    #[test]
    fn proc_udp_line_matches_kernel_layout() {
        let e = udp_entry();
        assert_eq!(
            proc_line(&e, Instant::ZERO, &ListOptions::default()),
            "ipv4     2 udp      17 28 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 src=10.0.2.2 dst=10.0.1.2 \
             sport=53 dport=5353 mark=0 zone=0 use=2"
        );
        assert_eq!(
            proc_line(&e, Instant::ZERO, &ListOptions { counters: true }),
            "ipv4     2 udp      17 28 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 packets=3 bytes=164 \
             src=10.0.2.2 dst=10.0.1.2 sport=53 dport=5353 packets=2 bytes=112 mark=0 zone=0 use=2"
        );
    }

    #[test]
    fn conntrack_l_line_shows_helper_and_nonzero_zone_only() {
        let mut e = udp_entry();
        e.status.remove(Status::SEEN_REPLY);
        e.helper = Some(HelperSlot { id: 0, name: "tftp", line: LineTrack::default() });
        assert_eq!(
            conntrack_line(&e, Instant::ZERO, &ListOptions::default()),
            "udp      17 28 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 \
             sport=53 dport=5353 mark=0 helper=tftp use=1"
        );
        e.zone = 7;
        assert!(conntrack_line(&e, Instant::ZERO, &ListOptions::default()).contains(" mark=0 zone=7 helper=tftp"));
    }

    #[test]
    fn ipv6_icmp_proc_uses_full_groups() {
        let orig = Tuple {
            l3: L3::V6,
            proto: proto::ICMPV6,
            src: Addr::v6([0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            dst: Addr::v6([0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
            sport: 77,
            dport: 128 << 8,
        };
        let mut e = udp_entry();
        e.orig = orig;
        e.reply = orig.invert().unwrap();
        e.proto = ProtoState::Icmp;
        let l = proc_line(&e, Instant::ZERO, &ListOptions::default());
        assert!(l.starts_with("ipv6     10 icmpv6   58 28 src=fd00:0001:0000:0000:0000:0000:0000:0002 "), "{l}");
        assert!(l.contains("type=128 code=0 id=77 src=fd00:0002:"), "{l}");
        assert!(l.contains("type=129 code=0 id=77 mark=0"), "{l}");
        let c = conntrack_line(&e, Instant::ZERO, &ListOptions::default());
        assert!(c.contains("src=fd00:1::2 dst=fd00:2::2 type=128"), "{c}");
    }

    #[test]
    fn event_lines_follow_conntrack_e() {
        let mut e = udp_entry();
        e.status.remove(Status::SEEN_REPLY);
        let opts = ListOptions::default();
        let new = CtEvent { kind: EventKind::New, entry: e.clone(), remaining: Some(Duration::from_millis(29_900)) };
        assert_eq!(
            event_line(&new, &opts),
            "    [NEW] udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 [UNREPLIED] src=10.0.2.2 \
             dst=10.0.1.2 sport=53 dport=5353"
        );
        e.status |= Status::SEEN_REPLY | Status::ASSURED;
        e.mark = 3;
        let gone = CtEvent { kind: EventKind::Destroy, entry: e, remaining: None };
        assert_eq!(
            event_line(&gone, &ListOptions { counters: true }),
            "[DESTROY] udp      17 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 packets=3 bytes=164 src=10.0.2.2 \
             dst=10.0.1.2 sport=53 dport=5353 packets=2 bytes=112 [ASSURED] mark=3"
        );
    }

    #[test]
    fn expect_line_matches_kernel_example() {
        let x = Expectation {
            req: ExpectRequest {
                tuple: Tuple {
                    l3: L3::V4,
                    proto: proto::TCP,
                    src: Addr::v4([10, 0, 2, 2]),
                    dst: Addr::v4([10, 0, 1, 2]),
                    sport: 1234,
                    dport: 40000,
                },
                match_src_addr: true,
                match_sport: false,
                class: 0,
            },
            zone: 0,
            master: EntryId { slot: 0, generation: 0 },
            helper: "ftp",
            created: Instant::ZERO,
            expires: Instant::ZERO + Duration::from_millis(298_700),
        };
        assert_eq!(
            expect_line(&x, Instant::ZERO),
            "298 l3proto = 2 proto=6 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000 ftp"
        );
    }
}
