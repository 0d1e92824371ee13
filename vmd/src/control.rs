//! The control process: owns the control socket, checks who is asking, and
//! relays requests to the parent and answers back, as vmd's control.c.
//!
//! Every request is checked for size and permission before it is passed
//! on. Clients that wait for a VM to stop (`vmctl wait`, `stop -w`) are
//! remembered here, as control.c's notify queue: the parent's answer to
//! their request is held back unless it is an error, and the VM's
//! termination event goes to every client waiting for that VM. A malformed request gets IMSG_CTL_FAIL and the connection is closed;
//! the process itself never stops because of what a client sent.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;

use imsg::{Imsg, ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};

use vm::abi::vmop::VMOP_WAIT;

use crate::imsg_types::*;
use crate::sys;

/// Where vmctl finds vmd. Tests and unusual setups override it with the
/// environment variable `VMD_CONTROL_SOCKET` (read by vmd and vmctl alike).
pub const SOCKET_NAME: &str = "/var/run/vmd.sock";
const LISTEN_BACKLOG: i32 = 5;

pub fn socket_path() -> String {
    std::env::var("VMD_CONTROL_SOCKET").unwrap_or_else(|_| SOCKET_NAME.to_string())
}

const PARENT: Token = Token(0);
const LISTENER: Token = Token(1);
const SIGNALS: Token = Token(2);

struct Conn {
    chan: ImsgBuf,
    uid: u32,
}

/// A client waiting for a VM to stop: its connection and the VM's id (0
/// until the parent's answer names the VM it asked for by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Waiter {
    conn: u32,
    vmid: u32,
}

/// Why a client request was refused.
#[derive(Debug)]
enum Refusal {
    /// Answer IMSG_CTL_FAIL with this errno, then close.
    Fail(i32),
    /// Close without an answer.
    Close,
}

/// Creates the socket (as root, before dropping privileges), mode 0660 as
/// vmd's, owned by vm.conf's `socket owner` (uid, gid) if it has one.
pub fn bind_socket(path: &str, owner: Option<(u32, u32)>) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("unlink {path}: {e}"))),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("bind: {path}: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| io::Error::new(e.kind(), format!("chown: {path}: {e}")))?;
    }
    // std listens with a large backlog; vmd uses 5.
    // SAFETY: listen on our own socket.
    unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

pub fn run(
    mut parent: ImsgBuf,
    listener: UnixListener,
    signals: sys::SignalPipe,
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut parent, PARENT, Interest::READABLE)?;
    let mut listener = mio::net::UnixListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    poll.registry().register(
        &mut mio::unix::SourceFd(&signals.fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    let mut conns: HashMap<u32, Conn> = HashMap::new();
    let mut waiters: Vec<Waiter> = Vec::new();
    let mut events = Events::with_capacity(64);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for sig in signals.drain() {
                        if sig == libc::SIGTERM || sig == libc::SIGINT {
                            log::info!("control exiting, pid {}", std::process::id());
                            return Ok(());
                        }
                    }
                }
                PARENT => {
                    if !from_parent(&mut parent, &mut conns, &mut waiters)? {
                        log::info!("control exiting, pid {}", std::process::id());
                        return Ok(());
                    }
                }
                LISTENER => accept(&listener, &poll, &mut conns),
                Token(t) => {
                    let id = t as u32;
                    let keep = match conns.get_mut(&id) {
                        Some(c) => {
                            from_client(id, c, &mut parent, &mut waiters) && c.chan.write().is_ok()
                        }
                        None => continue,
                    };
                    if !keep {
                        close(&poll, &mut conns, id);
                        // A later connection may get the same fd number.
                        waiters.retain(|w| w.conn != id);
                    }
                }
            }
        }
        parent.flush().map_err(io::Error::other)?;
    }
}

