//! Virtio devices brought up through port I/O the way guests do it:
//! SeaBIOS-style PCI enumeration and BAR programming, Linux's
//! virtio_pci_modern sequence for viornd, and the OpenBSD vmmci (virtio
//! 0.9) sequence — plus the hostile versions of each step.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use devices::bus::AccessSize;
use devices::memory::GuestMemory;
use devices::pci::PciBus;
use devices::virtio::pci::{common as cc, legacy, Layout};
use devices::virtio::queue::VIRTIO_PAGE_SIZE;
use devices::virtio::rnd::Rnd;
use devices::virtio::vmmci::{
    VmStop, Vmmci, VmmciCommand, VmmciError, VMMCI_F_SYNCRTC, VMMCI_TIMEOUT_LONG,
    VMMCI_TIMEOUT_SHORT,
};
use devices::virtio::{
    attach, Queue, VirtioDevice, VirtioPci, DEVICE_BLOCK, STATUS_ACKNOWLEDGE, STATUS_DRIVER,
    STATUS_DRIVER_OK, STATUS_FEATURES_OK, VIRTIO_F_VERSION_1,
};

/// A stand-in block device (one queue of 128, 24 bytes of config) that
/// echoes each chain's readable length, so the seed's device order can be
/// checked without the real vioblk.
struct Echo;

impl VirtioDevice for Echo {
    fn device_type(&self) -> u16 {
        DEVICE_BLOCK
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[128]
    }
    fn queue_notify(&mut self, _i: u16, q: &mut Queue, mem: &GuestMemory) -> bool {
        let mut used = false;
        while let Some(c) = q.pop_valid(mem, "echo") {
            q.add_used(mem, c.head(), c.readable_len() as u32).unwrap();
            used = true;
        }
        used
    }
}

struct Vm {
    m: Machine,
    mem: GuestMemory,
    lines: Lines,
    rnd: Arc<Mutex<VirtioPci<Rnd>>>,
    vmmci: Arc<Mutex<VirtioPci<Vmmci>>>,
    timer: FakeTimer,
    clock: Arc<FakeClock>,
}

/// The devices in the order of vmd's virtio_init: viornd, (nics), disks,
/// (cdrom), vmmci.
fn vm() -> Vm {
    let mem = memory();
    let lines = Lines::default();
    let mut pci = PciBus::new();
    let (id, rnd) = attach(&mut pci, Rnd::new(), Layout::Modern, mem.clone(), |n| {
        lines.make(n)
    })
    .unwrap();
    assert_eq!(id, 1);
    let (id, _blk) = attach(&mut pci, Echo, Layout::Modern, mem.clone(), |n| {
        lines.make(n)
    })
    .unwrap();
    assert_eq!(id, 2);
    let timer = FakeTimer::default();
    let clock = Arc::new(FakeClock::default());
    let dev = Vmmci::new(clock.clone(), Box::new(timer.clone()));
    let (id, vmmci) = attach(&mut pci, dev, Layout::Legacy, mem.clone(), |n| {
        lines.make(n)
    })
    .unwrap();
    assert_eq!(id, 3);
    assert_eq!(pci.irqs(), vec![3, 5, 6]);
    Vm {
        m: Machine::new(pci),
        mem,
        lines,
        rnd,
        vmmci,
        timer,
        clock,
    }
}

