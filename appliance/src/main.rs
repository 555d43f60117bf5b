//! `ctwall`: a userspace stateful firewall with Linux conntrack semantics.
#![forbid(unsafe_code)]

use appliance::replay::{self, Format, ReplayOptions};
use appliance::rules::Ruleset;
use appliance::{run, settings};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "ctwall", version, about = "Userspace stateful bridge firewall with Linux conntrack semantics")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Copy, Clone, ValueEnum)]
enum FormatArg {
    Jsonl,
    Text,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pcap/pcapng capture through the pipeline, capture timestamps as the clock.
    Replay {
        /// Configuration file (RON); defaults: accept all, FTP on 21, TFTP on 69, kernel timeouts.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: FormatArg,
        /// The capture file.
        trace: PathBuf,
    },
    /// Validate a configuration file without running: syntax, every field,
    /// and that the interfaces exist on this machine.
    Check {
        /// The configuration file (RON).
        file: PathBuf,
        /// Do not look for the interfaces (a file for another machine).
        #[arg(long)]
        skip_interfaces: bool,
    },
    /// Bridge the two interfaces with AF_XDP, tracking and filtering every IP packet.
    /// SIGHUP reloads the rules (the connection table stays); SIGUSR1 prints the table
    /// in `conntrack -L` format on stdout; SIGINT/SIGTERM stop and detach XDP.
    Run {
        /// The configuration file (RON).
        #[arg(long)]
        config: PathBuf,
        /// The inside interface (overrides `interfaces.inside`).
        #[arg(long)]
        inside: Option<String>,
        /// The outside interface (overrides `interfaces.outside`).
        #[arg(long)]
        outside: Option<String>,
        /// A management address with prefix (e.g. 10.0.0.250/24) on the inside port,
        /// HTTP on port 80 for sources in that prefix (replaces the file's `mgmt`).
        #[arg(long, value_name = "ADDR/PREFIX")]
        mgmt: Option<String>,
    },
    /// The operator's client for the management plane.
    Ctl(appliance::ctl::CtlArgs),
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `NO_COLOR` turns colour off.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let color = std::env::var_os("NO_COLOR").is_none() && io::IsTerminal::is_terminal(&io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(color).init();
}

fn check(file: &std::path::Path, skip_interfaces: bool) -> Result<(), String> {
    let cfg = config::Config::load(file).map_err(|e| e.to_string())?;
    if !skip_interfaces {
        cfg.check_interfaces_exist(file).map_err(|e| e.to_string())?;
    }
    settings::helper_registry(&cfg).map_err(|e| format!("{}: helpers: {e}", file.display()))?;
    let rules = Ruleset::compile(&cfg);
    let n = rules.counters().len();
    for w in appliance::lint::warnings(&cfg) {
        eprintln!("{}: warning: {w}", file.display());
    }
    println!("{}: ok ({} rules and policies)", file.display(), n);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Replay { config, format, trace } => {
            let format = match format {
                FormatArg::Jsonl => Format::Jsonl,
                FormatArg::Text => Format::Text,
            };
            let opts = ReplayOptions { trace, config, format };
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
            replay::run(&opts, &mut out).map(|_| ()).map_err(|e| e.to_string())
        }
        Cmd::Check { file, skip_interfaces } => check(&file, skip_interfaces),
        Cmd::Run { config, inside, outside, mgmt } => {
            init_tracing();
            run::run(&run::RunOptions { config, inside, outside, mgmt })
        }
        Cmd::Ctl(args) => appliance::ctl::run(args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctwall: error: {e}");
            ExitCode::FAILURE
        }
    }
}
