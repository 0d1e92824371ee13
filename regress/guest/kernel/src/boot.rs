//! What the loader left for the kernel: the boot stack, the boot
//! arguments (machine/biosvar.h), the random data and the symbols. Each
//! check prints one marker line, `...-OK` with what it found or `...-BAD`
//! with why not.

use core::ptr::read_volatile;

use crate::{phys, println};

/// Physical memory is identity-mapped in the first GiB; the loader's
/// structures are all there.
fn rd8(pa: u64) -> u8 {
    // SAFETY: the caller keeps `pa` inside the identity-mapped first GiB,
    // which is all guest RAM or backed reserved memory.
    unsafe { read_volatile(pa as *const u8) }
}

fn rd16(pa: u64) -> u16 {
    u16::from(rd8(pa)) | u16::from(rd8(pa + 1)) << 8
}

fn rd32(pa: u64) -> u32 {
    u32::from(rd16(pa)) | u32::from(rd16(pa + 2)) << 16
}

fn rd64(pa: u64) -> u64 {
    u64::from(rd32(pa)) | u64::from(rd32(pa + 4)) << 32
}

/// Highest physical address these checks read.
const IDENTITY_LIMIT: u64 = 1 << 30;

fn readable(pa: u64, len: u64) -> bool {
    pa.checked_add(len).is_some_and(|end| end <= IDENTITY_LIMIT)
}

/// The words /boot (here: vmd) leaves on the stack for `start`.
pub struct BootStack {
    pub howto: u32,
    pub bootdev: u32,
    pub apiver: u32,
    pub esym: u32,
    pub extmem: u32,
    pub cnvmem: u32,
    pub ac: u32,
    pub av: u32,
}

pub fn read_stack(sp: u64) -> BootStack {
    // The first word is a return address slot.
    let w = |i: u64| rd32(sp + 4 * i);
    let s = BootStack {
        howto: w(1),
        bootdev: w(2),
        apiver: w(3),
        esym: w(4),
        extmem: w(5),
        cnvmem: w(6),
        ac: w(7),
        av: w(8),
    };
    println!(
        "KERN-BOOTSTACK sp={:x} howto={:x} bootdev={:x} apiver={:x} esym={:x} extmem={:x} cnvmem={:x} ac={} av={:x}",
        sp, s.howto, s.bootdev, s.apiver, s.esym, s.extmem, s.cnvmem, s.ac, s.av
    );
    s
}

const BOOTARG_MEMMAP: u32 = 0;
const BOOTARG_CONSDEV: u32 = 5;
const BOOTARG_BOOTMAC: u32 = 7;
const BOOTARG_END: u32 = 0xffff_ffff;
const BIOS_MAP_END: u32 = 0;
const BIOS_MAP_FREE: u32 = 1;
const MEMMAP_ENTRY: u64 = 20;
const MAX_MEMMAP: usize = 32;

extern "C" {
    static start: u8;
    static kernel_bss_end: u8;
}

fn kernel_phys_range() -> (u64, u64) {
    // Only the addresses of the linker's symbols are taken.
    (phys(&raw const start), phys(&raw const kernel_bss_end))
}

#[derive(Clone, Copy, Default)]
struct MemRange {
    addr: u64,
    size: u64,
    kind: u32,
}

