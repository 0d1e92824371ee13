//! Port I/O dispatch and virtqueue throughput, each printed with a
//! reference measured in the same run:
//!
//! - ns per `in` through [`PortBus`] (to a plain device, and through the
//!   PCI bus to a virtio register) vs a direct call of the same device;
//! - descriptors per second through a [`Queue`] (pop a checked chain, read
//!   64 bytes from it, put it on the used ring) vs a loop that only copies
//!   the same 64 bytes per descriptor out of guest memory.
//!
//! Run: `cargo bench -p devices --bench bus_virtqueue`

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::bus::{AccessSize, PortBus, PortIoDevice};
use devices::irq::NoIrq;
use devices::memory::{GuestMemory, MemoryRange};
use devices::pci::PciBus;
use devices::virtio::rnd::Rnd;
use devices::virtio::{attach, Layout, Queue};

struct Reg(u32);

impl PortIoDevice for Reg {
    fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
        self.0 ^ u32::from(port)
    }
    fn port_write(&mut self, _port: u16, _size: AccessSize, value: u32) {
        self.0 = value;
    }
}

/// Runs `f` for about `budget` and returns ns per call.
fn time(budget: Duration, mut f: impl FnMut(u32)) -> f64 {
    let mut n: u64 = 1000;
    loop {
        let t = Instant::now();
        for i in 0..n {
            f(i as u32);
        }
        let el = t.elapsed();
        if el >= budget {
            return el.as_nanos() as f64 / n as f64;
        }
        n *= 2;
    }
}

fn ports() {
    let budget = Duration::from_millis(300);
    let mut bus = PortBus::new();
    // A realistic map: PIC, PIT, RTC, UART, PCI and a few more.
    for (base, len) in [
        (0x20, 2),
        (0x40, 4),
        (0x61, 1),
        (0x70, 2),
        (0xa0, 2),
        (0x3f8, 8),
        (0x4d0, 2),
        (0x510, 2),
    ] {
        bus.insert(base, len, Arc::new(Mutex::new(Reg(0)))).unwrap();
    }
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x100000)]).unwrap();
    let mut pci = PciBus::new();
    attach(&mut pci, Rnd::new(), Layout::Modern, mem, |_| {
        Arc::new(NoIrq)
    })
    .unwrap();
    let pci = Arc::new(Mutex::new(pci));
    bus.insert(0xcf8, 8, pci.clone()).unwrap();
    bus.set_fallback(pci);

    let mut direct = Reg(0);
    let dev: &mut dyn PortIoDevice = &mut direct;
    let reference = time(budget, |i| {
        black_box(black_box(&mut *dev).port_read(0x3fd, AccessSize::Byte) ^ i);
    });
    let uart = time(budget, |_| {
        black_box(bus.read(black_box(0x3fd), AccessSize::Byte));
    });
    let virtio = time(budget, |_| {
        black_box(bus.read(black_box(0x1000 + 18), AccessSize::Word));
    });
    let cfg = time(budget, |_| {
        black_box(bus.read(black_box(0xcfc), AccessSize::Dword));
    });
    println!("| port access | ns/access | vs direct call |");
    println!("|---|---:|---:|");
    println!("| direct call of the device (reference) | {reference:.1} | 1.0 |");
    for (what, ns) in [
        ("PortBus -> UART-like device", uart),
        ("PortBus -> PCI config data (0xcfc)", cfg),
        ("PortBus -> PCI BAR -> virtio common cfg", virtio),
    ] {
        println!("| {what} | {ns:.1} | {:.1} |", ns / reference);
    }
}

fn queue(chain_len: u16) {
    const SIZE: u16 = 256;
    const BUF: u64 = 64;
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x200000)]).unwrap();
    let (desc, avail, used, data) = (0x10000u64, 0x20000u64, 0x30000u64, 0x100000u64);
    let heads = SIZE / chain_len;
    for h in 0..heads {
        for k in 0..chain_len {
            let i = h * chain_len + k;
            let at = desc + 16 * u64::from(i);
            mem.write_u64(at, data + BUF * u64::from(i)).unwrap();
            mem.write_u32(at + 8, BUF as u32).unwrap();
            let last = k + 1 == chain_len;
            mem.write_u16(at + 12, if last { 0 } else { 1 }).unwrap();
            mem.write_u16(at + 14, i + 1).unwrap();
        }
    }
    let mut q = Queue::new(SIZE);
    q.set_desc_table(desc);
    q.set_avail_ring(avail);
    q.set_used_ring(used);
    q.set_enabled(true);
    let mut buf = vec![0u8; (BUF * u64::from(chain_len)) as usize];
    let mut avail_idx: u16 = 0;
    let rounds = 4000u32;
    let t = Instant::now();
    let mut descs = 0u64;
    for _ in 0..rounds {
        // The guest posts a ring's worth of chains.
        for h in 0..heads {
            let slot = u64::from(avail_idx % SIZE);
            mem.write_u16(avail + 4 + 2 * slot, h * chain_len).unwrap();
            avail_idx = avail_idx.wrapping_add(1);
        }
        mem.write_u16(avail + 2, avail_idx).unwrap();
        while let Some(c) = q.pop_valid(&mem, "bench") {
            c.reader(&mem).read_exact(&mut buf).unwrap();
            q.add_used(&mem, c.head(), 0).unwrap();
            descs += u64::from(chain_len);
        }
    }
    let el = t.elapsed();
    let rate = descs as f64 / el.as_secs_f64();

    // Reference: copy the same bytes out of guest memory, nothing else.
    let t = Instant::now();
    let mut copied = 0u64;
    for _ in 0..rounds {
        for i in 0..SIZE {
            mem.read(data + BUF * u64::from(i), &mut buf[..BUF as usize])
                .unwrap();
            black_box(&buf);
            copied += 1;
        }
    }
    let ref_rate = copied as f64 / t.elapsed().as_secs_f64();
    println!(
        "| {chain_len}-descriptor chains, {BUF} B each | {:.1} M | {:.1} M | {:.2} |",
        rate / 1e6,
        ref_rate / 1e6,
        ref_rate / rate
    );
}

fn main() {
    ports();
    println!();
    println!("| virtqueue (size 256) | descriptors/s | memcpy-only reference/s | slowdown |");
    println!("|---|---:|---:|---:|");
    queue(1);
    queue(4);
}
