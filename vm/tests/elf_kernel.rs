//! The project's test kernel (regress/guest/kernel, built by
//! regress/guest/build-kernel.sh) booted on KVM through the ELF loader,
//! the way vmd boots an OpenBSD kernel: vmd's memory map, the flat 64-bit
//! start state, COM1 captured on the port bus, and the PCI bus with
//! viornd and vmmci on the virtio PCI transport in the order of vmd's
//! virtio_init. The kernel checks what the loader gave it and drives both
//! devices; every marker line it prints is checked here against what the
//! host configured.
//!
//! The harness is deliberately small (no PIC, PIT or RTC): the kernel runs
//! with interrupts off and polls.

#![cfg(target_os = "linux")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use devices::bus::PortBus;
use devices::clock::HostClock;
use devices::irq::{Irq, NoIrq};
use devices::memory::GuestMemory;
use devices::ns8250::{SerialSink, Uart};
use devices::pci::PciBus;
use devices::virtio::pci::{attach, Layout};
use devices::virtio::rnd::Rnd;
use devices::virtio::vmmci::{Timer, Vmmci, VMMCI_TIMEOUT_SHORT};
use devices::virtio::{STATUS_DRIVER_OK, VIRTIO_F_VERSION_1};
use vm::hv::kvm::KvmVm;
use vm::hv::{Vcpu, VcpuRegState};
use vm::loader::elf::{self, KernelBoot, LoadedKernel};
use vm::memory_layout::{backed_ranges, memory_map, Range, RangeKind, MB};
use vm::vcpu::{self, InterruptSource, StopReason};

/// How long a boot may take; it takes well under a second here.
const TIMEOUT: Duration = Duration::from_secs(60);

fn kvm_missing() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm: {e}")),
    }
}

/// Builds the kernel once per test binary; returns the directory with
/// `bsd` and `bsd.gz`.
fn kernel_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-kernel");
        let status = Command::new("sh")
            .arg(root.join("regress/guest/build-kernel.sh"))
            .arg(&out)
            .status()
            .expect("run regress/guest/build-kernel.sh");
        assert!(status.success(), "build-kernel.sh failed: {status}");
        out
    })
}

#[derive(Clone, Default)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl SerialSink for Console {
    fn write_byte(&mut self, b: u8) {
        self.0.lock().unwrap().push(b);
    }
}

/// The vmmci grace-period timer: records what it was armed with.
#[derive(Clone, Default)]
struct Armed(Arc<Mutex<Vec<Duration>>>);

impl Timer for Armed {
    fn arm(&mut self, after: Duration) {
        self.0.lock().unwrap().push(after);
    }
}

/// No interrupts; ends the run once the watchdog fired.
struct Watchdog(Arc<AtomicBool>);

impl InterruptSource for Watchdog {
    fn acknowledge(&self) -> Option<u8> {
        None
    }
    fn pending(&self) -> bool {
        false
    }
    fn wait(&self) -> bool {
        false
    }
    fn stop_requested(&self) -> Option<StopReason> {
        self.0
            .load(Ordering::Acquire)
            .then(|| StopReason::Unhandled("timeout".into()))
    }
}

struct Boot {
    map: Vec<Range>,
    kernel: LoadedKernel,
    /// The state KVM reports after the loader's state was set.
    readback: VcpuRegState,
    reason: StopReason,
    lines: Vec<String>,
    armed: Vec<Duration>,
    rnd_features: u64,
    vmmci_status: u8,
    elapsed: Duration,
}

impl Boot {
    fn line(&self, prefix: &str) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {:#?}", self.lines))
    }
}

