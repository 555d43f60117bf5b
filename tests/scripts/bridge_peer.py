#!/usr/bin/env python3
"""Peers for the bridge end-to-end tests (tests/src/bridge.rs). Each subcommand is one
small client or server, bounded in time; results go to stdout as one JSON object (clients)
or as a `ready` line once listening (servers, which then run until killed)."""

import argparse
import hashlib
import json
import os
import random
import socket
import struct
import sys
import time


def out(obj):
    print(json.dumps(obj), flush=True)


def ready():
    print("ready", flush=True)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


# ---------------------------------------------------------------- UDP


def udp_echo(a):
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    ready()
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def udp_client(a):
    """Sends `count` datagrams of varying size, each waiting for its echo."""
    s = socket.socket(family(a.dst), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.dst, a.port))
    ok, errors = 0, []
    for i in range(a.count):
        size = a.size if a.size > 0 else 16 + 97 * i % 1200
        payload = (b"%06d-" % i) + bytes((i + k) & 0xFF for k in range(size))
        s.send(payload)
        try:
            back = s.recv(65535)
            if back == payload:
                ok += 1
            else:
                errors.append("datagram %d: echo differs" % i)
        except socket.timeout:
            errors.append("datagram %d: no echo within %ss" % (i, a.timeout))
        except OSError as e:
            errors.append("datagram %d: %s" % (i, e))
    out({"sent": a.count, "ok": ok, "errors": errors[:5]})


def udp_probe(a):
    """One datagram on a connected socket: reports `reply`, `refused` (an ICMP port
    unreachable reached us) or `timeout`."""
    s = socket.socket(family(a.dst), socket.SOCK_DGRAM)
    s.settimeout(a.timeout)
    s.connect((a.dst, a.port))
    result = "timeout"
    deadline = time.monotonic() + a.timeout
    s.send(b"probe")
    while time.monotonic() < deadline:
        try:
            s.recv(65535)
            result = "reply"
            break
        except ConnectionRefusedError:
            result = "refused"
            break
        except socket.timeout:
            break
    out({"result": result})


def udp_count(a):
    """Counts datagrams arriving within `duration` seconds (after printing ready)."""
    s = socket.socket(family(a.bind), socket.SOCK_DGRAM)
    s.bind((a.bind, a.port))
    ready()
    n = 0
    deadline = time.monotonic() + a.duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            s.recvfrom(65535)
            n += 1
        except socket.timeout:
            break
    out({"received": n})


def udp_send(a):
    s = socket.socket(family(a.dst), socket.SOCK_DGRAM)
    for i in range(a.count):
        s.sendto((b"unsolicited %d " % i).ljust(a.size, b"x"), (a.dst, a.port))
        time.sleep(0.05)
    out({"sent": a.count})


# ---------------------------------------------------------------- TCP


