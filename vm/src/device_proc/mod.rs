//! Virtio devices in their own processes, with the protocol of the seed's
//! `virtio_dev_launch`:
//!
//! 1. the vm process makes two socket pairs (sync and async) and runs
//!    `vmd -X sync_fd -t type -i vmm_fd -p vmname [-d] [-v...]`, the child
//!    keeping its socket ends and its data fds (disk images, tap);
//! 2. it writes the raw `struct virtio_dev`, then the raw `struct vmd_vm`
//!    on the sync socket;
//! 3. the child maps guest memory (VMM_IOC_SHAREMEM on OpenBSD; on Linux
//!    the vm process sends one memfd per memory range as imsgs, see
//!    `crate::sys`) and answers READY (`viodev_msg`) on the sync channel;
//! 4. register reads and writes of the device's I/O BAR travel as
//!    IO_READ / IO_WRITE `viodev_msg`s on the sync channel (a read waits
//!    for its answer, which may carry an interrupt state); the child
//!    raises and lowers its interrupt with KICK messages on the async one;
//! 5. pause and unpause go to every child on the async channel; SHUTDOWN
//!    on the sync channel ends a child, and the vm process reaps it.
//!
//! [`launch`] is the vm-process side, [`child`] the device process.

pub mod child;
pub mod launch;
pub mod sharemem;

use crate::abi::viodev_msg::ViodevMsg;
use vmm_sys::Wire;

pub use launch::{
    launch, DeviceHandle, DeviceProcess, LaunchSpec, RemoteRegisters, RemoteRegistersHandle,
};

/// How long the vm process waits for a device's answer before it gives
/// the device up for dead.
pub const REPLY_TIMEOUT_MS: i32 = 5000;

#[derive(Debug, thiserror::Error)]
pub enum DeviceProcError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Imsg {
        what: &'static str,
        source: imsg::Error,
    },
    #[error("device protocol: {0}")]
    Protocol(String),
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("disk: {0}")]
    Disk(#[from] devices::disk::DiskError),
}

impl DeviceProcError {
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> DeviceProcError {
        move |source| DeviceProcError::Io { what, source }
    }

    pub(crate) fn imsg(what: &'static str) -> impl FnOnce(imsg::Error) -> DeviceProcError {
        move |source| DeviceProcError::Imsg { what, source }
    }
}

/// Decodes the `viodev_msg` payload of an imsg, which must be exactly its
/// size.
pub(crate) fn viodev_msg(msg: &imsg::Imsg) -> Result<ViodevMsg, DeviceProcError> {
    ViodevMsg::from_bytes(&msg.data)
        .map_err(|e| DeviceProcError::Protocol(format!("imsg type {}: {e}", msg.type_())))
}

/// A zeroed message of `msg_type`.
pub(crate) fn new_msg(msg_type: u8) -> ViodevMsg {
    let mut m = ViodevMsg::zeroed();
    m.msg_type = msg_type;
    m
}

/// Puts the guest memory map into vm parameters, as vmd's vm process does
/// before it starts device processes (which on OpenBSD share exactly these
/// ranges through VMM_IOC_SHAREMEM).
pub fn set_memranges(
    p: &mut crate::abi::vmop::VmopCreateParams,
    map: &[crate::memory_layout::Range],
) -> Result<(), DeviceProcError> {
    use crate::memory_layout::RangeKind;
    use vmm_sys::consts::{VMM_MAX_MEM_RANGES, VM_MEM_RAM, VM_MEM_RESERVED};

    let ranges: Vec<_> = map.iter().filter(|r| r.kind != RangeKind::Mmio).collect();
    if ranges.len() > VMM_MAX_MEM_RANGES {
        return Err(DeviceProcError::Memory(format!(
            "{} memory ranges",
            ranges.len()
        )));
    }
    p.vmc_nmemranges = ranges.len() as u64;
    for (slot, r) in p.vmc_memranges.iter_mut().zip(&ranges) {
        slot.vmr_gpa = r.gpa;
        slot.vmr_size = r.size;
        slot.vmr_type = if r.kind == RangeKind::Ram {
            VM_MEM_RAM
        } else {
            VM_MEM_RESERVED
        };
    }
    Ok(())
}

