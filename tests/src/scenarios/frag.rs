//! IP fragment reassembly scenarios (spec §11, §13 items 44–46; issue 12). Conntrack never
//! sees a fragment: the fragments that reassembly holds, drops as duplicates or discards are
//! declared with [`Builder::send_held`] (no kernel log line, ctwall `NONE`), and the fragment
//! that completes a datagram carries the datagram's ctstate. Every `about` text records what
//! the live kernel did.

use super::{filler, Ctor, Flow};
use crate::scenario::{Builder, Scenario};
use crate::trace::{flags::*, Ext6, Pkt, C, C6, FRAG_ID_BASE, R, R6, S, S6};
use std::net::IpAddr;

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("frag_udp_orders", frag_udp_orders),
    ("frag_ipv6_udp_orders", frag_ipv6_udp_orders),
    ("frag_duplicate", frag_duplicate),
    ("frag_overlap", frag_overlap),
    ("frag_ipv6_overlap", frag_ipv6_overlap),
    ("frag_inconsistent_last", frag_inconsistent_last),
    ("frag_not_multiple_of_8", frag_not_multiple_of_8),
    ("frag_timeout", frag_timeout),
    ("frag_too_big", frag_too_big),
    ("frag_ipv6_tiny_first", frag_ipv6_tiny_first),
    ("frag_ipv6_atomic", frag_ipv6_atomic),
    ("frag_tcp_established", frag_tcp_established),
    ("frag_icmp_echo", frag_icmp_echo),
    ("frag_icmp_error_quoting_fragment", frag_icmp_error_quoting_fragment),
    ("frag_ftp_port", frag_ftp_port),
];

/// IPv4 ID (and IPv6 fragment ID) of the `k`-th fragmented datagram of a scenario.
fn id(k: u32) -> u32 {
    FRAG_ID_BASE + k
}

/// The largest fragment size (a multiple of 8) that fits the 1500-byte MTU: 1480 for IPv4,
/// 1448 for IPv6 (40-byte header and 8-byte Fragment header).
fn size(src: IpAddr) -> usize {
    if src.is_ipv4() {
        1480
    } else {
        1448
    }
}

/// Sends `pieces` in `order` (indices into `pieces`): all held except the last one sent,
/// which completes the datagram.
fn send_in_order(b: &mut Builder, pieces: &[Pkt], order: &[usize], what: &str) -> usize {
    let (last, held) = order.split_last().expect("at least one fragment");
    for &i in held {
        b.send_held(pieces[i].clone(), &format!("{what} frag {}/{} (held)", i + 1, pieces.len()));
    }
    b.send(pieces[*last].clone(), &format!("{what} frag {}/{} completes", last + 1, pieces.len()))
}

fn frag_udp_orders() -> Scenario {
    let mut b = Builder::new(
        "frag_udp_orders",
        "§13(44) IPv4 UDP of 3000 B in fragments, in order, reverse and shuffled. Kernel 6.18: one \
         NEW line per datagram, for the fragment that completes it, none for the others; the \
         unfragmented replies are ESTABLISHED",
    );
    let cases: [(u16, usize, &[usize], &str); 3] = [
        (41000, 1480, &[0, 1, 2], "in order"),
        (41001, 1480, &[2, 1, 0], "reverse"),
        (41002, 800, &[2, 0, 3, 1], "shuffled"),
    ];
    for (k, (port, size, order, what)) in cases.into_iter().enumerate() {
        let d = Pkt::udp(C, port, S, 9999, &filler(3000));
        send_in_order(&mut b, &d.fragments(id(k as u32), size), order, &format!("C>S UDP {what}"));
        b.send(Pkt::udp(S, 9999, C, port, b"reply"), "S>C reply");
    }
    b.build()
}

