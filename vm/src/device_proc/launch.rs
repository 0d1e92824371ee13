//! The vm-process side: start a device process, hand it its device and
//! VM, wait for READY, then proxy the device's I/O BAR to it.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use devices::bus::AccessSize;
use devices::irq::Irq;
use devices::memory::GuestMemory;
use devices::pci::PciBarHandler;
use imsg::{ImsgBuf, ReadStatus};
use vmm_sys::Wire;

use super::{new_msg, viodev_msg, DeviceProcError, REPLY_TIMEOUT_MS};
use crate::abi::imsg_types::{
    IMSG_CTL_VERBOSE, IMSG_DEVOP_MSG, IMSG_VMDOP_PAUSE_VM, IMSG_VMDOP_UNPAUSE_VM,
};
use crate::abi::viodev_msg::*;
use crate::abi::{VirtioDev, VmdVm};
use crate::sys;

/// What to start.
pub struct LaunchSpec<'a> {
    /// The vmd binary (the C vmd uses its argv[0]).
    pub exe: &'a Path,
    /// The device, with `dev_type` and the data fds set as the child will
    /// see them; `sync_fd` and `async_fd` are filled in here.
    pub dev: VirtioDev,
    pub vm: &'a VmdVm,
    pub mem: &'a GuestMemory,
    /// Data fds the child inherits under the same numbers.
    pub data_fds: Vec<RawFd>,
    /// The hypervisor handle passed as `-i` (-1 where memory comes over
    /// the sync channel instead).
    pub vmm_fd: RawFd,
    pub debug: bool,
    pub verbose: u8,
}

