//! End-to-end tests of the management plane: `ctwall run` with a management address on the
//! inside port, between host A (inside, in the allowed prefix) and host B (outside, not
//! allowed), in network namespaces (see `tests/src/bridge.rs` for the topology and the rules).
//! Needs root, `curl`, and the ctwall binary (`cargo build --bins`).

use std::time::Duration;
use tests::bridge::configs::{self, FwConfig};
use tests::bridge::{output_timeout, Bg, Firewall, Need, Setup, A_IP, B_IP};

const MGMT_IP: &str = "10.0.0.250";
const MGMT_IP6: &str = "fd00::fa";
const TOKEN: &str = "test-token-0123456789";

/// The example rules plus a management address that only host A may reach.
fn config(udp_timeout: u32) -> FwConfig {
    let mut cfg = configs::example();
    configs::set(
        &mut cfg,
        "conntrack",
        &format!("(tcp_timeout_established: 7200, tcp_loose: true, udp_timeout: {udp_timeout})"),
    );
    configs::set(
        &mut cfg,
        "mgmt",
        &format!(
            r#"(port: "inside", addresses: ["{MGMT_IP}/24", "{MGMT_IP6}/64"], allow: ["{A_IP}/32", "fd00::1/128"], token: "{TOKEN}")"#
        ),
    );
    cfg
}

fn ok<T>(test: &str, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{test}: {e}"))
}

fn setup(test: &str, cfg: &FwConfig) -> Option<Setup> {
    Setup::new(test, Firewall::Ctwall, cfg, &[Need::Curl])
}

