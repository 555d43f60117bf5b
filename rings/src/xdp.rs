//! AF_XDP packet I/O (feature `af-xdp`): two ports, one UMEM per queue.
//!
//! [`XdpIo::open`] binds one AF_XDP socket on each interface, both on the
//! same queue, sharing one UMEM; [`XdpIo::open_queues`] does that for
//! several queues, one independent `XdpIo` per queue (one per worker
//! thread). Forwarding a frame moves its descriptor from one port's RX ring
//! to the other port's TX ring; the bytes are not copied (veth and generic
//! XDP copy them in the kernel anyway).
//!
//! The frame bookkeeping lives in [`engine`], written against a small ring
//! trait and tested against a simulated kernel; this file holds the
//! configuration, the xsk-rs backend and the XDP program handling, and all
//! the `unsafe` of the workspace.
//!
//! Operational notes (see `/work/shared/docs/AFXDP_NOTES.md`):
//! * A process killed with SIGKILL leaves its XDP program attached; `open`
//!   detaches whatever program is attached to the two interfaces (generic and
//!   native) before binding, and dropping the (last) `XdpIo` detaches them
//!   again.
//! * Several queues: libxdp loads its program once per interface and keeps a
//!   reference count in it; each socket adds itself to the program's
//!   `xsks_map` at its queue id and removes itself when closed.
//! * Without a bpffs (inside `ip netns exec`) libxdp warns and loads a single
//!   program, which works; `LIBXDP_SKIP_DISPATCHER=1` silences it.
//! * veth supports native and generic XDP, copy mode only.
#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

mod engine;

use crate::{Action, PacketIo, PortId, RxMeta};
use engine::{Budget, Engine, Rings};
use std::ffi::CString;
use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xsk_rs::config::{BindFlags, FrameSize, Interface, QueueSize, SocketConfig, UmemConfig, XdpFlags};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// How the XDP program is attached.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Native (driver) mode if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (SKB) mode only.
    Generic,
}

/// Whether the sockets bind in zero-copy mode.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ZeroCopy {
    /// Zero-copy if both interfaces support it, else copy mode.
    #[default]
    Auto,
    /// Zero-copy only.
    On,
    /// Copy mode only.
    Off,
}

/// Configuration of [`XdpIo`]. Ring sizes must be powers of two; the frame
/// size a power of two of at least 2048 bytes (256 bytes of it are XDP
/// headroom, so 4096-byte frames hold frames of up to 3840 bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct XdpConfig {
    pub inside: String,
    pub outside: String,
    /// The queue both sockets bind to (the first one for
    /// [`XdpIo::open_queues`]).
    pub queue: u32,
    /// UMEM frames, shared by both ports, half for each: its fill ring is
    /// kept stocked with a quarter of all (at most `fill_size`), and the rest
    /// of its half (at most `tx_size`) bounds the frames in flight towards
    /// its wire, an eighth of that reserved for [`PacketIo::send`]. A port
    /// whose transmissions stall (a dead link) holds no more than its half:
    /// the other keeps forwarding and sending.
    pub frame_count: u32,
    pub frame_size: u32,
    pub rx_size: u32,
    pub tx_size: u32,
    pub fill_size: u32,
    pub comp_size: u32,
    pub mode: XdpMode,
    pub zero_copy: ZeroCopy,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            inside: String::new(),
            outside: String::new(),
            queue: 0,
            frame_count: 4096,
            frame_size: 4096,
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            comp_size: 2048,
            mode: XdpMode::Auto,
            zero_copy: ZeroCopy::Auto,
        }
    }
}

/// The attach and bind mode a port ended up with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMode {
    pub interface: String,
    pub ifindex: u32,
    /// `true`: native (driver) XDP; `false`: generic (SKB).
    pub native: bool,
    /// As reported by the kernel (`XDP_OPTIONS`).
    pub zero_copy: bool,
    /// Bound with `XDP_USE_NEED_WAKEUP`.
    pub need_wakeup: bool,
}

