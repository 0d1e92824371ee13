//! The parent process: starts the others, owns the configuration and the
//! VM table, and routes requests between control, vmm and priv, as vmd.c:
//! it starts the VMs vm.conf enables, opens what a VM needs before vmm
//! runs it, checks who may do what to which VM, and answers vmctl when a
//! VM starts, pauses or stops. Requests it cannot serve yet are answered
//! with an error, never left hanging.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use imsg::{Imsg, ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};

use std::os::fd::OwnedFd;

use vm::abi::vmop::{VmopCreateParams, VmopInfoResult, VmopResult, VMOP_FORCE};
use vmm_sys::wire::c_str;
use vmm_sys::Wire;

use crate::config::model::Config;
use crate::imsg_types::*;
use crate::proc::{self, ChildProc, ProcId};
use crate::sys;
use crate::vms::{State, VmTable};

/// vmd.h: what `vmctl reset` resets.
const CONFIG_VMS: u32 = 0x01;
const CONFIG_SWITCHES: u32 = 0x02;
const CONFIG_ALL: u32 = 0xff;

/// vmd.h: seconds between batches of VMs started at launch.
const STAGGERED_START_DELAY: u64 = 30;

const SIGNALS: Token = Token(100);

/// `struct vmop_result`: result, id, pid, ttyname[16].
fn vmop_result(result: i32, id: u32) -> Vec<u8> {
    let mut r = VmopResult::zeroed();
    r.vmr_result = result;
    r.vmr_id = id;
    r.to_bytes()
}

/// Whom a message goes to and what it carries.
struct Router<'a> {
    children: &'a mut [ChildProc],
    index: &'a HashMap<ProcId, usize>,
}

impl Router<'_> {
    fn send(&mut self, to: ProcId, type_: u32, peer: u32, fd: Option<OwnedFd>, data: &[u8]) {
        if let Some(&i) = self.index.get(&to) {
            if let Err(e) = self.children[i].chan.compose(type_, peer, 0, fd, data) {
                log::warn!("parent: can't send to {}: {e}", to.title());
            }
        }
    }
}

/// Parses vm.conf again (`None`) or another file (`load`).
pub type Reparse<'a> = &'a dyn Fn(Option<&str>) -> Option<Config>;

pub fn run(exe: &str, args: &[String], config: &Config, reparse: Reparse<'_>) -> io::Result<()> {
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
    for c in children.iter_mut() {
        c.chan.allow_fdpass();
    }
    // The shared settings, as config_setconfig sends them; of the Rust
    // children only agentx reads them.
    if let Some(&i) = index.get(&ProcId::Agentx) {
        let cfg = crate::shared_config::vmd_config(config).to_bytes();
        let chan = &mut children[i].chan;
        if let Err(e) = chan
            .compose(IMSG_VMDOP_CONFIG, 0, 0, None, &cfg)
            .and_then(|()| chan.flush())
        {
            log::warn!("parent: can't send to agentx: {e}");
        }
    }
    let mut vms = VmTable::from_config(config);
    // The switches' bridges first (vmd_configure), then the VMs.
    {
        let mut r = Router {
            children: &mut children,
            index: &index,
        };
        configure_switches(&mut vms, &mut r);
    }
    flush_all(&mut children);
    // Enabled VMs start in batches (vm.conf `staggered start`; vmd's
    // default is as many at once as there are CPUs, 30 s apart).
    let (parallel, delay) = match config.globals.staggered_start {
        Some(s) => (
            s.parallel.max(1) as usize,
            Duration::from_secs(s.delay.max(0) as u64),
        ),
        None => (
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            Duration::from_secs(STAGGERED_START_DELAY),
        ),
    };
    let mut to_start: std::collections::VecDeque<u32> = vms
        .vms
        .iter()
        .filter(|v| !v.disabled)
        .map(|v| v.id)
        .collect();
    let mut next_batch = Instant::now();
    let mut events = Events::with_capacity(16);
    loop {
        if !to_start.is_empty() && Instant::now() >= next_batch {
            let mut r = Router {
                children: &mut children,
                index: &index,
            };
            for _ in 0..parallel {
                let Some(id) = to_start.pop_front() else {
                    break;
                };
                start_vm(&mut vms, &mut r, id, None);
            }
            flush_all(&mut children);
            next_batch = Instant::now() + delay;
        }
        let timeout =
            (!to_start.is_empty()).then(|| next_batch.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
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
            let mut r = Router {
                children: &mut children,
                index: &index,
            };
            for m in msgs {
                dispatch(src, m, &mut r, &mut vms, reparse);
            }
        }
        flush_all(&mut children);
    }
}

