//! The vm process against its references, each ratio from one run:
//!
//!     cargo bench -p vmd --bench vm_bench
//!
//! 1. A register read of a device in its own process (IO_READ on the sync
//!    channel and the answer) against a bare socketpair ping-pong of the
//!    same 12 bytes between two threads.
//! 2. SeaBIOS plus the boot-sector guest, from nothing to the guest's
//!    final port write, against `qemu-system-x86_64 -enable-kvm` on the
//!    same BIOS and disk image (QEMU from regress/bench/install-qemu.sh).
//! 3. The memory of a running VM's processes (the vm process and its
//!    device processes, started by vmd), guest RAM excluded.
//!
//! Needs root and /dev/kvm; prints one SKIPPED line per part it cannot run.
//! `VM_BENCH_ONE_BOOT=ours` (or `=qemu`) runs a single boot and nothing
//! else, for `perf stat -a -e kvm:kvm_emulate_insn,...` around it.

#[cfg(target_os = "linux")]
mod bench {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use devices::bus::AccessSize;
    use devices::disk::ImageFormat;
    use devices::irq::{Irq, NoIrq};
    use devices::memory::GuestMemory;
    use devices::ns8250::SerialSink;
    use devices::pci::PciBarHandler;
    use vm::device_proc::{self, LaunchSpec};
    use vm::hv::kvm::KvmVm;
    use vm::machine::{BootDevice, DiskDevice, Machine, MachineConfig};
    use vm::memory_layout;