fn boot(file: &str, memory: u64, boot_mac: Option<[u8; 6]>) -> Boot {
    let map = memory_map(memory).unwrap();
    let mem = GuestMemory::new_anonymous(&backed_ranges(&map)).unwrap();
    let path = kernel_dir().join(file);
    let kernel = elf::load_kernel(
        &mem,
        std::fs::File::open(&path).unwrap(),
        &KernelBoot {
            map: &map,
            boot_mac,
        },
    )
    .unwrap();

    let console = Console::default();
    let no_irq = || -> Irq { Arc::new(NoIrq) };
    let mut bus = PortBus::new();
    let uart = Uart::new(Box::new(console.clone()), no_irq());
    bus.insert(0x3f8, 8, Arc::new(Mutex::new(uart))).unwrap();
    // vmd's virtio_init order: viornd, NICs and disks (none), vmmci.
    let mut pci = PciBus::new();
    let (rnd_id, rnd) = attach(&mut pci, Rnd::new(), Layout::Modern, mem.clone(), |_| {
        no_irq()
    })
    .unwrap();
    let armed = Armed::default();
    let vmmci_dev = Vmmci::new(Arc::new(HostClock::new()), Box::new(armed.clone()));
    let (vmmci_id, vmmci) = attach(&mut pci, vmmci_dev, Layout::Legacy, mem.clone(), |_| {
        no_irq()
    })
    .unwrap();
    assert_eq!((rnd_id, vmmci_id), (1, 2));
    let pci = Arc::new(Mutex::new(pci));
    bus.insert(0xcf8, 8, pci.clone()).unwrap();
    bus.set_fallback(pci);

    let kvm = KvmVm::new(&mem).unwrap();
    let mut cpu = kvm.create_vcpu(0).unwrap();
    cpu.set_reg_state(&kernel.regs).unwrap();
    let readback = cpu.reg_state().unwrap();
    let kick = cpu.bind_to_current_thread().unwrap();

    let fired = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (fired, done) = (fired.clone(), done.clone());
        thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Acquire) {
                if start.elapsed() >= TIMEOUT {
                    fired.store(true, Ordering::Release);
                    kick();
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t0 = Instant::now();
    let reason = vcpu::run(&mut cpu, &bus, &Watchdog(fired)).unwrap();
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Release);
    watchdog.join().unwrap();

    let out = String::from_utf8_lossy(&console.0.lock().unwrap()).into_owned();
    let lines = out.lines().map(|l| l.trim_end().to_string()).collect();
    let armed = armed.0.lock().unwrap().clone();
    let rnd_features = rnd.lock().unwrap().driver_features();
    let vmmci_status = vmmci.lock().unwrap().status();
    Boot {
        map,
        kernel,
        readback,
        reason,
        lines,
        armed,
        rnd_features,
        vmmci_status,
        elapsed,
    }
}

/// The value of symbol `name` in the kernel file.
fn symbol(file: &[u8], name: &str) -> u64 {
    let eh = elf::parse_header(file).unwrap();
    let shdrs = elf::parse_shdrs(file, &eh).unwrap();
    let symtab = shdrs.iter().find(|s| s.sh_type == 2).unwrap();
    let strtab = &shdrs[symtab.sh_link as usize];
    let strs = &file[strtab.sh_offset as usize..][..strtab.sh_size as usize];
    let syms = &file[symtab.sh_offset as usize..][..symtab.sh_size as usize];
    for s in syms.chunks_exact(24) {
        let n = u32::from_le_bytes(s[..4].try_into().unwrap()) as usize;
        let end = strs[n..].iter().position(|&b| b == 0).unwrap();
        if &strs[n..n + end] == name.as_bytes() {
            return u64::from_le_bytes(s[8..16].try_into().unwrap());
        }
    }
    panic!("no symbol {name}");
}

