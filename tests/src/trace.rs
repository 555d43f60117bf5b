//! Packet builder and classic pcap writer for the differential tests.
//!
//! Frames are described by [`Pkt`] (an IP packet: IPv4 or IPv6 with extension headers, and
//! TCP/UDP/ICMP/ICMPv6/any other protocol) or [`FrameSpec::Eth`] (any non-IP frame), and
//! rendered to Ethernet bytes by [`FrameSpec::render`]. Checksums are correct unless a
//! [`Csum`] override says otherwise. Each IPv4 frame gets IP ID = its 1-based frame index and
//! each IPv6 frame flow label = its frame index (unless overridden), so that kernel log lines
//! can be matched to frames.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Client (spec §13).
pub const C: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// Server.
pub const S: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// A router on the server side.
pub const R: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
/// A third host, routed through the client side.
pub const X: Ipv4Addr = Ipv4Addr::new(10, 0, 9, 9);
/// IPv6 client.
pub const C6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
/// IPv6 server.
pub const S6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2);
/// IPv6 router on the server side.
pub const R6: Ipv6Addr = Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 1);
/// IPv6 third host, routed through the client side.
pub const X6: Ipv6Addr = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 9);

/// MAC of the injector's C-side veth (the "client network").
pub const MAC_C_PEER: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x02];
/// MAC of the router's C-side veth (`vc`).
pub const MAC_C_RTR: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// MAC of the injector's S-side veth.
pub const MAC_S_PEER: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x02];
/// MAC of the router's S-side veth (`vs`).
pub const MAC_S_RTR: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];

/// TCP flag bits.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// The side of the router a frame enters from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Enters on the client side (`vc`): travels towards the server side.
    C,
    /// Enters on the server side (`vs`): travels towards the client side.
    S,
}

impl Side {
    /// The character used in the injector's side list.
    pub fn as_char(self) -> char {
        match self {
            Side::C => 'c',
            Side::S => 's',
        }
    }

    /// (source MAC, destination MAC) of a frame entering from this side.
    pub fn macs(self) -> ([u8; 6], [u8; 6]) {
        match self {
            Side::C => (MAC_C_PEER, MAC_C_RTR),
            Side::S => (MAC_S_PEER, MAC_S_RTR),
        }
    }
}

/// Whether an address lives behind the router's C side (10.0.1.0/24, 10.0.9.0/24, fd00:1::/64,
/// fd00:9::/64). Frames towards such an address are injected from the S side.
pub fn on_c_side(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] == 10 && o[1] == 0 && (o[2] == 1 || o[2] == 9)
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            s[0] == 0xfd00 && (s[1] == 1 || s[1] == 9) && s[2] == 0 && s[3] == 0
        }
    }
}

/// The side a packet with this destination enters from.
pub fn side_for_dst(dst: IpAddr) -> Side {
    if on_c_side(dst) {
        Side::S
    } else {
        Side::C
    }
}

/// Checksum handling for one checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Csum {
    /// The correct value.
    #[default]
    Correct,
    /// The correct value XOR 0x5a5a (never equal to the correct one).
    Corrupt,
    /// This exact value (e.g. 0 for "no UDP checksum").
    Value(u16),
}

impl Csum {
    fn apply(self, correct: u16) -> u16 {
        match self {
            Csum::Correct => correct,
            Csum::Corrupt => correct ^ 0x5a5a,
            Csum::Value(v) => v,
        }
    }
}

/// TCP options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOpt {
    Nop,
    Mss(u16),
    WScale(u8),
    SackPerm,
    /// SACK blocks (left edge, right edge).
    Sack(Vec<(u32, u32)>),
    Timestamp(u32, u32),
    /// Raw option bytes (kind, length, data...) as given.
    Raw(Vec<u8>),
}

