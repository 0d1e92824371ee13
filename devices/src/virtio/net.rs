//! vionet: the virtio network device, as vmd's vionet.c.
//!
//! Two 256-entry queues, RX (0) and TX (1), the MAC in the configuration
//! space, and no offloads. Frames the guest sends go to a [`NetBackend`]
//! (the tap); frames for the guest are handed to [`VirtioNet::receive`] and
//! wait in a bounded queue until the guest posts RX buffers. Two policies
//! from vm.conf apply here:
//!
//! - `locked lladdr`: the guest may only send frames with its own source
//!   MAC, and only receives frames for its MAC or multicast/broadcast.
//! - `local interface`: DHCP requests are answered by the built-in server
//!   ([`crate::dhcp`]) and never reach the tap.

use std::collections::VecDeque;
use std::io;

use super::chain::Chain;
use super::queue::Queue;
use super::{VirtioDevice, DEVICE_NETWORK, VIRTIO_F_VERSION_1};
use crate::bus::AccessSize;
use crate::dhcp::DhcpServer;
use crate::memory::GuestMemory;

pub const RXQ: u16 = 0;
pub const TXQ: u16 = 1;
/// Queue size vmd gives vionet (VIONET_QUEUE_SIZE_DEFAULT).
pub const VIONET_QUEUE_SIZE: u16 = 256;
/// The device has a MAC in its configuration space.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// `struct virtio_net_hdr` with `num_buffers`: the 1.x header size.
pub const VIRTIO_NET_HDR_LEN: usize = 12;
/// The largest frame a tap carries (TUNMRU).
pub const VIONET_HARD_MTU: usize = 16384;
pub const ETHER_HDR_LEN: usize = 14;
/// Smallest and largest frame the guest may send.
pub const VIONET_MIN_TXLEN: usize = ETHER_HDR_LEN;
pub const VIONET_MAX_TXLEN: usize = VIONET_HARD_MTU + ETHER_HDR_LEN;
/// Frames for the guest held while it has no RX buffers. Beyond this the
/// backend should stop reading (see [`VirtioNet::can_receive`]); frames
/// handed over anyway are dropped and counted.
pub const MAX_PENDING_RX: usize = 256;

/// Where the guest's frames go: the tap.
pub trait NetBackend: Send {
    fn transmit(&mut self, frame: &[u8]) -> io::Result<()>;
}

/// Counters a host administrator can read to see what the device dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames with a source MAC other than the VM's (locked lladdr).
    pub tx_spoofed: u64,
    /// Chains too short, too long or not readable.
    pub tx_malformed: u64,
    /// Frames the tap refused.
    pub tx_errors: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames for another MAC (locked lladdr).
    pub rx_filtered: u64,
    /// Frames dropped because the pending queue was full.
    pub rx_dropped_full: u64,
    /// RX chains the guest posted that could not hold a frame.
    pub rx_malformed: u64,
    pub dhcp_replies: u64,
}

/// The network device model.
pub struct VirtioNet<B> {
    mac: [u8; 6],
    locked_lladdr: bool,
    dhcp: Option<DhcpServer>,
    backend: B,
    pending: VecDeque<Vec<u8>>,
    stats: NetStats,
    frame: Vec<u8>,
}

