//! QEMU's firmware configuration device, as vmd's fw_cfg.c offers it to
//! SeaBIOS: a selector port (0x510), a byte-wide data port (0x511) and the
//! DMA interface (0x514 high, 0x518 low half of the big-endian address of
//! a `FWCfgDmaAccess`; writing the low half runs the request).
//!
//! Items: the "QEMU" signature, the interface id (traditional and DMA),
//! "nographic", the boot menu switch (off), the file directory, and the files the vm process adds:
//! `etc/e820`, `etc/screen-and-debug` and, for a chosen boot device,
//! `bootorder`.
//!
//! A DMA request comes from the guest and is parsed into a checked
//! [`DmaRequest`] first; its buffer must lie inside guest memory, and a
//! bad request sets the error bit in the control word instead of doing
//! anything else.

use crate::bus::{AccessSize, PortIoDevice};
use crate::memory::GuestMemory;

pub const FW_CFG_IO_SELECT: u16 = 0x510;
pub const FW_CFG_IO_DATA: u16 = 0x511;
pub const FW_CFG_IO_DMA_ADDR_HIGH: u16 = 0x514;
pub const FW_CFG_IO_DMA_ADDR_LOW: u16 = 0x518;

const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_ID: u16 = 0x0001;
const FW_CFG_NOGRAPHIC: u16 = 0x0004;
const FW_CFG_BOOT_MENU: u16 = 0x000e;
const FW_CFG_FILE_DIR: u16 = 0x0019;
const FW_CFG_FILE_FIRST: u16 = 0x0020;

/// "QEMU CFG", what reading the DMA address ports returns.
pub const FW_CFG_DMA_SIGNATURE: u64 = 0x5145_4d55_2043_4647;
/// Traditional interface plus DMA.
const FW_CFG_ID_VALUE: u32 = 0x3;

pub const FW_CFG_DMA_ERROR: u32 = 0x01;
pub const FW_CFG_DMA_READ: u32 = 0x02;
pub const FW_CFG_DMA_SKIP: u32 = 0x04;
pub const FW_CFG_DMA_SELECT: u32 = 0x08;
pub const FW_CFG_DMA_WRITE: u32 = 0x10;

/// `struct fw_cfg_dma_access`: control, length, address, big-endian.
const DMA_ACCESS_SIZE: usize = 16;
/// A file name in the directory, NUL included.
const FILE_NAME_LEN: usize = 56;

/// `bios_memmap_t` types.
pub const BIOS_MAP_FREE: u32 = 0x01;
pub const BIOS_MAP_RES: u32 = 0x02;

/// One `etc/e820` entry (`bios_memmap_t`, packed, little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FwCfgError {
    #[error("fw_cfg: file {0} exists")]
    Exists(String),
    #[error("fw_cfg: file name too long: {0}")]
    NameTooLong(String),
    #[error("fw_cfg: too many files")]
    TooMany,
}

/// Why a DMA request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DmaError {
    #[error("fw_cfg DMA descriptor at {0:#x} is not in guest memory")]
    Descriptor(u64),
    #[error("fw_cfg DMA buffer {addr:#x}+{len} is not in guest memory")]
    Buffer { addr: u64, len: u32 },
    #[error("fw_cfg DMA writes are not supported")]
    Write,
}

/// A DMA request as the guest wrote it, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRequest {
    pub select: Option<u16>,
    pub read: bool,
    pub skip: bool,
    pub write: bool,
    pub length: u32,
    pub address: u64,
}

impl DmaRequest {
    /// Reads and decodes the descriptor at `at`.
    pub fn parse(mem: &GuestMemory, at: u64) -> Result<DmaRequest, DmaError> {
        let raw: [u8; DMA_ACCESS_SIZE] =
            mem.read_array(at).map_err(|_| DmaError::Descriptor(at))?;
        let control = u32::from_be_bytes(raw[0..4].try_into().unwrap_or_default());
        let length = u32::from_be_bytes(raw[4..8].try_into().unwrap_or_default());
        let address = u64::from_be_bytes(raw[8..16].try_into().unwrap_or_default());
        Ok(DmaRequest {
            select: (control & FW_CFG_DMA_SELECT != 0).then_some((control >> 16) as u16),
            read: control & FW_CFG_DMA_READ != 0,
            skip: control & FW_CFG_DMA_SKIP != 0,
            write: control & FW_CFG_DMA_WRITE != 0,
            length,
            address,
        })
    }
}