impl TcpOpt {
    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            TcpOpt::Nop => out.push(1),
            TcpOpt::Mss(m) => {
                out.extend_from_slice(&[2, 4]);
                out.extend_from_slice(&m.to_be_bytes());
            }
            TcpOpt::WScale(s) => out.extend_from_slice(&[3, 3, *s]),
            TcpOpt::SackPerm => out.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                out.push(5);
                out.push(2 + 8 * blocks.len() as u8);
                for (l, r) in blocks {
                    out.extend_from_slice(&l.to_be_bytes());
                    out.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOpt::Timestamp(a, b) => {
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&a.to_be_bytes());
                out.extend_from_slice(&b.to_be_bytes());
            }
            TcpOpt::Raw(b) => out.extend_from_slice(b),
        }
    }
}

/// The layer-4 part of a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
        win: u16,
        urg: u16,
        opts: Vec<TcpOpt>,
        payload: Vec<u8>,
    },
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
        /// Override of the UDP length field.
        len: Option<u16>,
    },
    /// ICMP (IPv4 packet) or ICMPv6 (IPv6 packet): type, code, the 4 bytes after the
    /// checksum (id/seq, MTU, pointer, unused...), and the body.
    Icmp { ty: u8, code: u8, rest: [u8; 4], body: Vec<u8> },
    /// Any protocol number with an opaque payload (GRE, 253, ...).
    Raw { proto: u8, payload: Vec<u8> },
}

impl L4 {
    fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }
}

/// IPv6 extension headers (inserted in order between the fixed header and the L4 header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ext6 {
    /// Hop-by-hop options; the option bytes are padded with PadN to a multiple of 8.
    HopByHop(Vec<u8>),
    /// Destination options; padded like `HopByHop`.
    DestOpts(Vec<u8>),
    /// Type-0-less routing header: routing type, segments left, and the type-specific data.
    Routing { rtype: u8, segments_left: u8, data: Vec<u8> },
    /// Fragment header.
    Fragment { offset: u16, more: bool, id: u32 },
}

/// The hop-by-hop Router Alert option for MLD (value 0).
pub const ROUTER_ALERT_MLD: [u8; 4] = [5, 2, 0, 0];

/// An IP packet plus per-frame knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pkt {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 ID; `None` = the frame index (0 when built as an inner packet).
    pub ip_id: Option<u16>,
    /// IPv6 flow label; `None` = the frame index (0 when built as an inner packet).
    pub flow: Option<u32>,
    pub df: bool,
    /// IPv4 fragment offset in 8-byte units, and the MF flag.
    pub frag: Option<(u16, bool)>,
    pub ext6: Vec<Ext6>,
    /// IPv4 options (padded with EOL to a multiple of 4 bytes).
    pub opts4: Vec<u8>,
    pub l4: L4,
    pub l4_csum: Csum,
    pub ip_csum: Csum,
    /// 802.1Q tag (VID) on the Ethernet frame.
    pub vlan: Option<u16>,
    /// Override of the entry side (default: derived from the destination).
    pub side: Option<Side>,
    /// Cut the IP packet to this many bytes after building; the IP length fields (and the
    /// IPv4 header checksum) are adjusted to the cut size.
    pub cut: Option<usize>,
    /// Send only this fragment of the packet (see [`Piece`]).
    pub piece: Option<Piece>,
}

/// One fragment of a datagram: bytes `offset..offset + len` of its fragmentable part (the L4
/// bytes; for IPv6 also the extension headers after the last Hop-by-Hop or Routing header,
/// RFC 8200 §4.5), bytes beyond the datagram's end zero-filled (for hostile fragments).
/// IPv4: the header carries MF and `offset / 8` and the packet's `ip_id` (the same for every
/// fragment of a datagram). IPv6: a Fragment header with `id` follows the unfragmentable
/// headers; the flow label stays the frame index unless overridden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub offset: u32,
    pub len: u32,
    pub more: bool,
    /// IPv4: the IP ID; IPv6: the Fragment header's identification.
    pub id: u32,
}

/// IPv4 IDs of fragmented datagrams start here, above every frame index, so that the ID in a
/// kernel log line names one datagram and never an unfragmented frame.
pub const FRAG_ID_BASE: u32 = 0x4000;