/// Everything every boot must show.
fn check_common(b: &Boot) {
    println!(
        "booted in {:?}: {:?}\n{}",
        b.elapsed,
        b.reason,
        b.lines.join("\n")
    );
    for l in &b.lines {
        assert!(
            !l.contains("-BAD") && !l.contains("-FAIL") && !l.contains("PANIC"),
            "{l}"
        );
    }
    assert_eq!(b.reason, StopReason::HaltedWithInterruptsOff);
    // KVM runs the vcpu from exactly the state the loader built.
    assert_eq!(b.readback, b.kernel.regs);

    assert_eq!(b.lines.first().map(String::as_str), Some("KERN-BOOT-OK"));
    let k = &b.kernel;
    assert_eq!(
        b.line("KERN-BOOTSTACK "),
        format!(
            "KERN-BOOTSTACK sp=ffdc howto=0 bootdev=a0000004 apiver=e esym={:x} extmem=0 cnvmem=0 ac={} av=2000",
            k.marks.end, k.bootargs_len
        )
    );
    assert_eq!(
        b.line("KERN-CONSDEV-"),
        "KERN-CONSDEV-OK dev=800 speed=115200 addr=3f8"
    );
    assert_eq!(
        b.line("KERN-BOOTARGS-"),
        format!("KERN-BOOTARGS-OK ac={}", k.bootargs_len)
    );
    let ranges: Vec<String> = b
        .map
        .iter()
        .map(|r| {
            let kind = if r.kind == RangeKind::Ram { 1 } else { 2 };
            format!("{:x}+{:x}:{kind}", r.gpa, r.size)
        })
        .collect();
    assert_eq!(
        b.line("KERN-MEMMAP-"),
        format!("KERN-MEMMAP-OK n={} {}", b.map.len(), ranges.join(" "))
    );
    assert_eq!(b.line("KERN-RANDOM-"), "KERN-RANDOM-OK");

    let file = std::fs::read(kernel_dir().join("bsd")).unwrap();
    let kmain = symbol(&file, "kmain");
    assert!(b.line("KERN-SYMS-").starts_with("KERN-SYMS-OK syms="));
    assert!(b.line("KERN-SYMS-").ends_with(&format!(" kmain={kmain:x}")));

    let pci: Vec<&str> = b
        .lines
        .iter()
        .filter(|l| l.starts_with("KERN-PCI "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        pci,
        [
            "KERN-PCI 00 0b5d:0666 0600",
            "KERN-PCI 01 1af4:1044 0880",
            "KERN-PCI 02 0b5d:0777 0780",
        ]
    );
    // vmd's I/O BAR layout for virtio 1.x.
    assert_eq!(
        b.line("KERN-RND-CAPS "),
        "KERN-RND-CAPS common=0 notify=100 isr=200 mult=0 other-bars=false"
    );
    let rnd = b.line("KERN-RND-OK ").strip_prefix("KERN-RND-OK ").unwrap();
    assert_eq!(rnd.len(), 32);
    assert!(rnd.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(b.rnd_features, VIRTIO_F_VERSION_1);

    assert_eq!(b.line("KERN-VMMCI-FEATURES "), "KERN-VMMCI-FEATURES 7");
    let time = b.line("KERN-VMMCI-TIME ");
    let secs: u64 = time.split(' ').nth(1).unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) <= 5, "{time} vs {now}");
    assert!(time.ends_with(" cmd=0"), "{time}");
    assert_eq!(b.line("KERN-VMMCI-SHUTDOWN"), "KERN-VMMCI-SHUTDOWN");
    assert_ne!(b.vmmci_status & STATUS_DRIVER_OK, 0);
    // The guest announced its shutdown: vmd gives it the short grace
    // period.
    assert_eq!(b.armed, [VMMCI_TIMEOUT_SHORT]);
    assert_eq!(b.lines.last().map(String::as_str), Some("KERN-DONE"));
}

#[test]
fn gzipped_kernel_boots_on_kvm() {
    if let Some(why) = kvm_missing() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: gzipped_kernel_boots_on_kvm: {why}"
        );
        return;
    }
    let b = boot("bsd.gz", 512 * MB, None);
    check_common(&b);
    assert!(!b.lines.iter().any(|l| l.starts_with("KERN-BOOTMAC")));
}

#[test]
fn plain_kernel_boots_from_the_network_on_kvm() {
    if let Some(why) = kvm_missing() {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: plain_kernel_boots_from_the_network_on_kvm: {why}"
        );
        return;
    }
    let mac = [0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x01];
    let b = boot("bsd", 64 * MB, Some(mac));
    check_common(&b);
    assert_eq!(b.line("KERN-BOOTMAC "), "KERN-BOOTMAC fe:e1:ba:d0:00:01");
}
