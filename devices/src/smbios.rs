//! SMBIOS tables for the firmware, offered through fw_cfg as
//! `etc/smbios/smbios-anchor` and `etc/smbios/smbios-tables`.
//!
//! The content is what OpenBSD's vmm firmware (SeaBIOS with the ports
//! tree's patches) builds by itself on a vmd machine: system, enclosure
//! and processor made by "OpenBSD", product "VMM", one memory device per
//! 16 GiB, the memory map from the e820 table. Offering the tables makes a
//! guest see the same SMBIOS whichever SeaBIOS build runs, and spares the
//! firmware its own builder, which probes for every structure type by
//! name and costs a third of a second of emulated instructions on a slow
//! host. The BIOS information structure (type 0) is left out: the
//! firmware adds its own, with its real name, version and date.
//!
//! Layouts are SMBIOS 2.4's, as the firmware's builder writes them.

/// fw_cfg file names (QEMU's).
pub const ANCHOR_FILE: &str = "etc/smbios/smbios-anchor";
pub const TABLES_FILE: &str = "etc/smbios/smbios-tables";

/// The manufacturer string of OpenBSD's vmm firmware.
const MANUFACTURER: &str = "OpenBSD";
/// Its product name.
const PRODUCT: &str = "VMM";

/// Memory devices are described in 16 GiB pieces.
const MB_PER_DEVICE: u64 = 16 * 1024;
const FOUR_GIB: u64 = 1 << 32;

/// What the tables describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmbiosMachine {
    /// CPUID leaf 1 EAX as the guest sees it.
    pub cpu_signature: u32,
    /// CPUID leaf 1 EDX as the guest sees it.
    pub cpu_features: u32,
    pub vcpus: u32,
    /// The end of the highest RAM range below 4 GiB.
    pub ram_below_4g: u64,
    /// The end of the highest RAM range above 4 GiB, less 4 GiB.
    pub ram_above_4g: u64,
}

impl SmbiosMachine {
    /// Reads the RAM sizes the way the firmware does from the e820 map
    /// (address, length, is RAM).
    pub fn ram_from_e820(ranges: impl IntoIterator<Item = (u64, u64, bool)>) -> (u64, u64) {
        let (mut below, mut above) = (0u64, 0u64);
        for (addr, len, ram) in ranges {
            let end = addr.saturating_add(len);
            if !ram {
                continue;
            }
            if addr < FOUR_GIB {
                below = below.max(end);
            } else {
                above = above.max(end - FOUR_GIB);
            }
        }
        (below, above)
    }
}

/// The two fw_cfg files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmbiosFiles {
    /// The 31-byte SMBIOS 2.1 entry point; the firmware fills in the
    /// table address and fixes the checksums.
    pub anchor: Vec<u8>,
    pub tables: Vec<u8>,
}

/// Structures as they are appended: formatted area, then strings.
#[derive(Default)]
struct Builder {
    tables: Vec<u8>,
    count: u16,
    largest: usize,
}

impl Builder {
    /// Appends one structure: `body` is the formatted area after the
    /// 4-byte header, `strings` the strings its fields number from 1.
    fn add(&mut self, kind: u8, handle: u16, body: &[u8], strings: &[&str]) {
        let start = self.tables.len();
        self.tables.push(kind);
        self.tables.push((4 + body.len()) as u8);
        self.tables.extend_from_slice(&handle.to_le_bytes());
        self.tables.extend_from_slice(body);
        for s in strings {
            self.tables.extend_from_slice(s.as_bytes());
            self.tables.push(0);
        }
        if strings.is_empty() {
            self.tables.push(0);
        }
        self.tables.push(0);
        self.count += 1;
        self.largest = self.largest.max(self.tables.len() - start);
    }
}

/// Little-endian field writer for a formatted area.
#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn zeros(mut self, n: usize) -> Self {
        self.0.resize(self.0.len() + n, 0);
        self
    }
}

/// Kilobytes in the 32-bit fields of types 16, 19 and 20. The machine
/// sizes vmd allows stay far below where these would overflow.
fn kib(mb: u64) -> u32 {
    (mb << 10) as u32
}

