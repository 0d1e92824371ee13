//! vionet in its own process (vmd -X fd -t n), as the vm process runs it,
//! on a real tap in a network namespace this test creates. The test is
//! the guest: it brings the device up through its registers (over the
//! device channel), moves frames between the virtqueues and a second tap
//! where busybox udhcpc runs, and checks that
//! - udhcpc gets exactly the lease vmd gives a local interface, from the
//!   DHCP server inside the device process;
//! - the guest's frames reach the host tap, a spoofed source MAC does not
//!   (locked lladdr);
//! - frames the host sends out of the tap arrive in the guest's RX queue.
//!
//! Needs root, /dev/net/tun, ip and busybox; prints one SKIPPED line
//! otherwise. Nothing outside the namespace is touched.

#![cfg(target_os = "linux")]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::bus::AccessSize;
use devices::irq::{Irq, NoIrq};
use devices::memory::GuestMemory;
use devices::pci::PciBarHandler;
use vm::abi::vmop::{VMIFF_LOCAL, VMIFF_LOCKED, VMIFF_UP};
use vm::abi::LocalPrefix;
use vm::device_proc::{self, launch, LaunchSpec, RemoteRegistersHandle};
use vm::memory_layout;

const MAC: [u8; 6] = [0xfe, 0xe1, 0xba, 0xd0, 0x12, 0x34];
const QSIZE: u16 = 256;
const HDR: usize = 12;
const RX_BUFS: u16 = 64;
const RX_BUF: u64 = 0x20_0000;
const TX_BUF: u64 = 0x30_0000;
const BUF_LEN: u32 = 2048;

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x400454ca;

fn open_tap(name: &str) -> File {
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

fn run(args: &[&str]) {
    let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(st.success(), "{args:?} failed");
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn skip_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} is not installed (.ci/install-deps installs it)"
            ));
        }
    }
    None
}

/// One split virtqueue in guest memory, driven as a guest driver does.
struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    avail_idx: u16,
    used_seen: u16,
}

