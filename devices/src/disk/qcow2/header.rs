//! The qcow2 header and its extensions (QEMU docs/interop/qcow2.txt).
//!
//! Parsing checks every field that later code relies on, so the rest of the
//! driver can trust a [`Header`]: sizes are in range, tables are cluster
//! aligned and lie inside the file, and every incompatible feature is one we
//! implement.

use std::path::{Path, PathBuf};

use crate::disk::DiskError;

pub const MAGIC: [u8; 4] = *b"QFI\xfb";
pub const MIN_CLUSTER_BITS: u32 = 9;
pub const MAX_CLUSTER_BITS: u32 = 21;
pub const V2_HEADER_LEN: usize = 72;
pub const V3_HEADER_LEN: usize = 104;
/// The longest backing file name the format allows.
pub const MAX_BACKING_NAME: u32 = 1023;
/// Table size limits, as QEMU's, so that a hostile header cannot make us
/// allocate more than a few tens of MiB.
pub const MAX_L1_BYTES: u64 = 32 << 20;
pub const MAX_REFCOUNT_TABLE_BYTES: u64 = 32 << 20;
/// Guest offsets must stay far from u64 overflow.
pub const MAX_DISK_SIZE: u64 = 1 << 56;

pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_EXTERNAL_DATA: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;
pub const INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

/// Byte offsets of the fields we rewrite in place.
pub const OFF_REFCOUNT_TABLE: u64 = 48;
pub const OFF_INCOMPAT: u64 = 72;
pub const OFF_AUTOCLEAR: u64 = 88;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_FEATURE_NAMES: u32 = 0x6803_f857;
const EXT_FULL_DISK_ENCRYPTION: u32 = 0x0537_be77;
const EXT_EXTERNAL_DATA_FILE: u32 = 0x4441_5441;

#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub incompatible_features: u64,
    pub autoclear_features: u64,
    pub header_length: u32,
    pub backing_format: Option<String>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(v)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

struct Fail<'a>(&'a Path);

