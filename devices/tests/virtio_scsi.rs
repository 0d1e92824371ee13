//! vioscsi driven the way Linux's virtio_scsi + sr and SeaBIOS's
//! virtio-scsi drivers drive it, over the modern PCI transport, against a
//! real ISO made by genisoimage (and the same ISO as qcow2, made by
//! qemu-img); then the requests a hostile guest can make.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use devices::disk::{open_image, DiskBackend, ImageFormat};
use devices::memory::GuestMemory;
use devices::pci::PciBus;
use devices::virtio::blk::BlockBackend;
use devices::virtio::scsi::{
    ResponseHeader, Scsi, VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_FAILURE,
    VIRTIO_SCSI_S_FUNCTION_COMPLETE, VIRTIO_SCSI_S_FUNCTION_REJECTED, VIRTIO_SCSI_S_INCORRECT_LUN,
    VIRTIO_SCSI_S_OK,
};
use devices::virtio::{
    attach, Layout, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
    VIRTIO_F_VERSION_1,
};

const LUN0: [u8; 8] = [1, 0, 0x40, 0, 0, 0, 0, 0];
const REQ: u64 = 0x40000;
const RESP: u64 = 0x41000;
/// Data-in buffers start here; a large one crosses into the second memory
/// range at 1 MiB.
const DATA: u64 = 0xc0000;
const OTHER: u64 = 0x42000;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// The device as a driver sees it: the machine, the BAR, three queues.
struct Cd {
    m: Machine,
    mem: GuestMemory,
    base: u16,
    q: Vec<GuestQueue>,
    lines: Lines,
    irq: u8,
}

/// What came back for one command.
#[derive(Debug)]
struct Reply {
    resp: ResponseHeader,
    used: u32,
    data: Vec<u8>,
}

impl Reply {
    fn good(&self) -> &Self {
        assert_eq!(
            (self.resp.response, self.resp.status),
            (VIRTIO_SCSI_S_OK, 0),
            "{:?}",
            self.sense()
        );
        self
    }

    /// (key, ASC, ASCQ) of a CHECK CONDITION.
    fn sense(&self) -> (u8, u8, u8) {
        assert_eq!(self.resp.response, VIRTIO_SCSI_S_OK);
        assert_eq!(self.resp.status, 2, "CHECK CONDITION");
        assert_eq!(self.resp.sense_len, 18);
        let s = &self.resp.sense;
        assert_eq!((s[0], s[7]), (0x70, 10), "fixed format, with its length");
        (s[2], s[12], s[13])
    }
}

fn bring_up(backend: Box<dyn BlockBackend>) -> Cd {
    let mem = memory();
    let lines = Lines::default();
    let mut pci = PciBus::new();
    let (id, _dev) = attach(
        &mut pci,
        Scsi::new(backend),
        Layout::Modern,
        mem.clone(),
        |n| lines.make(n),
    )
    .unwrap();
    let m = Machine::new(pci);
    // PCI identity: Qumranet virtio 1.x SCSI, mass storage / SCSI,
    // subsystem OpenBSD / virtio type 8.
    assert_eq!(m.cfg_read32(id, 0), 0x1048_1af4);
    assert_eq!(m.cfg_read32(id, 8) >> 16, 0x0100);
    assert_eq!(m.cfg_read32(id, 0x2c), 0x0008_0b5d);
    let irq = m.cfg_read8(id, 0x3c);
    let caps = m.virtio_caps(id);
    let dev_cfg = caps.iter().find(|c| c.cfg_type == 4).expect("device cfg");
    assert_eq!((dev_cfg.offset, dev_cfg.length), (0x300, 36));
    let base = (m.cfg_read32(id, 0x10) & !3) as u16;

    // virtio_pci_modern probe, then virtio_scsi's probe.
    m.outb(base + 20, 0);
    m.outb(base + 20, STATUS_ACKNOWLEDGE);
    m.outb(base + 20, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    m.outl(base, 0);
    assert_eq!(m.inl(base + 4), 0, "no feature bits below 32");
    m.outl(base, 1);
    assert_eq!(m.inl(base + 4), (VIRTIO_F_VERSION_1 >> 32) as u32);
    m.outl(base + 8, 1);
    m.outl(base + 12, 1);
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
    );
    assert_ne!(m.inb(base + 20) & STATUS_FEATURES_OK, 0);
    assert_eq!(m.inw(base + 18), 3, "control, event, request");

    let cfg = base + 0x300;
    assert_eq!(m.inl(cfg), 1, "num_queues: request queues");
    assert_eq!(m.inl(cfg + 4), 17, "seg_max");
    assert_eq!(m.inl(cfg + 8), 2048, "max_sectors");
    assert_eq!(m.inl(cfg + 12), 1, "cmd_per_lun");
    assert_eq!(m.inl(cfg + 16), 0, "event_info_size");
    assert_eq!(m.inl(cfg + 20), 96, "sense_size");
    assert_eq!(m.inl(cfg + 24), 32, "cdb_size");
    assert_eq!(m.inw(cfg + 28), 0, "max_channel");
    assert_eq!(m.inw(cfg + 30), 1, "max_target");
    assert_eq!(m.inl(cfg + 32), 1, "max_lun");
    // Linux writes the sizes it wants; they stay.
    m.outl(cfg + 20, 96);
    m.outl(cfg + 24, 32);
    m.outl(cfg + 24, 16);
    assert_eq!(m.inl(cfg + 24), 32);
    // Wrong widths and unknown registers read as ones.
    assert_eq!(m.inw(cfg), 0xffff);
    assert_eq!(m.inl(cfg + 30), u32::MAX);
    assert_eq!(m.inl(cfg + 36), u32::MAX);

    let mut q = Vec::new();
    for i in 0..3u16 {
        let at = 0x10000 + u64::from(i) * 0x4000;
        let gq = GuestQueue::new(128, at, at + 0x800, at + 0x1000);
        m.outw(base + 22, i);
        assert_eq!(m.inw(base + 24), 128);
        for (reg, addr) in [(32u16, gq.desc), (40, gq.avail), (48, gq.used)] {
            m.outl(base + reg, addr as u32);
            m.outl(base + reg + 4, 0);
        }
        m.outw(base + 28, 1);
        q.push(gq);
    }
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    Cd {
        m,
        mem,
        base,
        q,
        lines,
        irq,
    }
}

