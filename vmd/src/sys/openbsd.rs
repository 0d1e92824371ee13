use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The uid and gid of the process at the other end of a Unix socket.
pub fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: getpeereid writes two integers we own.
    if unsafe { libc::getpeereid(sock.as_raw_fd(), &mut uid, &mut gid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((uid, gid))
}

use crate::privops::PrivOp;

/// Carries out a priv request. The bridge(4)/veb(4) ioctls come with the
/// network work; until then the request fails with a clear error.
pub fn priv_op(op: &PrivOp) -> io::Result<()> {
    Err(io::Error::other(format!(
        "{op:?}: not implemented on OpenBSD yet"
    )))
}
