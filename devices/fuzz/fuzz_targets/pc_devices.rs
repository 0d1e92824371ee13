//! The PC devices' request paths under a random program: port accesses of
//! every width to the i8259 pair, the i8253 (with port 0x61), the
//! mc146818 and the ns8250, interleaved with time passing on a supplied
//! clock, interrupt acknowledges, line changes and console input.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::bus::{AccessSize, PortIoDevice};
use devices::clock::Clock;
use devices::i8253::Pit;
use devices::i8259::Pic;
use devices::irq::{Irq, NoIrq};
use devices::mc146818::Rtc;
use devices::ns8250::Uart;
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct FakeClock(Mutex<Duration>);

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        *self.0.lock().unwrap()
    }
    fn wall(&self) -> Duration {
        Duration::from_secs(1_700_000_000) + *self.0.lock().unwrap()
    }
}

fuzz_target!(|data: &[u8]| {
    let clock = Arc::new(FakeClock::default());
    let irq: Irq = Arc::new(NoIrq);
    let mut pic = Pic::new();
    let mut pit = Pit::new(clock.clone());
    let mut rtc = Rtc::new(clock.clone(), irq.clone(), 496 << 20, 1 << 30);
    let mut uart = Uart::new(Box::new(Vec::new()), irq);
    for op in data.chunks_exact(5) {
        let size = match op[1] % 3 {
            0 => AccessSize::Byte,
            1 => AccessSize::Word,
            _ => AccessSize::Dword,
        };
        let value = u32::from(op[3]) | (u32::from(op[4]) << 8);
        let write = op[1] & 0x80 != 0;
        let dev: &mut dyn PortIoDevice;
        let port;
        match op[0] % 9 {
            0 => {
                dev = &mut pic;
                port = [0x20, 0x21, 0xa0, 0xa1, 0x4d0, 0x4d1][usize::from(op[2] % 6)];
            }
            1 => {
                dev = &mut pit;
                port = [0x40, 0x41, 0x42, 0x43, 0x61][usize::from(op[2] % 5)];
            }
            2 => {
                dev = &mut rtc;
                port = 0x70 + u16::from(op[2] % 2);
            }
            3 => {
                dev = &mut uart;
                port = 0x3f8 + u16::from(op[2] % 8);
            }
            4 => {
                let step = Duration::from_micros(u64::from(value) * u64::from(op[2]));
                *clock.0.lock().unwrap() += step;
                continue;
            }
            5 => {
                pic.set_irq(op[2] % 16, op[3] & 1 != 0);
                continue;
            }
            6 => {
                let _ = pic.acknowledge();
                let _ = pic.pending();
                continue;
            }
            7 => {
                let _ = pit.irq0_edges();
                let _ = pit.next_irq0();
                rtc.poll();
                let _ = rtc.next_event();
                continue;
            }
            _ => {
                let _ = uart.push_rx(&op[2..]);
                let _ = uart.rx_room();
                continue;
            }
        }
        if write {
            dev.port_write(port, size, value & size.mask());
        } else {
            let _ = dev.port_read(port, size);
        }
    }
});
