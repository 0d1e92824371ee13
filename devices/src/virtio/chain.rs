//! Descriptor chains, parsed and checked before a device sees them.
//!
//! A [`Chain`] is only built by [`Chain::parse`], which walks the guest's
//! descriptor table and refuses anything a well-behaved driver never makes:
//! loops (more descriptors than the queue holds), indices off the table,
//! buffers outside guest memory or wrapping the address space, readable
//! descriptors after writable ones, and indirect tables the device did not
//! advertise. A device then reads only the readable part and writes only the
//! writable part through [`ChainReader`] and [`ChainWriter`].

use crate::memory::{GuestMemory, GuestSlice, MemoryError};

/// The buffer continues in the `next` field.
pub const VRING_DESC_F_NEXT: u16 = 1;
/// The device writes this buffer (otherwise it only reads it).
pub const VRING_DESC_F_WRITE: u16 = 2;
/// The buffer is a table of further descriptors.
pub const VRING_DESC_F_INDIRECT: u16 = 4;

/// Size of one descriptor in the table.
pub const DESC_SIZE: u64 = 16;

/// One guest buffer of a chain, already checked to lie in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub addr: u64,
    pub len: u32,
}

/// Why a chain was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("descriptor index {index} is beyond the table of {size}")]
    IndexOutOfRange { index: u16, size: u32 },
    #[error("chain is longer than {max} descriptors (a loop?)")]
    TooLong { max: u32 },
    #[error("descriptor buffer 0x{addr:x}+0x{len:x} is not in guest memory")]
    BadBuffer { addr: u64, len: u32 },
    #[error("readable descriptor after a writable one")]
    ReadableAfterWritable,
    #[error("indirect descriptor, but indirect descriptors were not negotiated")]
    IndirectNotNegotiated,
    #[error("indirect descriptor with NEXT set or inside an indirect table")]
    BadIndirect,
    #[error("indirect table of 0x{len:x} bytes is empty, ragged or too large")]
    BadIndirectLen { len: u32 },
    #[error("descriptor table unreadable: {0}")]
    Memory(#[from] MemoryError),
}

/// A checked descriptor chain: its head index (to return it on the used
/// ring) and its readable and writable buffers, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chain {
    head: u16,
    readable: Vec<Descriptor>,
    writable: Vec<Descriptor>,
}

struct RawDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn read_desc(mem: &GuestMemory, table: u64, index: u16) -> Result<RawDesc, ChainError> {
    let addr = table
        .checked_add(u64::from(index) * DESC_SIZE)
        .ok_or(MemoryError::Overflow {
            addr: table,
            len: DESC_SIZE,
        })?;
    let b: [u8; 16] = mem.read_array(addr)?;
    Ok(RawDesc {
        addr: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
        len: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        flags: u16::from_le_bytes([b[12], b[13]]),
        next: u16::from_le_bytes([b[14], b[15]]),
    })
}

