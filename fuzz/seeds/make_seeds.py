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
os.makedirs("seeds/wire", exist_ok=True)
os.makedirs("seeds/ct_ops", exist_ok=True)
for i, f in enumerate(ftp + misc):
    open("seeds/wire/%02d.bin" % i, "wb").write(f)
def records(frames):
    return b"".join(bytes([1, i & 2, len(f)]) + f for i, f in enumerate(frames) if len(f) < 256)
open("seeds/ct_ops/ftp.bin", "wb").write(b"\0" + records(ftp)[1:])
open("seeds/ct_ops/misc.bin", "wb").write(records([misc[0], misc[1], misc[2], misc[3], misc[4]]))
