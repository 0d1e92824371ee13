//! imsg throughput and latency: Rust to Rust, C to C (OpenBSD's imsg, via
//! the interop peer), and a bare socketpair as the floor, in one run.
//!
//!     cargo bench -p imsg --bench imsg_bench
//!
//! One-way: a stream of messages written 64 at a time, the receiver
//! answers once at the end. Round trip: ping-pongs of one message each.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use imsg::ImsgBuf;

const T_ONEWAY: u32 = 1;
const T_PING: u32 = 2;
const T_PONG: u32 = 3;
const T_DONE: u32 = 998;
const T_QUIT: u32 = 999;

struct Result {
    msgs_per_s: f64,
    rtt_us: f64,
}

/// One-way message count and round-trip count for a payload size.
#[derive(Clone, Copy)]
struct Load {
    size: usize,
    oneway: u64,
    round_trips: u64,
}
/// Puts the calling thread on `cpu` when there are two CPUs, as the C
/// peer does with its two processes: every column then runs its writer and
/// reader on separate CPUs, and no figure depends on where the scheduler
/// happened to put the two sides. The count is of online CPUs, as in the
/// peer: `available_parallelism` counts the CPUs the calling thread may
/// use, which after the main thread's own pinning is one, and so kept
/// both sides of the Rust and floor columns on CPU 0 while the C peer's
/// ran on two.
#[cfg(target_os = "linux")]
fn pin(cpu: usize) {
    // SAFETY: sysconf only reads a system value.
    if unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } < 2 {
        return;
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it and
    // sched_setaffinity reads it for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity"
        );
    }
}

/// Fixes glibc's mmap threshold at its default. Left dynamic, the first
/// round's freed 1 MiB queue raises it, later rounds' large buffers move
/// to the heap, and Rust's 16 KiB one-way rate halves from the second
/// round on (about 200,000 -> 90,000 messages/s); the C peer, a new
/// process each round, never saw that state. Rounds must start alike.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_malloc_state() {
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_malloc_state() {}

/// OpenBSD has no CPU affinity: its scheduler places the two sides.
#[cfg(not(target_os = "linux"))]
fn pin(_cpu: usize) {}

fn rust(load: Load) -> Result {
    let Load {
        size,
        oneway: count,
        round_trips,
    } = load;
    let (a, b) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        pin(1);
        let mut ib = ImsgBuf::new(b);
        let mut got = 0;
        while let Some(m) = ib.read_one().unwrap() {
            match m.hdr.type_ {
                T_ONEWAY => {
                    got += 1;
                    if got == count {
                        ib.compose(T_DONE, 0, 0, None, b"").unwrap();
                        ib.flush().unwrap();
                    }
                }
                T_PING => {
                    ib.compose(T_PONG, 0, 0, None, &m.data).unwrap();
                    ib.flush().unwrap();
                }
                _ => break,
            }
        }
    });
    let mut ib = ImsgBuf::new(a);
    let payload = payload_bytes(size);
    let wait = |ib: &mut ImsgBuf, want: u32| loop {
        if ib.read_one().unwrap().unwrap().hdr.type_ == want {
            break;
        }
    };
    let t0 = Instant::now();
    for _ in 0..count {
        ib.compose(T_ONEWAY, 0, 0, None, &payload).unwrap();
        if ib.queue_len() >= 64 {
            ib.flush().unwrap();
        }
    }
    ib.flush().unwrap();
    if count > 0 {
        wait(&mut ib, T_DONE);
    }
    let oneway = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..round_trips {
        ib.compose(T_PING, 0, 0, None, &payload).unwrap();
        ib.flush().unwrap();
        wait(&mut ib, T_PONG);
    }
    let rtt = t0.elapsed().as_secs_f64();
    ib.compose(T_QUIT, 0, 0, None, b"").unwrap();
    ib.flush().unwrap();
    echo.join().unwrap();
    Result {
        msgs_per_s: count as f64 / oneway,
        rtt_us: rtt / round_trips as f64 * 1e6,
    }
}

/// `len` bytes of a pattern, written into freshly allocated memory.
fn payload_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// The same traffic as plain bytes with write/read and no framing logic.
fn floor(load: Load) -> Result {
    let Load {
        size,
        oneway: count,
        round_trips,
    } = load;
    let frame = 16 + size;
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
        pin(1);
        let mut buf = vec![0u8; 65536];
        let mut total = 0u64;
        let want = count * frame as u64;
        while total < want {
            let n = b
                .read(&mut buf[..(want - total).min(65536) as usize])
                .unwrap();
            total += n as u64;
        }
        b.write_all(&[1]).unwrap();
        let mut msg = vec![0u8; frame];
        for _ in 0..round_trips {
            b.read_exact(&mut msg).unwrap();
            b.write_all(&msg).unwrap();
        }
    });
    // Written bytes: a buffer that was only allocated reads the kernel's
    // shared zero page, which no real sender's data is, and made the floor
    // cheaper than any sender could be (its sendmsg copies ran at a third
    // of the cost of the same copies from written memory).
    let batch = payload_bytes(frame * 64);
    let t0 = Instant::now();
    let mut left = count;
    while left > 0 {
        let n = left.min(64);
        a.write_all(&batch[..frame * n as usize]).unwrap();
        left -= n;
    }
    let mut one = [0u8; 1];
    a.read_exact(&mut one).unwrap();
    let oneway = t0.elapsed().as_secs_f64();
    let mut msg = payload_bytes(frame);
    let t0 = Instant::now();
    for _ in 0..round_trips {
        a.write_all(&msg).unwrap();
        a.read_exact(&mut msg).unwrap();
    }
    let rtt = t0.elapsed().as_secs_f64();
    echo.join().unwrap();
    Result {
        msgs_per_s: count as f64 / oneway,
        rtt_us: rtt / round_trips as f64 * 1e6,
    }
}

