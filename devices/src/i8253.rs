//! The i8253/8254 PIT: three counters at 0x40-0x42, the control word at
//! 0x43, and port 0x61 (channel 2 gate, speaker, OUT2 status), as vmd's
//! i8253.c. Counters are computed from the time a count was loaded, read
//! from a caller-supplied [`Clock`], so nothing ticks in the background:
//! the vm process asks [`Pit::next_irq0`] when to look again and calls
//! [`Pit::irq0_edges`] to learn how many IRQ 0 edges happened.

use std::sync::Arc;
use std::time::Duration;

use crate::bus::{AccessSize, PortIoDevice};
use crate::clock::Clock;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
pub const TIMER_BASE: u16 = 0x40;
pub const TIMER_CTRL: u16 = 0x43;
/// NMI status and control (PCKBC_AUX in vmd).
pub const NMI_STATUS: u16 = 0x61;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Access {
    #[default]
    LoHi,
    Lo,
    Hi,
}

#[derive(Clone, Debug, Default)]
struct Channel {
    mode: u8,
    access: Access,
    /// The count loaded, 1..=65536.
    reload: u64,
    /// When counting started (load time, or gate rising for channel 2).
    start: Option<Duration>,
    /// A count being written in two halves.
    write_lo: Option<u8>,
    /// A latched value and whether its high byte is next.
    latched: Option<u16>,
    latched_hi_next: bool,
    read_hi_next: bool,
    status: Option<u8>,
    /// IRQ 0 edges already reported (channel 0).
    edges_reported: u64,
}

fn ticks(since: Duration) -> u64 {
    (since.as_nanos() * u128::from(PIT_HZ) / 1_000_000_000) as u64
}

fn ticks_to_time(t: u64) -> Duration {
    Duration::from_nanos((u128::from(t) * 1_000_000_000).div_ceil(u128::from(PIT_HZ)) as u64)
}

impl Channel {
    fn elapsed(&self, now: Duration) -> Option<u64> {
        self.start.map(|s| ticks(now.saturating_sub(s)))
    }

    /// The counter as the guest reads it.
    fn count(&self, now: Duration) -> u16 {
        let Some(t) = self.elapsed(now) else {
            return self.reload as u16;
        };
        let r = self.reload;
        let v = match self.mode {
            // Interrupt on terminal count: counts down through 0 and wraps.
            0 | 1 | 4 | 5 => (r + 0x10000 - t % 0x10000) % 0x10000,
            // Rate generator: r .. 1, reloading.
            2 => r - t % r,
            // Square wave: counts down by two each half period.
            3 => (r - (2 * t) % r) & !1,
            _ => r - t % r,
        };
        v as u16
    }

    /// The counter's output pin.
    fn out(&self, now: Duration) -> bool {
        let Some(t) = self.elapsed(now) else {
            // Before a count is loaded, mode 0's output is low, others high.
            return self.mode != 0;
        };
        let r = self.reload;
        match self.mode {
            0 | 1 => t >= r,
            2 => t % r != r - 1,
            3 => t % r < r.div_ceil(2),
            4 | 5 => t != r,
            _ => true,
        }
    }

    /// Rising edges of the output since counting started.
    fn edges(&self, now: Duration) -> u64 {
        let Some(t) = self.elapsed(now) else {
            return 0;
        };
        match self.mode {
            0 | 1 => u64::from(t >= self.reload),
            2 | 3 => t / self.reload,
            _ => 0,
        }
    }

    /// When the next rising edge is due.
    fn next_edge(&self) -> Option<Duration> {
        let start = self.start?;
        let n = self.edges_reported;
        let at = match self.mode {
            0 | 1 if n == 0 => self.reload,
            2 | 3 => (n + 1) * self.reload,
            _ => return None,
        };
        Some(start + ticks_to_time(at))
    }

    fn status_byte(&self, now: Duration) -> u8 {
        let access = match self.access {
            Access::Lo => 1,
            Access::Hi => 2,
            Access::LoHi => 3,
        };
        (u8::from(self.out(now)) << 7)
            | (u8::from(self.start.is_none()) << 6)
            | (access << 4)
            | (self.mode << 1)
    }

    fn read(&mut self, now: Duration) -> u8 {
        if let Some(s) = self.status.take() {
            return s;
        }
        if let Some(l) = self.latched {
            let byte = match self.access {
                Access::Lo => l as u8,
                Access::Hi => (l >> 8) as u8,
                Access::LoHi if self.latched_hi_next => (l >> 8) as u8,
                Access::LoHi => l as u8,
            };
            if self.access == Access::LoHi && !self.latched_hi_next {
                self.latched_hi_next = true;
            } else {
                self.latched = None;
                self.latched_hi_next = false;
            }
            return byte;
        }
        let c = self.count(now);
        match self.access {
            Access::Lo => c as u8,
            Access::Hi => (c >> 8) as u8,
            Access::LoHi => {
                self.read_hi_next = !self.read_hi_next;
                if self.read_hi_next {
                    c as u8
                } else {
                    (c >> 8) as u8
                }
            }
        }
    }