impl Pkt {
    /// A packet with default header fields (TTL 64) around `l4`.
    pub fn new(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, l4: L4) -> Pkt {
        let src = src.into();
        let dst = dst.into();
        assert_eq!(src.is_ipv4(), dst.is_ipv4(), "mixed address families");
        Pkt {
            src,
            dst,
            ttl: 64,
            tos: 0,
            ip_id: None,
            flow: None,
            df: false,
            frag: None,
            ext6: Vec::new(),
            opts4: Vec::new(),
            l4,
            l4_csum: Csum::Correct,
            ip_csum: Csum::Correct,
            vlan: None,
            side: None,
            cut: None,
            piece: None,
        }
    }

    /// A TCP segment with window 64000, no options, no payload.
    pub fn tcp(
        src: impl Into<IpAddr>,
        sport: u16,
        dst: impl Into<IpAddr>,
        dport: u16,
        flags: u8,
        seq: u32,
        ack: u32,
    ) -> Pkt {
        Pkt::new(
            src,
            dst,
            L4::Tcp { sport, dport, seq, ack, flags, win: 64000, urg: 0, opts: Vec::new(), payload: Vec::new() },
        )
    }

    /// A UDP datagram.
    pub fn udp(src: impl Into<IpAddr>, sport: u16, dst: impl Into<IpAddr>, dport: u16, payload: &[u8]) -> Pkt {
        Pkt::new(src, dst, L4::Udp { sport, dport, payload: payload.to_vec(), len: None })
    }

