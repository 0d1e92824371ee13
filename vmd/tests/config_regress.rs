//! OpenBSD's regress/usr.sbin/vmd/config cases, run as OpenBSD runs them:
//! `vmd -n -f case.conf 2>&1` in a directory holding empty disk images;
//! for failing cases a leading "vmd: " and the file path are removed
//! before the output is compared with the .ok file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../regress/config")
}

fn run_case(conf: &Path, work: &Path, ramdisk: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vmd"));
    cmd.current_dir(work);
    // The boot case boots /bsd.rd; when this machine has none, point the
    // case's macro at a stand-in (-D wins over the file's own definition).
    // Only for the cases that use it: vmd warns about an unused macro,
    // command-line ones included.
    let uses_ramdisk = std::fs::read_to_string(conf).is_ok_and(|t| t.contains("$ramdisk"));
    if uses_ramdisk && !Path::new("/bsd.rd").exists() {
        cmd.arg("-D").arg(format!("ramdisk={}", ramdisk.display()));
    }
    let out = cmd.arg("-n").arg("-f").arg(conf).output().expect("run vmd");
    assert!(out.stdout.is_empty(), "vmd -n wrote to stdout");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let passing = conf
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("vmd-pass-");
    assert_eq!(
        out.status.success(),
        passing,
        "exit status of {}: {stderr}",
        conf.display()
    );
    if passing {
        return stderr.trim_end_matches('\n').to_string();
    }
    let prefix = format!("{}:", conf.display());
    stderr
        .trim_end_matches('\n')
        .lines()
        .map(|l| l.strip_prefix("vmd: ").unwrap_or(l).replace(&prefix, ""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn openbsd_config_regress_cases_all_pass() {
    let work = tempfile::tempdir().unwrap();
    for name in [
        "foo.img",
        "disk0.img",
        "disk1.img",
        "disk2.img",
        "disk3.img",
        "disk4.img",
        "bsd.rd",
    ] {
        std::fs::write(work.path().join(name), b"").unwrap();
    }
    let ramdisk = work.path().join("bsd.rd");
    let mut confs: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    confs.sort();
    assert_eq!(confs.len(), 13, "expected OpenBSD's 13 cases");
    let mut failed = Vec::new();
    for conf in &confs {
        let want = std::fs::read_to_string(conf.with_extension("ok")).unwrap();
        let got = run_case(conf, work.path(), &ramdisk);
        if got != want.trim_end_matches('\n') {
            failed.push(format!("{}:\nwant:\n{want}\ngot:\n{got}", conf.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 13 failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
