//! The virtio 1.x transport as vmd lays it out, and minimal drivers for
//! vmd's two in-process virtio devices.
//!
//! viornd is a virtio 1.x device whose registers vmd puts in one I/O BAR
//! (common configuration, notify, ISR, announced by vendor capabilities);
//! the driver negotiates VIRTIO_F_VERSION_1, sets up one small queue,
//! posts one 16-byte buffer and polls the used ring. It never takes an
//! interrupt: the KVM this runs on in CI (kvm_pvm) cannot be relied on to
//! deliver interrupts to a long-mode guest, and without an IDT there is
//! nowhere to take one anyway, so completion is found by polling.
//!
//! vmmci is a virtio 0.9 device without queues: the driver reads the host
//! time from its configuration registers and then tells the host it is
//! shutting down by writing VMMCI_SHUTDOWN to the command register, as
//! OpenBSD's vmmci(4) does on powerdown.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{compiler_fence, Ordering};

use crate::io::{inb, inl, inw, outb, outl, outw};
use crate::pci::{self, Device};
use crate::{phys, println};

pub const VIRTIO_VENDOR: u16 = 0x1af4;
pub const VIORND_DEVICE: u16 = 0x1044;
pub const VMMCI_DEVICE: u16 = 0x0777;

const STATUS_ACK: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FEATURES_OK: u8 = 8;

// struct virtio_pci_common_cfg
const DEVICE_FEATURE_SELECT: u16 = 0;
const DEVICE_FEATURE: u16 = 4;
const DRIVER_FEATURE_SELECT: u16 = 8;
const DRIVER_FEATURE: u16 = 12;
const DEVICE_STATUS: u16 = 20;
const QUEUE_SELECT: u16 = 22;
const QUEUE_SIZE: u16 = 24;
const QUEUE_ENABLE: u16 = 28;
const QUEUE_NOTIFY_OFF: u16 = 30;
const QUEUE_DESC: u16 = 32;
const QUEUE_AVAIL: u16 = 40;
const QUEUE_USED: u16 = 48;

const PCI_CAP_VENDOR: u8 = 0x09;
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

/// VIRTIO_F_VERSION_1, bit 32: bit 0 of feature word 1.
const F_VERSION_1_HI: u32 = 1;

const QUEUE_LEN: u16 = 8;
const VIRTQ_DESC_F_WRITE: u16 = 2;
const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
const RND_BYTES: usize = 16;

/// Descriptor table, available ring and used ring, a page each.
#[repr(C, align(4096))]
struct QueueMem([u8; 3 * 4096]);

static mut QUEUE: QueueMem = QueueMem([0; 3 * 4096]);
static mut RND_BUF: [u8; RND_BYTES] = [0; RND_BYTES];

pub fn w16(p: *mut u8, v: u16) {
    // SAFETY: callers pass pointers into QUEUE at in-bounds offsets.
    unsafe { write_volatile(p.cast::<u16>(), v) }
}

pub fn w32(p: *mut u8, v: u32) {
    // SAFETY: as w16.
    unsafe { write_volatile(p.cast::<u32>(), v) }
}

pub fn w64(p: *mut u8, v: u64) {
    // SAFETY: as w16.
    unsafe { write_volatile(p.cast::<u64>(), v) }
}

pub fn r16(p: *const u8) -> u16 {
    // SAFETY: as w16.
    unsafe { read_volatile(p.cast::<u16>()) }
}

pub fn r32(p: *const u8) -> u32 {
    // SAFETY: as w16.
    unsafe { read_volatile(p.cast::<u32>()) }
}

/// The register regions of a modern device, as port numbers.
pub struct Modern {
    pub common: u16,
    notify: u16,
    notify_mult: u32,
    pub isr: u16,
    /// The device-specific configuration (a NIC's MAC), if announced.
    pub device: Option<u16>,
}