fn frag_ipv6_udp_orders() -> Scenario {
    let mut b = Builder::new(
        "frag_ipv6_udp_orders",
        "§13(46) IPv6 UDP of 3000 B in fragments, in order, reverse and shuffled. Kernel 6.18: one \
         NEW line per datagram (with the first fragment's flow label), for the fragment that \
         completes it, none for the others; the replies are ESTABLISHED",
    );
    let cases: [(u16, usize, &[usize], &str); 3] = [
        (41000, 1448, &[0, 1, 2], "in order"),
        (41001, 1448, &[2, 1, 0], "reverse"),
        (41002, 800, &[3, 1, 0, 2], "shuffled"),
    ];
    for (k, (port, size, order, what)) in cases.into_iter().enumerate() {
        let d = Pkt::udp(C6, port, S6, 9999, &filler(3000));
        send_in_order(&mut b, &d.fragments(id(k as u32), size), order, &format!("C>S UDP6 {what}"));
        b.send(Pkt::udp(S6, 9999, C6, port, b"reply"), "S>C reply");
    }
    b.build()
}

fn frag_duplicate() -> Scenario {
    let mut b = Builder::new(
        "frag_duplicate",
        "§13(45) exact duplicate fragments. Kernel 6.18, IPv4 and IPv6: a duplicate is dropped on \
         its own and the datagram still completes once (NEW); the last fragment sent again after \
         reassembly starts a new queue and is held",
    );
    let d = Pkt::udp(C, 41100, S, 9999, &filler(3000));
    let f = d.fragments(id(0), 1480);
    b.send_held(f[0].clone(), "C>S frag 1/3 (held)");
    b.send_held(f[0].clone(), "C>S frag 1/3 again (duplicate)");
    b.send_held(f[1].clone(), "C>S frag 2/3 (held)");
    b.send(f[2].clone(), "C>S frag 3/3 completes");
    b.send_held(f[2].clone(), "C>S frag 3/3 again (new queue)");
    let d6 = Pkt::udp(C6, 41100, S6, 9999, &filler(3000));
    let f6 = d6.fragments(id(1), 1448);
    b.send_held(f6[1].clone(), "C>S6 frag 2/3 (held)");
    b.send_held(f6[1].clone(), "C>S6 frag 2/3 again (duplicate)");
    b.send_held(f6[0].clone(), "C>S6 frag 1/3 (held)");
    b.send_held(f6[0].clone(), "C>S6 frag 1/3 again (duplicate)");
    b.send(f6[2].clone(), "C>S6 frag 3/3 completes");
    b.build()
}

/// Overlap cases for `src`→`dst` (IPv4 or IPv6): ports 41200.., fragment IDs from `k0`.
fn overlaps(b: &mut Builder, src: IpAddr, dst: IpAddr, k0: u32) {
    let sz = size(src);
    // Partial overlap by 8 bytes: the whole queue goes; the correct middle fragment then only
    // starts a new queue, and the datagram completes when fragment 1 comes again.
    let d = Pkt::udp(src, 41200, dst, 9999, &filler(3000));
    let f = d.fragments(id(k0), sz);
    b.send_held(f[0].clone(), "frag 1/3 (held)");
    b.send_held(d.piece(id(k0), sz - 8, sz, true), "frag 2/3 moved 8 B back: overlaps frag 1");
    b.send_held(f[2].clone(), "frag 3/3 (held)");
    b.send_held(f[1].clone(), "correct frag 2/3 (held)");
    b.send(f[0].clone(), "frag 1/3 again completes");
    // A fragment lying inside one already queued.
    let d = Pkt::udp(src, 41201, dst, 9999, &filler(3000));
    let f = d.fragments(id(k0 + 1), sz);
    b.send_held(f[0].clone(), "frag 1/3 (held)");
    b.send_held(d.piece(id(k0 + 1), 8, 800, true), "frag 8..808 inside frag 1");
    b.send_held(f[1].clone(), "frag 2/3 (held)");
    b.send(f[2].clone(), "frag 3/3 completes");
    // A fragment covering one already queued (and more).
    let d = Pkt::udp(src, 41202, dst, 9999, &filler(3000));
    let f = d.fragments(id(k0 + 2), sz);
    b.send_held(d.piece(id(k0 + 2), 8, 800, true), "frag 8..808 (held)");
    b.send_held(f[0].clone(), "frag 1/3 covers it");
    b.send_held(f[1].clone(), "frag 2/3 (new queue)");
    b.send_held(f[2].clone(), "frag 3/3 (held)");
    b.send(f[0].clone(), "frag 1/3 again completes");
}