    /// An ICMP/ICMPv6 message (the family follows the addresses).
    pub fn icmp(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, ty: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Pkt {
        Pkt::new(src, dst, L4::Icmp { ty, code, rest, body: body.to_vec() })
    }

    /// An ICMP-style query with an identifier and sequence number (echo, timestamp...).
    pub fn icmp_query(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, ty: u8, id: u16, seq: u16, body: &[u8]) -> Pkt {
        let mut rest = [0u8; 4];
        rest[..2].copy_from_slice(&id.to_be_bytes());
        rest[2..].copy_from_slice(&seq.to_be_bytes());
        Pkt::icmp(src, dst, ty, 0, rest, body)
    }

    /// An ICMP/ICMPv6 error quoting `inner` (built as an inner packet: IP ID / flow label 0
    /// unless set), cut to `quote` bytes if given.
    pub fn icmp_error(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        inner: &Pkt,
        quote: Option<usize>,
    ) -> Pkt {
        let mut q = inner.ip_bytes(0);
        if let Some(n) = quote {
            q.truncate(n);
        }
        Pkt::icmp(src, dst, ty, code, rest, &q)
    }

    /// A packet of any protocol number with an opaque payload.
    pub fn raw(src: impl Into<IpAddr>, dst: impl Into<IpAddr>, proto: u8, payload: &[u8]) -> Pkt {
        Pkt::new(src, dst, L4::Raw { proto, payload: payload.to_vec() })
    }

    /// An SCTP packet (IP protocol 132) with a common header and `chunks` (see
    /// [`sctp_chunk`]) and a correct CRC32c (RFC 9260 §6.8, Appendix A).
    pub fn sctp(
        src: impl Into<IpAddr>,
        sport: u16,
        dst: impl Into<IpAddr>,
        dport: u16,
        vtag: u32,
        chunks: &[Vec<u8>],
    ) -> Pkt {
        let mut b = Vec::new();
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&dport.to_be_bytes());
        b.extend_from_slice(&vtag.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        for c in chunks {
            b.extend_from_slice(c);
        }
        let crc = crc32c(&b);
        b[8..12].copy_from_slice(&crc.to_le_bytes());
        Pkt::raw(src, dst, 132, &b)
    }

    // ---- modifiers -------------------------------------------------------------------------

    /// Sets the TCP payload (panics for non-TCP).
    pub fn payload(mut self, data: &[u8]) -> Pkt {
        match &mut self.l4 {
            L4::Tcp { payload, .. } | L4::Udp { payload, .. } | L4::Raw { payload, .. } => *payload = data.to_vec(),
            L4::Icmp { body, .. } => *body = data.to_vec(),
        }
        self
    }

    /// Sets the TCP window.
    pub fn win(mut self, w: u16) -> Pkt {
        match &mut self.l4 {
            L4::Tcp { win, .. } => *win = w,
            _ => panic!("win() on a non-TCP packet"),
        }
        self
    }

    /// Appends a TCP option.
    pub fn opt(mut self, o: TcpOpt) -> Pkt {
        match &mut self.l4 {
            L4::Tcp { opts, .. } => opts.push(o),
            _ => panic!("opt() on a non-TCP packet"),
        }
        self
    }

    /// Sets the TCP urgent pointer.
    pub fn urg_ptr(mut self, u: u16) -> Pkt {
        match &mut self.l4 {
            L4::Tcp { urg, .. } => *urg = u,
            _ => panic!("urg_ptr() on a non-TCP packet"),
        }
        self
    }

    /// Overrides the UDP length field.
    pub fn udp_len(mut self, l: u16) -> Pkt {
        match &mut self.l4 {
            L4::Udp { len, .. } => *len = Some(l),
            _ => panic!("udp_len() on a non-UDP packet"),
        }
        self
    }

    /// Corrupts the L4 checksum.
    pub fn bad_l4_csum(mut self) -> Pkt {
        self.l4_csum = Csum::Corrupt;
        self
    }

    /// Sets the L4 checksum to an exact value.
    pub fn l4_csum(mut self, v: u16) -> Pkt {
        self.l4_csum = Csum::Value(v);
        self
    }

    /// Corrupts the IPv4 header checksum.
    pub fn bad_ip_csum(mut self) -> Pkt {
        self.ip_csum = Csum::Corrupt;
        self
    }

    pub fn ttl(mut self, t: u8) -> Pkt {
        self.ttl = t;
        self
    }

    pub fn ip_id(mut self, id: u16) -> Pkt {
        self.ip_id = Some(id);
        self
    }

    pub fn flow(mut self, f: u32) -> Pkt {
        self.flow = Some(f);
        self
    }

    pub fn ext(mut self, e: Ext6) -> Pkt {
        self.ext6.push(e);
        self
    }

    /// Adds IPv4 header options (raw bytes).
    pub fn ip_opts(mut self, opts: &[u8]) -> Pkt {
        assert!(self.src.is_ipv4(), "IPv4 options on an IPv6 packet");
        self.opts4.extend_from_slice(opts);
        self
    }

    pub fn vlan(mut self, vid: u16) -> Pkt {
        self.vlan = Some(vid);
        self
    }

    pub fn side(mut self, s: Side) -> Pkt {
        self.side = Some(s);
        self
    }

    pub fn frag(mut self, offset8: u16, more: bool) -> Pkt {
        self.frag = Some((offset8, more));
        self
    }

    pub fn cut(mut self, n: usize) -> Pkt {
        self.cut = Some(n);
        self
    }

    // ---- fragments -------------------------------------------------------------------------

    /// The fragment of this datagram covering `offset..offset + len` of its fragmentable part
    /// (raw control: any offset, length and MF; `offset` must be a multiple of 8 as the
    /// header encodes it in 8-byte units). IPv4: `id` becomes the IP ID (it must fit 16 bits).
    pub fn piece(&self, id: u32, offset: usize, len: usize, more: bool) -> Pkt {
        assert!(offset.is_multiple_of(8), "fragment offset {offset} is not a multiple of 8");
        assert!(offset / 8 <= 0x1fff, "fragment offset {offset} does not fit the header");
        assert!(self.frag.is_none() && self.cut.is_none(), "piece() of a packet with raw frag/cut");
        let mut p = self.clone();
        if p.src.is_ipv4() {
            p.ip_id = Some(u16::try_from(id).expect("IPv4 fragment ID fits 16 bits"));
        }
        let offset = u32::try_from(offset).expect("fragment offset fits 32 bits");
        let len = u32::try_from(len).expect("fragment length fits 32 bits");
        p.piece = Some(Piece { offset, len, more, id });
        p
    }

    /// Cuts the datagram into fragments of `size` bytes of fragmentable part each (a multiple
    /// of 8), the last one shorter, in order.
    pub fn fragments(&self, id: u32, size: usize) -> Vec<Pkt> {
        assert!(size > 0 && size.is_multiple_of(8), "fragment size {size} is not a positive multiple of 8");
        let total = self.frag_len();
        (0..total)
            .step_by(size)
            .map(|off| {
                let len = size.min(total - off);
                self.piece(id, off, len, off + len < total)
            })
            .collect()
    }

    /// Length of the fragmentable part of the whole datagram.
    pub fn frag_len(&self) -> usize {
        self.fragmentable().1.len()
    }

    /// Splits IPv6 extension headers into the unfragmentable ones (up to the last Hop-by-Hop
    /// or Routing header) and returns them with the fragmentable bytes (the remaining
    /// extension headers and the L4 bytes). IPv4: no headers, the L4 bytes.
    fn fragmentable(&self) -> (&[Ext6], Vec<u8>) {
        let l4 = self.l4_bytes();
        let split =
            self.ext6.iter().rposition(|e| matches!(e, Ext6::HopByHop(_) | Ext6::Routing { .. })).map_or(0, |i| i + 1);
        let (unfrag, frag) = self.ext6.split_at(split);
        let mut out = Vec::new();
        let mut nexts: Vec<u8> = frag.iter().map(ext_type).collect();
        nexts.push(self.l4.proto(self.src.is_ipv6()));
        for (i, e) in frag.iter().enumerate() {
            emit_ext(e, nexts[i + 1], &mut out);
        }
        out.extend_from_slice(&l4);
        (unfrag, out)
    }

    /// This fragment's data: the datagram's fragmentable bytes in the piece's range.
    fn piece_data(&self, piece: &Piece) -> Vec<u8> {
        let (_, all) = self.fragmentable();
        (piece.offset..piece.offset + piece.len).map(|i| all.get(i as usize).copied().unwrap_or(0)).collect()
    }

    // ---- rendering -------------------------------------------------------------------------

    /// The side the frame enters the router from.
    pub fn entry_side(&self) -> Side {
        self.side.unwrap_or_else(|| side_for_dst(self.dst))
    }

    /// The L4 bytes with the checksum filled in.
    fn l4_bytes(&self) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        let proto = self.l4.proto(v6);
        let mut b = Vec::new();
        let csum_at: Option<usize> = match &self.l4 {
            L4::Tcp { sport, dport, seq, ack, flags, win, urg, opts, payload } => {
                let mut o = Vec::new();
                for opt in opts {
                    opt.emit(&mut o);
                }
                while o.len() % 4 != 0 {
                    o.push(0); // EOL padding
                }
                let doff = (20 + o.len()) / 4;
                assert!(doff <= 15, "TCP options too long");
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&seq.to_be_bytes());
                b.extend_from_slice(&ack.to_be_bytes());
                b.push((doff as u8) << 4);
                b.push(*flags);
                b.extend_from_slice(&win.to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(&urg.to_be_bytes());
                b.extend_from_slice(&o);
                b.extend_from_slice(payload);
                Some(16)
            }
            L4::Udp { sport, dport, payload, len } => {
                let real = (8 + payload.len()) as u16;
                b.extend_from_slice(&sport.to_be_bytes());
                b.extend_from_slice(&dport.to_be_bytes());
                b.extend_from_slice(&len.unwrap_or(real).to_be_bytes());
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(payload);
                Some(6)
            }
            L4::Icmp { ty, code, rest, body } => {
                b.push(*ty);
                b.push(*code);
                b.extend_from_slice(&[0, 0]);
                b.extend_from_slice(rest);
                b.extend_from_slice(body);
                Some(2)
            }
            L4::Raw { payload, .. } => {
                b.extend_from_slice(payload);
                None
            }
        };
        if let Some(at) = csum_at {
            let pseudo = !matches!(self.l4, L4::Icmp { .. }) || v6;
            let mut sum = Checksum::new();
            if pseudo {
                sum.add_pseudo(self.src, self.dst, proto, b.len() as u32);
            }
            sum.add(&b);
            let mut c = sum.finish();
            if matches!(self.l4, L4::Udp { .. }) && c == 0 {
                c = 0xffff;
            }
            let c = self.l4_csum.apply(c);
            b[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        b
    }

    /// The IP packet (header, extension headers, L4), with `index` used for the IPv4 ID or
    /// IPv6 flow label unless they are overridden.
    pub fn ip_bytes(&self, index: u32) -> Vec<u8> {
        let v6 = self.src.is_ipv6();
        // The bytes after the headers, the IPv4 fragment field, the IPv6 extension headers and
        // the next-header value after them: the whole packet, or one fragment of it.
        let (l4, frag4, ext6, proto) = match &self.piece {
            None => (self.l4_bytes(), self.frag, self.ext6.clone(), self.l4.proto(v6)),
            Some(pc) => {
                let (unfrag, _) = self.fragmentable();
                let n_unfrag = unfrag.len();
                let mut ext6 = unfrag.to_vec();
                let after = self.ext6.get(n_unfrag).map_or(self.l4.proto(v6), ext_type);
                ext6.push(Ext6::Fragment { offset: (pc.offset / 8) as u16, more: pc.more, id: pc.id });
                let frag4 = Some(((pc.offset / 8) as u16, pc.more));
                (self.piece_data(pc), frag4, ext6, if v6 { after } else { self.l4.proto(false) })
            }
        };
        let mut out = Vec::new();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut opts = self.opts4.clone();
                opts.resize(opts.len().next_multiple_of(4), 0);
                assert!(opts.len() <= 40, "IPv4 options too long");
                let hlen = 20 + opts.len();
                let total = (hlen + l4.len()) as u16;
                let id = self.ip_id.unwrap_or(index as u16);
                let mut fl: u16 = if self.df { 0x4000 } else { 0 };
                if let Some((off, more)) = frag4 {
                    fl |= off & 0x1fff;
                    if more {
                        fl |= 0x2000;
                    }
                }
                let mut h = vec![0x40 | (hlen / 4) as u8, self.tos];
                h.extend_from_slice(&total.to_be_bytes());
                h.extend_from_slice(&id.to_be_bytes());
                h.extend_from_slice(&fl.to_be_bytes());
                h.push(self.ttl);
                h.push(proto);
                h.extend_from_slice(&[0, 0]);
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                h.extend_from_slice(&opts);
                let mut sum = Checksum::new();
                sum.add(&h);
                let c = self.ip_csum.apply(sum.finish());
                h[10..12].copy_from_slice(&c.to_be_bytes());
                out.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut ext = Vec::new();
                let mut nexts: Vec<u8> = ext6.iter().map(ext_type).collect();
                nexts.push(proto);
                for (i, e) in ext6.iter().enumerate() {
                    emit_ext(e, nexts[i + 1], &mut ext);
                }
                let plen = (ext.len() + l4.len()) as u16;
                let flow = self.flow.unwrap_or(index) & 0xfffff;
                let word = (6u32 << 28) | ((self.tos as u32) << 20) | flow;
                out.extend_from_slice(&word.to_be_bytes());
                out.extend_from_slice(&plen.to_be_bytes());
                out.push(nexts[0]);
                out.push(self.ttl);
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&d.octets());
                out.extend_from_slice(&ext);
            }
            _ => unreachable!("mixed address families"),
        }
        out.extend_from_slice(&l4);
        if let Some(n) = self.cut {
            // A shorter packet with consistent length fields (a truncated L4 header that the
            // IP layer still accepts).
            out.truncate(n);
            if v6 {
                let plen = (out.len().saturating_sub(40)) as u16;
                out[4..6].copy_from_slice(&plen.to_be_bytes());
            } else {
                let total = out.len() as u16;
                out[2..4].copy_from_slice(&total.to_be_bytes());
                out[10..12].copy_from_slice(&[0, 0]);
                let hlen = ((out[0] & 0x0f) as usize * 4).min(out.len());
                let mut sum = Checksum::new();
                sum.add(&out[..hlen]);
                let c = self.ip_csum.apply(sum.finish());
                out[10..12].copy_from_slice(&c.to_be_bytes());
            }
        }
        out
    }
}

