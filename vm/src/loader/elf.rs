//! An OpenBSD/amd64 kernel booted without a boot loader, as vmd's
//! loadfile_elf and its caller load_firmware do: the kernel file, gzip'd or
//! not, is an ELF64 executable whose loadable segments go to their
//! physical addresses; the ELF header, the section headers and the symbol
//! tables follow the kernel for ddb; random bytes fill the
//! PT_OPENBSD_RANDOMIZE segment. The loader then writes what /boot would
//! have left behind: a GDT, identity-mapped page tables for the first GiB,
//! the boot arguments and the boot stack (see [`super::bootargs`]), and
//! returns vmd's flat 64-bit start state pointed at the kernel's entry.
//!
//! That state is long mode with a 32-bit code segment (compatibility
//! mode): OpenBSD's `start` is 32-bit code that reads its arguments from
//! the stack. GDT entry 3 (selector 0x18) is the 64-bit code segment the
//! kernel switches to.
//!
//! Every field of the file is hostile. Headers are parsed into typed
//! structs; every offset and length is checked against the file, every
//! guest range against the VM's RAM and the loader's own pages, and all
//! arithmetic is checked. A bad kernel is an [`ElfError`], never a panic,
//! and guest memory is written only through [`GuestMemory`].
//!
//! Deliberate differences from the C vmd, invisible to a well-formed
//! kernel: the file must be a little-endian x86-64 ET_EXEC with standard
//! header entry sizes, at most [`MAX_PHDRS`] program headers and
//! [`MAX_SHDRS`] section headers; segments must lie in RAM (not in the
//! reserved ranges) and clear of the loader's pages, with a file size no
//! larger than their memory size; the entry point must be inside a loaded
//! segment; and every symbol section must be inside the file. The unused
//! tail of the boot arguments page is zero (vmd leaves stack garbage).
//! 32-bit (i386) kernels, which vmd also boots, are refused.

use std::io::{self, Read};

use devices::memory::{GuestMemory, MemoryError};
use flate2::read::MultiGzDecoder;
use vmm_sys::consts::*;
use vmm_sys::{VcpuRegState, VcpuSegmentInfo, Wire};

use super::bootargs::{self, BootArgsError, BOOTARGS_PAGE, PAGE_SIZE, STACK_PAGE};
use crate::memory_layout::{Range, RangeKind};

/// The loader's pages (vmd's loadfile.h), besides the boot arguments and
/// the stack.
pub const GDT_PAGE: u64 = 0x10000;
pub const PML4_PAGE: u64 = 0x11000;
pub const PML3_PAGE: u64 = 0x12000;
pub const PML2_PAGE: u64 = 0x13000;

/// Every page the loader fills itself: no part of the kernel may be
/// loaded there.
pub const LOADER_PAGES: [u64; 6] = [
    BOOTARGS_PAGE,
    STACK_PAGE,
    GDT_PAGE,
    PML4_PAGE,
    PML3_PAGE,
    PML2_PAGE,
];

/// The most program headers accepted (an OpenBSD kernel has five).
pub const MAX_PHDRS: usize = 64;
/// The most section headers accepted.
pub const MAX_SHDRS: usize = 4096;

/// Control register, EFER and page table bits (machine/specialreg.h,
/// machine/pte.h).
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PSE: u64 = 1 << 4;
pub const CR4_PAE: u64 = 1 << 5;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
const XFEATURE_X87: u64 = 1;
const PG_V: u64 = 1 << 0;
const PG_RW: u64 = 1 << 1;
const PG_U: u64 = 1 << 2;
const PG_PS: u64 = 1 << 7;

/// Segment selectors of the boot GDT.
pub const GSEL_CODE32: u16 = 0x08;
pub const GSEL_DATA: u16 = 0x10;
pub const GSEL_CODE64: u16 = 0x18;

// Segment descriptor types (with the S bit), machine/segments.h.
const SDT_MEMRWA: u8 = 19;
const SDT_MEMERA: u8 = 27;

// ELF.
const ELFMAG: [u8; 4] = *b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
pub const PT_LOAD: u32 = 1;
pub const PT_OPENBSD_RANDOMIZE: u32 = 0x65a3_dbe6;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHF_ALLOC: u64 = 2;
pub const EHDR_SIZE: usize = 64;
pub const PHDR_SIZE: usize = 56;
pub const SHDR_SIZE: usize = 64;
/// Sections that go with the symbol table (besides symbol and string
/// tables): line numbers and CTF for ddb.
const SYMBOL_SECTIONS: [&[u8]; 2] = [b".debug_line", b".SUNW_ctf"];
/// vmd keeps the low 28 bits of the addresses it reports (LOADADDR), which
/// turns the kernel's virtual entry point into its physical address.
pub const LOADADDR_MASK: u64 = 0x0fff_ffff;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read the kernel: {0}")]
    Read(#[source] io::Error),
    #[error("cannot decompress the kernel: {0}")]
    Gzip(#[source] io::Error),
    #[error("kernel image is larger than guest RAM ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("kernel image of {0} bytes is too short for an ELF header")]
    TooShort(usize),
    #[error("not an ELF file")]
    NotElf,
    #[error("32-bit ELF kernels are not supported")]
    Class32,
    #[error("ELF data encoding {0} is not little-endian")]
    Encoding(u8),
    #[error("ELF file type {0} is not an executable")]
    FileType(u16),
    #[error("ELF machine {0} is not x86-64")]
    Machine(u16),
    #[error("ELF {what} size {got}, expected {want}")]
    EntrySize {
        what: &'static str,
        got: u16,
        want: usize,
    },
    #[error("{count} {what}, at most {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{what} at file offset {offset:#x}+{len:#x} is outside the {file_len}-byte file")]
    OutsideFile {
        what: String,
        offset: u64,
        len: u64,
        file_len: usize,
    },
    #[error("{0}: address arithmetic overflows")]
    Overflow(String),
    #[error("program header {index}: file size {filesz:#x} is larger than memory size {memsz:#x}")]
    FileSize {
        index: usize,
        filesz: u64,
        memsz: u64,
    },
    #[error("{what} at {addr:#x}+{len:#x} is not in guest RAM")]
    OutsideRam { what: String, addr: u64, len: u64 },
    #[error("{what} at {addr:#x}+{len:#x} overlaps the loader's page at {page:#x}")]
    LoaderPage {
        what: String,
        addr: u64,
        len: u64,
        page: u64,
    },
    #[error("no loadable segment")]
    NoSegments,
    #[error("entry point {0:#x} is not in a loaded segment")]
    Entry(u64),
    #[error("section name table index {index} with {count} sections")]
    Shstrndx { index: u16, count: usize },
    #[error(transparent)]
    BootArgs(#[from] BootArgsError),
    #[error("guest memory: {0}")]
    Memory(#[from] MemoryError),
}

/// The kernel file's bytes, decompressed.
#[derive(Debug)]
pub struct KernelImage {
    pub bytes: Vec<u8>,
    /// Whether the file was gzip'd: vmd falls back to loading a BIOS image
    /// only from a file that was not.
    pub compressed: bool,
}

/// The kernel file's contents: gunzipped if it starts with the gzip
/// magic, as is. Returns the reader and whether it decompresses.
fn open_image<'a>(mut file: impl Read + 'a) -> Result<(Box<dyn Read + 'a>, bool), ElfError> {
    let mut head = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut head)
        .map_err(ElfError::Read)?;
    let compressed = head == [0x1f, 0x8b];
    let whole = io::Cursor::new(head).chain(file);
    Ok(if compressed {
        (Box::new(MultiGzDecoder::new(whole)), true)
    } else {
        (Box::new(whole), false)
    })
}

/// Appends at most `max` more bytes of `image` to `out`.
fn read_some(
    image: &mut dyn Read,
    compressed: bool,
    max: u64,
    out: &mut Vec<u8>,
) -> Result<(), ElfError> {
    image.take(max).read_to_end(out).map_err(|e| {
        if compressed {
            ElfError::Gzip(e)
        } else {
            ElfError::Read(e)
        }
    })?;
    Ok(())
}

/// Reads a kernel file, gunzipping it if it starts with the gzip magic.
/// More than `limit` bytes (the guest's RAM: nothing larger can be
/// loaded) is an error, so a gzip bomb costs at most that much.
pub fn read_image(file: impl Read, limit: u64) -> Result<KernelImage, ElfError> {
    let (mut image, compressed) = open_image(file)?;
    let mut bytes = Vec::new();
    read_some(&mut image, compressed, limit.saturating_add(1), &mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ElfError::TooLarge { limit });
    }
    Ok(KernelImage { bytes, compressed })
}