/// Checks the boot stack and the boot arguments; prints the memory map as
/// `addr+size:type` for the host to compare with what it configured.
pub fn check(stack: &BootStack) {
    if stack.apiver != 0x0e || stack.bootdev != 0xa000_0004 || stack.howto != 0 {
        println!("KERN-BOOTSTACK-BAD unexpected api version, boot device or flags");
    }
    let (av, ac) = (u64::from(stack.av), u64::from(stack.ac));
    if !readable(av, ac) || ac < 4 {
        println!("KERN-BOOTARGS-BAD at {av:x}+{ac:x}");
        return;
    }
    let mut map = [MemRange::default(); MAX_MEMMAP];
    let mut entries = 0usize;
    let mut consdev = false;
    let mut off = 0u64;
    loop {
        if off + 4 > ac {
            println!("KERN-BOOTARGS-BAD no end marker in {ac} bytes");
            return;
        }
        let kind = rd32(av + off);
        if kind == BOOTARG_END {
            if off + 4 != ac {
                println!("KERN-BOOTARGS-BAD end marker at {off}, length {ac}");
                return;
            }
            break;
        }
        let size = if off + 12 <= ac {
            u64::from(rd32(av + off + 4))
        } else {
            0
        };
        if size < 12 || !size.is_multiple_of(4) || off + size > ac {
            println!("KERN-BOOTARGS-BAD argument {kind} at {off} has size {size}");
            return;
        }
        let body = av + off + 12;
        let len = size - 12;
        match kind {
            BOOTARG_MEMMAP => match read_memmap(body, len, &mut map) {
                Ok(n) => entries = n,
                Err(why) => {
                    println!("KERN-MEMMAP-BAD {why}");
                    return;
                }
            },
            BOOTARG_CONSDEV => {
                let (dev, speed, addr) = (rd32(body), rd32(body + 4), rd64(body + 8));
                if len != 32 || dev != 0x800 || speed != 115_200 || addr != 0x3f8 {
                    println!("KERN-CONSDEV-BAD dev={dev:x} speed={speed} addr={addr:x} len={len}");
                    return;
                }
                println!("KERN-CONSDEV-OK dev={dev:x} speed={speed} addr={addr:x}");
                consdev = true;
            }
            BOOTARG_BOOTMAC => {
                let m = |i| rd8(body + i);
                println!(
                    "KERN-BOOTMAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m(0),
                    m(1),
                    m(2),
                    m(3),
                    m(4),
                    m(5)
                );
            }
            _ => {
                println!("KERN-BOOTARGS-BAD unknown argument {kind}");
                return;
            }
        }
        off += size;
    }
    if entries == 0 || !consdev {
        println!("KERN-BOOTARGS-BAD memory map or console missing");
        return;
    }
    println!("KERN-BOOTARGS-OK ac={ac}");

    // Ascending, non-overlapping; low memory free from 0; the kernel in
    // free memory.
    let map = &map[..entries];
    let (kstart, kend) = kernel_phys_range();
    let ordered = map.windows(2).all(|w| w[0].addr + w[0].size <= w[1].addr);
    let low = map[0].addr == 0 && map[0].kind == BIOS_MAP_FREE;
    let holds_kernel = map
        .iter()
        .any(|r| r.kind == BIOS_MAP_FREE && r.addr <= kstart && kend <= r.addr + r.size);
    if !ordered || !low || !holds_kernel {
        println!("KERN-MEMMAP-BAD ordered={ordered} low={low} kernel={holds_kernel}");
        return;
    }
    crate::io::print(format_args!("KERN-MEMMAP-OK n={entries}"));
    for r in map {
        crate::io::print(format_args!(" {:x}+{:x}:{}", r.addr, r.size, r.kind));
    }
    println!();
}

/// The entries of a BOOTARG_MEMMAP body up to its end entry; the end
/// entry must be the last thing in the body.
fn read_memmap(body: u64, len: u64, out: &mut [MemRange]) -> Result<usize, &'static str> {
    if !len.is_multiple_of(MEMMAP_ENTRY) {
        return Err("body is not whole entries");
    }
    let count = (len / MEMMAP_ENTRY) as usize;
    if count == 0 || count - 1 > out.len() {
        return Err("entry count");
    }
    for i in 0..count {
        let e = body + i as u64 * MEMMAP_ENTRY;
        let r = MemRange {
            addr: rd64(e),
            size: rd64(e + 8),
            kind: rd32(e + 16),
        };
        let last = i == count - 1;
        if (r.kind == BIOS_MAP_END) != last {
            return Err("end entry misplaced");
        }
        if last {
            if r.addr != 0 || r.size != 0 {
                return Err("end entry not empty");
            }
        } else if let Some(slot) = out.get_mut(i) {
            *slot = r;
        }
    }
    Ok(count - 1)
}

