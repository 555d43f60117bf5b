//! The `ctwall` binary as an operator uses it: replay output contract,
//! error handling for bad captures and configurations, `check`.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn ctwall(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctwall")).args(args).output().expect("run ctwall")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ctwall-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn csum(b: &[u8], init: u32) -> u16 {
    let mut s = init;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4/UDP frame with correct checksums.
fn udp_frame(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let ulen = 8 + payload.len();
    let mut u = [sp.to_be_bytes(), dp.to_be_bytes(), (ulen as u16).to_be_bytes(), [0, 0]].concat();
    u.extend_from_slice(payload);
    let mut ph = [src, dst].concat();
    ph.extend_from_slice(&[0, 17, (ulen >> 8) as u8, ulen as u8]);
    let c = csum(&[ph, u.clone()].concat(), 0);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let total = 20 + ulen;
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend_from_slice(&ip);
    f.extend_from_slice(&u);
    f
}

fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), PcapHeader::default()).unwrap();
    for (t_ms, f) in frames {
        w.write_packet(&PcapPacket::new(Duration::from_millis(*t_ms), f.len() as u32, f)).unwrap();
    }
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

#[test]
fn replay_jsonl_contract() {
    let (c, s) = ([10, 0, 1, 2], [10, 0, 2, 2]);
    let arp = [vec![0xff; 6], vec![2, 0, 0, 0, 0, 1], vec![0x08, 0x06], vec![0; 28]].concat();
    let mut bad = udp_frame(c, s, 5353, 53, b"q");
    bad[40] ^= 0xff; // UDP checksum
    let p = tmp("udp.pcap");
    write_pcap(
        &p,
        &[
            (1_000, udp_frame(c, s, 5353, 53, b"q")),
            (1_010, udp_frame(s, c, 53, 5353, b"a")),
            (1_020, arp),
            (1_030, bad),
        ],
    );
    let out = ctwall(&["replay", "--format", "jsonl", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = lines(&out);
    assert_eq!(v.len(), 4 + 3, "4 frames, table, expect, stats");
    assert_eq!(
        (&v[0]["n"], &v[0]["ctstate"], &v[0]["dir"], &v[0]["verdict"]),
        (&1.into(), &"NEW".into(), &"original".into(), &"accept".into())
    );
    assert_eq!((&v[1]["ctstate"], &v[1]["dir"]), (&"ESTABLISHED".into(), &"reply".into()));
    assert_eq!((&v[2]["ctstate"], &v[2]["dir"]), (&"UNTRACKED".into(), &Value::Null));
    assert_eq!((&v[3]["ctstate"], &v[3]["reason"]), (&"INVALID".into(), &"udp_bad_checksum".into()));
    let table = v[4]["table"].as_array().unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(
        table[0]["line"],
        "ipv4     2 udp      17 29 src=10.0.1.2 dst=10.0.2.2 sport=5353 dport=53 src=10.0.2.2 dst=10.0.1.2 \
         sport=53 dport=5353 mark=0 zone=0 use=2"
    );
    assert_eq!(v[6]["stats"]["invalid_reasons"]["udp_bad_checksum"], 1);
}

#[test]
fn replay_text_lists_like_conntrack() {
    let p = tmp("text.pcap");
    write_pcap(&p, &[(0, udp_frame([10, 0, 1, 2], [10, 0, 2, 2], 1, 2, b""))]);
    let out = ctwall(&["replay", p.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("udp      17 30 src=10.0.1.2 dst=10.0.2.2 sport=1 dport=2 [UNREPLIED]"), "{text}");
    assert!(text.contains("1 flow entries have been shown."), "{text}");
}

#[test]
fn missing_and_corrupt_captures_fail_cleanly() {
    let out = ctwall(&["replay", "/nonexistent/trace.pcap"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ctwall: error: /nonexistent/trace.pcap"), "{err}");

    let p = tmp("garbage.pcap");
    std::fs::write(&p, b"definitely not a capture file").unwrap();
    let out = ctwall(&["replay", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a pcap or pcapng file"));

    // A record cut in the middle.
    let p = tmp("cut.pcap");
    write_pcap(&p, &[(0, udp_frame([10, 0, 1, 2], [10, 0, 2, 2], 1, 2, b"abcdef"))]);
    let mut b = std::fs::read(&p).unwrap();
    b.truncate(b.len() - 5);
    std::fs::write(&p, b).unwrap();
    let out = ctwall(&["replay", "--format", "jsonl", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_reports_file_line_col() {
    let good = tmp("good.ron");
    std::fs::write(&good, "(conntrack: (tcp_loose: false), helpers: [(helper: \"ftp\", ports: [21])])").unwrap();
    let out = ctwall(&["check", "--skip-interfaces", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The interfaces must exist (unless skipped): the error names the line of the missing one.
    let ifs = tmp("ifs.ron");
    std::fs::write(&ifs, "(\n  interfaces: (inside: \"lo\",\n    outside: \"ctw-nope0\"),\n)").unwrap();
    let out = ctwall(&["check", ifs.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", ifs.display())) && err.contains("ctw-nope0"), "{err}");
    assert!(ctwall(&["check", "--skip-interfaces", ifs.to_str().unwrap()]).status.success());

    let bad = tmp("bad.ron");
    std::fs::write(&bad, "(\n  conntrack: (\n    udp_timeout: 0,\n  ),\n)").unwrap();
    let out = ctwall(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", bad.display())), "{err}");
    assert!(err.contains("expected a timeout of at least 1 second"), "{err}");

    // replay refuses a bad config the same way.
    let p = tmp("c.pcap");
    write_pcap(&p, &[]);
    let out = ctwall(&["replay", "--config", bad.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn replay_applies_the_configured_rules() {
    let cfg = tmp("rules.ron");
    std::fs::write(
        &cfg,
        r#"(filter: (inside_to_outside: (policy: "drop", rules: [
            (name: "dns", match: (proto: "udp", dport: [53]), action: "accept"),
        ])))"#,
    )
    .unwrap();
    let p = tmp("rules.pcap");
    write_pcap(
        &p,
        &[
            (0, udp_frame([10, 0, 1, 2], [10, 0, 2, 2], 1000, 53, b"q")),
            (1, udp_frame([10, 0, 1, 2], [10, 0, 2, 2], 1000, 54, b"q")),
        ],
    );
    let out = ctwall(&["replay", "--config", cfg.to_str().unwrap(), "--format", "jsonl", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("n").is_some())
        .map(|v| v["verdict"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(verdicts, ["accept", "drop"], "{text}");
}
