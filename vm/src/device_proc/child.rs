//! The device process (`vmd -X fd -t type -i fd -p vmname`): receives its
//! device and VM, maps guest memory, opens its backend, says READY, and
//! then serves register accesses until SHUTDOWN or until the vm process
//! goes away.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use devices::bus::AccessSize;
use devices::disk::{self, DiskBackend, ImageFormat};
use devices::irq::IrqLine;
use devices::memory::GuestMemory;
use devices::pci::PciBarHandler;
use devices::virtio::blk::Blk;
use devices::virtio::net::{NetBackend, VirtioNet, RXQ};
use devices::virtio::pci::{Layout, VirtioPci};
use devices::virtio::scsi::Scsi;
use devices::virtio::VirtioDevice;
use imsg::{ImsgBuf, ReadStatus};
use vmm_sys::Wire;

use super::{new_msg, viodev_msg, DeviceProcError};
use crate::abi::imsg_types::{
    IMSG_CTL_VERBOSE, IMSG_DEVOP_HOSTMAC, IMSG_DEVOP_MSG, IMSG_VMDOP_PAUSE_VM,
    IMSG_VMDOP_UNPAUSE_VM,
};
use crate::abi::viodev_msg::*;
use crate::abi::virtio_dev::{VMD_DEVTYPE_DISK, VMD_DEVTYPE_NET, VMD_DEVTYPE_SCSI};
use crate::abi::vmop::{VMDF_QCOW2, VMDF_RAW};
use crate::abi::{VirtioDev, VmdVm, VM_MAX_BASE_PER_DISK, VM_MAX_DISKS_PER_VM};
use crate::sys;

/// The command line of a device process.
#[derive(Clone, Debug)]
pub struct DeviceArgs {
    /// `-X`: the sync channel.
    pub sync_fd: RawFd,
    /// `-t`: the device type letter.
    pub dev_type: u8,
    /// `-i`: the hypervisor handle.
    pub vmm_fd: RawFd,
    /// `-p`: the VM's name.
    pub vm_name: String,
}

/// Interrupt changes made while serving one register access: a read
/// returns the last one in its reply, a write sends it as a KICK.
#[derive(Default)]
struct PendingIrq(Mutex<Option<bool>>);

impl IrqLine for PendingIrq {
    fn set_level(&self, level: bool) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }
}

impl PendingIrq {
    fn take(&self) -> i8 {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(true) => INTR_STATE_ASSERT,
            Some(false) => INTR_STATE_DEASSERT,
            None => INTR_STATE_NOOP,
        }
    }
}

/// A device model as its process runs it: register accesses, plus an
/// optional fd (the tap) to read from when it is readable.
trait DeviceModel {
    fn bar_read(&mut self, offset: u16, size: AccessSize) -> u32;
    fn bar_write(&mut self, offset: u16, size: AccessSize, value: u32);
    /// An fd to poll for input, while the device can take input.
    fn input_fd(&self) -> Option<RawFd> {
        None
    }
    /// The input fd is readable.
    fn on_input(&mut self) {}
    /// IMSG_DEVOP_HOSTMAC from the vm process.
    fn set_host_mac(&mut self, _mac: [u8; 6]) {}
}

impl DeviceModel for VirtioPci<Blk> {
    fn bar_read(&mut self, offset: u16, size: AccessSize) -> u32 {
        PciBarHandler::bar_read(self, 0, offset, size)
    }
    fn bar_write(&mut self, offset: u16, size: AccessSize, value: u32) {
        PciBarHandler::bar_write(self, 0, offset, size, value)
    }
}

/// The guest's frames go to the tap; a frame that does not fit the tap
/// right now is dropped and counted by the device, as a full link drops.
struct TapWriter(File);

impl NetBackend for TapWriter {
    fn transmit(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.0.write(frame).map(drop)
    }
}