/// A started device process that said READY.
pub struct DeviceProcess {
    child: Child,
    sync: ImsgBuf,
    async_chan: UnixStream,
    name: String,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn clear_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an fd number; async-signal-safe, so it may run
    // between fork and exec.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Starts the device process for `spec.dev` and waits until it is ready.
pub fn launch(spec: LaunchSpec<'_>) -> Result<DeviceProcess, DeviceProcError> {
    let (sync_parent, sync_child) =
        UnixStream::pair().map_err(DeviceProcError::io("socketpair"))?;
    let (async_parent, async_child) =
        UnixStream::pair().map_err(DeviceProcError::io("async socketpair"))?;
    let mut dev = spec.dev;
    dev.sync_fd = sync_child.as_raw_fd();
    dev.async_fd = async_child.as_raw_fd();
    let type_char = char::from(dev.dev_type);
    let name = match dev.dev_type {
        b'd' => format!("vioblk{}", dev.dev.vioblk().idx),
        b'n' => format!("vionet{}", dev.dev.vionet().idx),
        b's' => "vioscsi".to_string(),
        _ => format!("device '{type_char}'"),
    };
    let vm_name =
        String::from_utf8_lossy(vmm_sys::wire::c_str(&spec.vm.vm_params.vmc_name)).into_owned();
    log::debug!("{vm_name}: launching {name}");

    let mut cmd = Command::new(spec.exe);
    cmd.arg("-X")
        .arg(dev.sync_fd.to_string())
        .arg("-t")
        .arg(type_char.to_string())
        .arg("-i")
        .arg(spec.vmm_fd.to_string())
        .arg("-p")
        .arg(&vm_name);
    if spec.debug {
        cmd.arg("-d");
    }
    match spec.verbose {
        0 => {}
        1 => {
            cmd.arg("-v");
        }
        _ => {
            cmd.arg("-vv");
        }
    }
    let mut keep = spec.data_fds.clone();
    keep.extend([dev.sync_fd, dev.async_fd]);
    if spec.vmm_fd >= 0 {
        keep.push(spec.vmm_fd);
    }
    // SAFETY: the closure only calls fcntl, which is async-signal-safe,
    // and allocates nothing (keep is moved in and only read).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &keep {
                clear_cloexec(fd)?;
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(DeviceProcError::io("exec device process"))?;
    drop(sync_child);
    drop(async_child);

    let mut proc = DeviceProcess {
        child,
        sync: ImsgBuf::new(OwnedFd::from(sync_parent)),
        async_chan: async_parent,
        name,
    };
    match proc.handshake(&dev, spec.vm, spec.mem) {
        Ok(()) => Ok(proc),
        Err(e) => {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
            Err(e)
        }
    }
}

impl DeviceProcess {
    fn handshake(
        &mut self,
        dev: &VirtioDev,
        vm: &VmdVm,
        mem: &GuestMemory,
    ) -> Result<(), DeviceProcError> {
        let mut raw = std::fs::File::from(
            self.sync
                .as_fd()
                .try_clone_to_owned()
                .map_err(DeviceProcError::io("dup"))?,
        );
        raw.write_all(&dev.to_bytes())
            .map_err(DeviceProcError::io("send virtio_dev"))?;
        raw.write_all(&vm.to_bytes())
            .map_err(DeviceProcError::io("send vmd_vm"))?;
        self.sync.allow_fdpass();
        sys::send_guest_memory(&mut self.sync, mem)?;
        let reply = read_reply(&mut self.sync, &self.name)?;
        let msg = viodev_msg(&reply)?;
        match msg.msg_type {
            VIODEV_MSG_READY => {
                log::debug!("{}: device reports ready via sync channel", self.name);
                Ok(())
            }
            VIODEV_MSG_ERROR => Err(DeviceProcError::Protocol(format!(
                "{} failed to start: {}",
                self.name,
                std::io::Error::from_raw_os_error(msg.data as i32)
            ))),
            t => Err(DeviceProcError::Protocol(format!(
                "{}: expected ready message, got type {t}",
                self.name
            ))),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wires the process in: returns the BAR handler for the PCI bus and
    /// the handle for pause, unpause and shutdown. `irq` is the device's
    /// interrupt line; `on_failure` is called once, from any thread, if
    /// the process dies or breaks the protocol.
    pub fn attach(
        self,
        irq: Irq,
        on_failure: Arc<dyn Fn(String) + Send + Sync>,
    ) -> Result<(Arc<Mutex<RemoteRegisters>>, DeviceHandle), DeviceProcError> {
        let reader = self
            .async_chan
            .try_clone()
            .map_err(DeviceProcError::io("dup async channel"))?;
        let regs = Arc::new(Mutex::new(RemoteRegisters {
            sync: self.sync,
            irq: irq.clone(),
            name: self.name.clone(),
            failed: false,
            on_failure: on_failure.clone(),
        }));
        let name = self.name.clone();
        let events = thread::Builder::new()
            .name(format!("{name} events"))
            .spawn(move || async_events(reader, &irq, &name, &*on_failure))
            .map_err(DeviceProcError::io("spawn device event thread"))?;
        Ok((
            regs.clone(),
            DeviceHandle {
                child: Mutex::new(self.child),
                async_out: Mutex::new(ImsgBuf::new(OwnedFd::from(self.async_chan))),
                regs,
                name: self.name,
                _events: events,
            },
        ))
    }
}

/// Waits for one message on a blocking sync channel, at most
/// [`REPLY_TIMEOUT_MS`].
fn read_reply(sync: &mut ImsgBuf, name: &str) -> Result<imsg::Imsg, DeviceProcError> {
    let deadline = Instant::now() + Duration::from_millis(REPLY_TIMEOUT_MS as u64);
    loop {
        if let Some(m) = sync.get().map_err(DeviceProcError::imsg("device reply"))? {
            return Ok(m);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DeviceProcError::Protocol(format!(
                "{name}: no answer within {REPLY_TIMEOUT_MS} ms"
            )));
        }
        let mut pfd = libc::pollfd {
            fd: sync.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(DeviceProcError::Io {
                what: "poll",
                source: e,
            });
        }
        if n == 0 {
            continue;
        }
        match sync.read().map_err(DeviceProcError::imsg("device reply"))? {
            ReadStatus::Eof => {
                return Err(DeviceProcError::Protocol(format!(
                    "{name}: device process closed its channel"
                )))
            }
            ReadStatus::Data | ReadStatus::WouldBlock => {}
        }
    }
}

/// The shared handle to a device process's registers.
pub type RemoteRegistersHandle = Arc<Mutex<RemoteRegisters>>;

/// The device's I/O BAR, served by the device process.
pub struct RemoteRegisters {
    sync: ImsgBuf,
    irq: Irq,
    name: String,
    failed: bool,
    on_failure: Arc<dyn Fn(String) + Send + Sync>,
}

impl RemoteRegisters {
    fn fail(&mut self, e: DeviceProcError) {
        if !self.failed {
            self.failed = true;
            log::warn!("{}: {e}", self.name);
            (self.on_failure)(format!("{}: {e}", self.name));
        }
    }

    fn apply_state(&self, state: i8) {
        match state {
            INTR_STATE_ASSERT => self.irq.set_level(true),
            INTR_STATE_DEASSERT => self.irq.set_level(false),
            _ => {}
        }
    }

    fn send(&mut self, msg: &ViodevMsg) -> Result<(), DeviceProcError> {
        self.sync
            .compose(IMSG_DEVOP_MSG, 0, 0, None, &msg.to_bytes())
            .map_err(DeviceProcError::imsg("send to device"))?;
        self.sync
            .flush()
            .map_err(DeviceProcError::imsg("send to device"))
    }

    fn read_register(&mut self, offset: u16, size: AccessSize) -> Result<u32, DeviceProcError> {
        let mut msg = new_msg(VIODEV_MSG_IO_READ);
        msg.reg = offset;
        msg.io_sz = size.bytes() as u8;
        self.send(&msg)?;
        let reply = read_reply(&mut self.sync, &self.name)?;
        let r = viodev_msg(&reply)?;
        if reply.type_() != IMSG_DEVOP_MSG || r.msg_type != VIODEV_MSG_IO_READ || r.data_valid == 0
        {
            return Err(DeviceProcError::Protocol(format!(
                "expected IO_READ, got imsg {} message {}",
                reply.type_(),
                r.msg_type
            )));
        }
        self.apply_state(r.state);
        Ok(r.data)
    }