fn accept(listener: &mio::net::UnixListener, poll: &Poll, conns: &mut HashMap<u32, Conn>) {
    loop {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                log::warn!("control_accept: accept: {e}");
                return;
            }
        };
        let uid = match sys::peer_credentials(stream.as_fd()) {
            Ok((uid, _)) => uid,
            Err(e) => {
                log::warn!("control_accept: failed to get peer credentials: {e}");
                continue;
            }
        };
        // As in vmd, a connection is known by its fd number, which is the
        // peer id of the requests it makes.
        let id = stream.as_raw_fd() as u32;
        let std_stream: std::os::unix::net::UnixStream = stream.into();
        let mut chan = ImsgBuf::new(std_stream);
        chan.allow_fdpass();
        if chan.set_nonblocking(true).is_err() {
            continue;
        }
        if let Err(e) = poll.registry().register(
            &mut chan,
            Token(id as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("control_accept: {e}");
            continue;
        }
        conns.insert(id, Conn { chan, uid });
    }
}

fn close(poll: &Poll, conns: &mut HashMap<u32, Conn>, id: u32) {
    if let Some(mut c) = conns.remove(&id) {
        let _ = poll.registry().deregister(&mut c.chan);
    }
}

/// Reads a client's requests. Returns false to close the connection.
fn from_client(id: u32, c: &mut Conn, parent: &mut ImsgBuf, waiters: &mut Vec<Waiter>) -> bool {
    loop {
        match c.chan.read() {
            Ok(ReadStatus::Data) => {}
            Ok(ReadStatus::WouldBlock) => break,
            Ok(ReadStatus::Eof) => return false,
            Err(e) => {
                log::debug!("control_dispatch_imsg: fd {id}: {e}");
                return false;
            }
        }
    }
    loop {
        let msg = match c.chan.get() {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(_) => return false,
        };
        if let Err(r) = relay(id, c.uid, msg, parent, waiters) {
            if let Refusal::Fail(errno) = r {
                let _ = c
                    .chan
                    .compose(IMSG_CTL_FAIL, 0, 0, None, &errno.to_ne_bytes());
                let _ = c.chan.flush();
            }
            return false;
        }
    }
    let _ = c.chan.write();
    true
}

/// A client request, checked: what goes on to the parent.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub type_: u32,
    /// The payload as the parent gets it (with the requester's uid filled
    /// in where the request carries one).
    pub data: Vec<u8>,
    /// Whether an fd that came with it goes along (vmctl start's kernel).
    pub keeps_fd: bool,
}

/// Why a client request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Answer IMSG_CTL_FAIL with this errno, then close.
    Fail(i32),
    /// Close without an answer (an unknown request, as vmd).
    Close,
}

/// Checks one request from a client whose uid the kernel reported: its
/// type, who may send it, and its exact payload size. Pure, so it can be
/// fuzzed; `relay` acts on the result.
pub fn check_request(type_: u32, data: &[u8], uid: u32) -> Result<Checked, Rejected> {
    let open_to_all = matches!(
        type_,
        IMSG_VMDOP_GET_INFO_VM_REQUEST
            | IMSG_VMDOP_WAIT_VM_REQUEST
            | IMSG_VMDOP_TERMINATE_VM_REQUEST
            | IMSG_VMDOP_START_VM_REQUEST
            | IMSG_VMDOP_PAUSE_VM
            | IMSG_VMDOP_UNPAUSE_VM
    );
    let known = open_to_all
        || matches!(
            type_,
            IMSG_CTL_VERBOSE | IMSG_CTL_RESET | IMSG_VMDOP_LOAD | IMSG_VMDOP_RELOAD
        );
    if !known {
        return Err(Rejected::Close);
    }
    if !open_to_all && uid != 0 {
        return Err(Rejected::Fail(libc::EPERM));
    }
    let exact = |len: usize| {
        if data.len() == len {
            Ok(())
        } else {
            Err(Rejected::Fail(libc::EINVAL))
        }
    };
    let checked = |data: Vec<u8>, keeps_fd: bool| Checked {
        type_,
        data,
        keeps_fd,
    };
    Ok(match type_ {
        IMSG_CTL_VERBOSE => {
            exact(4)?;
            checked(data.to_vec(), false)
        }
        IMSG_CTL_RESET | IMSG_VMDOP_LOAD | IMSG_VMDOP_RELOAD => checked(data.to_vec(), false),
        IMSG_VMDOP_START_VM_REQUEST => {
            use vmm_sys::Wire;
            exact(vm::abi::VmopCreateParams::SIZE)?;
            let mut vmc = vm::abi::VmopCreateParams::get(data);
            // The owner is whoever the kernel says is asking.
            vmc.vmc_owner.uid = uid;
            vmc.vmc_owner.gid = -1;
            checked(vmc.to_bytes(), true)
        }
        IMSG_VMDOP_GET_INFO_VM_REQUEST => checked(Vec::new(), false),
        _ => {
            // The vmop_id requests.
            exact(VMOP_ID_SIZE)?;
            let mut vid = data.to_vec();
            // vid_uid: the requester as the kernel saw it, not as it claims.
            vid[68..72].copy_from_slice(&uid.to_ne_bytes());
            // A wait is a stop request's wait without the stop.
            if type_ == IMSG_VMDOP_WAIT_VM_REQUEST {
                let flags = u32::from_ne_bytes([vid[72], vid[73], vid[74], vid[75]]) | VMOP_WAIT;
                vid[72..76].copy_from_slice(&flags.to_ne_bytes());
            }
            checked(vid, false)
        }
    })
}

