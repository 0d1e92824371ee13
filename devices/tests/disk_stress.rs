//! vmd's vioscribble done properly: 16384 seeded random writes of 1 B to
//! 64 KiB over a sparse 4 GiB disk, applied to raw and qcow2 images (with
//! and without a backing file), each read back at once, and everything
//! compared at the end. Any mismatch fails.

mod disk_common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use devices::disk::{create_qcow2, create_raw, open_image, DiskImage, ImageFormat};
use disk_common::*;

const GIB: u64 = 1 << 30;
const SIZE: u64 = 4 * GIB;
const WRITES: usize = 16384;
const MAX_WRITE: u64 = 64 * 1024;

fn compare_all(a: &mut dyn DiskImage, b: &mut dyn DiskImage, what: &str) {
    let chunk = 8 << 20;
    let (mut x, mut y) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut off = 0;
    while off < SIZE {
        a.read_at(&mut x, off).unwrap();
        b.read_at(&mut y, off).unwrap();
        assert!(x == y, "{what}: images differ in the 8 MiB at {off}");
        off += chunk as u64;
    }
}

#[test]
fn random_writes_match_on_raw_and_qcow2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The backing image: scattered data in a sparse 4 GiB, made by qemu.
    let pattern = d.join("pattern.raw");
    {
        let f = fs::File::create(&pattern).unwrap();
        f.set_len(SIZE).unwrap();
        let mut rng = Rng(0xba5e);
        let mut buf = vec![0u8; 256 * 1024];
        for _ in 0..256 {
            rng.fill(&mut buf);
            f.write_all_at(&buf, rng.range(0, SIZE - buf.len() as u64))
                .unwrap();
        }
    }
    let base = d.join("base.qcow2");
    qemu_img_ok(&["convert", "-f", "raw", "-O", "qcow2", p(&pattern), p(&base)]);

    let raw = d.join("plain.raw");
    create_raw(&raw, SIZE).unwrap();
    let qcow = d.join("plain.qcow2");
    create_qcow2(&qcow, SIZE, None).unwrap();
    let raw_b = d.join("backed.raw");
    qemu_img_ok(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "raw",
        "-S",
        "4k",
        p(&pattern),
        p(&raw_b),
    ]);
    let qcow_b = d.join("backed.qcow2");
    create_qcow2(&qcow_b, 0, Some(Path::new("base.qcow2"))).unwrap();

    let mut subjects: Vec<(String, Box<dyn DiskImage>)> = vec![
        (
            "raw".into(),
            open_image(&raw, ImageFormat::Raw, false).unwrap(),
        ),
        (
            "qcow2".into(),
            open_image(&qcow, ImageFormat::Qcow2, false).unwrap(),
        ),
        (
            "raw (backing model)".into(),
            open_image(&raw_b, ImageFormat::Raw, false).unwrap(),
        ),
        (
            "qcow2 with backing".into(),
            open_image(&qcow_b, ImageFormat::Qcow2, false).unwrap(),
        ),
    ];
    let mut rng = Rng(0x5c41bb1e);
    let mut data = vec![0u8; MAX_WRITE as usize];
    let mut back = vec![0u8; MAX_WRITE as usize];
    for i in 0..WRITES {
        let len = rng.range(1, MAX_WRITE) as usize;
        let off = rng.range(0, SIZE - len as u64);
        rng.fill(&mut data[..len]);
        for (name, image) in subjects.iter_mut() {
            image.write_at(&data[..len], off).unwrap();
            image.read_at(&mut back[..len], off).unwrap();
            assert!(
                back[..len] == data[..len],
                "{name}: write {i} ({len} bytes at {off}) reads back wrong"
            );
            if i % 1024 == 1023 {
                image.flush().unwrap();
            }
        }
    }
    for (_, image) in subjects.iter_mut() {
        image.flush().unwrap();
    }
    let mut it = subjects.into_iter().map(|(_, i)| i);
    let (mut r, mut q, mut rb, mut qb) = (
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
        it.next().unwrap(),
    );
    compare_all(r.as_mut(), q.as_mut(), "qcow2 vs raw");
    compare_all(rb.as_mut(), qb.as_mut(), "qcow2 with backing vs raw");
    drop((r, q, rb, qb));
    check_clean(&qcow);
    check_clean(&qcow_b);
    compare_with_raw(&qcow, "qcow2", &raw);
    compare_with_raw(&qcow_b, "qcow2", &raw_b);
}
