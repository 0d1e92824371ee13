//! vioblk's device model: virtio-blk request parsing and execution over a
//! [`BlockBackend`]. The process around it (the vioblk child, imsg, disk
//! image formats) lives elsewhere; this is what one queue notification does.
//!
//! A request is parsed into a typed [`Request`] first (as Firecracker's
//! virtio block `request.rs` does): a 16-byte header in the readable part,
//! the data, and a status byte at the very end of the writable part. Every
//! way a guest can get that wrong is a [`RequestError`]; a request that
//! cannot even report a status is handed back with length 0, one whose
//! status byte is usable gets IOERR or UNSUPP, and the queue goes on.

use std::io;

use super::chain::{Chain, ChainIoError, Descriptor};
use super::queue::Queue;
use super::{VirtioDevice, DEVICE_BLOCK, VIRTIO_F_VERSION_1};
use crate::bus::AccessSize;
use crate::memory::{GuestMemory, GuestSlice};

pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
pub const VIOBLK_QUEUE_SIZE_DEFAULT: u16 = 128;
pub const VIOBLK_SEG_MAX_DEFAULT: u32 = VIOBLK_QUEUE_SIZE_DEFAULT as u32 - 2;
pub const SECTOR_SIZE: u64 = 512;

pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Device configuration offsets vmd answers.
const CONFIG_CAPACITY: u16 = 0;
const CONFIG_SEG_MAX: u16 = 12;

/// A disk as the block device sees it: a byte array of `size()` bytes.
pub trait BlockBackend: Send {
    fn size(&self) -> u64;
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;

    /// Reads into guest memory. The default bounces through a buffer; a
    /// file-backed disk can use [`GuestMemory::preadv`] instead.
    fn read_to_guest(&mut self, dst: &[GuestSlice<'_>], offset: u64) -> io::Result<()> {
        let mut at = offset;
        let mut buf = Vec::new();
        for s in dst {
            buf.resize(s.len(), 0);
            self.read_at(&mut buf, at)?;
            s.write(0, &buf).map_err(io::Error::other)?;
            at += s.len() as u64;
        }
        Ok(())
    }

    /// Writes guest memory to the disk (bounced by default).
    fn write_from_guest(&mut self, src: &[GuestSlice<'_>], offset: u64) -> io::Result<()> {
        let mut at = offset;
        let mut buf = Vec::new();
        for s in src {
            buf.resize(s.len(), 0);
            s.read(0, &mut buf).map_err(io::Error::other)?;
            self.write_at(&buf, at)?;
            at += s.len() as u64;
        }
        Ok(())
    }
}

/// What the driver asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    In,
    Out,
    Flush,
    GetId,
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(t: u32) -> RequestType {
        match t {
            VIRTIO_BLK_T_IN => RequestType::In,
            VIRTIO_BLK_T_OUT => RequestType::Out,
            VIRTIO_BLK_T_FLUSH => RequestType::Flush,
            VIRTIO_BLK_T_GET_ID => RequestType::GetId,
            other => RequestType::Unsupported(other),
        }
    }
}

/// A parsed request: the operation, where on disk, how much, and where the
/// status byte goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: RequestType,
    pub sector: u64,
    /// Bytes to transfer (reads: writable bytes before the status byte;
    /// writes: readable bytes after the header).
    pub data_len: u64,
    pub status_addr: u64,
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no writable status byte at the end of the chain")]
    NoStatus,
    #[error("request header shorter than 16 bytes")]
    ShortHeader,
    #[error("read request with readable data buffers")]
    ReadIntoReadable,
    #[error("write request with writable data buffers")]
    WriteFromWritable,
    #[error("transfer of {0} bytes is not a whole number of sectors")]
    Unaligned(u64),
    #[error("sectors {sector}+{len} are beyond the disk of {capacity} sectors")]
    OutOfRange {
        sector: u64,
        len: u64,
        capacity: u64,
    },
    #[error(transparent)]
    Chain(#[from] ChainIoError),
}

impl Request {
    /// Parses `chain` for a disk of `capacity` sectors. The status byte is
    /// located first, so that every later error can still be reported.
    pub fn parse(
        chain: &Chain,
        mem: &GuestMemory,
        capacity: u64,
    ) -> Result<Request, (Option<u64>, RequestError)> {
        let status = chain
            .writable()
            .last()
            .filter(|d| d.len > 0)
            .map(|d: &Descriptor| d.addr + u64::from(d.len) - 1)
            .ok_or((None, RequestError::NoStatus))?;
        let fail = |e| (Some(status), e);
        let mut header = [0u8; 16];
        chain
            .reader(mem)
            .read_exact(&mut header)
            .map_err(|_| fail(RequestError::ShortHeader))?;
        let kind = RequestType::from(u32::from_le_bytes(header[0..4].try_into().expect("4")));
        let sector = u64::from_le_bytes(header[8..16].try_into().expect("8"));
        let data_len = match kind {
            RequestType::In => {
                if chain.readable_len() > 16 {
                    return Err(fail(RequestError::ReadIntoReadable));
                }
                chain.writable_len() - 1
            }
            RequestType::Out => {
                if chain.writable_len() > 1 {
                    return Err(fail(RequestError::WriteFromWritable));
                }
                chain.readable_len() - 16
            }
            _ => 0,
        };
        if data_len % SECTOR_SIZE != 0 {
            return Err(fail(RequestError::Unaligned(data_len)));
        }
        let sectors = data_len / SECTOR_SIZE;
        if matches!(kind, RequestType::In | RequestType::Out)
            && sector.checked_add(sectors).is_none_or(|end| end > capacity)
        {
            return Err(fail(RequestError::OutOfRange {
                sector,
                len: sectors,
                capacity,
            }));
        }
        Ok(Request {
            kind,
            sector,
            data_len,
            status_addr: status,
        })
    }
}

/// The virtio block device model.
pub struct Blk {
    backend: Box<dyn BlockBackend>,
    seg_max: u32,
}

impl Blk {
    pub fn new(backend: Box<dyn BlockBackend>) -> Blk {
        Blk {
            backend,
            seg_max: VIOBLK_SEG_MAX_DEFAULT,
        }
    }