    fn latch(&mut self, now: Duration) {
        if self.latched.is_none() {
            self.latched = Some(self.count(now));
            self.latched_hi_next = false;
        }
    }

    fn load(&mut self, value: u16, now: Duration, gate: bool) {
        self.reload = if value == 0 {
            0x10000
        } else {
            u64::from(value)
        };
        self.start = gate.then_some(now);
        self.edges_reported = 0;
    }
}

/// The three counters and port 0x61.
pub struct Pit {
    clock: Arc<dyn Clock>,
    ch: [Channel; 3],
    /// Port 0x61 bits 0 (channel 2 gate) and 1 (speaker data).
    port61: u8,
    refresh: bool,
}

impl Pit {
    pub fn new(clock: Arc<dyn Clock>) -> Pit {
        let mut ch: [Channel; 3] = Default::default();
        for c in &mut ch {
            c.reload = 0x10000;
        }
        Pit {
            clock,
            ch,
            port61: 0,
            refresh: false,
        }
    }

    fn gate(&self, i: usize) -> bool {
        i != 2 || self.port61 & 1 != 0
    }

    fn write_ctrl(&mut self, v: u8, now: Duration) {
        let sc = (v >> 6) as usize;
        if sc == 3 {
            // 8254 read-back: bit 5 clear latches counts, bit 4 clear
            // latches status, bits 1-3 pick the counters.
            for i in 0..3 {
                if v & (2 << i) == 0 {
                    continue;
                }
                if v & 0x10 == 0 && self.ch[i].status.is_none() {
                    self.ch[i].status = Some(self.ch[i].status_byte(now));
                }
                if v & 0x20 == 0 {
                    self.ch[i].latch(now);
                }
            }
            return;
        }
        let c = &mut self.ch[sc];
        let access = match (v >> 4) & 3 {
            0 => {
                c.latch(now);
                return;
            }
            1 => Access::Lo,
            2 => Access::Hi,
            _ => Access::LoHi,
        };
        c.access = access;
        // Modes 6 and 7 are aliases of 2 and 3.
        let mode = (v >> 1) & 7;
        c.mode = if mode >= 6 { mode - 4 } else { mode };
        c.start = None;
        c.write_lo = None;
        c.latched = None;
        c.read_hi_next = false;
        c.edges_reported = 0;
    }

    fn write_count(&mut self, i: usize, v: u8, now: Duration) {
        let gate = self.gate(i);
        let c = &mut self.ch[i];
        let value = match c.access {
            Access::Lo => u16::from(v),
            Access::Hi => u16::from(v) << 8,
            Access::LoHi => match c.write_lo.take() {
                None => {
                    c.write_lo = Some(v);
                    return;
                }
                Some(lo) => u16::from(lo) | (u16::from(v) << 8),
            },
        };
        c.load(value, now, gate);
    }

    /// IRQ 0 edges since the last call: the vm process pulses IRQ 0 once
    /// if there were any (missed ticks are coalesced, as on a busy PC).
    pub fn irq0_edges(&mut self) -> u64 {
        let now = self.clock.monotonic();
        let c = &mut self.ch[0];
        let total = c.edges(now);
        let new = total.saturating_sub(c.edges_reported);
        c.edges_reported = total;
        new
    }

    /// When the next IRQ 0 edge is due, on the supplied clock.
    pub fn next_irq0(&self) -> Option<Duration> {
        self.ch[0].next_edge()
    }
}