fn flush_all(children: &mut [ChildProc]) {
    for c in children.iter_mut() {
        // One write stops at each message carrying an fd: flush all.
        if let Err(e) = c.chan.flush() {
            log::warn!("parent: can't write to {}: {e}", c.id.title());
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

fn dispatch(src: ProcId, mut m: Imsg, r: &mut Router<'_>, vms: &mut VmTable, reparse: Reparse<'_>) {
    let peer = m.hdr.peerid;
    let groups = crate::sys::user_in_group;
    match (src, m.hdr.type_) {
        (ProcId::Control, IMSG_VMDOP_GET_INFO_VM_REQUEST) => {
            r.send(ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_REQUEST, peer, None, &[]);
        }
        (ProcId::Agentx, IMSG_VMDOP_GET_INFO_VM_REQUEST) => {
            // Whatever peer id agentx sent, the answer goes back to it.
            let peer = crate::agentx::IMSG_AGENTX_PEERID;
            r.send(ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_REQUEST, peer, None, &[]);
        }
        (ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_DATA) => {
            let Ok(d) = m.data_exact(VmopInfoResult::SIZE) else {
                return;
            };
            let mut info = VmopInfoResult::get(d);
            if let Some(vm) = vms.find(info.vir_info.vir_id, "") {
                vm.complete_info(&mut info);
                log::debug!(
                    "vmd_dispatch_vmm: running vm: {}, vm_state: {:#x}",
                    vm.id,
                    info.vir_state
                );
            }
            r.send(
                info_requester(peer),
                IMSG_VMDOP_GET_INFO_VM_DATA,
                peer,
                None,
                &info.to_bytes(),
            );
        }
        (ProcId::Vmm, IMSG_VMDOP_GET_INFO_VM_END_DATA) => {
            // VMs vmm does not run: configured, stopped ones.
            for vm in vms.vms.iter().filter(|v| v.state == State::Stopped) {
                log::debug!(
                    "vmd_dispatch_vmm: vm: {}, vm_state: {:#x}",
                    vm.id,
                    vm.state_bits()
                );
                r.send(
                    info_requester(peer),
                    IMSG_VMDOP_GET_INFO_VM_DATA,
                    peer,
                    None,
                    &vm.info().to_bytes(),
                );
            }
            r.send(
                info_requester(peer),
                IMSG_VMDOP_GET_INFO_VM_END_DATA,
                peer,
                None,
                &[],
            );
        }
        (ProcId::Control, IMSG_CTL_VERBOSE) => {
            if let Ok(v) = m.get::<i32>() {
                crate::logging::set_verbose(v.max(0) as usize);
                for id in [ProcId::Vmm, ProcId::Priv, ProcId::Agentx] {
                    r.send(id, IMSG_CTL_VERBOSE, peer, None, &v.to_ne_bytes());
                }
                r.send(ProcId::Control, IMSG_CTL_OK, peer, None, &[]);
            }
        }
        (ProcId::Control, IMSG_VMDOP_START_VM_REQUEST) => {
            let params = match m.data_exact(VmopCreateParams::SIZE) {
                Ok(d) => VmopCreateParams::get(d),
                Err(_) => {
                    r.send(
                        ProcId::Control,
                        IMSG_VMDOP_START_VM_RESPONSE,
                        peer,
                        None,
                        &vmop_result(libc::EINVAL, 0),
                    );
                    return;
                }
            };
            let fd = m.take_fd();
            match vms.register(&params, fd, params.vmc_owner.uid, &groups) {
                Ok(id) => start_vm(vms, r, id, Some(peer)),
                Err(e) => {
                    let name = String::from_utf8_lossy(c_str(&params.vmc_name)).into_owned();
                    log::warn!("start vm {name}: {e}");
                    r.send(
                        ProcId::Control,
                        IMSG_VMDOP_START_VM_RESPONSE,
                        peer,
                        None,
                        &vmop_result(e.errno(), 0),
                    );
                }
            }
        }
        (ProcId::Vmm, IMSG_VMDOP_START_VM_RESPONSE) => {
            let Ok(d) = m.data_exact(VmopResult::SIZE) else {
                return;
            };
            let mut res = VmopResult::get(d);
            let Some(vm) = vms.find(peer, "") else {
                return;
            };
            if res.vmr_result == 0 {
                vm.state = State::Running;
                vm.pid = res.vmr_pid;
                log::info!(
                    "{}: started vm {} successfully, tty {}",
                    vm.name,
                    vm.id,
                    vm.tty
                );
            } else {
                vm.state = State::Stopped;
                log::warn!(
                    "{}: start failed: {}",
                    vm.name,
                    io::Error::from_raw_os_error(res.vmr_result)
                );
            }
            res.vmr_ttyname = vmm_sys::wire::c_string(&vm.tty).unwrap_or([0; 16]);
            if let Some(ctl) = vm.start_peer.take() {
                r.send(
                    ProcId::Control,
                    IMSG_VMDOP_START_VM_RESPONSE,
                    ctl,
                    None,
                    &res.to_bytes(),
                );
            }
            if res.vmr_result != 0 && !vm.from_config {
                let id = vm.id;
                vms.vms.retain(|v| v.id != id);
            }
        }
        (ProcId::Vmm, IMSG_VMDOP_TERMINATE_VM_EVENT) => {
            let Some(vm) = vms.find(peer, "") else {
                log::debug!("vmd_dispatch_vmm: vm {peer} is no longer available");
                return;
            };
            log::info!("{}: vm {} stopped", vm.name, vm.id);
            vm.state = State::Stopped;
            vm.pid = 0;
            vm.tty.clear();
            let id = vm.id;
            if !vm.from_config {
                vms.vms.retain(|v| v.id != id);
            }
            // Control passes it to the clients waiting for this VM; the
            // vm process's exit status means nothing to them.
            r.send(
                ProcId::Control,
                IMSG_VMDOP_TERMINATE_VM_EVENT,
                peer,
                None,
                &vmop_result(0, id),
            );
        }
        (
            ProcId::Control,
            t @ (IMSG_VMDOP_TERMINATE_VM_REQUEST
            | IMSG_VMDOP_WAIT_VM_REQUEST
            | IMSG_VMDOP_PAUSE_VM
            | IMSG_VMDOP_UNPAUSE_VM),
        ) => {
            let reply = match t {
                IMSG_VMDOP_PAUSE_VM => IMSG_VMDOP_PAUSE_VM_RESPONSE,
                IMSG_VMDOP_UNPAUSE_VM => IMSG_VMDOP_UNPAUSE_VM_RESPONSE,
                _ => IMSG_VMDOP_TERMINATE_VM_RESPONSE,
            };
            let Ok(d) = m.data_exact(VMOP_ID_SIZE) else {
                r.send(
                    ProcId::Control,
                    reply,
                    peer,
                    None,
                    &vmop_result(libc::EINVAL, 0),
                );
                return;
            };
            let id = u32::from_ne_bytes(d[0..4].try_into().unwrap_or_default());
            let name = String::from_utf8_lossy(c_str(&d[4..68])).into_owned();
            let uid = u32::from_ne_bytes(d[68..72].try_into().unwrap_or_default());
            let Some(vm) = vms.find(id, &name) else {
                r.send(
                    ProcId::Control,
                    reply,
                    peer,
                    None,
                    &vmop_result(libc::ENOENT, id),
                );
                return;
            };
            let stop_or_wait = matches!(
                t,
                IMSG_VMDOP_TERMINATE_VM_REQUEST | IMSG_VMDOP_WAIT_VM_REQUEST
            );
            // As vmd: a VM that is not running cannot be stopped or
            // waited for (EINVAL); the owner check comes after that.
            let refusal = if stop_or_wait && !vm.is_running() {
                Some(libc::EINVAL)
            } else if !vm.permits(uid, &groups) {
                Some(libc::EPERM)
            } else if !vm.is_running() {
                Some(libc::EINVAL)
            } else {
                None
            };
            if let Some(errno) = refusal {
                r.send(
                    ProcId::Control,
                    reply,
                    peer,
                    None,
                    &vmop_result(errno, vm.id),
                );
                return;
            }
            let mut fwd = d.to_vec();
            fwd[0..4].copy_from_slice(&vm.id.to_ne_bytes());
            match t {
                IMSG_VMDOP_WAIT_VM_REQUEST | IMSG_VMDOP_TERMINATE_VM_REQUEST => {
                    // Only a stop goes on to vmm. Either is answered at
                    // once; control holds the answer back for a client
                    // that waits (VMOP_WAIT) until the VM has stopped.
                    if t == IMSG_VMDOP_TERMINATE_VM_REQUEST {
                        r.send(ProcId::Vmm, t, peer, None, &fwd);
                    }
                    r.send(ProcId::Control, reply, peer, None, &vmop_result(0, vm.id));
                }
                _ => r.send(ProcId::Vmm, t, peer, None, &fwd),
            }
        }
        (ProcId::Vmm, t @ (IMSG_VMDOP_PAUSE_VM_RESPONSE | IMSG_VMDOP_UNPAUSE_VM_RESPONSE)) => {
            if let Ok(d) = m.data_exact(VmopResult::SIZE) {
                let res = VmopResult::get(d);
                if let Some(vm) = vms.find(res.vmr_id, "") {
                    if res.vmr_result == 0 && vm.is_running() {
                        vm.state = if t == IMSG_VMDOP_PAUSE_VM_RESPONSE {
                            State::Paused
                        } else {
                            State::Running
                        };
                    }
                }
            }
            r.send(ProcId::Control, t, peer, None, &m.data);
        }
        (ProcId::Control, t @ (IMSG_VMDOP_LOAD | IMSG_VMDOP_RELOAD)) => {
            // reload: vm.conf again; load: another file on top.
            let file = (t == IMSG_VMDOP_LOAD)
                .then(|| String::from_utf8_lossy(c_str(&m.data)).into_owned());
            match reparse(file.as_deref()) {
                Some(config) => {
                    log::info!(
                        "vmd_reload: {}",
                        file.as_deref().unwrap_or("reloading configuration")
                    );
                    if file.is_none() {
                        // A reload shares the new settings; a load does not.
                        let cfg = crate::shared_config::vmd_config(&config).to_bytes();
                        r.send(ProcId::Agentx, IMSG_VMDOP_CONFIG, 0, None, &cfg);
                    }
                    let start = vms.merge(&config, file.is_none());
                    configure_switches(vms, r);
                    for id in start {
                        start_vm(vms, r, id, None);
                    }
                    r.send(ProcId::Control, IMSG_CTL_OK, peer, None, &[]);
                }
                None => {
                    r.send(
                        ProcId::Control,
                        IMSG_CTL_FAIL,
                        peer,
                        None,
                        &libc::EINVAL.to_ne_bytes(),
                    );
                }
            }
        }
        (ProcId::Control, IMSG_CTL_RESET) => {
            // reset vms (or all): every VM stops at once; VMs vmctl made
            // are forgotten when they have stopped.
            let mode = m.get::<u32>().unwrap_or(CONFIG_ALL);
            if mode & CONFIG_VMS != 0 {
                log::info!("vmd_reload: resetting vms");
                for vm in vms.vms.iter().filter(|v| v.is_running()) {
                    let mut vid = vec![0u8; VMOP_ID_SIZE];
                    vid[0..4].copy_from_slice(&vm.id.to_ne_bytes());
                    vid[72..76].copy_from_slice(&VMOP_FORCE.to_ne_bytes());
                    r.send(ProcId::Vmm, IMSG_VMDOP_TERMINATE_VM_REQUEST, 0, None, &vid);
                }
                vms.vms.retain(|v| v.from_config || v.is_running());
            }
            if mode & CONFIG_SWITCHES != 0 {
                // Forgotten, not torn down: taps stay in their bridges,
                // but VMs that start now join no switch until a reload
                // brings the switches back.
                log::info!("vmd_reload: resetting switches");
                vms.switches.clear();
            }
            r.send(ProcId::Control, IMSG_CTL_OK, peer, None, &[]);
        }
        (_, IMSG_VMDOP_DONE) => {}
        (src, t) => log::debug!("parent: unexpected imsg {t} from {}", src.title()),
    }
}

/// Sets up the bridges of switches the configuration brought in.
fn configure_switches(vms: &mut VmTable, r: &mut Router<'_>) {
    for (type_, req) in vms.configure_switches() {
        r.send(ProcId::Priv, type_, 0, None, &req);
    }
}

/// Who asked for the VM list vmm is answering: the agentx process marks
/// its requests with IMSG_AGENTX_PEERID, control with a connection's id.
fn info_requester(peer: u32) -> ProcId {
    if peer == crate::agentx::IMSG_AGENTX_PEERID {
        ProcId::Agentx
    } else {
        ProcId::Control
    }
}

/// Opens what VM `id` needs and asks vmm to run it; `ctl` is the control
/// connection waiting for the answer, if any.
fn start_vm(vms: &mut VmTable, r: &mut Router<'_>, id: u32, ctl: Option<u32>) {
    let plan = match vms.plan_start(id) {
        Ok(p) => p,
        Err(e) => {
            let errno = e.errno();
            if let Some(vm) = vms.find(id, "") {
                log::warn!("{}: could not start vm: {e}", vm.name);
                let keep = vm.from_config;
                if !keep {
                    vms.vms.retain(|v| v.id != id);
                }
            }
            if let Some(ctl) = ctl {
                r.send(
                    ProcId::Control,
                    IMSG_VMDOP_START_VM_RESPONSE,
                    ctl,
                    None,
                    &vmop_result(errno, 0),
                );
            }
            return;
        }
    };
    if let Some(vm) = vms.find(id, "") {
        vm.state = State::Starting;
        vm.start_peer = ctl;
    }
    r.send(
        ProcId::Vmm,
        IMSG_VMDOP_START_VM_REQUEST,
        id,
        Some(plan.boot),
        &plan.params.to_bytes(),
    );
    for (i, chain) in plan.disks.into_iter().enumerate() {
        for fd in chain {
            r.send(
                ProcId::Vmm,
                IMSG_VMDOP_START_VM_DISK,
                id,
                Some(fd),
                &(i as u32).to_ne_bytes(),
            );
        }
    }
    if let Some(cd) = plan.cdrom {
        r.send(ProcId::Vmm, IMSG_VMDOP_START_VM_CDROM, id, Some(cd), &[]);
    }
    for (i, tap) in plan.taps.into_iter().enumerate() {
        r.send(
            ProcId::Vmm,
            IMSG_VMDOP_START_VM_IF,
            id,
            Some(tap),
            &(i as u32).to_ne_bytes(),
        );
    }
    // The host side of the taps: descriptions, bridges, addresses, up.
    for (type_, req) in plan.host_ops {
        r.send(ProcId::Priv, type_, id, None, &req);
    }
    // The local prefix for the vm process (vmd's vm_main reads it).
    let mut lp = vm::abi::LocalPrefix::vmd_default();
    lp.lp_in = vms.prefix.addr.octets();
    lp.lp_mask = vms.prefix.mask.octets();
    r.send(
        ProcId::Vmm,
        IMSG_VMDOP_START_VM_END,
        id,
        Some(plan.tty),
        &lp.to_bytes(),
    );
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