impl fmt::Display for PortMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}{}",
            self.interface,
            if self.native { "native" } else { "generic" },
            if self.zero_copy { "zero-copy" } else { "copy" },
            if self.need_wakeup { " need_wakeup" } else { "" }
        )
    }
}

/// Kernel-side statistics of one socket (`XDP_STATISTICS`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Dropped for other reasons (e.g. frame too large for the UMEM frame).
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    pub tx_ring_empty: u64,
}

/// Counters of [`XdpIo`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames received (both ports).
    pub rx: u64,
    /// Frames received per port (inside, outside).
    pub rx_port: [u64; 2],
    /// Received frames answered with `Forward` / `Drop`.
    pub forwarded: u64,
    pub dropped: u64,
    /// Frames given to [`PacketIo::send`] and queued.
    pub sent: u64,
    /// Descriptors put on TX rings (forwarded and sent).
    pub tx: u64,
    /// Transmissions the kernel completed.
    pub tx_completed: u64,
    /// Frames dropped because a TX ring was full.
    pub tx_ring_full: u64,
    /// `send` calls dropped because the port had its whole TX bound in
    /// flight (its transmissions are not completing).
    pub send_no_frame: u64,
    /// Forwarded frames dropped because the port had the forwarding part of
    /// its TX bound in flight (the rest is kept for `send`).
    pub tx_backlog_full: u64,
    /// Refills that could not stock a fill ring to its target (the ring
    /// took fewer frames than offered).
    pub fill_starved: u64,
    /// `sendto()` kicks of the TX rings.
    pub tx_kicks: u64,
    /// Wake-ups of the RX side (fill ring need_wakeup).
    pub rx_kicks: u64,
    /// Per port (inside, outside); zero if the query failed.
    pub kernel: [KernelStats; 2],
}

/// A socket call of one port failed. The `io::Error`s of [`XdpIo`]'s
/// [`PacketIo`] methods carry it when the failure is one port's (a kick of
/// its TX or fill ring): find it with [`PortFault::of`]. `source` keeps the
/// OS error code (e.g. `ENXIO` from `sendto()` once the kernel unbound the
/// socket because its interface went away: `xsk_sendmsg` refuses unbound
/// sockets).
#[derive(Debug)]
pub struct PortFault {
    pub port: PortId,
    pub source: io::Error,
}

impl PortFault {
    /// The port fault `e` carries, if any.
    pub fn of(e: &io::Error) -> Option<&PortFault> {
        e.get_ref()?.downcast_ref()
    }

    fn wrap(port: usize, source: io::Error) -> io::Error {
        let port = if port == 0 { PortId::Inside } else { PortId::Outside };
        io::Error::new(source.kind(), PortFault { port, source })
    }
}

impl fmt::Display for PortFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} port: {}", self.port, self.source)
    }
}

impl std::error::Error for PortFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Opens one queue's sockets again, as they were bound at first (see
/// [`XdpIo::reopener`]).
#[derive(Debug)]
pub struct Reopen {
    cfg: XdpConfig,
    native: [bool; 2],
    zero_copy: bool,
    detach: Arc<DetachOnDrop>,
}

impl Reopen {
    /// Bind both interfaces again on the queue, in the attach and bind mode
    /// they had, with a fresh UMEM. The interfaces are looked up by name
    /// again (an interface deleted and created anew has a new index; the
    /// XDP programs are then detached from the new one at the end). Close
    /// the queue's previous `XdpIo` first: the kernel binds one socket per
    /// interface and queue. Keeps the XDP programs attached meanwhile.
    pub fn open(&self) -> io::Result<XdpIo> {
        let cfg = &self.cfg;
        let ifindex = [ifindex(&cfg.inside)?, ifindex(&cfg.outside)?];
        self.detach.set(ifindex);
        open_same(cfg, umem_config(cfg)?, ifindex, self.native, self.zero_copy, &self.detach)
    }