    const SEABIOS: &str = "/usr/share/seabios/bios.bin";
    const READS: usize = 20000;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    pub fn guest_dir_for_main() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vm-bench-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(root().join("regress/guest/build-bs.sh"))
            .arg(&dir)
            .output()
            .expect("build-bs.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    }

    fn launch_vioblk(image: &Path, map: &[memory_layout::Range], mem: &GuestMemory) -> DiskDevice {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(image)
            .unwrap();
        let vm = device_proc::describe_vm("bench", map, &[(image, ImageFormat::Raw, 1)]).unwrap();
        let dev = device_proc::vioblk_dev(0, &[file.as_raw_fd()]).unwrap();
        let process = device_proc::launch(LaunchSpec {
            exe: Path::new(env!("CARGO_BIN_EXE_vmd")),
            dev,
            vm: &vm,
            mem,
            data_fds: vec![file.as_raw_fd()],
            vmm_fd: -1,
            debug: false,
            verbose: 0,
        })
        .unwrap();
        DiskDevice::Process(Box::new(process))
    }

    pub fn register_read(dir: &Path) {
        let map = memory_layout::memory_map(16 << 20).unwrap();
        let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
        let DiskDevice::Process(process) = launch_vioblk(&dir.join("bsdisk.img"), &map, &mem)
        else {
            unreachable!()
        };
        let irq: Irq = Arc::new(NoIrq);
        let (regs, handle) = process.attach(irq, Arc::new(|_| {})).unwrap();
        let ours = (0..3)
            .map(|_| {
                let mut r = regs.lock().unwrap();
                let t0 = Instant::now();
                for _ in 0..READS {
                    // device_feature_select in the common configuration.
                    std::hint::black_box(r.bar_read(0, 0, AccessSize::Dword));
                }
                t0.elapsed().as_nanos() as f64 / READS as f64
            })
            .fold(f64::MAX, f64::min);
        handle.shutdown(Duration::from_secs(2));

        let (mut a, mut b) = UnixStream::pair().unwrap();
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 12];
            while b.read_exact(&mut buf).is_ok() {
                if b.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        let floor = (0..3)
            .map(|_| {
                let mut buf = [0u8; 12];
                let t0 = Instant::now();
                for _ in 0..READS {
                    a.write_all(&buf).unwrap();
                    a.read_exact(&mut buf).unwrap();
                }
                t0.elapsed().as_nanos() as f64 / READS as f64
            })
            .fold(f64::MAX, f64::min);
        drop(a);
        let _ = echo.join();
        println!("| register read in a device process | {ours:.0} ns | socketpair ping-pong {floor:.0} ns | {:.2} |", ours / floor);
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl SerialSink for Sink {
        fn write_byte(&mut self, b: u8) {
            self.0.lock().unwrap().push(b);
        }
    }

    fn boot_ours(dir: &Path) -> Duration {
        let image = dir.join("boot.img");
        std::fs::copy(dir.join("bsdisk.img"), &image).unwrap();
        let t0 = Instant::now();
        let map = memory_layout::memory_map(512 << 20).unwrap();
        let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
        let disk = launch_vioblk(&image, &map, &mem);
        let console = Sink::default();
        let mut machine = Machine::with_memory(
            MachineConfig {
                name: "bench".into(),
                memory: 512 << 20,
                bios: std::fs::read(SEABIOS).unwrap(),
                disks: vec![disk],
                nics: Vec::new(),
                cdrom: None,
                console: Box::new(console.clone()),
                console_input: None,
                boot_mac: None,
                firmware_log: None,
                boot_device: BootDevice::Disk,
            },
            map,
            mem,
        )
        .unwrap();
        let kvm = KvmVm::new(&machine.mem).unwrap();
        let mut cpu = kvm.create_vcpu(0).unwrap();
        let t_setup = t0.elapsed();
        machine.run(&mut cpu).unwrap();
        if std::env::var_os("VM_BENCH_ONE_BOOT").is_some() {
            eprintln!("setup {:.3} s", t_setup.as_secs_f64());
        }
        let took = t0.elapsed();
        machine.control().shutdown_devices();
        let text = String::from_utf8_lossy(&console.0.lock().unwrap()).into_owned();
        assert!(text.contains("BS-DONE"), "our boot did not finish:\n{text}");
        took
    }

    fn boot_qemu(dir: &Path) -> Option<Duration> {
        let image = dir.join("qemu.img");
        std::fs::copy(dir.join("bsdisk.img"), &image).unwrap();
        let serial = dir.join("qemu-serial.txt");
        let t0 = Instant::now();
        let status = Command::new("qemu-system-x86_64")
            .args([
                "-enable-kvm",
                "-cpu",
                "max,-arch-capabilities",
                "-M",
                "pc,acpi=off",
                "-nodefaults",
                "-no-user-config",
            ])
            .args([
                "-bios", SEABIOS, "-m", "512", "-smp", "1", "-display", "none", "-monitor", "none",
            ])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args([
                "-no-reboot",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4",
            ])
            .arg("-drive")
            .arg(format!("if=none,id=d0,file={},format=raw", image.display()))
            .args(["-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])
            .status()
            .ok()?;
        let took = t0.elapsed();
        let text = std::fs::read_to_string(&serial).unwrap_or_default();
        // isa-debug-exit: the guest's 0x31 makes QEMU exit with 99.
        (status.code() == Some(99) && text.contains("BS-DONE")).then_some(took)
    }

    /// One boot of one VMM (`ours` or `qemu`) and nothing else, to run
    /// under `perf stat` with the kvm tracepoints.
    pub fn one_boot(dir: &Path, which: &str) {
        let took = if which == "qemu" {
            boot_qemu(dir)
        } else {
            Some(boot_ours(dir))
        };
        match took {
            Some(t) => eprintln!("{which}: {:.2} s", t.as_secs_f64()),
            None => eprintln!("{which}: QEMU did not boot the guest"),
        }
    }

    /// Boots of each VMM in the boot row.
    const BOOT_ROUNDS: usize = 7;

    pub fn boot(dir: &Path) {
        if Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("SKIPPED: boot time against QEMU: qemu-system-x86_64 is missing (regress/bench/install-qemu.sh)");
            return;
        }
        // This machine's speed drifts within seconds, so the two take
        // turns (each going first in alternate rounds) and the row gives
        // the medians and the median of the per-round ratios.
        let mut rounds = Vec::new();
        for round in 0..BOOT_ROUNDS {
            let (ours, qemu) = if round % 2 == 1 {
                let qemu = boot_qemu(dir);
                (boot_ours(dir), qemu)
            } else {
                let ours = boot_ours(dir);
                (ours, boot_qemu(dir))
            };
            let Some(qemu) = qemu else {
                println!("SKIPPED: boot time against QEMU: QEMU did not boot the guest");
                return;
            };
            rounds.push((ours.as_secs_f64(), qemu.as_secs_f64()));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| SeaBIOS + boot-sector guest to its last marker | {:.2} s | qemu-system-x86_64 -enable-kvm {:.2} s | {:.2} |",
            median(rounds.iter().map(|r| r.0).collect()),
            median(rounds.iter().map(|r| r.1).collect()),
            median(rounds.iter().map(|r| r.0 / r.1).collect()),
        );
    }

    /// VmRSS minus the shared memory (guest RAM is a memfd), in KiB.
    fn private_rss_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        field("VmRSS:").saturating_sub(field("RssShmem:"))
    }

    fn children(pid: u32) -> Vec<u32> {
        let out = Command::new("pgrep")
            .args(["-P", &pid.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    pub fn rss(dir: &Path) {
        let vmctl = Path::new(env!("CARGO_BIN_EXE_vmd")).with_file_name("vmctl");
        if !vmctl.exists() {
            println!(
                "SKIPPED: vm process memory: build vmctl first (cargo build --release -p vmctl)"
            );
            return;
        }
        let image = dir.join("rss.img");
        std::fs::copy(dir.join("bsdisk.img"), &image).unwrap();
        let conf = dir.join("vm.conf");
        std::fs::write(
            &conf,
            format!(
                "vm \"rss\" {{\n\tmemory 512M\n\tdisk \"{}\"\n}}\n",
                image.display()
            ),
        )
        .unwrap();
        let sock = dir.join("vmd.sock");
        let mut vmd = Command::new(env!("CARGO_BIN_EXE_vmd"))
            .args(["-d", "-f"])
            .arg(&conf)
            .env("VMD_CONTROL_SOCKET", &sock)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pid = None;
        while pid.is_none() && Instant::now() < deadline {
            let out = Command::new(&vmctl)
                .args(["status", "rss"])
                .env("VMD_CONTROL_SOCKET", &sock)
                .output()
                .unwrap();
            pid = String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok());
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut peak = 0;
        if let Some(pid) = pid {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(2) {
                let total: u64 = std::iter::once(pid)
                    .chain(children(pid))
                    .map(private_rss_kib)
                    .sum();
                peak = peak.max(total);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = vmd.kill();
        let _ = vmd.wait();
        if peak == 0 {
            println!("SKIPPED: vm process memory: the VM did not start");
            return;
        }
        println!(
            "| vm process + device processes, guest RAM excluded | {:.1} MiB | goal 10 MiB | {:.2} |",
            peak as f64 / 1024.0,
            peak as f64 / 10240.0
        );
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if std::fs::metadata("/dev/kvm").is_err() || !root {
            println!("SKIPPED: vm_bench needs root and /dev/kvm");
            return;
        }
        let dir = bench::guest_dir_for_main();
        if let Ok(which) = std::env::var("VM_BENCH_ONE_BOOT") {
            bench::one_boot(&dir, &which);
            return;
        }
        println!("| benchmark | ours | reference | ratio |");
        println!("|---|---:|---:|---:|");
        bench::register_read(&dir);
        bench::boot(&dir);
        bench::rss(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
