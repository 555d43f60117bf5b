//! From the `config` crate's plain data to the runtime objects.

use config::{Config, HelperKind};
use ct_core::config::{SctpTimeouts, TcpKnobs, TcpTimeouts};
use ct_core::CtConfig;
use helpers::ftp::{Ftp, FtpConfig};
use helpers::tftp::Tftp;
use helpers::{HelperRegistry, RegistryError};
use std::sync::Arc;
use std::time::Duration;

fn secs(s: config::Secs) -> Duration {
    Duration::from_secs(u64::from(s.0))
}

/// The tracker settings of a configuration.
pub fn ct_config(c: &Config) -> CtConfig {
    let k = &c.conntrack;
    CtConfig {
        tcp: TcpTimeouts {
            syn_sent: secs(k.tcp_timeout_syn_sent),
            syn_recv: secs(k.tcp_timeout_syn_recv),
            established: secs(k.tcp_timeout_established),
            fin_wait: secs(k.tcp_timeout_fin_wait),
            close_wait: secs(k.tcp_timeout_close_wait),
            last_ack: secs(k.tcp_timeout_last_ack),
            time_wait: secs(k.tcp_timeout_time_wait),
            close: secs(k.tcp_timeout_close),
            syn_sent2: secs(k.tcp_timeout_syn_sent2),
            max_retrans: secs(k.tcp_timeout_max_retrans),
            unacknowledged: secs(k.tcp_timeout_unacknowledged),
        },
        tcp_knobs: TcpKnobs {
            loose: k.tcp_loose,
            be_liberal: k.tcp_be_liberal,
            ignore_invalid_rst: k.tcp_ignore_invalid_rst,
            max_retrans: k.tcp_max_retrans,
        },
        udp: secs(k.udp_timeout),
        udp_stream: secs(k.udp_timeout_stream),
        sctp: SctpTimeouts {
            closed: secs(k.sctp_timeout_closed),
            cookie_wait: secs(k.sctp_timeout_cookie_wait),
            cookie_echoed: secs(k.sctp_timeout_cookie_echoed),
            established: secs(k.sctp_timeout_established),
            shutdown_sent: secs(k.sctp_timeout_shutdown_sent),
            shutdown_recd: secs(k.sctp_timeout_shutdown_recd),
            shutdown_ack_sent: secs(k.sctp_timeout_shutdown_ack_sent),
            heartbeat_sent: secs(k.sctp_timeout_heartbeat_sent),
        },
        icmp: secs(k.icmp_timeout),
        icmpv6: secs(k.icmpv6_timeout),
        generic: secs(k.generic_timeout),
        gre: secs(k.gre_timeout),
        gre_stream: secs(k.gre_timeout_stream),
        checksum: k.checksum,
        acct: k.acct,
        max_entries: k.max.0,
        max_entries_v6: k.max_v6.0,
        max_expectations: k.expect_max,
    }
}

fn instance(kind: HelperKind, loose: bool) -> Arc<dyn helpers::AlgHelper> {
    match kind {
        HelperKind::Ftp => Arc::new(Ftp::new(FtpConfig { loose })),
        HelperKind::Tftp => Arc::new(Tftp::new()),
    }
}

/// The helper registry of a configuration: the `helpers:` port list, plus
/// (without ports) any helper only the raw stage names.
pub fn helper_registry(c: &Config) -> Result<HelperRegistry, RegistryError> {
    let mut b = HelperRegistry::builder();
    for spec in &c.helpers.0 {
        b = b.register(instance(spec.helper, spec.loose), &spec.ports.0)?;
    }
    let mut extra: Vec<HelperKind> = Vec::new();
    for r in &c.raw {
        if let config::RawAction::Helper(kind) = r.action {
            if !c.helpers.0.iter().any(|h| h.helper == kind) && !extra.contains(&kind) {
                extra.push(kind);
            }
        }
    }
    for kind in extra {
        b = b.register(instance(kind, false), &[])?;
    }
    Ok(b.build())
}

/// The AF_XDP settings of a configuration.
pub fn xdp_config(c: &Config) -> rings::xdp::XdpConfig {
    let x = &c.xdp;
    rings::xdp::XdpConfig {
        inside: c.interfaces.inside.0.clone(),
        outside: c.interfaces.outside.0.clone(),
        queue: x.queue,
        frame_count: x.frames.0,
        frame_size: x.frame_size.0,
        rx_size: x.ring_size.0,
        tx_size: x.ring_size.0,
        fill_size: x.ring_size.0,
        comp_size: x.ring_size.0,
        mode: match x.mode {
            config::XdpMode::Auto => rings::xdp::XdpMode::Auto,
            config::XdpMode::Native => rings::xdp::XdpMode::Native,
            config::XdpMode::Generic => rings::xdp::XdpMode::Generic,
        },
        zero_copy: match x.zero_copy {
            config::ZeroCopy::Auto => rings::xdp::ZeroCopy::Auto,
            config::ZeroCopy::On => rings::xdp::ZeroCopy::On,
            config::ZeroCopy::Off => rings::xdp::ZeroCopy::Off,
        },
    }
}

/// The reassembly settings of a configuration.
pub fn defrag_config(c: &Config) -> ct_core::defrag::DefragConfig {
    let d = &c.defrag;
    ct_core::defrag::DefragConfig {
        ipfrag_time: secs(d.ipfrag_time),
        ipfrag_high_thresh: d.ipfrag_high_thresh.0 as usize,
        ipfrag_low_thresh: d.ipfrag_low_thresh.0 as usize,
        ipfrag_max_dist: d.ipfrag_max_dist,
        frag6_timeout: secs(d.frag6_timeout),
        frag6_high_thresh: d.frag6_high_thresh.0 as usize,
        frag6_low_thresh: d.frag6_low_thresh.0 as usize,
    }
}

/// A pipeline for `c`: its tracker settings, helpers and reassembly.
pub fn pipeline(c: &Config, helpers: HelperRegistry) -> crate::pipeline::Pipeline {
    let defrag = ct_core::defrag::Defrag::new(defrag_config(c));
    crate::pipeline::Pipeline::with_defrag(ct_core::table::Conntrack::new(ct_config(c)), helpers, defrag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_the_trackers_default() {
        assert_eq!(ct_config(&Config::default()), CtConfig::default());
    }

    #[test]
    fn sctp_timeouts_reach_the_tracker() {
        let mut c = Config::default();
        c.conntrack.sctp_timeout_established = config::Secs(3600);
        c.conntrack.sctp_timeout_heartbeat_sent = config::Secs(5);
        let ct = ct_config(&c);
        assert_eq!(ct.sctp.established, Duration::from_secs(3600));
        assert_eq!(ct.sctp.heartbeat_sent, Duration::from_secs(5));
        assert_eq!(ct.sctp.closed, Duration::from_secs(10));
    }
}
