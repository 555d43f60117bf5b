//! End-to-end tests of `ctwall run` between real hosts in network namespaces (see
//! `tests/src/bridge.rs`). Each traffic check runs twice: through ctwall (`<check>::ctwall`) and
//! through the kernel reference, a Linux bridge with br_netfilter and the same rules in
//! nftables (`<check>::kernel_reference`), which proves the harness and the expectations.
//! The checks of `ctwall run` itself (reload, shutdown, VLAN, several workers) run through
//! ctwall only.
//!
//! Needs root, `ip`, `ethtool`, `ping`, `python3`, `curl`, `nft`, `iperf3`, pyftpdlib
//! (`python3-pyftpdlib`) and the ctwall binary (`cargo build --bins` with the same target dir).
//! Without them each test prints `SKIPPED (needs ...)` and passes, unless
//! `CTWALL_REQUIRE_ROOT=1`.

use std::time::Duration;
use tests::bridge::{configs, Firewall, Need, Queues, Setup, A_IP, A_IP6, A_MAC, B_IP, B_IP6, B_MAC};

/// Generates `$name::ctwall` and `$name::kernel_reference` running `$body` with `$cfg`.
macro_rules! both {
    ($name:ident, $body:ident, $cfg:expr, $needs:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn ctwall() {
                if let Some(mut s) = Setup::new(concat!(stringify!($name), "::ctwall"), Firewall::Ctwall, &$cfg, $needs)
                {
                    $body(&mut s);
                }
            }

            #[test]
            fn kernel_reference() {
                if let Some(mut s) =
                    Setup::new(concat!(stringify!($name), "::kernel_reference"), Firewall::Kernel, &$cfg, $needs)
                {
                    $body(&mut s);
                }
            }
        }
    };
}

/// Generates `$name::ctwall` only (checks of the `ctwall run` process itself).
macro_rules! ctwall_only {
    ($name:ident, $body:ident, $cfg:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn ctwall() {
                if let Some(mut s) = Setup::new(concat!(stringify!($name), "::ctwall"), Firewall::Ctwall, &$cfg, &[]) {
                    $body(&mut s);
                }
            }
        }
    };
}

fn ok<T>(test: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{test}: {e}"))
}

