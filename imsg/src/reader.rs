//! Reassembly of messages from the byte stream and the fds that arrive
//! beside it. This is pure: the socket side hands it each chunk that one
//! `recvmsg` returned, with the fd that came with that chunk, if any.
//!
//! A sender attaches an fd to the `sendmsg` whose data begins with the
//! header of the message the fd belongs to. The receiving kernel may still
//! hand it out with a read that starts earlier (Linux merges a segment
//! without fds with the next one that has them), so an fd that arrives
//! with a chunk belongs to the first header with the fd mark that starts
//! at or after the chunk's first byte; unmarked messages before it are
//! not its owners, as in C, where fds wait in a queue for marked messages.
//! A marked header with no fd that could be its own is an error.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use crate::error::{Error, Result};
use crate::header::{ImsgHdr, IMSG_HEADER_SIZE};
use crate::Imsg;

/// The message being assembled.
struct Partial {
    hdr: ImsgHdr,
    fd: Option<OwnedFd>,
    data: Vec<u8>,
}

/// The pure stream decoder behind [`crate::ImsgBuf`]; public so it can be
/// fuzzed and reused over other transports.
pub struct Reader {
    /// Largest accepted message, header included.
    pub(crate) maxsize: usize,
    /// Header bytes of the next message, while fewer than 16 have arrived.
    hdr_bytes: Vec<u8>,
    partial: Option<Partial>,
    ready: VecDeque<Imsg>,
    /// An fd not yet matched to a header, and the stream offset of the
    /// chunk it arrived with.
    pending_fd: Option<(OwnedFd, u64)>,
    /// Stream offset of the next byte to arrive.
    offset: u64,
}

impl Reader {
    pub fn new(maxsize: usize) -> Reader {
        Reader {
            maxsize,
            hdr_bytes: Vec::with_capacity(IMSG_HEADER_SIZE),
            partial: None,
            ready: VecDeque::new(),
            pending_fd: None,
            offset: 0,
        }
    }

    /// Takes in one chunk of the stream and the fd that came with it.
    /// Complete messages become available through [`Reader::pop`]. On error
    /// nothing of the offending message is handed out.
    pub fn ingest(&mut self, mut chunk: &[u8], fd: Option<OwnedFd>) -> Result<()> {
        if let Some(fd) = fd {
            if self.pending_fd.is_some() {
                return Err(Error::TooManyFds);
            }
            self.pending_fd = Some((fd, self.offset));
        }
        while !chunk.is_empty() {
            // The common case first: a whole message at the start of the
            // chunk becomes one Imsg with one copy of its payload.
            if self.partial.is_none() && self.hdr_bytes.is_empty() {
                if let Some(used) = self.take_whole(chunk)? {
                    chunk = &chunk[used..];
                    self.offset += used as u64;
                    continue;
                }
            }
            let used = match self.partial {
                None => self.take_header(chunk)?,
                Some(ref mut p) => {
                    let want = p.hdr.len as usize - IMSG_HEADER_SIZE - p.data.len();
                    let n = want.min(chunk.len());
                    p.data.extend_from_slice(&chunk[..n]);
                    n
                }
            };
            chunk = &chunk[used..];
            self.offset += used as u64;
            self.complete_partial();
        }
        Ok(())
    }

    /// If `chunk` starts with a complete message, queues it and returns
    /// its length.
    fn take_whole(&mut self, chunk: &[u8]) -> Result<Option<usize>> {
        let Some(raw) = chunk.first_chunk::<IMSG_HEADER_SIZE>() else {
            return Ok(None);
        };
        let (hdr, marked) = ImsgHdr::from_bytes(raw);
        let len = hdr.len as usize;
        if len < IMSG_HEADER_SIZE || len > self.maxsize {
            return Err(Error::HeaderLength {
                len: hdr.len,
                max: self.maxsize,
            });
        }
        let Some(data) = chunk.get(IMSG_HEADER_SIZE..len) else {
            return Ok(None);
        };
        let owned = matches!(self.pending_fd, Some((_, at)) if at <= self.offset);
        let fd = match (marked, owned) {
            (true, true) => self.pending_fd.take().map(|(fd, _)| fd),
            (true, false) => return Err(Error::MissingFd { type_: hdr.type_ }),
            (false, _) => None,
        };
        self.ready.push_back(Imsg {
            hdr,
            data: data.to_vec(),
            fd,
        });
        Ok(Some(len))
    }

    /// Consumes header bytes from `chunk`; once 16 are there, starts the
    /// message. Returns how many bytes were used.
    fn take_header(&mut self, chunk: &[u8]) -> Result<usize> {
        let n = (IMSG_HEADER_SIZE - self.hdr_bytes.len()).min(chunk.len());
        self.hdr_bytes.extend_from_slice(&chunk[..n]);
        if self.hdr_bytes.len() < IMSG_HEADER_SIZE {
            return Ok(n);
        }
        let mut raw = [0u8; IMSG_HEADER_SIZE];
        raw.copy_from_slice(&self.hdr_bytes);
        self.hdr_bytes.clear();
        let (hdr, marked) = ImsgHdr::from_bytes(&raw);
        if (hdr.len as usize) < IMSG_HEADER_SIZE || hdr.len as usize > self.maxsize {
            return Err(Error::HeaderLength {
                len: hdr.len,
                max: self.maxsize,
            });
        }
        // Where this header began in the stream.
        let start = self.offset + n as u64 - IMSG_HEADER_SIZE as u64;
        let owned = matches!(self.pending_fd, Some((_, at)) if at <= start);
        let fd = match (marked, owned) {
            (true, true) => self.pending_fd.take().map(|(fd, _)| fd),
            (true, false) => return Err(Error::MissingFd { type_: hdr.type_ }),
            (false, _) => None,
        };
        self.partial = Some(Partial {
            hdr,
            fd,
            data: Vec::with_capacity(hdr.len as usize - IMSG_HEADER_SIZE),
        });
        Ok(n)
    }

