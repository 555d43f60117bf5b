//! Application-layer gateway helpers, modelled on the kernel's
//! `nf_conntrack_helper` (K-HLP): a helper is attached explicitly to a
//! connection (like nftables `ct helper set`), runs at the confirm step for
//! packets of that connection after the ruleset accepted them, and may ask
//! for expectations of RELATED connections or drop the packet.
#![forbid(unsafe_code)]

pub mod ftp;
pub mod tftp;

use arrayvec::ArrayVec;
use ct_core::expect::{ExpectPolicy, ExpectRequest, LineTrack};
use ct_core::wire::TcpSeg;
use ct_core::{CtInfo, Dir, Tuple, Zone};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Expectations one packet may request at most.
pub const MAX_REQUESTS: usize = 4;

/// Everything a helper sees of one packet and its connection.
pub struct HelperCx<'a> {
    pub dir: Dir,
    pub ctinfo: CtInfo,
    pub zone: Zone,
    /// The connection's original-direction tuple.
    pub orig: Tuple,
    /// The connection's reply-direction tuple.
    pub reply: Tuple,
    /// The TCP segment, for helpers on TCP connections.
    pub tcp: Option<TcpSeg<'a>>,
    /// The L4 payload (TCP or UDP).
    pub payload: &'a [u8],
    /// Per-connection line tracking (FTP).
    pub line: &'a mut LineTrack,
    /// Expectations requested by this packet; the caller registers them.
    pub expects: &'a mut ArrayVec<ExpectRequest, MAX_REQUESTS>,
}

impl HelperCx<'_> {
    /// The tuple of the packet's direction.
    pub fn tuple(&self) -> &Tuple {
        match self.dir {
            Dir::Original => &self.orig,
            Dir::Reply => &self.reply,
        }
    }
}

/// Why a helper dropped a packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// A command or reply pattern matched only partially or was malformed
    /// ("partial matching of `PORT'").
    PartialMatch,
    /// The expectation could not be registered ("cannot add expectation").
    ExpectFailed,
}

impl DropReason {
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::PartialMatch => "helper_partial_match",
            DropReason::ExpectFailed => "helper_expect_failed",
        }
    }
}

/// A helper's answer for one packet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HelperVerdict {
    Accept,
    Drop(DropReason),
}

/// An application-layer gateway.
pub trait AlgHelper: Send + Sync + fmt::Debug {
    /// Name as listed (`helper=ftp`).
    fn name(&self) -> &'static str;
    /// The L4 protocol it inspects.
    fn proto(&self) -> u8;
    /// Its expectation policy.
    fn policy(&self) -> ExpectPolicy;
    /// Inspect one packet of a connection the helper is attached to.
    fn help(&self, cx: &mut HelperCx<'_>) -> HelperVerdict;
}

/// Index of a helper in its registry.
pub type HelperId = u8;

/// Error building a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// The same protocol and port registered twice (the kernel's `-EBUSY`).
    Duplicate { proto: u8, port: u16 },
    /// More helpers than a `HelperId` can name.
    TooMany,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Duplicate { proto, port } => {
                write!(f, "a helper is already registered for protocol {proto} port {port}")
            }
            RegistryError::TooMany => write!(f, "too many helpers"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// Helpers keyed by (protocol, port), frozen once built and shared by `Arc`.
#[derive(Debug, Default, Clone)]
pub struct HelperRegistry {
    helpers: Vec<Arc<dyn AlgHelper>>,
    by_port: HashMap<(u8, u16), HelperId>,
}

/// Builds a [`HelperRegistry`].
#[derive(Debug, Default)]
pub struct RegistryBuilder {
    reg: HelperRegistry,
}

impl RegistryBuilder {
    /// Register `helper` on the given server ports.
    pub fn register(mut self, helper: Arc<dyn AlgHelper>, ports: &[u16]) -> Result<Self, RegistryError> {
        let id = HelperId::try_from(self.reg.helpers.len()).map_err(|_| RegistryError::TooMany)?;
        let proto = helper.proto();
        for &port in ports {
            if self.reg.by_port.insert((proto, port), id).is_some() {
                return Err(RegistryError::Duplicate { proto, port });
            }
        }
        self.reg.helpers.push(helper);
        Ok(self)
    }

    pub fn build(self) -> HelperRegistry {
        self.reg
    }
}

impl HelperRegistry {
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The helper to attach to a new connection of `proto` towards `dport`.
    pub fn lookup(&self, proto: u8, dport: u16) -> Option<HelperId> {
        self.by_port.get(&(proto, dport)).copied()
    }

    /// The first registered helper called `name` (for `CT --helper NAME`
    /// in the pre-tracking stage).
    pub fn by_name(&self, name: &str) -> Option<HelperId> {
        let i = self.helpers.iter().position(|h| h.name() == name)?;
        HelperId::try_from(i).ok()
    }

    pub fn get(&self, id: HelperId) -> Option<&dyn AlgHelper> {
        self.helpers.get(usize::from(id)).map(|h| h.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.helpers.is_empty()
    }
}
