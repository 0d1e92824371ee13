//! qcow2 and raw images checked against qemu-img, the reference
//! implementation: images qemu made are read and written correctly, and
//! `qemu-img check` / `compare` / `info` accept what we wrote or created.

mod disk_common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use devices::disk::{
    convert_image, create_qcow2, create_raw, open_image, DiskError, DiskImage, ImageFormat,
    Qcow2Image,
};
use disk_common::*;

const MIB: u64 = 1 << 20;

/// A raw file with a recognisable pattern in some places and holes in
/// others.
fn make_pattern_raw(path: &Path, size: u64, seed: u64) {
    let f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut rng = Rng(seed);
    for _ in 0..24 {
        let len = rng.range(1, 300_000).min(size);
        let off = rng.range(0, size - len);
        let mut buf = vec![0u8; len as usize];
        rng.fill(&mut buf);
        f.write_all_at(&buf, off).unwrap();
    }
}

/// Applies seeded random writes to both an image and the raw model,
/// checking read-back after each, then reads the whole image back.
fn exercise(image: &mut dyn DiskImage, model: &Path, seed: u64, writes: usize, max_len: u64) {
    let model = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(model)
        .unwrap();
    let size = image.size();
    let mut rng = Rng(seed);
    for i in 0..writes {
        let len = rng.range(1, max_len.min(size));
        let off = rng.range(0, size - len);
        let mut data = vec![0u8; len as usize];
        rng.fill(&mut data);
        // Split into up to three buffers to drive the vectored path.
        let a = rng.range(0, len) as usize;
        let b = rng.range(a as u64, len) as usize;
        let bufs = [
            std::io::IoSlice::new(&data[..a]),
            std::io::IoSlice::new(&data[a..b]),
            std::io::IoSlice::new(&data[b..]),
        ];
        image.write_vectored_at(&bufs, off).unwrap();
        model.write_all_at(&data, off).unwrap();
        let mut back = vec![0u8; len as usize];
        image.read_at(&mut back, off).unwrap();
        assert!(
            back == data,
            "write {i} at {off} len {len} reads back wrong"
        );
        if i % 16 == 0 {
            image.flush().unwrap();
        }
    }
    image.flush().unwrap();
    let mut got = vec![0u8; MIB as usize];
    let mut want = vec![0u8; MIB as usize];
    let mut off = 0;
    while off < size {
        let n = MIB.min(size - off) as usize;
        image.read_at(&mut got[..n], off).unwrap();
        model.read_exact_at(&mut want[..n], off).unwrap();
        assert!(got[..n] == want[..n], "mismatch in MiB at {off}");
        off += n as u64;
    }
}

fn copy_file(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap();
}

struct Case {
    compat: &'static str,
    cluster: u64,
    backing: bool,
}

fn run_case(dir: &Path, case: &Case, seed: u64) {
    let size = 24 * MIB;
    let tag = format!("{}-{}-{}", case.compat, case.cluster, case.backing);
    let pattern = dir.join(format!("pattern-{tag}.raw"));
    let model = dir.join(format!("model-{tag}.raw"));
    let image = dir.join(format!("image-{tag}.qcow2"));
    make_pattern_raw(&pattern, size, seed);
    copy_file(&pattern, &model);
    let opts = format!("compat={},cluster_size={}", case.compat, case.cluster);
    if case.backing {
        let base = dir.join(format!("base-{tag}.qcow2"));
        qemu_img_ok(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            &opts,
            p(&pattern),
            p(&base),
        ]);
        // A relative backing name: resolved against the image's directory.
        let base_name = base.file_name().unwrap().to_str().unwrap().to_string();
        qemu_img_ok(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            &opts,
            "-b",
            &base_name,
            "-F",
            "qcow2",
            p(&image),
        ]);
    } else {
        qemu_img_ok(&[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            &opts,
            p(&pattern),
            p(&image),
        ]);
    }
    {
        let mut img = open_image(&image, ImageFormat::Qcow2, false).unwrap();
        assert_eq!(img.size(), size);
        let max_len = if case.cluster <= 4096 {
            64 * 1024
        } else {
            3 * case.cluster
        };
        exercise(img.as_mut(), &model, seed ^ 0x55, 120, max_len);
    }
    check_clean(&image);
    compare_with_raw(&image, "qcow2", &model);
}

