//! The ctwall pipeline as a library.
//!
//! [`pipeline::Pipeline::process`] is the one function every frame goes
//! through, whether it comes from an AF_XDP ring, a capture file
//! ([`replay`]) or a test: layer-2 walk, pre-tracking (helper assignment),
//! tracking, the ruleset, the helper, confirmation.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod ctl;
pub mod lint;
pub mod mgmt;
pub mod pipeline;
pub mod reject;
pub mod replay;
pub mod rules;
pub mod run;
pub mod settings;
