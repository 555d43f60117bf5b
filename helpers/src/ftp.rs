//! FTP helper (K-FTP `nf_conntrack_ftp.c`, CONNTRACK_SPEC §8.2).
//!
//! Watches the control connection for the commands and replies that announce
//! a data connection and asks for an expectation of it:
//!
//! * `PORT`/`EPRT` from the client: expect `server:* → client:port`.
//! * `227`/`229` from the server: expect `client:* → server:port`.
//!
//! Only packets with ctinfo ESTABLISHED or ESTABLISHED_REPLY that carry TCP
//! payload are inspected, and only when the segment starts right after a
//! line end seen earlier in that direction (see [`find_nl_seq`]). A partial
//! or malformed match drops the packet. The address in the command must be
//! the sender's own unless [`FtpConfig::loose`] is set.

pub mod parse;

mod inet;

use crate::{AlgHelper, DropReason, HelperCx, HelperVerdict};
use ct_core::expect::{ExpectPolicy, ExpectRequest, LineTrack};
use ct_core::seq::{after, before};
use ct_core::tuple::proto;
use ct_core::{Addr, CtInfo, Dir, Tuple, L3};
use parse::{FtpCmd, Search};

/// Helper name as listed (`helper=ftp`).
pub const NAME: &str = "ftp";

/// The kernel's default port (`FTP_PORT`).
pub const FTP_PORT: u16 = 21;

/// Line starts remembered per direction (`NUM_SEQ_TO_REMEMBER`).
pub const NUM_SEQ_TO_REMEMBER: usize = 2;

/// Module parameters of `nf_conntrack_ftp` that change its behaviour.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FtpConfig {
    /// `loose=1`: when the address in a command is not the sender's, still
    /// expect the data connection, towards the address in the command.
    /// Default `false`: accept the packet but expect nothing.
    pub loose: bool,
}

/// The FTP helper.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ftp {
    cfg: FtpConfig,
}

impl Ftp {
    pub const fn new(cfg: FtpConfig) -> Ftp {
        Ftp { cfg }
    }

    pub const fn config(&self) -> FtpConfig {
        self.cfg
    }

    /// The expectation for a parsed command sent by the side whose tuple is
    /// `this` (the other direction's tuple is `other`), or `None` when the
    /// address check refuses it.
    pub fn expectation(&self, l3: L3, cmd: &FtpCmd, this: &Tuple, other: &Tuple) -> Option<ExpectRequest> {
        // "We refer to the reverse direction tuples here, because we're
        // expecting something in the other direction."
        let mut daddr = other.dst;
        // The parser only ever overwrites the sender's address, so a
        // byte-wise comparison with it is the kernel's memcmp of `u3.all`.
        if cmd.addr != this.src {
            if !self.cfg.loose {
                return None;
            }
            daddr = cmd.addr;
        }
        Some(ExpectRequest {
            tuple: Tuple {
                l3,
                proto: proto::TCP,
                src: family_addr(l3, other.src),
                dst: family_addr(l3, daddr),
                sport: 0,
                dport: cmd.port,
            },
            match_src_addr: true,
            match_sport: false,
            class: 0,
        })
    }
}

/// The address as `nf_ct_expect_init` stores it: 4 bytes for IPv4, the rest zero.
pub(crate) fn family_addr(l3: L3, a: Addr) -> Addr {
    match l3 {
        L3::V4 => Addr::v4(a.v4_octets()),
        L3::V6 => a,
    }
}

/// `find_nl_seq`: whether `seq` is one of the line starts remembered for `dir`.
pub fn find_nl_seq(line: &LineTrack, dir: Dir, seq: u32) -> bool {
    let d = dir.index();
    let n = usize::from(line.seq_aft_nl_num[d]).min(NUM_SEQ_TO_REMEMBER);
    line.seq_aft_nl[d][..n].contains(&seq)
}

/// `update_nl_seq`: remember `nl_seq` (the sequence number after a segment
/// ending in `\n`) for `dir`. Known values are kept; while fewer than two are
/// remembered it is added; otherwise it replaces the older of the two, but
/// only if it is after that one.
pub fn update_nl_seq(line: &mut LineTrack, dir: Dir, nl_seq: u32) {
    let d = dir.index();
    let n = usize::from(line.seq_aft_nl_num[d]);
    let slots = &mut line.seq_aft_nl[d];
    if slots[..n.min(NUM_SEQ_TO_REMEMBER)].contains(&nl_seq) {
        return;
    }
    if n < NUM_SEQ_TO_REMEMBER {
        slots[n] = nl_seq;
        line.seq_aft_nl_num[d] += 1;
    } else {
        let oldest = if before(slots[0], slots[1]) { 0 } else { 1 };
        if after(nl_seq, slots[oldest]) {
            slots[oldest] = nl_seq;
        }
    }
}