    /// The queue it opens.
    pub fn queue(&self) -> u32 {
        self.cfg.queue
    }
}

/// AF_XDP I/O on one queue of two interfaces sharing one UMEM. Dropping it
/// closes the sockets, and detaches the XDP programs if it was the last
/// `XdpIo` of its [`XdpIo::open_queues`].
pub struct XdpIo {
    // Field order matters: the sockets (in `engine`) must close before
    // `detach` removes the programs.
    engine: Engine<XskRings>,
    modes: [PortMode; 2],
    mode_text: String,
    /// The configuration of this queue (for [`XdpIo::reopener`]).
    cfg: XdpConfig,
    /// The zero-copy flag the sockets were bound with (the kernel reports
    /// what it did in `modes`).
    requested_zero_copy: bool,
    /// Shared by the `XdpIo`s of [`XdpIo::open_queues`]: the last one
    /// dropped detaches the programs.
    _detach: Arc<DetachOnDrop>,
}

impl fmt::Debug for XdpIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpIo")
            .field("queue", &self.cfg.queue)
            .field("modes", &self.modes)
            .field("stats", &self.engine.counters)
            .finish()
    }
}

impl XdpIo {
    /// Bind both interfaces on `cfg.queue`. Detaches any XDP program left on
    /// them first; dropping the result detaches again.
    pub fn open(cfg: &XdpConfig) -> io::Result<XdpIo> {
        let mut v = XdpIo::open_queues(cfg, 1)?;
        v.pop().ok_or_else(|| io::Error::other("no queue opened"))
    }

