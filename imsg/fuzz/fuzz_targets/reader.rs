//! The imsg reader against arbitrary streams: the input is cut into chunks
//! (some carrying an fd) by a small prefix language, then fed to the
//! decoder. It must never panic, never hand out a message whose length
//! disagrees with its header, and stop for good after an error.
#![no_main]

use imsg::{Reader, IMSG_HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&maxsel, mut rest)) = data.split_first() else {
        return;
    };
    let maxsize = [16usize, 64, 1024, 16384][usize::from(maxsel & 3)];
    let mut r = Reader::new(maxsize);
    let devnull = std::fs::File::open("/dev/null").unwrap();
    while let Some((&ctl, tail)) = rest.split_first() {
        let n = usize::from(ctl & 0x7f).min(tail.len());
        let fd = (ctl & 0x80 != 0).then(|| devnull.try_clone().unwrap().into());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if r.ingest(chunk, fd).is_err() {
            return;
        }
        while let Some(m) = r.pop() {
            assert_eq!(m.hdr.len as usize, IMSG_HEADER_SIZE + m.data.len());
            assert!(m.hdr.len as usize <= maxsize);
        }
    }
    let _ = r.eof();
});