impl AlgHelper for Ftp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn proto(&self) -> u8 {
        proto::TCP
    }

    fn policy(&self) -> ExpectPolicy {
        ExpectPolicy::KERNEL_DEFAULT
    }

    fn help(&self, cx: &mut HelperCx<'_>) -> HelperVerdict {
        // "Until there's been traffic both ways, don't look in packets."
        // The direction is the kernel's CTINFO2DIR(ctinfo).
        let dir = match cx.ctinfo {
            CtInfo::Established => Dir::Original,
            CtInfo::EstablishedReply => Dir::Reply,
            _ => return HelperVerdict::Accept,
        };
        let Some(tcp) = cx.tcp else {
            return HelperVerdict::Accept;
        };
        let data = cx.payload;
        let Some(&last) = data.last() else {
            return HelperVerdict::Accept;
        };
        let ends_in_nl = last == b'\n';
        let nl_seq = tcp.seq.wrapping_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
        let l3 = cx.orig.l3;
        let (this, other) = match dir {
            Dir::Original => (cx.orig, cx.reply),
            Dir::Reply => (cx.reply, cx.orig),
        };

        let mut verdict = HelperVerdict::Accept;
        // Only a segment that starts right after a remembered line end is
        // parsed.
        if find_nl_seq(cx.line, dir, tcp.seq) {
            match parse::search(dir, l3, this.src, data) {
                Search::NoMatch => {}
                // Dropped without updating the line position, so a
                // retransmission of the same bytes is parsed again.
                Search::Partial(_) => return HelperVerdict::Drop(DropReason::PartialMatch),
                Search::Match(cmd) => {
                    if let Some(req) = self.expectation(l3, &cmd, &this, &other) {
                        if cx.expects.try_push(req).is_err() {
                            verdict = HelperVerdict::Drop(DropReason::ExpectFailed);
                        }
                    }
                }
            }
        }
        // Also after a failed registration the kernel updates the position.
        if ends_in_nl {
            update_nl_seq(cx.line, dir, nl_seq);
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lt(dir: Dir, seqs: &[u32]) -> LineTrack {
        let mut l = LineTrack::default();
        for &s in seqs {
            update_nl_seq(&mut l, dir, s);
        }
        l
    }

    #[test]
    fn find_only_remembered() {
        let l = LineTrack::default();
        assert!(!find_nl_seq(&l, Dir::Original, 0), "nothing remembered yet: not even seq 0");
        let l = lt(Dir::Original, &[100]);
        assert!(find_nl_seq(&l, Dir::Original, 100));
        assert!(!find_nl_seq(&l, Dir::Reply, 100), "per direction");
        assert!(!find_nl_seq(&l, Dir::Original, 0), "the unused slot holds 0 but is not counted");
    }

    #[test]
    fn update_fills_then_replaces_oldest_if_newer() {
        let mut l = lt(Dir::Reply, &[100, 200]);
        assert_eq!((l.seq_aft_nl[1], l.seq_aft_nl_num[1]), ([100, 200], 2));
        update_nl_seq(&mut l, Dir::Reply, 200);
        assert_eq!(l.seq_aft_nl[1], [100, 200], "known value: unchanged");
        update_nl_seq(&mut l, Dir::Reply, 300);
        assert_eq!(l.seq_aft_nl[1], [300, 200], "oldest (100) replaced");
        update_nl_seq(&mut l, Dir::Reply, 150);
        assert_eq!(l.seq_aft_nl[1], [300, 200], "not after the oldest (200): ignored");
        update_nl_seq(&mut l, Dir::Reply, 250);
        assert_eq!(l.seq_aft_nl[1], [300, 250]);
        assert_eq!(l.seq_aft_nl_num, [0, 2]);
    }

    #[test]
    fn update_wraps_around() {
        let mut l = lt(Dir::Original, &[u32::MAX - 10, u32::MAX - 5]);
        update_nl_seq(&mut l, Dir::Original, 3);
        assert_eq!(l.seq_aft_nl[0], [3, u32::MAX - 5]);
        update_nl_seq(&mut l, Dir::Original, u32::MAX - 20);
        assert_eq!(l.seq_aft_nl[0], [3, u32::MAX - 5]);
    }

    #[test]
    fn corrupt_count_does_not_panic() {
        let mut l = LineTrack { seq_aft_nl: [[1, 2], [3, 4]], seq_aft_nl_num: [200, 3] };
        assert!(find_nl_seq(&l, Dir::Original, 2));
        update_nl_seq(&mut l, Dir::Original, 5);
        assert_eq!(l.seq_aft_nl[0], [5, 2]);
    }
}
