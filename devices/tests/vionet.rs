//! vionet driven through port I/O the way a virtio 1.x driver does:
//! frames both ways, locked lladdr, RX back-pressure, the local-interface
//! DHCP server answering through the RX queue, and hostile chains.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use common::{memory, GuestQueue, Lines, Machine};
use devices::dhcp::packet::{build_udp_frame, parse_udp_frame, UdpAddressing};
use devices::dhcp::{DhcpServer, LocalPrefix};
use devices::memory::GuestMemory;
use devices::pci::PciBus;
use devices::virtio::net::{NetBackend, VirtioNet, MAX_PENDING_RX, RXQ, VIRTIO_NET_F_MAC};
use devices::virtio::{
    attach, Layout, VirtioPci, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
    STATUS_FEATURES_OK, VIRTIO_F_VERSION_1,
};

const MAC: [u8; 6] = [0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x01];

#[derive(Clone, Default)]
struct Tap(Arc<Mutex<Vec<Vec<u8>>>>);

impl NetBackend for Tap {
    fn transmit(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().push(frame.to_vec());
        Ok(())
    }
}

struct Nic {
    m: Machine,
    mem: GuestMemory,
    lines: Lines,
    dev: Arc<Mutex<VirtioPci<VirtioNet<Tap>>>>,
    tap: Tap,
    base: u16,
    rx: GuestQueue,
    tx: GuestQueue,
}

fn nic(locked: bool, dhcp: Option<DhcpServer>) -> Nic {
    let mem = memory();
    let lines = Lines::default();
    let mut pci = PciBus::new();
    let tap = Tap::default();
    let (id, dev) = attach(
        &mut pci,
        VirtioNet::new(MAC, locked, dhcp, tap.clone()),
        Layout::Modern,
        mem.clone(),
        |n| lines.make(n),
    )
    .unwrap();
    let m = Machine::new(pci);
    let rx = GuestQueue::new(256, 0x10000, 0x11000, 0x12000);
    let tx = GuestQueue::new(256, 0x20000, 0x21000, 0x22000);
    let base = bring_up(&m, id, &[&rx, &tx]);
    Nic {
        m,
        mem,
        lines,
        dev,
        tap,
        base,
        rx,
        tx,
    }
}

