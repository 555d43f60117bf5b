//! SCTP tracker (K-SCTP: `sctp_error`, `do_basic_checks`, `sctp_new`,
//! `nf_conntrack_sctp_packet`, `sctp_can_early_drop`).
//!
//! The tuple carries the two ports of the common header; the verification
//! tags are per-entry state, not part of the key, so one entry covers one
//! path (address pair and port pair) of an association. Chunk names and
//! rules follow RFC 9260: §3.1 (common header), §3.2 (chunk layout), §3.3
//! (chunk types), §8.4 (out-of-the-blue packets), §8.5 (verification tag).

use crate::config::SctpTimeouts;
use crate::invalid::InvalidReason;
use crate::status::Status;
use crate::tuple::Dir;
use core::time::Duration;

/// Chunk type numbers (RFC 9260 §3.2).
pub mod chunk {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const HEARTBEAT_ACK: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const ERROR: u8 = 9;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// The T bit of ABORT and SHUTDOWN COMPLETE: the sender reflected the
/// peer's tag (RFC 9260 §3.3.7, §3.3.13).
const FLAG_T: u8 = 0x01;

/// Common header length (RFC 9260 §3.1).
pub const HEADER_LEN: usize = 12;
/// Chunk header length.
const CHUNK_HEADER_LEN: usize = 4;
/// The fixed part of an INIT or INIT ACK after the chunk header
/// (`struct sctp_inithdr`: tag, a_rwnd, streams, initial TSN).
const INIT_HEADER_LEN: usize = 16;

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), RFC 9260
/// Appendix A.
const CRC32C: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc32c_update(mut c: u32, data: &[u8]) -> u32 {
    for &b in data {
        c = CRC32C[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

/// The CRC32c of an SCTP packet with its checksum field taken as zero, as
/// it appears on the wire (least significant byte first).
pub fn checksum(l4: &[u8]) -> [u8; 4] {
    let (head, tail) = (l4.get(..8).unwrap_or(l4), l4.get(HEADER_LEN..).unwrap_or(&[]));
    let c = crc32c_update(crc32c_update(crc32c_update(!0, head), &[0; 4]), tail);
    (!c).to_le_bytes()
}

/// A set of chunk types (the kernel's `map`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkSet([u64; 4]);

impl ChunkSet {
    fn insert(&mut self, ty: u8) {
        self.0[usize::from(ty >> 6)] |= 1 << (ty & 63);
    }

    pub fn contains(&self, ty: u8) -> bool {
        self.0[usize::from(ty >> 6)] & 1 << (ty & 63) != 0
    }
}

/// One chunk header as walked.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Chunk {
    ty: u8,
    flags: u8,
    len: u16,
    /// Offset of the chunk header in the SCTP packet.
    at: usize,
}

/// The kernel's `for_each_sctp_chunk`: from the end of the common header,
/// advance by each chunk length rounded up to 4 while a whole chunk header
/// remains. A chunk length running past the end just ends the walk; a zero
/// length ends it too (callers reject it), so every step advances and the
/// walk is bounded by the packet length.
struct Chunks<'a> {
    l4: &'a [u8],
    off: usize,
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        let h = self.l4.get(self.off..self.off.checked_add(CHUNK_HEADER_LEN)?)?;
        let c = Chunk { ty: h[0], flags: h[1], len: u16::from_be_bytes([h[2], h[3]]), at: self.off };
        self.off = if c.len == 0 { self.l4.len() } else { self.off + usize::from(c.len).next_multiple_of(4) };
        Some(c)
    }
}

/// A checked view of an SCTP packet: the common header, and chunks that
/// passed `do_basic_checks`.
#[derive(Copy, Clone, Debug)]
pub struct SctpPkt<'a> {
    pub sport: u16,
    pub dport: u16,
    pub vtag: u32,
    /// Which chunk types the packet carries.
    pub chunks: ChunkSet,
    l4: &'a [u8],
}

impl<'a> SctpPkt<'a> {
    /// Ports and verification tag of the common header (`sctp_error`'s
    /// length check).
    fn header(l4: &[u8]) -> Result<(u16, u16, u32), InvalidReason> {
        match l4 {
            [a, b, c, d, v0, v1, v2, v3, _, _, _, _, ..] => Ok((
                u16::from_be_bytes([*a, *b]),
                u16::from_be_bytes([*c, *d]),
                u32::from_be_bytes([*v0, *v1, *v2, *v3]),
            )),
            _ => Err(InvalidReason::SctpTruncated),
        }
    }

    /// Whether the checksum field holds the packet's CRC32c.
    pub fn checksum_ok(l4: &[u8]) -> bool {
        l4.get(8..HEADER_LEN) == Some(&checksum(l4)[..])
    }

