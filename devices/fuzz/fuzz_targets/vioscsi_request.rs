//! vioscsi: the CDB parser, and the request path over a guest-memory
//! image. Half the inputs are raw memory images (rings, descriptors,
//! headers all hostile, on any of the three queues); the other half are a
//! request header, a medium size and a buffer layout that the harness lays
//! out as a well-formed chain, so that every command runs deep. The device
//! must not panic, must answer within the buffers it was given, and must
//! send well-formed sense data.
#![no_main]

use std::io;

use devices::memory::{GuestMemory, MemoryRange};
use devices::virtio::blk::BlockBackend;
use devices::virtio::scsi::{ResponseHeader, Scsi, ScsiCommand, REQUEST_QUEUE};
use devices::virtio::{Queue, VirtioDevice};
use libfuzzer_sys::fuzz_target;

/// A medium of `size` bytes whose byte at `o` is `o as u8`, never stored.
struct Pattern(u64);

impl BlockBackend for Pattern {
    fn size(&self) -> u64 {
        self.0
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(io::ErrorKind::InvalidInput)?;
        if end > self.0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (offset + i as u64) as u8;
        }
        Ok(())
    }
    fn write_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
        panic!("the CD-ROM wrote to its medium");
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MEM: usize = 0x20000;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x800;
const USED: u64 = 0x1000;
const REQ: u64 = 0x2000;
const RESP: u64 = 0x3000;
const DATA: u64 = 0x4000;

fn queue(size: u16, desc: u64, avail: u64, used: u64) -> Queue {
    let mut q = Queue::new(128);
    q.set_size(size);
    q.set_desc_table(desc);
    q.set_avail_ring(avail);
    q.set_used_ring(used);
    q.set_enabled(true);
    q
}

fn desc(mem: &GuestMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let at = DESC + 16 * u64::from(i);
    mem.write_u64(at, addr).unwrap();
    mem.write_u32(at + 8, len).unwrap();
    mem.write_u16(at + 12, flags).unwrap();
    mem.write_u16(at + 14, next).unwrap();
}

/// A well-formed chain: the request header, optional data-out, the
/// response header, and `data_in` bytes in `pieces` buffers.
fn structured(data: &[u8]) {
    if data.len() < 60 {
        return;
    }
    let (head, rest) = data.split_at(51);
    let mut cdb = [0u8; 32];
    cdb.copy_from_slice(&head[19..51]);
    let _ = ScsiCommand::parse(&cdb);
    // Medium: 0 to 64 KiB-ish blocks, sometimes huge, sometimes ragged.
    let size = match rest[0] % 4 {
        0 => u64::from(rest[1]) * 2048,
        1 => (u64::from(rest[1]) << 11) + u64::from(rest[2]),
        2 => 1 << 40,
        _ => u64::from(u16::from_le_bytes([rest[1], rest[2]])),
    };
    let data_in = u32::from(u16::from_le_bytes([rest[3], rest[4]])) * 4 % 0x1_b000;
    let pieces = u32::from(rest[5] % 8) + 1;
    let resp_len = if rest[6] & 0x80 != 0 {
        u32::from(rest[6] & 0x7f)
    } else {
        108
    };
    let data_out = u32::from(rest[7] % 64);

    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    mem.write(REQ, head).unwrap();
    mem.fill(RESP, 0x1000, 0xee).unwrap();
    let mut i = 0u16;
    let mut chain = vec![(REQ, 51u32, false)];
    if data_out > 0 {
        chain.push((REQ + 0x100, data_out, false));
    }
    chain.push((RESP, resp_len, true));
    let piece = data_in / pieces;
    let mut at = DATA;
    for p in 0..pieces {
        let len = if p + 1 == pieces {
            data_in - piece * (pieces - 1)
        } else {
            piece
        };
        if len > 0 {
            chain.push((at, len, true));
            at += u64::from(len) + 8;
        }
    }
    for (n, &(addr, len, write)) in chain.iter().enumerate() {
        let last = n + 1 == chain.len();
        let flags = u16::from(!last) | if write { 2 } else { 0 };
        desc(&mem, i, addr, len, flags, i + 1);
        i += 1;
    }
    mem.write_u16(AVAIL + 4, 0).unwrap();
    mem.write_u16(AVAIL + 2, 1).unwrap();
    let mut q = queue(128, DESC, AVAIL, USED);
    let mut dev = Scsi::new(Box::new(Pattern(size)));
    assert!(dev.queue_notify(REQUEST_QUEUE, &mut q, &mem));
    let used_len = mem.read_u32(USED + 8).unwrap();
    let writable = u64::from(resp_len) + u64::from(data_in);
    assert!(u64::from(used_len) <= writable, "{used_len} > {writable}");
    if writable < 108 {
        assert_eq!(used_len, 0, "no room for a response");
        return;
    }
    if resp_len < 108 {
        // The response header runs on into the data buffers.
        assert!(used_len >= 108);
        return;
    }
    let resp = ResponseHeader::parse(&mem.read_array(RESP).unwrap());
    assert!(used_len >= 108);
    // Everything writable after the response header is data-in.
    let data_in = writable - 108;
    assert!(u64::from(resp.residual) <= data_in);
    // Data written and residual add up to the data-in buffers.
    assert_eq!(
        u64::from(used_len - 108) + u64::from(resp.residual),
        data_in
    );
    match resp.status {
        0 => assert_eq!(resp.sense_len, 0),
        2 => {
            assert_eq!(resp.sense_len, 18);
            assert_eq!((resp.sense[0], resp.sense[7]), (0x70, 10));
            assert_eq!(used_len, 108);
        }
        s => panic!("status {s}"),
    }
}

/// A raw memory image with rings wherever the input says, on any queue.
fn raw(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let mem = GuestMemory::new_anonymous(&[MemoryRange::new(0, MEM)]).unwrap();
    mem.write(0, &data[8..data.len().min(MEM + 8)]).unwrap();
    let size = u64::from(u16::from_le_bytes([data[4], data[5]])) * 16;
    let mut dev = Scsi::new(Box::new(Pattern(size)));
    let mut q = queue(
        1 << (data[0] % 8),
        16 * u64::from(data[1] % 64),
        0,
        0x8000 + 4 * u64::from(data[2] & 0x3f),
    );
    q.set_indirect(data[3] & 1 != 0);
    let index = u16::from(data[3] >> 1) % 3;
    for _ in 0..4 {
        dev.queue_notify(index, &mut q, &mem);
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 0 => structured(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
});