#[test]
fn pci_enumeration_sees_vmd_device_order_and_ids() {
    let vm = vm();
    let m = &vm.m;
    // Host bridge.
    assert_eq!(m.cfg_read32(0, 0), 0x0666_0b5d);
    assert_eq!(m.cfg_read32(0, 8) >> 8, 0x06_00_00);
    assert_eq!(m.cfg_read8(0, 0x3d), 0, "host bridge has no interrupt pin");
    // viornd: Qumranet 1.x RNG, subsystem OpenBSD/ENTROPY, rev 1, IRQ 3.
    assert_eq!(m.cfg_read32(1, 0), 0x1044_1af4);
    assert_eq!(m.cfg_read32(1, 8), 0x0880_0001);
    assert_eq!(m.cfg_read32(1, 0x2c), 0x0004_0b5d);
    assert_eq!(m.cfg_read8(1, 0x3c), 3);
    assert_eq!(m.cfg_read8(1, 0x3d), 1);
    // The block device: mass storage, IRQ 5.
    assert_eq!(m.cfg_read32(2, 0), 0x1042_1af4);
    assert_eq!(m.cfg_read16(2, 0x0a), 0x0100);
    assert_eq!(m.cfg_read8(2, 0x3c), 5);
    // vmmci: OpenBSD control device, virtio 0.9, rev 0, subsystem 0xffff.
    assert_eq!(m.cfg_read32(3, 0), 0x0777_0b5d);
    assert_eq!(m.cfg_read32(3, 8), 0x0780_0000);
    assert_eq!(m.cfg_read16(3, 0x2e), 0xffff);
    assert_eq!(m.cfg_read8(3, 0x3c), 6);
    assert_eq!(m.cfg_read16(3, 6) & 0x10, 0, "vmmci has no capabilities");
    // Nothing beyond, nor on other buses or functions.
    for dev in 4..32 {
        assert_eq!(m.cfg_read32(dev, 0), 0xffff_ffff);
    }
    m.outl(0xcf8, 0x8001_0800);
    assert_eq!(m.inl(0xcfc), 0xffff_ffff);
    m.outl(0xcf8, 0x8000_0900);
    assert_eq!(m.inl(0xcfc), 0xffff_ffff);
    // Config mechanism disabled: all ones.
    m.outl(0xcf8, 0x0000_0800);
    assert_eq!(m.inl(0xcfc), 0xffff_ffff);
    assert_eq!(m.inl(0xcf8), 0x0000_0800);
    // I/O BARs from 0x1000 in 0x1000 steps; 4 KiB big; the rest zero.
    for (dev, base) in [(1u8, 0x1000u32), (2, 0x2000), (3, 0x3000)] {
        assert_eq!(m.bar_size(dev, 0), (base | 1, 0xffff_f001));
        assert_eq!(m.bar_size(dev, 1), (0, 0));
        assert_eq!(m.cfg_read32(dev, 0x10), base | 1, "BAR restored");
    }
    // Byte and word lanes of the data port.
    assert_eq!(m.cfg_read16(1, 2), 0x1044);
    assert_eq!(m.cfg_read8(1, 1), 0x1a);
    assert_eq!(m.cfg_read8(1, 0x2f), 0x00);
}

#[test]
fn capabilities_describe_the_io_bar_layout() {
    let vm = vm();
    let caps = vm.m.virtio_caps(1);
    let kinds: Vec<_> = caps
        .iter()
        .map(|c| (c.cfg_type, c.offset, c.length))
        .collect();
    assert_eq!(kinds, vec![(1, 0x000, 56), (3, 0x200, 1), (2, 0x100, 2)]);
    assert!(caps.iter().all(|c| c.bar == 0 && c.cap_len == 16));
    let blk = vm.m.virtio_caps(2);
    let kinds: Vec<_> = blk
        .iter()
        .map(|c| (c.cfg_type, c.offset, c.length))
        .collect();
    assert_eq!(
        kinds,
        vec![(1, 0x000, 56), (4, 0x300, 24), (3, 0x200, 1), (2, 0x100, 2)]
    );
    // notify_off_multiplier is 0: every queue notifies at the same port.
    assert_eq!(vm.m.cfg_read32(1, 0x40 + 2 * 24 + 16), 0);
}

/// Linux virtio_pci_modern: reset, ACK, DRIVER, features, FEATURES_OK,
/// queue set-up, DRIVER_OK. Returns the BAR base.
fn modern_bring_up(vm: &Vm, dev: u8, q: &GuestQueue) -> u16 {
    let m = &vm.m;
    m.cfg_write16(dev, 4, 1); // I/O space enable
    let base = (m.cfg_read32(dev, 0x10) & !3) as u16;
    m.outb(base + 20, 0);
    assert_eq!(m.inb(base + 20), 0);
    m.outb(base + 20, STATUS_ACKNOWLEDGE);
    m.outb(base + 20, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    m.outl(base, 0);
    let lo = m.inl(base + 4);
    m.outl(base, 1);
    let hi = m.inl(base + 4);
    let features = u64::from(lo) | (u64::from(hi) << 32);
    assert_eq!(features, VIRTIO_F_VERSION_1);
    m.outl(base + 8, 0);
    m.outl(base + 12, lo);
    m.outl(base + 8, 1);
    m.outl(base + 12, hi);
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
    );
    assert_ne!(m.inb(base + 20) & STATUS_FEATURES_OK, 0);
    assert_eq!(m.inw(base + 16), 0xffff, "config MSI-X vector: none");
    assert_eq!(m.inw(base + 18), 1, "one queue");
    m.outw(base + 22, 0);
    assert_eq!(m.inw(base + 26), 0xffff, "queue MSI-X vector: none");
    let max = m.inw(base + 24);
    assert!(max >= q.size);
    m.outw(base + 24, q.size);
    for (reg, addr) in [(32u16, q.desc), (40, q.avail), (48, q.used)] {
        m.outl(base + reg, addr as u32);
        m.outl(base + reg + 4, (addr >> 32) as u32);
    }
    assert_eq!(m.inw(base + 30), 0, "queue_notify_off");
    m.outw(base + 28, 1);
    assert_eq!(m.inw(base + 28), 1);
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    base
}