/// SIGTERM to ctwall: it must exit 0 within 5 s. Returns its log.
fn stop_cleanly(st: &mut Setup, n: &str) -> String {
    let ct = st.ctwall();
    ok(n, ct.proc.signal("TERM"));
    let status = ct.proc.wait_exit(Duration::from_secs(5));
    let log = ct.log();
    let status = status.unwrap_or_else(|| panic!("{n}: ctwall did not exit within 5 s of SIGTERM:\n{log}"));
    assert!(status.success(), "{n}: ctwall exited with {status} after SIGTERM:\n{log}");
    log
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn s(v: &serde_json::Value, key: &str) -> String {
    match &v[key] {
        serde_json::Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------------------------------
// 0. Harness self-test: a plain Linux bridge passes everything both ways.

#[test]
fn harness_plain_bridge_ping_both_ways() {
    let Some(st) = Setup::new("harness_plain_bridge_ping_both_ways", Firewall::PlainBridge, &configs::example(), &[])
    else {
        return;
    };
    let t = &st.topo;
    let n = "harness";
    ok(n, t.ping_ok(&t.a, B_IP));
    ok(n, t.ping_ok(&t.b, A_IP));
    ok(n, t.ping_ok(&t.a, B_IP6));
    ok(n, t.ping_ok(&t.b, A_IP6));
}

// ------------------------------------------------------------------------------------------
// 1 + 6. Ping A→B works (ARP crosses, A learns B's MAC); ping B→A is dropped.

fn ping_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    ok(&n, t.ping_ok(&t.a, B_IP));
    let neigh = ok(&n, t.a.ip(&["neigh", "show", B_IP, "dev", "a0"]));
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
    assert!(neigh.contains(B_MAC), "{n}: A has no neighbour entry with B's MAC {B_MAC} (ARP did not cross): {neigh}");
    ok(&n, t.ping_blocked(&t.b, A_IP));
    // And the inside still works afterwards.
    ok(&n, t.ping_ok(&t.a, B_IP));
}
both!(ping_a_to_b_passes_b_to_a_dropped, ping_body, configs::example(), &[]);

/// IPv6 with real neighbour discovery (no static neighbours): A finds B and B answers A's
/// solicitation across the bridge, because the example admits the UNTRACKED NDP messages from
/// both sides. B's own pings to A still get no answer.
fn ping6_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    ok(&n, t.ping_ok(&t.a, B_IP6));
    let neigh = ok(&n, t.a.ip(&["-6", "neigh", "show", B_IP6, "dev", "a0"]));
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
    assert!(neigh.contains(B_MAC), "{n}: A did not learn B's MAC {B_MAC} by neighbour discovery: {neigh}");
    ok(&n, t.ping_blocked(&t.b, A_IP6));
    // B resolved A too (it answered A's solicitation and solicits A in turn): only the
    // firewall stopped its echo requests.
    let neigh = ok(&n, t.b.ip(&["-6", "neigh", "show", A_IP6, "dev", "b0"]));
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_lowercase();
    assert!(neigh.contains(A_MAC), "{n}: B did not learn A's MAC {A_MAC} by neighbour discovery: {neigh}");
    ok(&n, t.ping_ok(&t.a, B_IP6));
}
both!(ping6_a_to_b_passes_b_to_a_dropped, ping6_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 2. HTTP download of a few MB, intact.

fn http_body(st: &mut Setup) {
    http_from(st, B_IP, &format!("http://{B_IP}:8080/blob.bin"));
}
both!(http_download_intact, http_body, configs::example(), &[Need::Curl]);

/// The same over IPv6, with neighbour discovery across the bridge.
fn http6_body(st: &mut Setup) {
    http_from(st, B_IP6, &format!("http://[{B_IP6}]:8080/blob.bin"));
}
both!(http6_download_intact, http6_body, configs::example(), &[Need::Curl]);

/// A download of a few MB from a web server on B's `addr`, intact.
fn http_from(st: &mut Setup, addr: &str, url: &str) {
    let (t, n) = (&st.topo, st.test.clone());
    let www = t.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let blob = pseudo_random(4 << 20, 0xC7);
    std::fs::write(www.join("blob.bin"), &blob).unwrap();
    let mut server = ok(
        &n,
        tests::bridge::Bg::spawn(
            "http.server",
            t.b.command("python3").args(["-m", "http.server", "--bind", addr, "8080", "--directory"]).arg(&www),
        ),
    );
    ok(
        &n,
        t.peer_run(&t.b, &["wait-tcp", "--dst", addr, "--port", "8080", "--timeout", "10"], Duration::from_secs(15)),
    );
    let got = t.dir.path().join("got.bin");
    let r = tests::bridge::run_timeout(
        t.a.command("curl").args(["-sS", "--fail", "--max-time", "30", "-o"]).arg(&got).arg(url),
        Duration::from_secs(40),
    );
    if let Err(e) = r {
        panic!("{n}: curl failed: {e}\nserver output:\n{}", server.text());
    }
    let got = std::fs::read(&got).unwrap();
    assert_eq!(got.len(), blob.len(), "{n}: downloaded length differs");
    assert!(got == blob, "{n}: downloaded file differs from the served one");
    server.kill();
}

// ------------------------------------------------------------------------------------------
// 3. UDP request/response A→B.

fn udp_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    let r = ok(&n, t.udp_echoes(B_IP, 7000, 20, 2, Duration::from_secs(60)));
    assert_eq!(r["ok"], 20, "{n}: UDP echoes: {r}");
}
both!(udp_request_response, udp_body, configs::example(), &[]);

fn udp6_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    let r = ok(&n, t.udp_echoes(B_IP6, 7000, 20, 2, Duration::from_secs(60)));
    assert_eq!(r["ok"], 20, "{n}: UDP echoes over IPv6: {r}");
}
both!(udp6_request_response, udp6_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 3b. Datagrams larger than the link MTU (issue 12): fragments are reassembled ahead of
// tracking, the datagram is decided once, and its original fragments cross; a fragmented
// unsolicited datagram from outside does not.

fn fragments_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    for (from, to, dst) in [(&t.a, "B", B_IP), (&t.a, "B", B_IP6)] {
        let all = ok(&n, t.ping_sized(from, dst, 3, 4000, 6));
        assert!(all, "{n}: ping -s 4000 A -> {to} ({dst}): not every echo came back");
    }
    let blocked = ok(&n, t.ping_sized(&t.b, A_IP, 2, 4000, 3));
    assert!(!blocked, "{n}: ping -s 4000 B -> A was answered");
    for (addr, count) in [(B_IP, 10), (B_IP6, 5)] {
        let r = ok(&n, t.udp_echoes_of(addr, 7002, count, 8000, 2, Duration::from_secs(60)));
        assert_eq!(r["ok"], count, "{n}: 8000-byte UDP echoes to {addr} (each equal to what was sent): {r}");
    }
    let mut counter = ok(&n, t.peer_spawn(&t.a, &["udp-count", "--bind", A_IP, "--port", "7003", "--duration", "3"]));
    ok(
        &n,
        t.peer_run(
            &t.b,
            &["udp-send", "--dst", A_IP, "--port", "7003", "--count", "5", "--size", "4000"],
            Duration::from_secs(10),
        ),
    );
    let c = ok(&n, counter.finish_json(Duration::from_secs(10)));
    assert_eq!(c["received"], 0, "{n}: unsolicited fragmented UDP from B reached A: {c}");
}
both!(fragmented_datagrams_cross_whole, fragments_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 4. Unsolicited TCP SYN and UDP from B to A are dropped.

fn unsolicited_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    // B learns A's MAC from A's ARP request, so what follows fails for the firewall's sake.
    ok(&n, t.ping_ok(&t.a, B_IP));
    let mut listener = ok(&n, t.peer_spawn(&t.a, &["tcp-listen", "--bind", A_IP, "--port", "8081"]));
    let r = ok(
        &n,
        t.peer_run(&t.b, &["tcp-connect", "--dst", A_IP, "--port", "8081", "--timeout", "3"], Duration::from_secs(10)),
    );
    assert_eq!(s(&r, "result"), "timeout", "{n}: B's connect to A's listening port: {r}");
    assert!(!listener.text().contains("accepted"), "{n}: A accepted a connection from B: {}", listener.text());
    listener.kill();

    let mut counter = ok(&n, t.peer_spawn(&t.a, &["udp-count", "--bind", A_IP, "--port", "7001", "--duration", "3"]));
    ok(&n, t.peer_run(&t.b, &["udp-send", "--dst", A_IP, "--port", "7001", "--count", "5"], Duration::from_secs(10)));
    let c = ok(&n, counter.finish_json(Duration::from_secs(10)));
    assert_eq!(c["received"], 0, "{n}: unsolicited UDP from B reached A: {c}");
}
both!(unsolicited_from_outside_dropped, unsolicited_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 5. A NEW TCP packet without SYN from A is dropped (a SYN after it passes: the control).

fn not_syn_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    ok(&n, t.ping_ok(&t.a, B_IP));
    let mut watch = ok(&n, t.peer_spawn(&t.b, &["raw-tcp-watch", "--port", "9000", "--duration", "4"]));
    ok(
        &n,
        t.peer_run(
            &t.a,
            &["raw-tcp-send", "--src", A_IP, "--dst", B_IP, "--sport", "40000", "--dport", "9000", "--flags", "A"],
            Duration::from_secs(10),
        ),
    );
    // Nothing listens on B:9000: the SYN is answered by a RST, which is fine.
    let c = ok(
        &n,
        t.peer_run(&t.a, &["tcp-connect", "--dst", B_IP, "--port", "9000", "--timeout", "2"], Duration::from_secs(10)),
    );
    let seen = ok(&n, watch.finish_json(Duration::from_secs(10)));
    let segs = seen["seen"].as_array().cloned().unwrap_or_default();
    let bare_acks: Vec<_> = segs.iter().filter(|g| g["sport"] == 40000).collect();
    let syns: Vec<_> = segs.iter().filter(|g| s(g, "flags").contains('S')).collect();
    assert!(bare_acks.is_empty(), "{n}: the NEW bare ACK from A reached B: {seen}");
    assert!(!syns.is_empty(), "{n}: control failed: A's SYN did not reach B ({seen}); connect said {c}");
}
both!(tcp_new_without_syn_dropped, not_syn_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 7. FTP, active (data connection B→A, RELATED) and passive (A→B), both directions.

fn ftp_transfer(st: &Setup, mode: &str, timeout_s: u32) -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let t = &st.topo;
    let dir = t.dir.path();
    let up = pseudo_random(300_000, 0xF7 + mode.len() as u64);
    std::fs::write(dir.join(format!("up-{mode}.bin")), &up).unwrap();
    let out = dir.join(format!("down-{mode}.bin"));
    let py = st.ftp_python.as_deref().expect("needs pyftpdlib");
    let r = ok(
        &st.test,
        t.peer_run_with(
            &t.a,
            py,
            &[
                "ftp-client",
                "--host",
                B_IP,
                "--mode",
                mode,
                "--upload",
                &dir.join(format!("up-{mode}.bin")).to_string_lossy(),
                "--remote_up",
                &format!("up-{mode}.bin"),
                "--remote_down",
                "down.bin",
                "--out",
                &out.to_string_lossy(),
                "--timeout",
                &timeout_s.to_string(),
            ],
            Duration::from_secs(u64::from(timeout_s) * 4 + 10),
        ),
    );
    let down = std::fs::read(&out).unwrap_or_default();
    (r, up, down)
}

