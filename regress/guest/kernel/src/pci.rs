//! PCI bus 0 through configuration mechanism #1 (0xcf8/0xcfc).

use crate::io::{inl, outl};
use crate::println;

pub const OPENBSD_VENDOR: u16 = 0x0b5d;

const ADDRESS: u16 = 0xcf8;
const DATA: u16 = 0xcfc;
const CMD_IO_ENABLE: u32 = 1;

pub fn read32(dev: u8, reg: u8) -> u32 {
    outl(
        ADDRESS,
        0x8000_0000 | u32::from(dev & 0x1f) << 11 | u32::from(reg & 0xfc),
    );
    inl(DATA)
}

pub fn write32(dev: u8, reg: u8, v: u32) {
    outl(
        ADDRESS,
        0x8000_0000 | u32::from(dev & 0x1f) << 11 | u32::from(reg & 0xfc),
    );
    outl(DATA, v);
}

#[derive(Clone, Copy)]
pub struct Device {
    pub dev: u8,
    pub vendor: u16,
    pub device: u16,
}

impl Device {
    /// The I/O port base of BAR `n`, with I/O decoding turned on; None if
    /// the BAR is not an I/O BAR.
    pub fn io_bar(&self, n: u8) -> Option<u16> {
        let bar = read32(self.dev, 0x10 + 4 * n);
        if bar & 1 == 0 || bar & 0xffff_0000 != 0 {
            return None;
        }
        let cmd = read32(self.dev, 0x04);
        write32(self.dev, 0x04, (cmd & 0xffff) | CMD_IO_ENABLE);
        Some((bar & 0xfffc) as u16)
    }

    /// Walks the capability list, calling `f(offset, id)` for each.
    pub fn capabilities(&self, mut f: impl FnMut(u8, u8)) {
        if (read32(self.dev, 0x04) >> 16) & 0x10 == 0 {
            return;
        }
        let mut ptr = (read32(self.dev, 0x34) & 0xfc) as u8;
        // A hostile or broken list may loop: 48 capabilities fit in the
        // header's 192 bytes at most.
        for _ in 0..48 {
            if ptr < 0x40 {
                break;
            }
            let head = read32(self.dev, ptr);
            f(ptr, head as u8);
            ptr = ((head >> 8) & 0xfc) as u8;
        }
    }
}

pub struct Devices {
    list: [Option<Device>; 32],
}

impl Devices {
    pub fn find(&self, vendor: u16, device: u16) -> Option<Device> {
        self.list
            .iter()
            .flatten()
            .find(|d| d.vendor == vendor && d.device == device)
            .copied()
    }
}

/// Every function 0 on bus 0, one `KERN-PCI slot vendor:device class`
/// line each.
pub fn scan() -> Devices {
    let mut list = [None; 32];
    for dev in 0..32u8 {
        let id = read32(dev, 0);
        if id & 0xffff == 0xffff {
            continue;
        }
        let class = read32(dev, 0x08) >> 16;
        let d = Device {
            dev,
            vendor: id as u16,
            device: (id >> 16) as u16,
        };
        println!(
            "KERN-PCI {:02x} {:04x}:{:04x} {:04x}",
            dev, d.vendor, d.device, class
        );
        list[usize::from(dev)] = Some(d);
    }
    Devices { list }
}