fn rnd_queue() -> GuestQueue {
    GuestQueue::new(64, 0x10000, 0x10400, 0x11000)
}

#[test]
fn linux_modern_driver_reads_entropy_and_takes_interrupts() {
    let vm = vm();
    let mut q = rnd_queue();
    let base = modern_bring_up(&vm, 1, &q);
    let line = vm.lines.get(3);
    assert_eq!(base, 0x1000);
    assert_eq!(vm.m.inw(base + 24), 64, "viornd queue size");

    // Two requests: 32 bytes, and 16 + 4096 bytes in a 2-descriptor chain.
    q.set_desc(&vm.mem, 0, 0x20000, 32, 2, 0);
    q.set_desc(&vm.mem, 1, 0x30000, 16, 2 | 1, 2);
    q.set_desc(&vm.mem, 2, 0x30010, 4096, 2, 0);
    q.push(&vm.mem, 0);
    q.push(&vm.mem, 1);
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(&vm.mem), Some((0, 32)));
    assert_eq!(q.pop_used(&vm.mem), Some((1, 16 + 4096)));
    assert_eq!(q.pop_used(&vm.mem), None);
    let mut buf = vec![0u8; 4112];
    vm.mem.read(0x30000, &mut buf).unwrap();
    assert!(
        buf.iter().filter(|&&b| b == 0).count() < 100,
        "random bytes"
    );
    assert!(line.high());
    assert_eq!(vm.m.inb(base + 0x200), 1, "ISR: queue interrupt");
    assert!(!line.high(), "ISR read deasserts");
    assert_eq!(vm.m.inb(base + 0x200), 0, "ISR is read-to-clear");

    // Interrupt suppression: the used ring still fills, no interrupt.
    vm.mem.write_u16(q.avail, 1).unwrap();
    q.set_desc(&vm.mem, 3, 0x21000, 8, 2, 0);
    q.push(&vm.mem, 3);
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(&vm.mem), Some((3, 8)));
    assert!(!line.high());
    assert_eq!(line.raised.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn status_zero_resets_device_and_queues() {
    let vm = vm();
    let mut q = rnd_queue();
    let base = modern_bring_up(&vm, 1, &q);
    q.set_desc(&vm.mem, 0, 0x20000, 8, 2, 0);
    q.push(&vm.mem, 0);
    vm.m.outw(base + 0x100, 0);
    assert!(vm.lines.get(3).high());
    vm.m.outb(base + 20, 0);
    assert!(!vm.lines.get(3).high(), "reset lowers the interrupt");
    assert_eq!(vm.m.inb(base + 20), 0);
    vm.m.outl(base + 8, 1);
    assert_eq!(vm.m.inl(base + 12), 0, "driver features cleared");
    assert_eq!(vm.m.inw(base + 22), 0, "queue select cleared");
    assert_eq!(vm.m.inw(base + 28), 0, "queue disabled");
    assert_eq!(vm.m.inl(base + 32), 0, "ring addresses cleared");
    assert_eq!(vm.m.inw(base + 24), 64, "queue size back to maximum");
    {
        let dev = vm.rnd.lock().unwrap();
        assert_eq!(dev.queue(0).unwrap().next_avail(), 0);
    }
    // A fresh driver starts over with fresh rings.
    vm.mem.fill(0x10000, 0x2000, 0).unwrap();
    let mut q = rnd_queue();
    let base = modern_bring_up(&vm, 1, &q);
    q.set_desc(&vm.mem, 5, 0x20000, 8, 2, 0);
    q.push(&vm.mem, 5);
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(&vm.mem), Some((5, 8)));
}