fn ext_type(e: &Ext6) -> u8 {
    match e {
        Ext6::HopByHop(_) => 0,
        Ext6::DestOpts(_) => 60,
        Ext6::Routing { .. } => 43,
        Ext6::Fragment { .. } => 44,
    }
}

fn emit_ext(e: &Ext6, next: u8, out: &mut Vec<u8>) {
    match e {
        Ext6::HopByHop(opts) | Ext6::DestOpts(opts) => {
            let mut body = opts.clone();
            let pad = (8 - (2 + body.len()) % 8) % 8;
            match pad {
                0 => {}
                1 => body.push(0), // Pad1
                n => {
                    body.push(1); // PadN
                    body.push((n - 2) as u8);
                    body.extend(std::iter::repeat_n(0, n - 2));
                }
            }
            out.push(next);
            out.push(((2 + body.len()) / 8 - 1) as u8);
            out.extend_from_slice(&body);
        }
        Ext6::Routing { rtype, segments_left, data } => {
            let mut body = vec![*rtype, *segments_left];
            body.extend_from_slice(data);
            while (2 + body.len()) % 8 != 0 {
                body.push(0);
            }
            out.push(next);
            out.push(((2 + body.len()) / 8 - 1) as u8);
            out.extend_from_slice(&body);
        }
        Ext6::Fragment { offset, more, id } => {
            out.push(next);
            out.push(0);
            let v = (offset << 3) | (*more as u16);
            out.extend_from_slice(&v.to_be_bytes());
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
}

/// One SCTP chunk: type, flags, length (4 + value) and the value, padded to 4 bytes.
pub fn sctp_chunk(ty: u8, flags: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![ty, flags];
    c.extend_from_slice(&(4 + value.len() as u16).to_be_bytes());
    c.extend_from_slice(value);
    while c.len() % 4 != 0 {
        c.push(0);
    }
    c
}

/// CRC32c (Castagnoli, reflected polynomial 0x82F63B78), bit by bit.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
        }
    }
    !c
}