#[test]
fn qemu_created_images_read_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 1;
    for compat in ["0.10", "1.1"] {
        for cluster in [512, 4096, 65536, 2 * MIB] {
            for backing in [false, true] {
                seed += 1;
                run_case(
                    dir.path(),
                    &Case {
                        compat,
                        cluster,
                        backing,
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn qemu_compressed_images_read_and_cow() {
    let dir = tempfile::tempdir().unwrap();
    let (pattern, model, image) = (
        dir.path().join("p.raw"),
        dir.path().join("m.raw"),
        dir.path().join("c.qcow2"),
    );
    let size = 8 * MIB;
    // Compressible content: runs of repeated bytes.
    let f = fs::File::create(&pattern).unwrap();
    f.set_len(size).unwrap();
    for i in 0..size / 4096 {
        if i % 3 != 0 {
            f.write_all_at(&vec![(i % 251) as u8; 4096], i * 4096)
                .unwrap();
        }
    }
    copy_file(&pattern, &model);
    qemu_img_ok(&[
        "convert",
        "-c",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-o",
        "cluster_size=65536",
        p(&pattern),
        p(&image),
    ]);
    {
        let mut img = open_image(&image, ImageFormat::Qcow2, false).unwrap();
        exercise(img.as_mut(), &model, 9, 60, 100_000);
    }
    check_clean(&image);
    compare_with_raw(&image, "qcow2", &model);
}

#[test]
fn refcount_table_growth_has_no_leaks() {
    // 512-byte clusters: one refcount block counts 128 KiB, and a
    // one-cluster refcount table 8 MiB, so filling 40 MiB grows the table
    // several times and allocates hundreds of refcount blocks.
    let dir = tempfile::tempdir().unwrap();
    let (image, model) = (dir.path().join("g.qcow2"), dir.path().join("g.raw"));
    let size = 40 * MIB;
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "cluster_size=512",
        p(&image),
        &size.to_string(),
    ]);
    fs::File::create(&model).unwrap().set_len(size).unwrap();
    {
        let mut img = open_image(&image, ImageFormat::Qcow2, false).unwrap();
        let m = fs::OpenOptions::new().write(true).open(&model).unwrap();
        let mut rng = Rng(77);
        let mut buf = vec![0u8; 256 * 1024];
        let mut off = 0;
        while off < size {
            rng.fill(&mut buf);
            img.write_at(&buf, off).unwrap();
            m.write_all_at(&buf, off).unwrap();
            off += buf.len() as u64;
        }
        img.flush().unwrap();
    }
    check_clean(&image);
    compare_with_raw(&image, "qcow2", &model);
}

#[test]
fn raw_images_vectored_io_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.raw");
    create_raw(&path, 4 * MIB).unwrap();
    let model = dir.path().join("m.raw");
    create_raw(&model, 4 * MIB).unwrap();
    let mut img = open_image(&path, ImageFormat::Raw, false).unwrap();
    exercise(img.as_mut(), &model, 3, 200, 200_000);
    // Past the end: an error, not a short read.
    let mut buf = [0u8; 512];
    assert!(matches!(
        img.read_at(&mut buf, 4 * MIB - 256),
        Err(DiskError::OutOfRange { .. })
    ));
    assert!(matches!(
        img.write_at(&buf, 4 * MIB),
        Err(DiskError::OutOfRange { .. })
    ));
    assert!(matches!(
        img.read_at(&mut buf, u64::MAX - 10),
        Err(DiskError::OutOfRange { .. })
    ));
    drop(img);
    compare_with_raw(&path, "raw", &model);
    let mut ro = open_image(&path, ImageFormat::Raw, true).unwrap();
    assert!(matches!(
        ro.write_at(&buf, 0),
        Err(DiskError::ReadOnly { .. })
    ));
}

#[test]
fn qcow2_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.qcow2");
    create_qcow2(&path, MIB, None).unwrap();
    let mut img = open_image(&path, ImageFormat::Qcow2, false).unwrap();
    let mut buf = [0u8; 512];
    assert!(matches!(
        img.read_at(&mut buf, MIB - 1),
        Err(DiskError::OutOfRange { .. })
    ));
    assert!(matches!(
        img.write_at(&buf, MIB),
        Err(DiskError::OutOfRange { .. })
    ));
}

#[test]
fn created_images_pass_qemu_check_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let raw = d.join("new.raw");
    create_raw(&raw, 100 * MIB).unwrap();
    let i = info(&raw);
    assert_eq!(i["format"], "raw");
    assert_eq!(i["virtual-size"], 100 * MIB);
    assert!(create_raw(&raw, MIB).is_err(), "must refuse to overwrite");

    let base = d.join("base.qcow2");
    create_qcow2(&base, 3 * 1024 * MIB, None).unwrap();
    check_clean(&base);
    let i = info(&base);
    assert_eq!(i["format"], "qcow2");
    assert_eq!(i["virtual-size"], 3 * 1024 * MIB);
    assert_eq!(i["cluster-size"], 65536);
    assert_eq!(i["format-specific"]["data"]["compat"], "1.1");
    assert!(i.get("backing-filename").is_none());

    // Put data in the base, then an overlay on it (relative name, size from
    // the base as in vmctl).
    let model = d.join("model.raw");
    create_raw(&model, 3 * 1024 * MIB).unwrap();
    {
        let mut img = open_image(&base, ImageFormat::Qcow2, false).unwrap();
        exercise(img.as_mut(), &model, 11, 60, 300_000);
    }
    check_clean(&base);
    let top = d.join("top.qcow2");
    create_qcow2(&top, 0, Some(Path::new("base.qcow2"))).unwrap();
    check_clean(&top);
    let i = info(&top);
    assert_eq!(i["virtual-size"], 3 * 1024 * MIB);
    assert_eq!(i["backing-filename"], "base.qcow2");
    assert_eq!(i["backing-filename-format"], "qcow2");
    compare_with_raw(&top, "qcow2", &model);
    {
        let mut img = open_image(&top, ImageFormat::Qcow2, false).unwrap();
        exercise(img.as_mut(), &model, 12, 60, 300_000);
    }
    check_clean(&top);
    compare_with_raw(&top, "qcow2", &model);
    assert!(create_qcow2(&d.join("bad.qcow2"), MIB, Some(Path::new("base.qcow2"))).is_err());
    assert!(create_qcow2(&d.join("bad2.qcow2"), 0, None).is_err());
}