fn frag_overlap() -> Scenario {
    let mut b = Builder::new(
        "frag_overlap",
        "§11 IPv4 overlaps. Kernel 6.18: a fragment overlapping another by 8 B discards the queue \
         (the correct middle fragment then does not complete it, fragment 1 sent again does); \
         unlike §11's 'any overlap', a fragment lying inside a queued one is dropped alone as a \
         duplicate and the datagram completes; one covering a queued fragment discards the queue",
    );
    overlaps(&mut b, C.into(), S.into(), 0);
    b.build()
}

fn frag_ipv6_overlap() -> Scenario {
    let mut b = Builder::new(
        "frag_ipv6_overlap",
        "§11 IPv6 overlaps. Kernel 6.18, as for IPv4: an 8 B overlap discards the queue, a \
         fragment inside a queued one is dropped alone as a duplicate, one covering a queued \
         fragment discards the queue",
    );
    overlaps(&mut b, C6.into(), S6.into(), 0);
    b.build()
}

fn frag_inconsistent_last() -> Scenario {
    let mut b = Builder::new(
        "frag_inconsistent_last",
        "§11 a second last fragment ending 8 B later. Kernel 6.18: IPv4 discards the whole queue \
         (fragment 2 then starts a new one); IPv6, unlike §11's wording, drops only that \
         fragment and keeps the queue, so fragment 2 completes the datagram",
    );
    let d = Pkt::udp(C, 41300, S, 9999, &filler(3000));
    let n = d.frag_len();
    let f = d.fragments(id(0), size(d.src));
    b.send_held(f[0].clone(), "frag 1/3 (held)");
    b.send_held(f[2].clone(), "frag 3/3 (held)");
    b.send_held(d.piece(id(0), n, 8, false), "second last frag, 8 B past the end (discards)");
    b.send_held(f[1].clone(), "frag 2/3 (new queue)");
    b.send_held(f[0].clone(), "frag 1/3 again (held)");
    b.send(f[2].clone(), "frag 3/3 again completes");
    let d = Pkt::udp(C6, 41300, S6, 9999, &filler(3000));
    let f = d.fragments(id(1), size(d.src));
    b.send_held(f[0].clone(), "frag6 1/3 (held)");
    b.send_held(f[2].clone(), "frag6 3/3 (held)");
    b.send_held(d.piece(id(1), n, 8, false), "second last frag6, 8 B past the end (dropped)");
    b.send(f[1].clone(), "frag6 2/3 completes");
    b.build()
}

fn frag_not_multiple_of_8() -> Scenario {
    let mut b = Builder::new(
        "frag_not_multiple_of_8",
        "§11 non-last fragments of 1477/1445 B. Kernel 6.18: IPv4 trims it to a multiple of 8 \
         and the datagram completes; IPv6 passes it on as it is (INVALID, forwarded) and \
         discards the queue: the correct middle fragment is held, fragment 1 again completes",
    );
    let d = Pkt::udp(C, 41400, S, 9999, &filler(3000));
    let n = d.frag_len();
    b.send_held(d.piece(id(0), 0, 1480, true), "frag 0..1480 (held)");
    b.send_held(d.piece(id(0), 1480, 1477, true), "frag 1480..2957 MF, 1477 B");
    b.send(d.piece(id(0), 2952, n - 2952, false), "frag 2952..end");
    let d6 = Pkt::udp(C6, 41400, S6, 9999, &filler(3000));
    let n6 = d6.frag_len();
    b.send_held(d6.piece(id(1), 0, 1448, true), "frag6 0..1448 (held)");
    b.send(d6.piece(id(1), 1448, 1445, true), "frag6 1448..2893 MF, 1445 B");
    b.send_held(d6.piece(id(1), 2888, n6 - 2888, false), "frag6 2888..end (held)");
    b.send_held(d6.piece(id(1), 1448, 1440, true), "correct frag6 1448..2888 (held)");
    b.send(d6.piece(id(1), 0, 1448, true), "frag6 0..1448 again completes");
    b.build()
}

