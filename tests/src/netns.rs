//! RAII network namespaces for the kernel reference. Every namespace gets a name unique to
//! this process (`ctw<pid>x<counter><tag>`) and is deleted on drop, also while unwinding.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A prefix unique to this process and call: `ctw<pid>x<counter>`.
pub fn unique_prefix() -> String {
    format!("ctw{}x{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command and returns its output, failing with a readable message if it could not be
/// started or exited non-zero.
pub fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(out)
}

/// Runs a command feeding `input` on stdin.
pub fn run_with_input(cmd: &mut Command, input: &str) -> Result<Output, String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    child.stdin.take().expect("piped stdin").write_all(input.as_bytes()).map_err(|e| format!("{cmd:?}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}\ninput:\n{input}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(out)
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` (`ip netns add`).
    pub fn new(name: &str) -> Result<Netns, String> {
        run(Command::new("ip").args(["netns", "add", name]))?;
        let ns = Netns { name: name.to_string() };
        // Loopback up, as every namespace user expects.
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`, usable with setns(2).
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<Output, String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs several `ip` commands in one process (`ip -n <ns> -batch -`).
    pub fn ip_batch(&self, lines: &[String]) -> Result<Output, String> {
        let input = lines.join("\n") + "\n";
        run_with_input(Command::new("ip").arg("-n").arg(&self.name).args(["-batch", "-"]), &input)
    }

    /// A `Command` that runs `prog` inside the namespace (`ip netns exec`).
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, prog]);
        c
    }

    /// Runs `prog ARGS` inside the namespace, failing on a non-zero exit.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<Output, String> {
        run(self.command(prog).args(args))
    }

    /// Sets sysctls inside the namespace (`sysctl -qw k=v ...`).
    pub fn sysctl(&self, kv: &[(String, String)]) -> Result<(), String> {
        if kv.is_empty() {
            return Ok(());
        }
        let args: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
        run(self.command("sysctl").arg("-qw").args(&args)).map(|_| ())
    }

    /// Reads a file as seen from inside the namespace (e.g. `/proc/net/nf_conntrack`).
    pub fn read_file(&self, path: &str) -> Result<String, String> {
        let out = self.exec("cat", &[path])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether the process runs as root (effective uid 0), read from /proc/self/status.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether `prog` is found in PATH (or the usual sbin directories).
pub fn have_tool(prog: &str) -> bool {
    let mut dirs: Vec<String> =
        std::env::var("PATH").unwrap_or_default().split(':').filter(|d| !d.is_empty()).map(str::to_string).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(String::from));
    dirs.iter().any(|d| std::path::Path::new(d).join(prog).is_file())
}