#[test]
fn conversion_reports_progress_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src.raw");
    make_pattern_raw(&src, 20 * MIB, 5);
    for (name, format, fmt_name) in [
        ("o.qcow2", ImageFormat::Qcow2, "qcow2"),
        ("o.raw", ImageFormat::Raw, "raw"),
    ] {
        let out = d.join(name);
        let mut calls: Vec<(u64, u64)> = Vec::new();
        convert_image(&src, &out, format, None, &mut |done, total| {
            calls.push((done, total))
        })
        .unwrap();
        assert_eq!(calls.last(), Some(&(20 * MIB, 20 * MIB)));
        assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
        if format == ImageFormat::Qcow2 {
            check_clean(&out);
        }
        compare_with_raw(&out, fmt_name, &src);
        assert_eq!(info(&out)["format"], fmt_name);
    }
    // qcow2 input (with a backing file) to a bigger raw output.
    let top = d.join("t.qcow2");
    create_qcow2(&top, 0, Some(&d.join("o.qcow2"))).unwrap();
    // Sizes round up to a whole MiB, as in vmctl.
    let odd = d.join("odd.raw");
    let got = convert_image(
        &src,
        &odd,
        ImageFormat::Raw,
        Some(20 * MIB + 1),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(got, 21 * MIB);
    assert_eq!(fs::metadata(&odd).unwrap().len(), 21 * MIB);
    let out = d.join("big.raw");
    convert_image(&top, &out, ImageFormat::Raw, Some(30 * MIB), &mut |_, _| {}).unwrap();
    assert_eq!(fs::metadata(&out).unwrap().len(), 30 * MIB);
    let (code, text) = qemu_img(&["compare", "-F", "raw", "-f", "raw", p(&src), p(&out)]);
    assert_eq!(code, 0, "{text}");
    let err = convert_image(
        &src,
        &d.join("small.raw"),
        ImageFormat::Raw,
        Some(MIB),
        &mut |_, _| {},
    );
    assert!(err.is_err());
    assert!(!d.join("small.raw").exists());
}

/// A qemu-made image with one header field patched.
fn patched(dir: &Path, name: &str, opts: &str, patch: impl FnOnce(&fs::File)) -> PathBuf {
    let path = dir.join(name);
    qemu_img_ok(&["create", "-f", "qcow2", "-o", opts, p(&path), "16M"]);
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    patch(&f);
    path
}

