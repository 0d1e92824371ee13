//! vionet's TX and RX paths over a guest-memory image the fuzzer controls:
//! descriptor tables, ring indexes and frames are all hostile. The device
//! must not panic, must never hand a frame longer than the limit to the
//! tap, and must keep its counters consistent.
#![no_main]

use devices::dhcp::{DhcpServer, LocalPrefix};
use devices::memory::{GuestMemory, MemoryRange};
use devices::virtio::net::{NetBackend, VirtioNet, RXQ, TXQ, VIONET_MAX_TXLEN};
use devices::virtio::{Queue, VirtioDevice};
use libfuzzer_sys::fuzz_target;

const MEM: usize = 64 * 1024;
const MAC: [u8; 6] = [0xfe, 0xe1, 0xba, 0xd0, 0, 1];

struct Tap(usize);

impl NetBackend for Tap {
    fn transmit(&mut self, frame: &[u8]) -> std::io::Result<()> {
        assert!(frame.len() <= VIONET_MAX_TXLEN);
        assert!(frame.len() >= 14);
        self.0 += 1;
        Ok(())
    }
}

fn queue(size: u16, base: u64, indirect: bool) -> Queue {
    let mut q = Queue::new(256);
    q.set_size(size);
    q.set_desc_table(base);
    q.set_avail_ring(base + 16 * u64::from(size));
    q.set_used_ring(base + 0x2000);
    q.set_indirect(indirect);
    q.set_enabled(true);
    q
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (ctl, image) = data.split_at(4);
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    mem.write(0, &image[..image.len().min(MEM)]).unwrap();
    let locked = ctl[0] & 1 != 0;
    let dhcp = (ctl[0] & 2 != 0).then(|| DhcpServer {
        mac: MAC,
        host_mac: [0xfe, 0xe1, 0xba, 0xd0, 0, 2],
        prefix: LocalPrefix::default(),
        vmid: 1,
        idx: 0,
        netboot_hostname: Some("vm".into()),
        netboot: ctl[0] & 4 != 0,
    });
    let size = 1u16 << (ctl[1] % 9);
    let mut net = VirtioNet::new(MAC, locked, dhcp, Tap(0));
    let mut tx = queue(size, 0, ctl[2] & 1 != 0);
    let mut rx = queue(size, 0x8000, ctl[2] & 2 != 0);
    for _ in 0..(ctl[3] % 4 + 1) {
        net.queue_notify(TXQ, &mut tx, &mem);
        net.queue_notify(RXQ, &mut rx, &mem);
    }
    let s = net.stats().clone();
    assert!(net.pending_rx() <= devices::virtio::net::MAX_PENDING_RX);
    assert_eq!(net.backend_mut().0 as u64, s.tx_frames);
});
