//! The virtio PCI transport in an I/O BAR, register for register as vmd.
//!
//! Two layouts, chosen per device as vmd does:
//!
//! - [`Layout::Modern`] (virtio 1.x, viornd, vioblk, ...): the BAR holds the
//!   common configuration at 0x000, the notify register at 0x100, the ISR at
//!   0x200 and the device configuration at 0x300, each announced by a vendor
//!   capability in PCI configuration space (`virtio_io_cfg`,
//!   `virtio_io_notify`, `virtio_io_isr` in the C vmd);
//! - [`Layout::Legacy`] (virtio 0.9, vmmci): the fixed register file with the
//!   device configuration at offset 20 (`vmmci_io`).
//!
//! The guest is hostile: wrong access sizes and writes to read-only
//! registers are logged and ignored, queue indices are checked, and the
//! queues themselves check everything else.
//!
//! Deliberate differences from the C vmd: a queue size must be a non-zero
//! power of two (vmd accepts any even size, which breaks its index masks)
//! and is clamped to the device's maximum rather than to 1024; ring
//! addresses outside guest memory disable the queue instead of stopping
//! the process; the queue registers always show the selected queue (vmd
//! shows them only once VIRTIO_F_VERSION_1 is negotiated); and a reset also
//! lowers the interrupt line.

use std::sync::{Arc, Mutex};

use super::queue::Queue;
use super::*;
use crate::bus::AccessSize;
use crate::irq::Irq;
use crate::memory::GuestMemory;
use crate::pci::{PciBarHandler, PciBus, PciDeviceConfig, PciError, SharedBarHandler};

/// Offsets of the four regions in a modern device's I/O BAR.
pub const VIO1_CFG_BAR_OFFSET: u16 = 0x000;
pub const VIO1_NOTIFY_BAR_OFFSET: u16 = 0x100;
pub const VIO1_ISR_BAR_OFFSET: u16 = 0x200;
pub const VIO1_DEV_BAR_OFFSET: u16 = 0x300;

/// Registers of `struct virtio_pci_common_cfg`.
pub mod common {
    pub const DEVICE_FEATURE_SELECT: u8 = 0;
    pub const DEVICE_FEATURE: u8 = 4;
    pub const DRIVER_FEATURE_SELECT: u8 = 8;
    pub const DRIVER_FEATURE: u8 = 12;
    pub const CONFIG_MSIX_VECTOR: u8 = 16;
    pub const NUM_QUEUES: u8 = 18;
    pub const DEVICE_STATUS: u8 = 20;
    pub const CONFIG_GENERATION: u8 = 21;
    pub const QUEUE_SELECT: u8 = 22;
    pub const QUEUE_SIZE: u8 = 24;
    pub const QUEUE_MSIX_VECTOR: u8 = 26;
    pub const QUEUE_ENABLE: u8 = 28;
    pub const QUEUE_NOTIFY_OFF: u8 = 30;
    pub const QUEUE_DESC: u8 = 32;
    pub const QUEUE_AVAIL: u8 = 40;
    pub const QUEUE_USED: u8 = 48;
    /// sizeof(struct virtio_pci_common_cfg)
    pub const LEN: u32 = 56;
}

/// Registers of the virtio 0.9 register file.
pub mod legacy {
    pub const DEVICE_FEATURES: u16 = 0;
    pub const GUEST_FEATURES: u16 = 4;
    pub const QUEUE_PFN: u16 = 8;
    pub const QUEUE_SIZE: u16 = 12;
    pub const QUEUE_SELECT: u16 = 14;
    pub const QUEUE_NOTIFY: u16 = 16;
    pub const DEVICE_STATUS: u16 = 18;
    pub const ISR_STATUS: u16 = 19;
    /// Device configuration without MSI-X.
    pub const DEVICE_CONFIG: u16 = 20;
}

/// Virtio PCI capability types.
pub const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;
pub const VIRTIO_PCI_CAP_NOTIFY_CFG: u8 = 2;
pub const VIRTIO_PCI_CAP_ISR_CFG: u8 = 3;
pub const VIRTIO_PCI_CAP_DEVICE_CFG: u8 = 4;
/// PCI_CAP_VENDSPEC
pub const PCI_CAP_VENDOR: u8 = 0x09;

/// Which register layout the BAR has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Modern,
    Legacy,
}

