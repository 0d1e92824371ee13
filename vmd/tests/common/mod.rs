//! Shared by the real-guest tests: building the guest, booting it, and
//! checking what it printed.

#![allow(dead_code)]

pub mod daemon;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::os::fd::AsRawFd;

use devices::disk::{self, DiskBackend, ImageFormat};
use devices::memory::GuestMemory;
use devices::ns8250::SerialSink;
use vm::device_proc::{self, LaunchSpec};
use vm::hv::kvm::KvmVm;
use vm::machine::{BootDevice, DiskDevice, Machine, MachineConfig};
use vm::memory_layout;
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
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: /dev/kvm: {e}");
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
    let out = Command::new("bash")
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
    ProcessRaw,
    ProcessQcow2,
}

pub struct Run {
    pub console: String,
    pub firmware: String,
    pub reason: StopReason,
    pub elapsed: Duration,
    pub image: PathBuf,
    /// The guest's memory as it was when the guest stopped.
    pub memory: GuestMemory,
    /// Bus 0's functions with an interrupt pin, as (device, pin, line),
    /// before the firmware ran and when the guest stopped.
    pub pci_lines_before: Vec<(u8, u8, u8)>,
    pub pci_lines_after: Vec<(u8, u8, u8)>,
}

/// Reads every bus-0 device's interrupt pin and line through the config
/// ports, as a guest would: (device, pin, line) for each with a pin.
pub fn pci_interrupt_lines(bus: &devices::bus::PortBus) -> Vec<(u8, u8, u8)> {
    use devices::bus::AccessSize;
    use devices::pci::{PCI_MODE1_ADDRESS_REG, PCI_MODE1_DATA_REG, PCI_MODE1_ENABLE};
    let read = |dev: u8, reg: u32| {
        let addr = PCI_MODE1_ENABLE | u32::from(dev) << 11 | reg;
        bus.write(PCI_MODE1_ADDRESS_REG, AccessSize::Dword, addr);
        bus.read(PCI_MODE1_DATA_REG, AccessSize::Dword)
    };
    (0..32u8)
        .filter(|&dev| read(dev, 0) & 0xffff != 0xffff)
        .filter_map(|dev| {
            let r = read(dev, 0x3c);
            let (line, pin) = (r as u8, (r >> 8) as u8);
            (pin != 0).then_some((dev, pin, line))
        })
        .collect()
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

/// A machine set up to boot the guest, not yet running.
pub struct Prepared {
    pub machine: Machine,
    console: Capture,
    firmware: Capture,
    pub image: PathBuf,
}

/// Builds the VM: SeaBIOS, 512 MiB, the guest's disk as vioblk in this
/// process or in a device process (the vmd binary's `-X`).
pub fn prepare_bs(guest: &Guest, disk: BsDisk) -> Prepared {
    let (image, format) = match disk {
        BsDisk::LocalRaw | BsDisk::ProcessRaw => (guest.dir.join("bsdisk.img"), ImageFormat::Raw),
        BsDisk::LocalQcow2 | BsDisk::ProcessQcow2 => {
            (guest.dir.join("bsdisk.qcow2"), ImageFormat::Qcow2)
        }
    };
    let map = memory_layout::memory_map(512 << 20).unwrap();
    let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
    let device = match disk {
        BsDisk::LocalRaw | BsDisk::LocalQcow2 => DiskDevice::Local(Box::new(DiskBackend::new(
            disk::open_image(&image, format, false).unwrap(),
        ))),
        BsDisk::ProcessRaw | BsDisk::ProcessQcow2 => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&image)
                .unwrap();
            let vm = device_proc::describe_vm("bs", &map, &[(&image, format, 1)]).unwrap();
            let dev = device_proc::vioblk_dev(0, &[file.as_raw_fd()]).unwrap();
            let process = device_proc::launch(LaunchSpec {
                exe: Path::new(env!("CARGO_BIN_EXE_vmd")),
                dev,
                vm: &vm,
                mem: &mem,
                data_fds: vec![file.as_raw_fd()],
                vmm_fd: -1,
                debug: true,
                verbose: 0,
            })
            .unwrap();
            DiskDevice::Process(Box::new(process))
        }
    };
    let console = Capture::default();
    let firmware = Capture::default();
    let machine = Machine::with_memory(
        MachineConfig {
            name: "bs".into(),
            memory: 512 << 20,
            bios: std::fs::read(SEABIOS).unwrap(),
            disks: vec![device],
            nics: Vec::new(),
            cdrom: None,
            console: Box::new(console.clone()),
            console_input: None,
            boot_mac: None,
            firmware_log: Some(Box::new(firmware.clone())),
            boot_device: BootDevice::Disk,
        },
        map,
        mem,
    )
    .unwrap();
    Prepared {
        machine,
        console,
        firmware,
        image,
    }
}

impl Prepared {
    /// What the guest has written to COM1 so far, readable while it runs.
    pub fn console(&self) -> Capture {
        self.console.clone()
    }

    /// Runs the guest on KVM until it stops, at most 90 s.
    pub fn run(mut self) -> Run {
        let control = self.machine.control();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(90));
            control.stop(StopReason::Unhandled("test timeout after 90 s".into()));
        });
        let kvm = KvmVm::new(&self.machine.mem).unwrap();
        let mut cpu = kvm.create_vcpu(0).unwrap();
        let pci_lines_before = pci_interrupt_lines(self.machine.bus());
        let t0 = Instant::now();
        let reason = self.machine.run(&mut cpu).unwrap();
        let elapsed = t0.elapsed();
        let pci_lines_after = pci_interrupt_lines(self.machine.bus());
        self.machine.control().shutdown_devices();
        Run {
            console: self.console.text(),
            firmware: self.firmware.text(),
            reason,
            elapsed,
            image: self.image,
            memory: self.machine.mem.clone(),
            pci_lines_before,
            pci_lines_after,
        }
    }
}

/// Boots SeaBIOS and the guest on KVM.
pub fn boot_bs(guest: &Guest, disk: BsDisk) -> Run {
    prepare_bs(guest, disk).run()
}

/// The sector the guest wrote: bytes 0..255 twice.
pub fn assert_written_sector(image: &[u8], guest: &Guest) {
    let at = (guest.write_lba * 512) as usize;
    let want: Vec<u8> = (0..512).map(|i| i as u8).collect();
    assert_eq!(
        &image[at..at + 512],
        &want[..],
        "the guest's write is not in the image"
    );
}
