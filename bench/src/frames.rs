//! Frame builders that write into caller buffers (no allocation per frame),
//! with valid IPv4 and L4 checksums, and a flat store of many frames.

/// MACs of the two sides (locally administered).
pub(crate) const MAC_INSIDE: [u8; 6] = [2, 0xc7, 0xbe, 0, 0, 1];
pub(crate) const MAC_OUTSIDE: [u8; 6] = [2, 0xc7, 0xbe, 0, 0, 2];

pub(crate) const SYN: u8 = 0x02;
pub(crate) const ACK: u8 = 0x10;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const FIN: u8 = 0x01;

/// One's-complement sum of `b` as big-endian 16-bit words.
fn sum(b: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut c = b.chunks_exact(2);
    for w in &mut c {
        s += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = c.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An IPv4 flow endpoint pair.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Ends {
    pub(crate) src: [u8; 4],
    pub(crate) dst: [u8; 4],
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

impl Ends {
    pub(crate) fn reversed(self) -> Ends {
        Ends { src: self.dst, dst: self.src, sport: self.dport, dport: self.sport }
    }
}

/// Ethernet + IPv4 header around an L4 segment already at `buf[34..34+l4_len]`,
/// L4 checksum at `csum_at` (offset in the L4 header) if any. Returns the frame length.
fn finish(buf: &mut [u8], src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize, csum_at: Option<usize>) -> usize {
    let (smac, dmac) = if src[0] == 10 { (MAC_INSIDE, MAC_OUTSIDE) } else { (MAC_OUTSIDE, MAC_INSIDE) };
    buf[0..6].copy_from_slice(&dmac);
    buf[6..12].copy_from_slice(&smac);
    buf[12..14].copy_from_slice(&[0x08, 0x00]);
    if let Some(at) = csum_at {
        let l4 = &mut buf[34..34 + l4_len];
        l4[at] = 0;
        l4[at + 1] = 0;
        let ph = sum(&src) + sum(&dst) + u32::from(proto) + l4_len as u32;
        let mut c = fold(ph + sum(l4));
        if c == 0 && proto == 17 {
            c = 0xffff;
        }
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let total = 20 + l4_len;
    let ip = &mut buf[14..34];
    ip[..12].copy_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, proto, 0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = fold(sum(ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    14 + total
}

/// A TCP segment with `payload` (its bytes are left as found in `buf`
/// unless `data` is given). Returns the frame length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp(
    buf: &mut [u8],
    e: Ends,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: usize,
    data: Option<&[u8]>,
) -> usize {
    let t = &mut buf[34..34 + 20 + payload];
    t[0..2].copy_from_slice(&e.sport.to_be_bytes());
    t[2..4].copy_from_slice(&e.dport.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&64000u16.to_be_bytes());
    t[18..20].copy_from_slice(&[0, 0]);
    if let Some(d) = data {
        t[20..20 + d.len()].copy_from_slice(d);
    }
    finish(buf, e.src, e.dst, 6, 20 + payload, Some(16))
}

/// A UDP datagram; `payload` bytes already in `buf[42..]` are kept.
pub(crate) fn udp(buf: &mut [u8], e: Ends, payload: usize) -> usize {
    let len = 8 + payload;
    let u = &mut buf[34..34 + len];
    u[0..2].copy_from_slice(&e.sport.to_be_bytes());
    u[2..4].copy_from_slice(&e.dport.to_be_bytes());
    u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    finish(buf, e.src, e.dst, 17, len, Some(6))
}

/// An ICMP echo request (`ty` 8) or reply (0).
pub(crate) fn ping(buf: &mut [u8], src: [u8; 4], dst: [u8; 4], ty: u8, id: u16, seq: u16) -> usize {
    let m = &mut buf[34..34 + 16];
    m.copy_from_slice(&[ty, 0, 0, 0, (id >> 8) as u8, id as u8, (seq >> 8) as u8, seq as u8, 0, 0, 0, 0, 0, 0, 0, 0]);
    let c = fold(sum(m));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    finish(buf, src, dst, 1, 16, None)
}

/// Many frames in one allocation: fixed stride, lengths and ports alongside.
pub(crate) struct FrameStore {
    stride: usize,
    bytes: Vec<u8>,
    lens: Vec<u16>,
    inside: Vec<bool>,
}

impl FrameStore {
    pub(crate) fn with_capacity(stride: usize, n: usize) -> FrameStore {
        FrameStore {
            stride,
            bytes: Vec::with_capacity(stride * n),
            lens: Vec::with_capacity(n),
            inside: Vec::with_capacity(n),
        }
    }

    /// Append a frame built by `f` (which gets a zeroed `stride`-byte buffer
    /// and returns the frame length); `inside` is the port it arrives on.
    pub(crate) fn push(&mut self, inside: bool, f: impl FnOnce(&mut [u8]) -> usize) {
        let at = self.bytes.len();
        self.bytes.resize(at + self.stride, 0);
        let len = f(&mut self.bytes[at..at + self.stride]);
        self.lens.push(len as u16);
        self.inside.push(inside);
    }

    pub(crate) fn len(&self) -> usize {
        self.lens.len()
    }

    /// Frame `i` and whether it arrives on the inside port.
    pub(crate) fn get(&self, i: usize) -> (&[u8], bool) {
        let at = i * self.stride;
        (&self.bytes[at..at + usize::from(self.lens[i])], self.inside[i])
    }

    /// Bytes of all frames (Ethernet header to the end of the payload).
    pub(crate) fn wire_bytes(&self) -> u64 {
        self.lens.iter().map(|&l| u64::from(l)).sum()
    }
}