/// The client waits for the VM to stop if it asked with VMOP_WAIT.
fn waits(c: &Checked) -> Option<u32> {
    let waiting =
        matches!(
            c.type_,
            IMSG_VMDOP_WAIT_VM_REQUEST | IMSG_VMDOP_TERMINATE_VM_REQUEST
        ) && u32::from_ne_bytes([c.data[72], c.data[73], c.data[74], c.data[75]]) & VMOP_WAIT != 0;
    waiting.then(|| u32::from_ne_bytes([c.data[0], c.data[1], c.data[2], c.data[3]]))
}

/// Checks one request and passes it to the parent with the connection's
/// id as peer id.
fn relay(
    id: u32,
    uid: u32,
    mut msg: Imsg,
    parent: &mut ImsgBuf,
    waiters: &mut Vec<Waiter>,
) -> Result<(), Refusal> {
    let type_ = msg.hdr.type_;
    let c = match check_request(type_, &msg.data, uid) {
        Ok(c) => c,
        Err(Rejected::Fail(libc::EPERM)) => {
            log::warn!("denied request {type_} from uid {uid}");
            return Err(Refusal::Fail(libc::EPERM));
        }
        Err(Rejected::Fail(e)) => return Err(Refusal::Fail(e)),
        Err(Rejected::Close) => {
            log::debug!("control_dispatch_imsg: error handling imsg {type_}");
            return Err(Refusal::Close);
        }
    };
    if c.type_ == IMSG_CTL_VERBOSE {
        let v = i32::from_ne_bytes(c.data[..4].try_into().unwrap_or_default());
        crate::logging::set_verbose(v.max(0) as usize);
    }
    if let Some(vmid) = waits(&c) {
        log::debug!("control_dispatch_imsg: registered wait for peer {id}");
        waiters.push(Waiter { conn: id, vmid });
    }
    let fd = if c.keeps_fd { msg.take_fd() } else { None };
    parent
        .compose(c.type_, id, 0, fd, &c.data)
        .map_err(|_| Refusal::Close)
}

