//! A queue over a random guest-memory image with random ring addresses:
//! every chain the queue hands out must lie in guest memory, and nothing
//! may panic.
#![no_main]

use devices::memory::{GuestMemory, MemoryRange};
use devices::virtio::Queue;
use libfuzzer_sys::fuzz_target;

const MEM: usize = 0x10000;

fn u16_at(d: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([d[i], d[i + 1]])
}

fn u64_at(d: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(d[i..i + 8].try_into().unwrap())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 32 {
        return;
    }
    let (hdr, image) = data.split_at(32);
    let mem = GuestMemory::new_anonymous(&[
        MemoryRange::new(0, MEM / 2),
        MemoryRange::new(MEM as u64 / 2, MEM / 2),
    ])
    .unwrap();
    mem.write(0, &image[..image.len().min(MEM)]).unwrap();
    let mut q = Queue::new(u16_at(hdr, 0).clamp(1, 1024));
    q.set_size(u16_at(hdr, 2));
    // Mostly small addresses so the rings often land in memory.
    let addr = |i: usize| {
        let a = u64_at(hdr, i);
        if a & 1 << 63 != 0 {
            a
        } else {
            a % (MEM as u64 + 64)
        }
    };
    q.set_desc_table(addr(4));
    q.set_avail_ring(addr(12));
    q.set_used_ring(addr(20));
    q.set_indirect(hdr[28] & 1 != 0);
    q.set_enabled(hdr[28] & 2 != 0);
    if hdr[28] & 4 != 0 {
        q.set_legacy_pfn(u32::from(hdr[29]) % 20);
    }
    let writes = hdr[30];
    for round in 0..(hdr[31] % 8 + 1) {
        let mut n = 0;
        while let Some(chain) = q.pop_valid(&mem, "fuzz") {
            for d in chain.readable().iter().chain(chain.writable()) {
                assert!(mem.contains(d.addr, u64::from(d.len)));
            }
            assert!(chain.readable().len() + chain.writable().len() <= usize::from(q.size()));
            let mut buf = vec![0u8; chain.readable_len().min(4096) as usize];
            chain.reader(&mem).read_exact(&mut buf).unwrap();
            let out = vec![round; chain.writable_len().min(u64::from(writes)) as usize];
            chain.writer(&mem).write_all(&out).unwrap();
            let _ = q.add_used(&mem, chain.head(), out.len() as u32);
            n += 1;
            assert!(n <= 1024, "queue handed out more chains than it holds");
        }
        let _ = q.needs_interrupt(&mem);
    }
});
