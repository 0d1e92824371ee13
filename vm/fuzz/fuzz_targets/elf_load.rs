//! The ELF kernel loader on arbitrary files, gzip'd or not, into a small
//! VM: it must never panic, and whatever it accepts must respect the
//! guest: every loaded segment in RAM and clear of the loader's pages, the
//! entry point inside one, and the loader's own pages intact.
#![no_main]

use std::sync::OnceLock;

use devices::memory::GuestMemory;
use libfuzzer_sys::fuzz_target;
use vm::loader::bootargs::{self, BOOTARGS_PAGE, STACK_PAGE};
use vm::loader::elf::{self, KernelBoot, LOADADDR_MASK, LOADER_PAGES, PF_R, PF_W, PF_X, PT_LOAD};
use vm::memory_layout::{backed_ranges, memory_map, Range, RangeKind, MB};
use vmm_sys::consts::{VCPU_REGS_RIP, VCPU_REGS_RSP};

fn vm() -> &'static (Vec<Range>, GuestMemory) {
    static VM: OnceLock<(Vec<Range>, GuestMemory)> = OnceLock::new();
    VM.get_or_init(|| {
        let map = memory_map(16 * MB).unwrap();
        let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
        (map, mem)
    })
}

fn in_ram(map: &[Range], addr: u64, len: u64) -> bool {
    map.iter()
        .any(|r| r.kind == RangeKind::Ram && addr >= r.gpa && addr + len <= r.gpa + r.size)
}

fuzz_target!(|data: &[u8]| {
    let (map, mem) = vm();
    // The last byte, when odd, asks for a network boot.
    let boot_mac = match data.last() {
        Some(b) if b & 1 == 1 => Some([0xfe, 0xe1, 0xba, 0xd0, 0, *b]),
        _ => None,
    };
    let boot = KernelBoot { map, boot_mac };
    let Ok(k) = elf::load_kernel(mem, data, &boot) else {
        return;
    };
    let image = elf::read_image(data, u64::MAX).unwrap();
    let eh = elf::parse_header(&image.bytes).unwrap();
    let mut entry_ok = false;
    for ph in elf::parse_phdrs(&image.bytes, &eh).unwrap() {
        if ph.p_type != PT_LOAD || ph.p_flags & (PF_R | PF_W | PF_X) == 0 {
            continue;
        }
        assert!(in_ram(map, ph.p_paddr, ph.p_memsz), "{ph:?}");
        for page in LOADER_PAGES {
            assert!(
                ph.p_memsz == 0 || ph.p_paddr >= page + 4096 || ph.p_paddr + ph.p_memsz <= page
            );
        }
        entry_ok |= (ph.p_paddr..ph.p_paddr + ph.p_memsz).contains(&k.marks.entry);
    }
    assert!(entry_ok);
    assert_eq!(k.marks.entry, eh.e_entry & LOADADDR_MASK);
    assert_eq!(k.regs.vrs_gprs[VCPU_REGS_RIP], k.marks.entry);
    assert_eq!(k.regs.vrs_gprs[VCPU_REGS_RSP], 0xffdc);

    // The loader's pages hold what the loader wrote.
    let mut page = vec![0u8; 4096];
    mem.read(elf::GDT_PAGE, &mut page).unwrap();
    assert_eq!(page, elf::gdt_page()[..]);
    for (at, want) in elf::page_tables() {
        mem.read(at, &mut page).unwrap();
        assert_eq!(page, want[..]);
    }
    let (args, len) = bootargs::bootargs_page(&bootargs::bios_memmap(map), boot_mac).unwrap();
    assert_eq!(len, k.bootargs_len);
    mem.read(BOOTARGS_PAGE, &mut page).unwrap();
    assert_eq!(page, args[..]);
    let (stack, _) = bootargs::boot_stack_page(len, k.marks.end as u32);
    mem.read(STACK_PAGE, &mut page).unwrap();
    assert_eq!(page, stack[..]);
});
