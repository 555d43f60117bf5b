//! Debug tool: runs scenarios through the kernel reference and prints what the kernel did
//! (per-frame ctstate and direction, final tables). With `--ctwall`, also runs ctwall and
//! prints the comparison.
//!
//! Usage: `kernel-ref [--ctwall] [--keep] (--list | all | NAME...)`

use std::process::ExitCode;
use tests::{compare, ctwall, kernel, scenarios, WorkDir};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let with_ctwall = take_flag(&mut args, "--ctwall");
    let keep = take_flag(&mut args, "--keep");
    if take_flag(&mut args, "--list") {
        for (n, f) in scenarios::all() {
            println!("{n:40} {}", f().about);
        }
        return ExitCode::SUCCESS;
    }
    if args.is_empty() {
        eprintln!("usage: kernel-ref [--ctwall] [--keep] (--list | all | NAME...)");
        return ExitCode::from(2);
    }
    if let Some(why) = tests::missing_prerequisite() {
        eprintln!("kernel-ref: {why}");
        return ExitCode::from(2);
    }
    let names: Vec<String> =
        if args == ["all"] { scenarios::all().into_iter().map(|(n, _)| n.to_string()).collect() } else { args };
    let mut failed = 0;
    for name in &names {
        let Some(sc) = scenarios::by_name(name) else {
            eprintln!("no scenario named {name}");
            failed += 1;
            continue;
        };
        let mut dir = match WorkDir::new(name) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        if keep {
            dir.keep();
        }
        let k = match kernel::run_kernel(&sc, dir.path()) {
            Ok(k) => k,
            Err(e) => {
                println!("{name}: kernel reference failed: {e}\n");
                failed += 1;
                continue;
            }
        };
        if with_ctwall {
            match ctwall::run_ctwall(&sc, dir.path()) {
                Ok(c) => {
                    let v = compare::compare(&sc, &k, &c);
                    println!("{}{}\n", v.report, if v.ok() { "RESULT: equal" } else { "RESULT: DIFFERENT" });
                    if !v.ok() {
                        failed += 1;
                    }
                }
                Err(e) => {
                    println!("{}ctwall failed: {e}\n", compare::kernel_report(&sc, &k));
                    failed += 1;
                }
            }
        } else {
            println!("{}", compare::kernel_report(&sc, &k));
            let problems = compare::kernel_self_check(&sc, &k);
            for p in &problems {
                println!("PROBLEM: {p}");
            }
            if !problems.is_empty() {
                failed += 1;
            }
            println!();
        }
        if keep {
            println!("(files in {})\n", dir.path().display());
        }
    }
    println!("{} scenario(s), {} with problems", names.len(), failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}
