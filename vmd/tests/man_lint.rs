//! `mandoc -Tlint` on every page in man/ must report nothing.
//!
//! The one exception is "referenced manual not found": the pages refer to
//! OpenBSD manuals (vmm(4), tap(4), ...) that a Linux host does not have,
//! so that message says something about the host, not about our pages.

use std::path::Path;
use std::process::Command;

#[test]
fn man_pages_are_lint_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man");
    if Command::new("mandoc").arg("-V").output().is_err() {
        println!("SKIPPED: mandoc is not installed (.ci/install-deps installs it)");
        return;
    }
    let mut pages: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| {
                e.len() == 1 && e.to_str().unwrap().chars().all(|c| c.is_ascii_digit())
            })
        })
        .collect();
    pages.sort();
    assert!(!pages.is_empty(), "no man pages in {}", dir.display());
    let mut complaints = Vec::new();
    for page in &pages {
        let out = Command::new("mandoc")
            .arg("-Tlint")
            .arg(page)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        complaints.extend(
            text.lines()
                .filter(|l| !l.contains("referenced manual not found"))
                .filter(|l| !l.contains("outdated mandoc.db"))
                .map(str::to_string),
        );
    }
    assert!(
        complaints.is_empty(),
        "mandoc -Tlint:\n{}",
        complaints.join("\n")
    );
}