fn ftp_server(st: &Setup) -> (tests::bridge::Bg, std::path::PathBuf, Vec<u8>) {
    let t = &st.topo;
    let root = t.dir.path().join("ftproot");
    std::fs::create_dir_all(&root).unwrap();
    let down = pseudo_random(500_000, 0xD0);
    std::fs::write(root.join("down.bin"), &down).unwrap();
    let py = st.ftp_python.as_deref().expect("needs pyftpdlib");
    let server = ok(
        &st.test,
        t.peer_spawn_with(&t.b, py, &["ftp-server", "--bind", B_IP, "--port", "21", "--root", &root.to_string_lossy()]),
    );
    (server, root, down)
}

fn ftp_body(st: &mut Setup) {
    let n = st.test.clone();
    let (server, root, served) = ftp_server(st);
    for mode in ["passive", "active"] {
        let (r, up, down) = ftp_transfer(st, mode, 10);
        assert!(r["ok"] == true, "{n}: {mode} FTP failed: {r}\nserver:\n{}", server.text());
        let stored = std::fs::read(root.join(format!("up-{mode}.bin"))).unwrap_or_default();
        assert!(stored == up, "{n}: {mode} upload differs ({} of {} bytes)", stored.len(), up.len());
        assert!(down == served, "{n}: {mode} download differs ({} of {} bytes)", down.len(), served.len());
    }
}
both!(ftp_active_and_passive, ftp_body, configs::example(), &[Need::PyFtpdLib]);