    /// Bind both interfaces on each of the `count` queues `cfg.queue ..
    /// cfg.queue + count`: one independent [`XdpIo`] per queue, each with its
    /// own UMEM (of `cfg.frame_count` frames), for one worker thread each.
    ///
    /// Any XDP program left on the interfaces is detached first. The first
    /// queue settles the attach and bind mode (as [`XdpIo::open`] does); the
    /// others bind with the same. libxdp attaches its program once per
    /// interface and adds each further socket to the program's `xsks_map` at
    /// its queue id, so every queue's frames reach that queue's socket. The
    /// programs are detached once, when the last of the returned `XdpIo`s is
    /// dropped (after its sockets closed); dropping some of them leaves the
    /// others running. Programs are attached and detached by interface
    /// index, so drop them in the network namespace they were opened in.
    pub fn open_queues(cfg: &XdpConfig, count: u32) -> io::Result<Vec<XdpIo>> {
        validate(cfg)?;
        if count == 0 {
            return Err(invalid("at least one queue"));
        }
        let last = cfg
            .queue
            .checked_add(count - 1)
            .ok_or_else(|| invalid(format!("queues {} + {count} overflow", cfg.queue)))?;
        let ifindex = [ifindex(&cfg.inside)?, ifindex(&cfg.outside)?];
        let detach = Arc::new(DetachOnDrop(Mutex::new(ifindex)));
        detach.detach_all();
        let umem_cfg = umem_config(cfg)?;
        let first = open_first(cfg, umem_cfg, ifindex, &detach)?;
        let (native, zero_copy) = ([first.modes[0].native, first.modes[1].native], first.requested_zero_copy);
        let mut all = vec![first];
        for queue in cfg.queue + 1..=last {
            let qcfg = XdpConfig { queue, ..cfg.clone() };
            let io = open_same(&qcfg, umem_cfg, ifindex, native, zero_copy, &detach).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "AF_XDP on {} / {} queue {queue} (as on queue {}): {e}",
                        cfg.inside, cfg.outside, cfg.queue
                    ),
                )
            })?;
            all.push(io);
        }
        Ok(all)
    }

    /// The queue both sockets are bound to.
    pub fn queue(&self) -> u32 {
        self.cfg.queue
    }

    /// What opens this queue's sockets again after this `XdpIo` is closed
    /// (after an I/O error, say). It shares the XDP programs' detach: they
    /// stay attached while a `Reopen` or an `XdpIo` of the queues lives.
    pub fn reopener(&self) -> Reopen {
        Reopen {
            cfg: self.cfg.clone(),
            native: [self.modes[0].native, self.modes[1].native],
            zero_copy: self.requested_zero_copy,
            detach: Arc::clone(&self._detach),
        }
    }

    /// The attach/bind mode of both ports, for the start-up log.
    pub fn mode_in_use(&self) -> &str {
        &self.mode_text
    }

    /// The attach/bind mode of each port (inside, outside).
    pub fn modes(&self) -> &[PortMode; 2] {
        &self.modes
    }

    pub fn stats(&self) -> XdpStats {
        let c = self.engine.counters;
        let kernel = [0, 1].map(|p| {
            self.engine.rings.ports[p]
                .rx
                .fd()
                .xdp_statistics()
                .map(|s| KernelStats {
                    rx_dropped: s.rx_dropped(),
                    rx_invalid_descs: s.rx_invalid_descs(),
                    tx_invalid_descs: s.tx_invalid_descs(),
                    rx_ring_full: s.rx_ring_full(),
                    rx_fill_ring_empty: s.rx_fill_ring_empty_descs(),
                    tx_ring_empty: s.tx_ring_empty_descs(),
                })
                .unwrap_or_default()
        });
        XdpStats {
            rx: c.rx,
            rx_port: c.rx_port,
            forwarded: c.forwarded,
            dropped: c.dropped,
            sent: c.sent,
            tx: c.tx,
            tx_completed: c.tx_completed,
            tx_ring_full: c.tx_ring_full,
            send_no_frame: c.send_no_frame,
            tx_backlog_full: c.tx_backlog_full,
            fill_starved: c.fill_starved,
            tx_kicks: c.tx_kicks,
            rx_kicks: c.rx_kicks,
            kernel,
        }
    }

    /// UMEM frames on the free list (neither in a ring nor queued).
    pub fn free_frames(&self) -> usize {
        self.engine.free_frames()
    }

    /// Wait until either socket is readable or `timeout` passes (for an idle
    /// loop). Returns early on a signal.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut fds = [0, 1].map(|p| libc::pollfd {
            fd: self.engine.rings.ports[p].rx.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a live array of two initialised `pollfd`s and the
        // count passed is its length; the descriptors are the sockets' own,
        // open for as long as `self` lives.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

fn umem_config(cfg: &XdpConfig) -> io::Result<UmemConfig> {
    UmemConfig::builder()
        .frame_size(FrameSize::new(cfg.frame_size).map_err(invalid)?)
        .fill_queue_size(QueueSize::new(cfg.fill_size).map_err(invalid)?)
        .comp_queue_size(QueueSize::new(cfg.comp_size).map_err(invalid)?)
        .frame_headroom(0)
        .build()
        .map_err(invalid)
}

/// The UMEM of one queue and its frames.
fn umem(cfg: &XdpConfig, umem_cfg: UmemConfig) -> io::Result<(Umem, Vec<FrameDesc>)> {
    let frame_count = NonZeroU32::new(cfg.frame_count).ok_or_else(|| invalid("frame_count is 0"))?;
    Umem::new(umem_cfg, frame_count, false)
        .map_err(|e| io::Error::other(format!("UMEM of {} frames: {e:?}", cfg.frame_count)))
}

