//! OpenBSD: an unlinked shm_open(3) object for guest memory (as vmd does),
//! arc4random_buf(3) for entropy.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

pub fn create_shared_memory_fd() -> io::Result<OwnedFd> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    for _ in 0..64 {
        let mut r = [0u8; 4];
        fill_random(&mut r);
        let name = format!(
            "/vmd-rs.{}.{}.{:08x}\0",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            u32::from_ne_bytes(r)
        );
        // SAFETY: name is NUL-terminated; the result is checked.
        let fd = unsafe {
            libc::shm_open(
                name.as_ptr().cast(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o600,
            )
        };
        if fd == -1 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::AlreadyExists {
                continue;
            }
            return Err(err);
        }
        // SAFETY: shm_open returned a new descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: same NUL-terminated name; the object lives on through fd.
        unsafe { libc::shm_unlink(name.as_ptr().cast()) };
        return Ok(owned);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free shared memory name",
    ))
}

/// OpenBSD has no file seals; the fd is only ever passed to our own children.
pub fn seal_size(_fd: &OwnedFd) -> io::Result<()> {
    Ok(())
}

pub fn fill_random(buf: &mut [u8]) {
    // SAFETY: writes exactly buf.len() bytes into buf.
    unsafe { libc::arc4random_buf(buf.as_mut_ptr().cast(), buf.len()) }
}
