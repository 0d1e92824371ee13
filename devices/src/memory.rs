//! Guest physical memory: the only way device models reach it.
//!
//! [`GuestMemory`] is a set of non-overlapping ranges of guest-physical
//! addresses, each backed by a shared-memory file (a memfd on Linux, an
//! unlinked `shm_open` object on OpenBSD) mapped `MAP_SHARED`, so the vm
//! process and its device children map the very same pages.
//!
//! Every address and length comes from a hostile guest, so every access is
//! bounds-checked with overflow-free arithmetic and fails with a
//! [`MemoryError`] instead of panicking. There are three kinds of access:
//!
//! - byte ranges and little-endian integers ([`GuestMemory::read`],
//!   [`GuestMemory::write`], [`GuestMemory::read_u32`], ...): copies, which
//!   may cross from one range into an adjacent one;
//! - ring fields ([`GuestMemory::load_u16`], [`GuestMemory::store_u16`],
//!   ...): single atomic accesses of naturally aligned fields with an
//!   explicit ordering, for the virtqueue indices and flags the guest
//!   changes concurrently;
//! - [`GuestSlice`]s, checked contiguous windows for vectored I/O
//!   ([`GuestMemory::preadv`] / [`GuestMemory::pwritev`]).
//!
//! Barriers are explicit: [`fence_acquire`], [`fence_release`], [`fence_full`].
//!
//! The guest may change any byte at any time. Copies use `copy_nonoverlapping`
//! on the raw mapping and never hand out Rust references into guest memory,
//! so a racing guest can only make us read garbage, which the parsers above
//! treat as hostile input anyway.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use crate::sys;

/// Why a guest memory access was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    #[error("guest range 0x{addr:x}+0x{len:x} is not in guest memory")]
    OutOfBounds { addr: u64, len: u64 },
    #[error("guest range 0x{addr:x}+0x{len:x} wraps around the address space")]
    Overflow { addr: u64, len: u64 },
    #[error("guest address 0x{addr:x} is not aligned to {align} bytes")]
    Unaligned { addr: u64, align: u64 },
}

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("no memory ranges given")]
    Empty,
    #[error("memory range at 0x{0:x} has size 0")]
    ZeroSize(u64),
    #[error("memory range 0x{addr:x}+0x{size:x} wraps around the address space")]
    Wraps { addr: u64, size: u64 },
    #[error("memory ranges at 0x{0:x} and 0x{1:x} overlap")]
    Overlap(u64, u64),
    #[error("memory file for range 0x{addr:x} holds {file_size} bytes, need {need}")]
    FileTooSmall {
        addr: u64,
        file_size: u64,
        need: u64,
    },
    #[error("cannot create shared memory of {size} bytes: {source}")]
    Create { size: usize, source: io::Error },
    #[error("cannot map memory range 0x{addr:x}+0x{size:x}: {source}")]
    Map {
        addr: u64,
        size: usize,
        source: io::Error,
    },
}

/// One range of guest-physical memory and where it lives in its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRange {
    /// First guest-physical address.
    pub guest_addr: u64,
    /// Size in bytes.
    pub size: usize,
}

impl MemoryRange {
    pub fn new(guest_addr: u64, size: usize) -> MemoryRange {
        MemoryRange { guest_addr, size }
    }

    fn end(&self) -> Option<u64> {
        self.guest_addr.checked_add(self.size as u64)
    }
}

struct Region {
    range: MemoryRange,
    /// The shared-memory file, when this process mapped one; none for
    /// mappings the kernel made for us (vmm(4)'s VMM_IOC_SHAREMEM).
    fd: Option<OwnedFd>,
    fd_offset: u64,
    host: NonNull<u8>,
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `host`/`size` is the mapping made in `Region::map`; the
        // region is being dropped, and every `GuestSlice` borrows the
        // `GuestMemory` that keeps this region alive, so none outlives it.
        unsafe { sys::unmap(self.host, self.range.size) }
    }
}

