//! Runs the real `ctwall replay` binary on a scenario and parses its JSONL output.
//!
//! Output contract of `ctwall replay --config <file.ron> --format jsonl <trace.pcap>`:
//! one `{"n":..,"ctstate":..,"dir":..,...}` line per frame, then `{"table":[{"line":..},..]}`,
//! `{"expect":[{"line":..},..]}` and `{"stats":{..}}`. Table/expect lines use the kernel's
//! /proc formats (spec §10.1/§10.3). A fragment that reassembly holds, drops as a duplicate or
//! discards has `"ctstate":"NONE","dir":null`; the fragment that completes a datagram carries
//! the datagram's ctstate, direction and verdict.

use crate::kernel::Obs;
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// ctwall's result for one scenario.
#[derive(Clone, Debug, Default)]
pub struct CtwallRun {
    /// Per frame (index 0 = frame 1).
    pub frames: Vec<Option<Obs>>,
    /// Per frame: the invalid reason (if any), for reports.
    pub reasons: Vec<Option<String>>,
    /// Per frame: ctwall's TCP state after the frame, for reports.
    pub tcp_states: Vec<Option<String>>,
    /// Per frame: `accept` or `drop`.
    pub verdicts: Vec<Option<String>>,
    /// Per frame: why it was dropped, for reports.
    pub drop_reasons: Vec<Option<String>>,
    pub conntrack: Vec<String>,
    pub expect: Vec<String>,
    pub stats: Option<serde_json::Value>,
    pub stderr: String,
}

/// Finds the ctwall binary: `$CTWALL_BIN`, else `ctwall` next to the running executable or
/// next to its parent directory (test binaries live in `target/<profile>/deps/`).
pub fn find_ctwall() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("CTWALL_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() { Ok(p) } else { Err(format!("CTWALL_BIN={} does not exist", p.display())) };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join("ctwall");
        if cand.is_file() {
            return Ok(cand);
        }
        tried.push(cand.display().to_string());
        dir = d.parent();
    }
    Err(format!(
        "the ctwall binary was not found (tried {}): run `cargo build --bins` first, with the same \
         CARGO_TARGET_DIR and profile as the tests",
        tried.join(", ")
    ))
}

/// Parses ctwall's JSONL output for a trace of `n_frames` frames.
pub fn parse_output(stdout: &str, n_frames: usize) -> Result<CtwallRun, String> {
    let mut run = CtwallRun {
        frames: vec![None; n_frames],
        reasons: vec![None; n_frames],
        tcp_states: vec![None; n_frames],
        verdicts: vec![None; n_frames],
        drop_reasons: vec![None; n_frames],
        ..CtwallRun::default()
    };
    let mut got_table = false;
    for (lineno, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("ctwall output line {}: {e}: {line}", lineno + 1))?;
        if let Some(n) = v.get("n") {
            let n = n.as_u64().ok_or_else(|| format!("bad frame number in {line}"))? as usize;
            if n == 0 || n > n_frames {
                return Err(format!("frame number {n} out of range 1..={n_frames}: {line}"));
            }
            if run.frames[n - 1].is_some() {
                return Err(format!("frame {n} reported twice"));
            }
            let ctstate = v["ctstate"].as_str().ok_or_else(|| format!("no ctstate in {line}"))?.to_string();
            let dir = v["dir"].as_str().map(str::to_string);
            run.frames[n - 1] = Some(Obs { ctstate, dir });
            run.reasons[n - 1] = v.get("reason").and_then(|r| r.as_str()).map(str::to_string);
            run.tcp_states[n - 1] = v.get("tcp_state").and_then(|r| r.as_str()).map(str::to_string);
            run.verdicts[n - 1] = v.get("verdict").and_then(|r| r.as_str()).map(str::to_string);
            run.drop_reasons[n - 1] = v.get("drop_reason").and_then(|r| r.as_str()).map(str::to_string);
        } else if let Some(t) = v.get("table") {
            got_table = true;
            run.conntrack = entry_lines(t, line)?;
        } else if let Some(t) = v.get("expect") {
            run.expect = entry_lines(t, line)?;
        } else if let Some(s) = v.get("stats") {
            run.stats = Some(s.clone());
        }
    }
    if !got_table {
        return Err("ctwall printed no {\"table\":...} line".to_string());
    }
    Ok(run)
}

fn entry_lines(v: &serde_json::Value, line: &str) -> Result<Vec<String>, String> {
    let arr = v.as_array().ok_or_else(|| format!("not an array: {line}"))?;
    arr.iter()
        .map(|e| e["line"].as_str().map(str::to_string).ok_or_else(|| format!("entry without \"line\": {e}")))
        .collect()
}

/// Writes the config and the pcap into `workdir` and runs `ctwall replay`.
pub fn run_ctwall(sc: &Scenario, workdir: &Path) -> Result<CtwallRun, String> {
    let bin = find_ctwall()?;
    let cfg = workdir.join("ctwall.ron");
    std::fs::write(&cfg, sc.ctwall_config()).map_err(|e| format!("write {}: {e}", cfg.display()))?;
    let pcap = workdir.join("trace.pcap");
    sc.write_pcap(&pcap, false)?;
    let out = Command::new(&bin)
        .arg("replay")
        .arg("--config")
        .arg(&cfg)
        .args(["--format", "jsonl"])
        .arg(&pcap)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!(
            "`{} replay --config {} --format jsonl {}` failed ({}):\n{stderr}\n{stdout}",
            bin.display(),
            cfg.display(),
            pcap.display(),
            out.status
        ));
    }
    let mut run = parse_output(&stdout, sc.frames.len())?;
    run.stderr = stderr;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_example() {
        let out = r#"{"n":1,"ts":0.000123,"ctstate":"NEW","dir":"original","verdict":"accept","l4":"tcp","tcp_state":"SYN_SENT","status":["CONFIRMED"],"reason":null,"drop_reason":null}
{"n":2,"ts":0.003,"ctstate":"INVALID","dir":null,"verdict":"accept","l4":"tcp","tcp_state":null,"status":[],"reason":"tcp_flags","drop_reason":null}
{"table":[{"line":"ipv4     2 tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 zone=0 use=2","timeout":119,"state":"SYN_SENT","status":["CONFIRMED"],"helper":null}]}
{"expect":[]}
{"stats":{"invalid":1}}
"#;
        let r = parse_output(out, 2).unwrap();
        assert_eq!(r.frames[0], Some(Obs { ctstate: "NEW".into(), dir: Some("original".into()) }));
        assert_eq!(r.frames[1], Some(Obs { ctstate: "INVALID".into(), dir: None }));
        assert_eq!(r.reasons[1].as_deref(), Some("tcp_flags"));
        assert_eq!(r.verdicts[0].as_deref(), Some("accept"));
        assert_eq!(r.conntrack.len(), 1);
        assert!(r.expect.is_empty());
        assert!(r.stats.is_some());
        assert!(parse_output(out, 1).is_err());
        assert!(parse_output("{\"n\":1,\"ctstate\":\"NEW\",\"dir\":\"original\"}\n", 1).is_err());
    }
}
