//! A polled virtio-net driver and just enough IPv4 to ping the host.
//!
//! The kernel asks for an address the way an OpenBSD guest on a vmd
//! `local interface` does, with DHCP (DISCOVER, OFFER, REQUEST, ACK), which
//! vmd's vionet process answers itself. It then resolves the router it was
//! given (the host's end of the tap) with ARP and sends ICMP echo requests
//! until one is answered. Everything arrives by polling the used rings, as
//! in [`crate::virtio`]; the time between polls is an ISR register read,
//! a VM exit, which makes a timeout a count of exits rather than of spins.
//!
//! Frames from the host are parsed with bounds checks throughout: a short
//! or odd frame is skipped, never trusted.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{compiler_fence, Ordering};

use crate::io::{inb, outw};
use crate::pci::Device;
use crate::virtio::{r16, r32, w16, w32, w64, Modern};
use crate::{phys, println};

pub const VIONET_DEVICE: u16 = 0x1041;
const VIRTIO_NET_F_MAC: u32 = 1 << 5;
const RXQ: u16 = 0;
const TXQ: u16 = 1;
const QUEUE_LEN: u16 = 8;
/// virtio_net_hdr with num_buffers, as a 1.x device expects.
const NET_HDR: usize = 12;
const BUF_LEN: usize = 2048;
const VIRTQ_DESC_F_WRITE: u16 = 2;
const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Polls (VM exits) before a wait gives up: about a second here.
const WAIT_POLLS: u32 = 100_000;

const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const BROADCAST: [u8; 6] = [0xff; 6];

#[repr(C, align(4096))]
struct QueueMem([u8; 3 * 4096]);
#[repr(C, align(4096))]
struct Buffers([[u8; BUF_LEN]; QUEUE_LEN as usize]);

static mut RX_QUEUE: QueueMem = QueueMem([0; 3 * 4096]);
static mut TX_QUEUE: QueueMem = QueueMem([0; 3 * 4096]);
static mut RX_BUFS: Buffers = Buffers([[0; BUF_LEN]; QUEUE_LEN as usize]);
static mut TX_BUF: [u8; BUF_LEN] = [0; BUF_LEN];

struct Nic {
    isr: u16,
    mac: [u8; 6],
    rx_notify: u16,
    tx_notify: u16,
    rx_seen: u16,
    rx_avail: u16,
    tx_sent: u16,
    frame: [u8; BUF_LEN],
}

fn queue_parts(q: *mut QueueMem) -> (*mut u8, *mut u8, *mut u8) {
    let q = q.cast::<u8>();
    // SAFETY: QueueMem is three pages.
    unsafe { (q, q.add(4096), q.add(8192)) }
}

