//! The imsg reader against arbitrary streams: the input is cut into chunks
//! (some carrying an fd) by a small prefix language, then fed to the
//! decoder, with messages popped after some chunks and left in the buffer
//! across others. It must never panic, never hand out a message whose
//! length or bytes disagree with the stream, and stop for good after an
//! error.
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
    // The stream as fed, and as the popped messages re-encode it.
    let mut stream_in = Vec::new();
    let mut stream_out = Vec::new();
    let mut out = |m: Imsg| {
        assert_eq!(m.hdr.len as usize, IMSG_HEADER_SIZE + m.data.len());
        assert!(m.hdr.len as usize <= maxsize);
        stream_out.extend_from_slice(&m.hdr.to_bytes(m.fd.is_some()));
        stream_out.extend_from_slice(&m.data);
    };
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = (usize::from(ctl & 0x3f) * scale).min(tail.len());
        let fd = (ctl & 0x80 != 0).then(|| devnull.try_clone().unwrap().into());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if r.ingest(chunk, fd).is_err() {
            assert!(r.ingest(b"", None).is_err(), "a failed reader accepted more");
            return;
        }
        stream_in.extend_from_slice(chunk);
        if ctl & 0x40 != 0 {
            while let Some(m) = r.pop() {
                out(m);
            }
        }
    }
    while let Some(m) = r.pop() {
        out(m);
    }
    assert!(stream_in.starts_with(&stream_out), "a message's bytes differ from the stream");
    if r.eof().is_ok() {
        assert_eq!(stream_in.len(), stream_out.len(), "bytes lost at a clean EOF");
    }
});