impl PortIoDevice for Pit {
    fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
        let now = self.clock.monotonic();
        u32::from(match port {
            0x40..=0x42 => self.ch[usize::from(port - TIMER_BASE)].read(now),
            NMI_STATUS => {
                // The refresh bit toggles on every read; BIOSes spin on it.
                self.refresh = !self.refresh;
                let out2 = self.ch[2].out(now) && self.gate(2);
                (self.port61 & 3) | (u8::from(self.refresh) << 4) | (u8::from(out2) << 5)
            }
            _ => 0xff,
        })
    }

    fn port_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        let now = self.clock.monotonic();
        let v = value as u8;
        match port {
            0x40..=0x42 => self.write_count(usize::from(port - TIMER_BASE), v, now),
            TIMER_CTRL => self.write_ctrl(v, now),
            NMI_STATUS => {
                let rising = v & 1 != 0 && self.port61 & 1 == 0;
                self.port61 = v & 3;
                // Channel 2 counts from when its gate goes high.
                if rising && self.ch[2].start.is_none() && self.ch[2].reload > 0 {
                    self.ch[2].start = Some(now);
                }
                if v & 1 == 0 {
                    self.ch[2].start = None;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct FakeClock(Mutex<Duration>);

    impl Clock for FakeClock {
        fn monotonic(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn wall(&self) -> Duration {
            Duration::ZERO
        }
    }

    impl FakeClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn pit() -> (Pit, Arc<FakeClock>) {
        let clock = Arc::new(FakeClock::default());
        (Pit::new(clock.clone()), clock)
    }

    fn w(p: &mut Pit, port: u16, v: u8) {
        p.port_write(port, AccessSize::Byte, u32::from(v));
    }

    fn r(p: &mut Pit, port: u16) -> u8 {
        p.port_read(port, AccessSize::Byte) as u8
    }

    #[test]
    fn bios_style_channel0_ticks_at_the_programmed_rate() {
        let (mut p, clock) = pit();
        // Channel 0, lo/hi, mode 2, divisor 11932: about 100 Hz.
        w(&mut p, 0x43, 0x34);
        w(&mut p, 0x40, (11932u16 & 0xff) as u8);
        w(&mut p, 0x40, (11932u16 >> 8) as u8);
        let period = ticks_to_time(11932);
        assert_eq!(p.next_irq0(), Some(period));
        assert_eq!(p.irq0_edges(), 0);
        clock.advance(Duration::from_millis(1000));
        // 100 edges in a second (11932 / 1193182 s each).
        assert_eq!(p.irq0_edges(), 99);
        clock.advance(Duration::from_millis(10));
        assert_eq!(p.irq0_edges(), 1);
        assert!(p.next_irq0().unwrap() > clock.monotonic());
    }

    #[test]
    fn latch_and_readback() {
        let (mut p, clock) = pit();
        w(&mut p, 0x43, 0x34);
        w(&mut p, 0x40, 0x00);
        w(&mut p, 0x40, 0x10); // 0x1000
        clock.advance(ticks_to_time(0x100));
        w(&mut p, 0x43, 0x00); // latch channel 0
        clock.advance(ticks_to_time(0x200));
        let lo = r(&mut p, 0x40);
        let hi = r(&mut p, 0x40);
        assert_eq!(u16::from(lo) | (u16::from(hi) << 8), 0x0f00);
        // Read-back of status and count for channel 0.
        w(&mut p, 0x43, 0xc2);
        let status = r(&mut p, 0x40);
        assert_eq!(status & 0x3f, 0x34, "access lo/hi, mode 2");
        let lo = r(&mut p, 0x40);
        let hi = r(&mut p, 0x40);
        assert_eq!(u16::from(lo) | (u16::from(hi) << 8), 0x0d00);
    }

    #[test]
    fn channel2_gate_and_out2_on_port_61_as_tsc_calibration_uses_them() {
        let (mut p, clock) = pit();
        w(&mut p, 0x61, 0x01); // gate on, speaker off
        w(&mut p, 0x43, 0xb0); // channel 2, lo/hi, mode 0
        w(&mut p, 0x42, 0x9b);
        w(&mut p, 0x42, 0x2e); // 11931
        assert_eq!(r(&mut p, 0x61) & 0x20, 0, "OUT2 low while counting");
        clock.advance(Duration::from_millis(11));
        assert_eq!(r(&mut p, 0x61) & 0x20, 0x20, "terminal count");
        let a = r(&mut p, 0x61) & 0x10;
        let b = r(&mut p, 0x61) & 0x10;
        assert_ne!(a, b, "refresh toggles");
        // Mode 0 on channel 0 fires IRQ 0 once.
        w(&mut p, 0x43, 0x30);
        w(&mut p, 0x40, 100);
        w(&mut p, 0x40, 0);
        clock.advance(Duration::from_millis(1));
        assert_eq!(p.irq0_edges(), 1);
        clock.advance(Duration::from_millis(100));
        assert_eq!(p.irq0_edges(), 0);
        assert_eq!(p.next_irq0(), None);
    }

    #[test]
    fn square_wave_counts_by_two() {
        let (mut p, clock) = pit();
        w(&mut p, 0x43, 0x36);
        w(&mut p, 0x40, 0);
        w(&mut p, 0x40, 0); // 65536
        clock.advance(ticks_to_time(10));
        w(&mut p, 0x43, 0x00);
        let lo = r(&mut p, 0x40);
        let hi = r(&mut p, 0x40);
        let v = u16::from(lo) | (u16::from(hi) << 8);
        assert_eq!(v % 2, 0);
        assert!(v >= 0xffe0, "{v:#x}");
    }
}
