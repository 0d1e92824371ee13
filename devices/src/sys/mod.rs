//! The few host calls device models need: shared memory for guest RAM,
//! mapping it, vectored file I/O into it, and host entropy.
//!
//! Everything host-specific sits in `linux.rs` / `openbsd.rs`; the POSIX
//! parts both share are here.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as host;

#[cfg(target_os = "openbsd")]
mod openbsd;
#[cfg(target_os = "openbsd")]
use openbsd as host;

/// Creates an anonymous shared-memory file of `size` bytes that can be
/// passed to other processes and mapped there.
pub fn create_shared_memory(size: usize) -> io::Result<OwnedFd> {
    let fd = host::create_shared_memory_fd()?;
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "memory size too large"))?;
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len) } == -1 {
        return Err(io::Error::last_os_error());
    }
    host::seal_size(&fd)?;
    Ok(fd)
}

/// Maps `len` bytes of `fd` from `offset`, shared and read-write.
pub(crate) fn map_shared(fd: BorrowedFd<'_>, offset: u64, len: usize) -> io::Result<NonNull<u8>> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping offset too large"))?;
    // SAFETY: a fresh mapping chosen by the kernel (no MAP_FIXED), so no
    // existing Rust object is affected; the result is checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            off,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))
}

/// Unmaps a mapping made by [`map_shared`].
///
/// # Safety
/// `ptr`/`len` must be exactly a live mapping from [`map_shared`] and no
/// reference into it may be used afterwards.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

/// Fills `buf` with bytes from the host's random number generator.
pub fn fill_random(buf: &mut [u8]) {
    host::fill_random(buf)
}

/// `preadv(2)`: reads from `fd` at `offset` into the buffers.
///
/// # Safety
/// Every iovec must describe writable memory that stays mapped for the call.
pub(crate) unsafe fn preadv(
    fd: BorrowedFd<'_>,
    iov: &[libc::iovec],
    offset: u64,
) -> io::Result<usize> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    let cnt = libc::c_int::try_from(iov.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
    // SAFETY: guaranteed by the caller; the count matches the slice.
    let n = unsafe { libc::preadv(fd.as_raw_fd(), iov.as_ptr(), cnt, off) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `pwritev(2)`: writes the buffers to `fd` at `offset`.
///
/// # Safety
/// Every iovec must describe readable memory that stays mapped for the call.
pub(crate) unsafe fn pwritev(
    fd: BorrowedFd<'_>,
    iov: &[libc::iovec],
    offset: u64,
) -> io::Result<usize> {
    let off = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file offset too large"))?;
    let cnt = libc::c_int::try_from(iov.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
    // SAFETY: guaranteed by the caller; the count matches the slice.
    let n = unsafe { libc::pwritev(fd.as_raw_fd(), iov.as_ptr(), cnt, off) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
