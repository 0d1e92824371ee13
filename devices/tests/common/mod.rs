//! A guest driver written against port I/O only, the way SeaBIOS and
//! Linux's virtio_pci drivers talk to vmd's devices, and a guest-side split
//! virtqueue living in guest memory.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::bus::{AccessSize, PortBus};
use devices::clock::Clock;
use devices::irq::{Irq, IrqLine};
use devices::memory::{GuestMemory, MemoryRange};
use devices::pci::PciBus;
use devices::virtio::vmmci::Timer;

pub const B: AccessSize = AccessSize::Byte;
pub const W: AccessSize = AccessSize::Word;
pub const D: AccessSize = AccessSize::Dword;

/// An interrupt line that remembers its level and counts rising edges.
#[derive(Default)]
pub struct Line {
    pub level: AtomicBool,
    pub raised: AtomicUsize,
}

impl IrqLine for Line {
    fn set_level(&self, level: bool) {
        if level && !self.level.swap(true, Ordering::SeqCst) {
            self.raised.fetch_add(1, Ordering::SeqCst);
        }
        if !level {
            self.level.store(false, Ordering::SeqCst);
        }
    }
}

impl Line {
    pub fn high(&self) -> bool {
        self.level.load(Ordering::SeqCst)
    }
}

/// Remembers every IRQ line handed out, by number.
#[derive(Default, Clone)]
pub struct Lines(pub Arc<Mutex<Vec<NumberedLine>>>);

pub type NumberedLine = (u8, Arc<Line>);

impl Lines {
    pub fn make(&self, irq: u8) -> Irq {
        let l = Arc::new(Line::default());
        self.0.lock().unwrap().push((irq, l.clone()));
        l
    }

    pub fn get(&self, irq: u8) -> Arc<Line> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == irq)
            .expect("irq line")
            .1
            .clone()
    }
}

/// A clock the test moves by hand.
#[derive(Default)]
pub struct FakeClock {
    pub wall: Mutex<Duration>,
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        *self.wall.lock().unwrap()
    }
    fn wall(&self) -> Duration {
        *self.wall.lock().unwrap()
    }
}

/// A timer that records how it was armed.
#[derive(Default, Clone)]
pub struct FakeTimer(pub Arc<Mutex<Vec<Duration>>>);

impl Timer for FakeTimer {
    fn arm(&mut self, after: Duration) {
        self.0.lock().unwrap().push(after);
    }
}

pub fn memory() -> GuestMemory {
    GuestMemory::new_anonymous(&[
        MemoryRange::new(0, 0x10_0000),
        MemoryRange::new(0x10_0000, 0x10_0000),
    ])
    .unwrap()
}

/// The machine as the vcpu sees it: a port bus with the PCI bus on
/// 0xcf8-0xcff and as fallback for BARs.
pub struct Machine {
    pub ports: PortBus,
}

impl Machine {
    pub fn new(pci: PciBus) -> Machine {
        let pci = Arc::new(Mutex::new(pci));
        let mut ports = PortBus::new();
        ports.insert(0xcf8, 8, pci.clone()).unwrap();
        ports.set_fallback(pci);
        Machine { ports }
    }

    pub fn inb(&self, port: u16) -> u8 {
        self.ports.read(port, B) as u8
    }
    pub fn inw(&self, port: u16) -> u16 {
        self.ports.read(port, W) as u16
    }
    pub fn inl(&self, port: u16) -> u32 {
        self.ports.read(port, D)
    }
    pub fn outb(&self, port: u16, v: u8) {
        self.ports.write(port, B, v.into())
    }
    pub fn outw(&self, port: u16, v: u16) {
        self.ports.write(port, W, v.into())
    }
    pub fn outl(&self, port: u16, v: u32) {
        self.ports.write(port, D, v)
    }

    fn select(&self, dev: u8, reg: u8) {
        self.outl(
            0xcf8,
            0x8000_0000 | (u32::from(dev) << 11) | u32::from(reg & 0xfc),
        );
    }