struct File {
    name: String,
    selector: u16,
    data: Vec<u8>,
}

/// The fw_cfg device.
pub struct FwCfg {
    mem: GuestMemory,
    files: Vec<File>,
    /// The selected item and how far it has been read.
    item: Vec<u8>,
    offset: usize,
    dma_addr: u64,
}

impl FwCfg {
    pub fn new(mem: GuestMemory) -> FwCfg {
        FwCfg {
            mem,
            files: Vec::new(),
            item: Vec::new(),
            offset: 0,
            dma_addr: 0,
        }
    }

    /// vmd's items: the memory map, no double printing on the serial
    /// port, and `bootorder` if one is given (as vmd's fw_cfg_init).
    pub fn with_vmd_files(mem: GuestMemory, e820: &[E820Entry], bootorder: Option<&str>) -> FwCfg {
        let mut f = FwCfg::new(mem);
        let mut map = Vec::with_capacity(e820.len() * 20);
        for e in e820 {
            map.extend_from_slice(&e.addr.to_le_bytes());
            map.extend_from_slice(&e.size.to_le_bytes());
            map.extend_from_slice(&e.kind.to_le_bytes());
        }
        // Names are fixed and distinct, so these cannot fail.
        let _ = f.add_file("etc/e820", map);
        let _ = f.add_file("etc/screen-and-debug", 0u32.to_le_bytes().to_vec());
        if let Some(order) = bootorder {
            let mut b = order.as_bytes().to_vec();
            b.push(0);
            let _ = f.add_file("bootorder", b);
        }
        f
    }

    pub fn add_file(&mut self, name: &str, data: Vec<u8>) -> Result<(), FwCfgError> {
        if self.files.iter().any(|f| f.name == name) {
            return Err(FwCfgError::Exists(name.into()));
        }
        if name.len() >= FILE_NAME_LEN {
            return Err(FwCfgError::NameTooLong(name.into()));
        }
        let selector = FW_CFG_FILE_FIRST
            .checked_add(self.files.len() as u16)
            .filter(|s| *s < 0x4000)
            .ok_or(FwCfgError::TooMany)?;
        self.files.push(File {
            name: name.into(),
            selector,
            data,
        });
        Ok(())
    }

    fn select(&mut self, selector: u16) {
        self.offset = 0;
        self.item = match selector {
            FW_CFG_SIGNATURE => b"QEMU".to_vec(),
            FW_CFG_ID => FW_CFG_ID_VALUE.to_le_bytes().to_vec(),
            FW_CFG_NOGRAPHIC => 1u16.to_le_bytes().to_vec(),
            // No boot menu, as QEMU's default: without this item SeaBIOS
            // waits 2.5 s for a key on every boot. vmd has none; the
            // difference is only that wait.
            FW_CFG_BOOT_MENU => 0u16.to_le_bytes().to_vec(),
            FW_CFG_FILE_DIR => self.directory(),
            s => match self.files.iter().find(|f| f.selector == s) {
                Some(f) => {
                    log::debug!("fw_cfg_select_file: accessing file {}", f.name);
                    f.data.clone()
                }
                None => {
                    log::debug!("fw_cfg_select: unhandled selector {s:x}");
                    Vec::new()
                }
            },
        };
    }