fn frag_timeout() -> Scenario {
    let mut b = Builder::new(
        "frag_timeout",
        "§11 ipfrag_time=2, nf_conntrack_frag6_timeout=2. Kernel 6.18, IPv4 and IPv6: \
         fragments 1 and 3 expire silently; fragment 2 after 3 s starts a new queue that \
         fragments 1 and 3 sent again complete",
    )
    .defrag("ipfrag_time", 2)
    .defrag("frag6_timeout", 2);
    for (src, dst, k) in [(IpAddr::from(C), IpAddr::from(S), 0), (C6.into(), S6.into(), 1)] {
        let f = Pkt::udp(src, 41500, dst, 9999, &filler(3000)).fragments(id(k), size(src));
        b.send_held(f[0].clone(), "frag 1/3 (held)");
        b.send_held(f[2].clone(), "frag 3/3 (held)");
        b.wait(3.0);
        b.send_held(f[1].clone(), "frag 2/3 after 3 s (new queue)");
        b.send_held(f[0].clone(), "frag 1/3 again (held)");
        b.send(f[2].clone(), "frag 3/3 again completes");
    }
    b.build()
}

fn frag_too_big() -> Scenario {
    let mut b = Builder::new(
        "frag_too_big",
        "§11 over 65535 B. Kernel 6.18: 45 IPv4 fragments covering a 65536 B datagram complete \
         nothing (no line, no entry); an IPv6 fragment ending at 65544 is dropped",
    );
    // 20 + 8 + 65508 = 65536 bytes of IPv4 datagram.
    let d = Pkt::udp(C, 41600, S, 9999, &filler(65508));
    for p in d.fragments(id(0), 1480) {
        b.send_held(p, "C>S frag of 65536 B");
    }
    let d6 = Pkt::udp(C6, 41600, S6, 9999, &filler(1000));
    b.send_held(d6.piece(id(1), 0, 1008, true), "frag6 0..1008 (held)");
    b.send_held(d6.piece(id(1), 65528, 16, false), "frag6 65528..65544 (too big)");
    b.build()
}

fn frag_ipv6_tiny_first() -> Scenario {
    let mut b = Builder::new(
        "frag_ipv6_tiny_first",
        "§11, RFC 8200 §4.5: a first fragment holding only Destination Options, no UDP header. \
         Kernel 6.18: not reassembled, conntrack sees it as it is (INVALID) and it is forwarded; \
         the rest of the datagram is held",
    );
    let d = Pkt::udp(C6, 41700, S6, 9999, &filler(100)).ext(Ext6::DestOpts(vec![1, 4, 0, 0, 0, 0]));
    let n = d.frag_len();
    b.send(d.piece(id(0), 0, 8, true), "frag6 0..8: only Destination Options");
    b.send_held(d.piece(id(0), 8, n - 8, false), "frag6 8..end (held)");
    b.build()
}

fn frag_ipv6_atomic() -> Scenario {
    let mut b = Builder::new(
        "frag_ipv6_atomic",
        "RFC 6946 atomic fragment (offset 0, M=0). Kernel 6.18: tracked as an unfragmented \
         packet, NEW; the reply ESTABLISHED",
    );
    let d = Pkt::udp(C6, 41800, S6, 9999, b"atomic");
    let n = d.frag_len();
    b.send(d.piece(id(0), 0, n, false), "C>S atomic fragment");
    b.send(Pkt::udp(S6, 9999, C6, 41800, b"reply"), "S>C reply");
    b.build()
}

