//! The only socket code of the harness: entering a network namespace and
//! AF_PACKET raw sockets (transmit with `sendmmsg`, receive with
//! `recvmmsg`), through libc.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Move the calling thread into the network namespace `ns` (as made by
/// `ip netns add`). Only this thread changes namespace.
pub(crate) fn enter_netns(ns: &str) -> io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: `f` is an open namespace file for the duration of the call;
    // setns only changes the network namespace of the calling thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the process runs as root.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// An AF_PACKET raw socket bound to one interface of the calling thread's
/// namespace.
pub(crate) struct PacketSocket {
    fd: OwnedFd,
}

const BATCH: usize = 64;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl PacketSocket {
    /// `rx`: receive every frame of the interface; otherwise transmit only,
    /// bypassing the qdisc.
    pub(crate) fn open(ifname: &str, rx: bool) -> io::Result<PacketSocket> {
        let proto = if rx { (libc::ETH_P_ALL as u16).to_be() } else { 0 };
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = cvt(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, i32::from(proto)) })?;
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: `name` is a valid NUL-terminated string for the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll and the length is its size.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        let s = PacketSocket { fd };
        if rx {
            s.setopt(libc::SOL_SOCKET, libc::SO_RCVBUF, 8 << 20)?;
        } else {
            s.setopt(libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
            s.setopt(libc::SOL_SOCKET, libc::SO_SNDBUF, 8 << 20)?;
        }
        Ok(s)
    }

    fn setopt(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: `v` is a valid c_int and the length is its size.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&raw const v).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    /// Send up to 64 frames with one `sendmmsg`; returns how many were sent
    /// (0 when the socket buffer is full).
    pub(crate) fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let n = frames.len().min(BATCH);
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, f) in frames[..n].iter().enumerate() {
            iov[i] = libc::iovec { iov_base: f.as_ptr() as *mut libc::c_void, iov_len: f.len() };
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` point at `iov[..n]`, which point at frames that
        // outlive the call; the kernel only reads them.
        let r =
            unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(r as usize)
    }

    /// Receive the frames pending (at most `bufs.len()`, at most 64) into
    /// `lens`, without waiting.
    pub(crate) fn recv_batch(&self, bufs: &mut [[u8; 2048]], lens: &mut Vec<usize>) -> io::Result<()> {
        lens.clear();
        let n = bufs.len().min(BATCH);
        // SAFETY: iovec and mmsghdr are plain data; all-zero is valid.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, b) in bufs[..n].iter_mut().enumerate() {
            iov[i] = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs[..n]` point at `iov[..n]`, which point at buffers we
        // hold mutably for the call; the kernel writes at most iov_len bytes.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
                _ => Err(e),
            };
        }
        lens.extend(msgs[..r as usize].iter().map(|m| m.msg_len as usize));
        Ok(())
    }
}