    /// Disk size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.backend.size() / SECTOR_SIZE
    }

    /// Carries out `req`; returns the status and bytes written to the guest.
    fn execute(&mut self, req: &Request, chain: &Chain, mem: &GuestMemory) -> (u8, u32) {
        if !matches!(req.kind, RequestType::In | RequestType::Out) {
            // vmd offers no flush feature and no device ID.
            return (VIRTIO_BLK_S_UNSUPP, 1);
        }
        // Request::parse range-checked the sectors of reads and writes.
        let offset = req.sector * SECTOR_SIZE;
        let result = if req.kind == RequestType::In {
            chain
                .writer(mem)
                .slices(req.data_len)
                .map_err(io::Error::other)
                .and_then(|s| self.backend.read_to_guest(&s, offset))
        } else {
            let mut r = chain.reader(mem);
            let mut header = [0u8; 16];
            r.read_exact(&mut header)
                .and_then(|_| r.slices(req.data_len))
                .map_err(io::Error::other)
                .and_then(|s| self.backend.write_from_guest(&s, offset))
        };
        match result {
            Ok(()) if req.kind == RequestType::In => (VIRTIO_BLK_S_OK, req.data_len as u32 + 1),
            Ok(()) => (VIRTIO_BLK_S_OK, 1),
            Err(e) => {
                log::warn!(
                    "vioblk_io: {:?} failure at offset 0x{offset:x}: {e}",
                    req.kind
                );
                (VIRTIO_BLK_S_IOERR, 1)
            }
        }
    }
}

impl VirtioDevice for Blk {
    fn device_type(&self) -> u16 {
        DEVICE_BLOCK
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SEG_MAX
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[VIOBLK_QUEUE_SIZE_DEFAULT]
    }

    fn read_config(&mut self, offset: u16, size: AccessSize) -> u32 {
        let dword = size == AccessSize::Dword;
        match offset {
            CONFIG_CAPACITY if dword => self.capacity() as u32,
            o if o == CONFIG_CAPACITY + 4 && dword => (self.capacity() >> 32) as u32,
            CONFIG_SEG_MAX if dword => self.seg_max,
            _ => u32::MAX,
        }
    }

    fn queue_notify(&mut self, _index: u16, queue: &mut Queue, mem: &GuestMemory) -> bool {
        let mut used = false;
        let capacity = self.capacity();
        while let Some(chain) = queue.pop_valid(mem, "vioblk") {
            let (status, len, status_addr) = match Request::parse(&chain, mem, capacity) {
                Ok(req) => {
                    let (s, len) = self.execute(&req, &chain, mem);
                    (s, len, Some(req.status_addr))
                }
                Err((addr, e)) => {
                    log::warn!("vioblk: bad request at head {}: {e}", chain.head());
                    (VIRTIO_BLK_S_IOERR, u32::from(addr.is_some()), addr)
                }
            };
            if let Some(a) = status_addr {
                if let Err(e) = mem.write_u8(a, status) {
                    log::warn!("vioblk: can't write device status data: {e}");
                }
            }
            if let Err(e) = queue.add_used(mem, chain.head(), len) {
                log::warn!("vioblk: {e}");
                break;
            }
            used = true;
        }
        used
    }
}
