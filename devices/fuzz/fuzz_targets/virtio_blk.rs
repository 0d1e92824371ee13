//! The vioblk request path: a random guest-memory image holding the rings
//! and requests, served against a small in-memory disk.
#![no_main]

use std::io;

use devices::memory::{GuestMemory, MemoryRange};
use devices::virtio::blk::{Blk, BlockBackend};
use devices::virtio::{Queue, VirtioDevice};
use libfuzzer_sys::fuzz_target;

struct MemDisk(Vec<u8>);

impl BlockBackend for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let o = usize::try_from(offset).map_err(io::Error::other)?;
        let src = o
            .checked_add(buf.len())
            .and_then(|end| self.0.get(o..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let o = usize::try_from(offset).map_err(io::Error::other)?;
        let dst = o
            .checked_add(buf.len())
            .and_then(|end| self.0.get_mut(o..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MEM: usize = 0x8000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    mem.write(0, &data[4..data.len().min(MEM + 4)]).unwrap();
    let mut blk = Blk::new(Box::new(MemDisk(vec![0; 16 * 512])));
    let mut q = Queue::new(128);
    q.set_size(1 << (data[0] % 8));
    // The avail ring at the start of the image, so short inputs already
    // post requests; the descriptor table may overlap it, as a guest's may.
    q.set_avail_ring(0);
    q.set_desc_table(16 * u64::from(data[1] % 64));
    q.set_used_ring(0x4000 + 4 * u64::from(data[2] & 0x3f));
    q.set_indirect(data[3] & 1 != 0);
    q.set_enabled(true);
    for _ in 0..4 {
        blk.queue_notify(0, &mut q, &mem);
    }
});