impl SmbiosFiles {
    pub fn build(m: &SmbiosMachine) -> SmbiosFiles {
        let mut b = Builder::default();

        // Type 1, system: wake-up by power switch, no UUID.
        let system = Body::default()
            .u8(1) // manufacturer
            .u8(2) // product
            .u8(0) // version
            .u8(0) // serial number
            .zeros(16) // UUID
            .u8(6) // wake-up type: power switch
            .u8(0) // SKU
            .u8(0); // family
        b.add(1, 0x100, &system.0, &[MANUFACTURER, PRODUCT]);

        // Type 3, enclosure: "other", every state "safe", security unknown.
        let enclosure = Body::default()
            .u8(1) // manufacturer
            .u8(1) // type: other
            .u8(0) // version
            .u8(0) // serial number
            .u8(0) // asset tag
            .u8(3) // boot-up state
            .u8(3) // power supply state
            .u8(3) // thermal state
            .u8(2) // security status
            .u32(0) // OEM
            .u8(0) // height
            .u8(0) // power cords
            .u8(0); // contained elements
        b.add(3, 0x300, &enclosure.0, &[MANUFACTURER]);

        // Type 4, one per vcpu, numbered from 1.
        for n in 1..=m.vcpus.max(1) {
            let socket = format!("CPU{n:2x}");
            let cpu = Body::default()
                .u8(1) // socket designation
                .u8(3) // type: central processor
                .u8(1) // family: other
                .u8(2) // manufacturer
                .u32(m.cpu_signature)
                .u32(m.cpu_features)
                .u8(0) // version
                .u8(0) // voltage
                .u16(0) // external clock
                .u16(2000) // max speed, MHz
                .u16(2000) // current speed
                .u8(0x41) // populated, enabled
                .u8(1) // upgrade: other
                .u16(0xffff) // no L1, L2, L3 cache structures
                .u16(0xffff)
                .u16(0xffff);
            b.add(4, 0x400 + n as u16, &cpu.0, &[&socket, MANUFACTURER]);
        }

        let below_mb = m.ram_below_4g >> 20;
        let above_mb = m.ram_above_4g >> 20;
        let ram_mb = below_mb + above_mb;
        let devices = ram_mb.div_ceil(MB_PER_DEVICE).max(1);
        let device_mb = |i: u64| {
            if i == devices - 1 {
                (ram_mb.max(1) - 1) % MB_PER_DEVICE + 1
            } else {
                MB_PER_DEVICE
            }
        };

        // Type 16, the memory array.
        let capacity = if ram_mb < 2 << 20 {
            kib(ram_mb)
        } else {
            0x8000_0000
        };
        let array = Body::default()
            .u8(1) // location: other
            .u8(3) // use: system memory
            .u8(6) // error correction: multi-bit ECC
            .u32(capacity)
            .u16(0xfffe) // no error information
            .u16(devices as u16);
        b.add(16, 0x1000, &array.0, &[]);

        // Type 17, a device per 16 GiB.
        for i in 0..devices {
            let locator = format!("DIMM {i}");
            let device = Body::default()
                .u16(0x1000) // array
                .u16(0) // error information: 0, as the firmware's builder has it
                .u16(64) // total width
                .u16(64) // data width
                .u16(device_mb(i) as u16)
                .u8(9) // form factor: DIMM
                .u8(0) // device set
                .u8(1) // device locator
                .u8(0) // bank locator
                .u8(7) // memory type: RAM
                .u16(0); // type detail
            b.add(17, 0x1100 + i as u16, &device.0, &[&locator]);
        }

        // Type 19, the array's address ranges: below 4 GiB, then above.
        let mapped = |start_mb: u64, size_mb: u64| {
            let start = kib(start_mb);
            (start, start.wrapping_add(kib(size_mb)).wrapping_sub(1))
        };
        let mut ranges = vec![(0u64, below_mb)];
        if m.ram_above_4g > 0 {
            ranges.push((FOUR_GIB >> 20, above_mb));
        }
        for (i, &(start_mb, size_mb)) in ranges.iter().enumerate() {
            let (start, end) = mapped(start_mb, size_mb);
            let range = Body::default().u32(start).u32(end).u16(0x1000).u8(1);
            b.add(19, 0x1300 + i as u16, &range.0, &[]);
        }

        // Type 20, the devices' address ranges: the low range on the first
        // device, then the devices laid out from 4 GiB on.
        let device_range = |b: &mut Builder, n: u16, start_mb, size_mb, dev: u16, range: u16| {
            let (start, end) = mapped(start_mb, size_mb);
            let body = Body::default()
                .u32(start)
                .u32(end)
                .u16(0x1100 + dev)
                .u16(0x1300 + range)
                .u8(1) // partition row position
                .u8(0) // interleave position
                .u8(0); // interleaved data depth
            b.add(20, 0x1400 + n, &body.0, &[]);
        };
        device_range(&mut b, 0, 0, below_mb, 0, 0);
        if m.ram_above_4g > 0 {
            let mut start_mb = FOUR_GIB >> 20;
            for i in 0..devices {
                let mut size_mb = device_mb(i);
                if i == 0 {
                    size_mb = size_mb.saturating_sub(below_mb);
                }
                device_range(&mut b, i as u16 + 1, start_mb, size_mb, i as u16, 1);
                start_mb += size_mb;
            }
        }

        // Type 32, boot information: no errors.
        b.add(32, 0x2000, &Body::default().zeros(7).0, &[]);
        // Type 127, end of table.
        b.add(127, 0x7f00, &[], &[]);

        let mut anchor = Vec::with_capacity(31);
        anchor.extend_from_slice(b"_SM_");
        anchor.push(0); // checksum
        anchor.push(31); // entry point length
        anchor.extend_from_slice(&[2, 4]); // SMBIOS 2.4
        anchor.extend_from_slice(&(b.largest as u16).to_le_bytes());
        anchor.push(0); // entry point revision
        anchor.extend_from_slice(&[0; 5]); // formatted area
        anchor.extend_from_slice(b"_DMI_");
        anchor.push(0); // intermediate checksum
        anchor.extend_from_slice(&(b.tables.len() as u16).to_le_bytes());
        anchor.extend_from_slice(&0u32.to_le_bytes()); // address: the firmware's
        anchor.extend_from_slice(&b.count.to_le_bytes());
        anchor.push(0x24); // BCD revision
        anchor[4] = checksum(&anchor[..16]);
        anchor[21] = checksum(&anchor[16..]);
        SmbiosFiles {
            anchor,
            tables: b.tables,
        }
    }
}

