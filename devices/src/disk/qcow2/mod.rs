//! qcow2 images, versions 2 and 3 (QEMU docs/interop/qcow2.txt), with
//! backing chains, copy-on-write, compressed-cluster reads and crash-safe
//! metadata updates.
//!
//! Metadata lives in write-back caches and reaches the file only in an order
//! that keeps the image consistent after a crash at any point:
//!
//! 1. guest data and refcount blocks, then fdatasync, then the refcount table
//!    (only if it gained entries) and fdatasync: every cluster that a table
//!    is about to reference is counted and holds its data;
//! 2. L2 tables, then fdatasync;
//! 3. the L1 table, then fdatasync;
//! 4. only then are clusters that the new tables no longer reference given
//!    back (refcount decremented), so an on-disk table never points at a free
//!    cluster.
//!
//! A crash loses at most writes that no completed flush covered, and can
//! leak clusters (counted but unreferenced), which `qemu-img check` reports
//! and repairs; it can never corrupt the image. An L2 table evicted from the
//! cache between flushes goes through steps 1 and 2 first.

mod cache;
mod header;
mod refcount;

use std::fs::{File, OpenOptions};
use std::io::{IoSlice, IoSliceMut};
use std::path::{Path, PathBuf};

use self::cache::TableCache;
pub use self::header::MAGIC;
use self::header::{Header, INCOMPAT_CORRUPT, INCOMPAT_DIRTY, OFF_AUTOCLEAR, OFF_INCOMPAT};
use super::{check_range, iov, sys, DiskError, DiskImage, ImageFormat, RawImage, Result};

/// The longest backing chain, counting the top image, as the C vmd.
pub const MAX_CHAIN_DEPTH: usize = 4;

/// Bits of L1 and L2 entries.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const ZERO: u64 = 1;
const L1_RESERVED: u64 = 0x7f00_0000_0000_01ff;
const L2_RESERVED: u64 = 0x3f00_0000_0000_01fe;
const REFCOUNT_TABLE_RESERVED: u64 = 0x1ff;

/// Cache budgets per image.
const L2_CACHE_BYTES: u64 = 16 << 20;
const REFCOUNT_CACHE_BYTES: u64 = 2 << 20;

/// Where a guest cluster's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mapping {
    /// Not in this image: the backing file's bytes, or zeros.
    Unallocated,
    /// Reads as zeros (the v3 zero flag).
    Zero,
    /// A cluster at this offset in the file.
    Data(u64),
    /// Deflate-compressed data at `offset`, at most `len` bytes long.
    Compressed { offset: u64, len: u64 },
}

pub struct Qcow2Image {
    file: File,
    path: PathBuf,
    read_only: bool,
    header: Header,
    cluster_bits: u32,
    cluster_size: u64,
    /// Bytes of the file we know about: its length at open, extended by
    /// every cluster we allocate. Tables must point below it.
    file_len: u64,
    l1: Vec<u64>,
    /// Range of L1 indices changed since the last flush.
    l1_dirty: Option<(usize, usize)>,
    l2_cache: TableCache<u64>,
    rc_table: Vec<u64>,
    /// Whether `rc_table` has entries that are not yet in the file.
    rc_table_dirty: bool,
    rc_blocks: TableCache<u16>,
    /// Allocation cursor: no cluster below it is handed out again before
    /// the image is reopened (see `refcount.rs`).
    next_free: u64,
    /// Recursion guard for refcount-block allocation.
    rc_depth: u32,
    /// (offset, length) of host ranges to dereference once the tables that
    /// stopped pointing at them are on disk.
    pending_frees: Vec<(u64, u64)>,
    /// Something was written since the last fdatasync.
    unsynced: bool,
    /// An inconsistency was found: no more writes.
    corrupt: bool,
    backing: Option<Box<dyn DiskImage>>,
    backing_path: Option<PathBuf>,
    scratch: Vec<u8>,
}

/// Host bytes a cluster used to occupy: offset and length.
type Extent = (u64, u64);

/// The most whole clusters one write allocates in a row.
const MAX_NEW_RUN: usize = 256;

/// Whether a whole-cluster write must go to a newly allocated cluster:
/// everything but a cluster this image owns alone (COPIED), which is
/// written in place, or a preallocated zero cluster it owns, which
/// [`Qcow2Image::cow_write`] reuses.
fn needs_new_cluster(mapping: Mapping, entry: u64) -> bool {
    match mapping {
        Mapping::Data(_) => entry & COPIED == 0,
        Mapping::Zero => entry & OFFSET_MASK == 0 || entry & COPIED == 0,
        Mapping::Unallocated | Mapping::Compressed { .. } => true,
    }
}

