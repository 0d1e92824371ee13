//! vionet throughput through its device process and a real tap, against
//! the floor of the same frames written to and read from raw taps by one
//! process, in one run:
//!
//!     sudo cargo bench -p vmd --bench vionet_bench
//!
//! Two taps, A and B, sit on a bridge in a network namespace this
//! benchmark creates. The floor writes frames to A and reads them from B
//! (and back). Ours puts the vionet process on A: TX is the guest's queue
//! to B, RX is B to the guest's queue. 1514-byte broadcast frames, the
//! rate from the first frame sent to the last one received.

#[cfg(target_os = "linux")]
#[path = "../tests/common/vionet_guest.rs"]
mod vionet_guest;

#[cfg(target_os = "linux")]
mod bench {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use devices::irq::{Irq, NoIrq};
    use devices::memory::GuestMemory;
    use vm::abi::vmop::VMIFF_UP;
    use vm::abi::LocalPrefix;
    use vm::device_proc::{self, launch, LaunchSpec};
    use vm::memory_layout;

    use super::vionet_guest::*;

    const FRAMES: u64 = 20000;
    const LEN: usize = 1514;

    fn frame(n: u64) -> Vec<u8> {
        let mut f = vec![0xffu8; 6];
        f.extend_from_slice(&MAC);
        f.extend_from_slice(&[0x88, 0xb5]);
        f.extend_from_slice(&n.to_le_bytes());
        f.resize(LEN, 0x5a);
        f
    }

