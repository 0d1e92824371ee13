//! Crash safety: a writer process doing random writes and flushes to a
//! qcow2 image is killed with SIGKILL at random points, again and again.
//! After each kill `qemu-img check` must find no corruption (leaks are
//! allowed and counted) and every write acknowledged by a completed flush
//! must read back.
//!
//! The writer is this test binary re-executed with `--ignored --exact
//! crash_writer` and the job in the environment. It prints `ACK n` after a
//! flush that covers its first n writes.

mod disk_common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devices::disk::{open_image, ImageFormat};
use disk_common::*;

const SIZE: u64 = 256 << 20;
/// Every write stays inside its own slot, and no slot is used twice, so an
/// acknowledged write can only be changed by a bug.
const SLOT: u64 = 64 * 1024;
const SLOTS_PER_RUN: u64 = 128;
const KILLS: u64 = 24;

/// Write `i` of run `run`: (offset, data).
fn planned_write(run: u64, i: u64) -> (u64, Vec<u8>) {
    let slot = run * SLOTS_PER_RUN + i;
    // Scatter slots over the disk; 4095 is coprime with the slot count.
    let slots = SIZE / SLOT;
    let place = (slot * 4095) % slots;
    let mut rng = Rng(run << 32 | i);
    let len = rng.range(1, SLOT - 512);
    let start = place * SLOT + rng.range(0, SLOT - len);
    let mut data = vec![0u8; len as usize];
    rng.fill(&mut data);
    (start, data)
}

#[test]
#[ignore = "helper process for sigkill_during_writes_loses_nothing_flushed"]
fn crash_writer() {
    let (Ok(path), Ok(run)) = (std::env::var("CRASH_IMAGE"), std::env::var("CRASH_RUN")) else {
        return;
    };
    let run: u64 = run.parse().unwrap();
    let mut image = open_image(Path::new(&path), ImageFormat::Qcow2, false).unwrap();
    let mut rng = Rng(run ^ 0xf1u64);
    let mut since_flush = 0;
    for i in 0..SLOTS_PER_RUN {
        let (off, data) = planned_write(run, i);
        image.write_at(&data, off).unwrap();
        since_flush += 1;
        if since_flush >= rng.range(1, 6) {
            image.flush().unwrap();
            println!("ACK {}", i + 1);
            since_flush = 0;
        }
    }
    image.flush().unwrap();
    println!("ACK {SLOTS_PER_RUN}");
    println!("DONE");
}

fn verify(path: &Path, acked: &[(u64, u64)]) {
    let mut image = open_image(path, ImageFormat::Qcow2, true).unwrap();
    for &(run, count) in acked {
        for i in 0..count {
            let (off, data) = planned_write(run, i);
            let mut back = vec![0u8; data.len()];
            image.read_at(&mut back, off).unwrap();
            assert!(
                back == data,
                "run {run}: acknowledged write {i} at {off} is lost"
            );
        }
    }
}

fn crash_runs(cluster: &str, compat: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.qcow2");
    let opts = format!("cluster_size={cluster},compat={compat}");
    qemu_img_ok(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        &opts,
        p(&path),
        &SIZE.to_string(),
    ]);
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0xc4a54);
    let mut acked: Vec<(u64, u64)> = Vec::new();
    let (mut kills, mut leaks) = (0, 0);
    for run in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("CRASH_IMAGE", &path)
            .env("CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Kill after a random number of acknowledgements, or time, whichever
        // comes first; the reader thread reports the last ACK it saw.
        let kill_after_acks = rng.range(1, 20);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = 0u64;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ACK ") {
                    last = n.parse().unwrap();
                    let _ = tx.send(last);
                }
            }
            last
        });
        let deadline = Instant::now() + Duration::from_millis(rng.range(5, 400));
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(1)) {
                Ok(n) if n >= kill_after_acks => break,
                _ => {}
            }
        }
        // SAFETY: kill(2) on our own child's pid.
        let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) } == 0;
        let status = child.wait().unwrap();
        let last_ack = reader.join().unwrap();
        if killed && status.code().is_none() {
            kills += 1;
        }
        acked.push((run, last_ack));
        leaks += check(&path);
        verify(&path, &acked);
    }
    let acked_writes: u64 = acked.iter().map(|&(_, n)| n).sum();
    eprintln!(
        "cluster {cluster} compat {compat}: {kills} kills, {acked_writes} acknowledged writes verified, \
         leaks per check summed: {leaks}"
    );
    assert!(
        acked_writes >= KILLS,
        "writers acknowledged too little to test anything"
    );
    assert!(kills >= 20, "only {kills} writers were killed mid-run");
}

#[test]
fn sigkill_during_writes_loses_nothing_flushed() {
    crash_runs("65536", "1.1");
}

#[test]
fn sigkill_during_writes_small_clusters_v2() {
    // 512-byte clusters: the refcount table grows while writers die.
    crash_runs("512", "0.10");
}