impl Nic {
    fn bring_up(d: &Device) -> Result<Nic, &'static str> {
        let (m, ..) = Modern::find(d)?;
        let features = m.negotiate(VIRTIO_NET_F_MAC)?;
        if features & VIRTIO_NET_F_MAC == 0 {
            return Err("no MAC in the configuration");
        }
        let cfg = m.device.ok_or("no device configuration")?;
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = inb(cfg + i as u16);
        }
        let rx_notify = m.setup_queue(RXQ, QUEUE_LEN, (&raw mut RX_QUEUE).cast())?;
        let tx_notify = m.setup_queue(TXQ, QUEUE_LEN, (&raw mut TX_QUEUE).cast())?;
        m.driver_ok();
        let mut nic = Nic {
            isr: m.isr,
            mac,
            rx_notify,
            tx_notify,
            rx_seen: 0,
            rx_avail: 0,
            tx_sent: 0,
            frame: [0; BUF_LEN],
        };
        let (desc, avail, _) = queue_parts(&raw mut RX_QUEUE);
        w16(avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
        for i in 0..QUEUE_LEN {
            // SAFETY: descriptor i of QUEUE_LEN, buffer i of RX_BUFS.
            unsafe {
                let d = desc.add(16 * usize::from(i));
                let buf = (&raw mut RX_BUFS)
                    .cast::<u8>()
                    .add(BUF_LEN * usize::from(i));
                w64(d, phys(buf));
                w32(d.add(8), BUF_LEN as u32);
                w16(d.add(12), VIRTQ_DESC_F_WRITE);
                w16(d.add(14), 0);
            }
            nic.post_rx(i);
        }
        let (_, tx_avail, _) = queue_parts(&raw mut TX_QUEUE);
        w16(tx_avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
        Ok(nic)
    }

    /// Hands RX descriptor `id` (back) to the device.
    fn post_rx(&mut self, id: u16) {
        let (_, avail, _) = queue_parts(&raw mut RX_QUEUE);
        let slot = usize::from(self.rx_avail % QUEUE_LEN);
        // SAFETY: inside the available ring.
        w16(unsafe { avail.add(4 + 2 * slot) }, id);
        compiler_fence(Ordering::SeqCst);
        self.rx_avail = self.rx_avail.wrapping_add(1);
        // SAFETY: the available ring's index.
        w16(unsafe { avail.add(2) }, self.rx_avail);
        compiler_fence(Ordering::SeqCst);
        outw(self.rx_notify, RXQ);
    }

    /// Sends one Ethernet frame and waits until the device has taken it.
    fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > BUF_LEN - NET_HDR {
            return false;
        }
        let buf = (&raw mut TX_BUF).cast::<u8>();
        for i in 0..NET_HDR + frame.len() {
            let b = if i < NET_HDR { 0 } else { frame[i - NET_HDR] };
            // SAFETY: i < BUF_LEN.
            unsafe { write_volatile(buf.add(i), b) };
        }
        let (desc, avail, used) = queue_parts(&raw mut TX_QUEUE);
        w64(desc, phys(buf));
        // SAFETY: offsets inside descriptor 0 and the available ring.
        unsafe {
            w32(desc.add(8), (NET_HDR + frame.len()) as u32);
            w16(desc.add(12), 0);
            let slot = usize::from(self.tx_sent % QUEUE_LEN);
            w16(avail.add(4 + 2 * slot), 0);
        }
        compiler_fence(Ordering::SeqCst);
        self.tx_sent = self.tx_sent.wrapping_add(1);
        // SAFETY: the available ring's index.
        w16(unsafe { avail.add(2) }, self.tx_sent);
        compiler_fence(Ordering::SeqCst);
        outw(self.tx_notify, TXQ);
        for _ in 0..WAIT_POLLS {
            // SAFETY: the used ring's index.
            if r16(unsafe { used.add(2) }) == self.tx_sent {
                return true;
            }
            let _ = inb(self.isr);
        }
        false
    }

    /// The next frame from the device, copied into `self.frame`; its length.
    fn poll_rx(&mut self) -> Option<usize> {
        let (_, _, used) = queue_parts(&raw mut RX_QUEUE);
        // SAFETY: the used ring's index.
        if r16(unsafe { used.add(2) }) == self.rx_seen {
            return None;
        }
        compiler_fence(Ordering::SeqCst);
        let slot = usize::from(self.rx_seen % QUEUE_LEN);
        // SAFETY: inside the used ring.
        let (id, len) = unsafe { (r32(used.add(4 + 8 * slot)), r32(used.add(8 + 8 * slot))) };
        self.rx_seen = self.rx_seen.wrapping_add(1);
        let id = u16::try_from(id).ok().filter(|&i| i < QUEUE_LEN)?;
        let len = (len as usize).min(BUF_LEN);
        let n = len.saturating_sub(NET_HDR);
        let buf = (&raw const RX_BUFS).cast::<u8>();
        for i in 0..n {
            // SAFETY: inside buffer `id`; volatile because the device wrote it.
            self.frame[i] =
                unsafe { read_volatile(buf.add(BUF_LEN * usize::from(id) + NET_HDR + i)) };
        }
        self.post_rx(id);
        Some(n)
    }

    /// Waits for a frame `want` accepts, answering ARP for `ip` meanwhile.
    fn wait_for<T>(&mut self, ip: [u8; 4], mut want: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
        for _ in 0..WAIT_POLLS {
            if let Some(n) = self.poll_rx() {
                let frame = self.frame;
                let frame = &frame[..n];
                if let Some(t) = want(frame) {
                    return Some(t);
                }
                if ip != [0; 4] {
                    self.answer_arp(frame, ip);
                }
            } else {
                let _ = inb(self.isr);
            }
        }
        None
    }

    fn answer_arp(&mut self, frame: &[u8], ip: [u8; 4]) {
        let Some(arp) = Arp::parse(frame) else { return };
        if arp.op == 1 && arp.tpa == ip {
            let reply = arp_frame(2, self.mac, ip, arp.sha, arp.spa);
            self.send(&reply);
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4(b: &[u8], at: usize) -> Option<[u8; 4]> {
    b.get(at..at + 4)?.try_into().ok()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in data.chunks(2) {
        let hi = u32::from(pair[0]) << 8;
        sum += hi | pair.get(1).map_or(0, |&lo| u32::from(lo));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet header, then an IPv4 header for `payload_len` bytes of
/// `proto`; returns the offset of the payload.
fn ipv4_frame(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    payload_len: usize,
) -> usize {
    out[..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&src_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IP.to_be_bytes());
    let ip = &mut out[14..34];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = checksum(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    34
}

struct Arp {
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tpa: [u8; 4],
}

impl Arp {
    fn parse(f: &[u8]) -> Option<Arp> {
        if be16(f, 12)? != ETHERTYPE_ARP || be16(f, 14)? != 1 || be16(f, 16)? != ETHERTYPE_IP {
            return None;
        }
        Some(Arp {
            op: be16(f, 20)?,
            sha: f.get(22..28)?.try_into().ok()?,
            spa: ip4(f, 28)?,
            tpa: ip4(f, 38)?,
        })
    }
}

fn arp_frame(op: u16, mac: [u8; 6], ip: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[..6].copy_from_slice(if op == 1 { &BROADCAST } else { &tha });
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes());
    f[16..18].copy_from_slice(&ETHERTYPE_IP.to_be_bytes());
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[32..38].copy_from_slice(&tha);
    f[38..42].copy_from_slice(&tpa);
    f
}

const DHCP_XID: u32 = 0x766d_6431;
const BOOTP_LEN: usize = 300;

/// A DHCP message from the client: DISCOVER (1), or REQUEST (3) for
/// `requested` from `server`.
fn dhcp_frame(mac: [u8; 6], kind: u8, requested: [u8; 4], server: [u8; 4]) -> [u8; 342] {
    let mut f = [0u8; 342];
    let at = ipv4_frame(&mut f, mac, BROADCAST, [0; 4], [255; 4], 17, 8 + BOOTP_LEN);
    let udp = &mut f[at..at + 8];
    udp[0..2].copy_from_slice(&68u16.to_be_bytes());
    udp[2..4].copy_from_slice(&67u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + BOOTP_LEN) as u16).to_be_bytes());
    let b = &mut f[at + 8..];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&DHCP_XID.to_be_bytes());
    b[10] = 0x80; // broadcast the answer: we have no address yet
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    let mut o = 240;
    for opt in [&[53, 1, kind][..], &[55, 3, 1, 3, 6]] {
        b[o..o + opt.len()].copy_from_slice(opt);
        o += opt.len();
    }
    if kind == 3 {
        for (code, v) in [(50u8, requested), (54, server)] {
            b[o] = code;
            b[o + 1] = 4;
            b[o + 2..o + 6].copy_from_slice(&v);
            o += 6;
        }
    }
    b[o] = 255;
    f
}

struct Lease {
    kind: u8,
    yiaddr: [u8; 4],
    server: [u8; 4],
    router: [u8; 4],
    /// BOOTP's boot file and option 12, as vmd gives them for `boot device
    /// net`.
    file: [u8; 128],
    hostname: [u8; 64],
}

fn text(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..end]).unwrap_or("?")
}

