//! Comparison of the kernel's and ctwall's results, with a readable report.

use crate::kernel::{KernelRun, Obs};
use crate::procfmt::{parse_ct_line, parse_expect_line, CtEntry, ExpEntry};
use crate::scenario::Scenario;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Timeouts may differ by this many seconds (the two sides read at slightly different times).
pub const TIMEOUT_SLACK: i64 = 1;
/// Above this injection lateness (seconds) the kernel reference is not trusted.
pub const MAX_LATE_S: f64 = 0.4;

/// The outcome of one comparison.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Every difference found, one per line.
    pub mismatches: Vec<String>,
    /// The full report (frames, both tables, mismatches).
    pub report: String,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// What ctwall reports for a fragment that reassembly held or dropped.
pub fn held_obs() -> Obs {
    Obs { ctstate: "NONE".to_string(), dir: None }
}

fn show(o: &Option<Obs>) -> String {
    o.as_ref().map(|o| o.to_string()).unwrap_or_else(|| "(not seen)".to_string())
}

fn fwd(f: Option<bool>) -> &'static str {
    match f {
        Some(true) => "fwd",
        Some(false) => "DROP",
        None => "-",
    }
}

/// The per-frame table of one run of the kernel alone (debugging aid).
pub fn kernel_report(sc: &Scenario, k: &KernelRun) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "scenario {}: {}", sc.name, sc.about);
    let _ = writeln!(r, "{:>3} {:>9} {:1} {:<44} {:<22} fwd", "#", "t(s)", "", "frame", "kernel");
    for (i, f) in sc.frames.iter().enumerate() {
        let _ = writeln!(
            r,
            "{:>3} {:>9.3} {:1} {:<44} {:<22} {}",
            i + 1,
            f.t_us as f64 / 1e6,
            f.spec.side().as_char(),
            f.note,
            if sc.held.contains(&(i + 1)) && k.frames[i].is_none() {
                "(held: no line)".to_string()
            } else {
                show(&k.frames[i])
            },
            fwd(k.forwarded.get(i).copied().flatten())
        );
    }
    let _ = writeln!(r, "kernel /proc/net/nf_conntrack:");
    for l in &k.conntrack {
        let _ = writeln!(r, "  {l}");
    }
    let _ = writeln!(r, "kernel /proc/net/nf_conntrack_expect:");
    for l in &k.expect {
        let _ = writeln!(r, "  {l}");
    }
    let _ = writeln!(r, "injection: max lateness {:.1} ms", k.max_late * 1e3);
    for w in &k.warnings {
        let _ = writeln!(r, "warning: {w}");
    }
    r
}

/// Checks the kernel run on its own: every frame not declared "not seen" or "held" was logged
/// (a reassembled datagram's line counts for the fragment that completed it), the declared
/// ones were not, the injection was punctual, and the tables parse.
pub fn kernel_self_check(sc: &Scenario, k: &KernelRun) -> Vec<String> {
    let mut m = Vec::new();
    for (i, o) in k.frames.iter().enumerate() {
        let n = i + 1;
        match (sc.not_seen.contains(&n), sc.held.contains(&n), o) {
            (false, false, None) => m.push(format!("frame {n}: the kernel logged nothing for it (unexpected)")),
            (true, _, Some(o)) => m.push(format!("frame {n}: declared not seen, but the kernel logged {o}")),
            (_, true, Some(o)) => {
                m.push(format!("frame {n}: declared held by reassembly, but the kernel logged {o} for it"))
            }
            _ => {}
        }
    }
    if k.max_late > MAX_LATE_S {
        m.push(format!("injection was {:.0} ms late: kernel timing not trustworthy", k.max_late * 1e3));
    }
    for w in &k.warnings {
        m.push(format!("kernel log: {w}"));
    }
    for l in &k.conntrack {
        if let Err(e) = parse_ct_line(l) {
            m.push(format!("kernel conntrack line: {e}"));
        }
    }
    for l in &k.expect {
        if let Err(e) = parse_expect_line(l) {
            m.push(format!("kernel expect line: {e}"));
        }
    }
    m
}

