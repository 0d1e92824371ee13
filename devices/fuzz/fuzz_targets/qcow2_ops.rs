//! A random program of reads, writes, flushes and reopens against a qcow2
//! template image (several cluster sizes, with and without a backing file),
//! with a shadow copy of the disk compared on every read.
#![no_main]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use devices::disk::{DiskImage, Qcow2Image};
use libfuzzer_sys::fuzz_target;

const SIZE: u64 = 1 << 20;
const MAX_IO: u64 = 20_000;

struct Template {
    path: PathBuf,
    shadow: Vec<u8>,
}

fn templates() -> &'static (PathBuf, Vec<Template>) {
    static T: OnceLock<(PathBuf, Vec<Template>)> = OnceLock::new();
    T.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = PathBuf::from(base).join(format!("qcow2-ops-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let backing = dir.join("backing.raw");
        let mut pattern = vec![0u8; SIZE as usize];
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = (i / 512 * 7 + i % 13) as u8;
        }
        std::fs::write(&backing, &pattern).unwrap();
        let mut out = Vec::new();
        for (name, opts, with_backing) in [
            ("c512v2b.qcow2", "cluster_size=512,compat=0.10", true),
            ("c4kv3.qcow2", "cluster_size=4096,compat=1.1", false),
            ("c64kv3b.qcow2", "cluster_size=65536,compat=1.1", true),
        ] {
            let path = dir.join(name);
            let mut cmd = Command::new("qemu-img");
            cmd.args(["create", "-q", "-f", "qcow2", "-o", opts]);
            if with_backing {
                cmd.args(["-b", "backing.raw", "-F", "raw"]);
            }
            let status = cmd.arg(&path).arg(SIZE.to_string()).status().unwrap();
            assert!(status.success());
            let shadow = if with_backing { pattern.clone() } else { vec![0; SIZE as usize] };
            out.push(Template { path, shadow });
        }
        (dir, out)
    })
}

struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }
}

fuzz_target!(|data: &[u8]| {
    let (dir, templates) = templates();
    let mut ops = Ops(data);
    let Some(which) = ops.byte() else { return };
    let template = &templates[which as usize % templates.len()];
    let path = dir.join("work.qcow2");
    std::fs::copy(&template.path, &path).unwrap();
    let mut shadow = template.shadow.clone();
    let mut image = Qcow2Image::open(&path, false).unwrap();
    let mut buf = vec![0u8; MAX_IO as usize];
    while let Some(op) = ops.byte() {
        let Some(raw_off) = ops.u32() else { break };
        let off = u64::from(raw_off) % SIZE;
        let len = (u64::from(raw_off >> 20) % MAX_IO + 1).min(SIZE - off) as usize;
        let range = off as usize..off as usize + len;
        match op % 8 {
            0..=3 => {
                let fill = ops.byte().unwrap_or(0);
                for (i, b) in buf[..len].iter_mut().enumerate() {
                    *b = fill.wrapping_add(i as u8);
                }
                image.write_at(&buf[..len], off).unwrap();
                shadow[range].copy_from_slice(&buf[..len]);
            }
            4 | 5 => {
                image.read_at(&mut buf[..len], off).unwrap();
                assert!(buf[..len] == shadow[range], "read at {off} len {len} differs from the shadow");
            }
            6 => image.flush().unwrap(),
            _ => {
                drop(image);
                image = Qcow2Image::open(&path, false).unwrap();
            }
        }
    }
    image.read_at(&mut vec![0u8; 0], 0).unwrap();
    let mut all = vec![0u8; SIZE as usize];
    image.read_at(&mut all, 0).unwrap();
    assert!(all == shadow, "final contents differ from the shadow");
});
