//! `struct virtio_dev` (virtio.h) and the structs inside it. The vm process
//! writes a whole `virtio_dev` to each new device child before it execs
//! (seed: `virtio_dev_launch`), so every byte here is protocol.

use vmm_sys::wire::Wire;
use vmm_sys::wire_struct;

use super::cstate::{Event, ImsgEv, Timeval, VirtioBacking, VmDevPipe};
use super::local_prefix::LocalPrefix;
use super::VM_MAX_BASE_PER_DISK;

/// All devices have 1, 2 or 3 virtqueues.
pub const VIRTIO_MAX_QUEUES: usize = 3;

/// `virtio_dev.dev_type`: which child a device runs in.
pub const VMD_DEVTYPE_NET: u8 = b'n';
pub const VMD_DEVTYPE_DISK: u8 = b'd';
/// The CD-ROM child (2026, seed `VMD_DEVTYPE_SCSI`; the letter is our
/// choice, see ABI.md).
pub const VMD_DEVTYPE_SCSI: u8 = b's';

/// `vmmci_dev.cmd` (`enum vmmci_cmd`).
pub const VMMCI_NONE: u32 = 0;
pub const VMMCI_SHUTDOWN: u32 = 1;
pub const VMMCI_REBOOT: u32 = 2;
pub const VMMCI_SYNCRTC: u32 = 3;

wire_struct! {
    /// Legacy virtio 0.9 register state (`struct virtio_io_cfg`).
    #[repr(C)]
    pub struct VirtioIoCfg = "virtio_io_cfg" {
        pub device_feature: u32,
        pub guest_feature: u32,
        pub queue_pfn: u32,
        pub queue_select: u16,
        pub queue_size: u16,
        pub queue_notify: u16,
    }
}

wire_struct! {
    /// Virtio 1.x common configuration (`struct virtio_pci_common_cfg`,
    /// dev/pci/virtio_pcireg.h), packed in C.
    #[repr(C, packed)]
    pub struct VirtioPciCommonCfg = "virtio_pci_common_cfg" {
        pub device_feature_select: u32,
        pub device_feature: u32,
        pub driver_feature_select: u32,
        pub driver_feature: u32,
        pub config_msix_vector: u16,
        pub num_queues: u16,
        pub device_status: u8,
        pub config_generation: u8,
        pub queue_select: u16,
        pub queue_size: u16,
        pub queue_msix_vector: u16,
        pub queue_enable: u16,
        pub queue_notify_off: u16,
        pub queue_desc: u64,
        pub queue_avail: u64,
        pub queue_used: u64,
    }
}

wire_struct! {
    /// One virtqueue's state (`struct virtio_vq_info`).
    #[repr(C)]
    pub struct VirtioVqInfo = "virtio_vq_info" {
        pub q_gpa: u64,
        /// `void *`: host address of the ring in the sender.
        pub q_hva: u64,
        pub qs: u32,
        pub mask: u32,
        pub vq_availoffset: u32,
        pub vq_usedoffset: u32,
        pub last_avail: u16,
        pub notified_avail: u16,
        pub vq_enabled: u8,
    }
}

wire_struct! {
    /// Block device state (`struct vioblk_dev`).
    #[repr(C)]
    pub struct VioblkDev = "vioblk_dev" {
        pub file: VirtioBacking,
        /// Descriptors of the disk image and its bases, -1 if unused.
        pub disk_fd: [i32; VM_MAX_BASE_PER_DISK],
        pub ndisk_fd: u8,
        /// Size in 512-byte sectors.
        pub capacity: u64,
        pub seg_max: u32,
        pub idx: u32,
    }
}

wire_struct! {
    /// SCSI CD-ROM state (`struct vioscsi_dev`, with the 2026 `cdrom_fd`).
    #[repr(C)]
    pub struct VioscsiDev = "vioscsi_dev" {
        pub file: VirtioBacking,
        pub cdrom_fd: i32,
        pub locked: i32,
        /// ISO size in bytes.
        pub sz: u64,
        pub lba: u64,
        pub n_blocks: u64,
        pub max_xfer: u32,
    }
}