/// The transport state of one virtio PCI device.
pub struct VirtioPci<D> {
    device: D,
    layout: Layout,
    mem: GuestMemory,
    irq: Irq,
    queues: Vec<Queue>,
    status: u8,
    isr: u8,
    device_feature: u64,
    driver_feature: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    queue_select: u16,
    config_generation: u8,
    // 0.9 registers that read back what was written.
    legacy_guest_feature: u32,
    legacy_queue_notify: u16,
}

impl<D: VirtioDevice> VirtioPci<D> {
    pub fn new(device: D, layout: Layout, mem: GuestMemory, irq: Irq) -> VirtioPci<D> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max))
            .collect();
        VirtioPci {
            device_feature: device.features(),
            device,
            layout,
            mem,
            irq,
            queues,
            status: 0,
            isr: 0,
            driver_feature: 0,
            device_feature_select: 0,
            driver_feature_select: 0,
            queue_select: 0,
            config_generation: 0,
            legacy_guest_feature: 0,
            legacy_queue_notify: 0,
        }
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn status(&self) -> u8 {
        self.status
    }

    pub fn isr(&self) -> u8 {
        self.isr
    }

    /// Features the driver accepted (0.9: the guest feature register).
    pub fn driver_features(&self) -> u64 {
        match self.layout {
            Layout::Modern => self.driver_feature,
            Layout::Legacy => u64::from(self.legacy_guest_feature),
        }
    }

    pub fn queue(&self, index: usize) -> Option<&Queue> {
        self.queues.get(index)
    }

    /// Sets ISR bits and raises the interrupt line, which stays high until
    /// the driver reads the ISR.
    pub fn raise(&mut self, isr: u8) {
        self.isr |= isr;
        self.irq.set_level(true);
    }

    /// The device configuration changed: bump the generation and tell the
    /// driver.
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.raise(ISR_CONFIG_CHANGE);
    }

    fn read_isr(&mut self) -> u32 {
        let v = self.isr;
        self.isr = 0;
        self.irq.set_level(false);
        u32::from(v)
    }

    /// Status 0: the device and its queues go back to their initial state.
    fn reset(&mut self) {
        self.driver_feature = 0;
        self.legacy_guest_feature = 0;
        self.isr = 0;
        self.irq.set_level(false);
        self.queue_select = 0;
        for q in &mut self.queues {
            q.reset();
        }
        self.device.reset();
    }

    fn set_status(&mut self, value: u8) {
        self.status = value;
        if value == 0 {
            self.reset();
            return;
        }
        let indirect = self.driver_features() & VIRTIO_RING_F_INDIRECT_DESC != 0;
        for q in &mut self.queues {
            q.set_indirect(indirect);
        }
    }

    fn notify(&mut self, index: u16) {
        if usize::from(index) >= self.queues.len() {
            log::warn!("virtio_io_notify: invalid virtqueue index {index}");
            return;
        }
        self.service_queue(index);
    }

    /// Lets the device work on queue `index` as if the driver had kicked
    /// it: for work that arrives from the host side, such as frames for a
    /// network device's RX queue. Queues the device reports through
    /// [`VirtioDevice::take_pending_queues`] are served next.
    pub fn service_queue(&mut self, index: u16) {
        let mut todo = 1u64 << index.min(63);
        let mut interrupt = false;
        // Bounded: each round serves every queue at most once.
        for _ in 0..self.queues.len() {
            if todo == 0 {
                break;
            }
            for (i, queue) in self.queues.iter_mut().enumerate() {
                if todo & (1 << i) == 0 {
                    continue;
                }
                if self.device.queue_notify(i as u16, queue, &self.mem)
                    && queue.needs_interrupt(&self.mem)
                {
                    interrupt = true;
                }
            }
            todo = self.device.take_pending_queues();
        }
        if interrupt {
            self.raise(ISR_QUEUE);
        }
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(usize::from(self.queue_select))
    }

    // ---- virtio 1.x ----

    fn common_read(&mut self, reg: u8) -> u32 {
        use common::*;
        let q = self.queues.get(usize::from(self.queue_select));
        match reg {
            DEVICE_FEATURE_SELECT => self.device_feature_select,
            DEVICE_FEATURE => match self.device_feature_select {
                0 => self.device_feature as u32,
                1 => (self.device_feature >> 32) as u32,
                _ => 0,
            },
            DRIVER_FEATURE_SELECT => self.driver_feature_select,
            DRIVER_FEATURE => match self.driver_feature_select {
                0 => self.driver_feature as u32,
                1 => (self.driver_feature >> 32) as u32,
                _ => 0,
            },
            CONFIG_MSIX_VECTOR | QUEUE_MSIX_VECTOR => u32::from(VIRTIO_MSI_NO_VECTOR),
            NUM_QUEUES => self.queues.len() as u32,
            DEVICE_STATUS => u32::from(self.status),
            CONFIG_GENERATION => u32::from(self.config_generation),
            QUEUE_SELECT => u32::from(self.queue_select),
            QUEUE_SIZE => q.map_or(0, |q| u32::from(q.size())),
            QUEUE_ENABLE => q.map_or(0, |q| u32::from(q.enabled())),
            QUEUE_NOTIFY_OFF => 0,
            QUEUE_DESC => q.map_or(0, |q| q.desc_table() as u32),
            r if r == QUEUE_DESC + 4 => q.map_or(0, |q| (q.desc_table() >> 32) as u32),
            QUEUE_AVAIL => q.map_or(0, |q| q.avail_ring() as u32),
            r if r == QUEUE_AVAIL + 4 => q.map_or(0, |q| (q.avail_ring() >> 32) as u32),
            QUEUE_USED => q.map_or(0, |q| q.used_ring() as u32),
            r if r == QUEUE_USED + 4 => q.map_or(0, |q| (q.used_ring() >> 32) as u32),
            _ => {
                log::warn!("virtio_io_cfg: invalid register 0x{reg:04x}");
                0
            }
        }
    }

    fn common_write(&mut self, reg: u8, size: AccessSize, data: u32) {
        use common::*;
        let need = |want: AccessSize, what: &str| {
            if size != want {
                log::warn!(
                    "virtio_io_cfg: unaligned write to {what} (sz={})",
                    size.bytes()
                );
                false
            } else {
                true
            }
        };
        match reg {
            DEVICE_FEATURE_SELECT => {
                if need(AccessSize::Dword, "device feature select") {
                    self.device_feature_select = data;
                }
            }
            DRIVER_FEATURE_SELECT => {
                if need(AccessSize::Dword, "driver feature select register") {
                    self.driver_feature_select = data;
                }
            }
            DRIVER_FEATURE => {
                if !need(AccessSize::Dword, "driver feature register") {
                    return;
                }
                // Bits only accumulate until reset, as in vmd.
                match self.driver_feature_select {
                    0 => self.driver_feature |= u64::from(data),
                    1 => self.driver_feature |= u64::from(data) << 32,
                    _ => return,
                }
                self.driver_feature &= self.device_feature;
            }
            DEVICE_FEATURE => log::warn!("illegal write to device feature register"),
            NUM_QUEUES => log::warn!("illegal write to num queues register"),
            CONFIG_GENERATION => log::warn!("illegal write to config generation register"),
            QUEUE_NOTIFY_OFF => log::warn!("illegal write to queue notify offset register"),
            CONFIG_MSIX_VECTOR | QUEUE_MSIX_VECTOR => {}
            DEVICE_STATUS => {
                if need(AccessSize::Byte, "device status register") {
                    self.set_status(data as u8);
                }
            }
            QUEUE_SELECT => self.queue_select = data as u16,
            QUEUE_SIZE => match self.selected_queue() {
                Some(q) => q.set_size(data as u16),
                None => log::warn!("virtio_update_qa: invalid queue index"),
            },
            QUEUE_ENABLE => match self.selected_queue() {
                Some(q) => q.set_enabled(data as u16 == 1),
                None => log::warn!("virtio_update_qa: invalid queue index"),
            },
            r if (QUEUE_DESC..QUEUE_USED + 8).contains(&r) && r % 4 == 0 => {
                if !need(AccessSize::Dword, "queue address register") {
                    return;
                }
                let Some(q) = self.selected_queue() else {
                    log::warn!("virtio_update_qa: invalid queue index");
                    return;
                };
                let old = match r {
                    QUEUE_DESC | 36 => q.desc_table(),
                    QUEUE_AVAIL | 44 => q.avail_ring(),
                    _ => q.used_ring(),
                };
                let new = if r % 8 == 0 {
                    (old & 0xffff_ffff_0000_0000) | u64::from(data)
                } else {
                    (old & 0xffff_ffff) | (u64::from(data) << 32)
                };
                match r {
                    QUEUE_DESC | 36 => q.set_desc_table(new),
                    QUEUE_AVAIL | 44 => q.set_avail_ring(new),
                    _ => q.set_used_ring(new),
                }
            }
            _ => log::warn!("virtio_io_cfg: invalid register 0x{reg:04x}"),
        }
    }

    fn modern_read(&mut self, offset: u16, size: AccessSize) -> u32 {
        match offset & 0xff00 {
            VIO1_CFG_BAR_OFFSET => self.common_read(offset as u8),
            VIO1_NOTIFY_BAR_OFFSET => 0,
            VIO1_ISR_BAR_OFFSET => self.read_isr(),
            VIO1_DEV_BAR_OFFSET => self.device.read_config(offset & 0xff, size),
            _ => u32::MAX,
        }
    }

    fn modern_write(&mut self, offset: u16, size: AccessSize, value: u32) {
        match offset & 0xff00 {
            VIO1_CFG_BAR_OFFSET => self.common_write(offset as u8, size, value),
            VIO1_NOTIFY_BAR_OFFSET => self.notify(value as u16),
            VIO1_ISR_BAR_OFFSET => {}
            VIO1_DEV_BAR_OFFSET => self.device.write_config(offset & 0xff, size, value),
            _ => {}
        }
    }

    // ---- virtio 0.9 ----

    fn legacy_read(&mut self, offset: u16, size: AccessSize) -> u32 {
        use legacy::*;
        match offset {
            DEVICE_FEATURES => self.device_feature as u32,
            GUEST_FEATURES => self.legacy_guest_feature,
            QUEUE_PFN => self
                .queues
                .get(usize::from(self.queue_select))
                .map_or(0, |q| q.legacy_pfn()),
            QUEUE_SIZE => self
                .queues
                .get(usize::from(self.queue_select))
                .map_or(0, |q| u32::from(q.max_size())),
            QUEUE_SELECT => u32::from(self.queue_select),
            QUEUE_NOTIFY => u32::from(self.legacy_queue_notify),
            DEVICE_STATUS => u32::from(self.status),
            ISR_STATUS => self.read_isr(),
            o if o >= DEVICE_CONFIG => self.device.read_config(o - DEVICE_CONFIG, size),
            _ => u32::MAX,
        }
    }

    fn legacy_write(&mut self, offset: u16, size: AccessSize, value: u32) {
        use legacy::*;
        match offset {
            DEVICE_FEATURES => log::warn!("illegal write {value:x} to device feature"),
            QUEUE_SIZE => log::warn!("illegal write {value:x} to queue size"),
            ISR_STATUS => log::warn!("illegal write {value:x} to isr status"),
            GUEST_FEATURES => self.legacy_guest_feature = value,
            QUEUE_PFN => {
                let no_queues = self.queues.is_empty();
                match self.selected_queue() {
                    Some(q) => q.set_legacy_pfn(value),
                    None if no_queues => {}
                    None => log::warn!("virtio_update_qa: invalid queue index"),
                }
            }
            QUEUE_SELECT => self.queue_select = value as u16,
            QUEUE_NOTIFY => {
                self.legacy_queue_notify = value as u16;
                if !self.queues.is_empty() {
                    self.notify(value as u16);
                }
            }
            DEVICE_STATUS => self.set_status(value as u8),
            o if o >= DEVICE_CONFIG => self.device.write_config(o - DEVICE_CONFIG, size, value),
            _ => {}
        }
    }
}