impl Chain {
    /// Walks the chain starting at `head` in the descriptor table at
    /// `table` of a queue with `queue_size` entries. `indirect` says
    /// whether VIRTIO_RING_F_INDIRECT_DESC was negotiated.
    pub fn parse(
        mem: &GuestMemory,
        table: u64,
        queue_size: u16,
        head: u16,
        indirect: bool,
    ) -> Result<Chain, ChainError> {
        let size = u32::from(queue_size);
        let mut chain = Chain {
            head,
            ..Chain::default()
        };
        if u32::from(head) >= size {
            return Err(ChainError::IndexOutOfRange { index: head, size });
        }
        // Every descriptor visited, direct or indirect, counts towards the
        // limit, so no table layout can make us walk more than `size`.
        let mut budget = size;
        let mut index = head;
        loop {
            let d = read_desc(mem, table, index)?;
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                if !indirect {
                    return Err(ChainError::IndirectNotNegotiated);
                }
                if d.flags & VRING_DESC_F_NEXT != 0 {
                    return Err(ChainError::BadIndirect);
                }
                chain.walk_indirect(mem, &d, &mut budget)?;
                return Ok(chain);
            }
            chain.push(mem, &d, &mut budget)?;
            if d.flags & VRING_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            if u32::from(d.next) >= size {
                return Err(ChainError::IndexOutOfRange {
                    index: d.next,
                    size,
                });
            }
            index = d.next;
        }
    }

    fn walk_indirect(
        &mut self,
        mem: &GuestMemory,
        d: &RawDesc,
        budget: &mut u32,
    ) -> Result<(), ChainError> {
        let count = d.len as u64 / DESC_SIZE;
        if d.len as u64 % DESC_SIZE != 0 || count == 0 || count > u64::from(u16::MAX) + 1 {
            return Err(ChainError::BadIndirectLen { len: d.len });
        }
        if !mem.contains(d.addr, u64::from(d.len)) {
            return Err(ChainError::BadBuffer {
                addr: d.addr,
                len: d.len,
            });
        }
        let table_size = count as u32;
        let mut index: u16 = 0;
        loop {
            let e = read_desc(mem, d.addr, index)?;
            if e.flags & VRING_DESC_F_INDIRECT != 0 {
                return Err(ChainError::BadIndirect);
            }
            self.push(mem, &e, budget)?;
            if e.flags & VRING_DESC_F_NEXT == 0 {
                return Ok(());
            }
            if u32::from(e.next) >= table_size {
                return Err(ChainError::IndexOutOfRange {
                    index: e.next,
                    size: table_size,
                });
            }
            index = e.next;
        }
    }

    fn push(&mut self, mem: &GuestMemory, d: &RawDesc, budget: &mut u32) -> Result<(), ChainError> {
        if *budget == 0 {
            return Err(ChainError::TooLong {
                max: (self.readable.len() + self.writable.len()) as u32,
            });
        }
        *budget -= 1;
        if !mem.contains(d.addr, u64::from(d.len)) {
            return Err(ChainError::BadBuffer {
                addr: d.addr,
                len: d.len,
            });
        }
        let desc = Descriptor {
            addr: d.addr,
            len: d.len,
        };
        if d.flags & VRING_DESC_F_WRITE != 0 {
            self.writable.push(desc);
        } else if self.writable.is_empty() {
            self.readable.push(desc);
        } else {
            return Err(ChainError::ReadableAfterWritable);
        }
        Ok(())
    }

    /// The index to hand back on the used ring.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The buffers the device may only read, in chain order.
    pub fn readable(&self) -> &[Descriptor] {
        &self.readable
    }

    /// The buffers the device may only write, in chain order.
    pub fn writable(&self) -> &[Descriptor] {
        &self.writable
    }

    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|d| u64::from(d.len)).sum()
    }

    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|d| u64::from(d.len)).sum()
    }

    /// A cursor over the readable buffers.
    pub fn reader<'a>(&'a self, mem: &'a GuestMemory) -> ChainReader<'a> {
        ChainReader {
            mem,
            cursor: Cursor::new(&self.readable),
        }
    }

    /// A cursor over the writable buffers.
    pub fn writer<'a>(&'a self, mem: &'a GuestMemory) -> ChainWriter<'a> {
        ChainWriter {
            mem,
            cursor: Cursor::new(&self.writable),
        }
    }
}

/// A position in a list of buffers.
struct Cursor<'a> {
    descs: &'a [Descriptor],
    index: usize,
    offset: u32,
}

impl<'a> Cursor<'a> {
    fn new(descs: &'a [Descriptor]) -> Cursor<'a> {
        Cursor {
            descs,
            index: 0,
            offset: 0,
        }
    }

    fn remaining(&self) -> u64 {
        let rest: u64 = self.descs[self.index.min(self.descs.len())..]
            .iter()
            .map(|d| u64::from(d.len))
            .sum();
        rest - u64::from(self.offset)
    }

    /// Calls `f(guest address, length, offset into the request)` for the
    /// next `len` bytes, advancing. Fails without moving if fewer remain.
    fn take(
        &mut self,
        len: u64,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), MemoryError>,
    ) -> Result<(), ChainIoError> {
        if len > self.remaining() {
            return Err(ChainIoError::Short {
                wanted: len,
                available: self.remaining(),
            });
        }
        let mut done = 0u64;
        while done < len {
            let d = self.descs[self.index];
            let avail = u64::from(d.len - self.offset);
            let n = avail.min(len - done);
            if n > 0 {
                f(d.addr + u64::from(self.offset), n as usize, done as usize)?;
            }
            done += n;
            if n == avail {
                self.index += 1;
                self.offset = 0;
            } else {
                self.offset += n as u32;
            }
        }
        Ok(())
    }
}