/// Internet checksum accumulator (RFC 1071).
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum(0)
    }

    pub fn add(&mut self, data: &[u8]) {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            self.0 += u16::from_be_bytes([c[0], c[1]]) as u64;
        }
        if let [last] = chunks.remainder() {
            self.0 += (*last as u64) << 8;
        }
    }

    pub fn add_pseudo(&mut self, src: IpAddr, dst: IpAddr, proto: u8, len: u32) {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                self.add(&s.octets());
                self.add(&d.octets());
                self.add(&[0, proto]);
                self.add(&(len as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                self.add(&s.octets());
                self.add(&d.octets());
                self.add(&len.to_be_bytes());
                self.add(&[0, 0, 0, proto]);
            }
            _ => unreachable!(),
        }
    }

    pub fn finish(&self) -> u16 {
        let mut s = self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

/// One frame of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameSpec {
    /// An IP packet in an Ethernet frame.
    Ip(Pkt),
    /// A non-IP Ethernet frame.
    Eth { ethertype: u16, payload: Vec<u8>, side: Side },
}

impl FrameSpec {
    /// The side the frame enters the router from.
    pub fn side(&self) -> Side {
        match self {
            FrameSpec::Ip(p) => p.entry_side(),
            FrameSpec::Eth { side, .. } => *side,
        }
    }