impl<D: VirtioDevice> PciBarHandler for VirtioPci<D> {
    fn bar_read(&mut self, _bar: u8, offset: u16, size: AccessSize) -> u32 {
        let v = match self.layout {
            Layout::Modern => self.modern_read(offset, size),
            Layout::Legacy => self.legacy_read(offset, size),
        };
        v & size.mask()
    }

    fn bar_write(&mut self, _bar: u8, offset: u16, size: AccessSize, value: u32) {
        let value = value & size.mask();
        match self.layout {
            Layout::Modern => self.modern_write(offset, size, value),
            Layout::Legacy => self.legacy_write(offset, size, value),
        }
    }
}

/// PCI identity of each virtio device type, as vmd's `virtio_init` adds
/// them: (device ID, class, subclass, revision, device config length).
fn pci_identity(device_type: u16) -> Option<(u16, u16, u8, u8, u8, u32)> {
    const QUMRANET: u16 = 0x1af4;
    const OPENBSD: u16 = 0x0b5d;
    match device_type {
        DEVICE_ENTROPY => Some((QUMRANET, 0x1044, 0x08, 0x80, 1, 0)),
        DEVICE_NETWORK => Some((QUMRANET, 0x1041, 0x08, 0x80, 1, 8)),
        DEVICE_BLOCK => Some((QUMRANET, 0x1042, 0x01, 0x00, 1, 24)),
        DEVICE_SCSI => Some((QUMRANET, 0x1048, 0x01, 0x00, 1, 36)),
        DEVICE_VMMCI => Some((OPENBSD, 0x0777, 0x07, 0x80, 0, 0)),
        _ => None,
    }
}

