//! imsg throughput and latency: Rust to Rust, C to C (OpenBSD's imsg, via
//! the interop peer), and a bare socketpair as the floor, in one run.
//!
//!     cargo bench -p imsg --bench imsg_bench
//!
//! One-way: COUNT messages, flushed every 64, the receiver answers once at
//! the end. Round trip: COUNT ping-pongs of one message each.

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

fn rust(count: u64, size: usize) -> Result {
    let (a, b) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
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
    let payload = vec![0u8; size];
    let wait = |ib: &mut ImsgBuf, want: u32| loop {
        if ib.read_one().unwrap().unwrap().hdr.type_ == want {
            break;
        }
    };
    let t0 = Instant::now();
    for _ in 0..count {
        ib.compose(T_ONEWAY, 0, 0, None, &payload).unwrap();
        if ib.queue_len() > 64 {
            ib.flush().unwrap();
        }
    }
    ib.flush().unwrap();
    wait(&mut ib, T_DONE);
    let oneway = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for _ in 0..count {
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
        rtt_us: rtt / count as f64 * 1e6,
    }
}

/// The same traffic as plain bytes with write/read and no framing logic.
fn floor(count: u64, size: usize) -> Result {
    let frame = 16 + size;
    let (mut a, mut b) = UnixStream::pair().unwrap();
    let echo = std::thread::spawn(move || {
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
        for _ in 0..count {
            b.read_exact(&mut msg).unwrap();
            b.write_all(&msg).unwrap();
        }
    });
    let batch = vec![0u8; frame * 64];
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
    let mut msg = vec![0u8; frame];
    let t0 = Instant::now();
    for _ in 0..count {
        a.write_all(&msg).unwrap();
        a.read_exact(&mut msg).unwrap();
    }
    let rtt = t0.elapsed().as_secs_f64();
    echo.join().unwrap();
    Result {
        msgs_per_s: count as f64 / oneway,
        rtt_us: rtt / count as f64 * 1e6,
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

fn c(peer: &PathBuf, count: u64, size: usize) -> Result {
    let out = Command::new(peer)
        .args(["bench", &count.to_string(), &size.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    Result {
        msgs_per_s: fields[1].parse().unwrap(),
        rtt_us: fields[3].parse().unwrap(),
    }
}

fn best(runs: usize, f: impl Fn() -> Result) -> Result {
    let mut all: Vec<Result> = (0..runs).map(|_| f()).collect();
    let msgs = all.iter().map(|r| r.msgs_per_s).fold(0.0, f64::max);
    all.sort_by(|a, b| a.rtt_us.total_cmp(&b.rtt_us));
    Result {
        msgs_per_s: msgs,
        rtt_us: all[0].rtt_us,
    }
}

fn main() {
    let peer = c_peer();
    if peer.is_none() {
        eprintln!("C peer unavailable: C column omitted");
    }
    println!(
        "| payload | metric | Rust | C (OpenBSD imsg) | floor (socketpair) | Rust/C | Rust/floor |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (size, count) in [(64usize, 200_000u64), (16368, 20_000)] {
        let r = best(3, || rust(count, size));
        let f = best(3, || floor(count, size));
        let c = peer.as_ref().map(|p| best(3, || c(p, count, size)));
        let cval = |v: f64| c.as_ref().map_or("-".to_string(), |_| format!("{v:.0}"));
        let label = if size == 64 { "64 B" } else { "16 KiB" };
        // Throughput: ratio is Rust's share of the reference (higher is better).
        println!(
            "| {label} | one-way msgs/s | {:.0} | {} | {:.0} | {} | {:.2} |",
            r.msgs_per_s,
            cval(c.as_ref().map_or(0.0, |c| c.msgs_per_s)),
            f.msgs_per_s,
            c.as_ref().map_or("-".into(), |c| format!(
                "{:.2}",
                r.msgs_per_s / c.msgs_per_s
            )),
            r.msgs_per_s / f.msgs_per_s
        );
        // Latency: ratio is Rust's time over the reference (lower is better).
        println!(
            "| {label} | round trip µs | {:.2} | {} | {:.2} | {} | {:.2} |",
            r.rtt_us,
            c.as_ref()
                .map_or("-".into(), |c| format!("{:.2}", c.rtt_us)),
            f.rtt_us,
            c.as_ref()
                .map_or("-".into(), |c| format!("{:.2}", r.rtt_us / c.rtt_us)),
            r.rtt_us / f.rtt_us
        );
    }
}
