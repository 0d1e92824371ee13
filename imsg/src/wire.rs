//! Typed payloads. A struct that crosses a process boundary as raw bytes
//! implements [`WireStruct`] with its exact OpenBSD/amd64 layout, written
//! out field by field, so no `unsafe` transmutes are needed and padding is
//! always zero on the wire.

/// A fixed-size value with a defined byte layout.
pub trait WireStruct: Sized {
    /// Size on the wire, `sizeof` of the C struct.
    const SIZE: usize;
    /// Writes the value into `out`, which is exactly `SIZE` bytes and
    /// zero-filled.
    fn encode(&self, out: &mut [u8]);
    /// Reads a value from `bytes`, which is exactly `SIZE` bytes.
    fn decode(bytes: &[u8]) -> Self;

    fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; Self::SIZE];
        self.encode(&mut v);
        v
    }

    /// Decodes `bytes` if it has exactly the right size.
    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == Self::SIZE).then(|| Self::decode(bytes))
    }
}

macro_rules! wire_int {
    ($($t:ty),*) => {$(
        impl WireStruct for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn encode(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }
            fn decode(bytes: &[u8]) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                <$t>::from_ne_bytes(a)
            }
        }
    )*};
}
wire_int!(u8, u16, u32, u64, i8, i16, i32, i64);

impl<const N: usize> WireStruct for [u8; N] {
    const SIZE: usize = N;
    fn encode(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_is_required() {
        assert_eq!(u32::from_bytes(&7u32.to_ne_bytes()), Some(7));
        assert_eq!(u32::from_bytes(&[0; 3]), None);
        assert_eq!(u32::from_bytes(&[0; 5]), None);
        assert_eq!(<[u8; 3]>::from_bytes(b"abc"), Some(*b"abc"));
    }
}
