//! The PCI bus through the port bus: random accesses to 0xcf8-0xcff and
//! the BAR windows of a viornd and a vmmci, as a hostile guest would.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::bus::{AccessSize, PortBus};
use devices::clock::HostClock;
use devices::irq::{Irq, NoIrq};
use devices::memory::{GuestMemory, MemoryRange};
use devices::pci::PciBus;
use devices::virtio::rnd::Rnd;
use devices::virtio::vmmci::{Timer, Vmmci};
use devices::virtio::{attach, Layout};
use libfuzzer_sys::fuzz_target;

struct NoTimer;
impl Timer for NoTimer {
    fn arm(&mut self, _after: Duration) {}
}

fn no_irq(_n: u8) -> Irq {
    Arc::new(NoIrq)
}

fuzz_target!(|data: &[u8]| {
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x20000)]).unwrap();
    let mut pci = PciBus::new();
    attach(&mut pci, Rnd::new(), Layout::Modern, mem.clone(), no_irq).unwrap();
    let vmmci = Vmmci::new(Arc::new(HostClock::new()), Box::new(NoTimer));
    attach(&mut pci, vmmci, Layout::Legacy, mem.clone(), no_irq).unwrap();
    let pci = Arc::new(Mutex::new(pci));
    let mut ports = PortBus::new();
    ports.insert(0xcf8, 8, pci.clone()).unwrap();
    ports.set_fallback(pci);
    for op in data.chunks_exact(7) {
        let size = match op[0] % 3 {
            0 => AccessSize::Byte,
            1 => AccessSize::Word,
            _ => AccessSize::Dword,
        };
        let port = match (op[0] >> 2) % 4 {
            0 => 0xcf8,
            1 => 0xcfc + u16::from(op[1] % 4),
            _ => u16::from_le_bytes([op[1], op[2]]),
        };
        let value = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        if op[0] & 0x80 != 0 {
            let v = ports.read(port, size);
            assert_eq!(v & !size.mask(), 0, "read wider than the access");
        } else {
            ports.write(port, size, value);
        }
    }
});
