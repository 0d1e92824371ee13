//! Privilege separation as vmd's proc.c: the parent re-executes this binary
//! once per process role with `-P <title>` in front of its own arguments,
//! and the child finds its channel to the parent on fd 3.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use imsg::ImsgBuf;

/// The process roles, numbered as `enum privsep_procid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ProcId {
    Parent = 0,
    Control = 1,
    Agentx = 2,
    Vmm = 3,
    Priv = 4,
}

/// The children the parent starts, in vmd's order.
pub const CHILDREN: [ProcId; 4] = [ProcId::Control, ProcId::Priv, ProcId::Vmm, ProcId::Agentx];

/// Where a child finds its channel to the parent (PROC_PARENT_SOCK_FILENO).
pub const PARENT_SOCK_FD: i32 = 3;

impl ProcId {
    pub fn title(self) -> &'static str {
        match self {
            ProcId::Parent => "vmd",
            ProcId::Control => "control",
            ProcId::Agentx => "agentx",
            ProcId::Vmm => "vmm",
            ProcId::Priv => "priv",
        }
    }

    pub fn from_title(title: &str) -> Option<ProcId> {
        CHILDREN.into_iter().find(|p| p.title() == title)
    }
}

/// A started child and the parent's end of its channel.
pub struct ChildProc {
    pub id: ProcId,
    pub process: Child,
    pub chan: ImsgBuf,
}

/// Starts every child role: `exe -P <title> args...` with its socket on
/// fd 3.
pub fn spawn_children(exe: &str, args: &[String]) -> io::Result<Vec<ChildProc>> {
    let mut out = Vec::new();
    for id in CHILDREN {
        let (ours, theirs) = UnixStream::pair()?;
        let theirs_fd = theirs.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg("-P").arg(id.title()).args(args);
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (dup2, fcntl); `theirs_fd` is open in the child.
        unsafe {
            cmd.pre_exec(move || {
                if theirs_fd == PARENT_SOCK_FD {
                    if libc::fcntl(theirs_fd, libc::F_SETFD, 0) == -1 {
                        return Err(io::Error::last_os_error());
                    }
                } else if libc::dup2(theirs_fd, PARENT_SOCK_FD) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = cmd.spawn()?;
        drop(theirs);
        let mut chan = ImsgBuf::new(ours);
        chan.allow_fdpass();
        chan.set_nonblocking(true)
            .map_err(|e| io::Error::other(e.to_string()))?;
        out.push(ChildProc { id, process, chan });
    }
    Ok(out)
}

/// A child's channel to the parent.
pub fn parent_channel() -> io::Result<ImsgBuf> {
    // SAFETY: fd 3 was set up by the parent for this purpose and nothing
    // else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(PARENT_SOCK_FD) };
    // Fail early if fd 3 is not a socket (started by hand with -P).
    let sock = UnixStream::from(fd);
    sock.peer_addr()?;
    let mut chan = ImsgBuf::new(sock);
    chan.allow_fdpass();
    chan.set_nonblocking(true)
        .map_err(|e| io::Error::other(e.to_string()))?;
    // SAFETY: setting close-on-exec on our own fd.
    unsafe { libc::fcntl(PARENT_SOCK_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(chan)
}
