use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::error::{Error, Result};
use crate::wire::Wire;

/// Issues `request` on `fd` with `arg` as its in/out parameter block.
///
/// `T` is one of the `repr(C)` vmm(4) parameter structs whose size is
/// encoded in `request`, so the kernel copies exactly `size_of::<T>()`
/// bytes in and out of `arg`.
pub(crate) fn ioctl<T: Wire>(
    fd: BorrowedFd<'_>,
    name: &'static str,
    request: u64,
    arg: &mut T,
) -> Result<()> {
    debug_assert_eq!(((request >> 16) & 0x1fff) as usize, T::SIZE);
    // SAFETY: `fd` is a live descriptor borrowed for this call; `arg` is an
    // exclusive reference to a repr(C) struct of exactly the size the
    // request encodes, valid for reads and writes for the whole call. Any
    // pointers inside it (vrp_exit, vip_info) were set by the caller from
    // references that outlive this call.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as libc::c_ulong,
            arg as *mut T as *mut libc::c_void,
        )
    };
    if rc == -1 {
        return Err(Error::Ioctl {
            request: name,
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}
