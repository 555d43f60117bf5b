#!/usr/bin/env python3
"""Write seed inputs for the fuzz targets (run from fuzz/): a few valid
frames for `wire`, and short handshakes in `ct_ops`'s record format."""
import struct, os

def csum(b, init=0):
    if len(b) % 2: b += b"\0"
    s = init + sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff

def ipv4(src, dst, proto, l4, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident, 0, 64, proto, 0, bytes(src), bytes(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + l4

def pseudo(src, dst, proto, n):
    return sum(struct.unpack("!4H", bytes(src) + bytes(dst))) + proto + n

def tcp(src, dst, sp, dp, seq, ack, flags, payload=b"", opts=b""):
    off = (20 + len(opts)) // 4
    t = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, off << 4, flags, 64000, 0, 0) + opts + payload
    c = csum(t, pseudo(src, dst, 6, len(t)))
    return ipv4(src, dst, 6, t[:16] + struct.pack("!H", c) + t[18:])

def udp(src, dst, sp, dp, payload):
    u = struct.pack("!HHHH", sp, dp, 8 + len(payload), 0) + payload
    c = csum(u, pseudo(src, dst, 17, len(u))) or 0xffff
    return ipv4(src, dst, 17, u[:6] + struct.pack("!H", c) + u[8:])

def icmp(src, dst, ty, code, rest, body):
    m = struct.pack("!BBH", ty, code, 0) + rest + body
    return ipv4(src, dst, 1, m[:2] + struct.pack("!H", csum(m)) + m[4:])

def eth(ip, vlan=None, et=0x0800):
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02" + tag + struct.pack("!H", et) + ip

C, S, R = [10, 0, 1, 2], [10, 0, 2, 2], [10, 0, 3, 1]
SYN, ACK, PSH, FIN = 2, 16, 8, 1
wss = b"\x02\x04\x05\xb4\x04\x02\x01\x03\x03\x07"
ftp = [
    eth(tcp(C, S, 40000, 21, 1000, 0, SYN, opts=wss + b"\0\0")),
    eth(tcp(S, C, 21, 40000, 5000, 1001, SYN | ACK)),
    eth(tcp(C, S, 40000, 21, 1001, 5001, ACK)),
    eth(tcp(S, C, 21, 40000, 5001, 1001, PSH | ACK, b"220 ready\r\n")),
    eth(tcp(C, S, 40000, 21, 1001, 5012, PSH | ACK, b"USER a\r\n")),
    eth(tcp(C, S, 40000, 21, 1009, 5012, PSH | ACK, b"PORT 10,0,1,2,156,64\r\n")),
    eth(tcp(S, C, 20, 40000, 9000, 0, SYN)),
    eth(tcp(C, S, 40000, 21, 1031, 5012, FIN | ACK)),
]
probe = udp(C, S, 40000, 33434, b"probe")
misc = [
    eth(probe, vlan=100),
    eth(icmp(S, C, 3, 3, b"\0\0\0\0", probe[:28])),
    eth(icmp(C, S, 8, 0, b"\0\x4d\0\1", b"ping")),
    eth(udp(C, S, 1069, 69, b"\0\x01file\0octet\0")),
    eth(ipv4(C, S, 47, b"\0\0\x08\0")),
    b"\xff" * 12 + b"\x08\x06" + b"\0" * 28,
]
def pseudo6(src, dst, nh, n):
    return sum(struct.unpack("!16H", bytes(src) + bytes(dst))) + nh + (n >> 16) + (n & 0xffff)

def ipv6(src, dst, nh, payload, ext=b"", first=None, flow=0x12345):
    """`ext` is the raw extension chain (its next-header bytes already set),
    `first` the fixed header's next header when there is a chain."""
    h = struct.pack("!IHBB16s16s", (6 << 28) | flow, len(ext) + len(payload), nh if first is None else first, 64,
                    bytes(src), bytes(dst))
    return h + ext + payload

def l4v6(src, dst, nh, l4, at):
    c = csum(l4, pseudo6(src, dst, nh, len(l4)))
    if nh == 17: c = c or 0xffff
    return l4[:at] + struct.pack("!H", c) + l4[at + 2:]

def qinq(ip, outer, inner, et):
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02" + struct.pack("!HHHHH", 0x88a8, outer, 0x8100, inner, et) + ip

C6 = [0xfd, 0, 0, 1] + [0] * 11 + [2]
S6 = [0xfd, 0, 0, 2] + [0] * 11 + [2]
R6 = [0xfd, 0, 0, 3] + [0] * 11 + [1]
syn6 = struct.pack("!HHIIBBHHH", 40000, 80, 1000, 0, 6 << 4, SYN, 64000, 0, 0) + wss[:4]
udp6 = struct.pack("!HHHH", 40000, 33434, 13, 0) + b"probe"
# Hop-by-Hop (PadN) -> Destination Options (PadN) -> Routing (type 4, 0 segments left) -> TCP.
chain = bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([43, 1, 1, 12] + [0] * 12) + bytes([6, 0, 4, 0, 0, 0, 0, 0])
probe6 = ipv6(C6, S6, 17, l4v6(C6, S6, 17, udp6, 6))
# ICMPv6 time exceeded from a router, quoting the UDP probe.
te6 = struct.pack("!BBHI", 3, 0, 0, 0) + probe6
# IPv4 with options (record route, NOP, EOL): header length 32.
def ipv4_opts(src, dst, proto, l4, opts):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), 7, 0, 64, proto, 0, bytes(src), bytes(dst)) + opts
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4
extra_wire = [
    eth(ipv6(C6, S6, 6, l4v6(C6, S6, 6, syn6, 16), ext=chain, first=0), et=0x86dd),
    eth(probe6, et=0x86dd),
    eth(ipv6(R6, C6, 58, l4v6(R6, C6, 58, te6, 2)), et=0x86dd),
    # First fragment of a UDP datagram behind a Fragment header (M set).
    eth(ipv6(C6, S6, 17, l4v6(C6, S6, 17, udp6, 6), ext=bytes([17, 0, 0, 1, 0, 0, 0, 9]), first=44), et=0x86dd),
    qinq(udp(C, S, 1069, 69, b"\0\x01file\0octet\0"), 10, 100, 0x0800),
    eth(ipv4_opts(C, S, 6, tcp(C, S, 40000, 80, 1, 0, SYN)[20:], bytes([7, 7, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0]))),
]
os.makedirs("seeds/wire", exist_ok=True)
os.makedirs("seeds/ct_ops", exist_ok=True)
for i, f in enumerate(ftp + misc + extra_wire):
    open("seeds/wire/%02d.bin" % i, "wb").write(f)
def records(frames):
    return b"".join(bytes([1, i & 2, len(f)]) + f for i, f in enumerate(frames) if len(f) < 256)
open("seeds/ct_ops/ftp.bin", "wb").write(b"\0" + records(ftp)[1:])
open("seeds/ct_ops/misc.bin", "wb").write(records([misc[0], misc[1], misc[2], misc[3], misc[4]]))
