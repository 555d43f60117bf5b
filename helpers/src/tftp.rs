//! TFTP helper (K-TFTP `nf_conntrack_tftp.c`, CONNTRACK_SPEC §8.3).
//!
//! On every packet of the connection, the first (NEW) one included, a UDP
//! payload that starts with opcode RRQ (1) or WRQ (2) asks for an
//! expectation of the server's answer from its new transfer port:
//! `server:* → client:client-port`, UDP, taken from the reply tuple. Other
//! opcodes and payloads shorter than 2 bytes are ignored.

use crate::ftp::family_addr;
use crate::{AlgHelper, DropReason, HelperCx, HelperVerdict};
use ct_core::expect::{ExpectPolicy, ExpectRequest};
use ct_core::tuple::proto;
use ct_core::{CtInfo, Tuple};

/// Helper name as listed (`helper=tftp`).
pub const NAME: &str = "tftp";

/// The kernel's default port (`TFTP_PORT`).
pub const TFTP_PORT: u16 = 69;

/// Read request (`TFTP_OPCODE_READ`, [RFC 1350 § 5]).
///
/// [RFC 1350 § 5]: https://www.rfc-editor.org/rfc/rfc1350#section-5
pub const OPCODE_READ: u16 = 1;
/// Write request (`TFTP_OPCODE_WRITE`).
pub const OPCODE_WRITE: u16 = 2;

/// The TFTP helper. It has no parameters besides its ports.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tftp;

impl Tftp {
    pub const fn new() -> Tftp {
        Tftp
    }

    /// The expectation a request on a connection with reply tuple `reply`
    /// and family `orig.l3` asks for.
    pub fn expectation(orig: &Tuple, reply: &Tuple) -> ExpectRequest {
        let l3 = orig.l3;
        ExpectRequest {
            tuple: Tuple {
                l3,
                proto: proto::UDP,
                src: family_addr(l3, reply.src),
                dst: family_addr(l3, reply.dst),
                sport: 0,
                dport: reply.dport,
            },
            match_src_addr: true,
            match_sport: false,
            class: 0,
        }
    }
}

impl AlgHelper for Tftp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn proto(&self) -> u8 {
        proto::UDP
    }

    fn policy(&self) -> ExpectPolicy {
        ExpectPolicy::KERNEL_DEFAULT
    }

    /// `cx.payload` is the UDP payload: the bytes after the 8-byte UDP
    /// header up to the end of the IP packet (the kernel reads the opcode at
    /// `protoff + sizeof(struct udphdr)` without looking at the UDP length).
    fn help(&self, cx: &mut HelperCx<'_>) -> HelperVerdict {
        // `nf_confirm` never calls a helper for RELATED_REPLY packets (ICMP
        // errors); the helper itself looks at every other ctinfo.
        if cx.ctinfo == CtInfo::RelatedReply {
            return HelperVerdict::Accept;
        }
        let [hi, lo, ..] = *cx.payload else {
            return HelperVerdict::Accept;
        };
        match u16::from_be_bytes([hi, lo]) {
            OPCODE_READ | OPCODE_WRITE => {
                let req = Tftp::expectation(&cx.orig, &cx.reply);
                match cx.expects.try_push(req) {
                    Ok(()) => HelperVerdict::Accept,
                    Err(_) => HelperVerdict::Drop(DropReason::ExpectFailed),
                }
            }
            // DATA, ACK, ERROR and unknown opcodes.
            _ => HelperVerdict::Accept,
        }
    }
}