/// vionet: the device model, and the tap it reads frames for the guest
/// from. The tap is only read while the device can queue a frame, so
/// frames wait in the tap instead of being dropped here.
struct NetModel {
    pci: VirtioPci<VirtioNet<TapWriter>>,
    tap: File,
    buf: Vec<u8>,
}

impl DeviceModel for NetModel {
    fn bar_read(&mut self, offset: u16, size: AccessSize) -> u32 {
        PciBarHandler::bar_read(&mut self.pci, 0, offset, size)
    }
    fn bar_write(&mut self, offset: u16, size: AccessSize, value: u32) {
        PciBarHandler::bar_write(&mut self.pci, 0, offset, size, value)
    }
    fn input_fd(&self) -> Option<RawFd> {
        self.pci
            .device()
            .can_receive()
            .then(|| self.tap.as_raw_fd())
    }
    fn on_input(&mut self) {
        while self.pci.device().can_receive() {
            match self.tap.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    let frame = self.buf[..n].to_vec();
                    self.pci.device_mut().receive(frame);
                }
                Err(_) => break,
            }
        }
        self.pci.service_queue(RXQ);
    }
    fn set_host_mac(&mut self, mac: [u8; 6]) {
        self.pci.device_mut().set_host_mac(mac);
    }
}

/// Takes an inherited fd number the launcher named; it must be open.
fn inherited(fd: RawFd, what: &str) -> Result<OwnedFd, DeviceProcError> {
    // SAFETY: F_GETFD only inspects the fd table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(DeviceProcError::Protocol(format!(
            "{what}: fd {fd} is not open"
        )));
    }
    // SAFETY: the fd is open, the launcher passed it to this process for
    // this purpose, and nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Runs the device process; returns the exit status.
pub fn main(args: DeviceArgs) -> i32 {
    let sync_fd = match inherited(args.sync_fd, "sync channel") {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("{e}");
            return libc::EBADF;
        }
    };
    let mut sync_file = File::from(sync_fd);
    let mut sync = match sync_file.try_clone() {
        Ok(f) => ImsgBuf::new(OwnedFd::from(f)),
        Err(e) => {
            log::warn!("dup sync channel: {e}");
            return libc::EIO;
        }
    };
    match run(&args, &mut sync_file, &mut sync) {
        Ok(()) => 0,
        Err((errno, e)) => {
            log::warn!("{}: {e}", args.vm_name);
            // Try letting the vm process know.
            let mut msg = new_msg(VIODEV_MSG_ERROR);
            msg.data = errno as u32;
            let _ = sync
                .compose(IMSG_DEVOP_MSG, 0, 0, None, &msg.to_bytes())
                .and_then(|()| sync.flush());
            errno
        }
    }
}

type Failure = (i32, DeviceProcError);

fn fail(errno: i32) -> impl FnOnce(DeviceProcError) -> Failure {
    move |e| (errno, e)
}

fn run(args: &DeviceArgs, raw: &mut File, sync: &mut ImsgBuf) -> Result<(), Failure> {
    let mut buf = vec![0u8; VirtioDev::SIZE];
    raw.read_exact(&mut buf)
        .map_err(DeviceProcError::io("failed to receive device"))
        .map_err(fail(libc::EIO))?;
    let dev = VirtioDev::get(&buf);
    if dev.dev_type != args.dev_type {
        return Err((
            libc::EINVAL,
            DeviceProcError::Protocol(format!(
                "received invalid device type '{}' (expected '{}')",
                char::from(dev.dev_type),
                char::from(args.dev_type)
            )),
        ));
    }
    let mut buf = vec![0u8; VmdVm::SIZE];
    raw.read_exact(&mut buf)
        .map_err(DeviceProcError::io("failed to receive vm details"))
        .map_err(fail(libc::EIO))?;
    let vm = VmdVm::get(&buf);
    sync.allow_fdpass();
    let mem = sys::receive_guest_memory(sync, args.vmm_fd, &vm).map_err(fail(libc::EIO))?;
    let async_fd = inherited(dev.async_fd, "async channel").map_err(fail(libc::EBADF))?;

    let irq = Arc::new(PendingIrq::default());
    let mut device: Box<dyn DeviceModel> = match dev.dev_type {
        VMD_DEVTYPE_DISK => Box::new(block_device(&dev, &vm, mem, irq.clone())?),
        VMD_DEVTYPE_NET => Box::new(net_device(&dev, &vm, mem, irq.clone())?),
        VMD_DEVTYPE_SCSI => Box::new(scsi_device(&dev, &vm, mem, irq.clone())?),
        t => {
            return Err((
                libc::EINVAL,
                DeviceProcError::Protocol(format!("invalid device type '{}'", char::from(t))),
            ))
        }
    };

    let mut events = ImsgBuf::new(async_fd);
    let ready = new_msg(VIODEV_MSG_READY);
    for chan in [&mut *sync, &mut events] {
        chan.compose(IMSG_DEVOP_MSG, 0, 0, None, &ready.to_bytes())
            .and_then(|()| chan.flush())
            .map_err(DeviceProcError::imsg("send ready"))
            .map_err(fail(libc::EIO))?;
    }
    serve(sync, &mut events, &mut *device, &irq).map_err(fail(libc::EIO))
}