fn virtio_cap(cfg_type: u8, bar: u8, offset: u16, length: u32) -> [u8; 18] {
    let mut c = [0u8; 18];
    c[0] = 16; // cap_len: sizeof(struct virtio_pci_cap)
    c[1] = cfg_type;
    c[2] = bar;
    c[6..10].copy_from_slice(&u32::from(offset).to_le_bytes());
    c[10..14].copy_from_slice(&length.to_le_bytes());
    // c[14..18]: notify_off_multiplier 0, every queue notifies at 0x100.
    c
}

/// A device on the bus: its PCI device number and the shared transport.
pub type Attached<D> = (u8, Arc<Mutex<VirtioPci<D>>>);

/// Adds a virtio device to the PCI bus as vmd does: the PCI function with
/// vmd's IDs and an IRQ, one I/O BAR, and for modern devices the vendor
/// capabilities. `irq_line` turns the IRQ number the bus assigned into the
/// line the device drives. Returns the PCI device number and the device.
pub fn attach<D: VirtioDevice + 'static>(
    bus: &mut PciBus,
    device: D,
    layout: Layout,
    mem: GuestMemory,
    irq_line: impl FnOnce(u8) -> Irq,
) -> Result<Attached<D>, PciError> {
    let device_type = device.device_type();
    let mut made = None;
    let id = add_function(bus, device_type, layout, |irq| {
        let dev = Arc::new(Mutex::new(VirtioPci::new(
            device,
            layout,
            mem,
            irq_line(irq),
        )));
        made = Some(dev.clone());
        dev as SharedBarHandler
    })?;
    let dev = made.ok_or(PciError::NoDevice(id))?;
    Ok((id, dev))
}