fn be_u64s(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

fn u64s_be(vals: &[u64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// Where the files of a backing chain come from.
enum ChainFiles {
    /// Opened by path; backing names resolve against the image's directory.
    Paths,
    /// Already open, top image first.
    Open(std::iter::Peekable<std::vec::IntoIter<File>>),
}

impl ChainFiles {
    /// Checks that `path` may join the chain (no loop, not too deep), and
    /// records it.
    fn enter(&self, path: &Path, chain: &mut Vec<PathBuf>) -> Result<()> {
        let key = match self {
            ChainFiles::Paths => std::fs::canonicalize(path).map_err(|e| DiskError::io(path, e))?,
            // Each open file is used once, so there is no loop to find.
            ChainFiles::Open(_) => path.to_path_buf(),
        };
        let reason = if chain.contains(&key) {
            "backing file loop".to_string()
        } else if chain.len() >= MAX_CHAIN_DEPTH {
            format!("chain deeper than {MAX_CHAIN_DEPTH} images")
        } else {
            chain.push(key);
            return Ok(());
        };
        Err(DiskError::Backing {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn open(&mut self, path: &Path, read_only: bool) -> Result<File> {
        match self {
            ChainFiles::Paths => OpenOptions::new()
                .read(true)
                .write(!read_only)
                .open(path)
                .map_err(|e| DiskError::io(path, e)),
            ChainFiles::Open(files) => files.next().ok_or_else(|| DiskError::Backing {
                path: path.to_path_buf(),
                reason: "missing base image".into(),
            }),
        }
    }

    /// The format of the backing file about to be opened: as the header
    /// says, else from its first bytes. It must be a regular file or a
    /// block device: a FIFO or a terminal named by a hostile image would
    /// block us.
    fn backing_format(&mut self, path: &Path, stated: Option<ImageFormat>) -> Result<ImageFormat> {
        let io = |e| DiskError::io(path, e);
        let (kind, detected) = match self {
            ChainFiles::Paths => {
                let kind = std::fs::metadata(path).map_err(io)?.file_type();
                let detect = || ImageFormat::detect(path);
                (
                    kind,
                    if stated.is_none() && kind.is_file() {
                        Some(detect()?)
                    } else {
                        None
                    },
                )
            }
            ChainFiles::Open(files) => {
                let Some(file) = files.peek() else {
                    return Err(DiskError::Backing {
                        path: path.to_path_buf(),
                        reason: "missing base image".into(),
                    });
                };
                let kind = file.metadata().map_err(io)?.file_type();
                (
                    kind,
                    if stated.is_none() {
                        Some(ImageFormat::detect_file(file).map_err(io)?)
                    } else {
                        None
                    },
                )
            }
        };
        if !(kind.is_file() || std::os::unix::fs::FileTypeExt::is_block_device(&kind)) {
            return Err(DiskError::Backing {
                path: path.to_path_buf(),
                reason: "not a regular file or block device".into(),
            });
        }
        match (stated, detected) {
            (Some(f), _) | (None, Some(f)) => Ok(f),
            (None, None) => ImageFormat::detect(path),
        }
    }
}

impl Qcow2Image {
    /// Opens a qcow2 image and its backing chain (read-only).
    pub fn open(path: &Path, read_only: bool) -> Result<Qcow2Image> {
        Self::open_in_chain(path, read_only, &mut Vec::new(), &mut ChainFiles::Paths)
    }

    /// Opens a qcow2 image from files already open: the image first, then
    /// its backing chain in order, as the vm process hands them to a vioblk
    /// child. `name` (the image's path) resolves backing names for messages.
    pub fn open_files(files: Vec<File>, name: &Path, read_only: bool) -> Result<Qcow2Image> {
        let mut files = ChainFiles::Open(files.into_iter().peekable());
        Self::open_in_chain(name, read_only, &mut Vec::new(), &mut files)
    }

    /// The files of the image at `path` and its backing chain, top first,
    /// so that a privileged parent can open them for a sandboxed child.
    pub fn chain_paths(path: &Path) -> Result<Vec<PathBuf>> {
        let mut chain = Vec::new();
        Self::open_in_chain(path, true, &mut chain, &mut ChainFiles::Paths)?;
        Ok(chain)
    }

    /// The virtual size of the image.
    pub fn backing_file(&self) -> Option<&Path> {
        self.backing_path.as_deref()
    }

    pub fn cluster_size(&self) -> u64 {
        self.cluster_size
    }

    fn open_in_chain(
        path: &Path,
        read_only: bool,
        chain: &mut Vec<PathBuf>,
        files: &mut ChainFiles,
    ) -> Result<Qcow2Image> {
        files.enter(path, chain)?;
        let file = files.open(path, read_only)?;
        let file_len = file.metadata().map_err(|e| DiskError::io(path, e))?.len();
        let first_len = file_len.min(1 << header::MAX_CLUSTER_BITS) as usize;
        let mut first = vec![0u8; first_len];
        sys::read_zero_fill(&file, &mut first, 0).map_err(|e| DiskError::io(path, e))?;
        // The header may only use the first cluster.
        if first_len >= 24 && first[0..4] == MAGIC {
            let bits = u32::from_be_bytes([first[20], first[21], first[22], first[23]]);
            if (header::MIN_CLUSTER_BITS..=header::MAX_CLUSTER_BITS).contains(&bits) {
                first.truncate(first_len.min(1 << bits));
            }
        }
        let header = Header::parse(path, &first, file_len)?;
        let cluster_bits = header.cluster_bits;
        let cluster_size = header.cluster_size();

        if !read_only {
            if header.incompatible_features & INCOMPAT_CORRUPT != 0 {
                return Err(DiskError::MarkedCorrupt {
                    path: path.to_path_buf(),
                });
            }
            if header.incompatible_features & INCOMPAT_DIRTY != 0 {
                return Err(DiskError::Unsupported {
                    path: path.to_path_buf(),
                    feature: "dirty bit set (lazy refcounts); repair with qemu-img check -r all before writing".into(),
                });
            }
            if header.nb_snapshots != 0 {
                return Err(DiskError::Unsupported {
                    path: path.to_path_buf(),
                    feature: "writing to an image with internal snapshots".into(),
                });
            }
        }

        let corrupt_err = |reason: String| DiskError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let mut l1_bytes = vec![0u8; header.l1_size as usize * 8];
        sys::read_zero_fill(&file, &mut l1_bytes, header.l1_table_offset)
            .map_err(|e| DiskError::io(path, e))?;
        let l1 = be_u64s(&l1_bytes);
        for (i, &e) in l1.iter().enumerate() {
            let off = e & OFFSET_MASK;
            if e & L1_RESERVED != 0 {
                return Err(corrupt_err(format!("L1 entry {i} has reserved bits set")));
            }
            if off % cluster_size != 0 || (off != 0 && off >= file_len) {
                return Err(corrupt_err(format!(
                    "L1 entry {i} points outside the file or is misaligned"
                )));
            }
        }
        let mut rt_bytes =
            vec![0u8; (u64::from(header.refcount_table_clusters) * cluster_size) as usize];
        sys::read_zero_fill(&file, &mut rt_bytes, header.refcount_table_offset)
            .map_err(|e| DiskError::io(path, e))?;
        let rc_table = be_u64s(&rt_bytes);
        for (i, &e) in rc_table.iter().enumerate() {
            if e & REFCOUNT_TABLE_RESERVED != 0
                || e % cluster_size != 0
                || (e != 0 && e >= file_len)
            {
                return Err(corrupt_err(format!(
                    "refcount table entry {i} points outside the file or is misaligned"
                )));
            }
        }

        let (backing, backing_path) = match header.backing_name(&first) {
            None => (None, None),
            Some(name) => {
                // Relative names are relative to the image's directory, as
                // in qemu.
                let resolved = if name.is_absolute() {
                    name
                } else {
                    path.parent().unwrap_or(Path::new(".")).join(name)
                };
                let format = match header.backing_format.as_deref() {
                    Some("qcow2") => Some(ImageFormat::Qcow2),
                    Some("raw") => Some(ImageFormat::Raw),
                    Some(other) => {
                        return Err(DiskError::Unsupported {
                            path: path.to_path_buf(),
                            feature: format!("backing file format {other:?}"),
                        })
                    }
                    None => None,
                };
                let image: Box<dyn DiskImage> = match files.backing_format(&resolved, format)? {
                    ImageFormat::Qcow2 => {
                        Box::new(Self::open_in_chain(&resolved, true, chain, files)?)
                    }
                    ImageFormat::Raw => {
                        files.enter(&resolved, chain)?;
                        Box::new(RawImage::from_file(
                            files.open(&resolved, true)?,
                            &resolved,
                            true,
                        )?)
                    }
                };
                (Some(image), Some(resolved))
            }
        };

        let mut image = Qcow2Image {
            file,
            path: path.to_path_buf(),
            read_only,
            cluster_bits,
            cluster_size,
            file_len,
            l1,
            l1_dirty: None,
            l2_cache: TableCache::new((L2_CACHE_BYTES / cluster_size).max(8) as usize),
            rc_table,
            rc_table_dirty: false,
            rc_blocks: TableCache::new((REFCOUNT_CACHE_BYTES / cluster_size).max(8) as usize),
            next_free: file_len.div_ceil(cluster_size).max(1),
            rc_depth: 0,
            pending_frees: Vec::new(),
            unsynced: false,
            corrupt: header.incompatible_features & INCOMPAT_CORRUPT != 0,
            backing,
            backing_path,
            scratch: Vec::new(),
            header,
        };
        if !read_only && image.header.autoclear_features != 0 {
            // We do not maintain any autoclear feature (e.g. bitmaps), so
            // the spec says to clear them all before writing.
            image.header.autoclear_features = 0;
            image.pwrite(&[0u8; 8], OFF_AUTOCLEAR)?;
            image.sync()?;
        }
        Ok(image)
    }

    fn io_err(&self, e: std::io::Error) -> DiskError {
        DiskError::io(&self.path, e)
    }

    fn pwrite(&mut self, buf: &[u8], offset: u64) -> Result<()> {
        self.unsynced = true;
        sys::write_all_at(&self.file, buf, offset).map_err(|e| self.io_err(e))
    }

    fn sync(&mut self) -> Result<()> {
        sys::sync_data(&self.file).map_err(|e| self.io_err(e))?;
        self.unsynced = false;
        Ok(())
    }

    /// Records an inconsistency: sets the v3 corrupt bit (best effort) and
    /// refuses further writes.
    fn corrupt(&mut self, reason: String) -> DiskError {
        log::error!("{}: qcow2 image is corrupt: {reason}", self.path.display());
        if !self.corrupt && !self.read_only && self.header.version >= 3 {
            let features = self.header.incompatible_features | INCOMPAT_CORRUPT;
            self.header.incompatible_features = features;
            let _ = sys::write_all_at(&self.file, &features.to_be_bytes(), OFF_INCOMPAT);
            let _ = sys::sync_data(&self.file);
        }
        self.corrupt = true;
        DiskError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    /// Checks that a table or cluster at `offset` is aligned and starts
    /// inside the file.
    fn check_offset(&mut self, what: &str, offset: u64) -> Result<()> {
        if offset == 0 || offset % self.cluster_size != 0 || offset >= self.file_len {
            return Err(self.corrupt(format!(
                "{what} at offset {offset:#x} is misaligned or outside the file"
            )));
        }
        Ok(())
    }

    fn l2_entries(&self) -> u64 {
        self.cluster_size / 8
    }

    /// Makes sure the L2 table at `offset` is cached, evicting (and writing
    /// back, in a safe order) another one if needed.
    fn load_l2(&mut self, offset: u64) -> Result<()> {
        if self.l2_cache.contains(offset) {
            return Ok(());
        }
        self.check_offset("L2 table", offset)?;
        let mut bytes = vec![0u8; self.cluster_size as usize];
        sys::read_zero_fill(&self.file, &mut bytes, offset).map_err(|e| self.io_err(e))?;
        self.make_room_l2()?;
        self.l2_cache.insert(offset, be_u64s(&bytes), false);
        Ok(())
    }

    fn make_room_l2(&mut self) -> Result<()> {
        while self.l2_cache.is_full() {
            let Some((key, dirty)) = self.l2_cache.victim() else {
                break;
            };
            if dirty {
                // The table may point at new clusters: their data and
                // refcounts must be durable before it is written.
                self.persist_refcounts()?;
                self.write_l2(key)?;
            }
            self.l2_cache.remove(key);
        }
        Ok(())
    }

    fn write_l2(&mut self, offset: u64) -> Result<()> {
        let Some(table) = self.l2_cache.peek(offset) else {
            return Ok(());
        };
        let bytes = u64s_be(table);
        self.pwrite(&bytes, offset)?;
        self.l2_cache.mark_clean(offset);
        Ok(())
    }

    /// The raw L2 entry for a guest cluster (0 if its L2 table is absent).
    fn l2_entry(&mut self, guest_cluster: u64) -> Result<u64> {
        let l1_index = (guest_cluster / self.l2_entries()) as usize;
        let l2_index = (guest_cluster % self.l2_entries()) as usize;
        let Some(&l1_entry) = self.l1.get(l1_index) else {
            return Err(self.corrupt(format!(
                "guest cluster {guest_cluster} is beyond the L1 table"
            )));
        };
        let table = l1_entry & OFFSET_MASK;
        if table == 0 {
            return Ok(0);
        }
        self.load_l2(table)?;
        match self.l2_cache.get(table) {
            Some(t) => Ok(t[l2_index]),
            None => Err(self.corrupt("L2 table vanished from the cache".into())),
        }
    }

    fn decode(&mut self, entry: u64) -> Result<Mapping> {
        if entry & COMPRESSED != 0 {
            // The offset field is 62 - (cluster_bits - 8) bits wide; the
            // sector count (minus one) sits above it.
            let offset_bits = 62 - (self.cluster_bits - 8);
            let offset = entry & ((1u64 << offset_bits) - 1);
            let sectors = ((entry >> offset_bits) & ((1u64 << (self.cluster_bits - 8)) - 1)) + 1;
            let len = sectors * 512 - (offset & 511);
            if offset < self.cluster_size || offset >= self.file_len {
                return Err(self.corrupt(format!(
                    "compressed cluster at {offset:#x} is outside the file"
                )));
            }
            return Ok(Mapping::Compressed { offset, len });
        }
        if entry & L2_RESERVED != 0 {
            return Err(self.corrupt(format!("L2 entry {entry:#x} has reserved bits set")));
        }
        let offset = entry & OFFSET_MASK;
        if entry & ZERO != 0 {
            return Ok(Mapping::Zero);
        }
        if offset == 0 {
            return Ok(Mapping::Unallocated);
        }
        self.check_offset("data cluster", offset)?;
        // A data cluster inside the L1 or refcount table would let guest
        // writes overwrite metadata.
        let tables = [
            (
                self.header.l1_table_offset,
                u64::from(self.header.l1_size) * 8,
            ),
            (
                self.header.refcount_table_offset,
                u64::from(self.header.refcount_table_clusters) * self.cluster_size,
            ),
        ];
        if tables
            .iter()
            .any(|&(start, len)| offset < start + len && start < offset + self.cluster_size)
        {
            return Err(self.corrupt(format!(
                "data cluster at {offset:#x} overlaps a metadata table"
            )));
        }
        Ok(Mapping::Data(offset))
    }

    fn mapping(&mut self, guest_cluster: u64) -> Result<(Mapping, u64)> {
        let entry = self.l2_entry(guest_cluster)?;
        Ok((self.decode(entry)?, entry))
    }

    /// Reads guest bytes `[guest, guest + len)` from the backing chain into
    /// `bufs[pos..]`; bytes beyond the backing file read as zeros.
    fn read_backing(
        &mut self,
        bufs: &mut [IoSliceMut<'_>],
        pos: usize,
        len: usize,
        guest: u64,
    ) -> Result<()> {
        let Some(backing) = self.backing.as_mut() else {
            iov::zero(bufs, pos, len);
            return Ok(());
        };
        let backing_size = backing.size();
        iov::for_each_mut(bufs, pos, len, |piece, at| {
            let start = guest + at as u64;
            let avail = backing_size.saturating_sub(start).min(piece.len() as u64) as usize;
            if avail > 0 {
                backing.read_at(&mut piece[..avail], start)?;
            }
            piece[avail..].fill(0);
            Ok(())
        })
    }

    fn read_compressed(&mut self, offset: u64, len: u64, out: &mut [u8]) -> Result<()> {
        let mut input = vec![0u8; len as usize];
        sys::read_zero_fill(&self.file, &mut input, offset).map_err(|e| self.io_err(e))?;
        let mut inflater = flate2::Decompress::new(false);
        let ok = inflater
            .decompress(&input, out, flate2::FlushDecompress::Finish)
            .is_ok()
            && inflater.total_out() == out.len() as u64;
        if !ok {
            return Err(self.corrupt(format!(
                "compressed cluster at {offset:#x} does not inflate to a cluster"
            )));
        }
        Ok(())
    }

    /// Fills `out` (one cluster) with the current contents of a guest
    /// cluster, whatever its mapping.
    fn read_cluster(&mut self, guest_cluster: u64, mapping: Mapping, out: &mut [u8]) -> Result<()> {
        match mapping {
            Mapping::Zero => out.fill(0),
            Mapping::Unallocated => {
                let guest = guest_cluster << self.cluster_bits;
                self.read_backing(
                    &mut [IoSliceMut::new(out)],
                    0,
                    self.cluster_size as usize,
                    guest,
                )?
            }
            Mapping::Data(host) => {
                sys::read_zero_fill(&self.file, out, host).map_err(|e| self.io_err(e))?
            }
            Mapping::Compressed { offset, len } => self.read_compressed(offset, len, out)?,
        }
        Ok(())
    }

    /// An L2 table for `l1_index` that may be modified: allocated if absent.
    fn writable_l2(&mut self, l1_index: usize) -> Result<u64> {
        let Some(&l1_entry) = self.l1.get(l1_index) else {
            return Err(self.corrupt(format!("L1 index {l1_index} is beyond the L1 table")));
        };
        let table = l1_entry & OFFSET_MASK;
        if table != 0 {
            if l1_entry & COPIED == 0 {
                // Only internal snapshots share L2 tables, and we do not
                // write to images that have them.
                return Err(self.corrupt(format!(
                    "L2 table at {table:#x} is shared (COPIED flag clear)"
                )));
            }
            self.load_l2(table)?;
            return Ok(table);
        }
        let new = self.alloc_cluster()?;
        self.make_room_l2()?;
        self.l2_cache
            .insert(new, vec![0; self.l2_entries() as usize], true);
        self.l1[l1_index] = new | COPIED;
        self.l1_dirty = Some(match self.l1_dirty {
            None => (l1_index, l1_index),
            Some((a, b)) => (a.min(l1_index), b.max(l1_index)),
        });
        Ok(new)
    }

    fn set_l2_entry(&mut self, guest_cluster: u64, entry: u64) -> Result<()> {
        let l1_index = (guest_cluster / self.l2_entries()) as usize;
        let l2_index = (guest_cluster % self.l2_entries()) as usize;
        let table = self.writable_l2(l1_index)?;
        match self.l2_cache.get_mut(table) {
            Some(t) => {
                t[l2_index] = entry;
                Ok(())
            }
            None => Err(self.corrupt("L2 table vanished from the cache".into())),
        }
    }

    /// Writes `bufs[pos..pos + len]` into a guest cluster that cannot be
    /// written in place: builds the whole new cluster (old contents from
    /// wherever they are, then the new bytes) in a fresh cluster and points
    /// the L2 entry at it.
    fn cow_write(
        &mut self,
        guest_cluster: u64,
        (mapping, entry): (Mapping, u64),
        in_cluster: usize,
        bufs: &[IoSlice<'_>],
        pos: usize,
        len: usize,
    ) -> Result<()> {
        let cs = self.cluster_size as usize;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(cs, 0);
        if len < cs {
            if let Err(e) = self.read_cluster(guest_cluster, mapping, &mut buf) {
                self.scratch = buf;
                return Err(e);
            }
        }
        iov::copy_out(bufs, pos, &mut buf[in_cluster..in_cluster + len]);
        let preallocated = entry & OFFSET_MASK;
        let result = (|| {
            let (target, old) = match mapping {
                // A preallocated zero cluster that only we reference: reuse it.
                Mapping::Zero if preallocated != 0 && entry & COPIED != 0 => {
                    self.check_offset("data cluster", preallocated)?;
                    (preallocated, None)
                }
                Mapping::Zero if preallocated != 0 => (
                    self.alloc_cluster()?,
                    Some((preallocated, self.cluster_size)),
                ),
                Mapping::Data(host) => (self.alloc_cluster()?, Some((host, self.cluster_size))),
                Mapping::Compressed { offset, len } => (self.alloc_cluster()?, Some((offset, len))),
                _ => (self.alloc_cluster()?, None),
            };
            self.pwrite(&buf, target)?;
            self.set_l2_entry(guest_cluster, target | COPIED)?;
            if let Some(old) = old {
                self.pending_frees.push(old);
            }
            Ok(())
        })();
        self.scratch = buf;
        result
    }

    /// Writes whole guest clusters, starting at `first_cluster`, that all
    /// get new host clusters: as many as follow in `bufs` and need one, up
    /// to [`MAX_NEW_RUN`]. Clusters the allocator hands out back to back
    /// take one write, as a fresh image's do; nothing old is read, since
    /// every byte is overwritten. Returns the bytes written.
    fn write_new_clusters(
        &mut self,
        first_cluster: u64,
        first: (Mapping, u64),
        bufs: &[IoSlice<'_>],
        pos: usize,
        total: usize,
    ) -> Result<usize> {
        let cs = self.cluster_size as usize;
        // (guest cluster, new host offset, old host extent to free)
        let mut run: Vec<(u64, u64, Option<Extent>)> = Vec::new();
        let (mut mapping, mut entry) = first;
        loop {
            let guest = first_cluster + run.len() as u64;
            let old = match mapping {
                Mapping::Data(host) => Some((host, self.cluster_size)),
                Mapping::Compressed { offset, len } => Some((offset, len)),
                Mapping::Zero if entry & OFFSET_MASK != 0 => {
                    Some((entry & OFFSET_MASK, self.cluster_size))
                }
                _ => None,
            };
            let host = self.alloc_cluster()?;
            run.push((guest, host, old));
            if run.len() >= MAX_NEW_RUN || pos + (run.len() + 1) * cs > total {
                break;
            }
            (mapping, entry) = self.mapping(guest + 1)?;
            if !needs_new_cluster(mapping, entry) {
                break;
            }
        }
        let mut i = 0;
        while i < run.len() {
            let start = run[i].1;
            let mut j = i + 1;
            while j < run.len() && run[j].1 == start + ((j - i) * cs) as u64 {
                j += 1;
            }
            self.unsynced = true;
            let file = &self.file;
            iov::for_each(bufs, pos + i * cs, (j - i) * cs, |piece, at| {
                sys::write_all_at(file, piece, start + at as u64)
            })
            .map_err(|e| self.io_err(e))?;
            i = j;
        }
        // Only now that the data is in place do the L2 entries point at it.
        for &(guest, host, old) in &run {
            self.set_l2_entry(guest, host | COPIED)?;
            if let Some(old) = old {
                self.pending_frees.push(old);
            }
        }
        Ok(run.len() * cs)
    }

    /// Writes dirty refcount blocks and, if it changed, the refcount table,
    /// so that every cluster counted in memory is counted on disk, and all
    /// data written so far is durable.
    fn persist_refcounts(&mut self) -> Result<()> {
        self.write_dirty_refcount_blocks()?;
        if self.unsynced {
            self.sync()?;
        }
        if self.rc_table_dirty {
            let bytes = u64s_be(&self.rc_table);
            self.pwrite(&bytes, self.header.refcount_table_offset)?;
            self.sync()?;
            self.rc_table_dirty = false;
        }
        Ok(())
    }

    fn flush_metadata(&mut self) -> Result<()> {
        self.persist_refcounts()?;
        let dirty_l2 = self.l2_cache.dirty_keys();
        if !dirty_l2.is_empty() {
            for key in dirty_l2 {
                self.write_l2(key)?;
            }
            self.sync()?;
        }
        if let Some((a, b)) = self.l1_dirty {
            let bytes = u64s_be(&self.l1[a..=b]);
            self.pwrite(&bytes, self.header.l1_table_offset + a as u64 * 8)?;
            self.sync()?;
            self.l1_dirty = None;
        }
        // The tables on disk no longer point at these: give them back. The
        // refcount blocks reach the disk with the next flush (or never, which
        // only leaks the clusters).
        for (offset, len) in std::mem::take(&mut self.pending_frees) {
            let first = offset >> self.cluster_bits;
            let last = (offset + len - 1) >> self.cluster_bits;
            for cluster in first..=last {
                self.update_refcount(cluster, -1)?;
            }
        }
        Ok(())
    }
}

impl DiskImage for Qcow2Image {
    fn size(&self) -> u64 {
        self.header.size
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_vectored_at(&mut self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> Result<()> {
        let total = iov::len_mut(bufs);
        check_range(&self.path, offset, total, self.header.size)?;
        let total = total as usize;
        let cs = self.cluster_size;
        let mut pos = 0usize;
        while pos < total {
            let guest = offset + pos as u64;
            let cluster = guest >> self.cluster_bits;
            let in_cluster = guest & (cs - 1);
            let mut len = (cs - in_cluster).min((total - pos) as u64) as usize;
            let (mapping, _) = self.mapping(cluster)?;
            // Extend over following clusters that continue the same run.
            while pos + len < total && !matches!(mapping, Mapping::Compressed { .. }) {
                let next = cluster + ((in_cluster + len as u64) >> self.cluster_bits);
                let (next_mapping, _) = self.mapping(next)?;
                let continues = match (mapping, next_mapping) {
                    (Mapping::Data(a), Mapping::Data(b)) => b == a + (next - cluster) * cs,
                    (a, b) => a == b,
                };
                if !continues {
                    break;
                }
                len += cs.min((total - pos - len) as u64) as usize;
            }
            match mapping {
                Mapping::Zero => iov::zero(bufs, pos, len),
                Mapping::Unallocated => self.read_backing(bufs, pos, len, guest)?,
                Mapping::Data(host) => {
                    let file = &self.file;
                    iov::for_each_mut(bufs, pos, len, |piece, at| {
                        sys::read_zero_fill(file, piece, host + in_cluster + at as u64)
                    })
                    .map_err(|e| self.io_err(e))?;
                }
                Mapping::Compressed {
                    offset: host,
                    len: clen,
                } => {
                    let mut buf = std::mem::take(&mut self.scratch);
                    buf.resize(cs as usize, 0);
                    let r = self.read_compressed(host, clen, &mut buf);
                    if r.is_ok() {
                        let _ = iov::for_each_mut::<()>(bufs, pos, len, |piece, at| {
                            let from = in_cluster as usize + at;
                            piece.copy_from_slice(&buf[from..from + piece.len()]);
                            Ok(())
                        });
                    }
                    self.scratch = buf;
                    r?;
                }
            }
            pos += len;
        }
        Ok(())
    }

    fn write_vectored_at(&mut self, bufs: &[IoSlice<'_>], offset: u64) -> Result<()> {
        if self.read_only {
            return Err(DiskError::ReadOnly {
                path: self.path.clone(),
            });
        }
        if self.corrupt {
            return Err(DiskError::MarkedCorrupt {
                path: self.path.clone(),
            });
        }
        let total = iov::len(bufs);
        check_range(&self.path, offset, total, self.header.size)?;
        let total = total as usize;
        let cs = self.cluster_size;
        let mut pos = 0usize;
        while pos < total {
            let guest = offset + pos as u64;
            let cluster = guest >> self.cluster_bits;
            let in_cluster = guest & (cs - 1);
            let mut len = (cs - in_cluster).min((total - pos) as u64) as usize;
            let (mapping, entry) = self.mapping(cluster)?;
            match mapping {
                Mapping::Data(host) if entry & COPIED != 0 => {
                    while pos + len < total {
                        let next = cluster + ((in_cluster + len as u64) >> self.cluster_bits);
                        match self.mapping(next)? {
                            (Mapping::Data(h), e)
                                if e & COPIED != 0 && h == host + (next - cluster) * cs =>
                            {
                                len += cs.min((total - pos - len) as u64) as usize
                            }
                            _ => break,
                        }
                    }
                    self.unsynced = true;
                    let file = &self.file;
                    iov::for_each(bufs, pos, len, |piece, at| {
                        sys::write_all_at(file, piece, host + in_cluster + at as u64)
                    })
                    .map_err(|e| self.io_err(e))?;
                }
                _ if len as u64 == cs && needs_new_cluster(mapping, entry) => {
                    len = self.write_new_clusters(cluster, (mapping, entry), bufs, pos, total)?;
                }
                _ => self.cow_write(
                    cluster,
                    (mapping, entry),
                    in_cluster as usize,
                    bufs,
                    pos,
                    len,
                )?,
            }
            pos += len;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        if self.corrupt {
            return Err(DiskError::MarkedCorrupt {
                path: self.path.clone(),
            });
        }
        self.flush_metadata()
    }
}

impl Drop for Qcow2Image {
    fn drop(&mut self) {
        if !self.read_only && !self.corrupt {
            if let Err(e) = self.flush_metadata().and_then(|_| self.flush_metadata()) {
                log::warn!("{}: flush on close failed: {e}", self.path.display());
            }
        }
    }
}
