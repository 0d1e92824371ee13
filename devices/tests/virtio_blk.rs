//! virtio-blk driven like Linux's virtio_blk over the modern transport,
//! against an in-memory disk, and the malformed requests a hostile guest
//! can make.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::*;
use devices::memory::GuestMemory;
use devices::pci::PciBus;
use devices::virtio::blk::{
    Blk, BlockBackend, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
};
use devices::virtio::{attach, Layout, VIRTIO_F_VERSION_1};

#[derive(Clone)]
struct MemDisk(Arc<Mutex<Vec<u8>>>);

impl BlockBackend for MemDisk {
    fn size(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let d = self.0.lock().unwrap();
        let o = offset as usize;
        buf.copy_from_slice(
            d.get(o..o + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?,
        );
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut d = self.0.lock().unwrap();
        let o = offset as usize;
        d.get_mut(o..o + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?
            .copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const SECTORS: usize = 64;
const HDR: u64 = 0x40000;
const DATA: u64 = 0x50000;
const STATUS: u64 = 0x60000;

struct Setup {
    m: Machine,
    mem: GuestMemory,
    disk: MemDisk,
    q: GuestQueue,
    base: u16,
    lines: Lines,
}

fn setup() -> Setup {
    let disk = MemDisk(Arc::new(Mutex::new(vec![0u8; SECTORS * 512])));
    setup_with(Box::new(disk.clone()), disk)
}

/// Brings up a virtio-blk device over `backend`; `disk` is what the
/// in-memory tests inspect.
fn setup_with(backend: Box<dyn BlockBackend>, disk: MemDisk) -> Setup {
    let mem = memory();
    let lines = Lines::default();
    let mut pci = PciBus::new();
    let blk = Blk::new(backend);
    attach(&mut pci, blk, Layout::Modern, mem.clone(), |n| {
        lines.make(n)
    })
    .unwrap();
    let m = Machine::new(pci);
    let base = (m.cfg_read32(1, 0x10) & !3) as u16;
    let q = GuestQueue::new(128, 0x10000, 0x10800, 0x11000);
    // Linux virtio_pci_modern + virtio_blk probe.
    m.outb(base + 20, 0);
    m.outb(base + 20, 3);
    m.outl(base, 0);
    assert_eq!(m.inl(base + 4), VIRTIO_BLK_F_SEG_MAX as u32);
    m.outl(base, 1);
    assert_eq!(m.inl(base + 4), (VIRTIO_F_VERSION_1 >> 32) as u32);
    m.outl(base + 8, 0);
    m.outl(base + 12, VIRTIO_BLK_F_SEG_MAX as u32);
    m.outl(base + 8, 1);
    m.outl(base + 12, 1);
    m.outb(base + 20, 11);
    m.outw(base + 22, 0);
    assert_eq!(m.inw(base + 24), 128);
    for (reg, addr) in [(32u16, q.desc), (40, q.avail), (48, q.used)] {
        m.outl(base + reg, addr as u32);
        m.outl(base + reg + 4, 0);
    }
    m.outw(base + 28, 1);
    m.outb(base + 20, 15);
    Setup {
        m,
        mem,
        disk,
        q,
        base,
        lines,
    }
}

impl Setup {
    fn header(&self, kind: u32, sector: u64) {
        self.mem.write_u32(HDR, kind).unwrap();
        self.mem.write_u32(HDR + 4, 0).unwrap();
        self.mem.write_u64(HDR + 8, sector).unwrap();
        self.mem.write_u8(STATUS, 0xff).unwrap();
    }

    /// Sends header + data + status and returns (status byte, used len).
    fn request(&mut self, kind: u32, sector: u64, len: u32, data_writable: bool) -> (u8, u32) {
        self.header(kind, sector);
        let mem = self.mem.clone();
        self.q.set_desc(&mem, 0, HDR, 16, 1, 1);
        let mut next = 1;
        if len > 0 {
            self.q
                .set_desc(&mem, 1, DATA, len, 1 | if data_writable { 2 } else { 0 }, 2);
            next = 2;
        }
        self.q.set_desc(&mem, next, STATUS, 1, 2, 0);
        self.q.push(&mem, 0);
        self.m.outw(self.base + 0x100, 0);
        let (id, used) = self.q.pop_used(&mem).expect("request completed");
        assert_eq!(id, 0);
        (mem.read_u8(STATUS).unwrap(), used)
    }
}

#[test]
fn linux_virtio_blk_reads_config_writes_and_reads_sectors() {
    let mut s = setup();
    // Device config: capacity and seg_max as vmd gives them; geometry
    // reads (SeaBIOS) come back as ones, word reads are refused.
    let dev = s.base + 0x300;
    assert_eq!(s.m.inl(dev), SECTORS as u32);
    assert_eq!(s.m.inl(dev + 4), 0);
    assert_eq!(s.m.inl(dev + 12), 126);
    assert_eq!(s.m.inw(dev + 16), 0xffff);
    assert_eq!(s.m.inw(dev), 0xffff);
    s.m.outl(dev, 0);
    assert_eq!(s.m.inl(dev), SECTORS as u32, "config is read-only");

    let pattern: Vec<u8> = (0..1024u32).map(|i| (i * 7) as u8).collect();
    s.mem.write(DATA, &pattern).unwrap();
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, 3, 1024, false),
        (VIRTIO_BLK_S_OK, 1)
    );
    assert_eq!(&s.disk.0.lock().unwrap()[3 * 512..5 * 512], &pattern[..]);
    s.mem.fill(DATA, 1024, 0).unwrap();
    assert_eq!(
        s.request(VIRTIO_BLK_T_IN, 3, 1024, true),
        (VIRTIO_BLK_S_OK, 1025)
    );
    let mut back = vec![0u8; 1024];
    s.mem.read(DATA, &mut back).unwrap();
    assert_eq!(back, pattern);
    assert!(s.lines.get(3).high());
    assert_eq!(s.m.inb(s.base + 0x200), 1);
    // GET_ID and FLUSH are not offered, as in vmd.
    assert_eq!(
        s.request(VIRTIO_BLK_T_GET_ID, 0, 20, true).0,
        VIRTIO_BLK_S_UNSUPP
    );
    assert_eq!(
        s.request(VIRTIO_BLK_T_FLUSH, 0, 0, false).0,
        VIRTIO_BLK_S_UNSUPP
    );
    assert_eq!(s.request(77, 0, 0, false).0, VIRTIO_BLK_S_UNSUPP);
    // Found by the fuzzer: sector numbers of other requests are not offsets.
    assert_eq!(
        s.request(VIRTIO_BLK_T_GET_ID, u64::MAX, 0, false).0,
        VIRTIO_BLK_S_UNSUPP
    );
    // The last sector is reachable.
    assert_eq!(s.request(VIRTIO_BLK_T_IN, 63, 512, true).0, VIRTIO_BLK_S_OK);
}

#[test]
fn hostile_block_requests_fail_alone() {
    let mut s = setup();
    let before = s.disk.0.lock().unwrap().clone();
    // Beyond the end, wrapping sector numbers, unaligned lengths.
    assert_eq!(
        s.request(VIRTIO_BLK_T_IN, 64, 512, true).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, 63, 1024, false).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, u64::MAX, 512, false).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        s.request(VIRTIO_BLK_T_IN, 0, 100, true).0,
        VIRTIO_BLK_S_IOERR
    );
    // Data in the wrong direction.
    assert_eq!(
        s.request(VIRTIO_BLK_T_IN, 0, 512, false).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, 0, 512, true).0,
        VIRTIO_BLK_S_IOERR
    );
    assert_eq!(*s.disk.0.lock().unwrap(), before, "disk untouched");
    // A data buffer of u32::MAX bytes is not in guest memory: the chain
    // itself is refused and handed back empty.
    let mem = s.mem.clone();
    s.header(VIRTIO_BLK_T_IN, 0);
    s.q.set_desc(&mem, 0, HDR, 16, 1, 1);
    s.q.set_desc(&mem, 1, DATA, u32::MAX, 3, 2);
    s.q.set_desc(&mem, 2, STATUS, 1, 2, 0);
    s.q.push(&mem, 0);
    s.m.outw(s.base + 0x100, 0);
    assert_eq!(s.q.pop_used(&mem), Some((0, 0)));
    // No status byte at all (everything readable), and a short header.
    s.q.set_desc(&mem, 0, HDR, 16, 0, 0);
    s.q.push(&mem, 0);
    s.m.outw(s.base + 0x100, 0);
    assert_eq!(s.q.pop_used(&mem), Some((0, 0)));
    s.q.set_desc(&mem, 0, HDR, 8, 1, 1);
    s.q.set_desc(&mem, 1, STATUS, 1, 2, 0);
    s.q.push(&mem, 0);
    s.m.outw(s.base + 0x100, 0);
    assert_eq!(s.q.pop_used(&mem), Some((0, 1)));
    assert_eq!(mem.read_u8(STATUS).unwrap(), VIRTIO_BLK_S_IOERR);
    // And the disk still works.
    s.mem.write(DATA, &[0x5a; 512]).unwrap();
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, 10, 512, false).0,
        VIRTIO_BLK_S_OK
    );
    assert_eq!(s.disk.0.lock().unwrap()[10 * 512], 0x5a);
}