/// vioscsi: the CD-ROM on the read-only image vm.conf's `cdrom` names.
fn scsi_device(
    dev: &VirtioDev,
    vm: &VmdVm,
    mem: GuestMemory,
    irq: Arc<PendingIrq>,
) -> Result<VirtioPci<Scsi>, Failure> {
    let cd = dev.dev.vioscsi();
    let file = File::from(inherited(cd.cdrom_fd, "cdrom image").map_err(fail(libc::EBADF))?);
    let path = PathBuf::from(
        String::from_utf8_lossy(vmm_sys::wire::c_str(&vm.vm_params.vmc_cdrom)).into_owned(),
    );
    // An ISO is raw unless it says it is qcow2.
    let mut magic = [0u8; 4];
    let is_qcow2 = std::os::unix::fs::FileExt::read_exact_at(&file, &mut magic, 0).is_ok()
        && &magic == b"QFI\xfb";
    let format = if is_qcow2 {
        ImageFormat::Qcow2
    } else {
        ImageFormat::Raw
    };
    let image = disk::open_image_files(vec![file], &path, format, true)
        .map_err(|e| (libc::EIO, e.into()))?;
    log::debug!("vioscsi: {} ({} image)", path.display(), format.name());
    Ok(VirtioPci::new(
        Scsi::new(Box::new(DiskBackend::new(image))),
        Layout::Modern,
        mem,
        irq,
    ))
}

impl DeviceModel for VirtioPci<Scsi> {
    fn bar_read(&mut self, offset: u16, size: AccessSize) -> u32 {
        PciBarHandler::bar_read(self, 0, offset, size)
    }
    fn bar_write(&mut self, offset: u16, size: AccessSize, value: u32) {
        PciBarHandler::bar_write(self, 0, offset, size, value)
    }
}

