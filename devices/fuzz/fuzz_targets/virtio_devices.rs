//! viornd and vmmci request paths: a random guest-memory image and a random
//! sequence of register accesses, notifications and host commands.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use devices::bus::AccessSize;
use devices::clock::HostClock;
use devices::irq::NoIrq;
use devices::memory::{GuestMemory, MemoryRange};
use devices::pci::PciBarHandler;
use devices::virtio::rnd::Rnd;
use devices::virtio::vmmci::{Timer, Vmmci, VmmciCommand};
use devices::virtio::{Layout, VirtioPci};
use libfuzzer_sys::fuzz_target;

struct NoTimer;
impl Timer for NoTimer {
    fn arm(&mut self, _after: Duration) {}
}

const MEM: usize = 0x20000;

fuzz_target!(|data: &[u8]| {
    let split = data.len().min(MEM);
    let (image, ops) = data.split_at(data.len() - split / 2);
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    mem.write(0, &image[..image.len().min(MEM)]).unwrap();
    let mut rnd = VirtioPci::new(Rnd::new(), Layout::Modern, mem.clone(), Arc::new(NoIrq));
    let vmmci = Vmmci::new(Arc::new(HostClock::new()), Box::new(NoTimer));
    let mut ctl = VirtioPci::new(vmmci, Layout::Legacy, mem.clone(), Arc::new(NoIrq));
    for op in ops.chunks_exact(8) {
        let size = match op[1] % 3 {
            0 => AccessSize::Byte,
            1 => AccessSize::Word,
            _ => AccessSize::Dword,
        };
        // Mostly the registers that exist; sometimes anywhere in the BAR.
        let offset = if op[0] & 0x80 != 0 {
            u16::from_le_bytes([op[2], op[3]]) & 0xfff
        } else {
            [0x000u16, 0x100, 0x200, 0x300][usize::from(op[2] % 4)] + u16::from(op[3] % 64)
        };
        let value = u32::from_le_bytes([op[4], op[5], op[6], op[7]]);
        match op[0] & 0x7 {
            0 | 1 => rnd.bar_write(0, offset, size, value),
            2 => {
                rnd.bar_read(0, offset, size);
            }
            3 => ctl.bar_write(0, offset % 40, size, value),
            4 => {
                ctl.bar_read(0, offset % 40, size);
            }
            5 => {
                let cmd = VmmciCommand::from_u32(value % 4).unwrap();
                let _ = ctl.vmmci_command(cmd);
            }
            6 => {
                ctl.vmmci_timeout();
            }
            _ => rnd.bar_write(0, 0x100, AccessSize::Word, 0),
        }
    }
});
