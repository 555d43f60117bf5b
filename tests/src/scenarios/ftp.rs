//! FTP and TFTP helper scenarios (spec §8, §13 items 36–43).
//! The ruleset attaches the `ftp` helper to TCP port 21 and `tftp` to UDP port 69.

use super::{Ctor, Flow};
use crate::scenario::{Builder, Scenario};
use crate::trace::{flags::*, Pkt, C, C6, R, S, S6, X};

pub(super) const ALL: &[(&str, Ctor)] = &[
    ("ftp_active_port", ftp_active_port),
    ("ftp_active_port_expectation", ftp_active_port_expectation),
    ("ftp_active_eprt", ftp_active_eprt),
    ("ftp_passive_227", ftp_passive_227),
    ("ftp_passive_229", ftp_passive_229),
    ("ftp_port_other_address", ftp_port_other_address),
    ("ftp_port_other_address_loose", ftp_port_other_address_loose),
    ("ftp_port_split_segments", ftp_port_split_segments),
    ("ftp_pasv_split_segments", ftp_pasv_split_segments),
    ("ftp_second_port_replaces_first", ftp_second_port_replaces_first),
    ("ftp_command_not_at_segment_start", ftp_command_not_at_segment_start),
    ("ftp_no_helper", ftp_no_helper),
    ("ftp_malformed_commands", ftp_malformed_commands),
    ("ftp_ipv6_eprt_epsv", ftp_ipv6_eprt_epsv),
    ("ftp_227_other_address", ftp_227_other_address),
    ("ftp_227_digit_before_address", ftp_227_digit_before_address),
    ("tftp_read", tftp_read),
    ("tftp_write", tftp_write),
];

/// Handshake on the control connection, banner, USER, 331.
pub(super) fn login(b: &mut Builder, f: &mut Flow) {
    f.handshake(b);
    f.s_data(b, b"220 ready\r\n", "S>C 220 banner");
    f.c_ack(b);
    f.c_data(b, b"USER a\r\n", "C>S USER");
    f.s_data(b, b"331 ok\r\n", "S>C 331");
}

fn control() -> Flow {
    Flow::new(C, 41000, S, 21)
}

/// The data connection handshake from `from` to `to`: SYN, SYN/ACK, ACK.
fn data_conn(b: &mut Builder, d: &Flow) {
    b.send(d.c(SYN, 100, 0), "data SYN");
    b.send(d.s(SYN | ACK, 900, 101), "data SYN/ACK");
    b.send(d.c(ACK, 101, 901), "data ACK");
}