fn open_err(path: &Path, read_only: bool) -> String {
    match Qcow2Image::open(path, read_only) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn hostile_headers_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w =
        |off: u64, bytes: &'static [u8]| move |f: &fs::File| f.write_all_at(bytes, off).unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            patched(d, "magic", "compat=1.1", w(0, b"QFI\x00")),
            "bad magic",
        ),
        (
            patched(d, "version", "compat=1.1", w(4, &[0, 0, 0, 4])),
            "version 4",
        ),
        (
            patched(d, "small", "compat=1.1", w(20, &[0, 0, 0, 8])),
            "cluster size",
        ),
        (
            patched(d, "big", "compat=1.1", w(20, &[0, 0, 0, 22])),
            "cluster size",
        ),
        (
            patched(d, "crypt", "compat=1.1", w(32, &[0, 0, 0, 1])),
            "encryption",
        ),
        (
            patched(
                d,
                "unknown",
                "compat=1.1",
                w(72, &[0, 0, 0, 0, 0, 0, 0, 0x40]),
            ),
            "unknown incompatible feature bit 6",
        ),
        (
            patched(
                d,
                "extdata",
                "compat=1.1",
                w(72, &[0, 0, 0, 0, 0, 0, 0, 0x04]),
            ),
            "external data file",
        ),
        (
            patched(
                d,
                "subcl",
                "compat=1.1",
                w(72, &[0, 0, 0, 0, 0, 0, 0, 0x10]),
            ),
            "extended L2",
        ),
        (
            patched(d, "l1", "compat=1.1", w(40, &[0, 0, 0, 0, 0x10, 0, 0, 0])),
            "L1 table",
        ),
        (
            patched(d, "rct", "compat=0.10", w(48, &[0, 0, 0, 0, 0x10, 0, 0, 0])),
            "refcount table",
        ),
        (
            patched(d, "order", "compat=1.1", w(96, &[0, 0, 0, 5])),
            "refcount width",
        ),
        (
            patched(d, "l1size", "compat=1.1", w(36, &[0, 0, 0, 0])),
            "too small",
        ),
    ];
    for (path, needle) in cases {
        let msg = open_err(&path, true);
        assert!(
            msg.contains(needle),
            "{}: {msg:?} lacks {needle:?}",
            path.display()
        );
        assert!(msg.contains(p(&path)), "{msg:?} does not name the file");
    }
    let dirty = patched(
        d,
        "dirty",
        "compat=1.1",
        w(72, &[0, 0, 0, 0, 0, 0, 0, 0x01]),
    );
    assert!(open_err(&dirty, false).contains("dirty"));
    assert!(Qcow2Image::open(&dirty, true).is_ok());
}

#[test]
fn backing_loops_and_deep_chains_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (d.join("a.qcow2"), d.join("b.qcow2"));
    qemu_img_ok(&["create", "-f", "qcow2", p(&a), "16M"]);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "a.qcow2",
        "-F",
        "qcow2",
        p(&b),
    ]);
    qemu_img_ok(&["rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", p(&a)]);
    let msg = open_err(&b, false);
    assert!(msg.contains("loop"), "{msg}");

    // A chain of exactly four images opens; five do not.
    let mut prev = d.join("c0.qcow2");
    qemu_img_ok(&["create", "-f", "qcow2", p(&prev), "16M"]);
    for i in 1..5 {
        let next = d.join(format!("c{i}.qcow2"));
        let name = prev.file_name().unwrap().to_str().unwrap().to_string();
        qemu_img_ok(&[
            "create",
            "-f",
            "qcow2",
            "-b",
            &name,
            "-F",
            "qcow2",
            p(&next),
        ]);
        prev = next;
    }
    assert!(Qcow2Image::open(&d.join("c3.qcow2"), false).is_ok());
    let msg = open_err(&d.join("c4.qcow2"), false);
    assert!(msg.contains("deeper than 4"), "{msg}");
    // A missing backing file is named.
    let orphan = d.join("orphan.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-u",
        "-b",
        "nonexistent.qcow2",
        "-F",
        "qcow2",
        p(&orphan),
        "16M",
    ]);
    assert!(open_err(&orphan, true).contains("nonexistent.qcow2"));
}