impl<B: NetBackend> VirtioNet<B> {
    /// `dhcp` is `Some` for a `local interface`.
    pub fn new(mac: [u8; 6], locked_lladdr: bool, dhcp: Option<DhcpServer>, backend: B) -> Self {
        VirtioNet {
            mac,
            locked_lladdr,
            dhcp,
            backend,
            pending: VecDeque::new(),
            stats: NetStats::default(),
            frame: Vec::new(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The host side's MAC (IMSG_DEVOP_HOSTMAC), which DHCP requests may
    /// be unicast to.
    pub fn set_host_mac(&mut self, mac: [u8; 6]) {
        if let Some(d) = self.dhcp.as_mut() {
            d.host_mac = mac;
        }
    }

    pub fn stats(&self) -> &NetStats {
        &self.stats
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Whether another frame can be queued for the guest. The reader of
    /// the tap stops while this is false, so frames wait in the tap rather
    /// than being dropped here.
    pub fn can_receive(&self) -> bool {
        self.pending.len() < MAX_PENDING_RX
    }

    /// Frames waiting for RX buffers.
    pub fn pending_rx(&self) -> usize {
        self.pending.len()
    }

    /// Queues a frame for the guest. It is delivered on the next RX queue
    /// service ([`super::VirtioPci::service_queue`] with [`RXQ`]). Returns
    /// false if it was dropped.
    pub fn receive(&mut self, frame: Vec<u8>) -> bool {
        if frame.len() < ETHER_HDR_LEN || frame.len() > VIONET_MAX_TXLEN {
            self.stats.rx_filtered += 1;
            return false;
        }
        if self.locked_lladdr {
            let dst = &frame[0..6];
            let multicast = dst[0] & 1 != 0;
            if !multicast && dst != self.mac {
                self.stats.rx_filtered += 1;
                return false;
            }
        }
        if !self.can_receive() {
            self.stats.rx_dropped_full += 1;
            return false;
        }
        self.pending.push_back(frame);
        true
    }

    /// Moves pending frames into RX buffers while both last.
    fn fill_rx(&mut self, queue: &mut Queue, mem: &GuestMemory) -> bool {
        let mut used = false;
        while !self.pending.is_empty() {
            let Some(chain) = queue.pop_valid(mem, "vionet rx") else {
                break;
            };
            let room = chain.writable_len();
            if !chain.readable().is_empty() || room < (VIRTIO_NET_HDR_LEN + VIONET_MIN_TXLEN) as u64
            {
                self.stats.rx_malformed += 1;
                log::warn!("vionet_rx: invalid descriptor state");
                used |= give_back(queue, mem, &chain, 0);
                continue;
            }
            let Some(frame) = self.pending.pop_front() else {
                break;
            };
            // Frames longer than the buffers are cut, as vmd does.
            let n = frame.len().min(room as usize - VIRTIO_NET_HDR_LEN);
            let mut hdr = [0u8; VIRTIO_NET_HDR_LEN];
            // Without VIRTIO_NET_F_MRG_RXBUF every frame is one buffer.
            hdr[10..12].copy_from_slice(&1u16.to_le_bytes());
            let mut w = chain.writer(mem);
            let written = w.write_all(&hdr).and_then(|()| w.write_all(&frame[..n]));
            let len = match written {
                Ok(()) => {
                    self.stats.rx_frames += 1;
                    self.stats.rx_bytes += n as u64;
                    (VIRTIO_NET_HDR_LEN + n) as u32
                }
                Err(e) => {
                    self.stats.rx_malformed += 1;
                    log::warn!("vionet_rx: {e}");
                    0
                }
            };
            used |= give_back(queue, mem, &chain, len);
        }
        used
    }

    fn drain_tx(&mut self, queue: &mut Queue, mem: &GuestMemory) -> bool {
        let mut used = false;
        let mut replies = Vec::new();
        while let Some(chain) = queue.pop_valid(mem, "vionet tx") {
            let total = chain.readable_len();
            let ok = chain.writable().is_empty()
                && total >= (VIRTIO_NET_HDR_LEN + VIONET_MIN_TXLEN) as u64
                && total <= (VIRTIO_NET_HDR_LEN + VIONET_MAX_TXLEN) as u64;
            if !ok {
                self.stats.tx_malformed += 1;
                log::warn!("vionet_tx: invalid chain ({total} bytes)");
                used |= give_back(queue, mem, &chain, 0);
                continue;
            }
            self.frame.resize(total as usize, 0);
            if let Err(e) = chain.reader(mem).read_exact(&mut self.frame) {
                self.stats.tx_malformed += 1;
                log::warn!("vionet_tx: {e}");
                used |= give_back(queue, mem, &chain, 0);
                continue;
            }
            let frame = &self.frame[VIRTIO_NET_HDR_LEN..];
            if self.locked_lladdr && frame[6..12] != self.mac {
                self.stats.tx_spoofed += 1;
                log::warn!(
                    "vionet_tx: bad source address {}",
                    mac_string(&frame[6..12])
                );
            } else if let Some(reply) = self.dhcp.as_ref().and_then(|d| d.handle_frame(frame).ok())
            {
                self.stats.dhcp_replies += 1;
                replies.push(reply);
            } else {
                match self.backend.transmit(frame) {
                    Ok(()) => {
                        self.stats.tx_frames += 1;
                        self.stats.tx_bytes += frame.len() as u64;
                    }
                    Err(e) => {
                        // A full tap (ENOBUFS) loses the frame, as a wire would.
                        self.stats.tx_errors += 1;
                        log::debug!("vionet_tx: {e}");
                    }
                }
            }
            used |= give_back(queue, mem, &chain, total as u32);
        }
        for r in replies {
            self.receive(r);
        }
        used
    }
}

fn give_back(queue: &mut Queue, mem: &GuestMemory, chain: &Chain, len: u32) -> bool {
    match queue.add_used(mem, chain.head(), len) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("vionet: {e}");
            false
        }
    }
}

fn mac_string(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl<B: NetBackend> VirtioDevice for VirtioNet<B> {
    fn device_type(&self) -> u16 {
        DEVICE_NETWORK
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MAC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[VIONET_QUEUE_SIZE, VIONET_QUEUE_SIZE]
    }

    fn read_config(&mut self, offset: u16, size: AccessSize) -> u32 {
        let mut v = 0u32;
        for i in 0..size.bytes() as u16 {
            let byte = self.mac.get(usize::from(offset + i)).copied().unwrap_or(0);
            v |= u32::from(byte) << (8 * i);
        }
        v
    }

    fn queue_notify(&mut self, index: u16, queue: &mut Queue, mem: &GuestMemory) -> bool {
        match index {
            RXQ => self.fill_rx(queue, mem),
            TXQ => self.drain_tx(queue, mem),
            _ => false,
        }
    }

    fn take_pending_queues(&mut self) -> u64 {
        if self.pending.is_empty() {
            0
        } else {
            1 << RXQ
        }
    }

    fn reset(&mut self) {
        self.pending.clear();
    }
}
