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

use std::ffi::CString;

use crate::proc::ProcId;

fn pledge(promises: &str) -> io::Result<()> {
    let p = CString::new(promises).map_err(io::Error::other)?;
    // SAFETY: pledge with a valid promise string and no exec promises.
    if unsafe { libc::pledge(p.as_ptr(), std::ptr::null()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn unveil(path: Option<&str>, perms: Option<&str>) -> io::Result<()> {
    let path = path
        .map(CString::new)
        .transpose()
        .map_err(io::Error::other)?;
    let perms = perms
        .map(CString::new)
        .transpose()
        .map_err(io::Error::other)?;
    // SAFETY: unveil with valid C strings or nulls (which lock the list).
    let rc = unsafe {
        libc::unveil(
            path.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            perms.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restricts this process to what its role needs, with the promises the
/// C vmd makes in each process. `exe` is vmd's own path, which vmm execs.
pub fn sandbox(role: ProcId, exe: &str) -> io::Result<()> {
    match role {
        ProcId::Parent => {
            pledge("stdio rpath wpath proc tty recvfd sendfd getpw chown fattr flock")
        }
        ProcId::Control => pledge("stdio unix recvfd sendfd"),
        ProcId::Vmm => {
            unveil(Some(exe), Some("x"))?;
            unveil(None, None)?;
            pledge("stdio vmm sendfd recvfd proc exec")
        }
        // Interface ioctls are not allowed under pledge, so priv, like
        // vmd's, runs without one.
        ProcId::Priv => Ok(()),
        ProcId::Agentx => pledge("stdio recvfd unix"),
    }
}

/// The hypervisor device the vmm process hands to vm processes.
pub fn open_hypervisor() -> io::Result<std::os::fd::OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vmm")?;
    Ok(f.into())
}

/// Opens tap(4) `name`, or with "tap%d" the first free one, as vmd's
/// opentap: returns the fd and the interface's name.
pub fn open_tap(name: &str) -> io::Result<(std::os::fd::OwnedFd, String)> {
    let open = |n: &str| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/{n}"))
            .map(|f| (std::os::fd::OwnedFd::from(f), n.to_string()))
    };
    if name != "tap%d" {
        return open(name);
    }
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for i in 0..256 {
        match open(&format!("tap{i}")) {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// vmd's answer for an instance name that is taken.
pub const ENAME_TAKEN: i32 = libc::EPROCLIM;

/// VM-MIB's vmHvSoftware: vmm(4), as C vmd reports it.
pub const HYPERVISOR_SOFTWARE: &str = "OpenBSD VMM";