fn modern_regions(d: &Device, base: u16) -> Option<(Modern, u32, u32, u32, bool)> {
    let (mut common, mut notify, mut isr, mut device, mut mult, mut other_bar) =
        (None, None, None, None, 0, false);
    d.capabilities(|off, id| {
        if id != PCI_CAP_VENDOR {
            return;
        }
        let cfg_type = (pci::read32(d.dev, off) >> 24) as u8;
        let bar = pci::read32(d.dev, off + 4) as u8;
        let offset = pci::read32(d.dev, off + 8);
        if bar != 0 {
            other_bar = true;
            return;
        }
        match cfg_type {
            CAP_COMMON => common = Some(offset),
            CAP_NOTIFY => {
                notify = Some(offset);
                mult = pci::read32(d.dev, off + 16);
            }
            CAP_ISR => isr = Some(offset),
            CAP_DEVICE => device = Some(offset),
            _ => {}
        }
    });
    let (common, notify, isr) = (common?, notify?, isr?);
    let port = |o: u32| u16::try_from(o).ok().and_then(|o| base.checked_add(o));
    let m = Modern {
        common: port(common)?,
        notify: port(notify)?,
        notify_mult: mult,
        isr: port(isr)?,
        device: device.and_then(port),
    };
    Some((m, common, notify, isr, other_bar))
}

impl Modern {
    /// Finds the registers of the modern device `d` in its I/O BAR 0.
    pub fn find(d: &Device) -> Result<(Modern, u32, u32, u32, bool), &'static str> {
        let base = d.io_bar(0).ok_or("BAR 0 is not an I/O BAR")?;
        modern_regions(d, base).ok_or("virtio capabilities missing")
    }

    fn set_status(&self, s: u8) {
        outb(self.common + DEVICE_STATUS, s);
    }

    /// Resets the device and negotiates VIRTIO_F_VERSION_1 plus `wanted`
    /// (feature bits 0-31) where the device offers them.
    pub fn negotiate(&self, wanted: u32) -> Result<u32, &'static str> {
        let c = self.common;
        self.set_status(0);
        if inb(c + DEVICE_STATUS) != 0 {
            return Err("reset");
        }
        self.set_status(STATUS_ACK);
        self.set_status(STATUS_ACK | STATUS_DRIVER);
        outl(c + DEVICE_FEATURE_SELECT, 1);
        let hi = inl(c + DEVICE_FEATURE);
        outl(c + DEVICE_FEATURE_SELECT, 0);
        let lo = inl(c + DEVICE_FEATURE);
        if hi & F_VERSION_1_HI == 0 {
            return Err("no VIRTIO_F_VERSION_1");
        }
        let take = lo & wanted;
        outl(c + DRIVER_FEATURE_SELECT, 0);
        outl(c + DRIVER_FEATURE, take);
        outl(c + DRIVER_FEATURE_SELECT, 1);
        outl(c + DRIVER_FEATURE, F_VERSION_1_HI);
        self.set_status(STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK);
        if inb(c + DEVICE_STATUS) & STATUS_FEATURES_OK == 0 {
            return Err("features not accepted");
        }
        Ok(take)
    }

    /// Gives queue `index` `len` entries in `mem` (descriptors, available
    /// ring, used ring, a page each) and returns its notify port.
    pub fn setup_queue(&self, index: u16, len: u16, mem: *mut u8) -> Result<u16, &'static str> {
        let c = self.common;
        outw(c + QUEUE_SELECT, index);
        let max = inw(c + QUEUE_SIZE);
        if max < len {
            return Err("queue too small");
        }
        outw(c + QUEUE_SIZE, len);
        // SAFETY: callers pass three pages.
        let (desc, avail, used) = unsafe { (mem, mem.add(4096), mem.add(8192)) };
        for (reg, p) in [(QUEUE_DESC, desc), (QUEUE_AVAIL, avail), (QUEUE_USED, used)] {
            let pa = phys(p);
            outl(c + reg, pa as u32);
            outl(c + reg + 4, (pa >> 32) as u32);
        }
        outw(c + QUEUE_ENABLE, 1);
        let notify_off = u32::from(inw(c + QUEUE_NOTIFY_OFF));
        notify_off
            .checked_mul(self.notify_mult)
            .and_then(|o| u16::try_from(o).ok())
            .and_then(|o| self.notify.checked_add(o))
            .ok_or("notify offset")
    }

    pub fn driver_ok(&self) {
        self.set_status(STATUS_ACK | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }
}