    /// The Ethernet frame; `index` is the 1-based frame index. With `strip_vlan` any 802.1Q
    /// tag is left out (the kernel reference's plain veths do not route tagged frames).
    pub fn render(&self, index: u32, strip_vlan: bool) -> Vec<u8> {
        let (src_mac, dst_mac) = self.side().macs();
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&dst_mac);
        f.extend_from_slice(&src_mac);
        match self {
            FrameSpec::Ip(p) => {
                if let (Some(vid), false) = (p.vlan, strip_vlan) {
                    f.extend_from_slice(&0x8100u16.to_be_bytes());
                    f.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
                }
                let et: u16 = if p.src.is_ipv4() { 0x0800 } else { 0x86dd };
                f.extend_from_slice(&et.to_be_bytes());
                f.extend_from_slice(&p.ip_bytes(index));
            }
            FrameSpec::Eth { ethertype, payload, .. } => {
                f.extend_from_slice(&ethertype.to_be_bytes());
                f.extend_from_slice(payload);
            }
        }
        // Ethernet minimum frame size (without FCS).
        while f.len() < 60 {
            f.push(0);
        }
        f
    }

    /// Whether the frame carries an IP packet (and so should be seen by the kernel's
    /// inet prerouting chain).
    pub fn is_ip(&self) -> bool {
        matches!(self, FrameSpec::Ip(_))
    }
}