wire_struct! {
    /// Network device state (`struct vionet_dev`).
    #[repr(C)]
    pub struct VionetDev = "vionet_dev" {
        /// The tap(4) descriptor.
        pub data_fd: i32,
        pub mac: [u8; 6],
        pub hostmac: [u8; 6],
        pub lockedmac: i32,
        pub local: i32,
        pub pxeboot: i32,
        pub local_prefix: LocalPrefix,
        pub idx: u32,
    }
}

wire_struct! {
    /// VMM control interface state (`struct vmmci_dev`); in-process only.
    #[repr(C)]
    pub struct VmmciDev = "vmmci_dev" {
        pub timeout: Event,
        pub time: Timeval,
        /// `VMMCI_*`.
        pub cmd: u32,
        /// `pthread_mutex_t`, a pointer on OpenBSD.
        pub mutex: u64,
        pub dev_pipe: VmDevPipe,
    }
}

/// Size of the anonymous union in `struct virtio_dev` (its largest member,
/// `vmmci_dev`).
pub const VIRTIO_DEV_UNION_SIZE: usize = 296;

wire_struct! {
    /// The device-specific union of `struct virtio_dev`, kept as raw bytes.
    /// `dev_type` / `device_id` say which member is live; the typed views
    /// below decode the bytes, and every bit pattern is a valid value of
    /// every view, so no view is unsound.
    #[repr(C, align(8))]
    pub struct VirtioDevUnion = "virtio_dev union" {
        pub bytes: [u8; VIRTIO_DEV_UNION_SIZE],
    }
}

impl VirtioDevUnion {
    fn view<T: Wire>(&self) -> T {
        T::get(&self.bytes[..T::SIZE])
    }

    fn set<T: Wire>(&mut self, v: &T) {
        // C's union assignment leaves the tail as it was; we zero it so
        // stale bytes of another member never leak.
        self.bytes.fill(0);
        v.put(&mut self.bytes[..T::SIZE]);
    }

    pub fn vioblk(&self) -> VioblkDev {
        self.view()
    }
    pub fn set_vioblk(&mut self, v: &VioblkDev) {
        self.set(v)
    }
    pub fn vionet(&self) -> VionetDev {
        self.view()
    }
    pub fn set_vionet(&mut self, v: &VionetDev) {
        self.set(v)
    }
    pub fn vmmci(&self) -> VmmciDev {
        self.view()
    }
    pub fn set_vmmci(&mut self, v: &VmmciDev) {
        self.set(v)
    }
    pub fn vioscsi(&self) -> VioscsiDev {
        self.view()
    }
    pub fn set_vioscsi(&mut self, v: &VioscsiDev) {
        self.set(v)
    }
}

const _: () = assert!(VioblkDev::SIZE <= VIRTIO_DEV_UNION_SIZE);
const _: () = assert!(VionetDev::SIZE <= VIRTIO_DEV_UNION_SIZE);
const _: () = assert!(VioscsiDev::SIZE <= VIRTIO_DEV_UNION_SIZE);
const _: () = assert!(VmmciDev::SIZE == VIRTIO_DEV_UNION_SIZE);

wire_struct! {
    /// `struct virtio_dev` with the 2026 names the seed uses: `vmm_id` is
    /// vmm(4)'s VM id, `vm_id` is vmd's (they were `vm_id` and `vm_vmid` in
    /// virtio.h 1.56; same slots, see ABI.md).
    #[repr(C)]
    pub struct VirtioDev = "virtio_dev" {
        /// PCI product id of the virtio device.
        pub device_id: u16,
        /// The `vioblk` / `vionet` / `vmmci` / `vioscsi` union.
        pub dev: VirtioDevUnion,
        pub cfg: VirtioIoCfg,
        pub pci_cfg: VirtioPciCommonCfg,
        pub vq: [VirtioVqInfo; VIRTIO_MAX_QUEUES],
        pub num_queues: u16,
        pub queue_size: u16,
        pub isr: u8,
        pub status: u8,
        pub device_feature: u64,
        pub driver_feature: u64,
        pub pci_id: u8,
        pub vmm_id: u32,
        pub irq: i32,
        pub async_iev: ImsgEv,
        pub sync_iev: ImsgEv,
        pub sync_fd: i32,
        pub async_fd: i32,
        pub vm_id: u32,
        pub dev_pid: i32,
        /// `VMD_DEVTYPE_*` (a C `char`).
        pub dev_type: u8,
        /// `SLIST_ENTRY(virtio_dev)`: one pointer.
        pub dev_next: u64,
    }
}
