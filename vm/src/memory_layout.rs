//! vmd's guest-physical memory map (create_memory_map in vmd's
//! x86_vm.c): DOS low memory, the 640 KiB - 1 MiB hole (backed, as some
//! guests write to VGA memory there), RAM up to the PCI MMIO window, a
//! 2 MiB area ending at 4 GiB for the second BIOS copy, and the rest of
//! RAM above 4 GiB.

use devices::memory::MemoryRange;

pub const LOWMEM_KB: u64 = 640;
pub const MB: u64 = 1 << 20;
pub const GB: u64 = 1 << 30;
/// The PCI MMIO window (vmmvar.h): not backed by memory.
pub const PCI_MMIO_BAR_BASE: u64 = 0xF000_0000;
pub const PCI_MMIO_BAR_END: u64 = 0xFFDF_FFFF;
/// The largest VM vmm(4) allows (VMM_MAX_VM_MEM_SIZE).
pub const MAX_VM_MEM_SIZE: u64 = 128 * GB;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeKind {
    Ram,
    /// Backed but not RAM: the low hole and the high BIOS copy.
    Reserved,
    /// Device space, not backed.
    Mmio,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub gpa: u64,
    pub size: u64,
    pub kind: RangeKind,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("memory size {0} bytes is out of range (1 MiB to 128 GiB)")]
    Size(u64),
}

/// The ranges of a VM with `mem_bytes` of memory, in vmd's order.
pub fn memory_map(mem_bytes: u64) -> Result<Vec<Range>, LayoutError> {
    if !(MB..=MAX_VM_MEM_SIZE).contains(&mem_bytes) {
        return Err(LayoutError::Size(mem_bytes));
    }
    let low = LOWMEM_KB * 1024;
    let hole = MB - low;
    let mut left = mem_bytes.saturating_sub(low + hole);
    let mut map = vec![
        Range {
            gpa: 0,
            size: low,
            kind: RangeKind::Ram,
        },
        Range {
            gpa: low,
            size: hole,
            kind: RangeKind::Reserved,
        },
    ];
    let bios_copy = Range {
        gpa: PCI_MMIO_BAR_END + 1,
        size: 2 * MB,
        kind: RangeKind::Reserved,
    };
    if left <= 2 * MB {
        map.push(bios_copy);
        return Ok(map);
    }
    let below = left.min(PCI_MMIO_BAR_BASE - MB);
    left -= below;
    map.push(Range {
        gpa: MB,
        size: below,
        kind: RangeKind::Ram,
    });
    map.push(Range {
        gpa: PCI_MMIO_BAR_BASE,
        size: PCI_MMIO_BAR_END - PCI_MMIO_BAR_BASE + 1,
        kind: RangeKind::Mmio,
    });
    map.push(bios_copy);
    if left > 0 {
        map.push(Range {
            gpa: 4 * GB,
            size: left,
            kind: RangeKind::Ram,
        });
    }
    Ok(map)
}

/// The ranges that need backing memory.
pub fn backed_ranges(map: &[Range]) -> Vec<MemoryRange> {
    map.iter()
        .filter(|r| r.kind != RangeKind::Mmio)
        .map(|r| MemoryRange::new(r.gpa, r.size as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeKind::*;

    #[test]
    fn vmd_maps() {
        let m = memory_map(512 * MB).unwrap();
        assert_eq!(
            m,
            vec![
                Range {
                    gpa: 0,
                    size: 0xa0000,
                    kind: Ram
                },
                Range {
                    gpa: 0xa0000,
                    size: 0x60000,
                    kind: Reserved
                },
                Range {
                    gpa: MB,
                    size: 511 * MB,
                    kind: Ram
                },
                Range {
                    gpa: 0xf000_0000,
                    size: 0x0fe0_0000,
                    kind: Mmio
                },
                Range {
                    gpa: 0xffe0_0000,
                    size: 2 * MB,
                    kind: Reserved
                },
            ]
        );
        // Above the MMIO window the rest goes past 4 GiB.
        let m = memory_map(8 * GB).unwrap();
        assert_eq!(m[2].size, PCI_MMIO_BAR_BASE - MB);
        assert_eq!(
            m[5],
            Range {
                gpa: 4 * GB,
                size: 8 * GB - PCI_MMIO_BAR_BASE,
                kind: Ram
            }
        );
        // A tiny VM still gets its BIOS copy.
        assert_eq!(memory_map(2 * MB).unwrap().len(), 3);
        assert!(memory_map(0).is_err());
        assert!(memory_map(MAX_VM_MEM_SIZE + 1).is_err());
        assert_eq!(backed_ranges(&memory_map(512 * MB).unwrap()).len(), 4);
    }
}