    /// Parse the header and walk the chunks (`do_basic_checks`): INVALID
    /// without a chunk, with a zero chunk length, with COOKIE ECHO or
    /// COOKIE ACK other than first, or with INIT, INIT ACK or SHUTDOWN
    /// COMPLETE other than alone (RFC 9260 §6.10 bundling rules).
    pub fn parse(l4: &'a [u8]) -> Result<SctpPkt<'a>, InvalidReason> {
        let (sport, dport, vtag) = Self::header(l4)?;
        let mut chunks = ChunkSet::default();
        let mut alone = false;
        let mut count = 0usize;
        for c in (Chunks { l4, off: HEADER_LEN }) {
            alone |= matches!(c.ty, chunk::INIT | chunk::INIT_ACK | chunk::SHUTDOWN_COMPLETE);
            let must_lead = alone || matches!(c.ty, chunk::COOKIE_ECHO | chunk::COOKIE_ACK);
            if (must_lead && count != 0) || c.len == 0 {
                return Err(InvalidReason::SctpBadChunks);
            }
            chunks.insert(c.ty);
            count += 1;
        }
        if count == 0 {
            return Err(InvalidReason::SctpBadChunks);
        }
        Ok(SctpPkt { sport, dport, vtag, chunks, l4 })
    }

    fn walk(&self) -> Chunks<'a> {
        Chunks { l4: self.l4, off: HEADER_LEN }
    }

    /// The Initiate Tag of an INIT or INIT ACK chunk: its whole fixed
    /// header must be in the packet (RFC 9260 §3.3.2).
    fn initiate_tag(&self, c: &Chunk) -> Result<u32, InvalidReason> {
        let at = c.at + CHUNK_HEADER_LEN;
        match self.l4.get(at..at + INIT_HEADER_LEN) {
            Some([a, b, c, d, ..]) => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(InvalidReason::SctpTruncated),
        }
    }
}

/// The kernel's SCTP states (`enum sctp_conntrack`; HEARTBEAT_ACKED is
/// never reached and left out).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SctpConntrack {
    #[default]
    None = 0,
    Closed = 1,
    CookieWait = 2,
    CookieEchoed = 3,
    Established = 4,
    ShutdownSent = 5,
    ShutdownRecd = 6,
    ShutdownAckSent = 7,
    HeartbeatSent = 8,
}

impl SctpConntrack {
    /// All states in kernel order (the transition table's columns).
    pub const ALL: [SctpConntrack; 9] = [
        SctpConntrack::None,
        SctpConntrack::Closed,
        SctpConntrack::CookieWait,
        SctpConntrack::CookieEchoed,
        SctpConntrack::Established,
        SctpConntrack::ShutdownSent,
        SctpConntrack::ShutdownRecd,
        SctpConntrack::ShutdownAckSent,
        SctpConntrack::HeartbeatSent,
    ];

    /// The name listings print (`sctp_conntrack_names`).
    pub const fn name(self) -> &'static str {
        match self {
            SctpConntrack::None => "NONE",
            SctpConntrack::Closed => "CLOSED",
            SctpConntrack::CookieWait => "COOKIE_WAIT",
            SctpConntrack::CookieEchoed => "COOKIE_ECHOED",
            SctpConntrack::Established => "ESTABLISHED",
            SctpConntrack::ShutdownSent => "SHUTDOWN_SENT",
            SctpConntrack::ShutdownRecd => "SHUTDOWN_RECD",
            SctpConntrack::ShutdownAckSent => "SHUTDOWN_ACK_SENT",
            SctpConntrack::HeartbeatSent => "HEARTBEAT_SENT",
        }
    }
}

/// The row of a tracked chunk type in the transition table, or `None` for
/// types that keep the state (DATA, SACK, ...): `sctp_new_state`.
fn row(ty: u8) -> Option<usize> {
    Some(match ty {
        chunk::INIT => 0,
        chunk::INIT_ACK => 1,
        chunk::ABORT => 2,
        chunk::SHUTDOWN => 3,
        chunk::SHUTDOWN_ACK => 4,
        chunk::ERROR => 5,
        chunk::COOKIE_ECHO => 6,
        chunk::COOKIE_ACK => 7,
        chunk::SHUTDOWN_COMPLETE => 8,
        chunk::HEARTBEAT => 9,
        chunk::HEARTBEAT_ACK => 10,
        _ => return None,
    })
}

/// `sctp_conntracks[dir][chunk][state]`; `IV` = INVALID.
const IV: u8 = 0xff;
const CL: u8 = SctpConntrack::Closed as u8;
const CW: u8 = SctpConntrack::CookieWait as u8;
const CE: u8 = SctpConntrack::CookieEchoed as u8;
const ES: u8 = SctpConntrack::Established as u8;
const SS: u8 = SctpConntrack::ShutdownSent as u8;
const SR: u8 = SctpConntrack::ShutdownRecd as u8;
const SA: u8 = SctpConntrack::ShutdownAckSent as u8;
const HS: u8 = SctpConntrack::HeartbeatSent as u8;