    /// Tells the device process to exit (VIODEV_MSG_SHUTDOWN, sent with
    /// that number as the imsg type, as the C vm process does).
    fn shutdown(&mut self) -> Result<(), DeviceProcError> {
        let msg = new_msg(VIODEV_MSG_SHUTDOWN);
        self.sync
            .compose(u32::from(VIODEV_MSG_SHUTDOWN), 0, 0, None, &msg.to_bytes())
            .map_err(DeviceProcError::imsg("send shutdown"))?;
        self.sync
            .flush()
            .map_err(DeviceProcError::imsg("send shutdown"))
    }
}

impl PciBarHandler for RemoteRegisters {
    fn bar_read(&mut self, _bar: u8, offset: u16, size: AccessSize) -> u32 {
        if self.failed {
            return size.mask();
        }
        match self.read_register(offset, size) {
            Ok(v) => v & size.mask(),
            Err(e) => {
                self.fail(e);
                size.mask()
            }
        }
    }

    fn bar_write(&mut self, _bar: u8, offset: u16, size: AccessSize, value: u32) {
        if self.failed {
            return;
        }
        let mut msg = new_msg(VIODEV_MSG_IO_WRITE);
        msg.reg = offset;
        msg.io_sz = size.bytes() as u8;
        msg.data = value;
        msg.data_valid = 1;
        if let Err(e) = self.send(&msg) {
            self.fail(e);
        }
    }
}

/// The async channel: interrupt kicks from the device, until it closes.
fn async_events(
    chan: UnixStream,
    irq: &Irq,
    name: &str,
    on_failure: &(dyn Fn(String) + Send + Sync),
) {
    let mut ibuf = ImsgBuf::new(OwnedFd::from(chan));
    loop {
        let msg = match ibuf.read_one() {
            Ok(Some(m)) => m,
            Ok(None) => {
                on_failure(format!("{name}: device process exited"));
                return;
            }
            Err(e) => {
                on_failure(format!("{name}: async channel: {e}"));
                return;
            }
        };
        if msg.type_() != IMSG_DEVOP_MSG {
            log::warn!("{name}: got non devop imsg {}", msg.type_());
            continue;
        }
        let m = match viodev_msg(&msg) {
            Ok(m) => m,
            Err(e) => {
                on_failure(format!("{name}: {e}"));
                return;
            }
        };
        match m.msg_type {
            VIODEV_MSG_KICK => match m.state {
                INTR_STATE_ASSERT => irq.set_level(true),
                INTR_STATE_DEASSERT => irq.set_level(false),
                _ => {}
            },
            VIODEV_MSG_READY => log::debug!("{name}: device reports ready"),
            VIODEV_MSG_ERROR => log::warn!("{name}: device reported error"),
            t => log::warn!("{name}: unsupported device message type {t}"),
        }
    }
}

/// Pause, unpause and shutdown of a running device process.
pub struct DeviceHandle {
    child: Mutex<Child>,
    async_out: Mutex<ImsgBuf>,
    regs: Arc<Mutex<RemoteRegisters>>,
    name: String,
    _events: thread::JoinHandle<()>,
}

impl DeviceHandle {
    pub fn pid(&self) -> u32 {
        lock(&self.child).id()
    }

    fn broadcast(&self, type_: u32, data: &[u8]) {
        let mut out = lock(&self.async_out);
        if let Err(e) = out
            .compose(type_, 0, 0, None, data)
            .and_then(|()| out.flush())
        {
            log::warn!("{}: failed to send imsg type {type_}: {e}", self.name);
        }
    }

    pub fn pause(&self) {
        self.broadcast(IMSG_VMDOP_PAUSE_VM, &[]);
    }

    pub fn unpause(&self) {
        self.broadcast(IMSG_VMDOP_UNPAUSE_VM, &[]);
    }

    /// vmd's verbosity, for the device process's log.
    pub fn set_verbosity(&self, verbose: i32) {
        self.broadcast(IMSG_CTL_VERBOSE, &verbose.to_ne_bytes());
    }

    /// Asks the process to exit and reaps it; kills it if it has not
    /// exited within `grace`.
    pub fn shutdown(&self, grace: Duration) {
        if let Err(e) = lock(&self.regs).shutdown() {
            log::debug!("{}: {e}", self.name);
        }
        let mut child = lock(&self.child);
        let deadline = Instant::now() + grace;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    log::debug!(
                        "{}: device process {} is stopped ({status})",
                        self.name,
                        child.id()
                    );
                    return;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    log::warn!(
                        "{}: device process {} did not exit; killing it",
                        self.name,
                        child.id()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}
