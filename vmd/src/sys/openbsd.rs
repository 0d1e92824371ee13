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