impl Region {
    fn map(range: MemoryRange, fd: OwnedFd, fd_offset: u64) -> Result<Region, MapError> {
        let host =
            sys::map_shared(fd.as_fd(), fd_offset, range.size).map_err(|source| MapError::Map {
                addr: range.guest_addr,
                size: range.size,
                source,
            })?;
        Ok(Region {
            range,
            fd: Some(fd),
            fd_offset,
            host,
        })
    }

    fn contains(&self, addr: u64) -> bool {
        addr >= self.range.guest_addr && addr - self.range.guest_addr < self.range.size as u64
    }
}

/// A view of one mapped range, for callers that must hand memory to the
/// hypervisor (KVM user memory regions) or to a device child (the fd).
#[derive(Debug)]
pub struct RegionInfo<'a> {
    pub range: MemoryRange,
    /// The shared-memory file, to pass to another process; none for
    /// memory vmm(4) shared into this process.
    pub fd: Option<BorrowedFd<'a>>,
    /// Where `range` starts in `fd`.
    pub fd_offset: u64,
    /// Where the range is mapped in this process.
    pub host_addr: *mut u8,
}

/// Guest-physical memory. Cloning is cheap and shares the mappings.
#[derive(Clone)]
pub struct GuestMemory {
    regions: Arc<[Region]>,
}

// SAFETY: the mappings are plain shared memory that the guest writes
// concurrently anyway; every access goes through raw-pointer copies or
// atomics, never through references, so sharing across threads adds no
// new hazard. The fds are ordinary OwnedFds.
unsafe impl Send for GuestMemory {}
// SAFETY: see Send.
unsafe impl Sync for GuestMemory {}

impl fmt::Debug for GuestMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.regions.iter().map(|r| r.range))
            .finish()
    }
}

impl GuestMemory {
    /// Creates guest memory for `ranges`, each backed by a new anonymous
    /// shared-memory file (zero-filled).
    pub fn new_anonymous(ranges: &[MemoryRange]) -> Result<GuestMemory, MapError> {
        check_layout(ranges.iter())?;
        let mut regions = Vec::with_capacity(ranges.len());
        for &range in ranges {
            let fd = sys::create_shared_memory(range.size).map_err(|source| MapError::Create {
                size: range.size,
                source,
            })?;
            regions.push(Region::map(range, fd, 0)?);
        }
        Ok(GuestMemory::from_regions(regions))
    }

    /// Maps memory another process created: each range with its file and
    /// the offset of the range in that file. The files must be large enough.
    pub fn from_fds(
        ranges: impl IntoIterator<Item = (MemoryRange, OwnedFd, u64)>,
    ) -> Result<GuestMemory, MapError> {
        let ranges: Vec<_> = ranges.into_iter().collect();
        check_layout(ranges.iter().map(|(r, _, _)| r))?;
        let mut regions = Vec::with_capacity(ranges.len());
        for (range, fd, fd_offset) in ranges {
            let file = std::fs::File::from(fd);
            let file_size = file
                .metadata()
                .map_err(|source| MapError::Map {
                    addr: range.guest_addr,
                    size: range.size,
                    source,
                })?
                .len();
            let need = fd_offset.checked_add(range.size as u64);
            if need.is_none_or(|need| need > file_size) {
                return Err(MapError::FileTooSmall {
                    addr: range.guest_addr,
                    file_size,
                    need: need.unwrap_or(u64::MAX),
                });
            }
            regions.push(Region::map(range, OwnedFd::from(file), fd_offset)?);
        }
        Ok(GuestMemory::from_regions(regions))
    }