/// A frame with its timestamp (seconds since the start of the trace) and a short note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedFrame {
    /// Microseconds since the start of the trace.
    pub t_us: u64,
    pub spec: FrameSpec,
    pub note: String,
}

/// The pcap timestamp of the first frame (arbitrary, fixed).
pub const PCAP_EPOCH_S: u64 = 1_700_000_000;

/// Writes a classic pcap (microsecond timestamps, linktype Ethernet).
pub fn write_pcap<W: Write>(mut w: W, frames: &[(u64, Vec<u8>)]) -> io::Result<()> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    w.write_all(&h)?;
    for (t_us, data) in frames {
        let abs = PCAP_EPOCH_S * 1_000_000 + t_us;
        let mut r = Vec::with_capacity(16 + data.len());
        r.extend_from_slice(&((abs / 1_000_000) as u32).to_le_bytes());
        r.extend_from_slice(&((abs % 1_000_000) as u32).to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(data);
        w.write_all(&r)?;
    }
    w.flush()
}

/// Reads back a classic pcap written by [`write_pcap`] (microsecond, little endian):
/// (microseconds since the pcap epoch, frame bytes).
pub fn read_pcap(data: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    if data.len() < 24 || u32::from_le_bytes(data[0..4].try_into().ok()?) != 0xa1b2_c3d4 {
        return None;
    }
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= data.len() {
        let sec = u32::from_le_bytes(data[off..off + 4].try_into().ok()?) as u64;
        let usec = u32::from_le_bytes(data[off + 4..off + 8].try_into().ok()?) as u64;
        let incl = u32::from_le_bytes(data[off + 8..off + 12].try_into().ok()?) as usize;
        off += 16;
        out.push(((sec * 1_000_000 + usec) - PCAP_EPOCH_S * 1_000_000, data.get(off..off + incl)?.to_vec()));
        off += incl;
    }
    Some(out)
}

// ---- small helpers for ICMPv6 ND/MLD/redirect bodies --------------------------------------------

/// The solicited-node multicast address of `a`.
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, u16::from_be_bytes([o[14], o[15]]))
}

/// A link-local address ending in `low`.
pub fn link_local(low: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, low)
}

/// Body of a Neighbour Solicitation / Advertisement: target + source/target link-layer option.
pub fn nd_body(target: Ipv6Addr, opt_type: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut b = target.octets().to_vec();
    b.push(opt_type);
    b.push(1);
    b.extend_from_slice(&mac);
    b
}

/// Body of an ICMPv6 Redirect: target, destination and a Redirected Header option quoting
/// `quoted` (an IP packet), padded to a multiple of 8.
pub fn redirect_body(target: Ipv6Addr, dest: Ipv6Addr, quoted: &[u8]) -> Vec<u8> {
    let mut b = target.octets().to_vec();
    b.extend_from_slice(&dest.octets());
    let mut opt = vec![4u8, 0, 0, 0, 0, 0, 0, 0];
    opt.extend_from_slice(quoted);
    while opt.len() % 8 != 0 {
        opt.push(0);
    }
    opt[1] = (opt.len() / 8) as u8;
    b.extend_from_slice(&opt);
    b
}