/// Why reading or writing a chain's buffers failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainIoError {
    #[error("request needs {wanted} bytes, the chain has {available}")]
    Short { wanted: u64, available: u64 },
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// Reads a chain's device-readable buffers front to back.
pub struct ChainReader<'a> {
    mem: &'a GuestMemory,
    cursor: Cursor<'a>,
}

impl<'a> ChainReader<'a> {
    /// Bytes left to read.
    pub fn remaining(&self) -> u64 {
        self.cursor.remaining()
    }

    /// Fills `buf` from the chain.
    pub fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ChainIoError> {
        let mem = self.mem;
        self.cursor.take(buf.len() as u64, |addr, n, at| {
            mem.read(addr, &mut buf[at..at + n])
        })
    }

    /// The next `len` bytes as guest slices, for vectored writes to a file.
    pub fn slices(&mut self, len: u64) -> Result<Vec<GuestSlice<'a>>, ChainIoError> {
        let mem = self.mem;
        let mut out = Vec::new();
        self.cursor.take(len, |addr, n, _| {
            out.extend(mem.slices(addr, n)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Writes a chain's device-writable buffers front to back.
pub struct ChainWriter<'a> {
    mem: &'a GuestMemory,
    cursor: Cursor<'a>,
}

impl<'a> ChainWriter<'a> {
    /// Room left to write.
    pub fn remaining(&self) -> u64 {
        self.cursor.remaining()
    }

    /// Copies all of `data` into the chain.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ChainIoError> {
        let mem = self.mem;
        self.cursor.take(data.len() as u64, |addr, n, at| {
            mem.write(addr, &data[at..at + n])
        })
    }

    /// The next `len` bytes as guest slices, for vectored reads from a file.
    pub fn slices(&mut self, len: u64) -> Result<Vec<GuestSlice<'a>>, ChainIoError> {
        let mem = self.mem;
        let mut out = Vec::new();
        self.cursor.take(len, |addr, n, _| {
            out.extend(mem.slices(addr, n)?);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryRange;

    const TABLE: u64 = 0x1000;

    fn mem() -> GuestMemory {
        GuestMemory::new_anonymous(&[MemoryRange::new(0, 0x10000)]).unwrap()
    }

    fn desc(mem: &GuestMemory, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = table + 16 * u64::from(i);
        mem.write_u64(at, addr).unwrap();
        mem.write_u32(at + 8, len).unwrap();
        mem.write_u16(at + 12, flags).unwrap();
        mem.write_u16(at + 14, next).unwrap();
    }

    #[test]
    fn splits_readable_and_writable_in_order() {
        let m = mem();
        desc(&m, TABLE, 3, 0x4000, 16, VRING_DESC_F_NEXT, 5);
        desc(
            &m,
            TABLE,
            5,
            0x5000,
            512,
            VRING_DESC_F_NEXT | VRING_DESC_F_WRITE,
            1,
        );
        desc(&m, TABLE, 1, 0x6000, 1, VRING_DESC_F_WRITE, 0);
        let c = Chain::parse(&m, TABLE, 8, 3, false).unwrap();
        assert_eq!(c.head(), 3);
        assert_eq!(
            c.readable(),
            &[Descriptor {
                addr: 0x4000,
                len: 16
            }]
        );
        assert_eq!(c.writable().len(), 2);
        assert_eq!((c.readable_len(), c.writable_len()), (16, 513));
    }

    #[test]
    fn indirect_tables_only_when_negotiated_and_well_formed() {
        let m = mem();
        let ind = 0x3000;
        desc(&m, ind, 0, 0x4000, 16, VRING_DESC_F_NEXT, 2);
        desc(&m, ind, 2, 0x5000, 32, VRING_DESC_F_WRITE, 0);
        desc(&m, TABLE, 0, ind, 48, VRING_DESC_F_INDIRECT, 0);
        assert_eq!(
            Chain::parse(&m, TABLE, 4, 0, false),
            Err(ChainError::IndirectNotNegotiated)
        );
        let c = Chain::parse(&m, TABLE, 4, 0, true).unwrap();
        assert_eq!((c.readable_len(), c.writable_len()), (16, 32));
        // Ragged, empty, out-of-memory and NEXT-chained indirect tables.
        for (addr, len, flags) in [
            (ind, 40, VRING_DESC_F_INDIRECT),
            (ind, 0, VRING_DESC_F_INDIRECT),
            (0xfff0, 32, VRING_DESC_F_INDIRECT),
            (ind, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT),
        ] {
            desc(&m, TABLE, 0, addr, len, flags, 1);
            assert!(
                Chain::parse(&m, TABLE, 4, 0, true).is_err(),
                "{addr:x} {len} {flags}"
            );
        }
        // An indirect descriptor inside an indirect table.
        desc(&m, ind, 2, 0x3000, 48, VRING_DESC_F_INDIRECT, 0);
        desc(&m, TABLE, 0, ind, 48, VRING_DESC_F_INDIRECT, 0);
        assert_eq!(
            Chain::parse(&m, TABLE, 4, 0, true),
            Err(ChainError::BadIndirect)
        );
        // A loop inside the indirect table is cut at the queue size.
        desc(&m, ind, 2, 0x5000, 32, VRING_DESC_F_NEXT, 0);
        assert!(matches!(
            Chain::parse(&m, TABLE, 4, 0, true),
            Err(ChainError::TooLong { .. })
        ));
        // Next index beyond the indirect table.
        desc(&m, ind, 2, 0x5000, 32, VRING_DESC_F_NEXT, 3);
        assert!(matches!(
            Chain::parse(&m, TABLE, 4, 0, true),
            Err(ChainError::IndexOutOfRange { index: 3, size: 3 })
        ));
    }

    #[test]
    fn a_full_length_chain_is_fine_one_more_is_a_loop() {
        let m = mem();
        for i in 0..16u16 {
            desc(
                &m,
                TABLE,
                i,
                0x4000 + u64::from(i),
                1,
                VRING_DESC_F_NEXT,
                i + 1,
            );
        }
        desc(&m, TABLE, 15, 0x4000, 1, 0, 0);
        assert_eq!(
            Chain::parse(&m, TABLE, 16, 0, false)
                .unwrap()
                .readable()
                .len(),
            16
        );
        desc(&m, TABLE, 15, 0x4000, 1, VRING_DESC_F_NEXT, 0);
        assert!(matches!(
            Chain::parse(&m, TABLE, 16, 0, false),
            Err(ChainError::TooLong { .. })
        ));
    }

    #[test]
    fn reader_and_writer_stay_in_their_buffers() {
        let m = mem();
        m.write(0x4000, b"hello, ").unwrap();
        m.write(0x4100, b"world").unwrap();
        desc(&m, TABLE, 0, 0x4000, 7, VRING_DESC_F_NEXT, 1);
        desc(&m, TABLE, 1, 0x4100, 5, VRING_DESC_F_NEXT, 2);
        desc(
            &m,
            TABLE,
            2,
            0x5000,
            3,
            VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
            3,
        );
        desc(&m, TABLE, 3, 0x5100, 3, VRING_DESC_F_WRITE, 0);
        let c = Chain::parse(&m, TABLE, 4, 0, false).unwrap();
        let mut r = c.reader(&m);
        let mut buf = [0u8; 12];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello, world");
        assert!(matches!(
            r.read_exact(&mut [0]),
            Err(ChainIoError::Short { .. })
        ));
        let mut w = c.writer(&m);
        w.write_all(b"abcd").unwrap();
        assert_eq!(w.remaining(), 2);
        assert!(w.write_all(b"xyz").is_err());
        assert_eq!(w.slices(2).unwrap().len(), 1);
        assert_eq!(m.read_array::<3>(0x5000).unwrap(), *b"abc");
        assert_eq!(m.read_u8(0x5100).unwrap(), b'd');
        // The readable buffers were not touched by the writer.
        assert_eq!(m.read_array::<7>(0x4000).unwrap(), *b"hello, ");
    }
}
