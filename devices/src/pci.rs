//! The PCI bus of a vmd guest: one bus, a host bridge, and up to 32
//! single-function devices, reached through configuration mechanism #1
//! (address at 0xcf8, data at 0xcfc-0xcff) as in vmd's pci.c.
//!
//! Each device gets the next IRQ from {3, 5, 6, 7, 9, 10, 11, 12, 14, 15}
//! and its I/O BARs from 0x1000 upwards in 0x1000 steps. Configuration
//! space is the 256-byte type-0 header vmd builds, with capabilities in
//! 24-byte slots from 0x40.
//!
//! [`PciBus`] is itself a [`PortIoDevice`]: register it for 0xcf8-0xcff and
//! as the port bus's fallback, and it dispatches I/O BAR accesses to the
//! device whose BAR (as the guest programmed it) covers the port.
//!
//! Deliberate differences from the C code, invisible to correct drivers:
//! sub-dword config accesses use their real byte lanes (the C code puts
//! byte and word writes at 0xcfd-0xcff into the low lanes); identity,
//! status, capability, pin and interrupt line bytes are read-only (the C
//! code stores any write but the option ROM's); and BAR writes are aligned
//! to the BAR size. The interrupt line always names the IRQ the device
//! interrupts on: stock SeaBIOS, which does not know vmd's host bridge,
//! writes 0xff ("no connection") there, where OpenBSD's vmm firmware
//! leaves vmd's value, and guests without ACPI or MP tables take the
//! register as the device's IRQ.

use std::sync::{Arc, Mutex};

use crate::bus::{AccessSize, PortIoDevice};

pub const PCI_MODE1_ADDRESS_REG: u16 = 0xcf8;
pub const PCI_MODE1_DATA_REG: u16 = 0xcfc;
pub const PCI_MODE1_ENABLE: u32 = 0x8000_0000;
pub const PCI_CONFIG_MAX_DEV: usize = 32;
pub const PCI_MAX_BARS: usize = 6;
pub const PCI_MAX_CAPS: usize = 8;
/// IRQs handed to devices, in order.
pub const PCI_PIC_IRQS: [u8; 10] = [3, 5, 6, 7, 9, 10, 11, 12, 14, 15];
pub const VM_PCI_IO_BAR_BASE: u32 = 0x1000;
pub const VM_PCI_IO_BAR_END: u32 = 0xffff;
pub const VM_PCI_IO_BAR_SIZE: u32 = 0x1000;

/// The host bridge every vmd guest sees at device 0.
pub const PCI_VENDOR_OPENBSD: u16 = 0x0b5d;
pub const PCI_PRODUCT_OPENBSD_PCHB: u16 = 0x0666;

// Configuration space offsets.
const CFG_STATUS: usize = 0x06;
const CFG_BAR0: usize = 0x10;
const CFG_CAP_PTR: usize = 0x34;
const CFG_INTERRUPT_LINE: usize = 0x3c;
const CFG_INTERRUPT_PIN: usize = 0x3d;
const CFG_CAPS: usize = 0x40;
const CAP_SLOT: usize = 24;
const STATUS_CAP_LIST: u16 = 0x10;

/// A BAR handler shared between the bus and whoever else drives the device.
pub type SharedBarHandler = Arc<Mutex<dyn PciBarHandler>>;

/// A device's I/O BAR registers.
pub trait PciBarHandler: Send {
    /// Reads at `offset` into BAR number `bar`.
    fn bar_read(&mut self, bar: u8, offset: u16, size: AccessSize) -> u32;
    fn bar_write(&mut self, bar: u8, offset: u16, size: AccessSize, value: u32);
}

/// A BAR with nothing behind it: reads float high, writes vanish.
pub struct NoBar;

impl PciBarHandler for NoBar {
    fn bar_read(&mut self, _bar: u8, _offset: u16, size: AccessSize) -> u32 {
        size.mask()
    }
    fn bar_write(&mut self, _bar: u8, _offset: u16, _size: AccessSize, _value: u32) {}
}

/// Identity of a new PCI function (`pci_add_device` arguments).
#[derive(Clone, Copy, Debug)]
pub struct PciDeviceConfig {
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    pub subsys_vendor: u16,
    pub subsys_id: u16,
    pub revision: u8,
    /// Whether the device needs an interrupt line.
    pub irq: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PciError {
    #[error("no free PCI device slot")]
    TooManyDevices,
    #[error("no free PCI IRQ")]
    NoIrq,
    #[error("no PCI device {0}")]
    NoDevice(u8),
    #[error("no free BAR on PCI device {0}")]
    TooManyBars(u8),
    #[error("no I/O port space left for a BAR")]
    NoIoSpace,
    #[error("no room for another capability on PCI device {0}")]
    TooManyCaps(u8),
    #[error("unknown virtio device type {0}")]
    UnknownDevice(u16),
}

struct PciSlot {
    cfg: [u8; 256],
    irq: Option<u8>,
    bars: Vec<SharedBarHandler>,
    caps: usize,
}

impl PciSlot {
    fn dword(&self, index: usize) -> u32 {
        u32::from_le_bytes(self.cfg[index * 4..index * 4 + 4].try_into().expect("4"))
    }