    /// Adopts mappings the kernel made in this process of another
    /// process's guest memory (vmm(4)'s VMM_IOC_SHAREMEM): each range with
    /// where it is mapped. They are unmapped when the memory is dropped.
    ///
    /// # Safety
    ///
    /// Each pointer must start a live, readable and writable mapping of
    /// its range's size that nothing else unmaps or uses as Rust memory.
    pub unsafe fn adopt_mappings(
        ranges: impl IntoIterator<Item = (MemoryRange, NonNull<u8>)>,
    ) -> Result<GuestMemory, MapError> {
        let ranges: Vec<_> = ranges.into_iter().collect();
        check_layout(ranges.iter().map(|(r, _)| r))?;
        let regions = ranges
            .into_iter()
            .map(|(range, host)| Region {
                range,
                fd: None,
                fd_offset: 0,
                host,
            })
            .collect();
        Ok(GuestMemory::from_regions(regions))
    }

    fn from_regions(mut regions: Vec<Region>) -> GuestMemory {
        regions.sort_by_key(|r| r.range.guest_addr);
        GuestMemory {
            regions: regions.into(),
        }
    }

    /// The mapped ranges in ascending guest address order.
    pub fn regions(&self) -> impl Iterator<Item = RegionInfo<'_>> {
        self.regions.iter().map(|r| RegionInfo {
            range: r.range,
            fd: r.fd.as_ref().map(|fd| fd.as_fd()),
            fd_offset: r.fd_offset,
            host_addr: r.host.as_ptr(),
        })
    }

    /// True if all of `addr..addr+len` is guest memory.
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        self.check_range(addr, len).is_ok()
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        let mut pos = addr;
        let end = addr
            .checked_add(len)
            .ok_or(MemoryError::Overflow { addr, len })?;
        while pos < end {
            let r = self
                .find(pos)
                .ok_or(MemoryError::OutOfBounds { addr, len })?;
            pos = r.range.end().unwrap_or(u64::MAX);
        }
        if len == 0 && self.find(addr).is_none() {
            return Err(MemoryError::OutOfBounds { addr, len });
        }
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<&Region> {
        self.regions.iter().find(|r| r.contains(addr))
    }

    /// The pointer to `len` bytes at `addr`, which must lie in one region.
    fn host_ptr(&self, addr: u64, len: usize) -> Result<NonNull<u8>, MemoryError> {
        let len64 = len as u64;
        if addr.checked_add(len64).is_none() {
            return Err(MemoryError::Overflow { addr, len: len64 });
        }
        let oob = MemoryError::OutOfBounds { addr, len: len64 };
        let r = self.find(addr).ok_or(oob.clone())?;
        let off = (addr - r.range.guest_addr) as usize;
        if len > r.range.size - off {
            return Err(oob);
        }
        // SAFETY: off < size, so the result stays inside the mapping.
        Ok(unsafe { r.host.add(off) })
    }

    /// Calls `f(host pointer, offset into the request, chunk length)` for
    /// each region-contained piece of `addr..addr+len`, after checking all
    /// of it first (nothing is touched if any byte is outside memory).
    fn for_each_chunk(
        &self,
        addr: u64,
        len: usize,
        mut f: impl FnMut(NonNull<u8>, usize, usize),
    ) -> Result<(), MemoryError> {
        self.check_range(addr, len as u64)?;
        let mut done = 0usize;
        while done < len {
            let pos = addr + done as u64;
            let r = self.find(pos).expect("range checked above");
            let off = (pos - r.range.guest_addr) as usize;
            let chunk = (r.range.size - off).min(len - done);
            // SAFETY: off < size, inside the mapping.
            f(unsafe { r.host.add(off) }, done, chunk);
            done += chunk;
        }
        Ok(())
    }

    /// Copies guest memory at `addr` into `buf`.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let dst = buf.as_mut_ptr();
        self.for_each_chunk(addr, buf.len(), |src, at, n| {
            // SAFETY: src..src+n is inside a live mapping (checked by
            // for_each_chunk) and dst+at..+n inside buf; a guest mapping
            // never overlaps a Rust-owned buffer.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.add(at), n) }
        })
    }

    /// Copies `data` into guest memory at `addr`.
    pub fn write(&self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let src = data.as_ptr();
        self.for_each_chunk(addr, data.len(), |dst, at, n| {
            // SAFETY: as in `read`, with the roles swapped.
            unsafe { std::ptr::copy_nonoverlapping(src.add(at), dst.as_ptr(), n) }
        })
    }

    /// Sets `len` bytes at `addr` to `byte`.
    pub fn fill(&self, addr: u64, len: usize, byte: u8) -> Result<(), MemoryError> {
        self.for_each_chunk(addr, len, |dst, _, n| {
            // SAFETY: dst..dst+n is inside a live mapping.
            unsafe { std::ptr::write_bytes(dst.as_ptr(), byte, n) }
        })
    }

    /// Reads `N` bytes at `addr`.
    pub fn read_array<const N: usize>(&self, addr: u64) -> Result<[u8; N], MemoryError> {
        let mut b = [0u8; N];
        self.read(addr, &mut b)?;
        Ok(b)
    }

    pub fn read_u8(&self, addr: u64) -> Result<u8, MemoryError> {
        Ok(self.read_array::<1>(addr)?[0])
    }

    pub fn read_u16(&self, addr: u64) -> Result<u16, MemoryError> {
        self.read_array(addr).map(u16::from_le_bytes)
    }

    pub fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        self.read_array(addr).map(u32::from_le_bytes)
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        self.read_array(addr).map(u64::from_le_bytes)
    }

    pub fn write_u8(&self, addr: u64, v: u8) -> Result<(), MemoryError> {
        self.write(addr, &[v])
    }

    pub fn write_u16(&self, addr: u64, v: u16) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    pub fn write_u32(&self, addr: u64, v: u32) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), MemoryError> {
        self.write(addr, &v.to_le_bytes())
    }

    fn aligned_ptr(&self, addr: u64, size: usize) -> Result<NonNull<u8>, MemoryError> {
        if addr % size as u64 != 0 {
            return Err(MemoryError::Unaligned {
                addr,
                align: size as u64,
            });
        }
        // Mappings are page aligned, so guest alignment is host alignment.
        self.host_ptr(addr, size)
    }

    /// Atomically loads the little-endian u16 ring field at `addr`, which
    /// must be 2-byte aligned.
    pub fn load_u16(&self, addr: u64, order: Ordering) -> Result<u16, MemoryError> {
        let p = self.aligned_ptr(addr, 2)?;
        // SAFETY: p is in a live mapping, 2-byte aligned, valid for 2 bytes;
        // all our accesses to ring fields are atomic.
        let v = unsafe { AtomicU16::from_ptr(p.as_ptr().cast()) }.load(order);
        Ok(u16::from_le(v))
    }

    /// Atomically stores a little-endian u16 ring field (2-byte aligned).
    pub fn store_u16(&self, addr: u64, v: u16, order: Ordering) -> Result<(), MemoryError> {
        let p = self.aligned_ptr(addr, 2)?;
        // SAFETY: as in load_u16.
        unsafe { AtomicU16::from_ptr(p.as_ptr().cast()) }.store(v.to_le(), order);
        Ok(())
    }

    /// Atomically loads a little-endian u32 (4-byte aligned).
    pub fn load_u32(&self, addr: u64, order: Ordering) -> Result<u32, MemoryError> {
        let p = self.aligned_ptr(addr, 4)?;
        // SAFETY: p is in a live mapping, 4-byte aligned, valid for 4 bytes.
        let v = unsafe { AtomicU32::from_ptr(p.as_ptr().cast()) }.load(order);
        Ok(u32::from_le(v))
    }

    /// Atomically stores a little-endian u32 (4-byte aligned).
    pub fn store_u32(&self, addr: u64, v: u32, order: Ordering) -> Result<(), MemoryError> {
        let p = self.aligned_ptr(addr, 4)?;
        // SAFETY: as in load_u32.
        unsafe { AtomicU32::from_ptr(p.as_ptr().cast()) }.store(v.to_le(), order);
        Ok(())
    }

    /// A checked window of `len` bytes at `addr`, which must lie inside one
    /// mapped range (use [`GuestMemory::slices`] for ranges that may span
    /// several).
    pub fn slice(&self, addr: u64, len: usize) -> Result<GuestSlice<'_>, MemoryError> {
        let ptr = self.host_ptr(addr, len)?;
        Ok(GuestSlice {
            ptr,
            len,
            guest_addr: addr,
            _mem: PhantomData,
        })
    }

    /// `addr..addr+len` as one slice per mapped range it touches.
    pub fn slices(&self, addr: u64, len: usize) -> Result<Vec<GuestSlice<'_>>, MemoryError> {
        let mut out = Vec::new();
        self.for_each_chunk(addr, len, |ptr, at, n| {
            out.push(GuestSlice {
                ptr,
                len: n,
                guest_addr: addr + at as u64,
                _mem: PhantomData,
            })
        })?;
        Ok(out)
    }

    /// Reads from `fd` at file offset `offset` straight into the slices
    /// (one `preadv`). Returns the bytes read, which may be short.
    pub fn preadv(
        &self,
        fd: BorrowedFd<'_>,
        slices: &[GuestSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        let iov: Vec<libc::iovec> = slices.iter().map(GuestSlice::iovec).collect();
        // SAFETY: each iovec comes from a GuestSlice, checked to lie inside
        // a mapping that the borrowed GuestMemory keeps alive.
        unsafe { sys::preadv(fd, &iov, offset) }
    }

    /// Writes the slices to `fd` at file offset `offset` (one `pwritev`).
    /// Returns the bytes written, which may be short.
    pub fn pwritev(
        &self,
        fd: BorrowedFd<'_>,
        slices: &[GuestSlice<'_>],
        offset: u64,
    ) -> io::Result<usize> {
        let iov: Vec<libc::iovec> = slices.iter().map(GuestSlice::iovec).collect();
        // SAFETY: as in preadv.
        unsafe { sys::pwritev(fd, &iov, offset) }
    }
}

fn check_layout<'a>(ranges: impl Iterator<Item = &'a MemoryRange>) -> Result<(), MapError> {
    let mut sorted: Vec<MemoryRange> = ranges.copied().collect();
    if sorted.is_empty() {
        return Err(MapError::Empty);
    }
    sorted.sort_by_key(|r| r.guest_addr);
    for r in &sorted {
        if r.size == 0 {
            return Err(MapError::ZeroSize(r.guest_addr));
        }
        if r.end().is_none() {
            return Err(MapError::Wraps {
                addr: r.guest_addr,
                size: r.size as u64,
            });
        }
    }
    for w in sorted.windows(2) {
        if w[0].end().is_some_and(|end| end > w[1].guest_addr) {
            return Err(MapError::Overlap(w[0].guest_addr, w[1].guest_addr));
        }
    }
    Ok(())
}