#[test]
fn seabios_moves_bars_and_the_device_follows() {
    let vm = vm();
    let m = &vm.m;
    // SeaBIOS assigns I/O from 0xc000 downwards in its own order.
    m.cfg_write32(1, 0x10, 0xc000);
    m.cfg_write32(2, 0x10, 0xc040 | 1);
    assert_eq!(m.cfg_read32(1, 0x10), 0xc001);
    assert_eq!(m.cfg_read32(2, 0x10), 0xc001, "aligned to the BAR size");
    m.cfg_write32(2, 0x10, 0xd000);
    m.cfg_write16(1, 4, 0x0001);
    assert_eq!(m.cfg_read16(1, 4), 0x0001);
    // A BIOS that does not know the machine writes 0xff ("no connection")
    // into the interrupt line; line and pin keep naming the wiring.
    m.cfg_write8(1, 0x3c, 0xff);
    m.cfg_write8(1, 0x3d, 4);
    assert_eq!(m.cfg_read8(1, 0x3c), 3);
    assert_eq!(m.cfg_read8(1, 0x3d), 1);
    m.cfg_write32(1, 0x3c, 0x0000_040b);
    assert_eq!(m.cfg_read32(1, 0x3c) & 0xffff, 0x0103);
    // The old window is empty, the new one is the device.
    assert_eq!(m.inl(0x1000 + 18), 0xffff_ffff);
    assert_eq!(m.inw(0xc000 + 18), 1);
    assert_eq!(m.inw(0xd000 + 24), 128);
    // The device still interrupts on the IRQ it was wired to.
    let mut q = rnd_queue();
    let base = modern_bring_up(&vm, 1, &q);
    assert_eq!(base, 0xc000);
    q.set_desc(&vm.mem, 0, 0x20000, 8, 2, 0);
    q.push(&vm.mem, 0);
    m.outw(base + 0x100, 0);
    assert!(vm.lines.get(3).high());
}

#[test]
fn pci_config_read_only_fields_and_odd_accesses() {
    let vm = vm();
    let m = &vm.m;
    for (reg, v) in [(0u8, 0u32), (8, 0), (0x2c, 0), (0x34, 0), (0x40, 0)] {
        let before = m.cfg_read32(1, reg);
        m.cfg_write32(1, reg, v);
        assert_eq!(m.cfg_read32(1, reg), before, "reg 0x{reg:x} is read-only");
    }
    // Status (capability list bit) survives a write-back of zero.
    m.cfg_write16(1, 6, 0);
    assert_eq!(m.cfg_read16(1, 6) & 0x10, 0x10);
    // Expansion ROM: none.
    m.cfg_write32(1, 0x30, 0xffff_ffff);
    assert_eq!(m.cfg_read32(1, 0x30), 0);
    // A word read at 0xcff runs off the register: the missing lane is 0xff.
    m.outl(0xcf8, 0x8000_0800);
    assert_eq!(m.inw(0xcff), 0xff10);
    // Byte writes to the address register only change that byte.
    m.outl(0xcf8, 0x8000_0800);
    m.outb(0xcf8, 0x3c);
    assert_eq!(m.inl(0xcf8), 0x8000_083c);
    assert_eq!(m.inb(0xcfc), 3);
    // While a BAR is being sized it decodes nothing (and nothing wraps).
    m.cfg_write32(1, 0x10, 0xffff_ffff);
    assert_eq!(m.inl(0xffff), 0xffff_ffff);
    assert_eq!(m.inw(0x1000 + 18), 0xffff);
    m.cfg_write32(1, 0x10, 0x1000);
    assert_eq!(m.inw(0x1000 + 18), 1);
    // Writes to unimplemented BARs stay zero.
    m.cfg_write32(1, 0x14, 0x5000);
    assert_eq!(m.cfg_read32(1, 0x14), 0);
}