fn timeout_close(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= TIMEOUT_SLACK,
        (None, None) => true,
        _ => false,
    }
}

fn compare_ct(k: &CtEntry, c: &CtEntry) -> Vec<String> {
    let mut d = Vec::new();
    let what = k.summary();
    if k.state != c.state {
        d.push(format!("{what}: state kernel {:?} ctwall {:?}", k.state, c.state));
    }
    if k.unreplied != c.unreplied {
        d.push(format!("{what}: [UNREPLIED] kernel {} ctwall {}", k.unreplied, c.unreplied));
    }
    if k.flag != c.flag {
        d.push(format!("{what}: flag kernel {:?} ctwall {:?}", k.flag, c.flag));
    }
    if k.reply != c.reply {
        d.push(format!("{what}: reply tuple kernel {} ctwall {}", k.reply, c.reply));
    }
    if k.mark != c.mark || k.zone != c.zone || k.zone_orig != c.zone_orig || k.zone_reply != c.zone_reply {
        d.push(format!(
            "{what}: mark/zone kernel {:?}/{:?} ctwall {:?}/{:?}",
            k.mark,
            (k.zone, k.zone_orig, k.zone_reply),
            c.mark,
            (c.zone, c.zone_orig, c.zone_reply)
        ));
    }
    if k.acct_orig != c.acct_orig || k.acct_reply != c.acct_reply {
        d.push(format!(
            "{what}: counters kernel {:?}/{:?} ctwall {:?}/{:?}",
            k.acct_orig, k.acct_reply, c.acct_orig, c.acct_reply
        ));
    }
    if !timeout_close(k.timeout, c.timeout) {
        d.push(format!("{what}: timeout kernel {:?} ctwall {:?}", k.timeout, c.timeout));
    }
    if d.is_empty() && k.canonical_text() != c.canonical_text() {
        d.push(format!(
            "{what}: line format differs (timeout and use= ignored):\n      kernel: {}\n      ctwall: {}",
            k.raw, c.raw
        ));
    }
    d
}

fn compare_exp(k: &ExpEntry, c: &ExpEntry) -> Vec<String> {
    let mut d = Vec::new();
    let what = k.summary();
    if k.helper != c.helper || k.flags != c.flags {
        d.push(format!("{what}: helper/flags kernel {:?} {:?} ctwall {:?} {:?}", k.helper, k.flags, c.helper, c.flags));
    }
    if (k.timeout - c.timeout).abs() > TIMEOUT_SLACK {
        d.push(format!("{what}: timeout kernel {} ctwall {}", k.timeout, c.timeout));
    }
    if d.is_empty() && k.canonical_text() != c.canonical_text() {
        d.push(format!("{what}: line format differs:\n      kernel: {}\n      ctwall: {}", k.raw, c.raw));
    }
    d
}

fn parse_all<T, E: std::fmt::Display>(
    side: &str,
    lines: &[String],
    f: impl Fn(&str) -> Result<T, E>,
    out: &mut Vec<String>,
) -> Vec<T> {
    lines
        .iter()
        .filter_map(|l| match f(l) {
            Ok(e) => Some(e),
            Err(e) => {
                out.push(format!("{side}: {e}"));
                None
            }
        })
        .collect()
}

/// Compares the two tables as sets keyed by `key`.
fn compare_sets<T, K: Ord + std::fmt::Debug>(
    what: &str,
    k: Vec<T>,
    c: Vec<T>,
    key: impl Fn(&T) -> K,
    summary: impl Fn(&T) -> String,
    cmp: impl Fn(&T, &T) -> Vec<String>,
    out: &mut Vec<String>,
) {
    let mut km: BTreeMap<K, T> = BTreeMap::new();
    for e in k {
        if let Some(old) = km.insert(key(&e), e) {
            out.push(format!("{what}: the kernel lists {} twice", summary(&old)));
        }
    }
    let mut cm: BTreeMap<K, T> = BTreeMap::new();
    for e in c {
        if let Some(old) = cm.insert(key(&e), e) {
            out.push(format!("{what}: ctwall lists {} twice", summary(&old)));
        }
    }
    for (kk, ke) in &km {
        match cm.get(kk) {
            None => out.push(format!("{what}: missing in ctwall: {}", summary(ke))),
            Some(ce) => out.extend(cmp(ke, ce).into_iter().map(|d| format!("{what}: {d}"))),
        }
    }
    for (ck, ce) in &cm {
        if !km.contains_key(ck) {
            out.push(format!("{what}: extra in ctwall (not in the kernel): {}", summary(ce)));
        }
    }
}

