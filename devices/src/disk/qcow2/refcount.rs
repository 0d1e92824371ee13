//! Cluster allocation and 16-bit refcounts.
//!
//! Allocation walks forward from a cursor that starts at the end of the file
//! and never moves back while the image is open, so a cluster given back
//! during this session is not reused before the image is reopened: no
//! cluster that an on-disk table might still name is ever overwritten.
//!
//! Every refcount block counts itself (unlike the C vmd, which leaked one
//! cluster per new block), and when the refcount table is full it moves to a
//! bigger one that counts its own clusters and the blocks that cover them.

use super::{header, u64s_be, Qcow2Image, Result};
use crate::disk::{sys, DiskError};

/// Host offsets must fit in the 56-bit offset field of L1/L2 entries.
const MAX_HOST_OFFSET: u64 = 1 << 56;
/// How far past the cursor to look for a free cluster before giving up.
const MAX_FREE_SCAN: u64 = 1 << 22;
/// Refcount-block allocation recurses at most twice in practice.
const MAX_RC_DEPTH: u32 = 8;

fn be_u16s(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn u16s_be(vals: &[u16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_be_bytes()).collect()
}

impl Qcow2Image {
    fn refcounts_per_block(&self) -> u64 {
        self.cluster_size / 2
    }

    fn load_refcount_block(&mut self, offset: u64) -> Result<()> {
        if self.rc_blocks.contains(offset) {
            return Ok(());
        }
        self.check_offset("refcount block", offset)?;
        let mut bytes = vec![0u8; self.cluster_size as usize];
        sys::read_zero_fill(&self.file, &mut bytes, offset).map_err(|e| self.io_err(e))?;
        self.make_room_refcount_blocks()?;
        self.rc_blocks.insert(offset, be_u16s(&bytes), false);
        Ok(())
    }

    fn make_room_refcount_blocks(&mut self) -> Result<()> {
        while self.rc_blocks.is_full() {
            let Some((key, dirty)) = self.rc_blocks.victim() else {
                break;
            };
            if dirty {
                // A refcount reaching the disk early can only leak.
                self.write_refcount_block(key)?;
            }
            self.rc_blocks.remove(key);
        }
        Ok(())
    }

    fn write_refcount_block(&mut self, offset: u64) -> Result<()> {
        let Some(block) = self.rc_blocks.peek(offset) else {
            return Ok(());
        };
        let bytes = u16s_be(block);
        self.pwrite(&bytes, offset)?;
        self.rc_blocks.mark_clean(offset);
        Ok(())
    }

    pub(super) fn write_dirty_refcount_blocks(&mut self) -> Result<()> {
        for key in self.rc_blocks.dirty_keys() {
            self.write_refcount_block(key)?;
        }
        Ok(())
    }

    /// The refcount of a host cluster (0 if no block covers it).
    pub(super) fn refcount(&mut self, cluster: u64) -> Result<u16> {
        let rpb = self.refcounts_per_block();
        let Some(&block) = self.rc_table.get((cluster / rpb) as usize) else {
            return Ok(0);
        };
        if block == 0 {
            return Ok(0);
        }
        self.load_refcount_block(block)?;
        match self.rc_blocks.get(block) {
            Some(b) => Ok(b[(cluster % rpb) as usize]),
            None => Err(self.corrupt("refcount block vanished from the cache".into())),
        }
    }

    /// The next cluster at or after the cursor with refcount 0; moves the
    /// cursor past it.
    fn find_free_cluster(&mut self) -> Result<u64> {
        let mut cluster = self.next_free;
        let give_up = cluster.saturating_add(MAX_FREE_SCAN);
        loop {
            if cluster >= give_up {
                // Only a hostile image counts millions of clusters past the
                // end of its file.
                return Err(self.corrupt(format!(
                    "no free cluster among {MAX_FREE_SCAN} after the end of the file"
                )));
            }
            if (cluster + 1) << self.cluster_bits > MAX_HOST_OFFSET {
                return Err(DiskError::Corrupt {
                    path: self.path.clone(),
                    reason: "no free cluster below the 64 PiB offset limit".into(),
                });
            }
            if self.refcount(cluster)? == 0 {
                break;
            }
            cluster += 1;
        }
        self.next_free = cluster + 1;
        self.file_len = self.file_len.max((cluster + 1) << self.cluster_bits);
        Ok(cluster)
    }

    /// Allocates one cluster (refcount 1) and returns its offset.
    pub(super) fn alloc_cluster(&mut self) -> Result<u64> {
        let cluster = self.find_free_cluster()?;
        self.update_refcount(cluster, 1)?;
        Ok(cluster << self.cluster_bits)
    }

    /// Adds `delta` to a cluster's refcount, creating the refcount block (and
    /// growing the refcount table) if needed.
    pub(super) fn update_refcount(&mut self, cluster: u64, delta: i32) -> Result<()> {
        if self.rc_depth >= MAX_RC_DEPTH {
            return Err(self.corrupt("refcount block allocation does not converge".into()));
        }
        self.rc_depth += 1;
        let result = self.update_refcount_inner(cluster, delta);
        self.rc_depth -= 1;
        result
    }

    fn update_refcount_inner(&mut self, cluster: u64, delta: i32) -> Result<()> {
        let rpb = self.refcounts_per_block();
        let index = cluster / rpb;
        if index >= self.rc_table.len() as u64 {
            if delta < 0 {
                return Err(self.corrupt(format!("freeing cluster {cluster} that has no refcount")));
            }
            self.grow_refcount_table(index + 1)?;
        }
        let mut block = self.rc_table[index as usize];
        if block == 0 {
            if delta < 0 {
                return Err(self.corrupt(format!("freeing cluster {cluster} that has no refcount")));
            }
            block = self.new_refcount_block(index)?;
        }
        self.load_refcount_block(block)?;
        let slot = (cluster % rpb) as usize;
        let old = match self.rc_blocks.get_mut(block) {
            Some(b) => b[slot],
            None => return Err(self.corrupt("refcount block vanished from the cache".into())),
        };
        let new = i64::from(old) + i64::from(delta);
        let Ok(new) = u16::try_from(new) else {
            return Err(self.corrupt(format!("refcount of cluster {cluster} would be {new}")));
        };
        if let Some(b) = self.rc_blocks.get_mut(block) {
            b[slot] = new;
        }
        Ok(())
    }

    /// Allocates a refcount block for table index `index`, counting the
    /// block itself.
    fn new_refcount_block(&mut self, index: u64) -> Result<u64> {
        let cluster = self.find_free_cluster()?;
        let offset = cluster << self.cluster_bits;
        self.make_room_refcount_blocks()?;
        self.rc_blocks
            .insert(offset, vec![0; self.refcounts_per_block() as usize], true);
        self.rc_table[index as usize] = offset;
        self.rc_table_dirty = true;
        self.update_refcount(cluster, 1)?;
        Ok(offset)
    }

    /// Moves the refcount table to a bigger place at the cursor, so that it
    /// has at least `min_entries` entries. The new table and the blocks that
    /// count it are written and synced before the header points at them;
    /// only then is the old table given back.
    fn grow_refcount_table(&mut self, min_entries: u64) -> Result<()> {
        let cs = self.cluster_size;
        let rpb = self.refcounts_per_block();
        let old_len = self.rc_table.len() as u64;
        // The new table names every block we have in memory.
        self.write_dirty_refcount_blocks()?;

        // Everything from `start` on is beyond the old table's reach, hence
        // free.
        let start = self.next_free.max(old_len * rpb);
        let mut entries = min_entries.max(old_len * 2).max(cs / 8);
        let mut blocks = 0u64;
        let mut table_clusters;
        let mut converged = false;
        for _ in 0..64 {
            table_clusters = (entries * 8).div_ceil(cs);
            let end = start + table_clusters + blocks;
            let last_index = (end - 1) / rpb;
            let need_blocks = last_index - start / rpb + 1;
            let need_entries = entries.max(last_index + 1);
            if need_blocks == blocks && need_entries == entries {
                converged = true;
                break;
            }
            blocks = need_blocks;
            entries = need_entries;
        }
        table_clusters = (entries * 8).div_ceil(cs);
        if !converged || table_clusters * cs > header::MAX_REFCOUNT_TABLE_BYTES {
            return Err(DiskError::Unsupported {
                path: self.path.clone(),
                feature: format!(
                    "refcount table of more than {} bytes",
                    header::MAX_REFCOUNT_TABLE_BYTES
                ),
            });
        }
        let entries = table_clusters * cs / 8;
        let end = start + table_clusters + blocks;
        if end << self.cluster_bits > MAX_HOST_OFFSET {
            return Err(
                self.corrupt("refcount table would lie beyond the 64 PiB offset limit".into())
            );
        }

        let first_index = start / rpb;
        let mut new_blocks = vec![vec![0u16; rpb as usize]; blocks as usize];
        for cluster in start..end {
            new_blocks[(cluster / rpb - first_index) as usize][(cluster % rpb) as usize] = 1;
        }
        let mut table = self.rc_table.clone();
        table.resize(entries as usize, 0);
        for (k, block) in new_blocks.iter().enumerate() {
            let offset = (start + table_clusters + k as u64) << self.cluster_bits;
            table[(first_index + k as u64) as usize] = offset;
            self.pwrite(&u16s_be(block), offset)?;
        }
        let table_offset = start << self.cluster_bits;
        self.pwrite(&u64s_be(&table), table_offset)?;
        self.sync()?;
        let mut field = [0u8; 12];
        field[..8].copy_from_slice(&table_offset.to_be_bytes());
        field[8..].copy_from_slice(&(table_clusters as u32).to_be_bytes());
        self.pwrite(&field, header::OFF_REFCOUNT_TABLE)?;
        self.sync()?;

        let old_offset = self.header.refcount_table_offset;
        let old_clusters = u64::from(self.header.refcount_table_clusters);
        self.header.refcount_table_offset = table_offset;
        self.header.refcount_table_clusters = table_clusters as u32;
        self.rc_table = table;
        self.rc_table_dirty = false;
        self.next_free = end;
        self.file_len = self.file_len.max(end << self.cluster_bits);
        if old_clusters > 0 {
            let first = old_offset >> self.cluster_bits;
            for cluster in first..first + old_clusters {
                self.update_refcount(cluster, -1)?;
            }
        }
        Ok(())
    }
}