/// A bounds-checked, contiguous window of guest memory, borrowed from a
/// [`GuestMemory`]. It can only be made by [`GuestMemory::slice`] or
/// [`GuestMemory::slices`], so it always lies inside a live mapping.
#[derive(Clone, Copy)]
pub struct GuestSlice<'a> {
    ptr: NonNull<u8>,
    len: usize,
    guest_addr: u64,
    _mem: PhantomData<&'a GuestMemory>,
}

impl fmt::Debug for GuestSlice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestSlice(0x{:x}+0x{:x})", self.guest_addr, self.len)
    }
}

impl<'a> GuestSlice<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The guest-physical address of the first byte.
    pub fn guest_addr(&self) -> u64 {
        self.guest_addr
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), MemoryError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(MemoryError::OutOfBounds {
                addr: self.guest_addr.wrapping_add(offset as u64),
                len: len as u64,
            }),
        }
    }

    /// The sub-window `offset..offset+len`.
    pub fn subslice(&self, offset: usize, len: usize) -> Result<GuestSlice<'a>, MemoryError> {
        self.check(offset, len)?;
        Ok(GuestSlice {
            // SAFETY: offset + len <= self.len, so inside the window.
            ptr: unsafe { self.ptr.add(offset) },
            len,
            guest_addr: self.guest_addr + offset as u64,
            _mem: PhantomData,
        })
    }

    /// Copies `buf.len()` bytes from `offset` in the window into `buf`.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.check(offset, buf.len())?;
        // SAFETY: checked to be inside the window, which is inside a live
        // mapping; buf is Rust memory that cannot overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                buf.as_mut_ptr(),
                buf.len(),
            )
        }
        Ok(())
    }

    /// Copies `data` to `offset` in the window.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), MemoryError> {
        self.check(offset, data.len())?;
        // SAFETY: as in read.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        }
        Ok(())
    }

    /// Sets the whole window to `byte`.
    pub fn fill(&self, byte: u8) {
        // SAFETY: the window is inside a live mapping.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr(), byte, self.len) }
    }

    fn iovec(&self) -> libc::iovec {
        libc::iovec {
            iov_base: self.ptr.as_ptr().cast(),
            iov_len: self.len,
        }
    }
}