impl Cd {
    /// Posts a chain of (addr, len, flags) descriptors, numbered from 0, on
    /// queue `qi`, kicks it, and returns the used element.
    fn chain(&mut self, qi: u16, descs: &[(u64, u32, u16)]) -> Option<(u32, u32)> {
        let mem = self.mem.clone();
        let q = &mut self.q[usize::from(qi)];
        for (i, &(addr, len, flags)) in descs.iter().enumerate() {
            q.set_desc(&mem, i as u16, addr, len, flags, i as u16 + 1);
        }
        q.push(&mem, 0);
        self.m.outw(self.base + 0x100, qi);
        self.q[usize::from(qi)].pop_used(&mem)
    }

    /// Sends `cdb` to `lun` with `data_in` bytes of data-in buffer and
    /// returns the response, the used length and the data.
    fn cmd_lun(&mut self, lun: [u8; 8], cdb: &[u8], data_in: u32) -> Reply {
        let mut req = [0u8; 51];
        req[..8].copy_from_slice(&lun);
        req[8..16].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        req[19..19 + cdb.len()].copy_from_slice(cdb);
        self.mem.write(REQ, &req).unwrap();
        self.mem.fill(RESP, 108, 0xee).unwrap();
        self.mem.fill(DATA, data_in as usize, 0xee).unwrap();
        let mut descs = vec![(REQ, 51, F_NEXT), (RESP, 108, F_WRITE)];
        if data_in > 0 {
            descs[1].2 |= F_NEXT;
            descs.push((DATA, data_in, F_WRITE));
        }
        let (id, used) = self.chain(2, &descs).expect("request completed");
        assert_eq!(id, 0);
        let raw: [u8; 108] = self.mem.read_array(RESP).unwrap();
        let mut data = vec![0u8; data_in as usize];
        self.mem.read(DATA, &mut data).unwrap();
        Reply {
            resp: ResponseHeader::parse(&raw),
            used,
            data,
        }
    }

    fn cmd(&mut self, cdb: &[u8], data_in: u32) -> Reply {
        self.cmd_lun(LUN0, cdb, data_in)
    }

    /// READ(10) of `blocks` blocks at `lba`; the data must arrive whole.
    fn read10(&mut self, lba: u32, blocks: u16) -> Vec<u8> {
        let len = u32::from(blocks) * 2048;
        let mut cdb = [0u8; 10];
        cdb[0] = 0x28;
        cdb[2..6].copy_from_slice(&lba.to_be_bytes());
        cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
        let r = self.cmd(&cdb, len);
        r.good();
        assert_eq!((r.resp.residual, r.used), (0, 108 + len));
        r.data
    }
}