#[test]
fn hostile_common_config_writes_are_ignored() {
    let vm = vm();
    let q = rnd_queue();
    let base = modern_bring_up(&vm, 1, &q);
    let m = &vm.m;
    // Read-only registers.
    m.outl(base, 0);
    m.outl(base + 4, 0xffff_ffff);
    assert_eq!(m.inl(base + 4), 0, "device features unchanged");
    m.outw(base + 18, 7);
    assert_eq!(m.inw(base + 18), 1, "num_queues unchanged");
    m.outb(base + 21, 9);
    assert_eq!(m.inb(base + 21), 0, "config generation unchanged");
    m.outw(base + 30, 5);
    assert_eq!(m.inw(base + 30), 0);
    m.outw(base + 16, 3);
    assert_eq!(m.inw(base + 16), 0xffff, "MSI-X vector stays NO_VECTOR");
    // Wrong access sizes.
    m.outw(base + 20, 0);
    assert_eq!(
        m.inb(base + 20) & STATUS_DRIVER_OK,
        STATUS_DRIVER_OK,
        "word status write ignored"
    );
    m.outb(base, 1);
    assert_eq!(m.inl(base), 0, "byte feature-select write ignored");
    m.outw(base + 32, 0x1234);
    assert_eq!(
        m.inl(base + 32),
        q.desc as u32,
        "word ring address write ignored"
    );
    // Features the device does not offer never stick.
    m.outl(base + 8, 0);
    m.outl(base + 12, 0xffff_ffff);
    assert_eq!(m.inl(base + 12), 0);
    m.outl(base + 8, 7);
    m.outl(base + 12, 0xffff_ffff);
    assert_eq!(m.inl(base + 12), 0, "select > 1 reads as zero");
    // A queue that does not exist.
    m.outw(base + 22, 9);
    assert_eq!(m.inw(base + 24), 0);
    assert_eq!(m.inw(base + 28), 0);
    m.outw(base + 24, 8);
    m.outw(base + 28, 1);
    m.outl(base + 32, 0x4000);
    m.outw(base + 0x100, 9);
    m.outw(base + 0x100, 0xffff);
    // Registers that do not exist, reads of the notify and ISR writes.
    assert_eq!(m.inl(base + 60), 0);
    assert_eq!(m.inl(base + 0x400), 0xffff_ffff);
    assert_eq!(
        m.inl(base + 0x300),
        0xffff_ffff,
        "viornd has no device config"
    );
    assert_eq!(m.inw(base + 0x100), 0);
    m.outb(base + 0x200, 0xff);
    // Still a working device.
    m.outw(base + 22, 0);
    let mut q = q;
    q.set_desc(&vm.mem, 0, 0x20000, 8, 2, 0);
    q.push(&vm.mem, 0);
    m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(&vm.mem), Some((0, 8)));
}

/// Brings viornd up with `size` and `desc/avail/used`, kicks it, and
/// returns whether any used entry appeared.
fn kick_with_layout(vm: &Vm, size: u16, desc: u64, avail: u64, used: u64) -> bool {
    vm.mem.fill(0x10000, 0x2000, 0).unwrap();
    let mut q = GuestQueue::new(size.max(1), desc, avail, used);
    let base = modern_bring_up_sized(vm, size, &q);
    if vm.mem.contains(desc, 16) && vm.mem.contains(avail, 6) {
        q.set_desc(&vm.mem, 0, 0x20000, 8, 2, 0);
        q.push(&vm.mem, 0);
    }
    vm.m.outw(base + 0x100, 0);
    vm.mem.contains(used, 8) && q.pop_used(&vm.mem).is_some()
}

fn modern_bring_up_sized(vm: &Vm, size: u16, q: &GuestQueue) -> u16 {
    let q2 = GuestQueue::new(64, q.desc, q.avail, q.used);
    let base = modern_bring_up(vm, 1, &q2);
    vm.m.outw(base + 28, 0);
    vm.m.outw(base + 24, size);
    vm.m.outw(base + 28, 1);
    base
}

