#!/usr/bin/env python3
"""Replay a classic pcap into the kernel reference topology.

Run inside the injector namespace (``ip netns exec <inj> python3 inject.py ...``):

    inject.py PCAP SIDES C_IFACE S_IFACE RTR_NETNS_PATH

* PCAP: classic pcap (microsecond or nanosecond), linktype Ethernet.
* SIDES: one character per frame, ``c`` = send on C_IFACE, ``s`` = send on S_IFACE.
* RTR_NETNS_PATH: e.g. /run/netns/<rtr>; after the last frame the script joins that
  namespace and reads /proc/net/nf_conntrack and /proc/net/nf_conntrack_expect, so the
  tables are taken right after the last frame.

Frames are sent at the pcap timestamps relative to the first frame. After each send the
script reads /dev/kmsg up to its end and records the sequence number of the last record
there ("kmsg_seq", -1 while none was read): the router processes a frame inside send(), so
a log record numbered at most kmsg_seq[i] was written before frame i+1 was sent (this
tells which fragment completed a reassembled datagram). The same sockets also
capture what the router forwards back out of its veths (the first 96 bytes of every
incoming frame, in hex), so the caller can tell which frames the kernel forwarded and which
it dropped. Prints one JSON object on stdout: {"sent": [seconds after start, ...],
"max_late": s, "kmsg_seq": [seq, ...], "forwarded": [[side, hex], ...], "conntrack": [lines],
"expect": [lines]}.
"""
import ctypes
import json
import os
import socket
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        endian = "<"
    else:
        endian = ">"
        magic = struct.unpack(">I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        frac = 1e-6
    elif magic == 0xA1B23C4D:
        frac = 1e-9
    else:
        raise SystemExit("not a classic pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise SystemExit("linktype %d is not Ethernet" % linktype)
    off = 24
    frames = []
    while off + 16 <= len(data):
        sec, sub, incl, _orig = struct.unpack(endian + "IIII", data[off : off + 16])
        off += 16
        frames.append((sec + sub * frac, data[off : off + incl]))
        off += incl
    return frames


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


def read_lines(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n") for l in f if l.strip()]
    except FileNotFoundError:
        return []


def kmsg_last_seq(fd, last):
    """Reads /dev/kmsg (non-blocking) to its end; returns the last record's sequence number."""
    while True:
        try:
            rec = os.read(fd, 16384)
        except BlockingIOError:
            return last
        except BrokenPipeError:
            continue  # records were overwritten: go on with the next one
        if not rec:
            return last
        try:
            last = int(rec.split(b";", 1)[0].split(b",")[1])
        except (IndexError, ValueError):
            pass


def main():
    pcap, sides, c_if, s_if, rtr = sys.argv[1:6]
    frames = read_pcap(pcap)
    if len(sides) != len(frames):
        raise SystemExit("sides has %d entries for %d frames" % (len(sides), len(frames)))
    # One CPU: both veths then feed the same backlog, so frames keep their order.
    try:
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[os.getpid() % len(cpus)]})
    except OSError:
        pass
    socks = {}
    for key, ifname in (("c", c_if), ("s", s_if)):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((ifname, ETH_P_ALL))
        socks[key] = s
    kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    os.lseek(kmsg, 0, os.SEEK_END)
    seq = -1
    kmsg_seq = []
    sent = []
    max_late = 0.0
    if frames:
        t0 = frames[0][0]
        start = time.monotonic()
        for (ts, frame), side in zip(frames, sides):
            target = start + (ts - t0)
            while True:
                now = time.monotonic()
                if now >= target:
                    break
                time.sleep(min(target - now, 0.05) if target - now > 0.0015 else 0)
            now = time.monotonic()
            max_late = max(max_late, now - target)
            socks[side].send(frame)
            sent.append(now - start)
            seq = kmsg_last_seq(kmsg, seq)
            kmsg_seq.append(seq)
    # Let the softirq finish (it normally runs inside send()).
    time.sleep(0.005)
    forwarded = []
    for key, sock in socks.items():
        sock.setblocking(False)
        while True:
            try:
                data, addr = sock.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            forwarded.append([key, data[:96].hex()])
    setns(rtr)
    out = {
        "sent": sent,
        "max_late": max_late,
        "kmsg_seq": kmsg_seq,
        "forwarded": forwarded,
        "conntrack": read_lines("/proc/self/net/nf_conntrack"),
        "expect": read_lines("/proc/self/net/nf_conntrack_expect"),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