/// What the kernel is booted with besides the file.
#[derive(Clone, Copy, Debug)]
pub struct KernelBoot<'a> {
    /// The VM's memory ranges (vmd's `vcp_memranges`), the source of the
    /// BIOS memory map and of what counts as RAM.
    pub map: &'a [Range],
    /// For a network boot (`boot device net`), the first interface's MAC
    /// address, passed as BOOTARG_BOOTMAC.
    pub boot_mac: Option<[u8; 6]>,
}

/// Where things went (vmd's `marks`), with vmd's 28-bit LOADADDR mask
/// applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    /// The lowest loaded address.
    pub start: u64,
    /// The entry point.
    pub entry: u64,
    pub nsym: u64,
    /// The copy of the ELF header, where the symbols start.
    pub sym: u64,
    /// The end of the kernel and its symbols, passed on the boot stack.
    pub end: u64,
    /// The PT_OPENBSD_RANDOMIZE segment, if any: start and end.
    pub random: Option<(u64, u64)>,
}

/// A kernel in guest memory, ready to run.
#[derive(Clone, Copy, Debug)]
pub struct LoadedKernel {
    /// The vcpu's start state (for [`crate::hv::Vcpu::set_reg_state`]).
    pub regs: VcpuRegState,
    pub marks: Marks,
    /// Length of the boot arguments at [`BOOTARGS_PAGE`].
    pub bootargs_len: u32,
}

/// The ELF file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ehdr {
    pub ident: [u8; 16],
    pub e_type: u16,
    pub e_machine: u16,
    pub e_version: u32,
    pub e_entry: u64,
    pub e_phoff: u64,
    pub e_shoff: u64,
    pub e_flags: u32,
    pub e_ehsize: u16,
    pub e_phentsize: u16,
    pub e_phnum: u16,
    pub e_shentsize: u16,
    pub e_shnum: u16,
    pub e_shstrndx: u16,
}

/// An ELF program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

/// An ELF section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shdr {
    pub sh_name: u32,
    pub sh_type: u32,
    pub sh_flags: u64,
    pub sh_addr: u64,
    pub sh_offset: u64,
    pub sh_size: u64,
    pub sh_link: u32,
    pub sh_info: u32,
    pub sh_addralign: u64,
    pub sh_entsize: u64,
}

/// Little-endian fields of a fixed-size record.
struct Fields<'a, const N: usize>(&'a [u8; N]);

impl<const N: usize> Fields<'_, N> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[at..at + 4]);
        u32::from_le_bytes(b)
    }
    fn u64(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(b)
    }
}

/// Builds a fixed-size record field by field.
struct Put<const N: usize>([u8; N], usize);

impl<const N: usize> Put<N> {
    fn new() -> Self {
        Put([0; N], 0)
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0[self.1..self.1 + b.len()].copy_from_slice(b);
        self.1 += b.len();
        self
    }
    fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }
}

impl Ehdr {
    pub fn parse(b: &[u8; EHDR_SIZE]) -> Ehdr {
        let f = Fields(b);
        let mut ident = [0u8; 16];
        ident.copy_from_slice(&b[..16]);
        Ehdr {
            ident,
            e_type: f.u16(16),
            e_machine: f.u16(18),
            e_version: f.u32(20),
            e_entry: f.u64(24),
            e_phoff: f.u64(32),
            e_shoff: f.u64(40),
            e_flags: f.u32(48),
            e_ehsize: f.u16(52),
            e_phentsize: f.u16(54),
            e_phnum: f.u16(56),
            e_shentsize: f.u16(58),
            e_shnum: f.u16(60),
            e_shstrndx: f.u16(62),
        }
    }

    pub fn to_bytes(&self) -> [u8; EHDR_SIZE] {
        Put::<EHDR_SIZE>::new()
            .bytes(&self.ident)
            .u16(self.e_type)
            .u16(self.e_machine)
            .u32(self.e_version)
            .u64(self.e_entry)
            .u64(self.e_phoff)
            .u64(self.e_shoff)
            .u32(self.e_flags)
            .u16(self.e_ehsize)
            .u16(self.e_phentsize)
            .u16(self.e_phnum)
            .u16(self.e_shentsize)
            .u16(self.e_shnum)
            .u16(self.e_shstrndx)
            .0
    }
}

impl Phdr {
    pub fn parse(b: &[u8; PHDR_SIZE]) -> Phdr {
        let f = Fields(b);
        Phdr {
            p_type: f.u32(0),
            p_flags: f.u32(4),
            p_offset: f.u64(8),
            p_vaddr: f.u64(16),
            p_paddr: f.u64(24),
            p_filesz: f.u64(32),
            p_memsz: f.u64(40),
            p_align: f.u64(48),
        }
    }

