use std::os::fd::BorrowedFd;

use crate::error::{Error, Result};
use crate::wire::Wire;

/// Hosts without vmm(4): every request fails cleanly.
pub(crate) fn ioctl<T: Wire>(
    _fd: BorrowedFd<'_>,
    name: &'static str,
    _request: u64,
    _arg: &mut T,
) -> Result<()> {
    Err(Error::Unsupported { request: name })
}
