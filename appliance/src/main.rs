//! `ctwall`: a userspace stateful firewall with Linux conntrack semantics.
#![forbid(unsafe_code)]

use appliance::replay::{self, Format, ReplayOptions};
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
    /// Validate a configuration file without running.
    Check {
        /// The configuration file (RON).
        file: PathBuf,
    },
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
        Cmd::Check { file } => match config::Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctwall: error: {e}");
            ExitCode::FAILURE
        }
    }
}