    pub fn to_bytes(&self) -> [u8; PHDR_SIZE] {
        Put::<PHDR_SIZE>::new()
            .u32(self.p_type)
            .u32(self.p_flags)
            .u64(self.p_offset)
            .u64(self.p_vaddr)
            .u64(self.p_paddr)
            .u64(self.p_filesz)
            .u64(self.p_memsz)
            .u64(self.p_align)
            .0
    }
}

impl Shdr {
    pub fn parse(b: &[u8; SHDR_SIZE]) -> Shdr {
        let f = Fields(b);
        Shdr {
            sh_name: f.u32(0),
            sh_type: f.u32(4),
            sh_flags: f.u64(8),
            sh_addr: f.u64(16),
            sh_offset: f.u64(24),
            sh_size: f.u64(32),
            sh_link: f.u32(40),
            sh_info: f.u32(44),
            sh_addralign: f.u64(48),
            sh_entsize: f.u64(56),
        }
    }

    pub fn to_bytes(&self) -> [u8; SHDR_SIZE] {
        Put::<SHDR_SIZE>::new()
            .u32(self.sh_name)
            .u32(self.sh_type)
            .u64(self.sh_flags)
            .u64(self.sh_addr)
            .u64(self.sh_offset)
            .u64(self.sh_size)
            .u32(self.sh_link)
            .u32(self.sh_info)
            .u64(self.sh_addralign)
            .u64(self.sh_entsize)
            .0
    }
}

/// `len` bytes at `offset` of the file.
fn file_range<'a>(
    image: &'a [u8],
    offset: u64,
    len: u64,
    what: &str,
) -> Result<&'a [u8], ElfError> {
    let outside = || ElfError::OutsideFile {
        what: what.to_string(),
        offset,
        len,
        file_len: image.len(),
    };
    let start = usize::try_from(offset).map_err(|_| outside())?;
    let len_usize = usize::try_from(len).map_err(|_| outside())?;
    let end = start.checked_add(len_usize).ok_or_else(outside)?;
    image.get(start..end).ok_or_else(outside)
}

fn fixed<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(b);
    a
}

/// The file header, checked: an x86-64 little-endian ELF64 executable.
pub fn parse_header(image: &[u8]) -> Result<Ehdr, ElfError> {
    let Some(head) = image.get(..EHDR_SIZE) else {
        return Err(ElfError::TooShort(image.len()));
    };
    let eh = Ehdr::parse(&fixed(head));
    if eh.ident[..4] != ELFMAG {
        return Err(ElfError::NotElf);
    }
    match eh.ident[4] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Err(ElfError::Class32),
        _ => return Err(ElfError::NotElf),
    }
    if eh.ident[5] != ELFDATA2LSB {
        return Err(ElfError::Encoding(eh.ident[5]));
    }
    if eh.e_type != ET_EXEC {
        return Err(ElfError::FileType(eh.e_type));
    }
    if eh.e_machine != EM_X86_64 {
        return Err(ElfError::Machine(eh.e_machine));
    }
    Ok(eh)
}

/// The program headers, checked against the file.
pub fn parse_phdrs(image: &[u8], eh: &Ehdr) -> Result<Vec<Phdr>, ElfError> {
    let count = usize::from(eh.e_phnum);
    if count > MAX_PHDRS {
        return Err(ElfError::TooMany {
            what: "program headers",
            count,
            max: MAX_PHDRS,
        });
    }
    if count > 0 && usize::from(eh.e_phentsize) != PHDR_SIZE {
        return Err(ElfError::EntrySize {
            what: "program header",
            got: eh.e_phentsize,
            want: PHDR_SIZE,
        });
    }
    let table = file_range(
        image,
        eh.e_phoff,
        (count * PHDR_SIZE) as u64,
        "program headers",
    )?;
    Ok(table
        .chunks_exact(PHDR_SIZE)
        .map(|c| Phdr::parse(&fixed(c)))
        .collect())
}

/// The section headers, checked against the file.
pub fn parse_shdrs(image: &[u8], eh: &Ehdr) -> Result<Vec<Shdr>, ElfError> {
    let count = usize::from(eh.e_shnum);
    if count > MAX_SHDRS {
        return Err(ElfError::TooMany {
            what: "section headers",
            count,
            max: MAX_SHDRS,
        });
    }
    if count > 0 && usize::from(eh.e_shentsize) != SHDR_SIZE {
        return Err(ElfError::EntrySize {
            what: "section header",
            got: eh.e_shentsize,
            want: SHDR_SIZE,
        });
    }
    let table = file_range(
        image,
        eh.e_shoff,
        (count * SHDR_SIZE) as u64,
        "section headers",
    )?;
    Ok(table
        .chunks_exact(SHDR_SIZE)
        .map(|c| Shdr::parse(&fixed(c)))
        .collect())
}

/// Bytes of RAM in `map`.
pub fn ram_bytes(map: &[Range]) -> u64 {
    map.iter()
        .filter(|r| r.kind == RangeKind::Ram)
        .fold(0u64, |n, r| n.saturating_add(r.size))
}

/// Checks that `addr..addr+len` is RAM and clear of the loader's pages.
fn check_guest(
    map: &[Range],
    addr: u64,
    len: u64,
    what: &dyn Fn() -> String,
) -> Result<(), ElfError> {
    let end = addr
        .checked_add(len)
        .ok_or_else(|| ElfError::Overflow(what()))?;
    let in_ram = map
        .iter()
        .any(|r| r.kind == RangeKind::Ram && addr >= r.gpa && end <= r.gpa.saturating_add(r.size));
    if !in_ram {
        return Err(ElfError::OutsideRam {
            what: what(),
            addr,
            len,
        });
    }
    if let Some(&page) = LOADER_PAGES
        .iter()
        .find(|&&p| addr < p + PAGE_SIZE as u64 && p < end)
    {
        return Err(ElfError::LoaderPage {
            what: what(),
            addr,
            len,
            page,
        });
    }
    Ok(())
}

fn round8(v: u64, what: &str) -> Result<u64, ElfError> {
    v.checked_add(7)
        .map(|v| v & !7)
        .ok_or_else(|| ElfError::Overflow(what.to_string()))
}

fn add(a: u64, b: u64, what: &str) -> Result<u64, ElfError> {
    a.checked_add(b)
        .ok_or_else(|| ElfError::Overflow(what.to_string()))
}