#[used]
#[link_section = ".openbsd.randomdata"]
static RANDOM_DATA: [u8; 64] = [0xcc; 64];

/// The loader fills the PT_OPENBSD_RANDOMIZE segment with random bytes:
/// the 0xcc the section was linked with must be gone.
pub fn check_random_data() {
    let base = (&raw const RANDOM_DATA).cast::<u8>();
    let mut same = 0;
    for i in 0..RANDOM_DATA.len() {
        // SAFETY: in bounds of the static; volatile because the compiler
        // knows what the static was linked with.
        if unsafe { read_volatile(base.add(i)) } == 0xcc {
            same += 1;
        }
    }
    if same > 8 {
        println!("KERN-RANDOM-BAD {same} of 64 bytes unchanged");
    } else {
        println!("KERN-RANDOM-OK");
    }
}

const SHT_SYMTAB: u32 = 2;
const SYM_SIZE: u64 = 24;

/// The loader copies the ELF header, the section headers (with offsets
/// rewritten to be from that header) and the symbol and string tables
/// after the kernel, and passes where they end as `esym`. Find kmain's
/// symbol through them.
pub fn check_symbols(stack: &BootStack) {
    let (_, kend) = kernel_phys_range();
    let elfp = (kend + 7) & !7;
    let esym = u64::from(stack.esym);
    if esym <= elfp + 64 || !readable(elfp, esym - elfp) {
        println!("KERN-SYMS-BAD esym={esym:x} after kernel end {kend:x}");
        return;
    }
    let magic = rd32(elfp);
    let (shoff, phnum, shnum) = (rd64(elfp + 40), rd16(elfp + 56), rd16(elfp + 60));
    if magic != 0x464c_457f || shoff != 64 || phnum != 0 || shnum == 0 {
        println!("KERN-SYMS-BAD header magic={magic:x} shoff={shoff} phnum={phnum}");
        return;
    }
    let inside = |off: u64, len: u64| {
        off.checked_add(len)
            .and_then(|e| e.checked_add(elfp))
            .is_some_and(|e| e <= esym)
    };
    let shdr = |i: u64| elfp + 64 + 64 * i;
    if !inside(64, 64 * u64::from(shnum)) {
        println!("KERN-SYMS-BAD {shnum} section headers past esym");
        return;
    }
    let Some(symtab) = (0..u64::from(shnum)).find(|&i| rd32(shdr(i) + 4) == SHT_SYMTAB) else {
        println!("KERN-SYMS-BAD no symbol table");
        return;
    };
    let (sym_off, sym_size) = (rd64(shdr(symtab) + 24), rd64(shdr(symtab) + 32));
    let link = u64::from(rd32(shdr(symtab) + 40));
    if link >= u64::from(shnum) {
        println!("KERN-SYMS-BAD string table index {link}");
        return;
    }
    let (str_off, str_size) = (rd64(shdr(link) + 24), rd64(shdr(link) + 32));
    if !inside(sym_off, sym_size) || !inside(str_off, str_size) {
        println!("KERN-SYMS-BAD tables outside the loaded symbols");
        return;
    }
    let want = kmain_address();
    let nsyms = sym_size / SYM_SIZE;
    for i in 0..nsyms {
        let s = elfp + sym_off + i * SYM_SIZE;
        let name = u64::from(rd32(s));
        if name < str_size && name_is(elfp + str_off + name, str_size - name, b"kmain") {
            let value = rd64(s + 8);
            if value == want {
                println!("KERN-SYMS-OK syms={nsyms} kmain={value:x}");
            } else {
                println!("KERN-SYMS-BAD kmain={value:x}, expected {want:x}");
            }
            return;
        }
    }
    println!("KERN-SYMS-BAD no kmain among {nsyms} symbols");
}

fn name_is(pa: u64, room: u64, name: &[u8]) -> bool {
    let n = name.len() as u64;
    n < room && (0..n).all(|i| rd8(pa + i) == name[i as usize]) && rd8(pa + n) == 0
}

fn kmain_address() -> u64 {
    let f: extern "C" fn(u64) -> ! = crate::kmain;
    f as usize as u64
}
