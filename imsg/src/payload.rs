//! The payload of a received message. Most imsgs are small structs, so
//! payloads up to [`Payload::INLINE`] bytes live inside the value itself:
//! handing one out costs a copy and no allocation, which is half of what
//! a small message cost the reader. Payloads of [`Payload::SHARE_FROM`]
//! bytes or more are handed out as a slice of the reader's buffer, shared,
//! with no copy: copying them out cost the reader as much again as
//! receiving them. Such a payload keeps that buffer (64 KiB) allocated
//! while it is held; [`Payload::into_vec`] copies it out. Others are a
//! `Vec`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// Bytes of payload kept without allocating.
const INLINE: usize = 80;

/// Aligned so that moving a payload copies whole aligned 16-byte words:
/// a move that reads back a just-written payload at other offsets than it
/// was written stalls on every message.
#[derive(Clone)]
#[repr(C, align(16))]
struct InlineBytes([u8; INLINE]);

#[derive(Clone)]
enum Repr {
    Inline {
        bytes: InlineBytes,
        len: u8,
    },
    Heap(Vec<u8>),
    /// `len` bytes of a read buffer from `start` on.
    Shared {
        buf: Arc<Vec<u8>>,
        start: usize,
        len: usize,
    },
}

/// A message payload; it dereferences to `[u8]`.
#[derive(Clone)]
pub struct Payload(Repr);

impl Payload {
    /// Payloads of at most this many bytes are stored inline.
    pub const INLINE: usize = INLINE;

    /// Received payloads of at least this many bytes share the read buffer.
    pub const SHARE_FROM: usize = 4096;

    /// `len` bytes of `buf` from `start` on.
    #[inline]
    pub(crate) fn shared(buf: Arc<Vec<u8>>, start: usize, len: usize) -> Payload {
        Payload(Repr::Shared { buf, start, len })
    }

    #[inline]
    pub fn from_slice(data: &[u8]) -> Payload {
        if data.len() <= INLINE {
            let mut bytes = InlineBytes([0; INLINE]);
            bytes.0[..data.len()].copy_from_slice(data);
            Payload(Repr::Inline {
                bytes,
                len: data.len() as u8,
            })
        } else {
            Payload(Repr::Heap(data.to_vec()))
        }
    }

    /// The first `len` bytes of `rest`, the buffered stream from the start
    /// of the payload on. A small payload with enough stream after it is
    /// copied as a fixed-size window, which compiles to a few wide moves
    /// instead of a clear and a variable-length copy; the bytes past `len`
    /// are never visible.
    #[inline]
    pub(crate) fn from_stream(rest: &[u8], len: usize) -> Payload {
        match rest.first_chunk::<INLINE>() {
            Some(window) if len <= INLINE => Payload(Repr::Inline {
                bytes: InlineBytes(*window),
                len: len as u8,
            }),
            _ => Payload::from_slice(&rest[..len.min(rest.len())]),
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { bytes, len } => &bytes.0[..usize::from(*len)],
            Repr::Heap(v) => v,
            Repr::Shared { buf, start, len } => buf.get(*start..*start + *len).unwrap_or_default(),
        }
    }

    /// The payload as an owned vector (no copy when it was allocated).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Heap(v) => v,
            _ => self.as_slice().to_vec(),
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::from_slice(&[])
    }
}

impl Deref for Payload {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<&[u8]> for Payload {
    fn from(data: &[u8]) -> Payload {
        Payload::from_slice(data)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(data: Vec<u8>) -> Payload {
        if data.len() <= INLINE {
            Payload::from_slice(&data)
        } else {
            Payload(Repr::Heap(data))
        }
    }
}

impl From<Payload> for Vec<u8> {
    fn from(p: Payload) -> Vec<u8> {
        p.into_vec()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.as_slice() == other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_hold_the_same_bytes() {
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 16368] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let p = Payload::from_slice(&data);
            assert_eq!(p.len(), len);
            assert_eq!(p, data);
            assert_eq!(Payload::from(data.clone()), p);
            assert_eq!(p.clone().into_vec(), data);
            assert_eq!(matches!(p.0, Repr::Inline { .. }), len <= INLINE);
        }
    }

    #[test]
    fn from_stream_takes_only_the_payload() {
        let stream: Vec<u8> = (0..300).map(|i| i as u8).collect();
        for len in [0, 5, INLINE, INLINE + 1, 200] {
            for rest in [&stream[..], &stream[..len]] {
                let p = Payload::from_stream(rest, len);
                assert_eq!(p, &stream[..len], "len {len} of {}", rest.len());
            }
        }
    }

    #[test]
    fn stays_small_enough_to_move_cheaply() {
        assert!(std::mem::size_of::<Payload>() <= 128);
    }
}