    fn bar_base(&self, bar: usize) -> u32 {
        self.dword(CFG_BAR0 / 4 + bar) & 0xffff_fffc
    }
}

/// The guest's PCI bus.
pub struct PciBus {
    addr_reg: u32,
    slots: Vec<PciSlot>,
    next_io_bar: u32,
    next_irq: usize,
}

impl Default for PciBus {
    fn default() -> Self {
        PciBus::new()
    }
}

impl PciBus {
    /// A bus with the host bridge at device 0 (`pci_init`).
    pub fn new() -> PciBus {
        let mut bus = PciBus {
            addr_reg: 0,
            slots: Vec::new(),
            next_io_bar: VM_PCI_IO_BAR_BASE,
            next_irq: 0,
        };
        bus.add_device(PciDeviceConfig {
            vendor: PCI_VENDOR_OPENBSD,
            device: PCI_PRODUCT_OPENBSD_PCHB,
            class: 0x06,
            subclass: 0x00,
            subsys_vendor: PCI_VENDOR_OPENBSD,
            subsys_id: 0,
            revision: 0,
            irq: false,
        })
        .expect("empty bus has room for the host bridge");
        bus
    }

    /// Adds a function in the next slot; returns its device number.
    pub fn add_device(&mut self, c: PciDeviceConfig) -> Result<u8, PciError> {
        if self.slots.len() >= PCI_CONFIG_MAX_DEV {
            return Err(PciError::TooManyDevices);
        }
        if c.irq && self.next_irq >= PCI_PIC_IRQS.len() {
            return Err(PciError::NoIrq);
        }
        let mut cfg = [0u8; 256];
        cfg[0..2].copy_from_slice(&c.vendor.to_le_bytes());
        cfg[2..4].copy_from_slice(&c.device.to_le_bytes());
        cfg[0x08] = c.revision;
        cfg[0x0a] = c.subclass;
        cfg[0x0b] = c.class;
        cfg[0x2c..0x2e].copy_from_slice(&c.subsys_vendor.to_le_bytes());
        cfg[0x2e..0x30].copy_from_slice(&c.subsys_id.to_le_bytes());
        let irq = if c.irq {
            let irq = PCI_PIC_IRQS[self.next_irq];
            self.next_irq += 1;
            cfg[CFG_INTERRUPT_LINE] = irq;
            cfg[CFG_INTERRUPT_PIN] = 1;
            Some(irq)
        } else {
            None
        };
        self.slots.push(PciSlot {
            cfg,
            irq,
            bars: Vec::new(),
            caps: 0,
        });
        Ok((self.slots.len() - 1) as u8)
    }

    fn slot(&mut self, id: u8) -> Result<&mut PciSlot, PciError> {
        self.slots
            .get_mut(usize::from(id))
            .ok_or(PciError::NoDevice(id))
    }

    /// Adds an I/O BAR served by `handler`; returns the BAR number.
    pub fn add_io_bar(&mut self, id: u8, handler: SharedBarHandler) -> Result<u8, PciError> {
        let base = self.next_io_bar;
        let slot = self.slot(id)?;
        let bar = slot.bars.len();
        if bar >= PCI_MAX_BARS {
            return Err(PciError::TooManyBars(id));
        }
        if base >= VM_PCI_IO_BAR_END {
            return Err(PciError::NoIoSpace);
        }
        let reg = CFG_BAR0 + 4 * bar;
        slot.cfg[reg..reg + 4].copy_from_slice(&(base | 1).to_le_bytes());
        slot.bars.push(handler);
        self.next_io_bar += VM_PCI_IO_BAR_SIZE;
        Ok(bar as u8)
    }

    /// Appends a capability with ID `cap_id` and `body` (the bytes after
    /// the ID and next pointer, at most 22); returns its index.
    pub fn add_capability(&mut self, id: u8, cap_id: u8, body: &[u8]) -> Result<u8, PciError> {
        let slot = self.slot(id)?;
        if slot.caps >= PCI_MAX_CAPS || body.len() > CAP_SLOT - 2 {
            return Err(PciError::TooManyCaps(id));
        }
        let at = CFG_CAPS + CAP_SLOT * slot.caps;
        slot.cfg[at] = cap_id;
        slot.cfg[at + 2..at + 2 + body.len()].copy_from_slice(body);
        if slot.caps > 0 {
            slot.cfg[at - CAP_SLOT + 1] = at as u8;
        }
        slot.caps += 1;
        slot.cfg[CFG_CAP_PTR] = CFG_CAPS as u8;
        slot.cfg[CFG_STATUS] |= STATUS_CAP_LIST as u8;
        Ok((slot.caps - 1) as u8)
    }

    /// The IRQ assigned to device `id`, if it has one.
    pub fn irq(&self, id: u8) -> Option<u8> {
        self.slots.get(usize::from(id)).and_then(|s| s.irq)
    }