/// The same driver against a real qcow2 image: what the guest writes is
/// what qemu-img reads, and the image stays consistent.
#[test]
fn requests_land_in_a_qcow2_image_qemu_img_agrees_with() {
    use devices::disk::{create_qcow2, open_image, DiskBackend, ImageFormat};
    let dir = std::env::temp_dir().join(format!("blk-qcow2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("disk.qcow2");
    create_qcow2(&path, (SECTORS * 512) as u64, None).unwrap();
    let image = open_image(&path, ImageFormat::Qcow2, false).unwrap();
    let unused = MemDisk(Arc::new(Mutex::new(Vec::new())));
    let mut s = setup_with(Box::new(DiskBackend::new(image)), unused);
    let pattern: Vec<u8> = (0..2048u32).map(|i| (i * 13 + 1) as u8).collect();
    s.mem.write(DATA, &pattern).unwrap();
    assert_eq!(
        s.request(VIRTIO_BLK_T_OUT, 5, 2048, false).0,
        VIRTIO_BLK_S_OK
    );
    // vmd offers no flush: a write is on the image when it completes.
    s.mem.write(DATA, &[0u8; 2048]).unwrap();
    assert_eq!(s.request(VIRTIO_BLK_T_IN, 5, 2048, true).0, VIRTIO_BLK_S_OK);
    let mut back = vec![0u8; 2048];
    s.mem.read(DATA, &mut back).unwrap();
    assert_eq!(back, pattern);
    drop(s);

    let check = std::process::Command::new("qemu-img")
        .args(["check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let raw = dir.join("disk.raw");
    let conv = std::process::Command::new("qemu-img")
        .args([
            "convert",
            "-O",
            "raw",
            path.to_str().unwrap(),
            raw.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(conv.success());
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(&bytes[5 * 512..5 * 512 + 2048], &pattern[..]);
    let _ = std::fs::remove_dir_all(&dir);
}
