//! What OpenBSD's /boot hands the amd64 kernel, as vmd builds it when it
//! boots a kernel itself: the boot arguments page (the BIOS memory map made
//! from the VM's memory ranges, the COM1 console, the MAC address of a
//! network boot) and the 32-bit boot stack the kernel's `start` reads.
//!
//! Layouts are those of `machine/biosvar.h` (packed structs, little-endian):
//! each argument is a `{type, size, next}` header of three 32-bit words
//! followed by its body, with `size` covering header and body; the list
//! ends with the word 0xffffffff.

use crate::memory_layout::{Range, RangeKind};

pub const PAGE_SIZE: usize = 4096;

/// Where the boot arguments and the boot stack go (vmd's loadfile.h).
pub const BOOTARGS_PAGE: u64 = 0x2000;
pub const STACK_PAGE: u64 = 0xF000;

/// Boot argument types.
pub const BOOTARG_MEMMAP: u32 = 0;
pub const BOOTARG_CONSDEV: u32 = 5;
pub const BOOTARG_BOOTMAC: u32 = 7;
pub const BOOTARG_END: u32 = 0xffff_ffff;

/// BIOS memory map entry types.
pub const BIOS_MAP_END: u32 = 0;
pub const BIOS_MAP_FREE: u32 = 1;
pub const BIOS_MAP_RES: u32 = 2;

/// The boot API version vmd announces: the argument vector, the
/// environment and the BIOS memory map (BAPIV_VECTOR | BAPIV_ENV |
/// BAPIV_BMEMMAP).
pub const BOOT_API_VERSION: u32 = 0x0e;
/// The boot device on the stack, always sd0a in vmd (MAKEBOOTDEV(4, 0, 0,
/// 0, 0): type 4 with the B_DEVMAGIC nibble).
pub const BOOTDEV_SD0A: u32 = 0xa000_0004;

/// The console vmd names: com0 (makedev(8, 0)) at 0x3f8, 115200 baud.
pub const CONSDEV_COM0: u32 = 8 << 8;
pub const CONSOLE_SPEED: i32 = 115_200;
pub const CONSOLE_ADDR: u64 = 0x3f8;

/// Bytes of an argument header: type, size, next.
const HEADER: usize = 12;

/// One `bios_memmap_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiosMemmap {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

impl BiosMemmap {
    /// sizeof(bios_memmap_t), packed.
    pub const SIZE: usize = 20;

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.addr.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.kind.to_le_bytes());
    }
}

/// The BIOS memory map of a VM with memory ranges `map`: RAM is free,
/// everything else (the low hole, the PCI window, the BIOS copy) reserved,
/// then the terminating entry.
pub fn bios_memmap(map: &[Range]) -> Vec<BiosMemmap> {
    map.iter()
        .map(|r| BiosMemmap {
            addr: r.gpa,
            size: r.size,
            kind: if r.kind == RangeKind::Ram {
                BIOS_MAP_FREE
            } else {
                BIOS_MAP_RES
            },
        })
        .chain(std::iter::once(BiosMemmap {
            addr: 0,
            size: 0,
            kind: BIOS_MAP_END,
        }))
        .collect()
}

/// One `bios_consdev_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BiosConsdev {
    pub consdev: u32,
    pub conspeed: i32,
    pub consaddr: u64,
    pub consfreq: i32,
    pub flags: u32,
    pub reg_width: i32,
    pub reg_shift: i32,
}

impl BiosConsdev {
    /// sizeof(bios_consdev_t), packed.
    pub const SIZE: usize = 32;