impl Ring {
    fn new(base: u64) -> Ring {
        Ring {
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    fn post(&mut self, mem: &GuestMemory, i: u16, addr: u64, len: u32, writable: bool) {
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

    fn take_used(&mut self, mem: &GuestMemory) -> Option<(u16, u32)> {
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
struct Guest {
    regs: RemoteRegistersHandle,
    mem: GuestMemory,
    rx: Ring,
    tx: Ring,
    tx_next: u16,
}

impl Guest {
    fn w(&self, off: u16, size: AccessSize, v: u32) {
        self.regs.lock().unwrap().bar_write(0, off, size, v);
    }

    fn r(&self, off: u16, size: AccessSize) -> u32 {
        self.regs.lock().unwrap().bar_read(0, off, size)
    }

    fn bring_up(&mut self) {
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

    fn send(&mut self, frame: &[u8]) {
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
    fn receive(&mut self) -> Vec<Vec<u8>> {
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

fn tap_rx_packets(ns: &str, ifname: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", ns, "-s", "-o", "link", "show", ifname])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "... RX: bytes packets errors ... \    123 4 0 ..."
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "RX:").expect("RX counters");
    let labels = words[at + 1..]
        .iter()
        .take_while(|w| !w.starts_with('\\'))
        .count();
    words[at + 1 + labels + 1 + 1].parse().unwrap()
}

#[test]
fn vionet_process_serves_dhcp_and_moves_frames_through_a_tap() {
    if let Some(why) = skip_reason() {
        println!("SKIPPED: vionet_process_serves_dhcp_and_moves_frames_through_a_tap: {why}");
        return;
    }
    let pid = std::process::id();
    let ns = Netns(format!("vmdt-vio-{pid}"));
    run(&["ip", "netns", "add", &ns.0]);
    // No IPv6 chatter (router solicitations, MLD) to blur frame counts.
    for key in ["all", "default"] {
        run(&[
            "ip",
            "netns",
            "exec",
            &ns.0,
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
        ]);
    }
    let (vtap_name, gtap_name) = (format!("vt{}", pid % 100000), format!("gt{}", pid % 100000));
    let vtap = open_tap(&vtap_name);
    let gtap = open_tap(&gtap_name);
    for t in [&vtap_name, &gtap_name] {
        run(&["ip", "link", "set", t, "netns", &ns.0]);
    }
    run(&[
        "ip",
        "-n",
        &ns.0,
        "addr",
        "add",
        "192.0.2.1/24",
        "dev",
        &vtap_name,
    ]);
    run(&["ip", "-n", &ns.0, "link", "set", &vtap_name, "up"]);
    let mac_text = MAC
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    run(&[
        "ip", "-n", &ns.0, "link", "set", &gtap_name, "address", &mac_text, "up",
    ]);

    // The vm process's side: memory, the VM's parameters, the device.
    let map = memory_layout::memory_map(16 << 20).unwrap();
    let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
    let mut vmd_vm = device_proc::describe_vm("net", &map, &[]).unwrap();
    vmd_vm.vm_vmid = 1;
    vmd_vm.vm_params.vmc_nnics = 1;
    vmd_vm.vm_params.vmc_macs[0] = MAC;
    vmd_vm.vm_params.vmc_ifflags[0] = VMIFF_UP | VMIFF_LOCKED | VMIFF_LOCAL;
    let prefix = LocalPrefix::vmd_default();
    let dev = device_proc::vionet_dev(0, vtap.as_raw_fd(), &vmd_vm, &prefix);
    let process = launch(LaunchSpec {
        exe: Path::new(env!("CARGO_BIN_EXE_vmd")),
        dev,
        vm: &vmd_vm,
        mem: &mem,
        data_fds: vec![vtap.as_raw_fd()],
        vmm_fd: -1,
        debug: true,
        verbose: 0,
    })
    .unwrap();
    drop(vtap);
    let irq: Irq = Arc::new(NoIrq);
    let (regs, handle) = process
        .attach(irq, Arc::new(|why| panic!("{why}")))
        .unwrap();
    let guest = Arc::new(Mutex::new(Guest {
        regs,
        mem: mem.clone(),
        rx: Ring::new(0x1_0000),
        tx: Ring::new(0x2_0000),
        tx_next: 0,
    }));
    guest.lock().unwrap().bring_up();

    // The guest's network stack is udhcpc on the second tap: a thread
    // carries its frames to the TX queue and RX frames back to it.
    let stop = Arc::new(AtomicBool::new(false));
    let from_host = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let bridge = {
        let guest = guest.clone();
        let stop = stop.clone();
        let from_host = from_host.clone();
        let mut g_r = gtap.try_clone().unwrap();
        let mut g_w = gtap;
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd: g_r.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 20) } > 0 {
                    if let Ok(n) = g_r.read(&mut buf) {
                        guest.lock().unwrap().send(&buf[..n]);
                    }
                }
                for f in guest.lock().unwrap().receive() {
                    // DHCP answers (UDP from port 67) go to udhcpc; the
                    // rest is what the host sent.
                    let dhcp =
                        f.len() > 37 && f[12..14] == [8, 0] && f[23] == 17 && f[34..36] == [0, 67];
                    if dhcp {
                        let _ = g_w.write_all(&f);
                    } else {
                        from_host.lock().unwrap().push(f);
                    }
                }
            }
        })
    };

    let dir = std::env::temp_dir().join(format!("vmdt-vio-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script");
    let lease = dir.join("lease");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            lease.display()
        ),
    )
    .unwrap();
    run(&["chmod", "+x", script.to_str().unwrap()]);
    let status = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &ns.0, "busybox", "udhcpc", "-f", "-q", "-n", "-t", "5",
            "-T", "1", "-i", &gtap_name, "-s",
        ])
        .arg(&script)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "udhcpc got no lease through the vionet process"
    );
    let env = std::fs::read_to_string(&lease).unwrap();
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_default()
            .to_string()
    };
    // vmd's lease for vm 1, interface 0: 100.64.1.3/31, router and DNS
    // the host side 100.64.1.2.
    assert_eq!(get("ip"), "100.64.1.3");
    assert_eq!(get("subnet"), "255.255.255.254");
    assert_eq!(get("router"), "100.64.1.2");
    assert_eq!(get("dns"), "100.64.1.2");

    // Guest to host: a frame from the VM's MAC reaches the tap; one with
    // another source does not.
    let frame = |src: [u8; 6]| {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(&[0x5a; 46]);
        f
    };
    let before = tap_rx_packets(&ns.0, &vtap_name);
    guest.lock().unwrap().send(&frame(MAC));
    guest.lock().unwrap().send(&frame([0x02, 0, 0, 0, 0, 0x66]));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tap_rx_packets(&ns.0, &vtap_name),
        before + 1,
        "locked lladdr: exactly one frame gets through"
    );

    // Host to guest: the host's ARP for 192.0.2.2 leaves through the tap.
    let arping = Command::new("ip")
        .args([
            "netns", "exec", &ns.0, "busybox", "arping", "-c", "1", "-w", "1",
        ])
        .args(["-I", &vtap_name, "192.0.2.2"])
        .output();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let arp = from_host
            .lock()
            .unwrap()
            .iter()
            .any(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[38..42] == [192, 0, 2, 2]);
        if arp {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host's ARP request never reached the guest: got {:?}; arping: {arping:?}",
            from_host
                .lock()
                .unwrap()
                .iter()
                .map(|f| f.len())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    stop.store(true, Ordering::Relaxed);
    bridge.join().unwrap();
    handle.shutdown(Duration::from_secs(2));
    let _ = std::fs::remove_dir_all(&dir);
}