/// Relays answers from the parent to the client they are for. Returns
/// false when the parent is gone.
fn from_parent(
    parent: &mut ImsgBuf,
    conns: &mut HashMap<u32, Conn>,
    waiters: &mut Vec<Waiter>,
) -> io::Result<bool> {
    loop {
        match parent.read().map_err(io::Error::other)? {
            ReadStatus::Data => {}
            ReadStatus::WouldBlock => break,
            ReadStatus::Eof => return Ok(false),
        }
    }
    while let Some(msg) = parent.get().map_err(io::Error::other)? {
        match msg.hdr.type_ {
            IMSG_VMDOP_START_VM_RESPONSE
            | IMSG_VMDOP_PAUSE_VM_RESPONSE
            | IMSG_VMDOP_UNPAUSE_VM_RESPONSE
            | IMSG_VMDOP_GET_INFO_VM_DATA
            | IMSG_VMDOP_GET_INFO_VM_END_DATA
            | IMSG_CTL_FAIL
            | IMSG_CTL_OK => send_to(conns, msg.hdr.peerid, &msg),
            IMSG_VMDOP_TERMINATE_VM_RESPONSE => {
                let Some((result, vmid)) = vmop_result(&msg) else {
                    continue;
                };
                let conn = msg.hdr.peerid;
                let waiting = waiters.iter().position(|w| w.conn == conn);
                if let Some(i) = waiting {
                    // Waiting by name: the answer names the VM.
                    if waiters[i].vmid == 0 {
                        waiters[i].vmid = vmid;
                    }
                }
                // An error goes to the client at once; success is held
                // back for a waiting client until the VM stops.
                if waiting.is_none() || result != 0 {
                    send_to(conns, conn, &msg);
                    if let Some(i) = waiting {
                        waiters.remove(i);
                    }
                }
            }
            IMSG_VMDOP_TERMINATE_VM_EVENT => {
                let Some((_, vmid)) = vmop_result(&msg) else {
                    continue;
                };
                waiters.retain(|w| {
                    if w.vmid != vmid {
                        return true;
                    }
                    send_to(conns, w.conn, &msg);
                    false
                });
            }
            IMSG_CTL_VERBOSE => {
                if let Ok(v) = msg.get::<i32>() {
                    crate::logging::set_verbose(v.max(0) as usize);
                }
            }
            other => log::debug!("control_dispatch_vmd: unexpected imsg {other}"),
        }
    }
    Ok(true)
}

/// Passes a message on to the client connection `id`.
fn send_to(conns: &mut HashMap<u32, Conn>, id: u32, msg: &Imsg) {
    match conns.get_mut(&id) {
        Some(c) => {
            let _ = c.chan.forward(msg);
            let _ = c.chan.write();
        }
        None => log::warn!("control_dispatch_vmd: lost control connection: fd {id}"),
    }
}

/// `struct vmop_result`'s result and id.
fn vmop_result(msg: &Imsg) -> Option<(i32, u32)> {
    use vmm_sys::Wire;
    let d = msg.data_exact(vm::abi::vmop::VmopResult::SIZE).ok()?;
    let r = vm::abi::vmop::VmopResult::get(d);
    Some((r.vmr_result, r.vmr_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_they_go_on() {
        // Anyone may ask for status; only root may reset.
        assert!(check_request(IMSG_VMDOP_GET_INFO_VM_REQUEST, &[], 1000).is_ok());
        assert_eq!(
            check_request(IMSG_CTL_RESET, &[0; 4], 1000),
            Err(Rejected::Fail(libc::EPERM))
        );
        // Exact sizes.
        assert_eq!(
            check_request(IMSG_VMDOP_PAUSE_VM, &[0; VMOP_ID_SIZE - 1], 0),
            Err(Rejected::Fail(libc::EINVAL))
        );
        assert_eq!(
            check_request(IMSG_CTL_VERBOSE, &[0; 5], 0),
            Err(Rejected::Fail(libc::EINVAL))
        );
        // The uid is the kernel's, not the client's.
        let mut vid = vec![0u8; VMOP_ID_SIZE];
        vid[68..72].copy_from_slice(&0u32.to_ne_bytes());
        let c = check_request(IMSG_VMDOP_TERMINATE_VM_REQUEST, &vid, 1000).unwrap();
        assert_eq!(&c.data[68..72], &1000u32.to_ne_bytes());
        // A wait is a stop's wait: it carries VMOP_WAIT on to the parent,
        // and the client is kept as a waiter.
        let c = check_request(IMSG_VMDOP_WAIT_VM_REQUEST, &vid, 1000).unwrap();
        assert_eq!(&c.data[72..76], &VMOP_WAIT.to_ne_bytes());
        assert_eq!(waits(&c), Some(0));
        let c = check_request(IMSG_VMDOP_TERMINATE_VM_REQUEST, &vid, 1000).unwrap();
        assert_eq!(waits(&c), None);
        // Unknown requests close the connection.
        assert_eq!(check_request(0xdead, &[], 0), Err(Rejected::Close));
    }
}