fn fill_random(mem: &GuestMemory, addr: u64, len: u64) -> Result<(), ElfError> {
    let mut buf = [0u8; PAGE_SIZE];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(PAGE_SIZE as u64) as usize;
        devices::sys::fill_random(&mut buf[..n]);
        mem.write(addr + done, &buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

fn fill_zero(mem: &GuestMemory, addr: u64, len: u64) -> Result<(), ElfError> {
    // Bounded by the RAM check before, so it fits a usize on any host
    // that can map it; chunked anyway so a 32-bit usize cannot truncate.
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(1 << 30);
        mem.fill(addr + done, n as usize, 0)?;
        done += n;
    }
    Ok(())
}

/// The name of a section: the NUL-terminated string at `offset` in the
/// name table, or nothing if it runs off the table.
fn section_name(names: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = names.get(usize::try_from(offset).ok()?..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..len])
}

/// The segments and symbols of `image` in guest memory; the marks.
fn load_image(mem: &GuestMemory, image: &[u8], map: &[Range]) -> Result<Marks, ElfError> {
    let eh = parse_header(image)?;
    let phdrs = parse_phdrs(image, &eh)?;

    let mut minp = u64::MAX;
    let mut maxp = 0u64;
    let mut random = None;
    let mut loaded: Vec<(u64, u64)> = Vec::new();
    for (i, ph) in phdrs.iter().enumerate() {
        let what = || format!("program header {i}");
        if ph.p_type == PT_OPENBSD_RANDOMIZE {
            check_guest(map, ph.p_paddr, ph.p_filesz, &what)?;
            fill_random(mem, ph.p_paddr, ph.p_filesz)?;
            let start = ph.p_paddr & LOADADDR_MASK;
            random = Some((start, start + ph.p_filesz));
            continue;
        }
        if ph.p_type != PT_LOAD || ph.p_flags & (PF_W | PF_R | PF_X) == 0 {
            continue;
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(ElfError::FileSize {
                index: i,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
            });
        }
        check_guest(map, ph.p_paddr, ph.p_memsz, &what)?;
        let data = file_range(image, ph.p_offset, ph.p_filesz, &what())?;
        mem.write(ph.p_paddr, data)?;
        // The bss.
        fill_zero(mem, ph.p_paddr + ph.p_filesz, ph.p_memsz - ph.p_filesz)?;
        let end = ph.p_paddr + ph.p_memsz;
        minp = minp.min(ph.p_paddr);
        maxp = maxp.max(end);
        loaded.push((ph.p_paddr, end));
    }
    if loaded.is_empty() {
        return Err(ElfError::NoSegments);
    }
    let entry = eh.e_entry & LOADADDR_MASK;
    if !loaded.iter().any(|&(s, e)| entry >= s && entry < e) {
        return Err(ElfError::Entry(entry));
    }

    // After the kernel: a copy of the ELF header, the section headers, and
    // the symbol sections, each 8-byte aligned, with the copied headers
    // rewritten to describe that layout (offsets from the ELF header).
    let elfp = round8(maxp, "symbols")?;
    let mut maxp = add(elfp, EHDR_SIZE as u64, "symbols")?;
    let mut shdrs = parse_shdrs(image, &eh)?;
    let shpp = maxp;
    let mut copies: Vec<(u64, &[u8])> = Vec::new();
    if !shdrs.is_empty() {
        let table_len = (shdrs.len() * SHDR_SIZE) as u64;
        maxp = add(maxp, round8(table_len, "section headers")?, "symbols")?;
        let names = shdrs
            .get(usize::from(eh.e_shstrndx))
            .ok_or(ElfError::Shstrndx {
                index: eh.e_shstrndx,
                count: shdrs.len(),
            })?;
        let names = file_range(image, names.sh_offset, names.sh_size, "section names")?;
        let mut off = round8(EHDR_SIZE as u64 + table_len, "symbols")?;
        let havesyms = shdrs.iter().any(|s| s.sh_type == SHT_SYMTAB);
        for (i, sh) in shdrs.iter_mut().enumerate() {
            let wanted = sh.sh_type == SHT_SYMTAB
                || sh.sh_type == SHT_STRTAB
                || section_name(names, sh.sh_name).is_some_and(|n| SYMBOL_SECTIONS.contains(&n));
            if !wanted {
                continue;
            }
            let data = file_range(image, sh.sh_offset, sh.sh_size, &format!("section {i}"))?;
            if havesyms {
                copies.push((maxp, data));
            }
            let size = round8(sh.sh_size, "symbols")?;
            maxp = add(maxp, size, "symbols")?;
            sh.sh_offset = off;
            sh.sh_flags |= SHF_ALLOC;
            off = add(off, size, "symbols")?;
        }
    }
    check_guest(map, elfp, maxp - elfp, &|| "symbols".to_string())?;
    for (at, data) in copies {
        mem.write(at, data)?;
    }
    let table: Vec<u8> = shdrs.iter().flat_map(|s| s.to_bytes()).collect();
    mem.write(shpp, &table)?;
    let copy = Ehdr {
        e_phoff: 0,
        e_shoff: EHDR_SIZE as u64,
        e_phentsize: 0,
        e_phnum: 0,
        ..eh
    };
    mem.write(elfp, &copy.to_bytes())?;

    Ok(Marks {
        start: minp & LOADADDR_MASK,
        entry,
        nsym: 1,
        sym: elfp & LOADADDR_MASK,
        end: maxp & LOADADDR_MASK,
        random,
    })
}

/// A GDT entry for a flat memory segment (base 0, 4 GiB).
fn flat_descriptor(sdt: u8, def32: bool, long: bool) -> u64 {
    let limit: u64 = 0xf_ffff;
    let access = u64::from(sdt & 0x1f) | (1 << 7); // type + S, DPL 0, present
    let flags = u64::from(long) << 1 | u64::from(def32) << 2 | 1 << 3; // 4 KiB granularity
    (limit & 0xffff) | access << 40 | (limit >> 16) << 48 | flags << 52
}

