//! The manual pages are lint-clean: `mandoc -Tlint` reports nothing, not
//! even style notes. mandoc comes from .ci/install-deps.
//!
//! Two messages describe the host rather than our pages and are ignored:
//! "referenced manual not found" (the pages cite OpenBSD manuals such as
//! vmm(4) and tap(4) that a Linux host lacks) and complaints about the
//! host's own mandoc.db.

use std::process::Command;

#[test]
fn mandoc_lint_reports_nothing() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../man");
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, s)| s.len() == 1 && s.chars().all(|c| c.is_ascii_digit()))
        })
        .collect();
    pages.sort();
    assert!(
        pages.iter().any(|p| p == "vmd.8")
            && pages.iter().any(|p| p == "vmctl.8")
            && pages.iter().any(|p| p == "vm.conf.5")
    );
    // Lint from inside man/ so cross references between our pages resolve.
    let out = Command::new("mandoc")
        .current_dir(dir)
        .arg("-Tlint")
        .args(&pages)
        .output()
        .expect("mandoc is installed by .ci/install-deps");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Vec<&str> = all
        .lines()
        .filter(|l| !l.contains("referenced manual not found") && !l.contains("mandoc.db"))
        .collect();
    assert!(report.is_empty(), "mandoc -Tlint:\n{}", report.join("\n"));
}