/// 16 bytes from viornd.
pub fn rnd(d: Device) {
    let (m, common, notify, isr, other_bar) = match Modern::find(&d) {
        Ok(r) => r,
        Err(e) => {
            println!("KERN-RND-FAIL {e}");
            return;
        }
    };
    println!(
        "KERN-RND-CAPS common={common:x} notify={notify:x} isr={isr:x} mult={} other-bars={other_bar}",
        m.notify_mult
    );
    if let Err(e) = m.negotiate(0) {
        println!("KERN-RND-FAIL {e}");
        return;
    }
    let q = (&raw mut QUEUE).cast::<u8>();
    let port = match m.setup_queue(0, QUEUE_LEN, q) {
        Ok(p) => p,
        Err(e) => {
            println!("KERN-RND-FAIL {e}");
            return;
        }
    };
    m.driver_ok();
    // SAFETY: the three pages of QUEUE.
    let (desc, avail, used) = unsafe { (q, q.add(4096), q.add(8192)) };

    // One device-writable buffer in descriptor 0, made available.
    let buf = (&raw mut RND_BUF).cast::<u8>();
    w64(desc, phys(buf));
    // SAFETY: offsets inside the first descriptor.
    unsafe {
        w32(desc.add(8), RND_BYTES as u32);
        w16(desc.add(12), VIRTQ_DESC_F_WRITE);
        w16(desc.add(14), 0);
        w16(avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
        w16(avail.add(4), 0);
    }
    compiler_fence(Ordering::SeqCst);
    // SAFETY: the available ring's index.
    w16(unsafe { avail.add(2) }, 1);
    compiler_fence(Ordering::SeqCst);
    outw(port, 0);

    // SAFETY: the used ring's index and first element.
    let (used_idx, used_id, used_len) = unsafe { (used.add(2), used.add(4), used.add(8)) };
    let mut spins = 0u32;
    while r16(used_idx) != 1 {
        spins += 1;
        if spins == 1_000_000 {
            println!("KERN-RND-FAIL no used buffer");
            return;
        }
    }
    compiler_fence(Ordering::SeqCst);
    let (id, len) = (r32(used_id), r32(used_len));
    let _ = inb(m.isr);
    if id != 0 || len != RND_BYTES as u32 {
        println!("KERN-RND-FAIL used element id={id} len={len}");
        return;
    }
    let mut bytes = [0u8; RND_BYTES];
    for (i, b) in bytes.iter_mut().enumerate() {
        // SAFETY: inside RND_BUF; volatile because the device wrote it.
        *b = unsafe { read_volatile(buf.add(i)) };
    }
    if bytes.iter().all(|&b| b == 0) {
        println!("KERN-RND-FAIL all zero");
        return;
    }
    crate::io::print(format_args!("KERN-RND-OK "));
    for b in bytes {
        crate::io::print(format_args!("{b:02x}"));
    }
    println!();
}

// The virtio 0.9 register file in BAR 0, and vmmci's configuration after
// it (no MSI-X).
const LEGACY_DEVICE_FEATURES: u16 = 0;
const LEGACY_GUEST_FEATURES: u16 = 4;
const LEGACY_DEVICE_STATUS: u16 = 18;
const VMMCI_COMMAND: u16 = 20;
const VMMCI_TIME_SEC_LO: u16 = 24;
const VMMCI_TIME_SEC_HI: u16 = 28;
const VMMCI_TIME_USEC_LO: u16 = 32;
const VMMCI_F_ALL: u32 = 0x7; // TIMESYNC | ACK | SYNCRTC
const VMMCI_SHUTDOWN: u32 = 1;

/// The host's time, then a shutdown announced to the host.
pub fn vmmci(d: Device) {
    let Some(base) = d.io_bar(0) else {
        println!("KERN-VMMCI-FAIL BAR 0 is not an I/O BAR");
        return;
    };
    outb(base + LEGACY_DEVICE_STATUS, 0);
    outb(base + LEGACY_DEVICE_STATUS, STATUS_ACK);
    outb(base + LEGACY_DEVICE_STATUS, STATUS_ACK | STATUS_DRIVER);
    let features = inl(base + LEGACY_DEVICE_FEATURES);
    outl(base + LEGACY_GUEST_FEATURES, features & VMMCI_F_ALL);
    outb(
        base + LEGACY_DEVICE_STATUS,
        STATUS_ACK | STATUS_DRIVER | STATUS_DRIVER_OK,
    );
    println!("KERN-VMMCI-FEATURES {features:x}");

    let cmd = inl(base + VMMCI_COMMAND);
    // The first time register latches the clock for the others.
    let lo = inl(base + VMMCI_TIME_SEC_LO);
    let hi = inl(base + VMMCI_TIME_SEC_HI);
    let usec = inl(base + VMMCI_TIME_USEC_LO);
    let secs = u64::from(hi) << 32 | u64::from(lo);
    println!("KERN-VMMCI-TIME {secs} usec={usec} cmd={cmd}");

    outl(base + VMMCI_COMMAND, VMMCI_SHUTDOWN);
    println!("KERN-VMMCI-SHUTDOWN");
}