    fn complete_partial(&mut self) {
        let done = matches!(self.partial, Some(ref p)
            if p.data.len() == p.hdr.len as usize - IMSG_HEADER_SIZE);
        if done {
            if let Some(p) = self.partial.take() {
                self.ready.push_back(Imsg {
                    hdr: p.hdr,
                    data: p.data,
                    fd: p.fd,
                });
            }
        }
    }

    pub fn pop(&mut self) -> Option<Imsg> {
        self.ready.pop_front()
    }

    /// Checks that the stream may end here.
    pub fn eof(&mut self) -> Result<()> {
        let buffered = self.hdr_bytes.len()
            + self
                .partial
                .as_ref()
                .map_or(0, |p| IMSG_HEADER_SIZE + p.data.len());
        if buffered > 0 {
            return Err(Error::Truncated { buffered });
        }
        if self.pending_fd.take().is_some() {
            return Err(Error::TooManyFds);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::IMSG_FD_MARK;

    fn frame(type_: u32, payload: &[u8], fd: bool) -> Vec<u8> {
        let hdr = ImsgHdr {
            type_,
            len: (IMSG_HEADER_SIZE + payload.len()) as u32,
            peerid: 9,
            pid: 42,
        };
        let mut v = hdr.to_bytes(fd).to_vec();
        v.extend_from_slice(payload);
        v
    }

    fn devnull() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn byte_by_byte_reassembly() {
        let mut stream = frame(1, b"hello", false);
        stream.extend(frame(2, b"", false));
        let mut r = Reader::new(16384);
        for b in &stream {
            r.ingest(std::slice::from_ref(b), None).unwrap();
        }
        let a = r.pop().unwrap();
        assert_eq!((a.hdr.type_, a.hdr.peerid, a.hdr.pid), (1, 9, 42));
        assert_eq!(a.data, b"hello");
        assert_eq!(r.pop().unwrap().data, b"");
        assert!(r.pop().is_none());
        r.eof().unwrap();
    }

    #[test]
    fn header_length_limits() {
        let mut r = Reader::new(16384);
        let mut bad = frame(1, b"", false);
        bad[4..8].copy_from_slice(&15u32.to_ne_bytes());
        assert!(matches!(
            r.ingest(&bad, None),
            Err(Error::HeaderLength { len: 15, .. })
        ));
        let mut r = Reader::new(16384);
        bad[4..8].copy_from_slice(&16385u32.to_ne_bytes());
        assert!(matches!(
            r.ingest(&bad, None),
            Err(Error::HeaderLength { len: 16385, .. })
        ));
        // The fd mark is not part of the length.
        let mut r = Reader::new(16384);
        bad[4..8].copy_from_slice(&(16 | IMSG_FD_MARK).to_ne_bytes());
        assert!(matches!(r.ingest(&bad, None), Err(Error::MissingFd { .. })));
    }

    #[test]
    fn truncated_at_eof() {
        let f = frame(1, b"abc", false);
        for cut in 1..f.len() {
            let mut r = Reader::new(16384);
            r.ingest(&f[..cut], None).unwrap();
            assert!(r.pop().is_none());
            assert!(matches!(r.eof(), Err(Error::Truncated { buffered }) if buffered == cut));
        }
    }

    #[test]
    fn fds_match_their_messages() {
        let mut r = Reader::new(16384);
        let mut stream = frame(1, b"x", false);
        r.ingest(&stream, None).unwrap();
        stream = frame(2, b"yy", true);
        r.ingest(&stream, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
        r.eof().unwrap();
    }

    #[test]
    fn fd_arriving_mid_header_belongs_to_the_next_header() {
        // The fd comes with a chunk that finishes the previous message.
        let first = frame(1, b"abcd", false);
        let second = frame(2, b"", true);
        let mut r = Reader::new(16384);
        r.ingest(&first[..10], None).unwrap();
        let mut rest = first[10..].to_vec();
        rest.extend_from_slice(&second);
        // Offset of the fd's chunk is 10, the fd-marked header starts at 20.
        r.ingest(&rest, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
    }

    #[test]
    fn fd_passes_over_unmarked_messages() {
        // Linux may return an fd with a read that starts at an earlier,
        // unmarked message: the fd belongs to the next marked one.
        let mut bytes = frame(1, b"count", false);
        bytes.extend_from_slice(&frame(2, b"range", true));
        let mut r = Reader::new(16384);
        r.ingest(&bytes, Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(r.pop().unwrap().fd.is_some());
        r.eof().unwrap();
    }

    #[test]
    fn fd_protocol_violations() {
        // Mark without fd.
        let mut r = Reader::new(16384);
        assert!(matches!(
            r.ingest(&frame(3, b"", true), None),
            Err(Error::MissingFd { type_: 3 })
        ));
        // Fd with an unmarked message and none after it to claim it.
        let mut r = Reader::new(16384);
        r.ingest(&frame(4, b"", false), Some(devnull())).unwrap();
        assert!(r.pop().unwrap().fd.is_none());
        assert!(matches!(r.eof(), Err(Error::TooManyFds)));
        // Two fds before any header consumed one.
        let mut r = Reader::new(16384);
        r.ingest(&[], Some(devnull())).unwrap();
        assert!(matches!(
            r.ingest(&[], Some(devnull())),
            Err(Error::TooManyFds)
        ));
        // An fd with no message at all.
        let mut r = Reader::new(16384);
        r.ingest(&[], Some(devnull())).unwrap();
        assert!(matches!(r.eof(), Err(Error::TooManyFds)));
    }
}
