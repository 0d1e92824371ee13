//! sendmsg/recvmsg with SCM_RIGHTS. The libc crate gives the same CMSG_*
//! helpers on Linux and OpenBSD, so one implementation serves both.
//!
//! Bytes with no fd beside them go through plain `send`/`recv`, as C's
//! imsg uses `writev`/`read` without fd passing: the kernel's
//! `sendmsg`/`recvmsg` paths cost about 5 ns more per 64-byte message
//! (Linux, a batch of 64 per call), for a message header that is empty.

use std::io::{self, IoSlice};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Room for a few fds, so a peer that sends more than one is detected
/// rather than having the extras silently lost in the kernel.
const MAX_FDS_PER_RECV: usize = 4;

/// A control buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

const RECV_FLAGS: libc::c_int = libc::MSG_CMSG_CLOEXEC;

/// What one recvmsg returned.
pub(crate) struct Received {
    pub(crate) len: usize,
    pub(crate) fds: Vec<OwnedFd>,
    /// The kernel had more control data than fit: fds were lost.
    pub(crate) ctrunc: bool,
}

/// One read into `buf`: a recvmsg with room for fds if `want_fds`, else a
/// recv, with which the kernel discards any fd a peer sends (the
/// message's fd mark then shows it missing).
pub(crate) fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], want_fds: bool) -> io::Result<Received> {
    if !want_fds {
        // SAFETY: `buf` is valid for writes of its length during the call.
        let n = retry(|| unsafe {
            libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
        })?;
        return Ok(Received {
            len: n,
            fds: Vec::new(),
            ctrunc: false,
        });
    }
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: CMSG_SPACE only computes a size.
    let space =
        unsafe { libc::CMSG_SPACE((size_of::<RawFd>() * MAX_FDS_PER_RECV) as u32) } as usize;
    debug_assert!(space <= cbuf.0.len());
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at a live iovec over `buf` and at `cbuf`, both
    // valid for the lengths given, for the duration of the call.
    let n = retry(|| unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, RECV_FLAGS) })?;
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG_*
    // walkers stay within them, and each SCM_RIGHTS payload is an array of
    // fds that are now ours to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                for i in 0..bytes / size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok(Received {
        len: n,
        fds,
        ctrunc: msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// A peer that went away is an error to report, not a SIGPIPE.
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

/// Whether a send may block on a blocking socket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendMode {
    /// As the socket is set.
    Wait,
    /// Never block: a full socket is `WouldBlock`.
    DontWait,
}

/// One send of `iov`, with `fd` attached if given.
pub(crate) fn send(
    sock: BorrowedFd<'_>,
    iov: &[IoSlice<'_>],
    fd: Option<BorrowedFd<'_>>,
    mode: SendMode,
) -> io::Result<usize> {
    let flags = match mode {
        SendMode::Wait => SEND_FLAGS,
        SendMode::DontWait => SEND_FLAGS | libc::MSG_DONTWAIT,
    };
    if let ([one], None) = (iov, fd) {
        // SAFETY: `one` is valid for reads of its length during the call.
        return retry(|| unsafe {
            libc::send(sock.as_raw_fd(), one.as_ptr().cast(), one.len(), flags)
        });
    }
    let mut cbuf = CmsgBuf([0; 64]);
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    // IoSlice is ABI-compatible with iovec; sendmsg does not write it.
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE/CMSG_LEN compute sizes; the header and data
        // written lie within `cbuf`, which is aligned for cmsghdr.
        unsafe {
            let space = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as usize;
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
        }
    }
    // SAFETY: msg points at the caller's iovecs and at `cbuf`, valid for
    // the lengths given for the duration of the call.
    retry(|| unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) })
}

/// Runs a byte-counting system call until it is not interrupted.
#[inline]
fn retry(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Waits until `sock` is readable (`write == false`) or writable.
pub(crate) fn wait(sock: BorrowedFd<'_>, write: bool) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: if write { libc::POLLOUT } else { libc::POLLIN },
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, -1) };
        if n >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub(crate) fn set_nonblocking(sock: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a valid fd with integer arguments.
    unsafe {
        let flags = libc::fcntl(sock.as_raw_fd(), libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if libc::fcntl(sock.as_raw_fd(), libc::F_SETFL, flags) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
