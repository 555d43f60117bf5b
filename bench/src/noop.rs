//! `bench noop-forward`: the reference path of the e2e scenarios. XdpIo on
//! two interfaces, every frame sent unchanged out of the other port; no
//! parsing, no table. Says "ready" on stderr, stops on SIGINT/SIGTERM or
//! after `seconds`.

use rings::xdp::{XdpConfig, XdpIo};
use rings::{Action, PacketIo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) fn forward(inside: &str, outside: &str, seconds: u64) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("signal handler: {e}"))?;
    }
    let cfg = XdpConfig { inside: inside.into(), outside: outside.into(), ..XdpConfig::default() };
    let mut io = XdpIo::open(&cfg).map_err(|e| format!("XdpIo::open: {e:?}"))?;
    eprintln!("noop-forward: {} ready", io.mode_in_use());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = io.rx_batch(64, &mut |_, m| Action::Forward(m.port.other())).map_err(|e| format!("rx: {e:?}"))?;
        io.flush().map_err(|e| format!("flush: {e:?}"))?;
        if n == 0 {
            io.wait(Duration::from_millis(5)).map_err(|e| format!("wait: {e:?}"))?;
        }
    }
    eprintln!("noop-forward: {:?}", io.stats());
    Ok(())
}