/// Bind `cfg.queue` of both interfaces, trying the attach and bind modes
/// `cfg` allows, best first.
fn open_first(
    cfg: &XdpConfig,
    umem_cfg: UmemConfig,
    ifindex: [u32; 2],
    detach: &Arc<DetachOnDrop>,
) -> io::Result<XdpIo> {
    let names = [iface(&cfg.inside)?, iface(&cfg.outside)?];
    let attach: &[bool] = match cfg.mode {
        XdpMode::Auto => &[true, false],
        XdpMode::Native => &[true],
        XdpMode::Generic => &[false],
    };
    let zc: &[bool] = match cfg.zero_copy {
        ZeroCopy::Auto => &[true, false],
        ZeroCopy::On => &[true],
        ZeroCopy::Off => &[false],
    };
    // The second socket shares the first one's UMEM and inherits its
    // copy/zero-copy and need_wakeup binding (the kernel refuses bind
    // flags on shared sockets), so the zero-copy choice is the outer loop.
    // A failed first bind spoils the UMEM's own socket, hence a fresh
    // UMEM per attempt.
    let mut errors = Vec::new();
    for &zero_copy in zc {
        for &native0 in attach {
            let (umem, frames) = umem(cfg, umem_cfg)?;
            let p0 = match bind(cfg, &umem, &names[0], native0, zero_copy) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(format!("{} {}: {e:?}", cfg.inside, attempt(native0, zero_copy)));
                    detach.detach_all();
                    continue;
                }
            };
            for &native1 in attach {
                let p1 = match bind(cfg, &umem, &names[1], native1, zero_copy) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(format!("{} {}: {e:?}", cfg.outside, attempt(native1, zero_copy)));
                        detach.detach_one(ifindex[1]);
                        continue;
                    }
                };
                return assemble(cfg, umem_cfg, umem, frames, [p0, p1], ifindex, [native0, native1], zero_copy, detach);
            }
            drop(p0);
            detach.detach_all();
        }
    }
    Err(io::Error::other(format!(
        "no AF_XDP binding worked on {} / {} queue {}: {}",
        cfg.inside,
        cfg.outside,
        cfg.queue,
        errors.join("; ")
    )))
}

/// Bind `cfg.queue` of both interfaces in the modes another queue settled
/// on; the XDP programs are already attached.
fn open_same(
    cfg: &XdpConfig,
    umem_cfg: UmemConfig,
    ifindex: [u32; 2],
    native: [bool; 2],
    zero_copy: bool,
    detach: &Arc<DetachOnDrop>,
) -> io::Result<XdpIo> {
    let names = [iface(&cfg.inside)?, iface(&cfg.outside)?];
    let (umem, frames) = umem(cfg, umem_cfg)?;
    let p0 = bind(cfg, &umem, &names[0], native[0], zero_copy)
        .map_err(|e| io::Error::new(e.kind(), format!("{} {}: {e:?}", cfg.inside, attempt(native[0], zero_copy))))?;
    let p1 = bind(cfg, &umem, &names[1], native[1], zero_copy)
        .map_err(|e| io::Error::new(e.kind(), format!("{} {}: {e:?}", cfg.outside, attempt(native[1], zero_copy))))?;
    assemble(cfg, umem_cfg, umem, frames, [p0, p1], ifindex, native, zero_copy, detach)
}

#[allow(clippy::too_many_arguments)]
fn assemble(
    cfg: &XdpConfig,
    umem_cfg: UmemConfig,
    umem: Umem,
    frames: Vec<FrameDesc>,
    ports: [XskPort; 2],
    ifindex: [u32; 2],
    native: [bool; 2],
    zero_copy: bool,
    detach: &Arc<DetachOnDrop>,
) -> io::Result<XdpIo> {
    let modes = [
        port_mode(&cfg.inside, ifindex[0], native[0], &ports[0]),
        port_mode(&cfg.outside, ifindex[1], native[1], &ports[1]),
    ];
    let mode_text = format!("{}; {}", modes[0], modes[1]);
    let rings = XskRings { umem, ports, capacity: umem_cfg.mtu() as usize };
    let mut engine = Engine::new(rings, frames, Budget::split(cfg.frame_count, cfg.fill_size, cfg.tx_size));
    engine.refill()?;
    Ok(XdpIo {
        engine,
        modes,
        mode_text,
        cfg: cfg.clone(),
        requested_zero_copy: zero_copy,
        _detach: Arc::clone(detach),
    })
}