/// Orders earlier loads before later loads and stores (read the avail index,
/// then the ring entries it covers).
pub fn fence_acquire() {
    atomic::fence(Ordering::Acquire);
}

/// Orders earlier loads and stores before later stores (write the used
/// element, then publish the used index).
pub fn fence_release() {
    atomic::fence(Ordering::Release);
}

/// A full barrier, for store-then-load patterns such as publishing the used
/// index and then reading the guest's interrupt suppression flags.
pub fn fence_full() {
    atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_ranges() -> GuestMemory {
        GuestMemory::new_anonymous(&[
            MemoryRange::new(0, 0x10000),
            MemoryRange::new(0x10000, 0x1000),
            MemoryRange::new(0x100000, 0x2000),
        ])
        .unwrap()
    }

    #[test]
    fn reads_back_writes_little_endian() {
        let m = two_ranges();
        m.write_u32(0x100, 0x1234_5678).unwrap();
        assert_eq!(m.read_array::<4>(0x100).unwrap(), [0x78, 0x56, 0x34, 0x12]);
        m.write_u64(0x100008, u64::MAX - 1).unwrap();
        assert_eq!(m.read_u64(0x100008).unwrap(), u64::MAX - 1);
        m.write_u16(0x2, 0xbeef).unwrap();
        assert_eq!(m.read_u16(0x2).unwrap(), 0xbeef);
        assert_eq!(m.read_u8(0x3).unwrap(), 0xbe);
    }

    #[test]
    fn copies_across_adjacent_ranges_but_not_holes() {
        let m = two_ranges();
        m.write(0xfffe, &[1, 2, 3, 4]).unwrap();
        assert_eq!(m.read_array::<4>(0xfffe).unwrap(), [1, 2, 3, 4]);
        assert_eq!(m.slices(0xfffe, 4).unwrap().len(), 2);
        // 0x11000..0x100000 is a hole.
        let err = m.write(0x10ffe, &[0; 4]).unwrap_err();
        assert!(matches!(err, MemoryError::OutOfBounds { .. }));
        // Nothing was written before the hole was found.
        assert_eq!(m.read_u16(0x10ffe).unwrap(), 0);
        assert!(m.slice(0xfffe, 4).is_err());
    }

    #[test]
    fn rejects_out_of_bounds_and_wrapping() {
        let m = two_ranges();
        assert!(m.read_u32(0x101ffd).is_err());
        assert!(m.read_u32(0x101ffc).is_ok());
        assert!(matches!(
            m.read_u64(u64::MAX - 3),
            Err(MemoryError::Overflow { .. })
        ));
        assert!(m.slice(0, usize::MAX).is_err());
        assert!(m.slice(u64::MAX, 1).is_err());
        assert!(m.slices(0x100, u32::MAX as usize).is_err());
        assert!(m.fill(0x200000, 1, 0).is_err());
        assert!(!m.contains(0x11000, 1));
        assert!(m.contains(0x10fff, 1));
    }

    #[test]
    fn ring_fields_need_alignment() {
        let m = two_ranges();
        m.store_u16(0x10, 7, Ordering::Release).unwrap();
        assert_eq!(m.load_u16(0x10, Ordering::Acquire).unwrap(), 7);
        assert_eq!(m.read_u16(0x10).unwrap(), 7);
        assert!(matches!(
            m.load_u16(0x11, Ordering::Acquire),
            Err(MemoryError::Unaligned { .. })
        ));
        assert!(m.store_u32(0x12, 1, Ordering::Release).is_err());
        m.store_u32(0x100ffc, 0xdead_beef, Ordering::Relaxed)
            .unwrap();
        assert_eq!(m.read_u32(0x100ffc).unwrap(), 0xdead_beef);
    }

    #[test]
    fn slices_are_checked() {
        let m = two_ranges();
        let s = m.slice(0x1000, 16).unwrap();
        s.write(8, &[9; 8]).unwrap();
        assert!(s.write(9, &[9; 8]).is_err());
        assert!(s.subslice(8, 9).is_err());
        assert!(s.subslice(usize::MAX, 2).is_err());
        let mut b = [0u8; 8];
        s.subslice(8, 8).unwrap().read(0, &mut b).unwrap();
        assert_eq!(b, [9; 8]);
        s.fill(0);
        assert_eq!(m.read_u64(0x1008).unwrap(), 0);
    }

    #[test]
    fn rejects_bad_layouts() {
        assert!(matches!(
            GuestMemory::new_anonymous(&[]),
            Err(MapError::Empty)
        ));
        assert!(matches!(
            GuestMemory::new_anonymous(&[MemoryRange::new(0, 0)]),
            Err(MapError::ZeroSize(0))
        ));
        assert!(matches!(
            GuestMemory::new_anonymous(&[
                MemoryRange::new(0, 0x2000),
                MemoryRange::new(0x1000, 0x1000)
            ]),
            Err(MapError::Overlap(0, 0x1000))
        ));
        assert!(matches!(
            GuestMemory::new_anonymous(&[MemoryRange::new(u64::MAX - 0xfff, 0x2000)]),
            Err(MapError::Wraps { .. })
        ));
    }

    #[test]
    fn second_mapping_of_the_fds_sees_the_same_memory() {
        let m = two_ranges();
        m.write_u32(0x100004, 0xfeed_f00d).unwrap();
        let again = GuestMemory::from_fds(m.regions().map(|r| {
            (
                r.range,
                r.fd.unwrap().try_clone_to_owned().unwrap(),
                r.fd_offset,
            )
        }))
        .unwrap();
        assert_eq!(again.read_u32(0x100004).unwrap(), 0xfeed_f00d);
        again.write_u8(0x5, 0x42).unwrap();
        assert_eq!(m.read_u8(0x5).unwrap(), 0x42);
        // A file too small for the range it is said to back is refused.
        let r = m.regions().nth(1).unwrap();
        let too_big = MemoryRange::new(0, r.range.size + 1);
        assert!(matches!(
            GuestMemory::from_fds([(too_big, r.fd.unwrap().try_clone_to_owned().unwrap(), 0)]),
            Err(MapError::FileTooSmall { .. })
        ));
    }

    #[test]
    fn vectored_file_io_lands_in_guest_memory() {
        use std::io::{Seek, Write};
        let m = two_ranges();
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[0xab; 0x20]).unwrap();
        f.rewind().unwrap();
        let sl = m.slices(0xfff0, 0x20).unwrap();
        assert_eq!(m.preadv(f.as_fd(), &sl, 0).unwrap(), 0x20);
        assert_eq!(m.read_u8(0x1000f).unwrap(), 0xab);
        m.write(0xfff0, &[0x11; 0x20]).unwrap();
        assert_eq!(m.pwritev(f.as_fd(), &sl, 0x20).unwrap(), 0x20);
        let mut back = [0u8; 0x40];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut back, 0).unwrap();
        assert_eq!(&back[0x20..], &[0x11; 0x20]);
    }
}
