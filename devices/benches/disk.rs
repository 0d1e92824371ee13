//! Disk image throughput against `qemu-img bench`, on the same image files
//! with the same request pattern, in one run:
//!
//!     cargo bench -p devices --bench disk
//!
//! `qemu-img bench -c N -d 1 -s SIZE -S STEP [-w]` issues N requests of SIZE
//! bytes at offsets 0, STEP, 2*STEP, ... modulo the image size, one at a
//! time (queue depth 1, as our synchronous device loop does), through the
//! page cache. We issue exactly the same offsets. For "random" 4 KiB rows
//! the step is 7919 * 4 KiB: a prime stride that scatters requests over the
//! whole image. Timings exclude process start-up and the final flush on both
//! sides; each row is the best of three runs, with the page cache written
//! back before each side and the sides taking turns going first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use devices::disk::{open_image, ImageFormat};

const IMAGE_SIZE: u64 = 512 << 20;
const RANDOM_STEP: u64 = 7919 * 4096;
const RUNS: usize = 3;

struct Row {
    name: &'static str,
    format: ImageFormat,
    request: u64,
    step: u64,
    count: u64,
    write: bool,
    /// Start from an empty image (allocating writes) instead of a full one.
    empty: bool,
}

fn qemu_bench(path: &Path, row: &Row) -> f64 {
    let mut cmd = Command::new("qemu-img");
    cmd.args([
        "bench",
        "-f",
        row.format.name(),
        "-d",
        "1",
        "-t",
        "writeback",
    ]);
    cmd.args([
        "-c",
        &row.count.to_string(),
        "-s",
        &row.request.to_string(),
        "-S",
        &row.step.to_string(),
    ]);
    if row.write {
        cmd.arg("-w");
    }
    let out = cmd.arg(path).output().expect("qemu-img");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qemu-img bench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Run completed in 1.234 seconds."
    text.split("Run completed in ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse qemu-img bench output: {text}"))
}

fn our_bench(path: &Path, row: &Row) -> f64 {
    let mut image = open_image(path, row.format, !row.write).unwrap();
    // Page-aligned, as qemu-img bench's buffer (qemu_blockalign) and as
    // guest memory is: an unaligned source makes every copy slower.
    let mut storage = vec![0xa5u8; row.request as usize + 4096];
    let skip = storage.as_ptr().align_offset(4096);
    let buf = &mut storage[skip..skip + row.request as usize];
    let mut offset = 0u64;
    let start = Instant::now();
    for _ in 0..row.count {
        if row.write {
            image.write_at(buf, offset).unwrap();
        } else {
            image.read_at(buf, offset).unwrap();
        }
        offset = (offset + row.step) % IMAGE_SIZE;
    }
    let elapsed = start.elapsed().as_secs_f64();
    image.flush().unwrap();
    elapsed
}

fn fresh_image(dir: &Path, name: &str, format: ImageFormat) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", format.name()])
        .arg(&path)
        .arg(IMAGE_SIZE.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn full_image(dir: &Path, format: ImageFormat, data: &Path) -> PathBuf {
    let path = dir.join(format!("full.{}", format.name()));
    if !path.exists() {
        let status = Command::new("qemu-img")
            .args(["convert", "-f", "raw", "-O", format.name()])
            .arg(data)
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("disk-bench")
        .tempdir_in("/var/tmp")
        .unwrap();
    let data = dir.path().join("data.raw");
    {
        // Incompressible, fully allocated content.
        let mut bytes = vec![0u8; IMAGE_SIZE as usize];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for chunk in bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        std::fs::write(&data, &bytes).unwrap();
    }
    let mib = 1 << 20;
    let mut rows = Vec::new();
    for format in [ImageFormat::Qcow2, ImageFormat::Raw] {
        rows.push(Row {
            name: "4 KiB random read",
            format,
            request: 4096,
            step: RANDOM_STEP,
            count: 200_000,
            write: false,
            empty: false,
        });
        rows.push(Row {
            name: "4 KiB random write",
            format,
            request: 4096,
            step: RANDOM_STEP,
            count: 200_000,
            write: true,
            empty: false,
        });
        if format == ImageFormat::Qcow2 {
            rows.push(Row {
                name: "4 KiB random write, allocating",
                format,
                request: 4096,
                step: RANDOM_STEP,
                count: 50_000,
                write: true,
                empty: true,
            });
        }
        rows.push(Row {
            name: "1 MiB sequential read",
            format,
            request: mib,
            step: mib,
            count: 4096,
            write: false,
            empty: false,
        });
        rows.push(Row {
            name: "1 MiB sequential write",
            format,
            request: mib,
            step: mib,
            count: 4096,
            write: true,
            empty: false,
        });
        if format == ImageFormat::Qcow2 {
            rows.push(Row {
                name: "1 MiB sequential write, allocating",
                format,
                request: mib,
                step: mib,
                count: 512,
                write: true,
                empty: true,
            });
        }
    }

    println!("| format | workload | requests | qemu-img bench (s) | ours (s) | ratio (qemu time / our time) |");
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let full = full_image(dir.path(), row.format, &data);
        let (mut best_qemu, mut best_ours) = (f64::MAX, f64::MAX);
        for run in 0..RUNS {
            // Each side gets its own copy in the same state.
            let (a, b) = if row.empty {
                (
                    fresh_image(dir.path(), "a.img", row.format),
                    fresh_image(dir.path(), "b.img", row.format),
                )
            } else {
                (full.clone(), full.clone())
            };
            // Neither side may pay for the other's dirty pages: write
            // everything back first, and take turns going first.
            let sync = || {
                // SAFETY: sync(2) has no preconditions.
                unsafe { libc::sync() }
            };
            if run % 2 == 0 {
                sync();
                best_qemu = best_qemu.min(qemu_bench(&a, row));
                sync();
                best_ours = best_ours.min(our_bench(&b, row));
            } else {
                sync();
                best_ours = best_ours.min(our_bench(&b, row));
                sync();
                best_qemu = best_qemu.min(qemu_bench(&a, row));
            }
        }
        println!(
            "| {} | {} | {} x {} B | {:.3} | {:.3} | {:.2}x |",
            row.format.name(),
            row.name,
            row.count,
            row.request,
            best_qemu,
            best_ours,
            best_qemu / best_ours
        );
    }
}