/// curl in host `ns`: (HTTP status, body); status 0 when nothing answered.
fn curl(st: &Setup, from_b: bool, args: &[&str], url: &str) -> (u16, String) {
    let ns = if from_b { &st.topo.b } else { &st.topo.a };
    let out = output_timeout(
        ns.command("curl").args(["-sS", "--max-time", "3", "-w", "\n%{http_code}"]).args(args).arg(url),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{}: curl {url}: {e}", st.test));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `ctwall ctl --addr MGMT_IP ARGS` in host A.
fn ctl(st: &Setup, args: &[&str]) -> Result<String, String> {
    let bin = tests::ctwall::find_ctwall()?;
    let out = output_timeout(
        st.topo.a.command(&bin.to_string_lossy()).args(["ctl", "--addr", MGMT_IP]).args(args),
        Duration::from_secs(15),
    )?;
    if !out.status.success() {
        return Err(format!("ctwall ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Prometheus text exposition: comments, or `name{labels} value` with a known metric name.
fn check_prometheus(text: &str) -> Result<usize, String> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split(' ');
            let (name, kind) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            if !["counter", "gauge", "untyped", "histogram", "summary"].contains(&kind) {
                return Err(format!("bad TYPE line {line:?}"));
            }
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        if line.starts_with('#') {
            return Err(format!("unknown comment {line:?}"));
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| format!("no value in {line:?}"))?;
        value.parse::<f64>().map_err(|_| format!("bad value in {line:?}"))?;
        let name = series.split('{').next().unwrap_or("");
        let ok_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !ok_name {
            return Err(format!("bad metric name in {line:?}"));
        }
        if series.contains('{') && !series.ends_with('}') {
            return Err(format!("unterminated labels in {line:?}"));
        }
        let base = name.trim_end_matches("_total");
        if !typed.contains(name) && !typed.contains(base) {
            return Err(format!("sample without a TYPE line: {line:?}"));
        }
        samples += 1;
    }
    Ok(samples)
}

#[test]
fn prometheus_checker_rejects_bad_text() {
    assert_eq!(check_prometheus("# TYPE a counter\na 1\na{x=\"y\"} 2\n"), Ok(2));
    for bad in ["a 1\n", "# TYPE a counter\na x\n", "# TYPE a wrong\n", "# TYPE a counter\na{x 1\n", "# foo\n"] {
        assert!(check_prometheus(bad).is_err(), "{bad:?}");
    }
}

/// Ping, the table with curl and with `ctwall ctl` while a TCP connection crosses, metrics,
/// the access list, IPv6.
#[test]
fn table_metrics_and_access_control() {
    let n = "table_metrics_and_access_control";
    let Some(st) = setup(n, &config(30)) else { return };
    let t = &st.topo;
    ok(n, t.ping_ok(&t.a, MGMT_IP));
    ok(n, t.ping_ok(&t.a, MGMT_IP6));

    // A TCP connection crossing the bridge, open while we look.
    let mut sink = ok(n, t.peer_spawn(&t.b, &["sink", "--bind", B_IP, "--port", "9100", "--timeout", "30"]));
    // (No wait-tcp probe: the sink takes exactly one connection.)
    std::thread::sleep(Duration::from_millis(500));
    let mut source = ok(
        n,
        Bg::spawn(
            "source",
            &mut t.peer_cmd(
                &t.a,
                "python3",
                &["source", "--dst", B_IP, "--port", "9100", "--bytes", "2000000", "--rate", "200000", "--seed", "3"],
            ),
        ),
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert!(source.exited().is_none(), "{n}: the transfer ended early: {}", source.text());
    let want = "tcp      6 ";
    let line_of = |text: &str| {
        text.lines()
            .find(|l| l.contains(want) && l.contains("ESTABLISHED") && l.contains("dport=9100"))
            .map(str::to_string)
    };
    let (code, body) = curl(&st, false, &[], &format!("http://{MGMT_IP}/conntrack"));
    assert_eq!(code, 200, "{n}: GET /conntrack: {body}");
    let line = line_of(&body).unwrap_or_else(|| panic!("{n}: no ESTABLISHED line for port 9100 in:\n{body}"));
    // The kernel's /proc/net/nf_conntrack layout.
    assert!(line.starts_with("ipv4     2 tcp      6 "), "{n}: {line}");
    assert!(line.contains(&format!("src={A_IP} dst={B_IP} ")) && line.contains("[ASSURED]"), "{n}: {line}");
    let listed = ok(n, ctl(&st, &["conntrack", "-L"]));
    let cline =
        line_of(&listed).unwrap_or_else(|| panic!("{n}: ctwall ctl conntrack -L lacks the connection:\n{listed}"));
    assert!(cline.starts_with("tcp      6 "), "{n}: conntrack -L format: {cline}");
    let (code, json) = curl(&st, false, &["-g"], &format!("http://[{MGMT_IP6}]/conntrack?format=json"));
    assert_eq!(code, 200, "{n}: {json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{n}: JSON: {e}: {json}"));
    assert!(v.to_string().contains("9100"), "{n}: {v}");

    let (code, metrics) = curl(&st, false, &[], &format!("http://{MGMT_IP}/metrics"));
    assert_eq!(code, 200, "{n}: {metrics}");
    let samples = check_prometheus(&metrics).unwrap_or_else(|e| panic!("{n}: /metrics: {e}\n{metrics}"));
    assert!(samples > 5 && metrics.contains("ctwall_"), "{n}: {metrics}");
    let stats = ok(n, ctl(&st, &["stats"]));
    let s: serde_json::Value = serde_json::from_str(&stats).unwrap_or_else(|e| panic!("{n}: stats JSON: {e}: {stats}"));
    assert!(s.to_string().contains("out-est"), "{n}: per-rule counters missing from /stats: {s}");

    // Host B is not in `allow`: no answer at all, not even to ping.
    let (code, body) = curl(&st, true, &[], &format!("http://{MGMT_IP}/conntrack"));
    assert_eq!(code, 0, "{n}: B got an answer: {body}");
    ok(n, t.ping_blocked(&t.b, MGMT_IP));
    let after = ok(n, ctl(&st, &["stats"]));
    assert!(after.contains("refused_acl"), "{n}: {after}");

    let src = ok(n, source.finish_json(Duration::from_secs(30)));
    let dst = ok(n, sink.finish_json(Duration::from_secs(10)));
    assert_eq!(src["sha256"], dst["sha256"], "{n}: the crossing transfer was damaged: {src} {dst}");
}

/// POST /reload needs the token; GET /events shows a connection's NEW and DESTROY.
#[test]
fn reload_token_and_events() {
    let n = "reload_token_and_events";
    let Some(mut st) = setup(n, &config(2)) else { return };
    let url = format!("http://{MGMT_IP}/reload");
    let (code, body) = curl(&st, false, &["-X", "POST"], &url);
    assert_eq!(code, 401, "{n}: reload without a token: {body}");
    let (code, body) = curl(&st, false, &["-X", "POST", "-H", "Authorization: Bearer wrong-token-000000"], &url);
    assert_eq!(code, 403, "{n}: reload with a wrong token: {body}");
    let pos = st.ctwall().proc.line_count();
    let out = ok(n, ctl(&st, &["reload", "--token", TOKEN]));
    assert!(out.contains("reloaded"), "{n}: {out}");
    ok(n, st.ctwall().proc.wait_line(pos, Duration::from_secs(5), |l| l.contains("reloaded the rules")).map(|_| ()));

    let bin = ok(n, tests::ctwall::find_ctwall());
    let mut events = ok(
        n,
        Bg::spawn("ctl events", st.topo.a.command(&bin.to_string_lossy()).args(["ctl", "--addr", MGMT_IP, "events"])),
    );
    std::thread::sleep(Duration::from_millis(500));
    let t = &st.topo;
    let r = ok(n, t.udp_echoes(B_IP, 7001, 1, 2, Duration::from_secs(10)));
    assert_eq!(r["ok"], 1, "{n}: {r}");
    let is = |kind: &'static str| move |l: &str| l.contains(kind) && l.contains("udp") && l.contains("dport=7001");
    ok(n, events.wait_line(0, Duration::from_secs(5), is("[NEW]")).map(|_| ()));
    // udp_timeout is 2 s in this configuration.
    ok(n, events.wait_line(0, Duration::from_secs(10), is("[DESTROY]")).map(|_| ()));
    events.kill();
}