fn ftp_active_port() -> Scenario {
    let mut b = Builder::new(
        "ftp_active_port",
        "§13(36) active FTP: PORT creates S:*->C:40000; the data SYN is RELATED, child ASSURED",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PORT 10,0,1,2,156,64\r\n", "C>S PORT 40000");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    data_conn(&mut b, &Flow::new(S, 20, C, 40000));
    b.build()
}

fn ftp_active_port_expectation() -> Scenario {
    let mut b = Builder::new("ftp_active_port_expectation", "§13(36) the expectation listing after PORT");
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PORT 10,0,1,2,156,64\r\n", "C>S PORT 40000");
    b.build()
}

fn ftp_active_eprt() -> Scenario {
    let mut b = Builder::new("ftp_active_eprt", "§13(40) EPRT |1|10.0.1.2|40001|: expectation S:*->C:40001");
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"EPRT |1|10.0.1.2|40001|\r\n", "C>S EPRT 40001");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    let d = Flow::new(S, 20, C, 40001);
    b.send(d.c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_passive_227() -> Scenario {
    let mut b = Builder::new("ftp_passive_227", "§13(38) passive FTP: 227 creates C:*->S:50000; data SYN RELATED");
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PASV\r\n", "C>S PASV");
    f.s_data(&mut b, b"227 Entering Passive Mode (10,0,2,2,195,80).\r\n", "S>C 227 50000");
    f.c_ack(&mut b);
    data_conn(&mut b, &Flow::new(C, 41001, S, 50000));
    b.build()
}

fn ftp_passive_229() -> Scenario {
    let mut b = Builder::new("ftp_passive_229", "§13(40) 229 (|||50001|): expectation C:*->S:50001");
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"EPSV\r\n", "C>S EPSV");
    f.s_data(&mut b, b"229 Entering Extended Passive Mode (|||50001|)\r\n", "S>C 229 50001");
    f.c_ack(&mut b);
    let d = Flow::new(C, 41002, S, 50001);
    b.send(d.c(SYN, 100, 0), "data SYN");
    b.build()
}

fn port_other(loose: bool) -> Scenario {
    let (name, about) = if loose {
        ("ftp_port_other_address_loose", "§13(37) loose=1: PORT naming X creates S:*->X:40000")
    } else {
        ("ftp_port_other_address", "§13(37) PORT naming another address: passes, no expectation")
    };
    let mut b = Builder::new(name, about);
    if loose {
        b = b.ftp_loose();
    }
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PORT 10,0,9,9,156,64\r\n", "C>S PORT X:40000");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    let d = Flow::new(S, 20, X, 40000);
    b.send(d.c(SYN, 100, 0), "S:20>X:40000 SYN");
    b.build()
}

fn ftp_port_other_address() -> Scenario {
    port_other(false)
}

fn ftp_port_other_address_loose() -> Scenario {
    port_other(true)
}

fn ftp_port_split_segments() -> Scenario {
    let mut b = Builder::new(
        "ftp_port_split_segments",
        "§13(39) PORT split in two segments: first dropped by the helper, retransmission parsed",
    );
    let mut f = control();
    login(&mut b, &mut f);
    let s0 = f.cseq;
    b.send(f.c(PSH | ACK, s0, f.sseq).payload(b"PORT 10,0,1,2,"), "C>S 'PORT 10,0,1,2,' (partial)");
    b.send(f.c(PSH | ACK, s0 + 14, f.sseq).payload(b"156,64\r\n"), "C>S '156,64\\r\\n'");
    b.send(f.c(PSH | ACK, s0, f.sseq).payload(b"PORT 10,0,1,2,156,64\r\n"), "C>S whole PORT (retransmission)");
    f.cseq = s0 + 22;
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    let d = Flow::new(S, 20, C, 40000);
    b.send(d.c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_pasv_split_segments() -> Scenario {
    let mut b = Builder::new(
        "ftp_pasv_split_segments",
        "§13(39) 227 split: part A dropped, part B not parsed, A+B retransmitted parsed",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PASV\r\n", "C>S PASV");
    let s0 = f.sseq;
    let a: &[u8] = b"227 Entering Passive Mode (10,0,2,2,";
    let bb: &[u8] = b"195,80).\r\n";
    b.send(f.s(PSH | ACK, s0, f.cseq).payload(a), "S>C 227 part A");
    b.send(f.s(PSH | ACK, s0 + a.len() as u32, f.cseq).payload(bb), "S>C 227 part B");
    let whole = [a, bb].concat();
    b.send(f.s(PSH | ACK, s0, f.cseq).payload(&whole), "S>C 227 A+B retransmitted");
    b.send(f.s(PSH | ACK, s0, f.cseq).payload(a), "S>C part A again");
    f.sseq = s0 + whole.len() as u32;
    f.c_ack(&mut b);
    let d = Flow::new(C, 41003, S, 50000);
    b.send(d.c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_second_port_replaces_first() -> Scenario {
    let mut b = Builder::new(
        "ftp_second_port_replaces_first",
        "§13(40) two PORTs: only the second expectation remains; SYN to the first port is NEW",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PORT 10,0,1,2,156,64\r\n", "C>S PORT 40000");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    f.c_data(&mut b, b"PORT 10,0,1,2,156,66\r\n", "C>S PORT 40002");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.send(Flow::new(S, 20, C, 40000).c(SYN, 100, 0), "S:20>C:40000 SYN");
    b.send(Flow::new(S, 20, C, 40002).c(SYN, 100, 0), "S:20>C:40002 SYN");
    b.build()
}

fn ftp_command_not_at_segment_start() -> Scenario {
    let mut b = Builder::new(
        "ftp_command_not_at_segment_start",
        "§13(41) PORT as the second line of a segment: not seen, data SYN NEW",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"TYPE I\r\nPORT 10,0,1,2,156,64\r\n", "C>S TYPE I + PORT in one segment");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.send(Flow::new(S, 20, C, 40000).c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_no_helper() -> Scenario {
    let mut b =
        Builder::new("ftp_no_helper", "§13(41)/§8.1 no helper attached to port 21: no expectation").no_helpers();
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PORT 10,0,1,2,156,64\r\n", "C>S PORT 40000");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.send(Flow::new(S, 20, C, 40000).c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_malformed_commands() -> Scenario {
    let mut b = Builder::new(
        "ftp_malformed_commands",
        "§13(39,40) EPRT |2| on IPv4, EPRT port 0, PORT abc, 'POR' (all dropped), then a good PORT",
    );
    let mut f = control();
    login(&mut b, &mut f);
    let s0 = f.cseq;
    for (data, note) in [
        (&b"EPRT |2|10.0.1.2|40001|\r\n"[..], "C>S EPRT |2| on IPv4"),
        (b"EPRT |1|10.0.1.2|0|\r\n", "C>S EPRT port 0"),
        (b"PORT abc\r\n", "C>S PORT abc"),
        (b"POR", "C>S 'POR'"),
        (b"PORT 10,0,1,2,156,64\n", "C>S PORT with bare LF"),
        (b"PORT 10,0,1,2,156,64\r\n", "C>S good PORT"),
    ] {
        b.send(f.c(PSH | ACK, s0, f.sseq).payload(data), note);
    }
    f.cseq = s0 + 22;
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.send(Flow::new(S, 20, C, 40000).c(SYN, 100, 0), "data SYN");
    b.build()
}

fn ftp_ipv6_eprt_epsv() -> Scenario {
    let mut b = Builder::new("ftp_ipv6_eprt_epsv", "FTP over IPv6: EPRT |2| and 229 expectations, data SYNs RELATED");
    let mut f = Flow::new(C6, 41000, S6, 21);
    login(&mut b, &mut f);
    f.c_data(&mut b, b"EPRT |2|fd00:1::2|40003|\r\n", "C>S EPRT |2| 40003");
    f.s_data(&mut b, b"200 ok\r\n", "S>C 200");
    b.send(Flow::new(S6, 20, C6, 40003).c(SYN, 100, 0), "S:20>C:40003 SYN");
    f.c_data(&mut b, b"EPSV\r\n", "C>S EPSV");
    f.s_data(&mut b, b"229 Entering Extended Passive Mode (|||50002|)\r\n", "S>C 229 50002");
    f.c_ack(&mut b);
    b.send(Flow::new(C6, 41005, S6, 50002).c(SYN, 100, 0), "C:41005>S:50002 SYN");
    b.build()
}

fn ftp_227_other_address() -> Scenario {
    let mut b = Builder::new(
        "ftp_227_other_address",
        "§8.2 227 naming another address than the server's: passes, no expectation",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PASV\r\n", "C>S PASV");
    f.s_data(&mut b, b"227 Entering Passive Mode (10,0,3,1,195,80).\r\n", "S>C 227 naming R");
    f.c_ack(&mut b);
    b.send(Flow::new(C, 41006, R, 50000).c(SYN, 100, 0), "C>R:50000 SYN");
    b.build()
}

fn ftp_227_digit_before_address() -> Scenario {
    let mut b = Builder::new(
        "ftp_227_digit_before_address",
        "§8.2 '227 Mode 3 (...)': parsed from the wrong digit, fails, the reply is dropped",
    );
    let mut f = control();
    login(&mut b, &mut f);
    f.c_data(&mut b, b"PASV\r\n", "C>S PASV");
    f.s_data(&mut b, b"227 Mode 3 (10,0,2,2,195,80)\r\n", "S>C 227 Mode 3 (...)");
    f.c_ack(&mut b);
    b.send(Flow::new(C, 41007, S, 50000).c(SYN, 100, 0), "C>S:50000 SYN");
    b.build()
}

fn tftp(name: &'static str, about: &'static str, opcode: u8) -> Scenario {
    let mut b = Builder::new(name, about);
    let mut req = vec![0u8, opcode];
    req.extend_from_slice(b"file.bin\0octet\0");
    b.send(Pkt::udp(C, 1069, S, 69, &req), if opcode == 1 { "C>S RRQ" } else { "C>S WRQ" });
    if opcode == 1 {
        b.send(Pkt::udp(S, 3333, C, 1069, &[0, 3, 0, 1, b'd', b'a', b't', b'a']), "S:3333>C DATA 1");
        b.send(Pkt::udp(C, 1069, S, 3333, &[0, 4, 0, 1]), "C>S:3333 ACK 1");
    } else {
        b.send(Pkt::udp(S, 3334, C, 1069, &[0, 4, 0, 0]), "S:3334>C ACK 0");
        b.send(Pkt::udp(C, 1069, S, 3334, &[0, 3, 0, 1, b'x']), "C>S:3334 DATA 1");
    }
    b.build()
}

fn tftp_read() -> Scenario {
    tftp("tftp_read", "§13(43) TFTP RRQ: expectation S:*->C:1069; DATA RELATED; ACK ESTABLISHED", 1)
}

fn tftp_write() -> Scenario {
    tftp("tftp_write", "§8.3 TFTP WRQ: the server's first datagram from a new port is RELATED", 2)
}
