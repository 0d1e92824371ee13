//! The imsg reader against arbitrary streams: the input is cut into chunks
//! (some carrying an fd) by a small prefix language, then fed to the
//! decoder, with messages popped after some chunks and left in the buffer
//! across others. Popped messages are all kept to the end, so none may
//! depend on the reader's buffer after it is popped. The reader must never
//! panic, never hand out a message whose length or bytes disagree with the
//! stream, and stop for good after an error.
#![no_main]

use imsg::{Imsg, Reader, IMSG_HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    // Maximum sizes up to one beyond the 65535-byte read buffer.
    let maxsize = [16usize, 64, 1024, 16384, 65535, 100_000][usize::from(sel & 7) % 6];
    let scale = [1usize, 16, 256, 2048][usize::from(sel >> 3 & 3)];
    let mut r = Reader::new(maxsize);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    // The stream as fed, and the messages popped from it.
    let mut stream_in = Vec::new();
    let mut popped: Vec<Imsg> = Vec::new();
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = (usize::from(ctl & 0x3f) * scale).min(tail.len());
        let fd = (ctl & 0x80 != 0).then(|| devnull.try_clone().unwrap().into());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if r.ingest(chunk, fd).is_err() {
            assert!(r.ingest(b"", None).is_err(), "a failed reader accepted more");
            check(&stream_in, &popped, maxsize);
            return;
        }
        stream_in.extend_from_slice(chunk);
        if ctl & 0x40 != 0 {
            popped.extend(std::iter::from_fn(|| r.pop()));
        }
    }
    popped.extend(std::iter::from_fn(|| r.pop()));
    let out = check(&stream_in, &popped, maxsize);
    if r.eof().is_ok() {
        assert_eq!(stream_in.len(), out, "bytes lost at a clean EOF");
    }
});

/// Re-encodes the popped messages, checks they are the start of the
/// stream, and returns how many bytes they make.
fn check(stream_in: &[u8], popped: &[Imsg], maxsize: usize) -> usize {
    let mut out = Vec::new();
    for m in popped {
        assert_eq!(m.hdr.len as usize, IMSG_HEADER_SIZE + m.data.len());
        assert!(m.hdr.len as usize <= maxsize);
        out.extend_from_slice(&m.hdr.to_bytes(m.fd.is_some()));
        out.extend_from_slice(&m.data);
    }
    assert!(stream_in.starts_with(&out), "a message's bytes differ from the stream");
    out.len()
}