/// The boot GDT: null, 32-bit code (0x08), data (0x10), 64-bit code
/// (0x18).
pub fn gdt_page() -> Box<[u8; PAGE_SIZE]> {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    let entries = [
        0,
        flat_descriptor(SDT_MEMERA, true, false),
        flat_descriptor(SDT_MEMRWA, true, false),
        flat_descriptor(SDT_MEMERA, false, true),
    ];
    for (i, e) in entries.iter().enumerate() {
        page[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
    }
    page
}

/// The page table pages (PML4, PDPT, PD) that identity-map the first GiB
/// with 2 MiB pages.
pub fn page_tables() -> [(u64, Box<[u8; PAGE_SIZE]>); 3] {
    let table = |entries: &mut dyn Iterator<Item = u64>| {
        let mut page = Box::new([0u8; PAGE_SIZE]);
        for (i, e) in entries.enumerate().take(PAGE_SIZE / 8) {
            page[i * 8..i * 8 + 8].copy_from_slice(&e.to_le_bytes());
        }
        page
    };
    [
        (PML4_PAGE, table(&mut std::iter::once(PG_V | PML3_PAGE))),
        (
            PML3_PAGE,
            table(&mut std::iter::once(PG_V | PG_RW | PG_U | PML2_PAGE)),
        ),
        (
            PML2_PAGE,
            table(&mut (0..512u64).map(|i| PG_V | PG_RW | PG_U | PG_PS | (i << 21))),
        ),
    ]
}

/// vmd's flat 64-bit start state (`vcpu_init_flat64`): long mode with
/// paging on the loader's page tables, a flat 32-bit code segment (0x08)
/// and flat data segments (0x10), interrupts off. The loader sets RIP, RSP
/// and the GDT base.
pub fn flat64_state() -> VcpuRegState {
    let mut vrs = VcpuRegState::zeroed();
    vrs.vrs_gprs[VCPU_REGS_RFLAGS] = 0x2;
    vrs.vrs_crs[VCPU_REGS_CR0] = CR0_ET | CR0_PE | CR0_PG;
    vrs.vrs_crs[VCPU_REGS_CR3] = PML4_PAGE;
    vrs.vrs_crs[VCPU_REGS_CR4] = CR4_PAE | CR4_PSE;
    vrs.vrs_crs[VCPU_REGS_XCR0] = XFEATURE_X87;
    let flat = |sel, ar| VcpuSegmentInfo {
        vsi_sel: sel,
        vsi_limit: 0xffff_ffff,
        vsi_ar: ar,
        vsi_base: 0,
    };
    vrs.vrs_sregs[VCPU_REGS_CS] = flat(GSEL_CODE32, 0xc09f);
    for s in [
        VCPU_REGS_DS,
        VCPU_REGS_ES,
        VCPU_REGS_FS,
        VCPU_REGS_GS,
        VCPU_REGS_SS,
    ] {
        vrs.vrs_sregs[s] = flat(GSEL_DATA, 0xc093);
    }
    let table = VcpuSegmentInfo {
        vsi_sel: 0,
        vsi_limit: 0xffff,
        vsi_ar: 0,
        vsi_base: 0,
    };
    vrs.vrs_gdtr = table;
    vrs.vrs_idtr = table;
    vrs.vrs_sregs[VCPU_REGS_LDTR] = VcpuSegmentInfo {
        vsi_ar: 0x0082,
        ..table
    };
    vrs.vrs_sregs[VCPU_REGS_TR] = VcpuSegmentInfo {
        vsi_ar: 0x008b,
        ..table
    };
    vrs.vrs_msrs[VCPU_REGS_EFER] = EFER_LME | EFER_LMA;
    vrs.vrs_drs[VCPU_REGS_DR6] = 0xffff_0ff0;
    vrs.vrs_drs[VCPU_REGS_DR7] = 0x400;
    vrs
}

/// Loads the decompressed kernel `image` and what the loader provides
/// into `mem`, and returns the vcpu's start state.
pub fn load_elf(
    mem: &GuestMemory,
    image: &[u8],
    boot: &KernelBoot<'_>,
) -> Result<LoadedKernel, ElfError> {
    let marks = load_image(mem, image, boot.map)?;

    mem.write(GDT_PAGE, &gdt_page()[..])?;
    for (at, page) in page_tables() {
        mem.write(at, &page[..])?;
    }
    let memmap = bootargs::bios_memmap(boot.map);
    let (args, bootargs_len) = bootargs::bootargs_page(&memmap, boot.boot_mac)?;
    mem.write(BOOTARGS_PAGE, &args[..])?;
    let (stack, rsp) = bootargs::boot_stack_page(bootargs_len, marks.end as u32);
    mem.write(STACK_PAGE, &stack[..])?;

    let mut regs = flat64_state();
    regs.vrs_gprs[VCPU_REGS_RIP] = marks.entry;
    regs.vrs_gprs[VCPU_REGS_RSP] = rsp;
    regs.vrs_gdtr.vsi_base = GDT_PAGE;
    Ok(LoadedKernel {
        regs,
        marks,
        bootargs_len,
    })
}

/// Reads the kernel file (gzip'd or not, at most the guest's RAM) and
/// loads it with [`load_elf`]. A file whose first bytes are no ELF64
/// kernel header is refused before the rest is read, as vmd reads only the
/// header first. The caller that wants vmd's BIOS fallback uses
/// [`read_image`] and [`load_elf`] itself: vmd tries the file as a BIOS
/// image when it is not an ELF file ([`ElfError::NotElf`]) and was not
/// compressed.
pub fn load_kernel(
    mem: &GuestMemory,
    file: impl Read,
    boot: &KernelBoot<'_>,
) -> Result<LoadedKernel, ElfError> {
    let limit = ram_bytes(boot.map);
    let (mut image, compressed) = open_image(file)?;
    let mut bytes = Vec::new();
    read_some(&mut image, compressed, EHDR_SIZE as u64, &mut bytes)?;
    parse_header(&bytes)?;
    let rest = limit.saturating_add(1).saturating_sub(EHDR_SIZE as u64);
    read_some(&mut image, compressed, rest, &mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ElfError::TooLarge { limit });
    }
    load_elf(mem, &bytes, boot)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;
    use crate::memory_layout::{backed_ranges, memory_map, MB};

    const KERNBASE: u64 = 0xffff_ffff_8000_0000;
    const SHT_PROGBITS: u32 = 1;

    /// Builds ELF files laid out like an OpenBSD kernel, or broken ones.
    struct Builder {
        file: Vec<u8>,
        eh: Ehdr,
        phdrs: Vec<Phdr>,
        shdrs: Vec<Shdr>,
        names: Vec<u8>,
    }

    impl Builder {
        fn new(entry: u64) -> Builder {
            let mut ident = [0u8; 16];
            ident[..4].copy_from_slice(&ELFMAG);
            ident[4] = ELFCLASS64;
            ident[5] = ELFDATA2LSB;
            ident[6] = 1;
            Builder {
                file: vec![0; 0x1000],
                eh: Ehdr {
                    ident,
                    e_type: ET_EXEC,
                    e_machine: EM_X86_64,
                    e_version: 1,
                    e_entry: entry,
                    e_phoff: EHDR_SIZE as u64,
                    e_shoff: 0,
                    e_flags: 0,
                    e_ehsize: EHDR_SIZE as u16,
                    e_phentsize: PHDR_SIZE as u16,
                    e_phnum: 0,
                    e_shentsize: SHDR_SIZE as u16,
                    e_shnum: 0,
                    e_shstrndx: 0,
                },
                phdrs: Vec::new(),
                shdrs: vec![Shdr::parse(&[0; SHDR_SIZE])],
                names: vec![0],
            }
        }

        /// Appends `data` at the next page of the file; returns its offset.
        fn blob(&mut self, data: &[u8]) -> u64 {
            let at = self.file.len().div_ceil(0x1000) * 0x1000;
            self.file.resize(at, 0);
            self.file.extend_from_slice(data);
            at as u64
        }

        fn segment(
            &mut self,
            p_type: u32,
            flags: u32,
            paddr: u64,
            offset: u64,
            filesz: u64,
            memsz: u64,
        ) {
            self.phdrs.push(Phdr {
                p_type,
                p_flags: flags,
                p_offset: offset,
                p_vaddr: paddr.wrapping_add(KERNBASE),
                p_paddr: paddr,
                p_filesz: filesz,
                p_memsz: memsz,
                p_align: 0x1000,
            });
        }

        fn section(&mut self, name: &str, sh_type: u32, data: &[u8]) -> usize {
            let off = self.blob(data);
            let sh_name = self.names.len() as u32;
            self.names.extend_from_slice(name.as_bytes());
            self.names.push(0);
            self.shdrs.push(Shdr {
                sh_name,
                sh_type,
                sh_flags: 0,
                sh_addr: 0,
                sh_offset: off,
                sh_size: data.len() as u64,
                sh_link: 0,
                sh_info: 0,
                sh_addralign: 8,
                sh_entsize: 0,
            });
            self.shdrs.len() - 1
        }

        fn build(mut self) -> Vec<u8> {
            let names = self.names.clone();
            let idx = self.section(".shstrtab", SHT_STRTAB, &names);
            self.eh.e_shstrndx = idx as u16;
            let table: Vec<u8> = self.shdrs.iter().flat_map(|s| s.to_bytes()).collect();
            self.eh.e_shoff = self.blob(&table);
            self.eh.e_shnum = self.shdrs.len() as u16;
            self.eh.e_phnum = self.phdrs.len() as u16;
            self.file[..EHDR_SIZE].copy_from_slice(&self.eh.to_bytes());
            for (i, p) in self.phdrs.iter().enumerate() {
                let at = EHDR_SIZE + i * PHDR_SIZE;
                self.file[at..at + PHDR_SIZE].copy_from_slice(&p.to_bytes());
            }
            self.file
        }
    }

    const TEXT: u64 = 0x100_0000;
    const RODATA: u64 = 0x100_2000;
    const DATA: u64 = 0x100_3000;
    const DATA_MEMSZ: u64 = 0x2000;

    /// A kernel as OpenBSD's ld.script lays it out: text (with the
    /// headers), rodata holding the random data, data with bss, and
    /// symbols; the entry is the virtual address of the text.
    fn kernel() -> Builder {
        let mut b = Builder::new(KERNBASE + TEXT + 0x1000);
        let mut text = vec![0xf4u8; 0x100];
        text[0] = 0x90;
        let off = b.blob(&text);
        assert_eq!(off, 0x1000);
        b.segment(PT_LOAD, PF_R | PF_X, TEXT, 0, 0x1100, 0x1100);
        let rodata = b.blob(&[0xcc; 0x1000]);
        b.segment(PT_LOAD, PF_R, RODATA, rodata, 0x1000, 0x1000);
        let data = b.blob(&[0x5a; 0x80]);
        b.segment(PT_LOAD, PF_R | PF_W, DATA, data, 0x80, DATA_MEMSZ);
        b.segment(
            PT_OPENBSD_RANDOMIZE,
            PF_R,
            RODATA + 0x800,
            rodata + 0x800,
            0x100,
            0x100,
        );
        b.section(".text", SHT_PROGBITS, &text);
        b.section(".symtab", SHT_SYMTAB, &[1u8; 48]);
        b.section(".strtab", SHT_STRTAB, b"\0start\0end\0");
        b.section(".debug_line", SHT_PROGBITS, &[7u8; 13]);
        b.section(".comment", SHT_PROGBITS, b"not loaded");
        b
    }

    fn vm(mem_mb: u64) -> (Vec<Range>, GuestMemory) {
        let map = memory_map(mem_mb * MB).unwrap();
        let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
        (map, mem)
    }

    fn boot(map: &[Range]) -> KernelBoot<'_> {
        KernelBoot {
            map,
            boot_mac: None,
        }
    }

    fn load(file: &[u8]) -> Result<LoadedKernel, ElfError> {
        let (map, mem) = vm(64);
        load_elf(&mem, file, &boot(&map))
    }

    #[test]
    fn golden_start_state() {
        let (map, mem) = vm(64);
        let k = load_elf(&mem, &kernel().build(), &boot(&map)).unwrap();
        let seg = |sel, limit, ar, base| VcpuSegmentInfo {
            vsi_sel: sel,
            vsi_limit: limit,
            vsi_ar: ar,
            vsi_base: base,
        };
        let data = seg(0x10, 0xffff_ffff, 0xc093, 0);
        let want = VcpuRegState {
            vrs_gprs: [
                0, 0, 0, 0, 0xffdc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x100_1000, 0x2,
            ],
            vrs_crs: [0x8000_0011, 0, 0x11000, 0x30, 0, 1, 0, 0, 0, 0],
            vrs_msrs: [0x500, 0, 0, 0, 0, 0, 0],
            vrs_drs: [0, 0, 0, 0, 0xffff_0ff0, 0x400],
            // ES CS SS DS FS GS LDTR TR
            vrs_sregs: [
                data,
                seg(0x08, 0xffff_ffff, 0xc09f, 0),
                data,
                data,
                data,
                data,
                seg(0, 0xffff, 0x82, 0),
                seg(0, 0xffff, 0x8b, 0),
            ],
            vrs_gdtr: seg(0, 0xffff, 0, 0x10000),
            vrs_idtr: seg(0, 0xffff, 0, 0),
        };
        assert_eq!(k.regs, want);
        assert_eq!(k.marks.entry, 0x100_1000);
        assert_eq!(k.marks.start, TEXT);
        assert_eq!(k.marks.random, Some((RODATA + 0x800, RODATA + 0x900)));
    }

    #[test]
    fn gdt_and_page_tables() {
        let (map, mem) = vm(64);
        load_elf(&mem, &kernel().build(), &boot(&map)).unwrap();
        let gdt: Vec<u64> = (0..4)
            .map(|i| mem.read_u64(GDT_PAGE + 8 * i).unwrap())
            .collect();
        assert_eq!(
            gdt,
            [
                0,
                0x00cf_9b00_0000_ffff,
                0x00cf_9300_0000_ffff,
                0x00af_9b00_0000_ffff
            ]
        );
        assert_eq!(mem.read_u64(PML4_PAGE).unwrap(), 0x12001);
        assert_eq!(mem.read_u64(PML3_PAGE).unwrap(), 0x13007);
        for i in 0..512u64 {
            assert_eq!(mem.read_u64(PML2_PAGE + 8 * i).unwrap(), (i << 21) | 0x87);
        }
        for i in 1..512u64 {
            assert_eq!(mem.read_u64(PML4_PAGE + 8 * i).unwrap(), 0);
            assert_eq!(mem.read_u64(PML3_PAGE + 8 * i).unwrap(), 0);
        }
    }

    #[test]
    fn segments_bss_and_random_data() {
        let (map, mem) = vm(64);
        mem.fill(TEXT, 0x10000, 0xaa).unwrap();
        let file = kernel().build();
        load_elf(&mem, &file, &boot(&map)).unwrap();
        let mut text = vec![0u8; 0x1100];
        mem.read(TEXT, &mut text).unwrap();
        assert_eq!(text, file[..0x1100]);
        let mut data = vec![0u8; DATA_MEMSZ as usize];
        mem.read(DATA, &mut data).unwrap();
        assert!(data[..0x80].iter().all(|&b| b == 0x5a));
        assert!(data[0x80..].iter().all(|&b| b == 0), "bss is zeroed");
        let mut ro = vec![0u8; 0x1000];
        mem.read(RODATA, &mut ro).unwrap();
        assert!(ro[..0x800].iter().all(|&b| b == 0xcc));
        assert!(ro[0x900..].iter().all(|&b| b == 0xcc));
        assert!(
            ro[0x800..0x900].iter().any(|&b| b != 0xcc),
            "the random segment is refilled"
        );
    }

    #[test]
    fn symbols_follow_the_kernel() {
        let (map, mem) = vm(64);
        let file = kernel().build();
        let k = load_elf(&mem, &file, &boot(&map)).unwrap();
        let elfp = DATA + DATA_MEMSZ;
        assert_eq!(k.marks.sym, elfp);
        let copy = Ehdr::parse(&mem.read_array::<EHDR_SIZE>(elfp).unwrap());
        let orig = parse_header(&file).unwrap();
        assert_eq!(
            copy,
            Ehdr {
                e_phoff: 0,
                e_shoff: 64,
                e_phentsize: 0,
                e_phnum: 0,
                ..orig
            }
        );
        let shdrs: Vec<Shdr> = (0..usize::from(orig.e_shnum))
            .map(|i| Shdr::parse(&mem.read_array(elfp + 64 + 64 * i as u64).unwrap()))
            .collect();
        let file_shdrs = parse_shdrs(&file, &orig).unwrap();
        // .symtab, .strtab, .debug_line and .shstrtab are copied, in order,
        // right after the section headers; .text and .comment are not.
        let table_end = 64 + 64 * shdrs.len() as u64;
        let mut off = table_end;
        let mut end = elfp + table_end;
        for (i, (sh, orig)) in shdrs.iter().zip(&file_shdrs).enumerate() {
            if [2, 3, 4, 6].contains(&i) {
                assert_eq!(sh.sh_offset, off, "section {i}");
                assert_eq!(sh.sh_flags, orig.sh_flags | SHF_ALLOC);
                let mut got = vec![0u8; sh.sh_size as usize];
                mem.read(elfp + off, &mut got).unwrap();
                let o = orig.sh_offset as usize;
                assert_eq!(got, file[o..o + orig.sh_size as usize], "section {i}");
                off += sh.sh_size.div_ceil(8) * 8;
                end = elfp + off;
            } else {
                assert_eq!(sh, orig, "section {i}");
            }
        }
        assert_eq!(k.marks.end, end);
        // The stack tells the kernel where its symbols end.
        assert_eq!(mem.read_u32(0xffdc + 16).unwrap() as u64, end);
    }

    #[test]
    fn boot_arguments_and_stack() {
        let (map, mem) = vm(64);
        let mac = [0xfe, 0xe1, 0xba, 0xd0, 0, 1];
        let b = KernelBoot {
            map: &map,
            boot_mac: Some(mac),
        };
        let k = load_elf(&mem, &kernel().build(), &b).unwrap();
        let (page, len) = bootargs::bootargs_page(&bootargs::bios_memmap(&map), Some(mac)).unwrap();
        assert_eq!(k.bootargs_len, len);
        let mut got = vec![0u8; PAGE_SIZE];
        mem.read(BOOTARGS_PAGE, &mut got).unwrap();
        assert_eq!(got, page[..]);
        let words: Vec<u32> = (0..9)
            .map(|i| mem.read_u32(0xffdc + 4 * i).unwrap())
            .collect();
        assert_eq!(
            words,
            [
                0,
                0,
                0xa000_0004,
                0x0e,
                k.marks.end as u32,
                0,
                0,
                len,
                0x2000
            ]
        );
    }

    #[test]
    fn gzip_and_plain_kernels_load_alike() {
        let file = kernel().build();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&file).unwrap();
        let gz = gz.finish().unwrap();
        let img = read_image(&gz[..], 1 << 20).unwrap();
        assert!(img.compressed);
        assert_eq!(img.bytes, file);
        let img = read_image(&file[..], 1 << 20).unwrap();
        assert!(!img.compressed);
        assert_eq!(img.bytes, file);

        let (map, mem) = vm(64);
        let a = load_kernel(&mem, &gz[..], &boot(&map)).unwrap();
        let (map2, mem2) = vm(64);
        let b = load_kernel(&mem2, &file[..], &boot(&map2)).unwrap();
        assert_eq!(a.marks, b.marks);
        assert_eq!(a.regs, b.regs);
    }

    #[test]
    fn gzip_bombs_stop_at_guest_ram() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&kernel().build()[..EHDR_SIZE]).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..40 {
            gz.write_all(&zeros).unwrap();
        }
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 100_000);
        let (map, mem) = vm(32);
        let limit = ram_bytes(&map);
        assert_eq!(limit, 32 * MB - 0x60000);
        assert!(matches!(
            load_kernel(&mem, &gz[..], &boot(&map)),
            Err(ElfError::TooLarge { limit: l }) if l == limit
        ));
        // A plain file is bounded the same way.
        assert!(matches!(
            read_image(&vec![0u8; 4097][..], 4096),
            Err(ElfError::TooLarge { limit: 4096 })
        ));
        // Something that is no kernel is refused after its header, however
        // long it is.
        assert!(matches!(
            load_kernel(&mem, io::repeat(b'A'), &boot(&map)),
            Err(ElfError::NotElf)
        ));
        // A truncated or corrupt stream is an error, not a short kernel.
        assert!(matches!(
            read_image(&gz[..gz.len() / 2], 1 << 30),
            Err(ElfError::Gzip(_))
        ));
    }

    fn with_header(f: impl FnOnce(&mut Ehdr)) -> Vec<u8> {
        let mut file = kernel().build();
        let mut eh = parse_header(&file).unwrap();
        f(&mut eh);
        file[..EHDR_SIZE].copy_from_slice(&eh.to_bytes());
        file
    }

    fn with_phdr(index: usize, f: impl FnOnce(&mut Phdr)) -> Vec<u8> {
        let mut b = kernel();
        f(&mut b.phdrs[index]);
        b.build()
    }

    #[test]
    fn hostile_headers() {
        assert!(matches!(load(&[0x7f, b'E']), Err(ElfError::TooShort(2))));
        assert!(matches!(
            load(&with_header(|e| e.ident[0] = 0)),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(
            load(&with_header(|e| e.ident[4] = ELFCLASS32)),
            Err(ElfError::Class32)
        ));
        assert!(matches!(
            load(&with_header(|e| e.ident[4] = 3)),
            Err(ElfError::NotElf)
        ));
        assert!(matches!(
            load(&with_header(|e| e.ident[5] = 2)),
            Err(ElfError::Encoding(2))
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_type = 3)),
            Err(ElfError::FileType(3))
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_machine = 3)),
            Err(ElfError::Machine(3))
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_phentsize = 32)),
            Err(ElfError::EntrySize { .. })
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_shentsize = 40)),
            Err(ElfError::EntrySize { .. })
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_phnum = 65)),
            Err(ElfError::TooMany { count: 65, .. })
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_shnum = 5000)),
            Err(ElfError::TooMany { count: 5000, .. })
        ));
        for phoff in [u64::MAX, u64::MAX - 100, 1 << 40, 0x10_0000] {
            assert!(matches!(
                load(&with_header(|e| e.e_phoff = phoff)),
                Err(ElfError::OutsideFile { .. })
            ));
        }
        assert!(matches!(
            load(&with_header(|e| e.e_shoff = u64::MAX - 63)),
            Err(ElfError::OutsideFile { .. })
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_shstrndx = 200)),
            Err(ElfError::Shstrndx { index: 200, .. })
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_entry = KERNBASE + 0x300_0000)),
            Err(ElfError::Entry(0x300_0000))
        ));
        assert!(matches!(
            load(&with_header(|e| e.e_phnum = 0)),
            Err(ElfError::NoSegments)
        ));
        // No sections at all is fine: just the header copy.
        let k = load(&with_header(|e| e.e_shnum = 0)).unwrap();
        assert_eq!(k.marks.end, DATA + DATA_MEMSZ + 64);
    }

    #[test]
    fn hostile_segments() {
        let outside_ram = |f: Vec<u8>| matches!(load(&f), Err(ElfError::OutsideRam { .. }));
        let loader_page = |f: Vec<u8>| matches!(load(&f), Err(ElfError::LoaderPage { .. }));
        // Beyond the 64 MiB of RAM, in the low hole, in the PCI window.
        assert!(outside_ram(with_phdr(2, |p| p.p_paddr = 64 * MB - 0x1000)));
        assert!(outside_ram(with_phdr(2, |p| p.p_paddr = 0xb_8000)));
        assert!(outside_ram(with_phdr(2, |p| p.p_paddr = 0xf000_0000)));
        assert!(outside_ram(with_phdr(3, |p| p.p_paddr = 0xffe0_0000)));
        // Across the end of low memory.
        assert!(outside_ram(with_phdr(1, |p| p.p_paddr = 0x9_f800)));
        // On the loader's pages.
        for page in LOADER_PAGES {
            assert!(loader_page(with_phdr(1, |p| p.p_paddr = page + 0xfff)));
            assert!(loader_page(with_phdr(3, |p| p.p_paddr = page)));
        }
        assert!(loader_page(with_phdr(2, |p| p.p_paddr = 0x1000)));
        // Wrapping around.
        assert!(matches!(
            load(&with_phdr(2, |p| p.p_paddr = u64::MAX - 0x100)),
            Err(ElfError::Overflow(_))
        ));
        assert!(matches!(
            load(&with_phdr(2, |p| p.p_memsz = u64::MAX)),
            Err(ElfError::Overflow(_))
        ));
        // More file than memory.
        assert!(matches!(
            load(&with_phdr(2, |p| p.p_filesz = DATA_MEMSZ + 1)),
            Err(ElfError::FileSize { index: 2, .. })
        ));
        // Contents outside the file.
        assert!(matches!(
            load(&with_phdr(1, |p| p.p_offset = 1 << 40)),
            Err(ElfError::OutsideFile { .. })
        ));
        assert!(matches!(
            load(&with_phdr(1, |p| p.p_offset = u64::MAX)),
            Err(ElfError::OutsideFile { .. })
        ));
        // Segments that are not loaded are not checked.
        load(&with_phdr(2, |p| {
            p.p_type = 6;
            p.p_paddr = u64::MAX;
        }))
        .unwrap();
        load(&with_phdr(2, |p| {
            p.p_flags = 0;
            p.p_paddr = 0x2000;
        }))
        .unwrap();
    }

    #[test]
    fn hostile_symbols() {
        // A symbol section outside the file.
        let mut b = kernel();
        b.shdrs[2].sh_size = 1 << 40;
        assert!(matches!(
            load(&b.build()),
            Err(ElfError::OutsideFile { .. })
        ));
        let mut b = kernel();
        b.shdrs[2].sh_offset = u64::MAX - 8;
        assert!(matches!(
            load(&b.build()),
            Err(ElfError::OutsideFile { .. })
        ));
        // Names that run off their table just do not match.
        let mut b = kernel();
        b.shdrs[4].sh_name = u32::MAX;
        load(&b.build()).unwrap();
        // The kernel ends at the top of RAM: no room for the symbols.
        let mut b = kernel();
        b.phdrs[2].p_paddr = 64 * MB - DATA_MEMSZ;
        assert!(matches!(
            load(&b.build()),
            Err(ElfError::OutsideRam { ref what, .. }) if what == "symbols"
        ));
    }

    #[test]
    fn mutated_kernels_never_panic() {
        let good = kernel().build();
        let (map, mem) = vm(64);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut f = good.clone();
            for _ in 0..1 + next() % 8 {
                let at = (next() % 0x200) as usize;
                f[at] = next() as u8;
            }
            let _ = load_elf(&mem, &f, &boot(&map));
        }
    }
}
