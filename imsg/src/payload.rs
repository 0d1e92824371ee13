//! The payload of a received message: a slice of the reader's buffer,
//! shared, so handing a message out costs no copy and no allocation, only
//! a reference count. Copying payloads out of the buffer, small ones into
//! the message itself, cost the reader about as much again as receiving
//! them, and made each message 128 bytes to move about.
//!
//! A payload held keeps its read buffer (64 KiB) allocated, and the reader
//! takes a fresh buffer for its next read while any is held: a payload to
//! be kept for long is better copied out ([`Payload::into_vec`]). Payloads
//! made by the program itself are a `Vec`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

#[derive(Clone)]
enum Repr {
    Heap(Vec<u8>),
    /// `len` bytes of a read buffer from `start` on. The bounds fit u32:
    /// a read buffer holds at most one message of at most 2^31 bytes more
    /// than its 64 KiB.
    Shared {
        buf: Arc<Vec<u8>>,
        start: u32,
        len: u32,
    },
}

/// A message payload; it dereferences to `[u8]`.
#[derive(Clone)]
pub struct Payload(Repr);

impl Payload {
    /// `len` bytes of `buf` from `start` on. An empty payload does not
    /// hold the buffer.
    #[inline]
    pub(crate) fn shared(buf: &Arc<Vec<u8>>, start: usize, len: usize) -> Payload {
        if len == 0 {
            return Payload(Repr::Heap(Vec::new()));
        }
        debug_assert!(start + len <= buf.len() && buf.len() <= u32::MAX as usize);
        Payload(Repr::Shared {
            buf: Arc::clone(buf),
            start: start as u32,
            len: len as u32,
        })
    }

    pub fn from_slice(data: &[u8]) -> Payload {
        Payload(Repr::Heap(data.to_vec()))
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Heap(v) => v,
            Repr::Shared { buf, start, len } => {
                let start = *start as usize;
                buf.get(start..start + *len as usize).unwrap_or_default()
            }
        }
    }

    /// The read buffer this payload shares, if it does.
    #[cfg(test)]
    pub(crate) fn shared_buffer(&self) -> Option<&Arc<Vec<u8>>> {
        match &self.0 {
            Repr::Shared { buf, .. } => Some(buf),
            Repr::Heap(_) => None,
        }
    }

    /// The payload as an owned vector (no copy when it was allocated).
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Heap(v) => v,
            Repr::Shared { .. } => self.as_slice().to_vec(),
        }
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload(Repr::Heap(Vec::new()))
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
        Payload(Repr::Heap(data))
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
    fn shared_and_heap_hold_the_same_bytes() {
        let stream: Arc<Vec<u8>> = Arc::new((0..300).map(|i| i as u8).collect());
        for (start, len) in [(0, 0), (5, 0), (0, 1), (16, 80), (100, 200)] {
            let p = Payload::shared(&stream, start, len);
            let want = &stream[start..start + len];
            assert_eq!(p, want);
            assert_eq!(Payload::from(want.to_vec()), p);
            assert_eq!(Payload::from_slice(want), p);
            assert_eq!(p.clone().into_vec(), want);
            // Empty payloads do not keep the buffer.
            assert_eq!(matches!(p.0, Repr::Shared { .. }), len > 0);
        }
        assert_eq!(Arc::strong_count(&stream), 1);
    }

    #[test]
    fn stays_small_enough_to_move_in_registers() {
        assert!(std::mem::size_of::<Payload>() <= 24);
    }
}