fn bring_up(m: &Machine, dev: u8, queues: &[&GuestQueue]) -> u16 {
    m.cfg_write16(dev, 4, 1);
    let base = (m.cfg_read32(dev, 0x10) & !3) as u16;
    m.outb(base + 20, 0);
    m.outb(base + 20, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    m.outl(base, 0);
    let lo = m.inl(base + 4);
    m.outl(base, 1);
    let hi = m.inl(base + 4);
    let features = u64::from(lo) | (u64::from(hi) << 32);
    assert_eq!(features, VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC);
    m.outl(base + 8, 0);
    m.outl(base + 12, lo);
    m.outl(base + 8, 1);
    m.outl(base + 12, hi);
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
    );
    assert_eq!(m.inw(base + 18), 2, "RX and TX");
    for (i, q) in queues.iter().enumerate() {
        m.outw(base + 22, i as u16);
        assert_eq!(m.inw(base + 24), 256);
        m.outw(base + 24, q.size);
        for (reg, addr) in [(32u16, q.desc), (40, q.avail), (48, q.used)] {
            m.outl(base + reg, addr as u32);
            m.outl(base + reg + 4, (addr >> 32) as u32);
        }
        m.outw(base + 28, 1);
    }
    m.outb(
        base + 20,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    // The MAC, byte by byte from the device configuration at 0x300.
    let mac: Vec<u8> = (0..6).map(|i| m.inb(base + 0x300 + i)).collect();
    assert_eq!(mac, MAC);
    base
}

fn frame(src: [u8; 6], dst: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

impl Nic {
    /// The guest sends `f` in a 2-descriptor chain: header, then frame.
    fn send(&mut self, slot: u16, f: &[u8]) -> (u32, u32) {
        let hdr = 0x30000 + u64::from(slot) * 0x8000;
        self.mem.write(hdr, &[0u8; 12]).unwrap();
        self.mem.write(hdr + 0x100, f).unwrap();
        self.tx.set_desc(&self.mem, slot, hdr, 12, 1, slot + 1);
        self.tx
            .set_desc(&self.mem, slot + 1, hdr + 0x100, f.len() as u32, 0, 0);
        self.tx.push(&self.mem, slot);
        self.m.outw(self.base + 0x100, 1); // notify TX
        self.tx.pop_used(&self.mem).expect("TX chain used")
    }

    /// Posts one RX buffer of `len` bytes at descriptor `slot`.
    fn post_rx(&mut self, slot: u16, len: u32) {
        self.rx.set_desc(
            &self.mem,
            slot,
            0x80000 + u64::from(slot) * 0x800,
            len,
            2,
            0,
        );
        self.rx.push(&self.mem, slot);
    }

    fn kick_rx(&self) {
        self.m.outw(self.base + 0x100, RXQ);
    }

    fn rx_frame(&mut self) -> Option<Vec<u8>> {
        let (id, len) = self.rx.pop_used(&self.mem)?;
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read(0x80000 + u64::from(id as u16) * 0x800, &mut buf)
            .unwrap();
        assert_eq!(&buf[..10], &[0u8; 10], "no offloads in the header");
        assert_eq!(u16::from_le_bytes([buf[10], buf[11]]), 1, "num_buffers");
        Some(buf[12..].to_vec())
    }
}

#[test]
fn frames_flow_both_ways_with_interrupts() {
    let mut n = nic(false, None);
    let f = frame(MAC, [0xff; 6], 60);
    let (_, len) = n.send(0, &f);
    assert_eq!(len as usize, 12 + 60);
    assert_eq!(n.tap.0.lock().unwrap().as_slice(), std::slice::from_ref(&f));
    let line = n.lines.get(3);
    assert!(line.high(), "TX completion interrupt");
    assert_eq!(n.m.inb(n.base + 0x200), 1);

    // A frame from the tap waits for a buffer, then arrives.
    let incoming = frame([2, 0, 0, 0, 0, 9], MAC, 1514);
    assert!(n.dev.lock().unwrap().device_mut().receive(incoming.clone()));
    n.post_rx(0, 2048);
    n.kick_rx();
    assert_eq!(n.rx_frame().unwrap(), incoming);
    assert!(line.high());
    let stats = n.dev.lock().unwrap().device().stats().clone();
    assert_eq!((stats.tx_frames, stats.rx_frames), (1, 1));
}

#[test]
fn locked_lladdr_drops_spoofed_frames_and_passes_good_ones() {
    let mut n = nic(true, None);
    let spoofed = frame([2, 0, 0, 0, 0, 66], [0xff; 6], 64);
    let (_, len) = n.send(0, &spoofed);
    assert_eq!(len as usize, 12 + 64, "the chain is consumed");
    assert!(n.tap.0.lock().unwrap().is_empty(), "spoofed frame not sent");
    let good = frame(MAC, [0xff; 6], 64);
    n.send(2, &good);
    assert_eq!(n.tap.0.lock().unwrap().as_slice(), &[good]);
    // Inbound: only our MAC or multicast.
    {
        let mut d = n.dev.lock().unwrap();
        let dev = d.device_mut();
        assert!(!dev.receive(frame([2; 6], [2, 0, 0, 0, 0, 5], 64)));
        assert!(dev.receive(frame([2; 6], MAC, 64)));
        assert!(dev.receive(frame([2; 6], [0x01, 0, 0x5e, 0, 0, 1], 64)));
        let s = dev.stats();
        assert_eq!((s.tx_spoofed, s.tx_frames, s.rx_filtered), (1, 1, 1));
    }
}

#[test]
fn full_rx_queue_drops_and_counts_then_resumes() {
    let mut n = nic(false, None);
    {
        let mut d = n.dev.lock().unwrap();
        let dev = d.device_mut();
        for i in 0..MAX_PENDING_RX + 10 {
            let mut f = frame([2; 6], MAC, 64);
            f[14] = i as u8;
            dev.receive(f);
        }
        assert!(!dev.can_receive());
        assert_eq!(dev.stats().rx_dropped_full, 10);
    }
    // Buffers come back a few at a time; frames flow in order.
    let mut got = 0usize;
    for round in 0..(MAX_PENDING_RX / 8) {
        for k in 0..8u16 {
            n.post_rx(((round * 8) as u16 + k) % 256, 2048);
        }
        n.kick_rx();
        while let Some(f) = n.rx_frame() {
            assert_eq!(f[14], got as u8);
            got += 1;
        }
    }
    assert_eq!(got, MAX_PENDING_RX);
    let d = n.dev.lock().unwrap();
    assert!(d.device().can_receive());
    assert_eq!(d.device().pending_rx(), 0);
}

#[test]
fn local_interface_answers_dhcp_through_the_rx_queue() {
    let server = DhcpServer {
        mac: MAC,
        host_mac: [0xfe, 0xe1, 0xba, 0xd0, 0, 2],
        prefix: LocalPrefix::default(),
        vmid: 1,
        idx: 0,
        netboot_hostname: None,
        netboot: false,
    };
    let mut n = nic(true, Some(server));
    n.post_rx(0, 2048);
    n.kick_rx();
    let mut bootp = vec![0u8; 300];
    bootp[0] = 1;
    bootp[1] = 1;
    bootp[2] = 6;
    bootp[28..34].copy_from_slice(&MAC);
    bootp[236..240].copy_from_slice(&[99, 130, 83, 99]);
    bootp[240..243].copy_from_slice(&[53, 1, 1]);
    bootp[243] = 255;
    let discover = build_udp_frame(
        &UdpAddressing {
            src_mac: MAC,
            dst_mac: [0xff; 6],
            src_ip: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: 68,
            dst_port: 67,
        },
        &bootp,
    )
    .unwrap();
    n.send(0, &discover);
    assert!(n.tap.0.lock().unwrap().is_empty(), "DHCP stays off the tap");
    let offer = n.rx_frame().expect("the offer arrives on RX");
    let udp = parse_udp_frame(&offer).unwrap();
    assert_eq!(udp.dst_ip, Ipv4Addr::new(100, 64, 1, 3));
    assert_eq!(&udp.payload[16..20], &[100, 64, 1, 3], "yiaddr");
    assert_eq!(n.dev.lock().unwrap().device().stats().dhcp_replies, 1);
}

#[test]
fn hostile_tx_chains_fail_alone() {
    let mut n = nic(false, None);
    // Too short for a header plus an Ethernet header.
    n.tx.set_desc(&n.mem, 0, 0x30000, 20, 0, 0);
    n.tx.push(&n.mem, 0);
    // Device-writable buffer in a TX chain.
    n.tx.set_desc(&n.mem, 1, 0x30000, 100, 2, 0);
    n.tx.push(&n.mem, 1);
    // Length up to u32::MAX.
    n.tx.set_desc(&n.mem, 2, 0x30000, u32::MAX, 0, 0);
    n.tx.push(&n.mem, 2);
    // Oversized frame that does fit in memory.
    n.tx.set_desc(&n.mem, 3, 0x100000, 12 + 16384 + 15, 0, 0);
    n.tx.push(&n.mem, 3);
    n.m.outw(n.base + 0x100, 1);
    let mut used = Vec::new();
    while let Some(u) = n.tx.pop_used(&n.mem) {
        used.push(u);
    }
    assert_eq!(used, vec![(0, 0), (1, 0), (2, 0), (3, 0)]);
    assert!(n.tap.0.lock().unwrap().is_empty());
    // A good frame still goes out.
    let f = frame(MAC, [0xff; 6], 60);
    n.send(4, &f);
    assert_eq!(n.tap.0.lock().unwrap().len(), 1);
    let s = n.dev.lock().unwrap().device().stats().clone();
    assert_eq!(s.tx_malformed, 3);
}