    /// Every assigned IRQ: the vm process sets them level-triggered in the
    /// ELCR, as vmd's `pci_add_device` does.
    pub fn irqs(&self) -> Vec<u8> {
        self.slots.iter().filter_map(|s| s.irq).collect()
    }

    /// Number of devices, the host bridge included.
    pub fn device_count(&self) -> usize {
        self.slots.len()
    }

    /// The I/O port BAR `bar` of device `id` currently decodes.
    pub fn io_bar_base(&self, id: u8, bar: u8) -> Option<u16> {
        let slot = self.slots.get(usize::from(id))?;
        if usize::from(bar) >= slot.bars.len() {
            return None;
        }
        u16::try_from(slot.bar_base(usize::from(bar))).ok()
    }

    fn config_target(&self) -> Option<(usize, usize)> {
        if self.addr_reg & PCI_MODE1_ENABLE == 0 {
            return None;
        }
        let bus = (self.addr_reg >> 16) & 0xff;
        let dev = ((self.addr_reg >> 11) & 0x1f) as usize;
        let func = (self.addr_reg >> 8) & 0x7;
        if bus != 0 || func != 0 || dev >= self.slots.len() {
            return None;
        }
        Some((dev, (self.addr_reg & 0xfc) as usize))
    }

    fn config_read(&self, lane: usize, size: AccessSize) -> u32 {
        let Some((dev, reg)) = self.config_target() else {
            return u32::MAX;
        };
        let cfg = &self.slots[dev].cfg;
        let mut v = 0u32;
        for i in 0..size.bytes() {
            // A word at 0xcfe or dword at 0xcfd would cross the register:
            // the missing lanes read as ones.
            let b = cfg.get(reg + lane + i).filter(|_| lane + i < 4).copied();
            v |= u32::from(b.unwrap_or(0xff)) << (8 * i);
        }
        v
    }

    fn config_write(&mut self, lane: usize, size: AccessSize, value: u32) {
        let Some((dev, reg)) = self.config_target() else {
            log::warn!(
                "invalid address register during pci write: 0x{:x}",
                self.addr_reg
            );
            return;
        };
        let slot = &mut self.slots[dev];
        let old = slot.dword(reg / 4).to_le_bytes();
        let mut new = old;
        let bytes = value.to_le_bytes();
        for i in 0..size.bytes() {
            if lane + i < 4 {
                new[lane + i] = bytes[i];
            }
        }
        let mut merged = u32::from_le_bytes(new);
        if (CFG_BAR0..CFG_BAR0 + 4 * PCI_MAX_BARS).contains(&reg) {
            // BAR sizing falls out of the alignment: all ones reads back
            // 0xfffff001, the 4 KiB size with the I/O space bit.
            let bar = (reg - CFG_BAR0) / 4;
            merged = if bar < slot.bars.len() {
                (merged & !(VM_PCI_IO_BAR_SIZE - 1)) | 1
            } else {
                0
            };
        } else {
            for (i, b) in merged.to_le_bytes().iter().enumerate() {
                if !config_byte_writable(reg + i) {
                    new[i] = old[i];
                } else {
                    new[i] = *b;
                }
            }
            merged = u32::from_le_bytes(new);
        }
        slot.cfg[reg..reg + 4].copy_from_slice(&merged.to_le_bytes());
    }

    /// Finds the device BAR that decodes `port`.
    fn bar_for_port(&self, port: u16) -> Option<(SharedBarHandler, u8, u16)> {
        let port = u32::from(port);
        for slot in &self.slots {
            for (i, h) in slot.bars.iter().enumerate() {
                let base = slot.bar_base(i);
                if port >= base && port - base < VM_PCI_IO_BAR_SIZE {
                    return Some((h.clone(), i as u8, (port - base) as u16));
                }
            }
        }
        None
    }
}

/// The bytes of the header a driver may change: command, cache line size,
/// latency timer and the BARs. Everything else (identity, status,
/// capability list, option ROM, interrupt line and pin) is read-only and
/// silently keeps its value.
fn config_byte_writable(offset: usize) -> bool {
    matches!(offset, 0x04 | 0x05 | 0x0c | 0x0d | 0x10..=0x27)
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PortIoDevice for PciBus {
    fn port_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match port {
            PCI_MODE1_ADDRESS_REG => self.addr_reg & size.mask(),
            0xcfc..=0xcff => self.config_read(usize::from(port - PCI_MODE1_DATA_REG), size),
            _ => match self.bar_for_port(port) {
                Some((h, bar, off)) => lock(&h).bar_read(bar, off, size) & size.mask(),
                None => size.mask(),
            },
        }
    }

    fn port_write(&mut self, port: u16, size: AccessSize, value: u32) {
        match port {
            PCI_MODE1_ADDRESS_REG => {
                self.addr_reg = (self.addr_reg & !size.mask()) | (value & size.mask());
            }
            0xcfc..=0xcff => self.config_write(usize::from(port - PCI_MODE1_DATA_REG), size, value),
            _ => {
                if let Some((h, bar, off)) = self.bar_for_port(port) {
                    lock(&h).bar_write(bar, off, size, value & size.mask());
                }
            }
        }
    }
}