def tcp_listen(a):
    s = socket.socket(family(a.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.listen(16)
    ready()
    while True:
        c, peer = s.accept()
        print("accepted %s" % (peer,), flush=True)
        c.close()


def tcp_connect(a):
    s = socket.socket(family(a.dst), socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    try:
        s.connect((a.dst, a.port))
        result = "connected"
    except socket.timeout:
        result = "timeout"
    except ConnectionRefusedError:
        result = "refused"
    except OSError as e:
        result = "error: %s" % e
    out({"result": result})


def wait_tcp(a):
    """Polls until a TCP connect to dst:port succeeds (a server's readiness)."""
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            socket.create_connection((a.dst, a.port), timeout=1).close()
            out({"result": "up"})
            return
        except OSError as e:
            last = str(e)
            time.sleep(0.1)
    out({"result": "down", "error": last})
    sys.exit(1)


def stream_bytes(seed, total, chunk):
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield rng.randbytes(n)
        sent += n


def sink(a):
    """Accepts one connection, reads until EOF, reports the byte count and sha256."""
    s = socket.socket(family(a.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a.bind, a.port))
    s.listen(1)
    s.settimeout(a.timeout)
    ready()
    c, _ = s.accept()
    c.settimeout(a.timeout)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    try:
        while True:
            d = c.recv(1 << 16)
            if not d:
                break
            h.update(d)
            n += len(d)
        err = None
    except OSError as e:
        err = str(e)
    out({"bytes": n, "sha256": h.hexdigest(), "secs": round(time.monotonic() - t0, 3), "error": err})


def source(a):
    """Sends `bytes` deterministic bytes at about `rate` bytes/s, then closes."""
    s = socket.create_connection((a.dst, a.port), timeout=a.timeout)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    err = None
    try:
        for block in stream_bytes(a.seed, a.bytes, a.chunk):
            s.sendall(block)
            h.update(block)
            n += len(block)
            if a.rate > 0:
                ahead = n / a.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        s.shutdown(socket.SHUT_WR)
        # Wait for the peer's close so that every byte was acknowledged.
        s.recv(1)
    except OSError as e:
        err = str(e)
    s.close()
    out({"bytes": n, "sha256": h.hexdigest(), "secs": round(time.monotonic() - t0, 3), "error": err})


# ---------------------------------------------------------------- raw TCP


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def raw_tcp_send(a):
    """Sends one hand-made TCP segment (IPv4), the kernel adding the IP header."""
    flags = 0
    for ch in a.flags:
        flags |= FLAG_BITS[ch]
    hdr = struct.pack("!HHIIBBHHH", a.sport, a.dport, a.seq, a.ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = socket.inet_aton(a.src) + socket.inet_aton(a.dst) + struct.pack("!BBH", 0, 6, len(hdr))
    c = csum(pseudo + hdr)
    hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.bind((a.src, 0))
    for _ in range(a.count):
        s.sendto(hdr, (a.dst, 0))
        time.sleep(0.05)
    out({"sent": a.count})


def raw_tcp_watch(a):
    """Reports every TCP segment to `port` that arrives within `duration` seconds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    ready()
    seen = []
    deadline = time.monotonic() + a.duration
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            pkt, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        ihl = (pkt[0] & 0x0F) * 4
        src = socket.inet_ntoa(pkt[12:16])
        sport, dport, seq = struct.unpack("!HHI", pkt[ihl : ihl + 8])
        fl = pkt[ihl + 13]
        if dport != a.port:
            continue
        flags = "".join(k for k, v in FLAG_BITS.items() if fl & v)
        seen.append({"src": src, "sport": sport, "flags": flags, "seq": seq})
    out({"seen": seen})


# ---------------------------------------------------------------- FTP


def ftp_server(a):
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer
    import logging

    logging.basicConfig(level=logging.WARNING)
    auth = DummyAuthorizer()
    auth.add_user("ctwall", "ctwall", a.root, perm="elradfmw")
    handler = FTPHandler
    handler.authorizer = auth
    handler.timeout = 30
    server = FTPServer((a.bind, a.port), handler)
    server.max_cons = 16
    ready()
    server.serve_forever(timeout=0.2)


def ftp_client(a):
    import ftplib

    result = {"ok": False, "steps": []}
    try:
        f = ftplib.FTP(timeout=a.timeout)
        f.connect(a.host, a.port)
        f.login("ctwall", "ctwall")
        result["steps"].append("login")
        f.set_pasv(a.mode == "passive")
        with open(a.upload, "rb") as fh:
            f.storbinary("STOR " + a.remote_up, fh)
        result["steps"].append("stor")
        with open(a.out, "wb") as fh:
            f.retrbinary("RETR " + a.remote_down, fh.write)
        result["steps"].append("retr")
        f.quit()
        result["ok"] = True
    except Exception as e:  # noqa: BLE001 - any failure is the result
        result["error"] = "%s: %s" % (type(e).__name__, e)
    out(result)


# ---------------------------------------------------------------- 802.1Q frames


def mac_bytes(m):
    return bytes(int(x, 16) for x in m.split(":"))


def vlan_udp_send(a):
    """Sends `count` hand-made 802.1Q-tagged IPv4/UDP frames out of `dev` (AF_PACKET)."""
    payload = b"vlan-test"
    udp = struct.pack("!HHHH", a.sport, a.dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(a.src), socket.inet_aton(a.dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    pseudo = socket.inet_aton(a.src) + socket.inet_aton(a.dst) + struct.pack("!BBH", 0, 17, len(udp))
    udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
    frame = mac_bytes(a.dst_mac) + mac_bytes(a.src_mac) + struct.pack("!HHH", 0x8100, a.vlan, 0x0800) + ip + udp
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((a.dev, 0))
    for _ in range(a.count):
        s.send(frame)
        time.sleep(0.05)
    out({"sent": a.count})


def vlan_udp_watch(a):
    """Counts IPv4/UDP frames to `dport` arriving on `dev` within `duration` s, by VLAN id
    (inline tag, or the tag the kernel moved to PACKET_AUXDATA)."""
    PACKET_AUXDATA, TP_STATUS_VLAN_VALID = 8, 0x10
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((a.dev, 0))
    s.setsockopt(263, PACKET_AUXDATA, 1)  # SOL_PACKET
    s.settimeout(0.2)
    ready()
    seen = {}
    end = time.monotonic() + a.duration
    while time.monotonic() < end:
        try:
            data, anc, _, addr = s.recvmsg(4096, socket.CMSG_SPACE(64))
        except socket.timeout:
            continue
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        vid = None
        for level, typ, cdata in anc:
            if level == 263 and typ == PACKET_AUXDATA and len(cdata) >= 18:
                status, tci = struct.unpack("=I", cdata[:4])[0], struct.unpack("=H", cdata[16:18])[0]
                if status & TP_STATUS_VLAN_VALID:
                    vid = tci & 0xFFF
        off = 12
        if len(data) >= 18 and data[12:14] == b"\x81\x00":
            vid = struct.unpack("!H", data[14:16])[0] & 0xFFF
            off = 16
        if data[off:off + 2] != b"\x08\x00" or len(data) < off + 2 + 28:
            continue
        ip = data[off + 2:]
        ihl = (ip[0] & 0xF) * 4
        if ip[9] != 17 or struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] != a.dport:
            continue
        key = str(vid)
        seen[key] = seen.get(key, 0) + 1
    out({"by_vlan": seen})


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)

    def cmd(name, fn, *args):
        sp = sub.add_parser(name)
        for spec in args:
            flag, typ = spec[0], spec[1]
            kw = {"type": typ, "required": len(spec) < 3}
            if len(spec) >= 3:
                kw["default"] = spec[2]
            sp.add_argument("--" + flag, **kw)
        sp.set_defaults(fn=fn)

    cmd("udp-echo", udp_echo, ("bind", str), ("port", int))
    cmd(
        "udp-client",
        udp_client,
        ("dst", str),
        ("port", int),
        ("count", int, 20),
        ("timeout", float, 2.0),
        ("size", int, 0),
    )
    cmd("udp-probe", udp_probe, ("dst", str), ("port", int), ("timeout", float, 3.0))
    cmd("udp-count", udp_count, ("bind", str), ("port", int), ("duration", float, 3.0))
    cmd("udp-send", udp_send, ("dst", str), ("port", int), ("count", int, 5), ("size", int, 0))
    cmd("tcp-listen", tcp_listen, ("bind", str), ("port", int))
    cmd("tcp-connect", tcp_connect, ("dst", str), ("port", int), ("timeout", float, 3.0))
    cmd("wait-tcp", wait_tcp, ("dst", str), ("port", int), ("timeout", float, 10.0))
    cmd("sink", sink, ("bind", str), ("port", int), ("timeout", float, 30.0))
    cmd(
        "source",
        source,
        ("dst", str),
        ("port", int),
        ("bytes", int),
        ("rate", float, 0.0),
        ("chunk", int, 32768),
        ("seed", int, 1),
        ("timeout", float, 30.0),
    )
    cmd(
        "raw-tcp-send",
        raw_tcp_send,
        ("src", str),
        ("dst", str),
        ("sport", int),
        ("dport", int),
        ("flags", str),
        ("seq", int, 0x41414141),
        ("ack", int, 0),
        ("count", int, 3),
    )
    cmd("raw-tcp-watch", raw_tcp_watch, ("port", int), ("duration", float, 3.0))
    cmd(
        "vlan-udp-send",
        vlan_udp_send,
        ("dev", str),
        ("src_mac", str),
        ("dst_mac", str),
        ("vlan", int),
        ("src", str),
        ("dst", str),
        ("sport", int),
        ("dport", int),
        ("count", int, 3),
    )
    cmd("vlan-udp-watch", vlan_udp_watch, ("dev", str), ("dport", int), ("duration", float, 3.0))
    cmd("ftp-server", ftp_server, ("bind", str), ("port", int, 21), ("root", str))
    cmd(
        "ftp-client",
        ftp_client,
        ("host", str),
        ("port", int, 21),
        ("mode", str),
        ("upload", str),
        ("remote_up", str),
        ("remote_down", str),
        ("out", str),
        ("timeout", float, 10.0),
    )
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
