//! A guest-side driver for vionet, used by the vionet device-process test
//! and benchmark: it brings the device up through its registers (over the
//! device channel) and moves frames through the two split virtqueues. And
//! the tap and namespace plumbing they share.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::process::Command;

use devices::bus::AccessSize;
use devices::memory::GuestMemory;
use devices::pci::PciBarHandler;
use vm::device_proc::RemoteRegistersHandle;

pub const MAC: [u8; 6] = [0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x34];
pub const QSIZE: u16 = 256;
pub const HDR: usize = 12;
pub const RX_BUFS: u16 = 64;
pub const RX_BUF: u64 = 0x20_0000;
pub const TX_BUF: u64 = 0x30_0000;
pub const BUF_LEN: u32 = 2048;

pub const IFF_TAP: libc::c_short = 0x0002;
pub const IFF_NO_PI: libc::c_short = 0x1000;
pub const TUNSETIFF: libc::c_ulong = 0x400454ca;

pub fn open_tap(name: &str) -> File {
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr[16..18].copy_from_slice(&(IFF_TAP | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq that fits `ifr`.
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) };
    assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
    tun
}

pub fn run(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

pub struct Netns(pub String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// One split virtqueue in guest memory, driven as a guest driver does.
pub struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    avail_idx: u16,
    used_seen: u16,
}

impl Ring {
    pub fn new(base: u64) -> Ring {
        Ring {
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    pub fn post(&mut self, mem: &GuestMemory, i: u16, addr: u64, len: u32, writable: bool) {
        let d = self.desc + u64::from(i) * 16;
        mem.write_u64(d, addr).unwrap();
        mem.write_u32(d + 8, len).unwrap();
        mem.write_u16(d + 12, if writable { 2 } else { 0 }).unwrap();
        mem.write_u16(d + 14, 0).unwrap();
        mem.write_u16(self.avail + 4 + 2 * u64::from(self.avail_idx % QSIZE), i)
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.avail_idx).unwrap();
    }

    pub fn take_used(&mut self, mem: &GuestMemory) -> Option<(u16, u32)> {
        let idx = mem.read_u16(self.used + 2).unwrap();
        if idx == self.used_seen {
            return None;
        }
        let e = self.used + 4 + 8 * u64::from(self.used_seen % QSIZE);
        self.used_seen = self.used_seen.wrapping_add(1);
        Some((
            mem.read_u32(e).unwrap() as u16,
            mem.read_u32(e + 4).unwrap(),
        ))
    }
}

/// The guest side: the device's registers and its two queues.
pub struct Guest {
    pub regs: RemoteRegistersHandle,
    pub mem: GuestMemory,
    pub rx: Ring,
    pub tx: Ring,
    pub tx_next: u16,
}

impl Guest {
    pub fn w(&self, off: u16, size: AccessSize, v: u32) {
        self.regs.lock().unwrap().bar_write(0, off, size, v);
    }

    pub fn r(&self, off: u16, size: AccessSize) -> u32 {
        self.regs.lock().unwrap().bar_read(0, off, size)
    }

    pub fn bring_up(&mut self) {
        use AccessSize::*;
        self.w(0x14, Byte, 0);
        self.w(0x14, Byte, 1 | 2);
        self.w(0x00, Dword, 0);
        let low = self.r(0x04, Dword);
        assert_ne!(low & (1 << 5), 0, "no VIRTIO_NET_F_MAC");
        self.w(0x08, Dword, 0);
        self.w(0x0c, Dword, 1 << 5);
        self.w(0x08, Dword, 1);
        self.w(0x0c, Dword, 1); // VIRTIO_F_VERSION_1
        self.w(0x14, Byte, 1 | 2 | 8);
        assert_ne!(self.r(0x14, Byte) & 8, 0, "FEATURES_OK refused");
        for (q, ring) in [(0u32, &self.rx), (1, &self.tx)] {
            self.w(0x16, Word, q);
            self.w(0x18, Word, u32::from(QSIZE));
            for (off, addr) in [(0x20, ring.desc), (0x28, ring.avail), (0x30, ring.used)] {
                self.w(off, Dword, addr as u32);
                self.w(off + 4, Dword, (addr >> 32) as u32);
            }
            self.w(0x1c, Word, 1);
        }
        self.w(0x14, Byte, 1 | 2 | 8 | 4);
        // The MAC in the device configuration.
        let mac: Vec<u8> = (0..6).map(|i| self.r(0x300 + i, Byte) as u8).collect();
        assert_eq!(mac, MAC);
        for i in 0..RX_BUFS {
            let addr = RX_BUF + u64::from(i) * u64::from(BUF_LEN);
            self.rx.post(&self.mem, i, addr, BUF_LEN, true);
        }
        self.w(0x100, Word, 0);
    }

    pub fn send(&mut self, frame: &[u8]) {
        // At most 32 frames in flight: their buffers are reused after that.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self
            .tx
            .avail_idx
            .wrapping_sub(self.mem.read_u16(self.tx.used + 2).unwrap())
            >= 32
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the device stopped taking frames"
            );
            std::thread::yield_now();
        }
        let i = self.tx_next % 32;
        self.tx_next = self.tx_next.wrapping_add(1);
        let addr = TX_BUF + u64::from(i) * u64::from(BUF_LEN);
        self.mem.write(addr, &[0u8; HDR]).unwrap();
        self.mem.write(addr + HDR as u64, frame).unwrap();
        self.tx
            .post(&self.mem, i, addr, (HDR + frame.len()) as u32, false);
        self.w(0x100, AccessSize::Word, 1);
        while self.tx.take_used(&self.mem).is_some() {}
    }

    /// Frames the device delivered, with their RX buffers given back.
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((id, len)) = self.rx.take_used(&self.mem) {
            let addr = RX_BUF + u64::from(id) * u64::from(BUF_LEN);
            let mut buf = vec![0u8; (len as usize).saturating_sub(HDR)];
            self.mem.read(addr + HDR as u64, &mut buf).unwrap();
            out.push(buf);
            self.rx.post(&self.mem, id, addr, BUF_LEN, true);
        }
        if !out.is_empty() {
            self.w(0x100, AccessSize::Word, 0);
        }
        out
    }
}