/// Adds the PCI function of a virtio device of `device_type` whose
/// registers are served by whatever `handler` returns for the assigned IRQ:
/// a [`VirtioPci`] in this process, or a proxy to a device process. Returns
/// the PCI device number.
pub fn add_function(
    bus: &mut PciBus,
    device_type: u16,
    layout: Layout,
    handler: impl FnOnce(u8) -> SharedBarHandler,
) -> Result<u8, PciError> {
    let (vendor, product, class, subclass, revision, config_len) =
        pci_identity(device_type).ok_or(PciError::UnknownDevice(device_type))?;
    let id = bus.add_device(PciDeviceConfig {
        vendor,
        device: product,
        class,
        subclass,
        subsys_vendor: 0x0b5d,
        subsys_id: device_type,
        revision,
        irq: true,
    })?;
    let irq = bus.irq(id).ok_or(PciError::NoIrq)?;
    let bar = bus.add_io_bar(id, handler(irq))?;
    if layout == Layout::Modern {
        let common = virtio_cap(
            VIRTIO_PCI_CAP_COMMON_CFG,
            bar,
            VIO1_CFG_BAR_OFFSET,
            common::LEN,
        );
        bus.add_capability(id, PCI_CAP_VENDOR, &common)?;
        if config_len > 0 {
            let c = virtio_cap(
                VIRTIO_PCI_CAP_DEVICE_CFG,
                bar,
                VIO1_DEV_BAR_OFFSET,
                config_len,
            );
            bus.add_capability(id, PCI_CAP_VENDOR, &c)?;
        }
        let isr = virtio_cap(VIRTIO_PCI_CAP_ISR_CFG, bar, VIO1_ISR_BAR_OFFSET, 1);
        bus.add_capability(id, PCI_CAP_VENDOR, &isr)?;
        let notify = virtio_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, bar, VIO1_NOTIFY_BAR_OFFSET, 2);
        bus.add_capability(id, PCI_CAP_VENDOR, &notify)?;
    }
    Ok(id)
}