    /// The file directory: a big-endian count, then per file its size,
    /// selector, a reserved word and the NUL-padded name.
    fn directory(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(4 + self.files.len() * 64);
        d.extend_from_slice(&(self.files.len() as u32).to_be_bytes());
        for f in &self.files {
            d.extend_from_slice(&(f.data.len() as u32).to_be_bytes());
            d.extend_from_slice(&f.selector.to_be_bytes());
            d.extend_from_slice(&0u16.to_be_bytes());
            let mut name = [0u8; FILE_NAME_LEN];
            name[..f.name.len()].copy_from_slice(f.name.as_bytes());
            d.extend_from_slice(&name);
        }
        d
    }

    fn remaining(&self) -> &[u8] {
        self.item.get(self.offset..).unwrap_or(&[])
    }

    /// Carries out the request at `at`; returns the control word to store.
    fn dma(&mut self, at: u64) -> Result<u32, DmaError> {
        let req = DmaRequest::parse(&self.mem, at)?;
        if let Some(s) = req.select {
            self.select(s);
        }
        let len = self.remaining().len().min(req.length as usize);
        if req.write {
            return Err(DmaError::Write);
        }
        if req.read {
            let whole = u64::from(req.length);
            if !self.mem.contains(req.address, whole) {
                return Err(DmaError::Buffer {
                    addr: req.address,
                    len: req.length,
                });
            }
            let bad = || DmaError::Buffer {
                addr: req.address,
                len: req.length,
            };
            self.mem
                .write(req.address, &self.item[self.offset..self.offset + len])
                .map_err(|_| bad())?;
            // The rest of the buffer reads as zeroes.
            self.mem
                .fill(req.address + len as u64, req.length as usize - len, 0)
                .map_err(|_| bad())?;
        }
        self.offset += len;
        Ok(0)
    }

    fn dma_write(&mut self, port: u16, size: AccessSize, value: u32) {
        if size != AccessSize::Dword {
            log::debug!("fw_cfg_dma: discarding data written to dma addr");
            self.dma_addr = 0;
            return;
        }
        let half = u32::from_be(value);
        if port == FW_CFG_IO_DMA_ADDR_HIGH {
            self.dma_addr = u64::from(half) << 32;
            return;
        }
        let at = self.dma_addr | u64::from(half);
        self.dma_addr = 0;
        let control = match self.dma(at) {
            Ok(c) => c,
            Err(DmaError::Descriptor(a)) => {
                log::warn!("fw_cfg DMA descriptor at {a:#x} is not in guest memory");
                return;
            }
            Err(e) => {
                log::warn!("{e}");
                FW_CFG_DMA_ERROR
            }
        };
        if self.mem.write(at, &control.to_be_bytes()).is_err() {
            log::warn!("fw_cfg DMA: cannot write the control word at {at:#x}");
        }
    }
}

impl PortIoDevice for FwCfg {
    fn port_read(&mut self, port: u16, size: AccessSize) -> u32 {
        match port {
            FW_CFG_IO_SELECT => {
                log::warn!("fw_cfg: read from selector port unsupported");
                0
            }
            FW_CFG_IO_DATA => {
                // Byte reads only: one byte per access whatever its width.
                let b = self.remaining().first().copied().unwrap_or(0);
                if self.offset < self.item.len() {
                    self.offset += 1;
                }
                u32::from(b)
            }
            FW_CFG_IO_DMA_ADDR_HIGH if size == AccessSize::Dword => {
                ((FW_CFG_DMA_SIGNATURE >> 32) as u32).to_be()
            }
            FW_CFG_IO_DMA_ADDR_LOW if size == AccessSize::Dword => {
                (FW_CFG_DMA_SIGNATURE as u32).to_be()
            }
            _ => size.mask(),
        }
    }

    fn port_write(&mut self, port: u16, size: AccessSize, value: u32) {
        match port {
            FW_CFG_IO_SELECT => self.select(value as u16),
            FW_CFG_IO_DATA => log::debug!("fw_cfg: discarding data written to data port"),
            FW_CFG_IO_DMA_ADDR_HIGH | FW_CFG_IO_DMA_ADDR_LOW => self.dma_write(port, size, value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryRange;

    fn setup() -> (FwCfg, GuestMemory) {
        let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x10000)]).unwrap();
        let e820 = [
            E820Entry {
                addr: 0,
                size: 0xa0000,
                kind: BIOS_MAP_FREE,
            },
            E820Entry {
                addr: 0xa0000,
                size: 0x60000,
                kind: BIOS_MAP_RES,
            },
        ];
        (
            FwCfg::with_vmd_files(mem.clone(), &e820, Some("/pci@i0cf8/*@2\nHALT")),
            mem,
        )
    }