impl PacketIo for XdpIo {
    fn rx_batch(&mut self, max: usize, f: &mut dyn FnMut(&mut [u8], RxMeta) -> Action) -> io::Result<usize> {
        self.engine.rx_batch(max, monotonic_ns(), f)
    }

    /// Copies `frame` into a free UMEM frame and queues it; [`PacketIo::flush`]
    /// transmits. When `port` has its whole TX bound in flight the frame is
    /// dropped and counted ([`XdpStats::send_no_frame`]); a frame larger than a UMEM frame is an
    /// `InvalidInput` error.
    fn send(&mut self, port: PortId, frame: &[u8]) -> io::Result<()> {
        self.engine.send(port, frame).map(|_| ())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.engine.flush()
    }
}

fn validate(cfg: &XdpConfig) -> io::Result<()> {
    if cfg.inside.is_empty() || cfg.outside.is_empty() {
        return Err(invalid("both interfaces must be named"));
    }
    if cfg.inside == cfg.outside {
        return Err(invalid(format!("inside and outside are the same interface ({})", cfg.inside)));
    }
    for (what, v) in [
        ("rx_size", cfg.rx_size),
        ("tx_size", cfg.tx_size),
        ("fill_size", cfg.fill_size),
        ("comp_size", cfg.comp_size),
        ("frame_size", cfg.frame_size),
    ] {
        if !v.is_power_of_two() {
            return Err(invalid(format!("{what} = {v} is not a power of two")));
        }
    }
    if cfg.frame_count < 8 {
        return Err(invalid(format!("frame_count = {} is too small", cfg.frame_count)));
    }
    Ok(())
}

fn invalid(e: impl fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn attempt(native: bool, zero_copy: bool) -> &'static str {
    match (native, zero_copy) {
        (true, true) => "native zero-copy",
        (true, false) => "native copy",
        (false, true) => "generic zero-copy",
        (false, false) => "generic copy",
    }
}

fn iface(name: &str) -> io::Result<Interface> {
    name.parse().map_err(|_| invalid(format!("interface name {name:?} contains NUL")))
}

fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name).map_err(|_| invalid(format!("interface name {name:?} contains NUL")))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")));
    }
    Ok(i)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always
    // available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// One bound port: the socket's rings and its own fill/completion rings.
struct XskPort {
    tx: TxQueue,
    rx: RxQueue,
    fill: FillQueue,
    comp: CompQueue,
    zero_copy: bool,
    need_wakeup: bool,
    tx_size: u32,
}

fn bind(cfg: &XdpConfig, umem: &Umem, name: &Interface, native: bool, zero_copy: bool) -> io::Result<XskPort> {
    let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
    bind |= if zero_copy { BindFlags::XDP_ZEROCOPY } else { BindFlags::XDP_COPY };
    let xdp = if native { XdpFlags::XDP_FLAGS_DRV_MODE } else { XdpFlags::XDP_FLAGS_SKB_MODE };
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(QueueSize::new(cfg.rx_size).map_err(invalid)?)
        .tx_queue_size(QueueSize::new(cfg.tx_size).map_err(invalid)?)
        .xdp_flags(xdp)
        .bind_flags(bind)
        .build();
    // SAFETY: Socket::new requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD when the
    // (interface, queue) pair is already bound with this UMEM. It is not:
    // every queue gets its own UMEM, which binds each interface once
    // (`validate` rejects inside == outside), and a failed attempt's socket
    // is dropped before the next attempt on the same interface.
    let (tx, rx, rings) =
        unsafe { Socket::new(sock_cfg, umem, name, cfg.queue) }.map_err(|e| io::Error::other(format!("{e:?}")))?;
    let (fill, comp) = rings.ok_or_else(|| io::Error::other("socket came without its own fill/completion rings"))?;
    // Shared sockets inherit the binding; ask the kernel what it is.
    let zero_copy = xdp_zero_copy(rx.fd().as_raw_fd()).unwrap_or(zero_copy);
    Ok(XskPort { tx, rx, fill, comp, zero_copy, need_wakeup: true, tx_size: cfg.tx_size })
}