/// The parts of `struct vmd_vm` a device process reads: the name, the
/// memory ranges, and each disk's path, format and number of images.
pub fn describe_vm(
    name: &str,
    map: &[crate::memory_layout::Range],
    disks: &[(&std::path::Path, devices::disk::ImageFormat, usize)],
) -> Result<crate::abi::VmdVm, DeviceProcError> {
    use crate::abi::vmop::{VMDF_QCOW2, VMDF_RAW};
    let mut vm = crate::abi::VmdVm::zeroed();
    let p = &mut vm.vm_params;
    p.vmc_name = vmm_sys::wire::c_string(name)
        .ok_or_else(|| DeviceProcError::Protocol(format!("vm name {name:?} too long")))?;
    p.vmc_ncpus = 1;
    set_memranges(p, map)?;
    if disks.len() > crate::abi::VM_MAX_DISKS_PER_VM {
        return Err(DeviceProcError::Protocol(format!("{} disks", disks.len())));
    }
    p.vmc_ndisks = disks.len() as u64;
    for (i, (path, format, bases)) in disks.iter().enumerate() {
        p.vmc_disks[i] = vmm_sys::wire::c_string(&path.to_string_lossy()).ok_or_else(|| {
            DeviceProcError::Protocol(format!("disk path {} too long", path.display()))
        })?;
        p.vmc_disktypes[i] = match format {
            devices::disk::ImageFormat::Raw => VMDF_RAW,
            devices::disk::ImageFormat::Qcow2 => VMDF_QCOW2,
        };
        p.vmc_diskbases[i] = *bases as u32;
    }
    Ok(vm)
}

/// The `struct virtio_dev` of vioblk number `idx`, whose image and backing
/// files are open as `fds` (the image first).
pub fn vioblk_dev(
    idx: u32,
    fds: &[std::os::fd::RawFd],
) -> Result<crate::abi::VirtioDev, DeviceProcError> {
    use crate::abi::virtio_dev::VMD_DEVTYPE_DISK;
    use crate::abi::VM_MAX_BASE_PER_DISK;

    if fds.is_empty() || fds.len() > VM_MAX_BASE_PER_DISK {
        return Err(DeviceProcError::Protocol(format!(
            "vioblk{idx} with {} image files",
            fds.len()
        )));
    }
    let mut dev = crate::abi::VirtioDev::zeroed();
    dev.dev_type = VMD_DEVTYPE_DISK;
    dev.device_id = devices::virtio::DEVICE_BLOCK;
    let mut blk = dev.dev.vioblk();
    blk.disk_fd = [-1; VM_MAX_BASE_PER_DISK];
    blk.disk_fd[..fds.len()].copy_from_slice(fds);
    blk.ndisk_fd = fds.len() as u8;
    blk.idx = idx;
    blk.seg_max = devices::virtio::blk::VIOBLK_SEG_MAX_DEFAULT;
    dev.dev.set_vioblk(&blk);
    Ok(dev)
}

/// The `struct virtio_dev` of vionet number `idx` on the tap `tap_fd`, as
/// the seed's virtio_init fills it from the VM's parameters.
pub fn vionet_dev(
    idx: u32,
    tap_fd: std::os::fd::RawFd,
    vm: &crate::abi::VmdVm,
    local_prefix: &crate::abi::LocalPrefix,
) -> crate::abi::VirtioDev {
    use crate::abi::vmop::{VMBOOTDEV_NET, VMIFF_LOCAL, VMIFF_LOCKED};
    let p = &vm.vm_params;
    let i = idx as usize;
    let mut dev = crate::abi::VirtioDev::zeroed();
    dev.dev_type = crate::abi::virtio_dev::VMD_DEVTYPE_NET;
    dev.device_id = devices::virtio::DEVICE_NETWORK;
    let mut net = dev.dev.vionet();
    net.data_fd = tap_fd;
    net.mac = p.vmc_macs.get(i).copied().unwrap_or_default();
    let flags = p.vmc_ifflags.get(i).copied().unwrap_or_default();
    net.lockedmac = i32::from(flags & VMIFF_LOCKED != 0);
    net.local = i32::from(flags & VMIFF_LOCAL != 0);
    net.pxeboot = i32::from(idx == 0 && p.vmc_bootdevice == VMBOOTDEV_NET);
    net.local_prefix = *local_prefix;
    net.idx = idx;
    dev.dev.set_vionet(&net);
    dev
}

/// The `struct virtio_dev` of the CD-ROM, whose image is open as
/// `cdrom_fd` (read-only).
pub fn vioscsi_dev(cdrom_fd: std::os::fd::RawFd) -> crate::abi::VirtioDev {
    let mut dev = crate::abi::VirtioDev::zeroed();
    dev.dev_type = crate::abi::virtio_dev::VMD_DEVTYPE_SCSI;
    dev.device_id = devices::virtio::DEVICE_SCSI;
    let mut cd = dev.dev.vioscsi();
    cd.cdrom_fd = cdrom_fd;
    cd.max_xfer = 2048;
    dev.dev.set_vioscsi(&cd);
    dev
}