    fn read_port(f: &mut FwCfg, selector: u16, n: usize) -> Vec<u8> {
        f.port_write(FW_CFG_IO_SELECT, AccessSize::Word, u32::from(selector));
        (0..n)
            .map(|_| f.port_read(FW_CFG_IO_DATA, AccessSize::Byte) as u8)
            .collect()
    }

    fn dma(f: &mut FwCfg, mem: &GuestMemory, at: u64, control: u32, len: u32, addr: u64) -> u32 {
        let mut d = Vec::new();
        d.extend_from_slice(&control.to_be_bytes());
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&addr.to_be_bytes());
        mem.write(at, &d).unwrap();
        f.port_write(
            FW_CFG_IO_DMA_ADDR_HIGH,
            AccessSize::Dword,
            ((at >> 32) as u32).to_be(),
        );
        f.port_write(
            FW_CFG_IO_DMA_ADDR_LOW,
            AccessSize::Dword,
            (at as u32).to_be(),
        );
        u32::from_be_bytes(mem.read_array(at).unwrap())
    }

    /// What SeaBIOS's qemu_cfg_init does, step by step.
    #[test]
    fn seabios_probe() {
        let (mut f, mem) = setup();
        assert_eq!(read_port(&mut f, FW_CFG_SIGNATURE, 4), b"QEMU");
        // ID by DMA: traditional + DMA.
        let st = dma(
            &mut f,
            &mem,
            0x1000,
            (u32::from(FW_CFG_ID) << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
            4,
            0x2000,
        );
        assert_eq!(st, 0);
        assert_eq!(mem.read_u32(0x2000).unwrap(), 3);
        // The directory: count, then entries.
        let st = dma(
            &mut f,
            &mem,
            0x1000,
            (u32::from(FW_CFG_FILE_DIR) << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
            4,
            0x2000,
        );
        assert_eq!(st, 0);
        let count = u32::from_be_bytes(mem.read_array(0x2000).unwrap());
        assert_eq!(count, 3);
        let mut names = Vec::new();
        let mut e820_sel = 0;
        for _ in 0..count {
            assert_eq!(dma(&mut f, &mem, 0x1000, FW_CFG_DMA_READ, 64, 0x3000), 0);
            let e: [u8; 64] = mem.read_array(0x3000).unwrap();
            let size = u32::from_be_bytes(e[0..4].try_into().unwrap());
            let sel = u16::from_be_bytes(e[4..6].try_into().unwrap());
            let name =
                String::from_utf8(e[8..].split(|&b| b == 0).next().unwrap().to_vec()).unwrap();
            if name == "etc/e820" {
                assert_eq!(size, 40);
                e820_sel = sel;
            }
            names.push(name);
        }
        assert_eq!(names, ["etc/e820", "etc/screen-and-debug", "bootorder"]);
        // etc/e820 by DMA into a larger buffer: the tail is zeroed.
        mem.fill(0x4000, 64, 0xaa).unwrap();
        let st = dma(
            &mut f,
            &mem,
            0x1000,
            (u32::from(e820_sel) << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ,
            48,
            0x4000,
        );
        assert_eq!(st, 0);
        assert_eq!(mem.read_u64(0x4000 + 20).unwrap(), 0xa0000);
        assert_eq!(mem.read_u32(0x4000 + 36).unwrap(), BIOS_MAP_RES);
        assert_eq!(mem.read_u64(0x4000 + 40).unwrap(), 0);
        assert_eq!(mem.read_u8(0x4000 + 48).unwrap(), 0xaa);
        // The same by port, and skip.
        let by_port = read_port(&mut f, e820_sel, 40);
        let mut by_dma = vec![0; 40];
        mem.read(0x4000, &mut by_dma).unwrap();
        assert_eq!(by_port, by_dma);
        f.port_write(FW_CFG_IO_SELECT, AccessSize::Word, u32::from(e820_sel));
        assert_eq!(dma(&mut f, &mem, 0x1000, FW_CFG_DMA_SKIP, 20, 0), 0);
        assert_eq!(
            f.port_read(FW_CFG_IO_DATA, AccessSize::Byte),
            0xa0000u32 & 0xff
        );
        // bootorder, NUL-terminated.
        let b = read_port(&mut f, FW_CFG_FILE_FIRST + 2, 20);
        assert_eq!(&b, b"/pci@i0cf8/*@2\nHALT\0");
        // The DMA ports read back "QEMU CFG".
        let hi = u32::from_be(f.port_read(FW_CFG_IO_DMA_ADDR_HIGH, AccessSize::Dword));
        let lo = u32::from_be(f.port_read(FW_CFG_IO_DMA_ADDR_LOW, AccessSize::Dword));
        assert_eq!((u64::from(hi) << 32) | u64::from(lo), FW_CFG_DMA_SIGNATURE);
    }

    #[test]
    fn hostile_requests() {
        let (mut f, mem) = setup();
        let sel = (u32::from(FW_CFG_FILE_FIRST) << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ;
        // Buffer outside memory, wrapping, huge length: error bit, nothing written.
        assert_eq!(
            dma(&mut f, &mem, 0x1000, sel, 64, 0x1_0000_0000),
            FW_CFG_DMA_ERROR
        );
        assert_eq!(
            dma(&mut f, &mem, 0x1000, sel, 64, u64::MAX - 8),
            FW_CFG_DMA_ERROR
        );
        assert_eq!(
            dma(&mut f, &mem, 0x1000, sel, u32::MAX, 0x2000),
            FW_CFG_DMA_ERROR
        );
        assert_eq!(
            dma(&mut f, &mem, 0x1000, sel, 0x100, 0xff80),
            FW_CFG_DMA_ERROR
        );
        // Writes are refused.
        assert_eq!(
            dma(&mut f, &mem, 0x1000, FW_CFG_DMA_WRITE, 4, 0x2000),
            FW_CFG_DMA_ERROR
        );
        // A descriptor outside memory is ignored.
        f.port_write(FW_CFG_IO_DMA_ADDR_HIGH, AccessSize::Dword, 1u32.to_be());
        f.port_write(FW_CFG_IO_DMA_ADDR_LOW, AccessSize::Dword, 0);
        f.port_write(FW_CFG_IO_DMA_ADDR_LOW, AccessSize::Dword, 0xfff8u32.to_be());
        // Wrong widths, an unknown selector, reads past the end.
        f.port_write(FW_CFG_IO_DMA_ADDR_LOW, AccessSize::Byte, 0x10);
        assert_eq!(
            f.port_read(FW_CFG_IO_DMA_ADDR_LOW, AccessSize::Word),
            0xffff
        );
        assert_eq!(read_port(&mut f, 0x7777, 3), [0, 0, 0]);
        assert_eq!(read_port(&mut f, FW_CFG_SIGNATURE, 6), b"QEMU\0\0");
        // And it still works.
        assert_eq!(read_port(&mut f, FW_CFG_SIGNATURE, 4), b"QEMU");
    }

    #[test]
    fn file_limits() {
        let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x1000)]).unwrap();
        let mut f = FwCfg::new(mem);
        f.add_file("a", vec![1]).unwrap();
        assert_eq!(
            f.add_file("a", vec![1]),
            Err(FwCfgError::Exists("a".into()))
        );
        let long = "x".repeat(56);
        assert_eq!(
            f.add_file(&long, vec![]),
            Err(FwCfgError::NameTooLong(long.clone()))
        );
    }
}