/// Negative control: without the FTP helper, active mode's data connection is NEW from the
/// outside and dropped; passive mode still works.
fn ftp_no_helper_body(st: &mut Setup) {
    let n = st.test.clone();
    let (server, _root, served) = ftp_server(st);
    let (r, _, down) = ftp_transfer(st, "passive", 10);
    assert!(r["ok"] == true && down == served, "{n}: passive FTP should work without the helper: {r}");
    let (r, _, _) = ftp_transfer(st, "active", 5);
    assert!(r["ok"] == false, "{n}: active FTP worked without the FTP helper: {r}\nserver:\n{}", server.text());
    let steps = r["steps"].as_array().cloned().unwrap_or_default();
    assert!(steps.iter().any(|x| x == "login"), "{n}: the control connection itself failed: {r}");
}
both!(ftp_active_fails_without_helper, ftp_no_helper_body, configs::example_without_ftp_helper(), &[Need::PyFtpdLib]);

/// With rules that admit nothing NEW but the control connection, both data connections
/// (active and passive) cross only because the helper makes them RELATED; without the helper
/// neither does.
#[test]
fn ftp_data_connections_only_as_related() {
    let n = "ftp_data_connections_only_as_related";
    for helper in [true, false] {
        let name = format!("{n}::helper_{helper}");
        let Some(st) = Setup::new(&name, Firewall::Ctwall, &configs::strict_ftp(helper), &[Need::PyFtpdLib]) else {
            return;
        };
        let (server, _root, served) = ftp_server(&st);
        for mode in ["passive", "active"] {
            let (r, _, down) = ftp_transfer(&st, mode, 5);
            if helper {
                assert!(
                    r["ok"] == true && down == served,
                    "{name}: {mode} FTP failed: {r}\nserver:\n{}",
                    server.text()
                );
            } else {
                assert!(r["ok"] == false, "{name}: {mode} FTP worked without the helper: {r}");
                let steps = r["steps"].as_array().cloned().unwrap_or_default();
                assert!(steps.iter().any(|x| x == "login"), "{name}: the control connection itself failed: {r}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// 8. ICMP port unreachable from B reaches A (RELATED): a connected UDP socket gets
// ECONNREFUSED.

fn icmp_body(st: &mut Setup) {
    let (t, n) = (&st.topo, st.test.clone());
    let r = ok(
        &n,
        t.peer_run(&t.a, &["udp-probe", "--dst", B_IP, "--port", "9999", "--timeout", "3"], Duration::from_secs(10)),
    );
    assert_eq!(s(&r, "result"), "refused", "{n}: the ICMP port unreachable did not reach A: {r}");
}
both!(icmp_port_unreachable_is_related, icmp_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 9. A reload during a long TCP transfer keeps the transfer; the new rules apply.

const LONG_BYTES: u64 = 20 << 20;

fn reload_body(st: &mut Setup) {
    let n = st.test.clone();
    {
        let t = &st.topo;
        ok(&n, t.ping_ok(&t.a, B_IP));
    }
    let mut sink =
        ok(&n, st.topo.peer_spawn(&st.topo.b, &["sink", "--bind", B_IP, "--port", "9100", "--timeout", "60"]));
    let bytes = LONG_BYTES.to_string();
    let rate = (LONG_BYTES / 5).to_string(); // about 5 s
    let mut source = ok(
        &n,
        tests::bridge::Bg::spawn(
            "source",
            &mut st.topo.peer_cmd(
                &st.topo.a,
                "python3",
                &[
                    "source",
                    "--dst",
                    B_IP,
                    "--port",
                    "9100",
                    "--bytes",
                    &bytes,
                    "--rate",
                    &rate,
                    "--seed",
                    "9",
                    "--timeout",
                    "60",
                ],
            ),
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(source.exited().is_none(), "{n}: the transfer ended before the reload: {}", source.text());
    ok(&n, st.reload(&configs::example_reloaded_no_icmp()));
    let src = ok(&n, source.finish_json(Duration::from_secs(60)));
    let dst = ok(&n, sink.finish_json(Duration::from_secs(20)));
    assert!(src["error"].is_null(), "{n}: sender error: {src}");
    assert!(dst["error"].is_null(), "{n}: receiver error: {dst}");
    assert_eq!(src["bytes"], LONG_BYTES, "{n}: sender: {src}");
    assert_eq!(dst["bytes"], LONG_BYTES, "{n}: receiver got {dst}, sender {src}");
    assert_eq!(src["sha256"], dst["sha256"], "{n}: content differs: sender {src}, receiver {dst}");
    if let Some(c) = st.ctwall.as_mut() {
        assert!(c.proc.exited().is_none(), "{n}: ctwall exited:\n{}", c.log());
    }
    // The reloaded rules apply (ICMP from inside is dropped now).
    let t = &st.topo;
    ok(&n, t.ping_blocked(&t.a, B_IP).map_err(|e| format!("the reloaded rules do not apply: {e}")));
}
both!(reload_keeps_long_transfer, reload_body, configs::example(), &[]);

// ------------------------------------------------------------------------------------------
// 10. A bad reload is reported with file:line and the running rules stay.

fn bad_reload_body(st: &mut Setup) {
    let n = st.test.clone();
    {
        let t = &st.topo;
        ok(&n, t.ping_ok(&t.a, B_IP));
        ok(&n, t.ping_blocked(&t.b, A_IP));
    }
    let ct = st.ctwall();
    let pos = ok(&n, ct.reload(&configs::broken()));
    let file = ct.config.to_string_lossy().into_owned();
    let want = format!("{file}:{}:", configs::BROKEN_LINE);
    let want_short = format!("ctwall.ron:{}:", configs::BROKEN_LINE);
    let line = ct.proc.wait_line(pos, Duration::from_secs(10), |l| l.contains(&want) || l.contains(&want_short));
    ok(&n, line.map_err(|e| format!("no log line naming {want} after the bad reload: {e}")));
    std::thread::sleep(Duration::from_millis(300));
    assert!(ct.proc.exited().is_none(), "{n}: ctwall exited after a bad reload:\n{}", ct.log());
    let t = &st.topo;
    ok(&n, t.ping_ok(&t.a, B_IP));
    ok(&n, t.ping_blocked(&t.b, A_IP));
    // A new TCP connection from inside still works too (the old rules, not an empty set).
    let _echo = ok(&n, t.peer_spawn(&t.b, &["tcp-listen", "--bind", B_IP, "--port", "8082"]));
    let r = ok(
        &n,
        t.peer_run(&t.a, &["tcp-connect", "--dst", B_IP, "--port", "8082", "--timeout", "3"], Duration::from_secs(10)),
    );
    assert_eq!(s(&r, "result"), "connected", "{n}: {r}");
}
ctwall_only!(bad_reload_keeps_rules, bad_reload_body, configs::example());

// ------------------------------------------------------------------------------------------
// 11. SIGTERM: exit 0 within a few seconds, no XDP program left on the ports.

fn shutdown_body(st: &mut Setup) {
    let n = st.test.clone();
    ok(&n, st.topo.ping_ok(&st.topo.a, B_IP));
    for ifc in [configs::INSIDE, configs::OUTSIDE] {
        let att = ok(&n, st.topo.xdp_attached(ifc));
        assert!(att.is_some(), "{n}: no XDP program on {ifc} while ctwall runs (ip -d link show)");
    }
    stop_cleanly(st, &n);
    for ifc in [configs::INSIDE, configs::OUTSIDE] {
        if let Some(text) = ok(&n, st.topo.xdp_attached(ifc)) {
            panic!("{n}: an XDP program is still attached to {ifc} after shutdown:\n{text}");
        }
    }
}
ctwall_only!(clean_shutdown_detaches_xdp, shutdown_body, configs::example());

// ------------------------------------------------------------------------------------------
// 12. VLAN-tagged traffic is tracked on its inner packet and crosses with its tag.

fn vlan_body(st: &mut Setup) {
    // (This kernel has no 802.1Q devices, so the hosts send and watch tagged frames with
    // AF_PACKET.) Sends `count` tagged UDP frames from `from` and counts them, by VLAN id, at `to`.
    fn cross(st: &Setup, from_a: bool, sport: u16, dport: u16) -> serde_json::Value {
        let n = &st.test;
        let t = &st.topo;
        let (src, dst) = if from_a { (&t.a, &t.b) } else { (&t.b, &t.a) };
        let (sdev, ddev, smac, dmac, sip, dip) =
            if from_a { ("a0", "b0", A_MAC, B_MAC, A_IP, B_IP) } else { ("b0", "a0", B_MAC, A_MAC, B_IP, A_IP) };
        let dport_s = dport.to_string();
        let mut watch =
            ok(n, t.peer_spawn(dst, &["vlan-udp-watch", "--dev", ddev, "--dport", &dport_s, "--duration", "2"]));
        ok(n, watch.wait_line(0, Duration::from_secs(5), |l| l.contains("ready")).map(|_| ()));
        let sport_s = sport.to_string();
        let args = [
            "vlan-udp-send",
            "--dev",
            sdev,
            "--src_mac",
            smac,
            "--dst_mac",
            dmac,
            "--vlan",
            "10",
            "--src",
            sip,
            "--dst",
            dip,
            "--sport",
            &sport_s,
            "--dport",
            &dport_s,
            "--count",
            "3",
        ];
        ok(n, t.peer_run(src, &args, Duration::from_secs(10)));
        ok(n, watch.finish_json(Duration::from_secs(10)))
    }
    let n = st.test.clone();
    // Inside opens a UDP flow on VLAN 10: the frames reach B with their tag.
    let r = cross(st, true, 7021, 7020);
    assert_eq!(r["by_vlan"]["10"], 3, "{n}: tagged frames A->B: {r}");
    // B's tagged answers are ESTABLISHED (tracked on the inner packet) and reach A tagged.
    let r = cross(st, false, 7020, 7021);
    assert_eq!(r["by_vlan"]["10"], 3, "{n}: tagged answers B->A: {r}");
    // An unsolicited tagged flow from B is NEW from outside: dropped.
    let r = cross(st, false, 7030, 7031);
    assert_eq!(r["by_vlan"], serde_json::json!({}), "{n}: unsolicited tagged frames B->A crossed: {r}");
}
ctwall_only!(vlan_tagged_traffic_tracked_and_tagged, vlan_body, configs::example());

// ------------------------------------------------------------------------------------------
// 13. Two workers, one per queue. Host A sends on queue 1 and host B on queue 0 (XPS), so
// every connection has its two directions on different workers: A's frames reach worker 1 on
// `fwin` queue 1, B's reach worker 0 on `fwout` queue 0. The answers from outside pass only as
// ESTABLISHED, which worker 0 can tell only from the entry worker 1 created in the shared
// table. The management address lives in worker 0; A's requests to it arrive at worker 1,
// which hands them over.

const MGMT_IP: &str = "10.0.0.250";

fn two_workers_config() -> configs::FwConfig {
    let mut cfg = configs::example();
    configs::set(&mut cfg, "workers", "2");
    configs::set(&mut cfg, "mgmt", &format!(r#"(port: "inside", addresses: ["{MGMT_IP}/24"], allow: ["{A_IP}/32"])"#));
    cfg
}

/// The numeric fields of ctwall's last `worker counters` log line for `worker`.
fn worker_counters(log: &str, worker: u64) -> Option<std::collections::HashMap<String, u64>> {
    log.lines().rev().filter(|l| l.contains("worker counters")).find_map(|l| {
        let fields: std::collections::HashMap<String, u64> = l
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim_matches('"').parse().ok()?)))
            .collect();
        (fields.get("worker") == Some(&worker)).then_some(fields)
    })
}

/// curl from A to the management address: the body.
fn mgmt_get(st: &Setup, path: &str) -> String {
    let url = format!("http://{MGMT_IP}{path}");
    let out = tests::bridge::run_timeout(
        st.topo.a.command("curl").args(["-sS", "--fail", "--max-time", "10", &url]),
        Duration::from_secs(20),
    );
    String::from_utf8_lossy(&ok(&st.test, out).stdout).into_owned()
}

#[test]
fn two_workers_share_the_table_across_queues() {
    let n = "two_workers_share_the_table_across_queues";
    let queues = Queues { count: 2, a: 1, b: 0 };
    let needs = [Need::Curl, Need::Iperf3];
    let Some(mut st) = Setup::with_queues(n, Firewall::Ctwall, &two_workers_config(), &needs, queues) else {
        return;
    };
    {
        let log = st.ctwall().log();
        for (w, cpu) in [(0, 0), (1, 1)] {
            let want = format!("worker={w} queue={w} cpu={cpu}");
            assert!(log.contains(&want), "{n}: no log line with {want:?} (pinned worker {w}):\n{log}");
        }
    }
    let t = &st.topo;
    // ICMP: B's echo replies are ESTABLISHED; B's own echo requests are NEW from outside.
    ok(n, t.ping_ok(&t.a, B_IP));
    ok(n, t.ping_blocked(&t.b, A_IP));
    // UDP request/response.
    let r = ok(n, t.udp_echoes(B_IP, 7000, 20, 2, Duration::from_secs(60)));
    assert_eq!(r["ok"], 20, "{n}: UDP echoes: {r}");
    // Four concurrent TCP connections (and iperf3's control connection) for four seconds.
    let mut server = ok(
        n,
        tests::bridge::Bg::spawn("iperf3 -s", t.b.command("iperf3").args(["-s", "-1", "--forceflush", "-B", B_IP])),
    );
    ok(n, server.wait_line(0, Duration::from_secs(10), |l| l.contains("listening")).map(|_| ()));
    let mut client = ok(
        n,
        tests::bridge::Bg::spawn("iperf3 -c", t.a.command("iperf3").args(["-c", B_IP, "-P", "4", "-t", "4", "-J"])),
    );
    // While the transfer runs, the management plane (worker 0, through worker 1's hand-over)
    // lists the five connections ESTABLISHED and ASSURED: each was created by the worker that
    // saw its first packet and confirmed by the other's replies. (Once iperf3 ends, the data
    // connections close into states of seconds, so the check belongs here.)
    std::thread::sleep(Duration::from_millis(1500));
    let table = mgmt_get(&st, "/conntrack");
    let iperf: Vec<&str> = table.lines().filter(|l| l.contains("dport=5201")).collect();
    assert!(
        iperf.len() == 5 && iperf.iter().all(|l| l.contains(" ESTABLISHED ") && l.contains("[ASSURED]")),
        "{n}: the iperf3 connections during the transfer:\n{table}"
    );
    let out = ok(n, client.finish(Duration::from_secs(30)));
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{n}: iperf3 JSON: {e}: {out}"));
    let received = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    let streams = report["end"]["streams"].as_array().map_or(0, Vec::len);
    assert!(report["error"].is_null() && streams == 4 && received > 1 << 20, "{n}: iperf3 -P 4: {report}");
    let _ = server.wait_exit(Duration::from_secs(5));
    // Unsolicited TCP from B is still dropped.
    let mut listener = ok(n, t.peer_spawn(&t.a, &["tcp-listen", "--bind", A_IP, "--port", "8081"]));
    let r = ok(
        n,
        t.peer_run(&t.b, &["tcp-connect", "--dst", A_IP, "--port", "8081", "--timeout", "3"], Duration::from_secs(10)),
    );
    assert_eq!(s(&r, "result"), "timeout", "{n}: B's connect to A's listening port: {r}");
    listener.kill();

    // A reload reaches both workers: worker 1 (A's frames) now drops ICMP from inside, worker 0
    // (B's frames) drops UDP from B's port 7000, the echoes.
    let mut reloaded = two_workers_config();
    configs::insert_rule(
        &mut reloaded,
        "in-invalid",
        r#"(name: "in-no-icmp", match: (proto: "icmp"), action: "drop")"#,
    );
    configs::insert_rule(
        &mut reloaded,
        "out-invalid",
        r#"(name: "out-no-7000", match: (proto: "udp", sport: [7000]), action: "drop")"#,
    );
    let pos = ok(n, st.reload(&reloaded));
    let reload_line = st.ctwall().proc.wait_line(pos, Duration::from_secs(10), |l| l.contains("reloaded the rules"));
    ok(n, reload_line.map(|_| ()));
    std::thread::sleep(Duration::from_millis(200));
    let t = &st.topo;
    ok(n, t.ping_blocked(&t.a, B_IP).map_err(|e| format!("worker 1 runs the old rules: {e}")));
    let r = ok(n, t.udp_echoes(B_IP, 7000, 3, 1, Duration::from_secs(30)));
    assert_eq!(r["ok"], 0, "{n}: worker 0 runs the old rules, the UDP echoes crossed: {r}");

    // The management plane's statistics show which worker received what.
    let stats: serde_json::Value =
        serde_json::from_str(&mgmt_get(&st, "/stats")).unwrap_or_else(|e| panic!("{n}: /stats: {e}"));
    let w = &stats["workers"];
    assert_eq!(w.as_array().map(Vec::len), Some(2), "{n}: /stats workers: {stats}");
    let rx = |i: usize, port: &str| w[i]["rx"][port].as_u64().unwrap_or(0);
    assert!(rx(1, "inside") > 1000 && rx(0, "outside") > 100, "{n}: frames per worker and port: {w}");
    assert!(w[1]["mgmt_handoff"].as_u64().unwrap_or(0) > 0, "{n}: worker 1 handed nothing to worker 0: {w}");

    // SIGTERM: both workers stop, exit 0, the programs are detached; the last counters say the
    // same as /stats.
    let log = stop_cleanly(&mut st, n);
    let (w0, w1) = (worker_counters(&log, 0), worker_counters(&log, 1));
    let (w0, w1) = w0.zip(w1).unwrap_or_else(|| panic!("{n}: no worker counters in the log:\n{log}"));
    eprintln!("{n}: worker 0 {w0:?}\n{n}: worker 1 {w1:?}");
    assert!(w1["rx_inside"] > 1000 && w0["rx_outside"] > 100, "{n}: worker 0 {w0:?}, worker 1 {w1:?}");
    assert_eq!((w0["queue"], w1["queue"]), (0, 1), "{n}");
    for ifc in [configs::INSIDE, configs::OUTSIDE] {
        if let Some(text) = ok(n, st.topo.xdp_attached(ifc)) {
            panic!("{n}: an XDP program is still attached to {ifc} after shutdown:\n{text}");
        }
    }
}

/// More workers than the ports have queues, or a CPU the process may not use: `ctwall run`
/// refuses to start (and `ctwall check` to pass) with the file's line and column, the interface
/// and its queue count.
#[test]
fn workers_beyond_the_queues_refused_at_start() {
    let n = "workers_beyond_the_queues_refused_at_start";
    let Some(st) = Setup::new(n, Firewall::PlainBridge, &configs::example(), &[]) else {
        return;
    };
    let bin = ok(n, tests::ctwall::find_ctwall());
    let bin = bin.to_string_lossy();
    for (name, key, value, want) in [
        ("workers.ron", "workers", "2", "expected at most as many workers as the interfaces have queues: 2 workers bind queues 0 to 1, but fwin has 1 RX and 1 TX queues"),
        ("cpus.ron", "cpus", "[1023]", "expected CPUs this process may run on"),
    ] {
        let path = st.topo.dir.path().join(name);
        let mut cfg = configs::example();
        let line = configs::set(&mut cfg, key, value);
        let want = format!("{name}:{line}:5: {want}");
        std::fs::write(&path, &cfg.ron).unwrap();
        let run = ok(
            n,
            tests::bridge::output_timeout(
                st.topo.fw.command(&bin).arg("run").arg("--config").arg(&path).env("NO_COLOR", "1"),
                Duration::from_secs(20),
            ),
        );
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success() && err.contains(&want), "{n}: ctwall run {name}: {}: {err}", run.status);
        if name == "workers.ron" {
            let check = ok(
                n,
                tests::bridge::output_timeout(
                    st.topo.fw.command(&bin).arg("check").arg(&path),
                    Duration::from_secs(20),
                ),
            );
            let err = String::from_utf8_lossy(&check.stderr);
            assert!(!check.status.success() && err.contains(&want), "{n}: ctwall check: {err}");
        }
        for ifc in [configs::INSIDE, configs::OUTSIDE] {
            assert!(ok(n, st.topo.xdp_attached(ifc)).is_none(), "{n}: {name}: an XDP program was attached to {ifc}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// 14. The outside port deleted under `ctwall run` (a NIC going away): the worker logs the I/O
//     error with its id, queue, interface and errno, and counts it; the process stays up; once
//     the port is back the worker opens its sockets again and traffic crosses. At the end the
//     counters show the error and no XDP program is left, on the new port either.

fn interface_lost_body(st: &mut Setup) {
    let n = st.test.clone();
    ok(&n, st.topo.ping_ok(&st.topo.a, B_IP));
    let pos = st.ctwall().proc.line_count();
    ok(&n, st.topo.delete_outside());
    // A's pings reach the inside port and are forwarded to the outside socket the kernel
    // unbound: its TX kick fails (ENXIO).
    let crossed = ok(&n, st.topo.ping(&st.topo.a, B_IP, 3, 3));
    assert!(!crossed, "{n}: pings crossed a deleted port");
    let line = ok(&n, st.ctwall().proc.wait_line(pos, Duration::from_secs(10), |l| l.contains("packet I/O error")));
    let enxio = "errno=6"; // ENXIO
    for want in ["worker=0", "queue=0", configs::OUTSIDE, enxio] {
        assert!(line.contains(want), "{n}: the I/O error line lacks {want:?}: {line}");
    }
    assert!(st.ctwall().proc.exited().is_none(), "{n}: ctwall exited after the I/O error:\n{}", st.ctwall().log());
    ok(&n, st.topo.recreate_outside());
    ok(&n, st.ctwall().proc.wait_line(pos, Duration::from_secs(15), |l| l.contains("sockets open again")));
    ok(&n, st.topo.ping_ok(&st.topo.a, B_IP));
    let log = stop_cleanly(st, &n);
    let counters = worker_counters(&log, 0).unwrap_or_else(|| panic!("{n}: no worker counters logged:\n{log}"));
    assert!(counters.get("io_errors").is_some_and(|&e| e >= 1), "{n}: io_errors not counted: {counters:?}");
    for ifc in [configs::INSIDE, configs::OUTSIDE] {
        if let Some(text) = ok(&n, st.topo.xdp_attached(ifc)) {
            panic!("{n}: an XDP program is still attached to {ifc} after shutdown:\n{text}");
        }
    }
}
ctwall_only!(interface_lost_and_back, interface_lost_body, configs::example());

// ------------------------------------------------------------------------------------------
// No root needed: the configurations themselves.

/// The broken configuration fails on the line the bad-reload test looks for.
#[test]
fn broken_config_fails_on_its_line() {
    let path = std::path::Path::new("ctwall.ron");
    let err = config::Config::parse(&configs::broken(), path).expect_err("the broken config parses");
    assert_eq!(err.line, configs::BROKEN_LINE, "{err}");
    assert!(err.to_string().starts_with(&format!("ctwall.ron:{}:", configs::BROKEN_LINE)), "{err}");
}

/// Every configuration the suites run parses, and the edits land where they should.
#[test]
fn test_configs_parse() {
    let parse = |name: &str, cfg: &configs::FwConfig| {
        config::Config::parse(&cfg.ron, std::path::Path::new(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", cfg.ron))
    };
    let c = parse("example", &configs::example());
    assert_eq!(c.interfaces.inside.0, configs::INSIDE);
    assert!(c.filter.outside_to_inside.rules.iter().any(|r| r.name.as_ref().is_some_and(|n| n.0 == "out-ndp")));
    assert!(parse("no-ftp", &configs::example_without_ftp_helper()).helpers.0.len() == 1);
    let c = parse("no-icmp", &configs::example_reloaded_no_icmp());
    let names: Vec<_> =
        c.filter.inside_to_outside.rules.iter().filter_map(|r| r.name.as_ref()).map(|n| n.0.as_str()).collect();
    assert_eq!(names, ["in-invalid", "in-nosyn", "in-no-icmp", "in-open", "in-untracked"]);
    let mut cfg = configs::example();
    let line = configs::set(&mut cfg, "workers", "2");
    assert_eq!(cfg.ron.lines().nth(line - 1), Some("    workers: 2,"));
    configs::set(&mut cfg, "conntrack", "(udp_timeout: 5)");
    configs::set(&mut cfg, "mgmt", r#"(port: "inside", addresses: ["10.0.0.250/24"])"#);
    let c = parse("set", &cfg);
    assert_eq!((c.workers.0, c.conntrack.udp_timeout.0), (2, 5));
    assert!(c.mgmt.is_some());
    for strict in [true, false] {
        parse("strict", &configs::strict_ftp(strict));
    }
}
