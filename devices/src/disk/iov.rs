//! Walking a list of I/O buffers as one flat byte range.

use std::io::{IoSlice, IoSliceMut};

pub fn len_mut(bufs: &[IoSliceMut<'_>]) -> u64 {
    bufs.iter().map(|b| b.len() as u64).sum()
}

pub fn len(bufs: &[IoSlice<'_>]) -> u64 {
    bufs.iter().map(|b| b.len() as u64).sum()
}

/// Calls `f(piece, at)` for each piece of `bufs` covering the flat range
/// `[pos, pos + len)`; `at` is the piece's offset from `pos`.
pub fn for_each_mut<E>(
    bufs: &mut [IoSliceMut<'_>],
    pos: usize,
    len: usize,
    mut f: impl FnMut(&mut [u8], usize) -> Result<(), E>,
) -> Result<(), E> {
    let end = pos + len;
    let mut base = 0usize;
    for buf in bufs.iter_mut() {
        let (b_start, b_end) = (base, base + buf.len());
        base = b_end;
        if b_end <= pos {
            continue;
        }
        if b_start >= end {
            break;
        }
        let from = pos.max(b_start);
        let to = end.min(b_end);
        f(&mut buf[from - b_start..to - b_start], from - pos)?;
    }
    Ok(())
}

/// Like [`for_each_mut`] for buffers that are only read.
pub fn for_each<E>(
    bufs: &[IoSlice<'_>],
    pos: usize,
    len: usize,
    mut f: impl FnMut(&[u8], usize) -> Result<(), E>,
) -> Result<(), E> {
    let end = pos + len;
    let mut base = 0usize;
    for buf in bufs.iter() {
        let (b_start, b_end) = (base, base + buf.len());
        base = b_end;
        if b_end <= pos {
            continue;
        }
        if b_start >= end {
            break;
        }
        let from = pos.max(b_start);
        let to = end.min(b_end);
        f(&buf[from - b_start..to - b_start], from - pos)?;
    }
    Ok(())
}

/// Copies the flat range `[pos, pos + dst.len())` of `bufs` into `dst`.
pub fn copy_out(bufs: &[IoSlice<'_>], pos: usize, dst: &mut [u8]) {
    let _ = for_each::<()>(bufs, pos, dst.len(), |piece, at| {
        dst[at..at + piece.len()].copy_from_slice(piece);
        Ok(())
    });
}

/// Fills the flat range `[pos, pos + len)` of `bufs` with zeros.
pub fn zero(bufs: &mut [IoSliceMut<'_>], pos: usize, len: usize) {
    let _ = for_each_mut::<()>(bufs, pos, len, |piece, _| {
        piece.fill(0);
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_range_across_buffers() {
        let (mut a, mut b, mut c) = ([0u8; 3], [0u8; 4], [0u8; 5]);
        let mut bufs = [
            IoSliceMut::new(&mut a),
            IoSliceMut::new(&mut b),
            IoSliceMut::new(&mut c),
        ];
        let mut seen = Vec::new();
        for_each_mut::<()>(&mut bufs, 2, 7, |p, at| {
            seen.push((p.len(), at));
            p.fill(1);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(1, 0), (4, 1), (2, 5)]);
        assert_eq!((a, b, c), ([0, 0, 1], [1; 4], [1, 1, 0, 0, 0]));
    }
}
