//! The whole input is a qcow2 image: open it read-only and read-write, read
//! and write a little, flush. Any panic, hang or huge allocation is a bug;
//! errors are fine.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use devices::disk::{DiskImage, Qcow2Image};
use libfuzzer_sys::fuzz_target;

fn work_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = PathBuf::from(base).join(format!("qcow2-parse-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn poke(image: &mut dyn DiskImage) {
    let size = image.size();
    let mut buf = vec![0u8; 4096];
    for off in [0, size / 3, size.saturating_sub(4096), size / 2 + 100] {
        let len = 4096.min(size.saturating_sub(off)) as usize;
        let _ = image.read_at(&mut buf[..len], off);
    }
    if !image.read_only() {
        for off in [0, size / 2 + 7, size.saturating_sub(3000)] {
            let len = 3000.min(size.saturating_sub(off)) as usize;
            let _ = image.write_at(&buf[..len], off);
        }
        let _ = image.flush();
    }
}

fuzz_target!(|data: &[u8]| {
    let path = work_dir().join("image.qcow2");
    std::fs::write(&path, data).unwrap();
    if let Ok(mut image) = Qcow2Image::open(&path, true) {
        poke(&mut image);
    }
    if let Ok(mut image) = Qcow2Image::open(&path, false) {
        poke(&mut image);
    }
});