#[test]
fn inconsistency_sets_corrupt_bit_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.qcow2");
    let pattern = dir.path().join("x.raw");
    make_pattern_raw(&pattern, 16 * MIB, 8);
    qemu_img_ok(&["convert", "-f", "raw", "-O", "qcow2", p(&pattern), p(&path)]);
    // Point the first L2 table's first non-zero entry far outside the file.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut hdr = [0u8; 104];
    f.read_exact_at(&mut hdr, 0).unwrap();
    let l1_off = u64::from_be_bytes(hdr[40..48].try_into().unwrap());
    let mut e = [0u8; 8];
    f.read_exact_at(&mut e, l1_off).unwrap();
    let l2_off = u64::from_be_bytes(e) & 0x00ff_ffff_ffff_fe00;
    let mut l2 = vec![0u8; 65536];
    f.read_exact_at(&mut l2, l2_off).unwrap();
    let idx = l2
        .chunks(8)
        .position(|c| c != [0u8; 8])
        .expect("an allocated cluster");
    let bad: u64 = (1 << 63) | (1 << 40);
    f.write_all_at(&bad.to_be_bytes(), l2_off + idx as u64 * 8)
        .unwrap();
    drop(f);

    let mut img = Qcow2Image::open(&path, false).unwrap();
    let mut buf = vec![0u8; 4096];
    let err = img.read_at(&mut buf, idx as u64 * 65536).unwrap_err();
    assert!(matches!(err, DiskError::Corrupt { .. }), "{err}");
    let err = img.write_at(&buf, 0).unwrap_err();
    assert!(err.to_string().contains("marked corrupt"), "{err}");
    drop(img);
    let i = info(&path);
    assert_eq!(i["format-specific"]["data"]["corrupt"], true);
    assert!(open_err(&path, false).contains("marked corrupt"));
    assert!(Qcow2Image::open(&path, true).is_ok());
}

#[test]
fn chain_opened_from_files_as_a_vioblk_child() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (base, mid, top) = (d.join("base.raw"), d.join("mid.qcow2"), d.join("top.qcow2"));
    make_pattern_raw(&base, 16 * MIB, 21);
    let model = d.join("model.raw");
    copy_file(&base, &model);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "base.raw",
        "-F",
        "raw",
        p(&mid),
    ]);
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-b",
        "mid.qcow2",
        "-F",
        "qcow2",
        p(&top),
    ]);

    let chain = Qcow2Image::chain_paths(&top).unwrap();
    let want: Vec<PathBuf> = [&top, &mid, &base]
        .iter()
        .map(|p| fs::canonicalize(p).unwrap())
        .collect();
    assert_eq!(chain, want);
    let open = |path: &PathBuf, write: bool| {
        fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .unwrap()
    };
    let files = vec![
        open(&chain[0], true),
        open(&chain[1], false),
        open(&chain[2], false),
    ];
    {
        let mut img =
            devices::disk::open_image_files(files, &top, ImageFormat::Qcow2, false).unwrap();
        exercise(img.as_mut(), &model, 22, 80, 200_000);
    }
    check_clean(&top);
    compare_with_raw(&top, "qcow2", &model);

    let short = vec![open(&chain[0], false), open(&chain[1], false)];
    let err = devices::disk::open_image_files(short, &top, ImageFormat::Qcow2, true)
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing base image"), "{err}");
}

#[test]
fn zero_clusters_and_preallocated_images() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pattern, image, model) = (d.join("p.raw"), d.join("z.qcow2"), d.join("m.raw"));
    make_pattern_raw(&pattern, 16 * MIB, 31);
    // Fill everything so the zero writes hit allocated clusters.
    {
        let f = fs::OpenOptions::new().write(true).open(&pattern).unwrap();
        f.write_all_at(&vec![0x5a; 4 * MIB as usize], 0).unwrap();
    }
    qemu_img_ok(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-o",
        "compat=1.1",
        p(&pattern),
        p(&image),
    ]);
    // Zero clusters that keep their allocation, and ones that drop it.
    let out = std::process::Command::new("qemu-io")
        .args([
            "-f",
            "qcow2",
            "-c",
            "write -z 0 1M",
            "-c",
            "write -z -u 1M 1M",
            "-c",
            "write -z 2M 100k",
            p(&image),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    copy_file(&pattern, &model);
    {
        let f = fs::OpenOptions::new().write(true).open(&model).unwrap();
        f.write_all_at(&vec![0; 2 * MIB as usize], 0).unwrap();
        f.write_all_at(&vec![0; 100 * 1024], 2 * MIB).unwrap();
    }
    compare_with_raw(&image, "qcow2", &model);
    {
        let mut img = open_image(&image, ImageFormat::Qcow2, false).unwrap();
        let mut buf = vec![1u8; 2 * MIB as usize];
        img.read_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
        exercise(img.as_mut(), &model, 32, 100, 150_000);
    }
    check_clean(&image);
    compare_with_raw(&image, "qcow2", &model);

    let pre = d.join("pre.qcow2");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        "preallocation=metadata",
        p(&pre),
        "16M",
    ]);
    let pre_model = d.join("pre.raw");
    create_raw(&pre_model, 16 * MIB).unwrap();
    {
        let mut img = open_image(&pre, ImageFormat::Qcow2, false).unwrap();
        exercise(img.as_mut(), &pre_model, 33, 100, 150_000);
    }
    check_clean(&pre);
    compare_with_raw(&pre, "qcow2", &pre_model);
}
