//! Helpers shared by the disk image tests: qemu-img, a seeded PRNG, files.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// splitmix64: small, seeded, good enough to pick offsets and bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Runs qemu-img; returns (exit code, stdout + stderr).
pub fn qemu_img(args: &[&str]) -> (i32, String) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img must be installed (qemu-utils)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

pub fn qemu_img_ok(args: &[&str]) -> String {
    let (code, text) = qemu_img(args);
    assert_eq!(code, 0, "qemu-img {args:?} failed: {text}");
    text
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `qemu-img check`: asserts no corruption; returns the number of leaked
/// clusters.
pub fn check(path: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["check", "--output=json", p(path)])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let text = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        code == 0 || code == 3,
        "qemu-img check {} exit {code}: {text}{errors}",
        path.display()
    );
    // qemu-img prints "Leaked cluster" lines after the JSON object.
    let v: serde_json::Value = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .next()
        .and_then(|r| r.ok())
        .unwrap_or_else(|| panic!("no JSON from qemu-img check: {text}"));
    for key in ["corruptions", "check-errors"] {
        let n = v.get(key).and_then(|x| x.as_u64()).unwrap_or(0);
        assert_eq!(n, 0, "{key} in {}: {text}", path.display());
    }
    v.get("leaks").and_then(|x| x.as_u64()).unwrap_or(0)
}

/// `qemu-img check` with no errors and no leaks allowed.
pub fn check_clean(path: &Path) {
    let leaks = check(path);
    assert_eq!(leaks, 0, "{} leaks {leaks} clusters", path.display());
}

/// `qemu-img compare` of a qcow2 image (with its chain) against a raw model.
pub fn compare_with_raw(image: &Path, format: &str, model: &Path) {
    let (code, text) = qemu_img(&["compare", "-f", format, "-F", "raw", p(image), p(model)]);
    assert_eq!(
        code,
        0,
        "qemu-img compare {} {}: {text}",
        image.display(),
        model.display()
    );
}

pub fn info(path: &Path) -> serde_json::Value {
    let text = qemu_img_ok(&["info", "--output=json", p(path)]);
    serde_json::from_str(&text).unwrap()
}