#[rustfmt::skip]
const TRANSITIONS: [[[u8; 9]; 11]; 2] = [
    [
        // ORIGINAL      NO  CL  CW  CE  ES  SS  SR  SA  HS
        /* INIT      */ [CL, CL, CW, CE, ES, CL, CL, SA, CW],
        /* INIT_ACK  */ [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        /* ABORT     */ [CL, CL, CL, CL, CL, CL, CL, CL, CL],
        /* SHUTDOWN  */ [CL, CL, CW, CE, SS, SS, SR, SA, CL],
        /* SHUT_ACK  */ [SA, CL, CW, CE, ES, SA, SA, SA, SA],
        /* ERROR     */ [CL, CL, CW, CE, ES, SS, SR, SA, CL],
        /* COOK_ECHO */ [CL, CL, CE, CE, ES, SS, SR, SA, CL],
        /* COOK_ACK  */ [CL, CL, CW, ES, ES, SS, SR, SA, CL],
        /* SHUT_COMP */ [CL, CL, CW, CE, ES, SS, SR, CL, CL],
        /* HB        */ [HS, CL, CW, CE, ES, SS, SR, SA, HS],
        /* HB_ACK    */ [CL, CL, CW, CE, ES, SS, SR, SA, HS],
    ],
    [
        // REPLY         NO  CL  CW  CE  ES  SS  SR  SA  HS
        /* INIT      */ [IV, CL, CW, CE, ES, SS, SR, SA, IV],
        /* INIT_ACK  */ [IV, CW, CW, CE, ES, SS, SR, SA, IV],
        /* ABORT     */ [IV, CL, CL, CL, CL, CL, CL, CL, IV],
        /* SHUTDOWN  */ [IV, CL, CW, CE, SR, SS, SR, SA, IV],
        /* SHUT_ACK  */ [IV, CL, CW, CE, ES, SA, SA, SA, IV],
        /* ERROR     */ [IV, CL, CW, CL, ES, SS, SR, SA, IV],
        /* COOK_ECHO */ [IV, CL, CE, CE, ES, SS, SR, SA, IV],
        /* COOK_ACK  */ [IV, CL, CW, ES, ES, SS, SR, SA, IV],
        /* SHUT_COMP */ [IV, CL, CW, CE, ES, SS, SR, CL, IV],
        /* HB        */ [IV, CL, CW, CE, ES, SS, SR, SA, HS],
        /* HB_ACK    */ [IV, CL, CW, CE, ES, SS, SR, SA, ES],
    ],
];

/// `sctp_new_state`: the next state, `None` for INVALID.
fn transition(dir: Dir, cur: SctpConntrack, ty: u8) -> Option<SctpConntrack> {
    let Some(r) = row(ty) else { return Some(cur) };
    let next = TRANSITIONS[dir.index()][r][cur as usize];
    SctpConntrack::ALL.get(usize::from(next)).copied()
}

/// Per-entry SCTP state (`struct ip_ct_sctp`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SctpState {
    pub state: SctpConntrack,
    /// The tag packets travelling in each direction must carry.
    pub vtag: [u32; 2],
    /// An INIT from that direction is pending (cleared by COOKIE ACK).
    init: [bool; 2],
    /// Direction of the HEARTBEAT whose tag did not match.
    last_dir: u8,
    /// `SCTP_FLAG_HEARTBEAT_VTAG_FAILED`.
    heartbeat_vtag_failed: bool,
}

/// Words [`SctpState::pack`] uses in an entry's protocol area.
pub(crate) const PACKED_WORDS: usize = 3;