#[test]
fn hostile_queue_sizes_and_ring_addresses_disable_the_queue() {
    let vm = vm();
    for size in [0u16, 3, 6, 48] {
        assert!(
            !kick_with_layout(&vm, size, 0x10000, 0x10400, 0x11000),
            "size {size}"
        );
    }
    // Larger than the maximum is clamped (to 64) as in vmd.
    assert!(kick_with_layout(&vm, 1024, 0x10000, 0x10400, 0x11000));
    assert_eq!(vm.m.inw(0x1000 + 24), 64);
    // Rings out of memory, wrapping, or misaligned.
    for (d, a, u) in [
        (0x20_0000u64, 0x10400u64, 0x11000u64),
        (0x10000, 0x1f_fffe, 0x11000),
        (0x10000, 0x10400, u64::MAX - 7),
        (0x10008, 0x10400, 0x11000),
        (0x10000, 0x10401, 0x11000),
        (0x10000, 0x10400, 0x11002),
    ] {
        assert!(!kick_with_layout(&vm, 64, d, a, u), "{d:x} {a:x} {u:x}");
    }
    // And good values work again.
    assert!(kick_with_layout(&vm, 16, 0x10000, 0x10400, 0x11000));
}

fn fresh_rnd(vm: &Vm) -> (GuestQueue, u16) {
    vm.mem.fill(0x10000, 0x2000, 0).unwrap();
    let q = rnd_queue();
    let base = modern_bring_up(vm, 1, &q);
    (q, base)
}

#[test]
fn hostile_chains_fail_alone_and_the_device_carries_on() {
    let vm = vm();
    let (mut q, base) = fresh_rnd(&vm);
    let mem = &vm.mem;
    let top = 0x20_0000u64;
    type MakeChain<'a> = Box<dyn Fn(&GuestQueue) + 'a>;
    let bad: Vec<MakeChain> = vec![
        // A loop of two descriptors.
        Box::new(|q| {
            q.set_desc(mem, 0, 0x20000, 8, 2 | 1, 1);
            q.set_desc(mem, 1, 0x20008, 8, 2 | 1, 0);
        }),
        // A self loop.
        Box::new(|q| q.set_desc(mem, 0, 0x20000, 8, 2 | 1, 0)),
        // Next off the table.
        Box::new(|q| q.set_desc(mem, 0, 0x20000, 8, 2 | 1, 64)),
        // Buffers outside memory, across the end, wrapping, u32::MAX long.
        Box::new(|q| q.set_desc(mem, 0, top, 8, 2, 0)),
        Box::new(|q| q.set_desc(mem, 0, top - 4, 8, 2, 0)),
        Box::new(|q| q.set_desc(mem, 0, u64::MAX - 3, 8, 2, 0)),
        Box::new(|q| q.set_desc(mem, 0, 0x20000, u32::MAX, 2, 0)),
        Box::new(|q| q.set_desc(mem, 0, 0, u32::MAX, 2, 0)),
        // Indirect, not negotiated.
        Box::new(|q| q.set_desc(mem, 0, 0x22000, 32, 4, 0)),
        // Readable after writable.
        Box::new(|q| {
            q.set_desc(mem, 0, 0x20000, 8, 2 | 1, 1);
            q.set_desc(mem, 1, 0x20008, 8, 1 - 1, 0);
        }),
    ];
    for (i, make) in bad.iter().enumerate() {
        make(&q);
        q.push(mem, 0);
        // A good request right behind the bad one.
        q.set_desc(mem, 10, 0x21000, 16, 2, 0);
        q.push(mem, 10);
        vm.m.outw(base + 0x100, 0);
        assert_eq!(
            q.pop_used(mem),
            Some((0, 0)),
            "bad chain {i} handed back empty"
        );
        assert_eq!(
            q.pop_used(mem),
            Some((10, 16)),
            "good request after bad chain {i}"
        );
    }
    // Bad head index: skipped (nothing sensible to hand back).
    q.push(mem, 64);
    q.push(mem, 0xffff);
    q.set_desc(mem, 10, 0x21000, 16, 2, 0);
    q.push(mem, 10);
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(mem), Some((10, 16)));
    // Untouched memory around: nothing was written for the bad chains.
    assert_eq!(mem.read_u64(top - 8).unwrap(), 0);
}

