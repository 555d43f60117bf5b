//! Connection tracking with Linux nf_conntrack semantics.
//!
//! `ct-core` is sans-IO and has no clock: the caller passes every packet and
//! the time ([`time::Instant`]). Layers, bottom up:
//!
//! * [`wire`]: checked zero-copy views (Ethernet/VLAN, IPv4, IPv6, TCP, UDP,
//!   ICMP, ICMPv6).
//! * [`tuple`], [`status`]: the kernel's tuple, status bits, ctinfo and ctstate.
//! * [`tcp`], [`udp`], [`sctp`], [`icmp`], and the generic tracker in
//!   [`table`]: the per-protocol state machines (K-TCP, K-UDP, K-SCTP,
//!   K-ICMP, K-GEN).
//! * [`table`]: the connection table, lookups in both directions,
//!   unconfirmed entries, ICMP error correlation, timeouts.
//! * [`expect`]: expectations created by helpers.
//! * [`listing`]: `/proc/net/nf_conntrack`, `conntrack -L` and
//!   `/proc/net/nf_conntrack_expect` formats.
#![forbid(unsafe_code)]

pub mod config;
pub mod defrag;
pub mod expect;
pub mod icmp;
pub mod invalid;
pub mod listing;
pub mod sctp;
pub mod seq;
pub mod status;
mod store;
mod sync;
pub mod table;
pub mod tcp;
pub mod time;
pub mod tuple;
pub mod udp;
pub mod wire;

pub use config::CtConfig;
pub use invalid::InvalidReason;
pub use status::{CtInfo, CtState, Status};
pub use time::Instant;
pub use tuple::{Addr, Dir, Tuple, Zone, L3};