fn read10_cdb(lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = 0x28;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

fn read16_cdb(lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x88;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

// ---- the ISO ----

struct Iso {
    dir: PathBuf,
    iso: PathBuf,
    content: Vec<u8>,
}

impl Drop for Iso {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds an ISO9660 image holding HELLO.BIN (300000 bytes of a known
/// pattern) and some padding files.
fn make_iso(tag: &str) -> Iso {
    let dir = std::env::temp_dir().join(format!("vioscsi-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let mut x = 0x2545_f491u32;
    let content: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(tree.join("first.txt"), b"before the file\n").unwrap();
    std::fs::write(tree.join("hello.bin"), &content).unwrap();
    std::fs::write(tree.join("zlast.txt"), vec![b'z'; 5000]).unwrap();
    let iso = dir.join("cd.iso");
    let out = Command::new("genisoimage")
        .args(["-quiet", "-V", "VMDTEST", "-o"])
        .arg(&iso)
        .arg(&tree)
        .output()
        .expect("genisoimage (package genisoimage, see .ci/install-deps)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Iso { dir, iso, content }
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

fn open(path: &Path) -> Box<dyn BlockBackend> {
    let format = ImageFormat::detect(path).unwrap();
    Box::new(DiskBackend::new(open_image(path, format, true).unwrap()))
}

/// Probes the drive as Linux's SCSI scan and sr do, then finds HELLO.BIN
/// through the ISO9660 directory as a guest file system would, reads it,
/// and returns its bytes.
fn linux_sr_reads_hello(cd: &mut Cd, image_len: u64) -> Vec<u8> {
    let blocks = image_len / 2048;
    // scsi_scan: INQUIRY 36 bytes at LUN 0, then the LUNs that are not there.
    let r = cd.cmd(&[0x12, 0, 0, 0, 36, 0], 36);
    r.good();
    assert_eq!((r.resp.residual, r.used), (0, 108 + 36));
    assert_eq!(&r.data[..5], &[0x05, 0x80, 0x00, 0x02, 31]);
    assert_eq!(&r.data[8..36], b"OpenBSD VMM CD-ROM      001 ");
    // (Flat LUN 256, 01 00 41 00, is still the CD, as for vmd: its low
    // byte is 0; see the SeaBIOS test.)
    for lun in [[1, 0, 0x40, 1, 0, 0, 0, 0], [1, 1, 0x40, 0, 0, 0, 0, 0]] {
        let r = cd.cmd_lun(lun, &[0x12, 0, 0, 0, 36, 0], 36);
        assert_eq!(r.resp.response, VIRTIO_SCSI_S_BAD_TARGET);
        assert_eq!((r.resp.residual, r.used), (36, 108));
        assert!(
            r.data.iter().all(|&b| b == 0xee),
            "no data for a bad target"
        );
    }
    // sr_probe: TEST UNIT READY, READ CAPACITY(10), the capabilities page.
    cd.cmd(&[0x00, 0, 0, 0, 0, 0], 0).good();
    let r = cd.cmd(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    r.good();
    assert_eq!(r.data[..4], ((blocks - 1) as u32).to_be_bytes());
    assert_eq!(r.data[4..8], 2048u32.to_be_bytes());
    let r = cd.cmd(&[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 128, 0], 128);
    r.good();
    assert_eq!((r.resp.residual, r.used), (128 - 40, 108 + 40));
    assert_eq!((r.data[8], r.data[9]), (0x2a, 30));
    // cdrom open: GET EVENT STATUS (polled), READ TOC header and entries.
    let r = cd.cmd(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    r.good();
    assert_eq!(&r.data, &[0, 6, 2, 4, 0, 2, 0, 0]);
    let r = cd.cmd(&[0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0], 12);
    r.good();
    assert_eq!(&r.data[..8], &[0, 18, 1, 1, 0, 0x14, 1, 0]);
    let r = cd.cmd(&[0x43, 2, 0, 0, 0, 0, 0xaa, 0, 12, 0], 12);
    r.good();
    let lead_out = blocks + 150;
    assert_eq!(
        &r.data,
        &[
            0,
            10,
            1,
            1,
            0,
            0x14,
            0xaa,
            0,
            0,
            (lead_out / 4500) as u8,
            (lead_out / 75 % 60) as u8,
            (lead_out % 75) as u8
        ]
    );
    // READ CAPACITY(16) agrees.
    let r = cd.cmd(&[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], 32);
    r.good();
    assert_eq!(r.data[..8], (blocks - 1).to_be_bytes());

    // The file system: the primary volume descriptor at block 16.
    let pvd = cd.read10(16, 1);
    assert_eq!(&pvd[..6], b"\x01CD001");
    assert_eq!(&pvd[40..47], b"VMDTEST");
    let root_lba = u32::from_le_bytes(pvd[156 + 2..156 + 6].try_into().unwrap());
    let root_len = u32::from_le_bytes(pvd[156 + 10..156 + 14].try_into().unwrap());
    let dir = cd.read10(root_lba, root_len.div_ceil(2048) as u16);
    let mut at = 0;
    let (lba, size) = loop {
        assert!(at < dir.len(), "HELLO.BIN not in the root directory");
        let len = usize::from(dir[at]);
        if len == 0 {
            at = (at / 2048 + 1) * 2048;
            continue;
        }
        let rec = &dir[at..at + len];
        let name = &rec[33..33 + usize::from(rec[32])];
        if name.starts_with(b"HELLO.BIN") {
            break (
                u32::from_le_bytes(rec[2..6].try_into().unwrap()),
                u32::from_le_bytes(rec[10..14].try_into().unwrap()),
            );
        }
        at += len;
    };
    assert_eq!(size, 300_000);
    // One READ(10) for all of it: 147 blocks, crossing 1 MiB in guest memory.
    let mut data = cd.read10(lba, size.div_ceil(2048) as u16);
    // READ(12) and READ(16) of its last block agree with READ(10).
    let last = lba + size / 2048;
    let mut c12 = [0u8; 12];
    c12[0] = 0xa8;
    c12[2..6].copy_from_slice(&last.to_be_bytes());
    c12[9] = 1;
    let r12 = cd.cmd(&c12, 2048);
    r12.good();
    let r16 = cd.cmd(&read16_cdb(u64::from(last), 1), 2048);
    r16.good();
    let off = (size / 2048 * 2048) as usize;
    assert_eq!(r12.data, data[off..off + 2048]);
    assert_eq!(r16.data, r12.data);
    data.truncate(size as usize);
    // The interrupt is up until the driver reads the ISR.
    assert!(cd.lines.get(cd.irq).high());
    assert_eq!(cd.m.inb(cd.base + 0x200), 1);
    assert!(!cd.lines.get(cd.irq).high());
    data
}

#[test]
fn linux_reads_a_file_from_a_genisoimage_iso() {
    let iso = make_iso("raw");
    let len = std::fs::metadata(&iso.iso).unwrap().len();
    let mut cd = bring_up(open(&iso.iso));
    let data = linux_sr_reads_hello(&mut cd, len);
    assert!(data == iso.content, "file read through vioscsi differs");
    let out = iso.dir.join("out.bin");
    std::fs::write(&out, &data).unwrap();
    assert_eq!(sha256(&out), sha256(&iso.dir.join("tree/hello.bin")));
}

#[test]
fn the_same_iso_as_qcow2_reads_the_same() {
    let iso = make_iso("qcow2");
    let len = std::fs::metadata(&iso.iso).unwrap().len();
    let qcow2 = iso.dir.join("cd.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&iso.iso)
        .arg(&qcow2)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(ImageFormat::detect(&qcow2).unwrap(), ImageFormat::Qcow2);
    let mut cd = bring_up(open(&qcow2));
    let data = linux_sr_reads_hello(&mut cd, len);
    assert!(data == iso.content);
    // Block for block the same as the raw image.
    let raw = std::fs::read(&iso.iso).unwrap();
    let all = cd.read10(0, (len / 2048) as u16);
    assert!(all == raw[..all.len()]);
}

#[test]
fn seabios_boot_probe_and_the_other_cd_commands() {
    let iso = make_iso("seabios");
    let len = std::fs::metadata(&iso.iso).unwrap().len();
    let mut cd = bring_up(open(&iso.iso));
    // SeaBIOS: REPORT LUNS per target, then TEST UNIT READY, INQUIRY,
    // READ CAPACITY, and reads of the boot record volume descriptor.
    // vmd's answer is the LUN asked, which SeaBIOS reads as LUN
    // 0x40000100 and then addresses as 01 00 41 00: the CD again.
    let r = cd.cmd(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    r.good();
    assert_eq!(
        &r.data,
        &[0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0x40, 0, 0, 0, 0, 0]
    );
    let r = cd.cmd_lun([1, 0, 0x41, 0, 0, 0, 0, 0], &[0x00, 0, 0, 0, 0, 0], 0);
    r.good();
    let r = cd.cmd_lun(
        [1, 1, 0x40, 0, 0, 0, 0, 0],
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0],
        16,
    );
    assert_eq!(r.resp.response, VIRTIO_SCSI_S_BAD_TARGET);
    cd.cmd(&[0x00, 0, 0, 0, 0, 0], 0).good();
    cd.cmd(&[0x12, 0, 0, 0, 36, 0], 36).good();
    let r = cd.cmd(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(r.good().data[..4], ((len / 2048 - 1) as u32).to_be_bytes());
    let raw = std::fs::read(&iso.iso).unwrap();
    assert!(cd.read10(17, 1) == raw[17 * 2048..18 * 2048]);

    // The rest of what vioscsi answers.
    let r = cd.cmd(&[0x1a, 0, 0x01, 0, 64, 0], 64);
    assert_eq!(&r.good().data[..8], &[15, 0x70, 0, 0, 0x01, 0x0a, 0, 5]);
    assert_eq!(r.resp.residual, 64 - 16);
    let r = cd.cmd(&[0x5a, 0, 0x01, 0, 0, 0, 0, 0, 64, 0], 64);
    assert_eq!(
        &r.good().data[..12],
        &[0, 18, 0x70, 0, 0, 0, 0, 0, 1, 10, 0, 5]
    );
    let r = cd.cmd(&[0x1a, 0, 0x2a, 0, 255, 0], 255);
    assert_eq!(&r.good().data[..7], &[35, 0x70, 0, 0, 0x2a, 30, 0x08]);
    assert_eq!(&r.data[14..16], &[0, 2], "volume levels");
    let r = cd.cmd(&[0x46, 0, 0, 0, 0, 0, 0, 0, 64, 0], 64);
    r.good();
    assert_eq!(&r.data[..8], &[0, 0, 0, 52, 0, 0, 0xff, 0xff]);
    assert_eq!(r.used, 108 + 56);
    let r = cd.cmd(&[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8);
    assert_eq!(r.good().data, vec![0; 8]);
    assert_eq!(
        cd.cmd(&[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34).sense(),
        (5, 0x24, 0)
    );
    // Session information: one session whose first track starts at 0.
    let r = cd.cmd(&[0x43, 0, 1, 0, 0, 0, 0, 0, 12, 0], 12);
    assert_eq!(r.good().data, vec![0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    // INQUIRY's supported VPD pages.
    let r = cd.cmd(&[0x12, 1, 0, 0, 255, 0], 255);
    assert_eq!(r.good().data[..5], [5, 0, 0, 1, 0]);
    assert_eq!(r.used, 108 + 5);
    // PREVENT ALLOW sets the lock GESN reports; START STOP is accepted.
    cd.cmd(&[0x1e, 0, 0, 0, 1, 0], 0).good();
    let r = cd.cmd(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    assert_eq!(r.good().data[5], 1, "active while locked");
    cd.cmd(&[0x1e, 0, 0, 0, 1, 0], 0).good();
    let r = cd.cmd(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    assert_eq!(r.good().data[5], 1, "prevent twice is still locked");
    cd.cmd(&[0x1e, 0, 0, 0, 0, 0], 0).good();
    let r = cd.cmd(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    assert_eq!(r.good().data[5], 2, "idle when unlocked");
    cd.cmd(&[0x1b, 0, 0, 0, 1, 0], 0).good();
    // REQUEST SENSE: nothing pending.
    let r = cd.cmd(&[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(&r.good().data[..3], &[0x70, 0, 0]);
    // Allocation lengths cut replies; the residual says so.
    let r = cd.cmd(&[0x12, 0, 0, 0, 5, 0], 36);
    assert_eq!((r.good().used, r.resp.residual), (108 + 5, 31));
    // A reply larger than the buffer is cut to the buffer.
    let r = cd.cmd(&[0x12, 0, 0, 0, 36, 0], 8);
    assert_eq!((r.good().used, r.resp.residual), (108 + 8, 0));
    // READ(6) and a zero-length READ(10).
    let r = cd.cmd(&[0x08, 0, 0, 16, 1, 0], 2048);
    assert!(r.good().data == raw[16 * 2048..17 * 2048]);
    let r = cd.cmd(&read10_cdb(5, 0), 2048);
    assert_eq!((r.good().used, r.resp.residual), (108, 2048));
}

// ---- hostile guests ----

/// A medium of `size` bytes of zeros that never allocates it.
struct Sparse(u64);

impl BlockBackend for Sparse {
    fn size(&self) -> u64 {
        self.0
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset + buf.len() as u64 > self.0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(0);
        Ok(())
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::PermissionDenied.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A medium whose reads fail.
struct Broken;

impl BlockBackend for Broken {
    fn size(&self) -> u64 {
        100 * 2048
    }
    fn read_at(&mut self, _: &mut [u8], _: u64) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::PermissionDenied.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const ILLEGAL: u8 = 5;

#[test]
fn hostile_cdbs_luns_and_ranges_get_sense() {
    let mut cd = bring_up(Box::new(Sparse(100 * 2048)));
    // Unsupported opcodes, writes included: INVALID COMMAND OPERATION CODE.
    for op in [0x0a, 0x2a, 0x35, 0xbe, 0xff, 0x15] {
        let r = cd.cmd(&[op, 0, 0, 0, 0, 0, 0, 0, 0, 0], 512);
        assert_eq!(r.sense(), (ILLEGAL, 0x20, 0));
        assert_eq!((r.used, r.resp.residual), (108, 512));
    }
    // Invalid fields, with the field pointer.
    let r = cd.cmd(&[0x1a, 0, 0x3f, 0, 255, 0], 255);
    assert_eq!(r.sense(), (ILLEGAL, 0x24, 0));
    assert_eq!(&r.resp.sense[15..18], &[0xc0, 0, 2]);
    assert_eq!(
        cd.cmd(&[0x1a, 0, 0xaa, 0, 255, 0], 255).sense(),
        (ILLEGAL, 0x24, 0)
    );
    assert_eq!(
        cd.cmd(&[0x12, 1, 0x80, 0, 255, 0], 255).sense(),
        (ILLEGAL, 0x24, 0)
    );
    assert_eq!(
        cd.cmd(&[0x4a, 0, 0, 0, 0, 0, 0, 0, 8, 0], 8).sense(),
        (ILLEGAL, 0x24, 0)
    );
    assert_eq!(
        cd.cmd(&[0x43, 0, 0, 0, 0, 0, 5, 0, 12, 0], 12).sense(),
        (ILLEGAL, 0x24, 0)
    );
    assert_eq!(
        cd.cmd(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8).sense(),
        (ILLEGAL, 0x24, 0)
    );
    assert_eq!(cd.cmd(&[0x9e, 0x11, 0], 32).sense(), (ILLEGAL, 0x24, 0));
    // Out of range: past the end, straddling it, wrapping the LBA.
    for cdb in [
        read16_cdb(100, 1),
        read16_cdb(99, 2),
        read16_cdb(u64::MAX, 1),
        read16_cdb(u64::MAX - 1, u32::MAX),
        read16_cdb(0, u32::MAX),
    ] {
        let r = cd.cmd(&cdb, 4096);
        assert_eq!(r.sense(), (ILLEGAL, 0x21, 0), "{cdb:?}");
        assert!(r.data.iter().all(|&b| b == 0xee), "nothing was read");
    }
    let r = cd.cmd(&read10_cdb(0xffff_ffff, 0xffff), 4096);
    assert_eq!(r.sense(), (ILLEGAL, 0x21, 0));
    // The last block is fine.
    cd.cmd(&read16_cdb(99, 1), 2048).good();
    // A transfer longer than the buffers: refused, nothing written.
    let r = cd.cmd(&read10_cdb(0, 2), 2048);
    assert_eq!(r.sense(), (ILLEGAL, 0x24, 0));
    assert!(r.data.iter().all(|&b| b == 0xee));
    assert_eq!(cd.cmd(&read10_cdb(0, 1), 0).sense(), (ILLEGAL, 0x24, 0));
    // Bad LUN fields.
    for lun in [
        [0, 0, 0x40, 0, 0, 0, 0, 0],
        [1, 7, 0x40, 0, 0, 0, 0, 0],
        [1, 0, 0x40, 9, 0, 0, 0, 0],
        [1, 0, 0xc0, 0, 0, 0, 0, 0],
        [0xff; 8],
    ] {
        let r = cd.cmd_lun(lun, &read10_cdb(0, 1), 2048);
        assert_eq!(r.resp.response, VIRTIO_SCSI_S_BAD_TARGET, "{lun:?}");
        assert_eq!(r.used, 108);
    }
}

#[test]
fn huge_transfers_are_refused_without_allocating() {
    // A 16 TiB medium: READ(16) of 0xffffffff blocks is in range but far
    // beyond the 64 MiB vioscsi allows.
    let mut cd = bring_up(Box::new(Sparse(16 << 40)));
    let r = cd.cmd(&read16_cdb(0, u32::MAX), 4096);
    assert_eq!(r.sense(), (ILLEGAL, 0x24, 0));
    let r = cd.cmd(&read16_cdb(0, (64 << 20) / 2048 + 1), 4096);
    assert_eq!(r.sense(), (ILLEGAL, 0x24, 0));
    // READ CAPACITY(10) says "use READ CAPACITY(16)", which has the size.
    let r = cd.cmd(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(r.good().data[..4], [0xff; 4]);
    let r = cd.cmd(&[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], 32);
    assert_eq!(r.good().data[..8], ((16u64 << 40) / 2048 - 1).to_be_bytes());
    // A read at the far end works.
    cd.cmd(&read16_cdb((16 << 40) / 2048 - 1, 1), 2048).good();
}

#[test]
fn empty_and_broken_media() {
    let mut cd = bring_up(Box::new(Sparse(2047)));
    for cdb in [
        vec![0x00, 0, 0, 0, 0, 0],
        vec![0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        read10_cdb(0, 1).to_vec(),
        vec![0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0],
    ] {
        assert_eq!(cd.cmd(&cdb, 2048).sense(), (2, 0x3a, 0), "{cdb:?}");
    }
    let r = cd.cmd(&[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((r.good().data[2], r.data[12]), (2, 0x3a));
    cd.cmd(&[0x12, 0, 0, 0, 36, 0], 36).good();

    let mut cd = bring_up(Box::new(Broken));
    assert_eq!(cd.cmd(&read10_cdb(3, 1), 2048).sense(), (3, 0x11, 0));
    cd.cmd(&[0x00, 0, 0, 0, 0, 0], 0).good();
}

#[test]
fn malformed_chains_fail_alone() {
    let mut cd = bring_up(Box::new(Sparse(100 * 2048)));
    let mem = cd.mem.clone();
    let mut req = [0u8; 51];
    req[..8].copy_from_slice(&LUN0);
    req[19..29].copy_from_slice(&read10_cdb(0, 1));
    mem.write(REQ, &req).unwrap();
    // A descriptor loop: REQ -> RESP -> REQ ...
    {
        let q = &mut cd.q[2];
        q.set_desc(&mem, 0, REQ, 51, F_NEXT, 1);
        q.set_desc(&mem, 1, RESP, 108, F_NEXT | F_WRITE, 0);
        q.push(&mem, 0);
    }
    cd.m.outw(cd.base + 0x100, 2);
    assert_eq!(cd.q[2].pop_used(&mem), Some((0, 0)));
    // A buffer of u32::MAX bytes is not in guest memory.
    assert_eq!(
        cd.chain(
            2,
            &[
                (REQ, 51, F_NEXT),
                (RESP, 108, F_NEXT | F_WRITE),
                (DATA, u32::MAX, F_WRITE)
            ]
        ),
        Some((0, 0))
    );
    // No room for the response header: nothing is written.
    mem.fill(RESP, 108, 0xee).unwrap();
    assert_eq!(
        cd.chain(2, &[(REQ, 51, F_NEXT), (RESP, 107, F_WRITE)]),
        Some((0, 0))
    );
    assert_eq!(mem.read_u8(RESP).unwrap(), 0xee);
    assert_eq!(cd.chain(2, &[(REQ, 51, 0)]), Some((0, 0)));
    // A short request header: FAILURE.
    assert_eq!(
        cd.chain(2, &[(REQ, 50, F_NEXT), (RESP, 108, F_WRITE)]),
        Some((0, 108))
    );
    let r = ResponseHeader::parse(&mem.read_array(RESP).unwrap());
    assert_eq!(r.response, VIRTIO_SCSI_S_FAILURE);
    // Header and response split over many small descriptors still work,
    // and so does a data-in buffer split the same way.
    let mut descs: Vec<(u64, u32, u16)> = (0..51).map(|i| (REQ + i, 1, F_NEXT)).collect();
    descs.extend((0..9).map(|i| (RESP + 12 * i, 12, F_NEXT | F_WRITE)));
    descs.extend((0..16).map(|i| (OTHER + 256 * i, 128, F_NEXT | F_WRITE)));
    descs.last_mut().unwrap().2 = F_WRITE;
    assert_eq!(cd.chain(2, &descs), Some((0, 108 + 2048)));
    let r = ResponseHeader::parse(&mem.read_array(RESP).unwrap());
    assert_eq!((r.response, r.status, r.residual), (0, 0, 0));
    // Found with the fuzzer's harness: the writable part is one byte
    // stream, so a response buffer shorter than 108 bytes runs on into the
    // data buffer, which then holds less than one block: refused.
    assert_eq!(
        cd.chain(
            2,
            &[
                (REQ, 51, F_NEXT),
                (RESP, 100, F_NEXT | F_WRITE),
                (DATA, 2048, F_WRITE)
            ]
        ),
        Some((0, 108))
    );
    let mut hdr = [0u8; 108];
    mem.read(RESP, &mut hdr[..100]).unwrap();
    mem.read(DATA, &mut hdr[100..]).unwrap();
    let r = ResponseHeader::parse(&hdr);
    assert_eq!((r.status, r.sense[12], r.residual), (2, 0x24, 2040));
    // Data-out buffers are only read: a READ with data-out but no data-in
    // is too short, and the readable buffer keeps its bytes.
    mem.fill(OTHER, 2048, 0x77).unwrap();
    assert_eq!(
        cd.chain(
            2,
            &[
                (REQ, 51, F_NEXT),
                (OTHER, 2048, F_NEXT),
                (RESP, 108, F_WRITE)
            ]
        ),
        Some((0, 108))
    );
    let r = ResponseHeader::parse(&mem.read_array(RESP).unwrap());
    assert_eq!((r.status, r.sense[2], r.sense[12]), (2, ILLEGAL, 0x24));
    let mut back = vec![0u8; 2048];
    mem.read(OTHER, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0x77));
    // Queue indices past the three queues are ignored.
    cd.m.outw(cd.base + 0x100, 3);
    cd.m.outw(cd.base + 0x100, 0xffff);
    // And the device still works.
    let r = cd.cmd(&read10_cdb(1, 1), 2048);
    r.good();
}

#[test]
fn control_queue_answers_task_management_and_event_queue_waits() {
    let mut cd = bring_up(Box::new(Sparse(100 * 2048)));
    let mem = cd.mem.clone();
    let tmf = |function: u32, lun: [u8; 8]| {
        let mut b = vec![0u8; 24];
        b[4..8].copy_from_slice(&function.to_le_bytes());
        b[8..16].copy_from_slice(&lun);
        b
    };
    let send = |cd: &mut Cd, req: &[u8], resp_len: u32| {
        mem.write(REQ, req).unwrap();
        mem.fill(RESP, 8, 0xee).unwrap();
        let used = cd.chain(
            0,
            &[(REQ, req.len() as u32, F_NEXT), (RESP, resp_len, F_WRITE)],
        );
        (used.unwrap().1, mem.read_array::<5>(RESP).unwrap())
    };
    // Lock the medium; a LUN reset unlocks it.
    cd.cmd(&[0x1e, 0, 0, 0, 1, 0], 0).good();
    let (used, r) = send(&mut cd, &tmf(5, LUN0), 1);
    assert_eq!((used, r[0]), (1, VIRTIO_SCSI_S_FUNCTION_COMPLETE));
    let g = cd.cmd(&[0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    assert_eq!(g.good().data[5], 2);
    for f in [0, 1, 3, 4, 6, 7] {
        assert_eq!(send(&mut cd, &tmf(f, LUN0), 1).1[0], 0);
    }
    assert_eq!(
        send(&mut cd, &tmf(2, LUN0), 1).1[0],
        VIRTIO_SCSI_S_FUNCTION_REJECTED
    );
    assert_eq!(
        send(&mut cd, &tmf(99, LUN0), 1).1[0],
        VIRTIO_SCSI_S_FUNCTION_REJECTED
    );
    assert_eq!(
        send(&mut cd, &tmf(5, [1, 0, 0x40, 1, 0, 0, 0, 0]), 1).1[0],
        VIRTIO_SCSI_S_INCORRECT_LUN
    );
    assert_eq!(
        send(&mut cd, &tmf(5, [1, 3, 0x40, 0, 0, 0, 0, 0]), 1).1[0],
        VIRTIO_SCSI_S_BAD_TARGET
    );
    // Asynchronous notification query: no events, OK.
    let mut an = vec![1u8, 0, 0, 0];
    an.extend_from_slice(&LUN0);
    an.extend_from_slice(&0x10u32.to_le_bytes());
    assert_eq!(send(&mut cd, &an, 5), (5, [0, 0, 0, 0, 0]));
    // Unknown types, short requests and short responses: no answer.
    assert_eq!(send(&mut cd, &[7, 0, 0, 0], 1).0, 0);
    assert_eq!(send(&mut cd, &tmf(5, LUN0)[..20], 1).0, 0);
    assert_eq!(send(&mut cd, &an, 4).0, 0);
    assert_eq!(send(&mut cd, &tmf(5, LUN0), 0).0, 0);

    // The event queue: buffers are kept for events that never come.
    mem.write_u16(cd.q[1].avail + 4, 0).unwrap();
    cd.q[1].set_desc(&mem, 0, OTHER, 16, F_WRITE, 0);
    cd.q[1].push(&mem, 0);
    cd.m.outw(cd.base + 0x100, 1);
    assert_eq!(cd.q[1].pop_used(&mem), None);
    cd.cmd(&[0x00, 0, 0, 0, 0, 0], 0).good();
}