fn c_peer() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("../target/imsg-cpeer");
    let ok = Command::new("bash")
        .arg(root.join("tests/cpeer/fetch-and-build.sh"))
        .arg(&out)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| out.join("peer"))
}

fn c_run(peer: &PathBuf, load: Load) -> Result {
    let out = Command::new(peer)
        .arg("bench")
        .arg(load.oneway.to_string())
        .arg(load.size.to_string())
        .arg(load.round_trips.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    Result {
        msgs_per_s: fields[1].parse().unwrap(),
        rtt_us: fields[3].parse().unwrap(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The machines this runs on are shared and their speed drifts within
/// seconds, so the three columns take turns, round after round, in a
/// rotating order, and each figure is the median over the rounds; each
/// ratio is the median of the ratios within a round, taken from runs made
/// moments apart. One-way runs are short (tens of milliseconds), so they
/// get more rounds for the same steadiness; a multiple of 3, so each
/// column goes first equally often.
const ONEWAY_ROUNDS: usize = 21;
const ROUND_TRIP_ROUNDS: usize = 9;

fn main() {
    pin(0);
    fix_malloc_state();
    let peer = c_peer();
    if peer.is_none() {
        eprintln!("C peer unavailable: C column omitted");
    }
    println!(
        "| payload | metric | Rust | C (OpenBSD imsg) | floor (socketpair) | Rust/C | Rust/floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    let loads = [
        Load {
            size: 64,
            oneway: 200_000,
            round_trips: 20_000,
        },
        Load {
            size: 16368,
            oneway: 20_000,
            round_trips: 5_000,
        },
    ];
    for load in loads {
        // One-way runs back to back, then round trips back to back: each
        // phase runs warm, and a column's figures come from runs that did
        // nothing else.
        let oneway = Load {
            round_trips: 0,
            ..load
        };
        let round_trips = Load { oneway: 0, ..load };
        let phase = |load: Load, count: usize| {
            let mut rounds = Vec::new();
            for round in 0..count {
                // Each column goes first in a third of the rounds.
                let (mut r, mut f, mut c) = (None, None, None);
                for turn in 0..3 {
                    match (round + turn) % 3 {
                        0 => r = Some(rust(load)),
                        1 => f = Some(floor(load)),
                        _ => c = peer.as_ref().map(|p| c_run(p, load)),
                    }
                }
                rounds.push((r.unwrap(), c, f.unwrap()));
            }
            rounds
        };
        let one = phase(oneway, ONEWAY_ROUNDS);
        let rt = phase(round_trips, ROUND_TRIP_ROUNDS);
        type Round = (Result, Option<Result>, Result);
        let col = |rounds: &[Round], pick: &dyn Fn(&Round) -> Option<f64>| {
            let v: Vec<f64> = rounds.iter().filter_map(pick).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let show =
            |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        let label = if load.size == 64 { "64 B" } else { "16 KiB" };
        // Throughput: ratio is Rust's share of the reference (higher is better).
        println!(
            "| {label} | one-way msgs/s | {} | {} | {} | {} | {} |",
            show(col(&one, &|x| Some(x.0.msgs_per_s)), 0),
            show(col(&one, &|x| x.1.as_ref().map(|c| c.msgs_per_s)), 0),
            show(col(&one, &|x| Some(x.2.msgs_per_s)), 0),
            show(
                col(&one, &|x| x
                    .1
                    .as_ref()
                    .map(|c| x.0.msgs_per_s / c.msgs_per_s)),
                2
            ),
            show(col(&one, &|x| Some(x.0.msgs_per_s / x.2.msgs_per_s)), 2),
        );
        // Latency: ratio is Rust's time over the reference (lower is better).
        println!(
            "| {label} | round trip µs | {} | {} | {} | {} | {} |",
            show(col(&rt, &|x| Some(x.0.rtt_us)), 2),
            show(col(&rt, &|x| x.1.as_ref().map(|c| c.rtt_us)), 2),
            show(col(&rt, &|x| Some(x.2.rtt_us)), 2),
            show(
                col(&rt, &|x| x.1.as_ref().map(|c| x.0.rtt_us / c.rtt_us)),
                2
            ),
            show(col(&rt, &|x| Some(x.0.rtt_us / x.2.rtt_us)), 2),
        );
    }
}