/// Compares a kernel run and a ctwall run of the same scenario.
pub fn compare(sc: &Scenario, k: &KernelRun, c: &crate::ctwall::CtwallRun) -> Verdict {
    let mut m = kernel_self_check(sc, k);
    let mut r = String::new();
    let _ = writeln!(r, "scenario {}: {}", sc.name, sc.about);
    if !sc.sysctls.is_empty() || sc.ftp_loose || !sc.helpers {
        let _ = writeln!(r, "knobs: {:?} ftp_loose={} helpers={}", sc.sysctls, sc.ftp_loose, sc.helpers);
    }
    if sc.has_vlan {
        let _ = writeln!(r, "note: VLAN tags are stripped for the kernel (plain veths), ctwall gets them");
    }
    let _ = writeln!(
        r,
        "{:>3} {:>9} {:1} {:<44} {:<22} {:<4} {:<22} {:<6} ctwall tcp_state/reason",
        "#", "t(s)", "", "frame", "kernel", "fwd", "ctwall", "verdict"
    );
    for (i, f) in sc.frames.iter().enumerate() {
        let n = i + 1;
        let ko = &k.frames[i];
        let co = c.frames.get(i).cloned().flatten();
        let kf = k.forwarded.get(i).copied().flatten();
        let cv = c.verdicts.get(i).cloned().flatten();
        let mut bad = false;
        // A fragment held, dropped as a duplicate or discarded by reassembly: no log line in
        // the kernel, "NONE" with no direction in ctwall.
        let ko = &if sc.held.contains(&n) && ko.is_none() { Some(held_obs()) } else { ko.clone() };
        let mark = if sc.not_seen.contains(&n) {
            "  (not compared: kernel does not see it)".to_string()
        } else {
            if co.is_none() {
                m.push(format!("frame {n}: ctwall reported nothing"));
                bad = true;
            } else if ko.is_some() && *ko != co {
                m.push(format!("frame {n} ({}): kernel {} ctwall {}", f.note, show(ko), show(&co)));
                bad = true;
            } else if ko.is_none() {
                bad = true; // reported by kernel_self_check
            }
            if let Some(kf) = kf {
                match cv.as_deref() {
                    Some(v) if (v == "accept") == kf => {}
                    other => {
                        m.push(format!(
                            "frame {n} ({}): kernel {} it, ctwall verdict {}",
                            f.note,
                            if kf { "forwarded" } else { "dropped" },
                            other.unwrap_or("(none)")
                        ));
                        bad = true;
                    }
                }
            }
            if bad {
                "  <== MISMATCH".to_string()
            } else {
                String::new()
            }
        };
        let extra = [
            c.tcp_states.get(i).cloned().flatten().unwrap_or_default(),
            c.reasons.get(i).cloned().flatten().unwrap_or_default(),
            c.drop_reasons.get(i).cloned().flatten().unwrap_or_default(),
        ]
        .join(" ");
        let _ = writeln!(
            r,
            "{:>3} {:>9.3} {:1} {:<44} {:<22} {:<4} {:<22} {:<6} {}{}",
            n,
            f.t_us as f64 / 1e6,
            f.spec.side().as_char(),
            f.note,
            show(ko),
            fwd(kf),
            show(&co),
            cv.as_deref().unwrap_or("-"),
            extra.trim(),
            mark
        );
    }
    let kt = parse_all("kernel conntrack", &k.conntrack, parse_ct_line, &mut m);
    let ct = parse_all("ctwall conntrack", &c.conntrack, parse_ct_line, &mut m);
    compare_sets("conntrack", kt, ct, CtEntry::key, CtEntry::summary, compare_ct, &mut m);
    let ke = parse_all("kernel expect", &k.expect, parse_expect_line, &mut m);
    let ce = parse_all("ctwall expect", &c.expect, parse_expect_line, &mut m);
    compare_sets("expect", ke, ce, ExpEntry::key, ExpEntry::summary, compare_exp, &mut m);

    for (title, lines) in [
        ("kernel /proc/net/nf_conntrack", &k.conntrack),
        ("ctwall table", &c.conntrack),
        ("kernel /proc/net/nf_conntrack_expect", &k.expect),
        ("ctwall expect", &c.expect),
    ] {
        let _ = writeln!(r, "{title}:{}", if lines.is_empty() { " (empty)" } else { "" });
        for l in lines.iter() {
            let _ = writeln!(r, "  {l}");
        }
    }
    let _ = writeln!(r, "injection: max lateness {:.1} ms", k.max_late * 1e3);
    if !m.is_empty() {
        let _ = writeln!(r, "MISMATCHES ({}):", m.len());
        for x in &m {
            let _ = writeln!(r, "  - {x}");
        }
    }
    Verdict { mismatches: m, report: r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctwall::CtwallRun;
    use crate::scenario::Builder;
    use crate::trace::{flags::*, Pkt, C, S};

    const SYN_SENT: &str =
        "ipv4     2 tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] \
                            src=10.0.2.2 dst=10.0.1.2 sport=80 dport=40000 mark=0 zone=0 use=2";
    const EXP: &str = "299 l3proto = 2 proto=6 src=10.0.2.2 dst=10.0.1.2 sport=0 dport=40000 ftp";

    fn scenario() -> Scenario {
        let mut b = Builder::new("unit", "unit");
        b.send(Pkt::tcp(C, 40000, S, 80, SYN, 1000, 0), "SYN");
        b.send(Pkt::tcp(C, 40000, S, 80, SYN | FIN, 1000, 0), "SYN|FIN");
        b.build()
    }

    fn obs(s: &str, d: Option<&str>) -> Option<Obs> {
        Some(Obs { ctstate: s.into(), dir: d.map(str::to_string) })
    }

    fn runs() -> (KernelRun, CtwallRun) {
        let frames = vec![obs("NEW", Some("original")), obs("INVALID", None)];
        let k = KernelRun {
            frames: frames.clone(),
            conntrack: vec![SYN_SENT.into()],
            expect: vec![EXP.into()],
            sent: vec![0.0, 0.003],
            max_late: 0.0001,
            forwarded: vec![Some(true), Some(true)],
            warnings: vec![],
        };
        let c = CtwallRun {
            frames,
            reasons: vec![None, Some("tcp_flags".into())],
            tcp_states: vec![Some("SYN_SENT".into()), None],
            verdicts: vec![Some("accept".into()), Some("accept".into())],
            conntrack: vec![SYN_SENT.replace(" 119 ", " 120 ").replace("use=2", "use=1")],
            expect: vec![EXP.replace("299", "300")],
            ..CtwallRun::default()
        };
        (k, c)
    }

    #[test]
    fn equal_runs_pass() {
        let (k, c) = runs();
        let v = compare(&scenario(), &k, &c);
        assert!(v.ok(), "{}", v.report);
    }

    #[test]
    fn every_kind_of_difference_fails() {
        let sc = scenario();
        type Mutation = Box<dyn Fn(&mut KernelRun, &mut CtwallRun)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("ctstate", Box::new(|_, c| c.frames[1] = obs("NEW", Some("original")))),
            ("direction", Box::new(|_, c| c.frames[0] = obs("NEW", Some("reply")))),
            ("frame missing in ctwall", Box::new(|_, c| c.frames[1] = None)),
            ("frame not seen by the kernel", Box::new(|k, _| k.frames[1] = None)),
            ("timeout by 2", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace(" 119 ", " 121 "))),
            ("state", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("SYN_SENT", "SYN_RECV"))),
            ("unreplied", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("[UNREPLIED] ", ""))),
            ("assured", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("mark=0", "[ASSURED] mark=0"))),
            ("mark", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("mark=0", "mark=1"))),
            ("zone", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("zone=0", "zone=1"))),
            ("missing entry", Box::new(|_, c| c.conntrack.clear())),
            ("extra entry", Box::new(|_, c| c.conntrack.push(SYN_SENT.replace("40000", "40001")))),
            ("unparsable entry", Box::new(|_, c| c.conntrack[0] = "garbage".into())),
            ("format (padding)", Box::new(|_, c| c.conntrack[0] = SYN_SENT.replace("ipv4     2", "ipv4 2"))),
            ("missing expectation", Box::new(|_, c| c.expect.clear())),
            ("expectation timeout", Box::new(|_, c| c.expect[0] = EXP.replace("299", "297"))),
            ("expectation helper", Box::new(|_, c| c.expect[0] = EXP.replace("ftp", "tftp"))),
            ("late injection", Box::new(|k, _| k.max_late = 1.0)),
            ("verdict", Box::new(|_, c| c.verdicts[1] = Some("drop".into()))),
            ("kernel drop", Box::new(|k, _| k.forwarded[0] = Some(false))),
            ("no verdict", Box::new(|_, c| c.verdicts[0] = None)),
            ("kernel warning", Box::new(|k, _| k.warnings.push("frame 1 logged twice".into()))),
        ];
        for (what, f) in cases {
            let (mut k, mut c) = runs();
            f(&mut k, &mut c);
            let v = compare(&sc, &k, &c);
            assert!(!v.ok(), "{what}: not detected\n{}", v.report);
        }
    }

    #[test]
    fn held_fragments_must_be_none_in_ctwall_and_unlogged_in_the_kernel() {
        let mut b = Builder::new("unit", "unit");
        let f = Pkt::udp(C, 1, S, 2, &[7; 100]).fragments(crate::trace::FRAG_ID_BASE, 64);
        b.send_held(f[0].clone(), "1/2");
        b.send(f[1].clone(), "2/2");
        let sc = b.build();
        let k = KernelRun {
            frames: vec![None, obs("NEW", Some("original"))],
            conntrack: vec![],
            expect: vec![],
            sent: vec![0.0, 0.003],
            max_late: 0.0001,
            forwarded: vec![None, Some(true)],
            warnings: vec![],
        };
        let c = CtwallRun {
            frames: vec![obs("NONE", None), obs("NEW", Some("original"))],
            verdicts: vec![None, Some("accept".into())],
            ..CtwallRun::default()
        };
        let v = compare(&sc, &k, &c);
        assert!(v.ok(), "{}", v.report);
        assert!(kernel_self_check(&sc, &k).is_empty());
        type Mutation = Box<dyn Fn(&mut KernelRun, &mut CtwallRun)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("ctwall tracks a held fragment", Box::new(|_, c| c.frames[0] = obs("NEW", Some("original")))),
            ("NONE with a direction", Box::new(|_, c| c.frames[0] = obs("NONE", Some("original")))),
            ("ctwall silent on a held fragment", Box::new(|_, c| c.frames[0] = None)),
            ("ctwall NONE on the completing fragment", Box::new(|_, c| c.frames[1] = obs("NONE", None))),
            ("the kernel logged a held fragment", Box::new(|k, _| k.frames[0] = obs("INVALID", None))),
            ("the kernel logged nothing for the datagram", Box::new(|k, _| k.frames[1] = None)),
            ("ctwall drops the datagram", Box::new(|_, c| c.verdicts[1] = Some("drop".into()))),
        ];
        for (what, f) in cases {
            let (mut k, mut c) = (k.clone(), c.clone());
            f(&mut k, &mut c);
            assert!(!compare(&sc, &k, &c).ok(), "{what}: not detected");
        }
    }

    #[test]
    fn not_seen_frames_are_checked_on_the_kernel_side_only() {
        let mut sc = scenario();
        sc.not_seen.push(2);
        let (mut k, mut c) = runs();
        k.frames[1] = None;
        c.frames[1] = obs("UNTRACKED", None);
        assert!(compare(&sc, &k, &c).ok());
        k.frames[1] = obs("INVALID", None);
        assert!(!compare(&sc, &k, &c).ok(), "a declared not-seen frame that the kernel saw");
    }
}