fn net_device(
    dev: &VirtioDev,
    vm: &VmdVm,
    mem: GuestMemory,
    irq: Arc<PendingIrq>,
) -> Result<NetModel, Failure> {
    let net = dev.dev.vionet();
    let tap = File::from(inherited(net.data_fd, "tap").map_err(fail(libc::EBADF))?);
    let nonblocking = |f: &File| {
        // SAFETY: fcntl on an open fd.
        let flags = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) };
        // SAFETY: as above.
        flags != -1
            && unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } != -1
    };
    if !nonblocking(&tap) {
        return Err((
            libc::EIO,
            DeviceProcError::Io {
                what: "tap",
                source: std::io::Error::last_os_error(),
            },
        ));
    }
    let writer = tap
        .try_clone()
        .map_err(DeviceProcError::io("dup tap"))
        .map_err(fail(libc::EIO))?;
    let dhcp = (net.local != 0).then(|| {
        let p = &net.local_prefix;
        let prefix = devices::dhcp::LocalPrefix {
            addr: std::net::Ipv4Addr::from(p.lp_in),
            mask: std::net::Ipv4Addr::from(p.lp_mask),
        };
        let name =
            String::from_utf8_lossy(vmm_sys::wire::c_str(&vm.vm_params.vmc_name)).into_owned();
        devices::dhcp::DhcpServer {
            mac: net.mac,
            host_mac: net.hostmac,
            prefix,
            vmid: vm.vm_vmid,
            idx: net.idx,
            netboot_hostname: (net.pxeboot != 0).then_some(name),
            netboot: net.pxeboot != 0,
        }
    });
    log::debug!(
        "vionet{}: lladdr {:02x?}{}{}",
        net.idx,
        net.mac,
        if net.lockedmac != 0 { ", locked" } else { "" },
        if net.local != 0 { ", local" } else { "" }
    );
    let model = VirtioNet::new(net.mac, net.lockedmac != 0, dhcp, TapWriter(writer));
    Ok(NetModel {
        pci: VirtioPci::new(model, Layout::Modern, mem, irq),
        tap,
        buf: vec![0u8; devices::virtio::net::VIONET_MAX_TXLEN],
    })
}

fn block_device(
    dev: &VirtioDev,
    vm: &VmdVm,
    mem: GuestMemory,
    irq: Arc<PendingIrq>,
) -> Result<VirtioPci<Blk>, Failure> {
    let blk = dev.dev.vioblk();
    let idx = blk.idx as usize;
    let n = usize::from(blk.ndisk_fd);
    if idx >= VM_MAX_DISKS_PER_VM || n == 0 || n > VM_MAX_BASE_PER_DISK {
        return Err((
            libc::EINVAL,
            DeviceProcError::Protocol(format!("vioblk{idx} with {n} image files")),
        ));
    }
    let format = match vm.vm_params.vmc_disktypes[idx] {
        VMDF_RAW => ImageFormat::Raw,
        VMDF_QCOW2 => ImageFormat::Qcow2,
        t => {
            return Err((
                libc::EINVAL,
                DeviceProcError::Protocol(format!("invalid disk image type {t}")),
            ))
        }
    };
    let mut files = Vec::with_capacity(n);
    for &fd in &blk.disk_fd[..n] {
        files.push(File::from(
            inherited(fd, "disk image").map_err(fail(libc::EBADF))?,
        ));
    }
    let path = PathBuf::from(
        String::from_utf8_lossy(vmm_sys::wire::c_str(&vm.vm_params.vmc_disks[idx])).into_owned(),
    );
    let image =
        disk::open_image_files(files, &path, format, false).map_err(|e| (libc::EIO, e.into()))?;
    log::debug!(
        "initialized vioblk{idx} with {} image (sz={})",
        format.name(),
        image.size() / 512
    );
    let device = Blk::new(Box::new(DiskBackend::new(image)));
    debug_assert_eq!(device.device_type(), devices::virtio::DEVICE_BLOCK);
    Ok(VirtioPci::new(device, Layout::Modern, mem, irq))
}