#[test]
fn hostile_avail_index_far_ahead_is_refused_until_fixed() {
    let vm = vm();
    let (mut q, base) = fresh_rnd(&vm);
    let mem = &vm.mem;
    q.set_desc(mem, 0, 0x20000, 8, 2, 0);
    mem.write_u16(q.avail + 2, 65).unwrap();
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.used_idx(mem), 0, "nothing consumed");
    mem.write_u16(q.avail + 2, 0x8000).unwrap();
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.used_idx(mem), 0);
    // The driver comes to its senses.
    mem.write_u16(q.avail + 2, 0).unwrap();
    q.push(mem, 0);
    vm.m.outw(base + 0x100, 0);
    assert_eq!(q.pop_used(mem), Some((0, 8)));
    // Exactly a full ring ahead is fine.
    for _ in 0..64 {
        q.push(mem, 0);
    }
    vm.m.outw(base + 0x100, 0);
    for _ in 0..64 {
        assert_eq!(q.pop_used(mem), Some((0, 8)));
    }
}

/// OpenBSD's vmmci(4) attach and use, on the virtio 0.9 register file.
#[test]
fn openbsd_vmmci_driver_shutdown_reboot_and_time() {
    let vm = vm();
    let m = &vm.m;
    let base = (m.cfg_read32(3, 0x10) & !3) as u16;
    let line = vm.lines.get(6);
    {
        let mut v = vm.vmmci.lock().unwrap();
        assert_eq!(
            v.vmmci_command(VmmciCommand::Shutdown),
            Err(VmmciError::NotReady)
        );
    }
    m.outb(base + legacy::DEVICE_STATUS, 0);
    m.outb(base + legacy::DEVICE_STATUS, STATUS_ACKNOWLEDGE);
    m.outb(
        base + legacy::DEVICE_STATUS,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER,
    );
    assert_eq!(m.inl(base + legacy::DEVICE_FEATURES), 7);
    m.outl(base + legacy::GUEST_FEATURES, 7);
    assert_eq!(m.inl(base + legacy::GUEST_FEATURES), 7);
    assert_eq!(m.inw(base + legacy::QUEUE_SIZE), 0, "no queues");
    m.outb(
        base + legacy::DEVICE_STATUS,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK,
    );

    // Time registers: the first latches the clock.
    *vm.clock.wall.lock().unwrap() = Duration::new(0x1_2345_6789, 250_000_000);
    assert_eq!(m.inl(base + 24), 0x2345_6789);
    *vm.clock.wall.lock().unwrap() = Duration::new(7, 0);
    assert_eq!(m.inl(base + 28), 1);
    assert_eq!(m.inl(base + 32), 250_000);
    assert_eq!(m.inl(base + 36), 0);

    // The host asks for a shutdown: config interrupt, short timeout.
    vm.vmmci
        .lock()
        .unwrap()
        .vmmci_command(VmmciCommand::Shutdown)
        .unwrap();
    assert!(line.high());
    assert_eq!(
        vm.timer.0.lock().unwrap().as_slice(),
        &[VMMCI_TIMEOUT_SHORT]
    );
    assert_eq!(m.inb(base + legacy::ISR_STATUS), 2);
    assert!(!line.high());
    assert_eq!(m.inl(base + 20), 1, "command register");
    // Repeating the same command does nothing.
    vm.vmmci
        .lock()
        .unwrap()
        .vmmci_command(VmmciCommand::Shutdown)
        .unwrap();
    assert!(!line.high());
    // The guest acknowledges: long timeout.
    m.outl(base + 20, 1);
    assert_eq!(vm.timer.0.lock().unwrap().last(), Some(&VMMCI_TIMEOUT_LONG));
    assert_eq!(vm.vmmci.lock().unwrap().vmmci_timeout(), VmStop::Shutdown);
    // A reboot request, acknowledged with the wrong command: no long timeout.
    vm.vmmci
        .lock()
        .unwrap()
        .vmmci_command(VmmciCommand::Reboot)
        .unwrap();
    let n = vm.timer.0.lock().unwrap().len();
    m.outl(base + 20, 1);
    assert_eq!(vm.timer.0.lock().unwrap().len(), n);
    m.outl(base + 20, 2);
    assert_eq!(vm.timer.0.lock().unwrap().last(), Some(&VMMCI_TIMEOUT_LONG));
    assert_eq!(vm.vmmci.lock().unwrap().vmmci_timeout(), VmStop::Reboot);
    // Garbage acks are ignored.
    m.outl(base + 20, 0xdead);
    assert_eq!(m.inl(base + 20), 2);
}