impl SctpState {
    /// The state of a new entry from its first packet (`sctp_new`), or
    /// INVALID: out-of-the-blue ABORT, SHUTDOWN COMPLETE or COOKIE ACK
    /// (RFC 9260 §8.4), a chunk that cannot open a path (DATA, SACK, ...),
    /// an INIT with a non-zero tag (§8.5.1 A) or a truncated INIT.
    pub fn new(p: &SctpPkt<'_>) -> Result<SctpState, InvalidReason> {
        let c = &p.chunks;
        if c.contains(chunk::ABORT) || c.contains(chunk::SHUTDOWN_COMPLETE) || c.contains(chunk::COOKIE_ACK) {
            return Err(InvalidReason::SctpInvalidNew);
        }
        let mut st = SctpState::default();
        for ch in p.walk() {
            if !matches!(transition(Dir::Original, SctpConntrack::None, ch.ty), Some(s) if s != SctpConntrack::None) {
                return Err(InvalidReason::SctpInvalidNew);
            }
            match ch.ty {
                chunk::INIT => {
                    if p.vtag != 0 {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                    st.vtag[Dir::Reply.index()] = p.initiate_tag(&ch)?;
                }
                chunk::HEARTBEAT => st.vtag[Dir::Original.index()] = p.vtag,
                // An out-of-the-blue answer reflects the tag (§8.4 (5), (8)).
                _ => st.vtag[Dir::Reply.index()] = p.vtag,
            }
        }
        Ok(st)
    }

    /// Process one packet (`nf_conntrack_sctp_packet` after the checks):
    /// the verification tag rules (RFC 9260 §8.5, §8.5.1), then each chunk
    /// through the state machine. Effects of chunks before a failing one
    /// stay, as does ASSURED set on entering ESTABLISHED. `Ok(None)`:
    /// accepted without refreshing the timeout.
    pub fn packet(
        &mut self,
        dir: Dir,
        confirmed: bool,
        p: &SctpPkt<'_>,
        timeouts: &SctpTimeouts,
        status: &mut Status,
    ) -> Result<Option<Duration>, InvalidReason> {
        let (d, o) = (dir.index(), dir.flip().index());
        let v = p.vtag;
        let exempt = [
            chunk::INIT,
            chunk::SHUTDOWN_COMPLETE,
            chunk::COOKIE_ECHO,
            chunk::ABORT,
            chunk::SHUTDOWN_ACK,
            chunk::HEARTBEAT,
            chunk::HEARTBEAT_ACK,
        ];
        if !exempt.iter().any(|&t| p.chunks.contains(t)) && v != self.vtag[d] {
            return Err(InvalidReason::SctpBadVtag);
        }
        let mut ignore = false;
        for ch in p.walk() {
            match ch.ty {
                chunk::INIT if v != 0 => return Err(InvalidReason::SctpBadVtag),
                chunk::ABORT | chunk::SHUTDOWN_COMPLETE => {
                    let want = if ch.flags & FLAG_T != 0 { self.vtag[o] } else { self.vtag[d] };
                    if v != want {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                }
                chunk::COOKIE_ECHO if v != self.vtag[d] => return Err(InvalidReason::SctpBadVtag),
                chunk::COOKIE_ACK => self.init = [false; 2],
                chunk::HEARTBEAT | chunk::HEARTBEAT_ACK => {
                    if self.vtag[d] == 0 {
                        self.vtag[d] = v;
                    } else if v != self.vtag[d] {
                        if p.chunks.contains(chunk::DATA) || ignore {
                            return Err(InvalidReason::SctpBadVtag);
                        }
                        if ch.ty == chunk::HEARTBEAT {
                            // Maybe a restarted peer: let it through once,
                            // and learn its tag from the answer.
                            self.heartbeat_vtag_failed = true;
                            self.last_dir = d as u8;
                            ignore = true;
                            continue;
                        }
                        if !self.heartbeat_vtag_failed || usize::from(self.last_dir) == d {
                            return Err(InvalidReason::SctpBadVtag);
                        }
                        self.heartbeat_vtag_failed = false;
                        self.vtag[d] = v;
                        self.vtag[o] = 0;
                    } else {
                        self.heartbeat_vtag_failed = false;
                    }
                }
                _ => {}
            }
            let old = self.state;
            let new = transition(dir, old, ch.ty).ok_or(InvalidReason::SctpInvalidTransition)?;
            match ch.ty {
                chunk::INIT => {
                    let tag = p.initiate_tag(&ch)?;
                    // A retransmitted or stale INIT carrying the tag already
                    // known is not a new initiation (collision handling,
                    // RFC 9260 §5.2.1).
                    if !(confirmed && tag == self.vtag[o]) {
                        if self.init[d] && self.init[o] {
                            self.init[o] = false;
                        }
                        self.init[d] = true;
                    }
                    self.vtag[o] = tag;
                    // A retransmitted INIT must not keep the entry alive.
                    if confirmed && old == SctpConntrack::Closed && new == SctpConntrack::Closed {
                        ignore = true;
                    }
                }
                chunk::INIT_ACK => {
                    let tag = p.initiate_tag(&ch)?;
                    let known = self.vtag[o];
                    if !self.init[o] && known != 0 && known != tag {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                    if self.init[d] && self.init[o] && known != tag {
                        return Err(InvalidReason::SctpBadVtag);
                    }
                    self.vtag[o] = tag;
                }
                _ => {}
            }
            self.state = new;
            if old != new && new == SctpConntrack::Established {
                *status |= Status::ASSURED;
            }
        }
        Ok((!ignore).then(|| timeouts.of(self.state)))
    }

    /// `sctp_can_early_drop`: the association is shutting down.
    pub fn can_early_drop(&self) -> bool {
        matches!(self.state, SctpConntrack::ShutdownSent | SctpConntrack::ShutdownRecd | SctpConntrack::ShutdownAckSent)
    }

    /// The stored form (see `Body::proto`).
    pub(crate) fn pack(&self) -> [u32; PACKED_WORDS] {
        let bits = u32::from(self.init[0])
            | u32::from(self.init[1]) << 1
            | u32::from(self.last_dir & 1) << 2
            | u32::from(self.heartbeat_vtag_failed) << 3;
        [self.vtag[0], self.vtag[1], self.state as u32 | bits << 8]
    }

    /// The inverse of [`SctpState::pack`].
    pub(crate) fn unpack(w: &[u32]) -> SctpState {
        let word = |i: usize| w.get(i).copied().unwrap_or(0);
        let bits = word(2) >> 8;
        SctpState {
            state: SctpConntrack::ALL.get((word(2) & 0xff) as usize).copied().unwrap_or_default(),
            vtag: [word(0), word(1)],
            init: [bits & 1 != 0, bits & 2 != 0],
            last_dir: ((bits >> 2) & 1) as u8,
            heartbeat_vtag_failed: bits & 8 != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SCTP packet 5000 -> 6000 with `vtag` and the given chunks, each
    /// `(type, flags, value)`, padded to 4 bytes, with a correct CRC.
    fn pkt(vtag: u32, chunks: &[(u8, u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0x13, 0x88, 0x17, 0x70];
        b.extend_from_slice(&vtag.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        for (ty, flags, value) in chunks {
            b.extend_from_slice(&[*ty, *flags]);
            b.extend_from_slice(&(4 + value.len() as u16).to_be_bytes());
            b.extend_from_slice(value);
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        let c = checksum(&b);
        b[8..12].copy_from_slice(&c);
        b
    }

    fn init_body(tag: u32) -> Vec<u8> {
        let mut v = tag.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 1, 0, 0, 0, 10, 0, 10, 0, 0, 0, 1]);
        v
    }

    #[test]
    fn crc32c_known_answer() {
        // The standard check value of CRC-32C over "123456789".
        assert_eq!(!crc32c_update(!0, b"123456789"), 0xE306_9283);
        let p = pkt(7, &[(chunk::DATA, 3, b"abcd")]);
        assert!(SctpPkt::checksum_ok(&p));
        let mut bad = p.clone();
        bad[16] ^= 1;
        assert!(!SctpPkt::checksum_ok(&bad));
        assert!(!SctpPkt::checksum_ok(&p[..10]));
    }

    #[test]
    fn basic_checks() {
        let ok = |b: &[u8]| SctpPkt::parse(b).map(|p| p.chunks);
        assert_eq!(ok(&[0; 11]).unwrap_err(), InvalidReason::SctpTruncated);
        // No chunk; a partial chunk header is no chunk.
        assert_eq!(ok(&pkt(0, &[])).unwrap_err(), InvalidReason::SctpBadChunks);
        assert_eq!(ok(&[&pkt(0, &[])[..], &[1, 0, 0]].concat()).unwrap_err(), InvalidReason::SctpBadChunks);
        // INIT, INIT ACK, SHUTDOWN COMPLETE alone; COOKIE ECHO/ACK first.
        let init = init_body(1);
        assert!(ok(&pkt(0, &[(chunk::INIT, 0, &init)])).unwrap().contains(chunk::INIT));
        assert!(ok(&pkt(0, &[(chunk::INIT, 0, &init), (chunk::DATA, 3, b"x")])).is_err());
        assert!(ok(&pkt(0, &[(chunk::DATA, 3, b"x"), (chunk::SHUTDOWN_COMPLETE, 0, b"")])).is_err());
        assert!(ok(&pkt(0, &[(chunk::SACK, 0, b""), (chunk::COOKIE_ACK, 0, b"")])).is_err());
        let set = ok(&pkt(0, &[(chunk::COOKIE_ECHO, 0, b"c"), (chunk::DATA, 3, b"x")])).unwrap();
        assert!(set.contains(chunk::COOKIE_ECHO) && set.contains(chunk::DATA) && !set.contains(chunk::SACK));
        // A zero chunk length, also as a walk landing on zero padding.
        let mut zero = pkt(0, &[(chunk::DATA, 3, b"abcd")]);
        zero[14..16].copy_from_slice(&[0, 0]);
        assert_eq!(ok(&zero).unwrap_err(), InvalidReason::SctpBadChunks);
        let mut short = pkt(0, &[(chunk::DATA, 3, b"abcd\0\0\0\0")]);
        short[14..16].copy_from_slice(&[0, 8]);
        assert_eq!(ok(&short).unwrap_err(), InvalidReason::SctpBadChunks);
        // A length past the end just ends the walk.
        let mut long = pkt(0, &[(chunk::DATA, 3, b"abcd")]);
        long[14..16].copy_from_slice(&[0xff, 0xff]);
        assert!(ok(&long).is_ok());
        // Type 255 fits the set.
        assert!(ok(&pkt(0, &[(255, 0, b"")])).unwrap().contains(255));
    }

    #[test]
    fn hostile_walks_terminate() {
        // Every chunk length over a small packet: no panic, bounded steps.
        for len in 0..=u16::MAX {
            let mut b = pkt(0, &[(chunk::DATA, 0, &[0; 20])]);
            b[14..16].copy_from_slice(&len.to_be_bytes());
            let _ = SctpPkt::parse(&b);
            assert!((Chunks { l4: &b, off: HEADER_LEN }).count() <= b.len() / 4);
        }
        // A truncated INIT header is INVALID, not a panic.
        let p = pkt(0, &[(chunk::INIT, 0, &[0, 0, 0, 9])]);
        let p = SctpPkt::parse(&p).unwrap();
        assert_eq!(SctpState::new(&p), Err(InvalidReason::SctpTruncated));
    }

    fn any_state() -> impl proptest::strategy::Strategy<Value = SctpState> {
        use proptest::prelude::*;
        (0usize..9, any::<[u32; 2]>(), any::<[bool; 2]>(), 0u8..2, any::<bool>()).prop_map(
            |(s, vtag, init, last_dir, heartbeat_vtag_failed)| SctpState {
                state: SctpConntrack::ALL[s],
                vtag,
                init,
                last_dir,
                heartbeat_vtag_failed,
            },
        )
    }

    /// Chunk headers with small tags and lengths (so that walks and tag
    /// checks are exercised), or raw bytes.
    fn any_packet() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let chunk = (0u8..16, 0u8..2, 0u16..40, proptest::collection::vec(any::<u8>(), 0..24));
        prop_oneof![
            (0u32..3, proptest::collection::vec(chunk, 0..5)).prop_map(|(vtag, cs)| {
                let mut b = pkt(vtag, &[]);
                for (ty, flags, len, value) in cs {
                    b.extend_from_slice(&[ty, flags]);
                    b.extend_from_slice(&len.to_be_bytes());
                    b.extend_from_slice(&value);
                }
                b
            }),
            proptest::collection::vec(any::<u8>(), 0..80),
        ]
    }

    proptest::proptest! {
        /// Whatever the state and bytes: no panic, and the state still packs.
        #[test]
        fn hostile_packets_never_panic(st in any_state(), b in any_packet(), reply in proptest::bool::ANY, confirmed in proptest::bool::ANY) {
            if let Ok(p) = SctpPkt::parse(&b) {
                let _ = SctpState::new(&p);
                let mut st = st;
                let dir = if reply { Dir::Reply } else { Dir::Original };
                let _ = st.packet(dir, confirmed, &p, &SctpTimeouts::default(), &mut Status::empty());
                proptest::prop_assert_eq!(SctpState::unpack(&st.pack()), st);
            }
        }
    }

    #[test]
    fn pack_round_trip() {
        let s = SctpState {
            state: SctpConntrack::HeartbeatSent,
            vtag: [0xdead_beef, 7],
            init: [false, true],
            last_dir: 1,
            heartbeat_vtag_failed: true,
        };
        assert_eq!(SctpState::unpack(&s.pack()), s);
        assert_eq!(SctpState::unpack(&SctpState::default().pack()), SctpState::default());
    }

    struct Run {
        st: SctpState,
        status: Status,
    }

    impl Run {
        fn first(b: &[u8]) -> Result<(Run, Option<Duration>), InvalidReason> {
            let p = SctpPkt::parse(b)?;
            let mut r = Run { st: SctpState::new(&p)?, status: Status::empty() };
            let t = r.st.packet(Dir::Original, false, &p, &SctpTimeouts::default(), &mut r.status)?;
            Ok((r, t))
        }

        fn go(&mut self, dir: Dir, b: &[u8]) -> Result<Option<Duration>, InvalidReason> {
            let p = SctpPkt::parse(b)?;
            self.st.packet(dir, true, &p, &SctpTimeouts::default(), &mut self.status)
        }
    }

    const C: Dir = Dir::Original;
    const S: Dir = Dir::Reply;
    const CT: u32 = 0x1111_1111;
    const ST: u32 = 0x2222_2222;

    fn secs(n: u64) -> Result<Option<Duration>, InvalidReason> {
        Ok(Some(Duration::from_secs(n)))
    }

    /// INIT, INIT ACK, COOKIE ECHO, COOKIE ACK (RFC 9260 §5.1).
    fn handshake() -> Run {
        let (mut r, t) = Run::first(&pkt(0, &[(chunk::INIT, 0, &init_body(CT))])).unwrap();
        assert_eq!((r.st.state, t), (SctpConntrack::Closed, Some(Duration::from_secs(10))));
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::INIT_ACK, 0, &init_body(ST))])), secs(3));
        assert_eq!(r.st.state, SctpConntrack::CookieWait);
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::COOKIE_ECHO, 0, b"cookie")])), secs(3));
        assert_eq!(r.st.state, SctpConntrack::CookieEchoed);
        assert!(!r.status.contains(Status::ASSURED));
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::COOKIE_ACK, 0, b"")])), secs(210));
        assert_eq!(r.st.state, SctpConntrack::Established);
        assert!(r.status.contains(Status::ASSURED));
        assert_eq!(r.st.vtag, [ST, CT]);
        r
    }

    #[test]
    fn full_association_and_shutdown() {
        let mut r = handshake();
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::DATA, 3, b"hello")])), secs(210));
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::SACK, 0, &[0; 12]), (chunk::DATA, 3, b"hi")])), secs(210));
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::SHUTDOWN, 0, &[0; 4])])), secs(3));
        assert_eq!(r.st.state, SctpConntrack::ShutdownSent);
        assert!(r.st.can_early_drop());
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::SHUTDOWN_ACK, 0, b"")])), secs(3));
        assert_eq!(r.st.state, SctpConntrack::ShutdownAckSent);
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::SHUTDOWN_COMPLETE, 0, b"")])), secs(10));
        assert_eq!(r.st.state, SctpConntrack::Closed);
        assert!(r.status.contains(Status::ASSURED), "ASSURED is never cleared");
    }

    #[test]
    fn reply_shutdown_is_shutdown_recd() {
        let mut r = handshake();
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::SHUTDOWN, 0, &[0; 4])])), secs(3));
        assert_eq!(r.st.state, SctpConntrack::ShutdownRecd);
    }

    #[test]
    fn wrong_vtag_is_invalid_and_changes_nothing() {
        let mut r = handshake();
        let before = r.st;
        assert_eq!(r.go(C, &pkt(ST ^ 1, &[(chunk::DATA, 3, b"x")])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(S, &pkt(ST, &[(chunk::DATA, 3, b"x")])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(C, &pkt(ST ^ 1, &[(chunk::SHUTDOWN, 0, &[0; 4])])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(C, &pkt(CT, &[(chunk::COOKIE_ECHO, 0, b"c")])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.st, before);
    }

    #[test]
    fn abort_own_and_reflected_tag() {
        let mut r = handshake();
        // T clear: the sender's peer's tag; a wrong one is INVALID.
        assert_eq!(r.go(S, &pkt(ST, &[(chunk::ABORT, 0, b"")])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::ABORT, 0, b"")])), secs(10));
        assert_eq!(r.st.state, SctpConntrack::Closed);
        let mut r = handshake();
        // T set: the tag is reflected (the other direction's).
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::ABORT, FLAG_T, b"")])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(C, &pkt(CT, &[(chunk::ABORT, FLAG_T, b"")])), secs(10));
        assert_eq!(r.st.state, SctpConntrack::Closed);
    }

    #[test]
    fn first_packets() {
        let first = |b: Vec<u8>| Run::first(&b).map(|(r, t)| (r.st.state, t));
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(first(pkt(0, &[(chunk::ABORT, 0, b"")])), Err(InvalidReason::SctpInvalidNew));
        assert_eq!(first(pkt(0, &[(chunk::COOKIE_ACK, 0, b"")])), Err(InvalidReason::SctpInvalidNew));
        assert_eq!(first(pkt(0, &[(chunk::SHUTDOWN_COMPLETE, 0, b"")])), Err(InvalidReason::SctpInvalidNew));
        assert_eq!(first(pkt(0, &[(chunk::DATA, 3, b"x")])), Err(InvalidReason::SctpInvalidNew));
        assert_eq!(first(pkt(0, &[(0xc1, 0, b"")])), Err(InvalidReason::SctpInvalidNew));
        assert_eq!(first(pkt(5, &[(chunk::INIT, 0, &init_body(1))])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(first(pkt(9, &[(chunk::HEARTBEAT, 0, b"hb")])), Ok((SctpConntrack::HeartbeatSent, s(30))));
        assert_eq!(first(pkt(9, &[(chunk::SHUTDOWN_ACK, 0, b"")])), Ok((SctpConntrack::ShutdownAckSent, s(3))));
        assert_eq!(first(pkt(0, &[(chunk::ERROR, 0, b"")])), Ok((SctpConntrack::Closed, s(10))));
        // Other first chunks need the ORIGINAL tag, which is 0.
        assert_eq!(first(pkt(5, &[(chunk::ERROR, 0, b"")])), Err(InvalidReason::SctpBadVtag));
        // HEARTBEAT with DATA: DATA cannot open a path.
        assert_eq!(
            first(pkt(9, &[(chunk::HEARTBEAT, 0, b"hb"), (chunk::DATA, 3, b"x")])),
            Err(InvalidReason::SctpInvalidNew)
        );
    }

    #[test]
    fn init_retransmission_does_not_refresh() {
        let (mut r, _) = Run::first(&pkt(0, &[(chunk::INIT, 0, &init_body(CT))])).unwrap();
        assert_eq!(r.go(C, &pkt(0, &[(chunk::INIT, 0, &init_body(CT))])), Ok(None));
        assert_eq!(r.st.state, SctpConntrack::Closed);
    }

    #[test]
    fn reply_init_in_none_is_invalid() {
        let mut st = SctpState::default();
        let b = pkt(0, &[(chunk::INIT, 0, &init_body(1))]);
        let p = SctpPkt::parse(&b).unwrap();
        let r = st.packet(S, true, &p, &SctpTimeouts::default(), &mut Status::empty());
        assert_eq!(r, Err(InvalidReason::SctpInvalidTransition));
    }

    #[test]
    fn secondary_path_by_heartbeat() {
        let (mut r, _) = Run::first(&pkt(CT, &[(chunk::HEARTBEAT, 0, b"hb")])).unwrap();
        assert_eq!(r.st.vtag, [CT, 0]);
        assert_eq!(r.go(S, &pkt(ST, &[(chunk::HEARTBEAT_ACK, 0, b"hb")])), secs(210));
        assert_eq!(r.st.state, SctpConntrack::Established);
        assert!(r.status.contains(Status::ASSURED));
        assert_eq!(r.go(C, &pkt(CT, &[(chunk::DATA, 3, b"x")])), secs(210));
        assert_eq!(r.go(S, &pkt(ST, &[(chunk::DATA, 3, b"y")])), secs(210));
    }

    #[test]
    fn peer_restart_relearns_tags_by_heartbeat() {
        let mut r = handshake();
        // A HEARTBEAT with an unknown tag passes once without refresh...
        assert_eq!(r.go(C, &pkt(0x33, &[(chunk::HEARTBEAT, 0, b"hb")])), Ok(None));
        // ...not with DATA, and an ACK from the same side does not count.
        assert_eq!(r.go(C, &pkt(0x33, &[(chunk::HEARTBEAT_ACK, 0, b"hb")])), Err(InvalidReason::SctpBadVtag));
        // The other side's ACK with a new tag is learnt.
        assert_eq!(r.go(S, &pkt(0x44, &[(chunk::HEARTBEAT_ACK, 0, b"hb")])), secs(210));
        assert_eq!(r.st.vtag, [0, 0x44]);
        assert_eq!(r.go(C, &pkt(0x55, &[(chunk::HEARTBEAT, 0, b"hb")])), secs(210));
        assert_eq!(r.st.vtag, [0x55, 0x44]);
    }

    #[test]
    fn stale_init_ack_after_collision_is_invalid() {
        // C INIT(a), S INIT(b), C INIT ACK(a), S COOKIE ECHO, C COOKIE ACK.
        let (a, b) = (0xaaaa, 0xbbbb);
        let (mut r, _) = Run::first(&pkt(0, &[(chunk::INIT, 0, &init_body(a))])).unwrap();
        // CLOSED to CLOSED on a confirmed entry: no refresh.
        assert_eq!(r.go(S, &pkt(0, &[(chunk::INIT, 0, &init_body(b))])), Ok(None));
        assert_eq!(r.go(C, &pkt(b, &[(chunk::INIT_ACK, 0, &init_body(a))])), secs(10));
        assert_eq!(r.go(S, &pkt(a, &[(chunk::COOKIE_ECHO, 0, b"c")])), secs(10));
        assert_eq!(r.go(C, &pkt(b, &[(chunk::COOKIE_ACK, 0, b"")])), secs(10));
        // The delayed INIT ACK from S with a fresh tag.
        assert_eq!(r.go(S, &pkt(a, &[(chunk::INIT_ACK, 0, &init_body(0xcccc))])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(C, &pkt(b, &[(chunk::DATA, 3, b"x")])), secs(10));
        assert_eq!(r.go(S, &pkt(a, &[(chunk::DATA, 3, b"x")])), secs(10));
        assert!(!r.status.contains(Status::ASSURED));
    }

    #[test]
    fn stale_init_is_not_recorded() {
        let mut r = handshake();
        // The delayed INIT from C carries the tag already known.
        assert_eq!(r.go(C, &pkt(0, &[(chunk::INIT, 0, &init_body(CT))])), secs(210));
        assert_eq!(r.go(S, &pkt(CT, &[(chunk::INIT_ACK, 0, &init_body(0x99))])), Err(InvalidReason::SctpBadVtag));
        assert_eq!(r.go(C, &pkt(ST, &[(chunk::DATA, 3, b"x")])), secs(210));
        assert_eq!(r.go(C, &pkt(0x99, &[(chunk::DATA, 3, b"x")])), Err(InvalidReason::SctpBadVtag));
    }
}
