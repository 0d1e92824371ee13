//! Host-specific pieces of the daemon: everything else is the same on
//! OpenBSD and Linux.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub use linux::*;
#[cfg(target_os = "openbsd")]
mod openbsd;
#[cfg(target_os = "openbsd")]
pub use openbsd::*;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The user vmd's unprivileged processes run as.
pub const VMD_USER: &str = "_vmd";
/// An empty directory to chroot the processes that need no files into.
pub const EMPTY_DIR: &str = "/var/empty";

/// A user's ids and home, from the password database.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

pub fn lookup_user(name: &str) -> Option<User> {
    let cname = CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy
    // the fields out before any other call that could overwrite it.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            return None;
        }
        Some(User {
            name: name.to_string(),
            uid: (*pw).pw_uid,
            gid: (*pw).pw_gid,
        })
    }
}

/// A group's id, from the group database.
pub fn lookup_group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 65536];
    // SAFETY: getgrnam_r fills `grp` inside `buf`, whose length we pass;
    // on success `result` points at `grp`.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        if libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        ) != 0
            || result.is_null()
        {
            return None;
        }
        Some(grp.gr_gid)
    }
}

/// The kernel's release (uname -r; kern.osrelease on OpenBSD).
pub fn os_release() -> String {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == -1 {
            return "unknown".to_string();
        }
        CStr::from_ptr(u.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

/// Whether `uid`'s primary group is `gid`, or the group lists the user
/// (vm_checkperm's group check).
pub fn user_in_group(uid: u32, gid: u32) -> bool {
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, whose length we pass;
    // on success `result` points at `pwd`.
    let (name, primary) = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) != 0
            || result.is_null()
        {
            return false;
        }
        (CStr::from_ptr(pwd.pw_name).to_owned(), pwd.pw_gid)
    };
    if primary == gid {
        return true;
    }
    let mut gbuf = vec![0 as libc::c_char; 65536];
    // SAFETY: as above, getgrgid_r fills `grp` inside `gbuf`; gr_mem is a
    // NULL-terminated array of C strings in that buffer.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        if libc::getgrgid_r(gid, &mut grp, gbuf.as_mut_ptr(), gbuf.len(), &mut result) != 0
            || result.is_null()
        {
            return false;
        }
        let mut member = grp.gr_mem;
        while !member.is_null() && !(*member).is_null() {
            if CStr::from_ptr(*member) == name.as_c_str() {
                return true;
            }
            member = member.add(1);
        }
    }
    false
}

/// The account unprivileged processes use: `_vmd`, or on hosts without it
/// (most Linux systems), `nobody`.
pub fn unprivileged_user() -> io::Result<User> {
    lookup_user(VMD_USER)
        .or_else(|| lookup_user("nobody"))
        .ok_or_else(|| io::Error::other("neither _vmd nor nobody exists"))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// chroot into `dir` (if given) and become `user` for good.
pub fn drop_privileges(user: &User, dir: Option<&str>) -> io::Result<()> {
    if let Some(dir) = dir {
        if std::fs::metadata(dir).is_err() {
            std::fs::create_dir_all(dir)?;
        }
        let c = CString::new(dir).map_err(io::Error::other)?;
        // SAFETY: plain syscalls on a valid C string.
        unsafe {
            check(libc::chroot(c.as_ptr()), "chroot")?;
            check(libc::chdir(c"/".as_ptr()), "chdir(\"/\")")?;
        }
    }
    let gid = user.gid as libc::gid_t;
    // SAFETY: plain syscalls with integer arguments and a one-element
    // group list that lives for the call.
    unsafe {
        check(libc::setgroups(1, &gid), "setgroups")?;
        check(libc::setresgid(gid, gid, gid), "setresgid")?;
        check(
            libc::setresuid(
                user.uid as libc::uid_t,
                user.uid as libc::uid_t,
                user.uid as libc::uid_t,
            ),
            "setresuid",
        )?;
    }
    Ok(())
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe just loses
        // a duplicate notification.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// Signals delivered as bytes on a non-blocking pipe, so an event loop can
/// wait for them like any other input.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    pub fn install(signals: &[libc::c_int]) -> io::Result<SignalPipe> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: pipe fills two fds we then own.
        check(unsafe { libc::pipe(fds.as_mut_ptr()) }, "pipe")?;
        // SAFETY: fds are fresh and ours.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            // SAFETY: fcntl on our own fds.
            unsafe {
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        for &sig in signals {
            // SAFETY: installs a handler that only calls write(2).
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                check(libc::sigaction(sig, &sa, std::ptr::null_mut()), "sigaction")?;
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// The signals that arrived since the last call.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut buf = [0u8; 64];
        let mut out = Vec::new();
        loop {
            // SAFETY: reading into a local buffer.
            let n =
                unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
        out
    }
}