/// Serves the sync channel (register accesses) and the async one (pause,
/// unpause) until SHUTDOWN or EOF.
fn serve(
    sync: &mut ImsgBuf,
    events: &mut ImsgBuf,
    device: &mut dyn DeviceModel,
    irq: &PendingIrq,
) -> Result<(), DeviceProcError> {
    loop {
        let input = device.input_fd();
        let mut fds = [
            libc::pollfd {
                fd: sync.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: events.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: input.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on three pollfds (a negative fd is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(DeviceProcError::Io {
                what: "poll",
                source: e,
            });
        }
        if fds[0].revents != 0 {
            if sync.read().map_err(DeviceProcError::imsg("sync channel"))? == ReadStatus::Eof {
                log::debug!("sync channel closed; exiting");
                return Ok(());
            }
            while let Some(msg) = sync.get().map_err(DeviceProcError::imsg("sync channel"))? {
                if msg.type_() == u32::from(VIODEV_MSG_SHUTDOWN) {
                    log::debug!("shutting down");
                    return Ok(());
                }
                if msg.type_() != IMSG_DEVOP_MSG {
                    log::warn!("sync channel: unexpected imsg type {}", msg.type_());
                    continue;
                }
                let m = viodev_msg(&msg)?;
                handle_io(sync, events, device, irq, &m)?;
                if m.msg_type == VIODEV_MSG_SHUTDOWN {
                    return Ok(());
                }
            }
        }
        if fds[1].revents != 0 {
            if events
                .read()
                .map_err(DeviceProcError::imsg("async channel"))?
                == ReadStatus::Eof
            {
                log::debug!("async channel closed; exiting");
                return Ok(());
            }
            while let Some(msg) = events
                .get()
                .map_err(DeviceProcError::imsg("async channel"))?
            {
                match msg.type_() {
                    IMSG_VMDOP_PAUSE_VM => log::debug!("pausing"),
                    IMSG_VMDOP_UNPAUSE_VM => log::debug!("unpausing"),
                    IMSG_CTL_VERBOSE => match msg.get::<i32>() {
                        Ok(v) => crate::log_level::set_verbosity(v),
                        Err(e) => log::warn!("async channel: {e}"),
                    },
                    IMSG_DEVOP_HOSTMAC => match <[u8; 6]>::try_from(&msg.data[..]) {
                        Ok(mac) => device.set_host_mac(mac),
                        Err(_) => log::warn!("async channel: bad host MAC"),
                    },
                    t => log::warn!("async channel: unhandled imsg type {t}"),
                }
            }
        }
        if fds[2].revents != 0 {
            device.on_input();
            kick(events, irq)?;
        }
    }
}

/// Sends the interrupt change the last operation made, if any, as a KICK.
fn kick(events: &mut ImsgBuf, irq: &PendingIrq) -> Result<(), DeviceProcError> {
    let state = irq.take();
    if state == INTR_STATE_NOOP {
        return Ok(());
    }
    let mut kick = new_msg(VIODEV_MSG_KICK);
    kick.state = state;
    events
        .compose(IMSG_DEVOP_MSG, 0, 0, None, &kick.to_bytes())
        .and_then(|()| events.flush())
        .map_err(DeviceProcError::imsg("send kick"))
}

fn handle_io(
    sync: &mut ImsgBuf,
    events: &mut ImsgBuf,
    device: &mut dyn DeviceModel,
    irq: &PendingIrq,
    m: &ViodevMsg,
) -> Result<(), DeviceProcError> {
    let size = AccessSize::from_len(usize::from(m.io_sz));
    match (m.msg_type, size) {
        (VIODEV_MSG_IO_READ, Some(size)) => {
            let mut reply = new_msg(VIODEV_MSG_IO_READ);
            reply.reg = m.reg;
            reply.io_sz = m.io_sz;
            reply.data = device.bar_read(m.reg, size);
            reply.data_valid = 1;
            reply.state = irq.take();
            sync.compose(IMSG_DEVOP_MSG, 0, 0, None, &reply.to_bytes())
                .and_then(|()| sync.flush())
                .map_err(DeviceProcError::imsg("sync reply"))
        }
        (VIODEV_MSG_IO_WRITE, Some(size)) => {
            device.bar_write(m.reg, size, m.data);
            kick(events, irq)
        }
        (VIODEV_MSG_IO_READ, None) => {
            // Answer anyway so the vcpu does not wait for nothing.
            log::warn!("register read of {} bytes", m.io_sz);
            let mut reply = new_msg(VIODEV_MSG_IO_READ);
            reply.data = u32::MAX;
            reply.data_valid = 1;
            sync.compose(IMSG_DEVOP_MSG, 0, 0, None, &reply.to_bytes())
                .and_then(|()| sync.flush())
                .map_err(DeviceProcError::imsg("sync reply"))
        }
        (t, _) => {
            log::warn!("unsupported device message type {t}");
            Ok(())
        }
    }
}