impl Fail<'_> {
    fn bad(&self, reason: impl Into<String>) -> DiskError {
        DiskError::BadHeader {
            path: self.0.to_path_buf(),
            reason: reason.into(),
        }
    }
    fn unsupported(&self, feature: impl Into<String>) -> DiskError {
        DiskError::Unsupported {
            path: self.0.to_path_buf(),
            feature: feature.into(),
        }
    }
    fn corrupt(&self, reason: impl Into<String>) -> DiskError {
        DiskError::Corrupt {
            path: self.0.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Checks that a table of `len` bytes at `offset` is cluster aligned and lies
/// inside a file of `file_len` bytes.
fn check_table(
    f: &Fail,
    what: &str,
    offset: u64,
    len: u64,
    cluster_size: u64,
    file_len: u64,
) -> Result<(), DiskError> {
    if offset % cluster_size != 0 {
        return Err(f.corrupt(format!(
            "{what} at offset {offset:#x} is not cluster aligned"
        )));
    }
    if offset == 0 && len > 0 {
        return Err(f.corrupt(format!("{what} overlaps the header")));
    }
    match offset.checked_add(len) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(f.corrupt(format!(
            "{what} at offset {offset:#x} length {len} points outside the file ({file_len} bytes)"
        ))),
    }
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Parses the header from `first` (the file's first cluster, or all of
    /// the file if it is shorter) of a file of `file_len` bytes.
    pub fn parse(path: &Path, first: &[u8], file_len: u64) -> Result<Header, DiskError> {
        let f = Fail(path);
        if first.len() < 4 || first[0..4] != MAGIC {
            return Err(f.bad("bad magic"));
        }
        if first.len() < V2_HEADER_LEN {
            return Err(f.bad("file too short for a header"));
        }
        let version = be32(first, 4);
        if version != 2 && version != 3 {
            return Err(f.bad(format!("unsupported version {version}")));
        }
        let cluster_bits = be32(first, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(f.bad(format!(
                "cluster size 2^{cluster_bits} out of range (512 B to 2 MiB)"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let crypt_method = be32(first, 32);
        if crypt_method != 0 {
            return Err(f.unsupported(format!("encryption (method {crypt_method})")));
        }
        let mut h = Header {
            version,
            backing_file_offset: be64(first, 8),
            backing_file_size: be32(first, 16),
            cluster_bits,
            size: be64(first, 24),
            l1_size: be32(first, 36),
            l1_table_offset: be64(first, 40),
            refcount_table_offset: be64(first, 48),
            refcount_table_clusters: be32(first, 56),
            nb_snapshots: be32(first, 60),
            incompatible_features: 0,
            autoclear_features: 0,
            header_length: V2_HEADER_LEN as u32,
            backing_format: None,
        };
        let mut feature_names: Vec<(u8, u8, String)> = Vec::new();
        if version == 3 {
            if first.len() < V3_HEADER_LEN {
                return Err(f.bad("file too short for a version 3 header"));
            }
            h.incompatible_features = be64(first, 72);
            h.autoclear_features = be64(first, 88);
            let refcount_order = be32(first, 96);
            h.header_length = be32(first, 100);
            if refcount_order != 4 {
                return Err(f.unsupported(format!(
                    "refcount width of {} bits (only 16 is supported)",
                    1u64 << refcount_order.min(63)
                )));
            }
            if (h.header_length as usize) < V3_HEADER_LEN
                || u64::from(h.header_length) > cluster_size
            {
                return Err(f.bad(format!("header length {} out of range", h.header_length)));
            }
        }
        if u64::from(h.header_length) > first.len() as u64 {
            return Err(f.bad("file too short for its header"));
        }

        // Header extensions follow the header, up to the end of the first
        // cluster. Each step moves forward by at least 8 bytes.
        let limit = first.len();
        let mut at = (h.header_length as usize + 7) & !7;
        while at + 8 <= limit {
            let ty = be32(first, at);
            let len = be32(first, at + 4) as usize;
            if ty == EXT_END {
                break;
            }
            let data_start = at + 8;
            let data_end = match data_start.checked_add(len) {
                Some(e) if e <= limit => e,
                _ => {
                    return Err(f.bad(format!(
                        "header extension {ty:#x} runs past the first cluster"
                    )))
                }
            };
            let data = &first[data_start..data_end];
            match ty {
                EXT_BACKING_FORMAT => {
                    h.backing_format = Some(String::from_utf8_lossy(data).into_owned());
                }
                EXT_FEATURE_NAMES => {
                    for entry in data.chunks_exact(48) {
                        let name = entry[2..].split(|&b| b == 0).next().unwrap_or(&[]);
                        feature_names.push((
                            entry[0],
                            entry[1],
                            String::from_utf8_lossy(name).into_owned(),
                        ));
                    }
                }
                EXT_FULL_DISK_ENCRYPTION => {
                    return Err(f.unsupported("encryption (full disk encryption header)"))
                }
                EXT_EXTERNAL_DATA_FILE => return Err(f.unsupported("external data file")),
                _ => {}
            }
            at = data_start + ((len + 7) & !7);
        }

        let incompat = h.incompatible_features;
        if incompat & INCOMPAT_EXTERNAL_DATA != 0 {
            return Err(f.unsupported("external data file"));
        }
        if incompat & INCOMPAT_COMPRESSION_TYPE != 0 {
            return Err(f.unsupported("compression type other than deflate (zstd)"));
        }
        if incompat & INCOMPAT_EXTENDED_L2 != 0 {
            return Err(f.unsupported("extended L2 entries (subclusters)"));
        }
        let unknown = incompat & !(INCOMPAT_DIRTY | INCOMPAT_CORRUPT);
        if unknown != 0 {
            let bit = unknown.trailing_zeros();
            let name = feature_names
                .iter()
                .find(|(ty, b, _)| *ty == 0 && u32::from(*b) == bit)
                .map(|(_, _, n)| format!(" \"{n}\""))
                .unwrap_or_default();
            return Err(f.unsupported(format!("unknown incompatible feature bit {bit}{name}")));
        }

        if h.size > MAX_DISK_SIZE {
            return Err(f.bad(format!("disk size {} too large", h.size)));
        }
        let l1_bytes = u64::from(h.l1_size) * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(f.unsupported(format!("L1 table of {} entries (too large)", h.l1_size)));
        }
        // One L1 entry maps cluster_size / 8 clusters.
        let l1_coverage =
            u128::from(h.l1_size) * u128::from(cluster_size / 8) * u128::from(cluster_size);
        if l1_coverage < u128::from(h.size) {
            return Err(f.corrupt(format!(
                "L1 table of {} entries is too small for the disk size",
                h.l1_size
            )));
        }
        check_table(
            &f,
            "L1 table",
            h.l1_table_offset,
            l1_bytes,
            cluster_size,
            file_len,
        )?;
        let rt_bytes = u64::from(h.refcount_table_clusters) * cluster_size;
        if rt_bytes > MAX_REFCOUNT_TABLE_BYTES {
            return Err(f.unsupported(format!(
                "refcount table of {} clusters (too large)",
                h.refcount_table_clusters
            )));
        }
        check_table(
            &f,
            "refcount table",
            h.refcount_table_offset,
            rt_bytes,
            cluster_size,
            file_len,
        )?;

        if h.backing_file_size > 0 {
            if h.backing_file_size > MAX_BACKING_NAME {
                return Err(f.bad(format!(
                    "backing file name of {} bytes is too long",
                    h.backing_file_size
                )));
            }
            let end = h
                .backing_file_offset
                .checked_add(u64::from(h.backing_file_size));
            match end {
                Some(end) if end <= first.len() as u64 => {}
                _ => return Err(f.bad("backing file name lies outside the first cluster")),
            }
        }
        Ok(h)
    }

    /// The backing file name as stored in the image, if there is one.
    pub fn backing_name(&self, first: &[u8]) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        if self.backing_file_size == 0 {
            return None;
        }
        let start = self.backing_file_offset as usize;
        let end = start + self.backing_file_size as usize;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(
            &first[start..end],
        )))
    }
}