    pub fn cfg_read32(&self, dev: u8, reg: u8) -> u32 {
        self.select(dev, reg);
        self.inl(0xcfc)
    }
    pub fn cfg_read16(&self, dev: u8, reg: u8) -> u16 {
        self.select(dev, reg);
        self.inw(0xcfc + u16::from(reg & 2))
    }
    pub fn cfg_read8(&self, dev: u8, reg: u8) -> u8 {
        self.select(dev, reg);
        self.inb(0xcfc + u16::from(reg & 3))
    }
    pub fn cfg_write32(&self, dev: u8, reg: u8, v: u32) {
        self.select(dev, reg);
        self.outl(0xcfc, v)
    }
    pub fn cfg_write16(&self, dev: u8, reg: u8, v: u16) {
        self.select(dev, reg);
        self.outw(0xcfc + u16::from(reg & 2), v)
    }
    pub fn cfg_write8(&self, dev: u8, reg: u8, v: u8) {
        self.select(dev, reg);
        self.outb(0xcfc + u16::from(reg & 3), v)
    }

    /// Walks the capability list like Linux's pci_find_capability.
    pub fn virtio_caps(&self, dev: u8) -> Vec<VirtioCap> {
        let mut caps = Vec::new();
        assert_ne!(self.cfg_read16(dev, 0x06) & 0x10, 0, "capability list bit");
        let mut at = self.cfg_read8(dev, 0x34);
        let mut guard = 0;
        while at != 0 {
            guard += 1;
            assert!(guard < 48, "capability loop");
            if self.cfg_read8(dev, at) == 0x09 {
                caps.push(VirtioCap {
                    cap_len: self.cfg_read8(dev, at + 2),
                    cfg_type: self.cfg_read8(dev, at + 3),
                    bar: self.cfg_read8(dev, at + 4),
                    offset: self.cfg_read32(dev, at + 8),
                    length: self.cfg_read32(dev, at + 12),
                });
            }
            at = self.cfg_read8(dev, at + 1);
        }
        caps
    }

    /// Probes BAR `n` like a BIOS: write ones, read the size, restore.
    pub fn bar_size(&self, dev: u8, n: u8) -> (u32, u32) {
        let reg = 0x10 + 4 * n;
        let orig = self.cfg_read32(dev, reg);
        self.cfg_write32(dev, reg, 0xffff_ffff);
        let probe = self.cfg_read32(dev, reg);
        self.cfg_write32(dev, reg, orig);
        (orig, probe)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioCap {
    pub cap_len: u8,
    pub cfg_type: u8,
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

/// The guest's side of a split virtqueue at fixed addresses.
pub struct GuestQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub avail_idx: u16,
    pub used_seen: u16,
}

impl GuestQueue {
    pub fn new(size: u16, desc: u64, avail: u64, used: u64) -> GuestQueue {
        GuestQueue {
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    pub fn set_desc(&self, mem: &GuestMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.desc + 16 * u64::from(i);
        mem.write_u64(at, addr).unwrap();
        mem.write_u32(at + 8, len).unwrap();
        mem.write_u16(at + 12, flags).unwrap();
        mem.write_u16(at + 14, next).unwrap();
    }

    /// Publishes chain `head` on the avail ring.
    pub fn push(&mut self, mem: &GuestMemory, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        mem.write_u16(self.avail + 4 + 2 * slot, head).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.avail_idx).unwrap();
    }

    pub fn used_idx(&self, mem: &GuestMemory) -> u16 {
        mem.read_u16(self.used + 2).unwrap()
    }

    /// The next used element (id, len), if the device produced one.
    pub fn pop_used(&mut self, mem: &GuestMemory) -> Option<(u32, u32)> {
        if self.used_idx(mem) == self.used_seen {
            return None;
        }
        let slot = u64::from(self.used_seen % self.size);
        let id = mem.read_u32(self.used + 4 + 8 * slot).unwrap();
        let len = mem.read_u32(self.used + 8 + 8 * slot).unwrap();
        self.used_seen = self.used_seen.wrapping_add(1);
        Some((id, len))
    }
}