#[test]
fn vmmci_guest_initiated_shutdown_and_rtc_sync() {
    let vm = vm();
    let m = &vm.m;
    let base = (m.cfg_read32(3, 0x10) & !3) as u16;
    m.outb(base + legacy::DEVICE_STATUS, 0);
    m.outb(
        base + legacy::DEVICE_STATUS,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER,
    );
    // Without the SYNCRTC feature, sync requests are skipped.
    m.outl(base + legacy::GUEST_FEATURES, 3);
    m.outb(base + legacy::DEVICE_STATUS, 7);
    vm.vmmci
        .lock()
        .unwrap()
        .vmmci_command(VmmciCommand::SyncRtc)
        .unwrap();
    assert_eq!(m.inl(base + 20), 0);
    assert!(!vm.lines.get(6).high());
    // With it, the guest is told and its ack clears the command.
    m.outb(base + legacy::DEVICE_STATUS, 0);
    m.outl(base + legacy::GUEST_FEATURES, VMMCI_F_SYNCRTC as u32 | 3);
    m.outb(base + legacy::DEVICE_STATUS, 7);
    vm.vmmci
        .lock()
        .unwrap()
        .vmmci_command(VmmciCommand::SyncRtc)
        .unwrap();
    assert_eq!(m.inb(base + legacy::ISR_STATUS), 2);
    assert_eq!(m.inl(base + 20), 3);
    m.outl(base + 20, 3);
    assert_eq!(m.inl(base + 20), 0);
    // The guest shuts down on its own: short timeout to let it finish.
    m.outl(base + 20, 1);
    assert_eq!(
        vm.timer.0.lock().unwrap().as_slice(),
        &[VMMCI_TIMEOUT_SHORT]
    );
    // Read-only registers of the 0.9 file.
    m.outl(base + legacy::DEVICE_FEATURES, 0);
    assert_eq!(m.inl(base + legacy::DEVICE_FEATURES), 7);
    m.outb(base + legacy::ISR_STATUS, 1);
    assert_eq!(m.inb(base + legacy::ISR_STATUS), 0);
    // Queue registers of a queueless device go nowhere.
    m.outl(base + legacy::QUEUE_PFN, 0x10);
    m.outw(base + legacy::QUEUE_NOTIFY, 0);
    assert_eq!(m.inl(base + legacy::QUEUE_PFN), 0);
}

/// A virtio 0.9 device with a queue: the ring at PFN x 4096.
#[test]
fn legacy_queue_lives_at_the_pfn() {
    let mem = memory();
    let lines = Lines::default();
    let mut pci = PciBus::new();
    attach(&mut pci, Echo, Layout::Legacy, mem.clone(), |n| {
        lines.make(n)
    })
    .unwrap();
    let m = Machine::new(pci);
    let base = (m.cfg_read32(1, 0x10) & !3) as u16;
    m.outb(base + legacy::DEVICE_STATUS, 0);
    m.outw(base + legacy::QUEUE_SELECT, 0);
    assert_eq!(m.inw(base + legacy::QUEUE_SIZE), 128);
    m.outl(base + legacy::QUEUE_PFN, 0x40);
    assert_eq!(m.inl(base + legacy::QUEUE_PFN), 0x40);
    m.outb(base + legacy::DEVICE_STATUS, 7);
    let ring = 0x40 * VIRTIO_PAGE_SIZE;
    let avail = ring + 16 * 128;
    // desc (2048) + avail (260) round up to one page; used follows.
    let used = ring + 4096;
    let mut q = GuestQueue::new(128, ring, avail, used);
    q.set_desc(&mem, 0, 0x20000, 100, 1, 1);
    q.set_desc(&mem, 1, 0x20100, 28, 0, 0);
    q.push(&mem, 0);
    m.outw(base + legacy::QUEUE_NOTIFY, 0);
    assert_eq!(q.pop_used(&mem), Some((0, 128)));
    assert_eq!(m.inb(base + legacy::ISR_STATUS), 1);
    assert_eq!(
        devices::virtio::queue::legacy_ring_size(128),
        used + 4096 - ring
    );
    // PFN 0 tears the queue down.
    m.outl(base + legacy::QUEUE_PFN, 0);
    q.push(&mem, 0);
    m.outw(base + legacy::QUEUE_NOTIFY, 0);
    assert_eq!(q.pop_used(&mem), None);
    let _ = (AccessSize::Byte, cc::LEN);
}
