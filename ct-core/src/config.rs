//! Every timeout and knob of the tracker, with the kernel's defaults
//! (Appendix A of CONNTRACK_SPEC; K-TCP `tcp_timeouts`, K-UDP, K-SCTP, K-ICMP, K-GEN,
//! K-STD). Plain data: the `config` crate maps RON onto it.

use crate::sctp::SctpConntrack;
use core::time::Duration;

const fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// TCP timeouts per state (`net.netfilter.nf_conntrack_tcp_timeout_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpTimeouts {
    pub syn_sent: Duration,
    pub syn_recv: Duration,
    pub established: Duration,
    pub fin_wait: Duration,
    pub close_wait: Duration,
    pub last_ack: Duration,
    pub time_wait: Duration,
    pub close: Duration,
    pub syn_sent2: Duration,
    /// The cap after `max_retrans` retransmissions (`..._timeout_max_retrans`).
    pub max_retrans: Duration,
    /// The cap while data is unacknowledged (`..._timeout_unacknowledged`).
    pub unacknowledged: Duration,
}

impl Default for TcpTimeouts {
    fn default() -> Self {
        TcpTimeouts {
            syn_sent: s(120),
            syn_recv: s(60),
            established: s(432_000),
            fin_wait: s(120),
            close_wait: s(60),
            last_ack: s(30),
            time_wait: s(120),
            close: s(10),
            syn_sent2: s(120),
            max_retrans: s(300),
            unacknowledged: s(300),
        }
    }
}

/// SCTP timeouts per state (`net.netfilter.nf_conntrack_sctp_timeout_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SctpTimeouts {
    /// Also the timeout of NONE (the kernel's "new" timeout).
    pub closed: Duration,
    pub cookie_wait: Duration,
    pub cookie_echoed: Duration,
    pub established: Duration,
    pub shutdown_sent: Duration,
    pub shutdown_recd: Duration,
    pub shutdown_ack_sent: Duration,
    pub heartbeat_sent: Duration,
}

impl Default for SctpTimeouts {
    fn default() -> Self {
        SctpTimeouts {
            closed: s(10),
            cookie_wait: s(3),
            cookie_echoed: s(3),
            established: s(210),
            shutdown_sent: s(3),
            shutdown_recd: s(3),
            shutdown_ack_sent: s(3),
            heartbeat_sent: s(30),
        }
    }
}

impl SctpTimeouts {
    /// The timeout of state `s`.
    pub fn of(&self, s: SctpConntrack) -> Duration {
        match s {
            SctpConntrack::None | SctpConntrack::Closed => self.closed,
            SctpConntrack::CookieWait => self.cookie_wait,
            SctpConntrack::CookieEchoed => self.cookie_echoed,
            SctpConntrack::Established => self.established,
            SctpConntrack::ShutdownSent => self.shutdown_sent,
            SctpConntrack::ShutdownRecd => self.shutdown_recd,
            SctpConntrack::ShutdownAckSent => self.shutdown_ack_sent,
            SctpConntrack::HeartbeatSent => self.heartbeat_sent,
        }
    }
}

/// TCP behaviour knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpKnobs {
    /// `nf_conntrack_tcp_loose`: pick up connections from a mid-stream ACK.
    pub loose: bool,
    /// `nf_conntrack_tcp_be_liberal`: window violations are never INVALID.
    pub be_liberal: bool,
    /// `nf_conntrack_tcp_ignore_invalid_rst`.
    pub ignore_invalid_rst: bool,
    /// `nf_conntrack_tcp_max_retrans`: retransmissions before the 300 s cap.
    pub max_retrans: u8,
}

impl Default for TcpKnobs {
    fn default() -> Self {
        TcpKnobs { loose: true, be_liberal: false, ignore_invalid_rst: false, max_retrans: 3 }
    }
}

/// All tracker settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtConfig {
    pub tcp: TcpTimeouts,
    pub tcp_knobs: TcpKnobs,
    /// `nf_conntrack_udp_timeout`.
    pub udp: Duration,
    /// `nf_conntrack_udp_timeout_stream`.
    pub udp_stream: Duration,
    /// `nf_conntrack_sctp_timeout_*`.
    pub sctp: SctpTimeouts,
    /// `nf_conntrack_icmp_timeout`.
    pub icmp: Duration,
    /// `nf_conntrack_icmpv6_timeout`.
    pub icmpv6: Duration,
    /// `nf_conntrack_generic_timeout`.
    pub generic: Duration,
    /// `nf_conntrack_gre_timeout`.
    pub gre: Duration,
    /// `nf_conntrack_gre_timeout_stream`.
    pub gre_stream: Duration,
    /// `nf_conntrack_checksum`: verify L4 checksums.
    pub checksum: bool,
    /// `nf_conntrack_acct`: keep per-direction packet and byte counters.
    pub acct: bool,
    /// `nf_conntrack_max` for IPv4: the table is allocated for this many
    /// IPv4 connections when it is made.
    pub max_entries: u32,
    /// The same for IPv6, whose entries are larger (the kernel has one
    /// limit for both; a separate one keeps a flood in one family from
    /// taking the other's room).
    pub max_entries_v6: u32,
    /// `nf_conntrack_expect_max`.
    pub max_expectations: u32,
}

impl Default for CtConfig {
    fn default() -> Self {
        CtConfig {
            tcp: TcpTimeouts::default(),
            tcp_knobs: TcpKnobs::default(),
            udp: s(30),
            udp_stream: s(120),
            sctp: SctpTimeouts::default(),
            icmp: s(30),
            icmpv6: s(30),
            generic: s(600),
            gre: s(30),
            gre_stream: s(180),
            checksum: true,
            acct: false,
            // The kernel's auto-size on a machine with more than 4 GiB.
            max_entries: 262_144,
            max_entries_v6: 65_536,
            max_expectations: 4096,
        }
    }
}
