//! Byte-exact encoding of `#[repr(C)]` structs in the OpenBSD/amd64 layout.
//!
//! C vmd processes exchange these structs as raw memory, so a Rust process
//! must produce and accept exactly the same bytes. Every field is written at
//! its `offset_of!` position in little-endian order and every padding byte is
//! zero, so the output never leaks uninitialised memory and is deterministic.
//! The offsets themselves are pinned to clang's output by const assertions
//! (see `ABI.md`).

use thiserror::Error;

/// A wire struct of the wrong size arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{what}: expected {expected} bytes, got {got}")]
pub struct WireError {
    /// The C struct name.
    pub what: &'static str,
    /// `sizeof` of the C struct.
    pub expected: usize,
    /// The length that was offered.
    pub got: usize,
}

/// A plain-data type with a fixed little-endian byte layout.
pub trait Wire: Sized + Copy {
    /// `sizeof` in C.
    const SIZE: usize;
    /// The C struct name, for error messages.
    const NAME: &'static str;

    /// Writes `self` into `out`, which is exactly `SIZE` bytes long and
    /// already zeroed (padding is left untouched).
    fn put(&self, out: &mut [u8]);

    /// Reads a value from `inp`, which is exactly `SIZE` bytes long.
    fn get(inp: &[u8]) -> Self;

    /// The C bytes of `self`.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; Self::SIZE];
        self.put(&mut out);
        out
    }

    /// Parses the C bytes of a value; the length must match exactly, as
    /// `imsg_get_data(3)` demands.
    fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        if bytes.len() != Self::SIZE {
            return Err(WireError {
                what: Self::NAME,
                expected: Self::SIZE,
                got: bytes.len(),
            });
        }
        Ok(Self::get(bytes))
    }

    /// The all-zero value, as `memset(&x, 0, sizeof(x))` gives in C.
    fn zeroed() -> Self {
        Self::get(&vec![0u8; Self::SIZE])
    }
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const SIZE: usize = core::mem::size_of::<$t>();
            const NAME: &'static str = stringify!($t);
            fn put(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(inp: &[u8]) -> Self {
                let mut b = [0u8; core::mem::size_of::<$t>()];
                b.copy_from_slice(inp);
                <$t>::from_le_bytes(b)
            }
        }
    )*};
}
wire_int!(u8, i8, u16, i16, u32, i32, u64, i64);

impl<T: Wire, const N: usize> Wire for [T; N] {
    const SIZE: usize = T::SIZE * N;
    const NAME: &'static str = "array";
    fn put(&self, out: &mut [u8]) {
        for (item, chunk) in self.iter().zip(out.chunks_exact_mut(T::SIZE)) {
            item.put(chunk);
        }
    }
    fn get(inp: &[u8]) -> Self {
        core::array::from_fn(|i| T::get(&inp[i * T::SIZE..(i + 1) * T::SIZE]))
    }
}

/// Defines a struct (give it `#[repr(C)]`) and its [`Wire`] implementation from one
/// field list, so the encoding cannot drift from the declaration.
///
/// Fields are copied out by value (`{ self.f }`), which also works for
/// `#[repr(C, packed)]` structs.
#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $cname:literal {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty ),*
        }

        impl $crate::wire::Wire for $name {
            const SIZE: usize = core::mem::size_of::<$name>();
            const NAME: &'static str = $cname;
            fn put(&self, out: &mut [u8]) {
                $(
                    let off = core::mem::offset_of!($name, $field);
                    let len = <$ty as $crate::wire::Wire>::SIZE;
                    $crate::wire::Wire::put(&{ self.$field }, &mut out[off..off + len]);
                )*
            }
            fn get(inp: &[u8]) -> Self {
                Self {
                    $( $field: {
                        let off = core::mem::offset_of!($name, $field);
                        let len = <$ty as $crate::wire::Wire>::SIZE;
                        <$ty as $crate::wire::Wire>::get(&inp[off..off + len])
                    } ),*
                }
            }
        }
    };
}

/// Copies `s` into a NUL-terminated C `char[N]`; `None` if it does not fit
/// (C's `strlcpy` would truncate; we refuse instead).
pub fn c_string<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() >= N || bytes.contains(&0) {
        return None;
    }
    let mut out = [0u8; N];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

/// The text of a C `char[N]` up to its first NUL (the whole array if none).
pub fn c_str(buf: &[u8]) -> &[u8] {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_little_endian() {
        assert_eq!(0x1122_3344u32.to_bytes(), vec![0x44, 0x33, 0x22, 0x11]);
        assert_eq!((-2i16).to_bytes(), vec![0xfe, 0xff]);
        assert_eq!(
            u64::from_bytes(&[1, 0, 0, 0, 0, 0, 0, 0x80]).unwrap(),
            0x8000_0000_0000_0001
        );
    }

    #[test]
    fn wrong_length_is_an_error() {
        let err = u32::from_bytes(&[1, 2, 3]).unwrap_err();
        assert_eq!(err.expected, 4);
        assert_eq!(err.got, 3);
    }

    #[test]
    fn nested_arrays_round_trip() {
        let v: [[u16; 3]; 2] = [[1, 2, 3], [4, 5, 0xffff]];
        let b = v.to_bytes();
        assert_eq!(b, vec![1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 0xff, 0xff]);
        assert_eq!(<[[u16; 3]; 2]>::from_bytes(&b).unwrap(), v);
    }

    #[test]
    fn c_strings() {
        assert_eq!(c_string::<4>("abc"), Some(*b"abc\0"));
        assert_eq!(c_string::<4>("abcd"), None);
        assert_eq!(c_string::<4>("a\0b"), None);
        assert_eq!(c_str(b"ab\0cd"), b"ab");
        assert_eq!(c_str(b"abcd"), b"abcd");
    }
}