    /// Counts frames arriving on `tap` until `want` or 2 s of silence;
    /// returns (frames, time of the last one).
    fn count_from(tap: File, want: u64) -> std::thread::JoinHandle<(u64, Instant)> {
        std::thread::spawn(move || {
            let mut tap = tap;
            let mut buf = vec![0u8; 2048];
            let mut n = 0;
            let mut last = Instant::now();
            while n < want {
                let mut pfd = libc::pollfd {
                    fd: tap.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut pfd, 1, 2000) } <= 0 {
                    break;
                }
                if tap.read(&mut buf).is_ok_and(|l| l == LEN) {
                    n += 1;
                    last = Instant::now();
                }
            }
            (n, last)
        })
    }

    fn report(what: &str, frames: u64, took: Duration, floor: (u64, Duration)) {
        let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
        let ours = rate(frames, took);
        let base = rate(floor.0, floor.1);
        println!(
            "| {what} | {:.0} frames/s, {:.2} Gbit/s ({frames} of {FRAMES}) | {:.0} frames/s, {:.2} Gbit/s ({} of {FRAMES}) | {:.2} |",
            ours,
            ours * (LEN * 8) as f64 / 1e9,
            base,
            base * (LEN * 8) as f64 / 1e9,
            floor.0,
            ours / base
        );
    }

    fn floor(from: &mut File, to: File) -> (u64, Duration) {
        let counter = count_from(to, FRAMES);
        let t0 = Instant::now();
        for i in 0..FRAMES {
            let _ = from.write(&frame(i));
        }
        let (n, last) = counter.join().unwrap();
        (n, last.saturating_duration_since(t0))
    }

    pub fn run() {
        let pid = std::process::id();
        let ns = Netns(format!("vmdb-vio-{pid}"));
        super::vionet_guest::run(&["ip", "netns", "add", &ns.0]);
        for key in ["all", "default"] {
            super::vionet_guest::run(&[
                "ip",
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv6.conf.{key}.disable_ipv6=1"),
            ]);
        }
        let (a, b) = (format!("ba{}", pid % 100000), format!("bb{}", pid % 100000));
        let mut tap_a = open_tap(&a);
        let mut tap_b = open_tap(&b);
        super::vionet_guest::run(&["ip", "-n", &ns.0, "link", "add", "br0", "type", "bridge"]);
        for t in [&a, &b] {
            super::vionet_guest::run(&["ip", "link", "set", t, "netns", &ns.0]);
            super::vionet_guest::run(&["ip", "-n", &ns.0, "link", "set", t, "master", "br0", "up"]);
        }
        super::vionet_guest::run(&["ip", "-n", &ns.0, "link", "set", "br0", "up"]);
        std::thread::sleep(Duration::from_millis(200));

        let floor_tx = floor(&mut tap_a, tap_b.try_clone().unwrap());
        let floor_rx = floor(&mut tap_b, tap_a.try_clone().unwrap());

        let map = memory_layout::memory_map(16 << 20).unwrap();
        let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map)).unwrap();
        let mut vmd_vm = device_proc::describe_vm("bench", &map, &[]).unwrap();
        vmd_vm.vm_vmid = 1;
        vmd_vm.vm_params.vmc_nnics = 1;
        vmd_vm.vm_params.vmc_macs[0] = MAC;
        vmd_vm.vm_params.vmc_ifflags[0] = VMIFF_UP;
        let dev =
            device_proc::vionet_dev(0, tap_a.as_raw_fd(), &vmd_vm, &LocalPrefix::vmd_default());
        let process = launch(LaunchSpec {
            exe: Path::new(env!("CARGO_BIN_EXE_vmd")),
            dev,
            vm: &vmd_vm,
            mem: &mem,
            data_fds: vec![tap_a.as_raw_fd()],
            vmm_fd: -1,
            debug: false,
            verbose: 0,
        })
        .unwrap();
        drop(tap_a);
        let irq: Irq = Arc::new(NoIrq);
        let (regs, handle) = process.attach(irq, Arc::new(|_| {})).unwrap();
        let mut guest = Guest {
            regs,
            mem: mem.clone(),
            rx: Ring::new(0x1_0000),
            tx: Ring::new(0x2_0000),
            tx_next: 0,
        };
        guest.bring_up();

        // TX: guest queue -> vionet -> tap A -> bridge -> tap B.
        let counter = count_from(tap_b.try_clone().unwrap(), FRAMES);
        let t0 = Instant::now();
        for i in 0..FRAMES {
            guest.send(&frame(i));
        }
        let (n, last) = counter.join().unwrap();
        report(
            "TX guest -> tap",
            n,
            last.saturating_duration_since(t0),
            floor_tx,
        );

        // RX: tap B -> bridge -> tap A -> vionet -> guest queue.
        let guest = Arc::new(Mutex::new(guest));
        let received = Arc::new(AtomicU64::new(0));
        let drain = {
            let guest = guest.clone();
            let received = received.clone();
            std::thread::spawn(move || {
                let mut idle = Instant::now();
                let mut last = Instant::now();
                while received.load(Ordering::Relaxed) < FRAMES
                    && idle.elapsed() < Duration::from_secs(2)
                {
                    let got = guest.lock().unwrap().receive();
                    let n = got.iter().filter(|f| f.len() == LEN).count() as u64;
                    if n > 0 {
                        received.fetch_add(n, Ordering::Relaxed);
                        idle = Instant::now();
                        last = idle;
                    } else {
                        std::thread::yield_now();
                    }
                }
                last
            })
        };
        let t0 = Instant::now();
        for i in 0..FRAMES {
            // Pace the writer to the tap's queue: a full queue drops.
            while tap_b.write(&frame(i)).is_err() {
                std::thread::yield_now();
            }
        }
        let last = drain.join().unwrap();
        report(
            "RX tap -> guest",
            received.load(Ordering::Relaxed),
            last.saturating_duration_since(t0),
            floor_rx,
        );
        handle.shutdown(Duration::from_secs(2));
    }
}

fn main() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/net/tun").exists() {
            println!("SKIPPED: vionet_bench needs root and /dev/net/tun");
            return;
        }
        println!("| direction | ours (through the vionet process) | floor (raw taps) | ratio |");
        println!("|---|---:|---:|---:|");
        bench::run();
    }
}
