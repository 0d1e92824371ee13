//! The 16-byte message header, in host byte order as OpenBSD writes it.

/// Size of [`ImsgHdr`] on the wire.
pub const IMSG_HEADER_SIZE: usize = 16;
/// Set in `len` when a file descriptor travels with the message.
pub const IMSG_FD_MARK: u32 = 0x8000_0000;
/// The default largest message, header included (`MAX_IMSGSIZE`).
pub const MAX_IMSGSIZE: usize = 16384;
/// The receive buffer size (`IBUF_READ_SIZE`).
pub const IBUF_READ_SIZE: usize = 65535;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ImsgHdr {
    pub type_: u32,
    /// Length including the header, without [`IMSG_FD_MARK`].
    pub len: u32,
    pub peerid: u32,
    pub pid: u32,
}

impl ImsgHdr {
    /// Encodes the header; `has_fd` sets [`IMSG_FD_MARK`] in `len`.
    #[inline]
    pub fn to_bytes(&self, has_fd: bool) -> [u8; IMSG_HEADER_SIZE] {
        let len = if has_fd {
            self.len | IMSG_FD_MARK
        } else {
            self.len
        };
        let mut b = [0u8; IMSG_HEADER_SIZE];
        b[0..4].copy_from_slice(&self.type_.to_ne_bytes());
        b[4..8].copy_from_slice(&len.to_ne_bytes());
        b[8..12].copy_from_slice(&self.peerid.to_ne_bytes());
        b[12..16].copy_from_slice(&self.pid.to_ne_bytes());
        b
    }

    /// Writes the encoded header into `out` (16 bytes) as two 8-byte
    /// words: building the array first and copying it costs a stalled
    /// store-to-load forward per message on the compose path.
    #[inline]
    pub(crate) fn write_to(&self, has_fd: bool, out: &mut [u8]) {
        let len = if has_fd {
            self.len | IMSG_FD_MARK
        } else {
            self.len
        };
        let pair = |a: u32, b: u32| {
            let (a, b) = (a.to_ne_bytes(), b.to_ne_bytes());
            [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
        };
        let (first, second) = out.split_at_mut(8);
        first.copy_from_slice(&pair(self.type_, len));
        second[..8].copy_from_slice(&pair(self.peerid, self.pid));
    }

    /// Decodes a header; returns it (with the mark cleared from `len`) and
    /// whether the mark was set.
    #[inline]
    pub fn from_bytes(b: &[u8; IMSG_HEADER_SIZE]) -> (ImsgHdr, bool) {
        let word = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let raw_len = word(4);
        (
            ImsgHdr {
                type_: word(0),
                len: raw_len & !IMSG_FD_MARK,
                peerid: word(8),
                pid: word(12),
            },
            raw_len & IMSG_FD_MARK != 0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_and_without_fd_mark() {
        let h = ImsgHdr {
            type_: 7,
            len: 20,
            peerid: 0xdead_beef,
            pid: 1234,
        };
        for fd in [false, true] {
            let b = h.to_bytes(fd);
            assert_eq!(ImsgHdr::from_bytes(&b), (h, fd));
        }
        let mut written = [0u8; IMSG_HEADER_SIZE];
        h.write_to(true, &mut written);
        let b = h.to_bytes(true);
        assert_eq!(written, b);
        assert_eq!(
            u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            20 | IMSG_FD_MARK
        );
    }
}
