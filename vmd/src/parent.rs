//! The parent process: starts the others, owns the configuration and the
//! VM table, and routes requests between control, vmm and priv.
//!
//! This first version carries the routing vmctl status needs; starting
//! VMs arrives with the vm process. Requests it cannot serve yet are
//! answered with an error, never left hanging.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use imsg::{Imsg, ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};

use crate::imsg_types::*;
use crate::proc::{self, ChildProc, ProcId};
use crate::sys;

const SIGNALS: Token = Token(100);

/// `struct vmop_result`: result, id, pid, ttyname[16].
fn vmop_result(result: i32, id: u32) -> Vec<u8> {
    let mut v = vec![0u8; 28];
    v[0..4].copy_from_slice(&result.to_ne_bytes());
    v[4..8].copy_from_slice(&id.to_ne_bytes());
    v
}

pub fn run(exe: &str, args: &[String]) -> io::Result<()> {
    let signals = sys::SignalPipe::install(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGCHLD,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGUSR1,
    ])?;
    let mut children = proc::spawn_children(exe, args)?;
    sys::sandbox(ProcId::Parent, exe)?;
    let mut poll = Poll::new()?;
    for (i, c) in children.iter_mut().enumerate() {
        poll.registry()
            .register(&mut c.chan, Token(i), Interest::READABLE)?;
    }
    poll.registry().register(
        &mut mio::unix::SourceFd(&signals.fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    let index: HashMap<ProcId, usize> = children
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut events = Events::with_capacity(16);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == SIGNALS {
                for sig in signals.drain() {
                    match sig {
                        libc::SIGTERM | libc::SIGINT => return shutdown(children),
                        libc::SIGCHLD => {
                            if let Some(lost) = reap(&mut children) {
                                log::warn!("lost child: {lost}");
                                return shutdown(children);
                            }
                        }
                        libc::SIGHUP => log::info!("vmd_sighdlr: reload requested with SIGHUP"),
                        _ => {}
                    }
                }
                continue;
            }
            let from = ev.token().0;
            let msgs = match drain(&mut children[from].chan) {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => {
                    log::warn!("lost child: {} channel closed", children[from].id.title());
                    return shutdown(children);
                }
            };
            let src = children[from].id;
            for m in msgs {
                dispatch(src, m, &mut children, &index);
            }
        }
        for c in children.iter_mut() {
            let _ = c.chan.write();
        }
    }
}

/// Everything a child sent; `None` at EOF.
fn drain(chan: &mut ImsgBuf) -> imsg::Result<Option<Vec<Imsg>>> {
    loop {
        match chan.read()? {
            ReadStatus::Data => {}
            ReadStatus::WouldBlock => break,
            ReadStatus::Eof => return Ok(None),
        }
    }
    let mut out = Vec::new();
    while let Some(m) = chan.get()? {
        out.push(m);
    }
    Ok(Some(out))
}

fn dispatch(src: ProcId, m: Imsg, children: &mut [ChildProc], index: &HashMap<ProcId, usize>) {
    let peer = m.hdr.peerid;
    let send = |children: &mut [ChildProc], to: ProcId, type_: u32, data: &[u8]| {
        if let Some(&i) = index.get(&to) {
            if let Err(e) = children[i].chan.compose(type_, peer, 0, None, data) {
                log::warn!("parent: can't send to {}: {e}", to.title());
            }
        }
    };
    match (src, m.hdr.type_) {
        (ProcId::Control, IMSG_VMDOP_GET_INFO_VM_REQUEST) => {
            send(children, ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_REQUEST, &[]);
        }
        (ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_DATA | IMSG_VMDOP_GET_INFO_VM_END_DATA) => {
            send(children, ProcId::Control, m.hdr.type_, &m.data);
        }
        (ProcId::Control, IMSG_CTL_VERBOSE) => {
            if let Ok(v) = m.get::<i32>() {
                crate::logging::set_verbose(v.max(0) as usize);
                for id in [ProcId::Vmm, ProcId::Priv, ProcId::Agentx] {
                    send(children, id, IMSG_CTL_VERBOSE, &v.to_ne_bytes());
                }
                send(children, ProcId::Control, IMSG_CTL_OK, &[]);
            }
        }
        (ProcId::Control, IMSG_VMDOP_START_VM_REQUEST) => {
            log::warn!("start vm: not supported yet (no vm process)");
            send(
                children,
                ProcId::Control,
                IMSG_VMDOP_START_VM_RESPONSE,
                &vmop_result(libc::ENOSYS, 0),
            );
        }
        (
            ProcId::Control,
            t @ (IMSG_VMDOP_TERMINATE_VM_REQUEST
            | IMSG_VMDOP_WAIT_VM_REQUEST
            | IMSG_VMDOP_PAUSE_VM
            | IMSG_VMDOP_UNPAUSE_VM),
        ) => {
            // No VM is known yet, so every id or name is unknown.
            let id = m
                .data
                .get(0..4)
                .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            let reply = match t {
                IMSG_VMDOP_PAUSE_VM => IMSG_VMDOP_PAUSE_VM_RESPONSE,
                IMSG_VMDOP_UNPAUSE_VM => IMSG_VMDOP_UNPAUSE_VM_RESPONSE,
                _ => IMSG_VMDOP_TERMINATE_VM_RESPONSE,
            };
            send(
                children,
                ProcId::Control,
                reply,
                &vmop_result(libc::ENOENT, id),
            );
        }
        (ProcId::Control, t @ (IMSG_CTL_RESET | IMSG_VMDOP_LOAD | IMSG_VMDOP_RELOAD)) => {
            log::warn!("parent: request {t} not supported yet");
            send(
                children,
                ProcId::Control,
                IMSG_CTL_FAIL,
                &libc::ENOSYS.to_ne_bytes(),
            );
        }
        (_, IMSG_VMDOP_DONE) => {}
        (src, t) => log::debug!("parent: unexpected imsg {t} from {}", src.title()),
    }
}

/// Collects exited children; names the first one that died.
fn reap(children: &mut [ChildProc]) -> Option<String> {
    for c in children.iter_mut() {
        if let Ok(Some(status)) = c.process.try_wait() {
            let cause = match status.code() {
                Some(0) => "exited normally".to_string(),
                Some(_) => "exited abnormally".to_string(),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    format!("terminated; signal {}", status.signal().unwrap_or(0))
                }
            };
            return Some(format!("pid {} {cause}", c.process.id()));
        }
    }
    None
}

fn shutdown(mut children: Vec<ChildProc>) -> io::Result<()> {
    for c in &children {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(c.process.id() as libc::pid_t, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for c in children.iter_mut() {
        loop {
            match c.process.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = c.process.kill();
                    let _ = c.process.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    log::info!("parent terminating");
    Ok(())
}
