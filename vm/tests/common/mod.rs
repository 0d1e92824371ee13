//! Shared by the real-guest tests: building the guest, booting it, and
//! checking what it printed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::disk::{self, DiskBackend, ImageFormat};
use devices::ns8250::SerialSink;
use vm::hv::kvm::KvmVm;
use vm::machine::{DiskDevice, Machine, MachineConfig};
use vm::vcpu::StopReason;

pub const SEABIOS: &str = "/usr/share/seabios/bios.bin";

/// Prints the loud SKIPPED line and returns true when KVM is missing.
pub fn skip_without_kvm(test: &str) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => false,
        Err(e) => {
            println!("SKIPPED: {test}: /dev/kvm: {e}");
            true
        }
    }
}

pub struct Guest {
    pub dir: PathBuf,
    pub read_sum: String,
    pub write_lba: u64,
}

/// Builds the boot-sector guest into a fresh directory.
pub fn build_guest() -> Guest {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempdir();
    let out = Command::new("sh")
        .arg(root.join("regress/guest/build-bs.sh"))
        .arg(&dir)
        .output()
        .expect("run build-bs.sh");
    assert!(
        out.status.success(),
        "build-bs.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        Path::new(SEABIOS).exists(),
        "{SEABIOS} is missing: .ci/install-deps installs the seabios package"
    );
    let env = std::fs::read_to_string(dir.join("bs.env")).unwrap();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing from bs.env"))
            .to_string()
    };
    Guest {
        read_sum: var("BS_READ_SUM"),
        write_lba: var("BS_WRITE_LBA").parse().unwrap(),
        dir,
    }
}

pub fn tempdir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(
        format!("guest-{}-{:?}", std::process::id(), Instant::now()).replace([' ', '.', ':'], ""),
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[derive(Clone, Default)]
pub struct Capture(pub Arc<Mutex<Vec<u8>>>);

impl SerialSink for Capture {
    fn write_byte(&mut self, b: u8) {
        self.0.lock().unwrap().push(b);
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub enum BsDisk {
    LocalRaw,
    LocalQcow2,
}

pub struct Run {
    pub console: String,
    pub firmware: String,
    pub reason: StopReason,
    pub elapsed: Duration,
    pub image: PathBuf,
}

impl Run {
    pub fn assert_all_markers(&self, guest: &Guest) {
        let c = &self.console;
        let ctx = || {
            format!(
                "stop: {:?}\nconsole:\n{c}\nfirmware log (tail):\n{}",
                self.reason,
                tail(&self.firmware)
            )
        };
        for m in [
            "BS-BOOT-OK",
            "BS-STAGE2-OK",
            "BS-DRIVE 80",
            "BS-WRITE-OK",
            "BS-TICKS-WAIT",
            "BS-TICKS-OK",
            "BS-DONE",
        ] {
            assert!(c.contains(m), "marker {m} missing; {}", ctx());
        }
        assert!(
            c.contains(&format!("BS-READ-OK sum={}", guest.read_sum)),
            "wrong or missing read sum; {}",
            ctx()
        );
        // 512 MiB: 639 KiB base memory, 15 MiB in 1 KiB units, and above
        // 16 MiB in 64 KiB units less the 64 KiB SeaBIOS keeps at the top.
        assert!(
            c.contains("BS-MEM int12=027f e801=3c00 1eff"),
            "memory sizes; {}",
            ctx()
        );
        assert!(
            c.contains("BS-PCI 00 0b5d:0666 0600"),
            "host bridge; {}",
            ctx()
        );
        assert!(c.contains("BS-PCI 01 1af4:1044"), "viornd; {}", ctx());
        assert!(c.contains("BS-PCI 02 1af4:1042 0100"), "vioblk; {}", ctx());
        assert!(c.contains("BS-PCI 03 0b5d:0777"), "vmmci; {}", ctx());
        let rtc = c
            .lines()
            .find_map(|l| l.trim().strip_prefix("BS-RTC "))
            .unwrap_or_else(|| panic!("no BS-RTC; {}", ctx()));
        assert!(is_bcd_time(rtc), "RTC time {rtc:?} is not BCD hh:mm:ss");
        assert_eq!(
            self.reason,
            StopReason::HaltedWithInterruptsOff,
            "{}",
            ctx()
        );
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn is_bcd_time(t: &str) -> bool {
    let parts: Vec<&str> = t.split(':').collect();
    parts.len() == 3
        && parts.iter().zip([0x23u8, 0x59, 0x59]).all(|(p, max)| {
            p.len() == 2
                && p.chars().all(|c| c.is_ascii_digit())
                && u8::from_str_radix(p, 16).is_ok_and(|v| v <= max)
        })
}

/// Boots SeaBIOS and the guest on KVM in this process; stops after 90 s.
pub fn boot_bs(guest: &Guest, disk: BsDisk) -> Run {
    let (image, format) = match disk {
        BsDisk::LocalRaw => (guest.dir.join("bsdisk.img"), ImageFormat::Raw),
        BsDisk::LocalQcow2 => (guest.dir.join("bsdisk.qcow2"), ImageFormat::Qcow2),
    };
    let backend = DiskBackend::new(disk::open_image(&image, format, false).unwrap());
    let console = Capture::default();
    let firmware = Capture::default();
    let mut machine = Machine::new(MachineConfig {
        name: "bs".into(),
        memory: 512 << 20,
        bios: std::fs::read(SEABIOS).unwrap(),
        disks: vec![DiskDevice::Local(Box::new(backend))],
        console: Box::new(console.clone()),
        console_input: None,
        firmware_log: Some(Box::new(firmware.clone())),
    })
    .unwrap();
    let control = machine.control();
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(90));
        control.stop(StopReason::Unhandled("test timeout after 90 s".into()));
    });
    drop(watchdog);
    let kvm = KvmVm::new(&machine.mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    let t0 = Instant::now();
    let reason = machine.run(&mut cpu).unwrap();
    Run {
        console: console.text(),
        firmware: firmware.text(),
        reason,
        elapsed: t0.elapsed(),
        image,
    }
}
