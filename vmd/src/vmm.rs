//! The vmm process, as vmd's vmm.c: it collects what the parent opened
//! for a VM, starts the vm process (`vmd -V fd -i kvm_fd -j -1`), hands it
//! the raw `struct vmd_vm` and the local prefix, reads back the VM's id,
//! and from then on relays between the parent and the vm processes. When
//! a vm process exits it tells the parent, or restarts the VM when the
//! guest rebooted (a triple fault, EAGAIN, or a vmmci reboot), no more
//! than VM_START_RATE_LIMIT times in VM_START_RATE_SEC.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use imsg::{Imsg, ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};
use vm::abi::vmop::{VmopCreateParams, VmopInfoResult, VmopResult};
use vm::abi::{LocalPrefix, VmdVm, VM_MAX_BASE_PER_DISK, VM_MAX_DISKS_PER_VM, VM_MAX_NICS_PER_VM};
use vmm_sys::wire::c_str;
use vmm_sys::Wire;

use crate::child::{PARENT, SIGNALS};
use crate::imsg_types::*;
use crate::sys;

const VM_BASE: usize = 1000;

/// vmd.h: restarts closer together than this count as a loop.
const VM_START_RATE_SEC: u64 = 6;
const VM_START_RATE_LIMIT: usize = 3;
/// How long guests get to shut down when vmd stops (the parent waits 5 s
/// for its children).
const TERMINATE_GRACE: Duration = Duration::from_secs(4);
/// vmd's terminate_vm: after SIGTERM a vm process has this long to exit
/// before it is killed.
const VM_TERM_TIMEOUT: Duration = Duration::from_secs(10);

/// What the parent sent for a VM that has not started yet, and what a
/// running VM keeps for a restart.
struct Files {
    params: VmopCreateParams,
    boot: OwnedFd,
    disks: Vec<Vec<OwnedFd>>,
    taps: Vec<Option<OwnedFd>>,
    cdrom: Option<OwnedFd>,
    tty: Option<OwnedFd>,
    prefix: LocalPrefix,
}

struct RunningVm {
    name: String,
    child: Child,
    chan: ImsgBuf,
    files: Files,
    starts: Vec<Instant>,
    /// Restarts in a row that came too soon after the one before.
    quick_restarts: usize,
    /// The guest or the parent asked for a reboot; restart on exit.
    reboot: bool,
    /// Sent SIGTERM (`vmctl stop -f`): killed if still there then.
    kill_at: Option<Instant>,
}

pub struct Vmm {
    kvm: Option<OwnedFd>,
    exe: String,
    debug: bool,
    verbose: u32,
    pending: HashMap<u32, Files>,
    running: HashMap<u32, RunningVm>,
}

fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number; async-signal-safe.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Vmm {
    pub fn new(kvm: Option<OwnedFd>, exe: String, debug: bool, verbose: u32) -> Vmm {
        Vmm {
            kvm,
            exe,
            debug,
            verbose,
            pending: HashMap::new(),
            running: HashMap::new(),
        }
    }

    pub fn run(mut self, mut parent: ImsgBuf, signals: sys::SignalPipe) -> io::Result<()> {
        let mut poll = crate::child::poll_parent_and_signals(&mut parent, &signals)?;
        let mut events = Events::with_capacity(16);
        'outer: loop {
            self.kill_overdue();
            let now = Instant::now();
            let timeout = self
                .running
                .values()
                .filter_map(|vm| vm.kill_at)
                .min()
                .map(|t| t.saturating_duration_since(now));
            if let Err(e) = poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => {
                        for sig in signals.drain() {
                            match sig {
                                libc::SIGTERM | libc::SIGINT => break 'outer,
                                libc::SIGCHLD => self.reap(&mut parent, &poll),
                                _ => {}
                            }
                        }
                    }
                    PARENT => {
                        loop {
                            match parent.read().map_err(io::Error::other)? {
                                ReadStatus::Data => {}
                                ReadStatus::WouldBlock => break,
                                ReadStatus::Eof => break 'outer,
                            }
                        }
                        while let Some(m) = parent.get().map_err(io::Error::other)? {
                            self.dispatch_parent(m, &mut parent, &poll);
                        }
                    }
                    Token(t) => {
                        let id = (t - VM_BASE) as u32;
                        self.dispatch_vm(id, &mut parent);
                    }
                }
            }
            parent.flush().map_err(io::Error::other)?;
        }
        self.terminate_all();
        log::info!("vmm exiting, pid {}", std::process::id());
        Ok(())
    }

    fn dispatch_parent(&mut self, mut m: Imsg, parent: &mut ImsgBuf, poll: &Poll) {
        let peer = m.hdr.peerid;
        match m.type_() {
            IMSG_VMDOP_START_VM_REQUEST => {
                let params = match m.data_exact(VmopCreateParams::SIZE) {
                    Ok(d) => VmopCreateParams::get(d),
                    Err(e) => {
                        log::warn!("vmm: start request: {e}");
                        return;
                    }
                };
                let Some(boot) = m.take_fd() else {
                    start_failed(parent, peer, libc::EINVAL, "no boot image");
                    return;
                };
                self.pending.insert(
                    peer,
                    Files {
                        params,
                        boot,
                        disks: Vec::new(),
                        taps: Vec::new(),
                        cdrom: None,
                        tty: None,
                        prefix: LocalPrefix::vmd_default(),
                    },
                );
            }
            IMSG_VMDOP_START_VM_DISK => {
                let idx = m
                    .data_exact(4)
                    .map(|d| u32::from_ne_bytes(d.try_into().unwrap_or_default()));
                match (self.pending.get_mut(&peer), idx, m.take_fd()) {
                    (Some(f), Ok(idx), Some(fd)) if (idx as usize) < VM_MAX_DISKS_PER_VM => {
                        let idx = idx as usize;
                        if f.disks.len() <= idx {
                            f.disks.resize_with(idx + 1, Vec::new);
                        }
                        if f.disks[idx].len() < VM_MAX_BASE_PER_DISK {
                            f.disks[idx].push(fd);
                        }
                    }
                    _ => log::warn!("vmm: bad disk for vm {peer}"),
                }
            }
            IMSG_VMDOP_START_VM_CDROM => match (self.pending.get_mut(&peer), m.take_fd()) {
                (Some(f), Some(fd)) => f.cdrom = Some(fd),
                _ => log::warn!("vmm: bad cdrom for vm {peer}"),
            },
            IMSG_VMDOP_START_VM_IF => {
                let idx = m
                    .data_exact(4)
                    .map(|d| u32::from_ne_bytes(d.try_into().unwrap_or_default()));
                match (self.pending.get_mut(&peer), idx, m.take_fd()) {
                    (Some(f), Ok(idx), Some(fd)) if (idx as usize) < VM_MAX_NICS_PER_VM => {
                        let idx = idx as usize;
                        if f.taps.len() <= idx {
                            f.taps.resize_with(idx + 1, || None);
                        }
                        f.taps[idx] = Some(fd);
                    }
                    _ => log::warn!("vmm: bad interface for vm {peer}"),
                }
            }
            IMSG_VMDOP_START_VM_END => {
                let Some(mut files) = self.pending.remove(&peer) else {
                    log::warn!("vmm: start of unknown vm {peer}");
                    return;
                };
                files.tty = m.take_fd();
                if let Ok(d) = m.data_exact(LocalPrefix::SIZE) {
                    files.prefix = LocalPrefix::get(d);
                }
                match self.start_vm(peer, files, poll) {
                    Ok(pid) => {
                        let mut r = VmopResult::zeroed();
                        r.vmr_id = peer;
                        r.vmr_pid = pid as i32;
                        let _ = parent.compose(
                            IMSG_VMDOP_START_VM_RESPONSE,
                            peer,
                            0,
                            None,
                            &r.to_bytes(),
                        );
                    }
                    Err(e) => {
                        let errno = e.raw_os_error().unwrap_or(libc::EIO);
                        start_failed(parent, peer, errno, &e.to_string());
                    }
                }
            }
            IMSG_VMDOP_TERMINATE_VM_REQUEST => {
                let (id, flags) = vmop_id(&m);
                match self.running.get_mut(&id) {
                    Some(vm) => {
                        vm.reboot = false;
                        if flags & vm::abi::vmop::VMOP_FORCE != 0 {
                            log::info!("{}: terminating vm {id} (forced)", vm.name);
                            // As vmd's terminate_vm: SIGTERM gets the vm
                            // process out of its loop, so it shuts its
                            // device processes down before it exits.
                            // SAFETY: kill(2) on our own child's pid.
                            let rc =
                                unsafe { libc::kill(vm.child.id() as libc::pid_t, libc::SIGTERM) };
                            if rc == 0 {
                                vm.kill_at.get_or_insert(Instant::now() + VM_TERM_TIMEOUT);
                            } else {
                                let _ = vm.child.kill();
                            }
                        } else {
                            let _ = vm
                                .chan
                                .compose(IMSG_VMDOP_VM_SHUTDOWN, 0, 0, None, &[])
                                .and_then(|()| vm.chan.flush());
                        }
                    }
                    None => log::debug!("vmm: terminate of vm {id} that is not running"),
                }
            }
            t @ (IMSG_VMDOP_PAUSE_VM | IMSG_VMDOP_UNPAUSE_VM) => {
                let (id, _) = vmop_id(&m);
                match self.running.get_mut(&id) {
                    Some(vm) => {
                        let _ = vm
                            .chan
                            .compose(t, peer, 0, None, &[])
                            .and_then(|()| vm.chan.flush());
                    }
                    None => {
                        let mut r = VmopResult::zeroed();
                        r.vmr_result = libc::ENOENT;
                        r.vmr_id = id;
                        let reply = if t == IMSG_VMDOP_PAUSE_VM {
                            IMSG_VMDOP_PAUSE_VM_RESPONSE
                        } else {
                            IMSG_VMDOP_UNPAUSE_VM_RESPONSE
                        };
                        let _ = parent.compose(reply, peer, 0, None, &r.to_bytes());
                    }
                }
            }
            IMSG_VMDOP_GET_INFO_VM_REQUEST => {
                let mut ids: Vec<_> = self.running.keys().copied().collect();
                ids.sort_unstable();
                for id in ids {
                    let vm = &self.running[&id];
                    let mut r = VmopInfoResult::zeroed();
                    r.vir_info.vir_memory_size = vm.files.params.vmc_memranges[0].vmr_size;
                    r.vir_info.vir_used_size = r.vir_info.vir_memory_size;
                    r.vir_info.vir_ncpus = 1;
                    r.vir_info.vir_id = id;
                    r.vir_info.vir_creator_pid = vm.child.id() as i32;
                    r.vir_info.vir_name = vm.files.params.vmc_name;
                    let _ =
                        parent.compose(IMSG_VMDOP_GET_INFO_VM_DATA, peer, 0, None, &r.to_bytes());
                }
                let _ = parent.compose(IMSG_VMDOP_GET_INFO_VM_END_DATA, peer, 0, None, &[]);
            }
            IMSG_CTL_VERBOSE => {
                // vmm's own log, the vm processes it starts from now on,
                // and the running ones, which pass it to their devices.
                let Ok(v) = m.get::<i32>() else {
                    return;
                };
                crate::logging::set_verbose(v.max(0) as usize);
                self.verbose = v.max(0) as u32;
                for vm in self.running.values_mut() {
                    if let Err(e) = vm
                        .chan
                        .compose(IMSG_CTL_VERBOSE, 0, 0, None, &v.to_ne_bytes())
                        .and_then(|()| vm.chan.flush())
                    {
                        log::warn!("{}: can't pass on the log level: {e}", vm.name);
                    }
                }
            }
            t => log::debug!("vmm_dispatch_parent: unexpected imsg {t}"),
        }
    }

    /// Starts (or restarts) the vm process for VM `id`; returns its pid.
    fn start_vm(&mut self, id: u32, files: Files, poll: &Poll) -> io::Result<u32> {
        let name = String::from_utf8_lossy(c_str(&files.params.vmc_name)).into_owned();
        let (chan, child) = self.exec_vm(id, &files)?;
        let pid = child.id();
        let mut vm = RunningVm {
            name,
            child,
            chan,
            files,
            starts: vec![Instant::now()],
            quick_restarts: 0,
            reboot: false,
            kill_at: None,
        };
        poll.registry().register(
            &mut vm.chan,
            Token(VM_BASE + id as usize),
            Interest::READABLE,
        )?;
        self.running.insert(id, vm);
        Ok(pid)
    }

    fn exec_vm(&self, id: u32, files: &Files) -> io::Result<(ImsgBuf, Child)> {
        let mut vm = VmdVm::zeroed();
        vm.vm_params = files.params;
        vm.vm_vmid = id;
        vm.vm_kernel = files.boot.as_raw_fd();
        vm.vm_cdrom = files.cdrom.as_ref().map_or(-1, |c| c.as_raw_fd());
        vm.vm_tty = files.tty.as_ref().map_or(-1, |t| t.as_raw_fd());
        vm.vm_disks = [[-1; VM_MAX_BASE_PER_DISK]; VM_MAX_DISKS_PER_VM];
        let mut keep = vec![vm.vm_kernel];
        if vm.vm_cdrom >= 0 {
            keep.push(vm.vm_cdrom);
        }
        for (i, chain) in files.disks.iter().enumerate() {
            for (j, fd) in chain.iter().enumerate() {
                vm.vm_disks[i][j] = fd.as_raw_fd();
                keep.push(fd.as_raw_fd());
            }
        }
        for i in 0..VM_MAX_NICS_PER_VM {
            vm.vm_ifs[i].vif_fd = match files.taps.get(i) {
                Some(Some(tap)) => {
                    keep.push(tap.as_raw_fd());
                    tap.as_raw_fd()
                }
                _ => -1,
            };
        }
        if vm.vm_tty >= 0 {
            keep.push(vm.vm_tty);
        }
        vm.vm_uid = files.params.vmc_owner.uid;

        let (ours, theirs) = UnixStream::pair()?;
        keep.push(theirs.as_raw_fd());
        let kvm_fd = self.kvm.as_ref().map_or(-1, |k| k.as_raw_fd());
        if kvm_fd >= 0 {
            keep.push(kvm_fd);
        }
        let mut cmd = Command::new(&self.exe);
        cmd.arg("-V")
            .arg(theirs.as_raw_fd().to_string())
            .arg("-i")
            .arg(kvm_fd.to_string())
            .arg("-j")
            .arg("-1");
        if self.debug {
            cmd.arg("-d");
        }
        match self.verbose {
            0 => {}
            1 => {
                cmd.arg("-v");
            }
            _ => {
                cmd.arg("-vv");
            }
        }
        // SAFETY: setsid and fcntl are async-signal-safe; `keep` is only
        // read.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                for &fd in &keep {
                    clear_cloexec(fd)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        drop(theirs);
        let mut sock = ours;
        let handshake = (|| -> io::Result<u32> {
            sock.write_all(&vm.to_bytes())?;
            sock.write_all(&files.prefix.to_bytes())?;
            sock.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut id = [0u8; 4];
            sock.read_exact(&mut id)?;
            Ok(u32::from_ne_bytes(id))
        })();
        match handshake {
            Ok(0) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Ok(_) => {}
        }
        sock.set_read_timeout(None)?;
        sock.set_nonblocking(true)?;
        Ok((ImsgBuf::new(OwnedFd::from(sock)), child))
    }

    fn dispatch_vm(&mut self, id: u32, parent: &mut ImsgBuf) {
        let Some(vm) = self.running.get_mut(&id) else {
            return;
        };
        loop {
            match vm.chan.read() {
                Ok(ReadStatus::Data) => {}
                Ok(ReadStatus::WouldBlock) | Ok(ReadStatus::Eof) => break,
                Err(e) => {
                    log::warn!("{}: vm channel: {e}", vm.name);
                    break;
                }
            }
        }
        while let Ok(Some(m)) = vm.chan.get() {
            match m.type_() {
                IMSG_VMDOP_VM_SHUTDOWN => {
                    log::debug!("{}: guest shut down", vm.name);
                    vm.reboot = false;
                }
                IMSG_VMDOP_VM_REBOOT => {
                    log::debug!("{}: guest rebooting", vm.name);
                    vm.reboot = true;
                }
                t @ (IMSG_VMDOP_PAUSE_VM_RESPONSE | IMSG_VMDOP_UNPAUSE_VM_RESPONSE) => {
                    let _ = parent.compose(t, m.hdr.peerid, 0, None, &m.data);
                }
                t => log::warn!("{}: unexpected imsg {t} from vm process", vm.name),
            }
        }
    }

    /// Kills the vm processes that did not exit in time after SIGTERM.
    fn kill_overdue(&mut self) {
        let now = Instant::now();
        for (id, vm) in &mut self.running {
            if vm.kill_at.is_some_and(|t| t <= now) {
                log::warn!(
                    "{}: vm {id} did not exit after SIGTERM; killing it",
                    vm.name
                );
                let _ = vm.child.kill();
                vm.kill_at = None;
            }
        }
    }

    /// Handles exited vm processes: restart on reboot, else tell the parent.
    fn reap(&mut self, parent: &mut ImsgBuf, poll: &Poll) {
        let exited: Vec<(u32, Option<i32>)> = self
            .running
            .iter_mut()
            .filter_map(|(&id, vm)| match vm.child.try_wait() {
                Ok(Some(status)) => Some((id, status.code())),
                _ => None,
            })
            .collect();
        for (id, code) in exited {
            let Some(mut vm) = self.running.remove(&id) else {
                continue;
            };
            let _ = poll.registry().deregister(&mut vm.chan);
            // A VM being terminated stays down, whatever its last exit says.
            let reboot =
                code.is_some() && vm.kill_at.is_none() && (vm.reboot || code == Some(libc::EAGAIN));
            if reboot {
                // As vmd: restarts that come sooner than VM_START_RATE_SEC
                // after the last start are counted; too many in a row stop
                // the VM.
                let now = Instant::now();
                let quick = vm.starts.last().is_some_and(|t| {
                    now.duration_since(*t) < Duration::from_secs(VM_START_RATE_SEC)
                });
                vm.quick_restarts = if quick { vm.quick_restarts + 1 } else { 0 };
                if vm.quick_restarts >= VM_START_RATE_LIMIT {
                    log::warn!("{}: vm {id} restarted too quickly, stopping it", vm.name);
                } else {
                    log::info!("{}: vm {id} rebooting", vm.name);
                    match self.exec_vm(id, &vm.files) {
                        Ok((chan, child)) => {
                            vm.chan = chan;
                            vm.child = child;
                            vm.reboot = false;
                            vm.starts = vec![now];
                            if poll
                                .registry()
                                .register(
                                    &mut vm.chan,
                                    Token(VM_BASE + id as usize),
                                    Interest::READABLE,
                                )
                                .is_ok()
                            {
                                self.running.insert(id, vm);
                                continue;
                            }
                        }
                        Err(e) => log::warn!("{}: vm {id} could not restart: {e}", vm.name),
                    }
                }
            }
            // As vmm_sighdlr: an exit status is passed on, a death by
            // signal counts as 0; either way the VM is stopped, not
            // restarted, and the other VMs run on.
            let mut r = VmopResult::zeroed();
            r.vmr_result = match code {
                Some(libc::EAGAIN) | None => 0,
                Some(c) => c,
            };
            r.vmr_id = id;
            match code {
                Some(c) => log::debug!("{}: vm {id} exited with status {c}", vm.name),
                None => log::debug!("{}: vm {id} was terminated by a signal", vm.name),
            }
            let _ = parent.compose(IMSG_VMDOP_TERMINATE_VM_EVENT, id, 0, None, &r.to_bytes());
        }
    }

    /// On SIGTERM: asks every guest to shut down, gives them a moment,
    /// then stops what is left. Device processes flush their disks when
    /// their vm process goes away.
    fn terminate_all(&mut self) {
        for vm in self.running.values_mut() {
            vm.reboot = false;
            let _ = vm
                .chan
                .compose(IMSG_VMDOP_VM_SHUTDOWN, 0, 0, None, &[])
                .and_then(|()| vm.chan.flush());
        }
        let deadline = Instant::now() + TERMINATE_GRACE;
        while Instant::now() < deadline
            && self
                .running
                .values_mut()
                .any(|vm| matches!(vm.child.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        for vm in self.running.values_mut() {
            if let Ok(None) = vm.child.try_wait() {
                log::warn!("{}: vm did not shut down; killing it", vm.name);
                let _ = vm.child.kill();
            }
            let _ = vm.child.wait();
        }
    }
}

fn start_failed(parent: &mut ImsgBuf, id: u32, errno: i32, why: &str) {
    log::warn!("vmm: could not start vm {id}: {why}");
    let mut r = VmopResult::zeroed();
    r.vmr_result = errno;
    r.vmr_id = id;
    let _ = parent.compose(IMSG_VMDOP_START_VM_RESPONSE, id, 0, None, &r.to_bytes());
}

/// `struct vmop_id`: the VM's id and the flags.
fn vmop_id(m: &Imsg) -> (u32, u32) {
    match m.data_exact(VMOP_ID_SIZE) {
        Ok(d) => (
            u32::from_ne_bytes(d[0..4].try_into().unwrap_or_default()),
            u32::from_ne_bytes(d[72..76].try_into().unwrap_or_default()),
        ),
        Err(_) => (0, 0),
    }
}
