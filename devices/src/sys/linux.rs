//! Linux: memfd for guest memory, getrandom(2) for entropy.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub fn create_shared_memory_fd() -> io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal; the result is checked.
    let fd = unsafe {
        libc::memfd_create(
            c"vmd-guest-memory".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Forbids shrinking, so no process holding the fd can make our mapping
/// fault (SIGBUS) under a device model.
pub fn seal_size(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, no pointers involved.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn fill_random(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: writes at most rest.len() bytes into rest.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            done += n as usize;
        } else if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            // getrandom(2) only fails for bad arguments; never hand out
            // predictable bytes as entropy.
            panic!("getrandom failed: {}", io::Error::last_os_error());
        }
    }
}