fn port_mode(name: &str, ifindex: u32, native: bool, p: &XskPort) -> PortMode {
    PortMode { interface: name.to_owned(), ifindex, native, zero_copy: p.zero_copy, need_wakeup: p.need_wakeup }
}

/// `XDP_OPTIONS` of a bound socket: whether it runs zero-copy.
fn xdp_zero_copy(fd: i32) -> io::Result<bool> {
    let mut opts: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `opts` is a writable u32 and `len` holds its size, which is the
    // size of the kernel's `struct xdp_options`; `fd` is an open AF_XDP socket.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, libc::XDP_OPTIONS, (&mut opts as *mut u32).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(opts & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Detaches the XDP programs (native and generic) of both interfaces (by
/// index) when dropped.
#[derive(Debug)]
struct DetachOnDrop(Mutex<[u32; 2]>);

impl DetachOnDrop {
    fn set(&self, ifindex: [u32; 2]) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = ifindex;
    }

    fn detach_one(&self, ifindex: u32) {
        for flags in [XdpFlags::XDP_FLAGS_DRV_MODE, XdpFlags::XDP_FLAGS_SKB_MODE] {
            let Ok(i) = i32::try_from(ifindex) else { return };
            // SAFETY: plain netlink request; a null `opts` is allowed (no
            // expected program). Detaching where nothing is attached is a
            // harmless error, ignored.
            let _ = unsafe { libxdp_sys::bpf_xdp_detach(i, flags.bits(), std::ptr::null()) };
        }
    }

    fn detach_all(&self) {
        let ifindex = *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.detach_one(ifindex[0]);
        self.detach_one(ifindex[1]);
    }
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// Ids of the XDP programs attached to `ifindex` in native and generic mode
/// (0: none).
pub fn attached_programs(ifindex: u32) -> io::Result<(u32, u32)> {
    let i = i32::try_from(ifindex).map_err(invalid)?;
    let mut ids = [0u32; 2];
    for (k, flags) in [XdpFlags::XDP_FLAGS_DRV_MODE, XdpFlags::XDP_FLAGS_SKB_MODE].into_iter().enumerate() {
        // SAFETY: `ids[k]` is a writable u32 for the call's duration.
        let r = unsafe { libxdp_sys::bpf_xdp_query_id(i, flags.bits() as i32, &mut ids[k]) };
        if r < 0 {
            return Err(io::Error::from_raw_os_error(-r));
        }
    }
    Ok((ids[0], ids[1]))
}

/// The xsk-rs rings of both ports, for the engine.
struct XskRings {
    // The queues keep the sockets (and, through them, the UMEM) alive.
    ports: [XskPort; 2],
    umem: Umem,
    /// Data bytes per UMEM frame (frame size less the XDP headroom).
    capacity: usize,
}

// Every `unsafe` below is an xsk-rs ring or frame call whose contract is the
// same: the descriptor belongs to `self.umem` (all descriptors come from
// `Umem::new` on it, or back from its rings), and a frame is touched or
// submitted only while the engine holds it — it is never on two rings at
// once, nor on a ring while its bytes are accessed. The engine tracks each
// descriptor's single place; see `engine.rs`.
impl Rings for XskRings {
    type Desc = FrameDesc;

    fn rx_consume(&mut self, port: usize, out: &mut [FrameDesc]) -> usize {
        // SAFETY: see the impl comment; `out` receives descriptors of this UMEM.
        unsafe { self.ports[port].rx.consume(out) }
    }

    fn with_frame<T>(&mut self, d: &mut FrameDesc, f: impl FnOnce(&mut [u8]) -> T) -> T {
        // SAFETY: `d` was just consumed from an RX ring and is in the
        // engine's hands: neither the kernel nor any other descriptor refers
        // to its frame until it is put on a ring again.
        let mut data = unsafe { self.umem.data_mut(d) };
        f(data.contents_mut())
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn write_frame(&mut self, d: &mut FrameDesc, bytes: &[u8]) -> bool {
        // SAFETY: `d` comes from the free list: no ring holds it and nothing
        // else accesses its frame.
        let mut data = unsafe { self.umem.data_mut(d) };
        let mut cur = data.cursor();
        if bytes.len() > cur.buf_len() {
            return false;
        }
        // A recycled descriptor keeps its old length; rewrite from the start.
        cur.set_pos(0);
        cur.write_all(bytes).is_ok()
    }

    fn tx_free(&mut self, port: usize, want: u32) -> u32 {
        self.ports[port].tx.nb_free(want)
    }

    fn tx_produce(&mut self, port: usize, descs: &[FrameDesc]) -> usize {
        // SAFETY: see the impl comment; each of `descs` leaves the engine's
        // hands here and is reused only after the completion ring returns it.
        unsafe { self.ports[port].tx.produce(descs) }
    }

    fn tx_queued(&mut self, port: usize) -> u32 {
        let p = &mut self.ports[port];
        p.tx_size.saturating_sub(p.tx.nb_free_exact())
    }

    fn tx_needs_kick(&self, port: usize) -> bool {
        let p = &self.ports[port];
        !p.zero_copy || p.tx.needs_wakeup()
    }

    fn tx_kick(&mut self, port: usize) -> io::Result<()> {
        self.ports[port].tx.wakeup().map_err(|e| PortFault::wrap(port, e))
    }

    fn fill_free(&mut self, port: usize, want: u32) -> u32 {
        self.ports[port].fill.nb_free(want)
    }

    fn fill_produce(&mut self, port: usize, descs: &[FrameDesc]) -> usize {
        // SAFETY: see the impl comment; each of `descs` comes from the free
        // list and is reused only after an RX ring returns it.
        unsafe { self.ports[port].fill.produce(descs) }
    }

    fn fill_needs_wakeup(&self, port: usize) -> bool {
        self.ports[port].fill.needs_wakeup()
    }

    fn rx_kick(&mut self, port: usize) -> io::Result<()> {
        let p = &mut self.ports[port];
        p.fill.wakeup(p.rx.fd_mut(), 0).map_err(|e| PortFault::wrap(port, e))
    }

    fn comp_consume(&mut self, port: usize, out: &mut [FrameDesc]) -> usize {
        // SAFETY: see the impl comment; `out` receives descriptors of this UMEM.
        unsafe { self.ports[port].comp.consume(out) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_validated() {
        let ok = XdpConfig { inside: "a".into(), outside: "b".into(), ..XdpConfig::default() };
        assert!(validate(&ok).is_ok());
        for bad in [
            XdpConfig { outside: "a".into(), ..ok.clone() },
            XdpConfig { inside: String::new(), ..ok.clone() },
            XdpConfig { tx_size: 1000, ..ok.clone() },
            XdpConfig { frame_size: 3000, ..ok.clone() },
            XdpConfig { frame_count: 4, ..ok.clone() },
        ] {
            assert_eq!(validate(&bad).unwrap_err().kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn missing_interface_is_not_found() {
        let cfg = XdpConfig { inside: "ctw-nonexist0".into(), outside: "ctw-nonexist1".into(), ..XdpConfig::default() };
        assert_eq!(XdpIo::open(&cfg).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn monotonic_clock_moves() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
