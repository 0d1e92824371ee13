//! fw_cfg as a hostile guest drives it: a random guest memory image holds
//! the DMA descriptors, and a random program selects items, reads the
//! data port and triggers DMA with any address halves and widths.
#![no_main]

use devices::bus::{AccessSize, PortIoDevice};
use devices::fw_cfg::{E820Entry, FwCfg, BIOS_MAP_FREE};
use devices::memory::{GuestMemory, MemoryRange};
use libfuzzer_sys::fuzz_target;

const MEM: usize = 0x10000;

fuzz_target!(|data: &[u8]| {
    let (image, program) = data.split_at(data.len().min(512));
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    // The image is repeated over memory so descriptors can be anywhere.
    if !image.is_empty() {
        for at in (0..MEM).step_by(image.len()) {
            let n = image.len().min(MEM - at);
            mem.write(at as u64, &image[..n]).unwrap();
        }
    }
    let e820 = [E820Entry { addr: 0, size: MEM as u64, kind: BIOS_MAP_FREE }];
    let mut f = FwCfg::with_vmd_files(mem.clone(), &e820, Some("/pci@i0cf8/*@2\nHALT"));
    for op in program.chunks_exact(6) {
        let size = match op[0] % 3 {
            0 => AccessSize::Byte,
            1 => AccessSize::Word,
            _ => AccessSize::Dword,
        };
        let port = 0x510 + u16::from(op[1] % 12);
        let value = u32::from_le_bytes([op[2], op[3], op[4], op[5]]);
        if op[0] & 0x80 != 0 {
            let v = f.port_read(port, size);
            assert!(v <= size.mask() || port >= 0x514);
        } else {
            f.port_write(port, size, value & size.mask());
        }
    }
});