/// The byte that makes `bytes` sum to zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, handle, formatted area with header, strings) of each
    /// structure, walking the table as a guest does.
    fn walk(t: &[u8]) -> Vec<(u8, u16, Vec<u8>, Vec<String>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < t.len() {
            let (kind, len) = (t[at], t[at + 1] as usize);
            let handle = u16::from_le_bytes([t[at + 2], t[at + 3]]);
            let area = t[at..at + len].to_vec();
            let mut p = at + len;
            let mut strings = Vec::new();
            loop {
                let end = p + t[p..].iter().position(|&c| c == 0).unwrap();
                if end == p {
                    p += 1;
                    if strings.is_empty() {
                        p += 1;
                    }
                    break;
                }
                strings.push(String::from_utf8(t[p..end].to_vec()).unwrap());
                p = end + 1;
            }
            out.push((kind, handle, area, strings));
            at = p;
        }
        out
    }

    fn machine(below: u64, above: u64) -> SmbiosMachine {
        SmbiosMachine {
            cpu_signature: 0x00a1_0f11,
            cpu_features: 0x178b_fbff,
            vcpus: 1,
            ram_below_4g: below,
            ram_above_4g: above,
        }
    }

    fn u32_at(v: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(v[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn a_512_mib_machine() {
        let f = SmbiosFiles::build(&machine(512 << 20, 0));
        let s = walk(&f.tables);
        let kinds: Vec<(u8, u16)> = s.iter().map(|x| (x.0, x.1)).collect();
        assert_eq!(
            kinds,
            [
                (1, 0x100),
                (3, 0x300),
                (4, 0x401),
                (16, 0x1000),
                (17, 0x1100),
                (19, 0x1300),
                (20, 0x1400),
                (32, 0x2000),
                (127, 0x7f00)
            ]
        );
        let lens: Vec<usize> = s.iter().map(|x| x.2.len()).collect();
        assert_eq!(lens, [27, 20, 32, 15, 21, 15, 19, 11, 4]);
        assert_eq!(s[0].3, ["OpenBSD", "VMM"]);
        assert_eq!(s[1].3, ["OpenBSD"]);
        assert_eq!(s[2].3, ["CPU 1", "OpenBSD"]);
        assert_eq!(u32_at(&s[2].2, 8), 0x00a1_0f11);
        assert_eq!(u32_at(&s[2].2, 12), 0x178b_fbff);
        assert_eq!(u32_at(&s[3].2, 7), 512 << 10, "array capacity in KiB");
        assert_eq!(s[4].3, ["DIMM 0"]);
        assert_eq!(u16::from_le_bytes([s[4].2[12], s[4].2[13]]), 512);
        assert_eq!(
            (u32_at(&s[5].2, 4), u32_at(&s[5].2, 8)),
            (0, (512 << 10) - 1)
        );
        assert_eq!(
            (u32_at(&s[6].2, 4), u32_at(&s[6].2, 8)),
            (0, (512 << 10) - 1)
        );
        // The processor structure with its strings is the largest.
        assert_eq!(f.anchor[8], 32 + 6 + 8 + 1);
    }

    #[test]
    fn the_anchor_is_a_valid_smbios_21_entry_point() {
        let f = SmbiosFiles::build(&machine(512 << 20, 0));
        let a = &f.anchor;
        assert_eq!(a.len(), 31);
        assert_eq!(&a[..4], b"_SM_");
        assert_eq!(&a[16..21], b"_DMI_");
        assert_eq!(a[..16].iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
        assert_eq!(a[16..].iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
        assert_eq!(u16::from_le_bytes([a[22], a[23]]) as usize, f.tables.len());
        assert_eq!(u16::from_le_bytes([a[28], a[29]]), 9);
        assert_eq!((a[6], a[7], a[30]), (2, 4, 0x24));
    }

    #[test]
    fn memory_above_4_gib_gets_its_own_ranges_and_devices() {
        // vmd's map for 40 GiB: RAM to 0xf0000000, the rest above 4 GiB.
        let below = 0xf000_0000u64;
        let above = (40u64 << 30) - below;
        let f = SmbiosFiles::build(&machine(below, above));
        let s = walk(&f.tables);
        let of = |k: u8| s.iter().filter(|x| x.0 == k).collect::<Vec<_>>();
        let sizes: Vec<u16> = of(17)
            .iter()
            .map(|x| u16::from_le_bytes([x.2[12], x.2[13]]))
            .collect();
        assert_eq!(sizes, [16384, 16384, 8192]);
        let ranges: Vec<(u32, u32)> = of(19)
            .iter()
            .map(|x| (u32_at(&x.2, 4), u32_at(&x.2, 8)))
            .collect();
        let below_kib = (below >> 10) as u32;
        let above_kib = (above >> 10) as u32;
        assert_eq!(
            ranges,
            [(0, below_kib - 1), (4 << 20, (4 << 20) + above_kib - 1)]
        );
        // Low range, then the three devices from 4 GiB on, the first
        // shortened by what lies below 4 GiB.
        let mapped: Vec<(u16, u32, u32, u16, u16)> = of(20)
            .iter()
            .map(|x| {
                (
                    x.1,
                    u32_at(&x.2, 4),
                    u32_at(&x.2, 8),
                    u16::from_le_bytes([x.2[12], x.2[13]]),
                    u16::from_le_bytes([x.2[14], x.2[15]]),
                )
            })
            .collect();
        let gib = 1u32 << 20;
        let first = 16 * gib - below_kib;
        assert_eq!(
            mapped,
            [
                (0x1400, 0, below_kib - 1, 0x1100, 0x1300),
                (0x1401, 4 * gib, 4 * gib + first - 1, 0x1100, 0x1301),
                (
                    0x1402,
                    4 * gib + first,
                    4 * gib + first + 16 * gib - 1,
                    0x1101,
                    0x1301
                ),
                (
                    0x1403,
                    4 * gib + first + 16 * gib,
                    4 * gib + first + 24 * gib - 1,
                    0x1102,
                    0x1301
                ),
            ]
        );
        assert_eq!(u32_at(&of(16)[0].2, 7), 40 << 20);
    }

    #[test]
    fn ram_sizes_come_from_the_e820_map_as_the_firmware_reads_them() {
        let map = [
            (0, 0x9fc00, true),
            (0x9fc00, 0x400, false),
            (0x10_0000, 0xeff0_0000, true),
            (0xf000_0000, 0x1000_0000, false),
            (1 << 32, 3 << 30, true),
        ];
        assert_eq!(SmbiosMachine::ram_from_e820(map), (0xf000_0000, 3 << 30));
    }
}