fn frag_tcp_established() -> Scenario {
    let mut b = Builder::new(
        "frag_tcp_established",
        "§11 a 2500 B data segment in 2 fragments (last first) on an established connection. \
         Kernel 6.18: ESTABLISHED on the completing fragment; the entry stays ESTABLISHED [ASSURED]",
    );
    let mut f = Flow::new(C, 42000, S, 80);
    f.handshake(&mut b);
    let seg = f.c(PSH | ACK, f.cseq, f.sseq).payload(&filler(2500));
    f.cseq += 2500;
    send_in_order(&mut b, &seg.fragments(id(0), 1480), &[1, 0], "C>S data");
    f.s_ack(&mut b);
    b.build()
}

fn frag_icmp_echo() -> Scenario {
    let mut b = Builder::new(
        "frag_icmp_echo",
        "ping -s 4000, IPv4 and IPv6: request and reply in 3 fragments each. Kernel 6.18: NEW, \
         then ESTABLISHED reply, each on the completing fragment",
    );
    let req = Pkt::icmp_query(C, S, 8, 500, 1, &filler(4000));
    send_in_order(&mut b, &req.fragments(id(0), 1480), &[0, 1, 2], "C>S echo");
    let rep = Pkt::icmp_query(S, C, 0, 500, 1, &filler(4000));
    send_in_order(&mut b, &rep.fragments(id(1), 1480), &[0, 1, 2], "S>C echo reply");
    let req6 = Pkt::icmp_query(C6, S6, 128, 501, 1, &filler(4000));
    send_in_order(&mut b, &req6.fragments(id(2), 1448), &[0, 1, 2], "C>S echo6");
    let rep6 = Pkt::icmp_query(S6, C6, 129, 501, 1, &filler(4000));
    send_in_order(&mut b, &rep6.fragments(id(3), 1448), &[0, 1, 2], "S>C echo6 reply");
    b.build()
}

fn frag_icmp_error_quoting_fragment() -> Scenario {
    let mut b = Builder::new(
        "frag_icmp_error_quoting_fragment",
        "§6.3 after a fragmented UDP datagram (NEW). Kernel 6.18: an ICMP 3/4 quoting its first \
         fragment (MF set, 8 B) is RELATED, and so is an ICMPv6 Packet Too Big quoting the first \
         IPv6 fragment with its Fragment header",
    );
    let d = Pkt::udp(C, 41900, S, 9999, &filler(3000));
    let f = d.fragments(id(0), 1480);
    send_in_order(&mut b, &f, &[0, 1, 2], "C>S UDP");
    b.send(Pkt::icmp_error(R, C, 3, 4, [0, 0, 5, 0xdc], &f[0], Some(28)), "R>C 3/4 quoting frag 1");
    let d6 = Pkt::udp(C6, 41900, S6, 9999, &filler(3000));
    let f6 = d6.fragments(id(1), 1448);
    send_in_order(&mut b, &f6, &[0, 1, 2], "C>S UDP6");
    b.send(Pkt::icmp_error(R6, C6, 2, 0, [0, 0, 5, 0xdc], &f6[0], Some(56)), "R>C PTB quoting frag6 1");
    b.build()
}

fn frag_ftp_port() -> Scenario {
    let mut b = Builder::new(
        "frag_ftp_port",
        "§8.2 a PORT segment in 2 IPv4 fragments. Kernel 6.18: ESTABLISHED on the completing \
         fragment, and the helper parses the reassembled segment: expectation S:*->C:40000",
    );
    let mut f = Flow::new(C, 41000, S, 21);
    super::ftp::login(&mut b, &mut f);
    let port = b"PORT 10,0,1,2,156,64\r\n";
    let seg = f.c(PSH | ACK, f.cseq, f.sseq).payload(port);
    f.cseq += port.len() as u32;
    send_in_order(&mut b, &seg.fragments(id(0), 24), &[0, 1], "C>S PORT 40000");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.build()
}
