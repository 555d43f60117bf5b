//! Differential tests: the same packet traces go through the Linux kernel's conntrack (in
//! network namespaces) and through `ctwall replay`, and the results must be equal packet by
//! packet (ctstate and direction) and in the final conntrack and expectation tables.
//!
//! * [`trace`]: packet builder and pcap writer.
//! * [`netns`]: RAII network namespaces.
//! * [`kernel`]: the kernel reference runner (needs root, `ip`, `nft`, `python3`).
//! * [`ctwall`]: runs `ctwall replay --format jsonl`.
//! * [`procfmt`]: the parser of the /proc listing formats, used for both sides.
//! * [`compare`]: the comparison and its report.
//! * [`scenarios`]: the scenarios.
//!
//! Run: `cargo build --bins && cargo test -p tests` (as root; `CTWALL_REQUIRE_ROOT=1` turns a
//! missing prerequisite into a failure instead of a skip).

pub mod bridge;
pub mod compare;
pub mod ctwall;
pub mod kernel;
pub mod netns;
pub mod procfmt;
pub mod scenario;
pub mod scenarios;
pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why the kernel reference cannot run here, if it cannot.
pub fn missing_prerequisite() -> Option<String> {
    if !netns::is_root() {
        return Some("not running as root".to_string());
    }
    for tool in ["ip", "nft", "python3", "sysctl"] {
        if !netns::have_tool(tool) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    if !Path::new("/proc/sys/net/netfilter").is_dir() {
        return Some("no nf_conntrack in this kernel (/proc/sys/net/netfilter missing)".to_string());
    }
    None
}

/// Writes a line straight to the process's stderr (not captured by the test harness).
pub fn visible(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// Returns `true` if the test may run. Otherwise prints `SKIPPED (needs root): ...` and returns
/// `false`, or panics when `CTWALL_REQUIRE_ROOT=1`.
pub fn prerequisites_or_skip(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) => {
            if std::env::var("CTWALL_REQUIRE_ROOT").as_deref() == Ok("1") {
                panic!("{test}: {why}, and CTWALL_REQUIRE_ROOT=1 requires the kernel differential tests to run");
            }
            visible(&format!("SKIPPED (needs root): {test}: {why}"));
            false
        }
    }
}

static WORKDIR_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A scratch directory, removed on drop unless [`WorkDir::keep`] was called.
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    pub fn new(name: &str) -> Result<WorkDir, String> {
        let base = std::env::var_os("CTWALL_DIFF_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("ctwall-diff"));
        let path =
            base.join(format!("{name}-{}-{}", std::process::id(), WORKDIR_COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        Ok(WorkDir { path, keep: std::env::var("CTWALL_KEEP").as_deref() == Ok("1") })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory (for a failed scenario).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runs one scenario through the kernel and through ctwall and compares them. Panics with the
/// full report on any difference. Skips (prints and returns) without root unless
/// `CTWALL_REQUIRE_ROOT=1`.
pub fn run_differential(name: &str) {
    let sc = scenarios::by_name(name).unwrap_or_else(|| panic!("no scenario named {name}"));
    if !prerequisites_or_skip(name) {
        return;
    }
    // Fail early (before the slow kernel run) when the binary is missing.
    if let Err(e) = ctwall::find_ctwall() {
        panic!("{name}: {e}");
    }
    let mut dir = WorkDir::new(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let k = kernel::run_kernel(&sc, dir.path()).unwrap_or_else(|e| panic!("{name}: kernel reference failed: {e}"));
    let c = match ctwall::run_ctwall(&sc, dir.path()) {
        Ok(c) => c,
        Err(e) => {
            dir.keep();
            panic!(
                "{name}: ctwall failed: {e}\n(kept {})\n--- kernel side ---\n{}",
                dir.path().display(),
                compare::kernel_report(&sc, &k)
            );
        }
    };
    let v = compare::compare(&sc, &k, &c);
    if !v.ok() {
        dir.keep();
        std::fs::write(dir.path().join("report.txt"), &v.report).ok();
        panic!(
            "{name}: kernel and ctwall differ ({} mismatch(es)); trace and config kept in {}\n{}",
            v.mismatches.len(),
            dir.path().display(),
            v.report
        );
    }
}
