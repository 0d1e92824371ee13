use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The uid and gid of the process at the other end of a Unix socket.
pub fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.gid))
}

use std::process::Command;

use crate::privops::PrivOp;

/// Runs `ip` with `args`; its complaint becomes the error.
fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// Asks the kernel rather than /sys, which shows another network
/// namespace's interfaces unless it was mounted for this one.
fn exists(ifname: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Carries out a priv request with Linux's equivalents: switches are
/// bridges, descriptions are aliases. Interface groups and routing
/// domains have no Linux counterpart and are refused, not faked.
pub fn priv_op(op: &PrivOp) -> io::Result<()> {
    match op {
        PrivOp::Describe { ifname, descr } => ip(&["link", "set", "dev", ifname, "alias", descr]),
        PrivOp::Exists { ifname } => {
            if exists(ifname) {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("bridge \"{ifname}\" does not exist"),
                ))
            }
        }
        PrivOp::AddMember { bridge, member } => {
            ip(&["link", "set", "dev", member, "master", bridge])
        }
        PrivOp::Up { ifname } => ip(&["link", "set", "dev", ifname, "up"]),
        PrivOp::Down { ifname } => ip(&["link", "set", "dev", ifname, "down"]),
        PrivOp::Address {
            ifname,
            addr,
            prefix,
        } => ip(&[
            "addr",
            "replace",
            &format!("{addr}/{prefix}"),
            "dev",
            ifname,
        ]),
        PrivOp::Group { ifname, group } => Err(io::Error::other(format!(
            "{ifname}: interface group {group}: not supported on Linux"
        ))),
        PrivOp::Rdomain { ifname, rdomain } => {
            if *rdomain == 0 {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{ifname}: rdomain {rdomain}: not supported on Linux"
                )))
            }
        }
    }
}

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x400454ca;

/// Creates a tap interface (IFF_TAP | IFF_NO_PI). With an empty `name` the
/// kernel picks one. Returns the fd, which keeps the interface alive, and
/// its name.
pub fn open_tap(name: &str) -> io::Result<(std::os::fd::OwnedFd, String)> {
    use std::os::fd::OwnedFd;
    if name.len() >= 16 {
        return Err(io::Error::other(format!("tap name too long: {name}")));
    }
    let tun = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which fits in
    // `ifr`; the fd is an open /dev/net/tun.
    if unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let end = ifr[..16].iter().position(|&b| b == 0).unwrap_or(16);
    let actual = String::from_utf8_lossy(&ifr[..end]).into_owned();
    Ok((OwnedFd::from(tun), actual))
}

/// Linux has no pledge or unveil: the processes rely on the chroot and the
/// unprivileged user set up by `drop_privileges`.
pub fn sandbox(_role: crate::proc::ProcId, _exe: &str) -> io::Result<()> {
    Ok(())
}

/// The hypervisor device the vmm process hands to vm processes.
pub fn open_hypervisor() -> io::Result<std::os::fd::OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")?;
    Ok(f.into())
}

/// vmd's answer for an instance name that is taken: OpenBSD's EPROCLIM,
/// which Linux lacks; EEXIST says the same to a Linux vmctl.
pub const ENAME_TAKEN: i32 = libc::EEXIST;

/// VM-MIB's vmHvSoftware: the hypervisor behind /dev/kvm.
pub const HYPERVISOR_SOFTWARE: &str = "Linux KVM";