/// A DHCP answer for us, from the frame's BOOTP payload.
fn parse_dhcp(f: &[u8], mac: [u8; 6]) -> Option<Lease> {
    if be16(f, 12)? != ETHERTYPE_IP || *f.get(23)? != 17 {
        return None;
    }
    let ihl = usize::from(f.get(14)? & 0xf) * 4;
    let udp = 14 + ihl;
    if be16(f, udp + 2)? != 68 {
        return None;
    }
    let b = f.get(udp + 8..)?;
    if *b.first()? != 2 || b.get(4..8)? != DHCP_XID.to_be_bytes() || b.get(28..34)? != mac {
        return None;
    }
    if b.get(236..240)? != [99, 130, 83, 99] {
        return None;
    }
    let mut lease = Lease {
        kind: 0,
        yiaddr: ip4(b, 16)?,
        server: [0; 4],
        router: [0; 4],
        file: b.get(108..236)?.try_into().ok()?,
        hostname: [0; 64],
    };
    let mut o = 240;
    while let Some(&code) = b.get(o) {
        match code {
            0 => {
                o += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*b.get(o + 1)?);
        let v = b.get(o + 2..o + 2 + len)?;
        match (code, len) {
            (53, 1) => lease.kind = v[0],
            (54, 4) => lease.server = v.try_into().ok()?,
            (3, n) if n >= 4 => lease.router = v[..4].try_into().ok()?,
            (12, n) => {
                let n = n.min(lease.hostname.len() - 1);
                lease.hostname[..n].copy_from_slice(&v[..n]);
            }
            _ => {}
        }
        o += 2 + len;
    }
    Some(lease)
}

fn dotted(ip: [u8; 4]) -> Dotted {
    Dotted(ip)
}

struct Dotted([u8; 4]);

impl core::fmt::Display for Dotted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// One DHCP exchange: the answer of `kind` to what we send.
fn dhcp_step(nic: &mut Nic, msg: &[u8], kind: u8) -> Option<Lease> {
    for _ in 0..3 {
        if !nic.send(msg) {
            continue;
        }
        let mac = nic.mac;
        let lease = nic.wait_for([0; 4], |f| parse_dhcp(f, mac).filter(|l| l.kind == kind));
        if lease.is_some() {
            return lease;
        }
    }
    None
}

/// DHCP, ARP for the router, then ICMP echo to it.
pub fn ping(d: Device) {
    let mut nic = match Nic::bring_up(&d) {
        Ok(n) => n,
        Err(e) => {
            println!("KERN-NET-FAIL {e}");
            return;
        }
    };
    let m = nic.mac;
    println!(
        "KERN-NET-MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );

    let Some(offer) = dhcp_step(&mut nic, &dhcp_frame(m, 1, [0; 4], [0; 4]), 2) else {
        println!("KERN-DHCP-FAIL no offer");
        return;
    };
    let request = dhcp_frame(m, 3, offer.yiaddr, offer.server);
    let Some(ack) = dhcp_step(&mut nic, &request, 5) else {
        println!("KERN-DHCP-FAIL no ack");
        return;
    };
    let (ip, router) = (ack.yiaddr, ack.router);
    println!("KERN-DHCP-OK {} router {}", dotted(ip), dotted(router));
    if ack.file[0] != 0 {
        println!(
            "KERN-DHCP-BOOT file={} host={}",
            text(&ack.file),
            text(&ack.hostname)
        );
    }

    let mut router_mac = None;
    for _ in 0..3 {
        if !nic.send(&arp_frame(1, m, ip, [0; 6], router)) {
            continue;
        }
        router_mac = nic.wait_for(ip, |f| {
            Arp::parse(f)
                .filter(|a| a.op == 2 && a.spa == router)
                .map(|a| a.sha)
        });
        if router_mac.is_some() {
            break;
        }
    }
    let Some(router_mac) = router_mac else {
        println!("KERN-ARP-FAIL {}", dotted(router));
        return;
    };

    const ICMP_LEN: usize = 8 + 32;
    for seq in 1..=3u16 {
        let mut f = [0u8; 34 + ICMP_LEN];
        let at = ipv4_frame(&mut f, m, router_mac, ip, router, 1, ICMP_LEN);
        let icmp = &mut f[at..];
        icmp[0] = 8;
        icmp[4..6].copy_from_slice(&0x766du16.to_be_bytes());
        icmp[6..8].copy_from_slice(&seq.to_be_bytes());
        for (i, b) in icmp[8..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let sum = checksum(icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        if !nic.send(&f) {
            continue;
        }
        let answered = nic.wait_for(ip, |r| {
            let is_reply = be16(r, 12)? == ETHERTYPE_IP
                && *r.get(23)? == 1
                && ip4(r, 26)? == router
                && ip4(r, 30)? == ip;
            let icmp = r.get(14 + usize::from(r.get(14)? & 0xf) * 4..)?;
            (is_reply
                && *icmp.first()? == 0
                && be16(icmp, 4)? == 0x766d
                && be16(icmp, 6)? == seq
                && icmp.get(8..40)? == &f[at + 8..])
                .then_some(())
        });
        if answered.is_some() {
            println!("KERN-PING-OK {} seq={seq}", dotted(router));
            return;
        }
    }
    println!("KERN-PING-FAIL {}", dotted(router));
}