    /// COM1, as vmd always passes it.
    pub fn com1() -> BiosConsdev {
        BiosConsdev {
            consdev: CONSDEV_COM0,
            conspeed: CONSOLE_SPEED,
            consaddr: CONSOLE_ADDR,
            consfreq: 0,
            flags: 0,
            reg_width: 0,
            reg_shift: 0,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.consdev.to_le_bytes());
        out.extend_from_slice(&self.conspeed.to_le_bytes());
        out.extend_from_slice(&self.consaddr.to_le_bytes());
        out.extend_from_slice(&self.consfreq.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.reg_width.to_le_bytes());
        out.extend_from_slice(&self.reg_shift.to_le_bytes());
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootArgsError {
    #[error("boot arguments of {0} bytes do not fit in one page")]
    TooLarge(usize),
}

fn push_arg(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    // Bodies are padded to whole words, and the size says so.
    let padded = body.len().div_ceil(4) * 4;
    let size = (HEADER + padded) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded - body.len(), 0);
}

/// The boot arguments page: the memory map (which must end with its
/// terminating entry, see [`bios_memmap`]), the COM1 console and, for a
/// network boot, the MAC address. Returns the page and the length of the
/// arguments in it, which the kernel gets on its stack.
pub fn bootargs_page(
    memmap: &[BiosMemmap],
    bootmac: Option<[u8; 6]>,
) -> Result<(Box<[u8; PAGE_SIZE]>, u32), BootArgsError> {
    let mut args = Vec::with_capacity(PAGE_SIZE);
    let mut body = Vec::with_capacity(memmap.len() * BiosMemmap::SIZE);
    for m in memmap {
        m.put(&mut body);
    }
    push_arg(&mut args, BOOTARG_MEMMAP, &body);
    body.clear();
    BiosConsdev::com1().put(&mut body);
    push_arg(&mut args, BOOTARG_CONSDEV, &body);
    if let Some(mac) = bootmac {
        push_arg(&mut args, BOOTARG_BOOTMAC, &mac);
    }
    args.extend_from_slice(&BOOTARG_END.to_le_bytes());
    if args.len() > PAGE_SIZE {
        return Err(BootArgsError::TooLarge(args.len()));
    }
    let mut page = Box::new([0u8; PAGE_SIZE]);
    page[..args.len()].copy_from_slice(&args);
    Ok((page, args.len() as u32))
}

/// The words on the boot stack, from the top of [`STACK_PAGE`] down, as
/// /boot leaves them for a 32-bit `start`: the boot arguments' address and
/// length, the BIOS base and extended memory sizes (0: use the memory
/// map), the end of the loaded kernel and symbols, the boot API version,
/// the boot device and the boot flags (none).
pub fn boot_stack(bootargs_len: u32, end: u32) -> [u32; 8] {
    [
        BOOTARGS_PAGE as u32,
        bootargs_len,
        0,
        0,
        end,
        BOOT_API_VERSION,
        BOOTDEV_SD0A,
        0,
    ]
}

/// The boot stack page and the stack pointer the kernel starts with. The
/// stack pointer sits one word below the last pushed word, where a call's
/// return address would be, so `start` finds the flags at 4(%esp), the
/// boot device at 8(%esp) and so on up to the arguments' address at
/// 32(%esp).
pub fn boot_stack_page(bootargs_len: u32, end: u32) -> (Box<[u8; PAGE_SIZE]>, u64) {
    let words = boot_stack(bootargs_len, end);
    let mut page = Box::new([0u8; PAGE_SIZE]);
    let mut at = PAGE_SIZE;
    for w in words {
        at -= 4;
        page[at..at + 4].copy_from_slice(&w.to_le_bytes());
    }
    let rsp = STACK_PAGE + (at - 4) as u64;
    (page, rsp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_layout::{memory_map, MB};

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn memmap_follows_the_memory_ranges() {
        let m = bios_memmap(&memory_map(512 * MB).unwrap());
        assert_eq!(
            m,
            vec![
                BiosMemmap {
                    addr: 0,
                    size: 0xa0000,
                    kind: BIOS_MAP_FREE
                },
                BiosMemmap {
                    addr: 0xa0000,
                    size: 0x60000,
                    kind: BIOS_MAP_RES
                },
                BiosMemmap {
                    addr: MB,
                    size: 511 * MB,
                    kind: BIOS_MAP_FREE
                },
                BiosMemmap {
                    addr: 0xf000_0000,
                    size: 0x0fe0_0000,
                    kind: BIOS_MAP_RES
                },
                BiosMemmap {
                    addr: 0xffe0_0000,
                    size: 2 * MB,
                    kind: BIOS_MAP_RES
                },
                BiosMemmap {
                    addr: 0,
                    size: 0,
                    kind: BIOS_MAP_END
                },
            ]
        );
    }

    #[test]
    fn bootargs_bytes() {
        let map = bios_memmap(&memory_map(512 * MB).unwrap());
        let (page, len) = bootargs_page(&map, None).unwrap();
        // Memory map: 12 + 6 * 20 bytes; console: 12 + 32; the end word.
        assert_eq!(len, 132 + 44 + 4);
        let w = words(&page[..len as usize]);
        assert_eq!(&w[..3], &[BOOTARG_MEMMAP, 132, 132]);
        // The first entry: 0 + 0xa0000, free.
        assert_eq!(&w[3..8], &[0, 0, 0xa0000, 0, 1]);
        // The RAM above 1 MiB.
        assert_eq!(&w[13..18], &[0x10_0000, 0, 511 * MB as u32, 0, 1]);
        // The terminating entry.
        assert_eq!(&w[28..33], &[0, 0, 0, 0, 0]);
        assert_eq!(&w[33..36], &[BOOTARG_CONSDEV, 44, 44]);
        assert_eq!(&w[36..44], &[0x800, 115_200, 0x3f8, 0, 0, 0, 0, 0]);
        assert_eq!(w[44], BOOTARG_END);
        assert!(page[len as usize..].iter().all(|&b| b == 0));

        let mac = [0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x34];
        let (page, len2) = bootargs_page(&map, Some(mac)).unwrap();
        assert_eq!(len2, len + 20);
        let w = words(&page[..len2 as usize]);
        assert_eq!(&w[44..47], &[BOOTARG_BOOTMAC, 20, 20]);
        assert_eq!(
            &page[47 * 4..47 * 4 + 8],
            &[0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x34, 0, 0]
        );
        assert_eq!(w[49], BOOTARG_END);
    }

    #[test]
    fn bootargs_must_fit_a_page() {
        let many = vec![
            BiosMemmap {
                addr: 0,
                size: 0,
                kind: 0
            };
            300
        ];
        assert!(matches!(
            bootargs_page(&many, None),
            Err(BootArgsError::TooLarge(_))
        ));
    }

    #[test]
    fn stack_as_start_reads_it() {
        let (page, rsp) = boot_stack_page(180, 0x0123_4560);
        assert_eq!(rsp, 0xffdc);
        let at = (rsp - STACK_PAGE) as usize;
        let w = words(&page[at..]);
        // return address, howto, bootdev, apiver, esym, extmem, cnvmem,
        // ac, av
        assert_eq!(
            w,
            vec![0, 0, 0xa000_0004, 0x0e, 0x0123_4560, 0, 0, 180, 0x2000]
        );
        assert!(page[..at].iter().all(|&b| b == 0));
    }
}
