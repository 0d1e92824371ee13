//! The PC's interrupt path in the vm process: devices drive i8259 inputs
//! through [`PicLine`]s, the PIT's channel 0 pulses IRQ 0, and the vcpu
//! loop asks [`PcInterrupts`] what to inject and waits on it in HLT.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use devices::clock::Clock;
use devices::i8253::Pit;
use devices::i8259::Pic;
use devices::irq::IrqLine;

use crate::vcpu::InterruptSource;

/// Longest HLT sleep before looking again (pause, shutdown requests).
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Wakes the vcpu when an interrupt may have become pending: a halted
/// vcpu through a condition variable, a running one through its kicker.
///
/// An interrupt kicks a running vcpu only while it may not know of one:
/// once it has asked the hypervisor for an interrupt window it comes back
/// by itself when the guest can take it. Kicking it again while the guest
/// keeps interrupts off (SeaBIOS's whole POST) only costs exits.
#[derive(Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
    kicked: AtomicBool,
    kick: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Doorbell {
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
        if let Some(kick) = self.kick.get() {
            if !self.kicked.swap(true, Ordering::AcqRel) {
                kick();
            }
        }
    }

    /// Gets the vcpu out of the guest whatever it waits for: pause, stop.
    pub fn alert(&self) {
        *self.rung.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
        if let Some(kick) = self.kick.get() {
            self.kicked.store(true, Ordering::Release);
            kick();
        }
    }

    /// The vcpu is about to look at the PIC: the next ring must kick again.
    fn rearm(&self) {
        self.kicked.store(false, Ordering::Release);
    }

    /// The vcpu waits for an interrupt window: rings need not kick.
    fn disarm(&self) {
        self.kicked.store(true, Ordering::Release);
    }

    /// How to get a vcpu out of the guest; set once its thread runs.
    pub fn set_kick(&self, kick: Box<dyn Fn() + Send + Sync>) {
        if self.kick.set(kick).is_err() {
            log::warn!("vcpu kick installed twice");
        }
    }

    fn wait(&self, timeout: Duration) {
        let g = self.rung.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |rung| !*rung)
            .unwrap_or_else(|e| e.into_inner());
        *g = false;
    }
}

/// An ISA interrupt input of the PIC pair.
pub struct PicLine {
    pic: Arc<Mutex<Pic>>,
    irq: u8,
    bell: Arc<Doorbell>,
}

impl PicLine {
    pub fn new(pic: Arc<Mutex<Pic>>, irq: u8, bell: Arc<Doorbell>) -> PicLine {
        PicLine { pic, irq, bell }
    }
}

impl IrqLine for PicLine {
    fn set_level(&self, level: bool) {
        self.pic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_irq(self.irq, level);
        if level {
            self.bell.ring();
        }
    }
}

/// Timer ticks kept for later delivery at most: about 10 s of the BIOS's
/// 18.2 Hz, 1 s of a 1000 Hz kernel.
const MAX_LOST_TICKS: u64 = 1000;

/// The PIC pair fed by the PIT and by device lines.
///
/// Timer ticks that come while the last one is still latched in the PIC
/// (the guest runs with interrupts off, or the host did not run the vcpu)
/// are kept and delivered one by one as the guest takes them, the way
/// KVM's in-kernel PIT re-injects under QEMU. A guest that counts ticks
/// (the BIOS's clock, a kernel's timeouts) then keeps time; on this
/// nested KVM, where real-mode code is emulated, whole seconds of ticks
/// would otherwise be lost. Ticks that come while IRQ 0 is masked are
/// dropped, as KVM does.
pub struct PcInterrupts {
    pub pic: Arc<Mutex<Pic>>,
    pub pit: Arc<Mutex<Pit>>,
    pub clock: Arc<dyn Clock>,
    pub bell: Arc<Doorbell>,
    /// Ticks not delivered yet; changed only under the `pic` lock.
    lost_ticks: AtomicU64,
}

impl PcInterrupts {
    pub fn new(
        pic: Arc<Mutex<Pic>>,
        pit: Arc<Mutex<Pit>>,
        clock: Arc<dyn Clock>,
        bell: Arc<Doorbell>,
    ) -> PcInterrupts {
        PcInterrupts {
            pic,
            pit,
            clock,
            bell,
            lost_ticks: AtomicU64::new(0),
        }
    }

    /// Whether the PIC has an interrupt for the cpu, for threads other than
    /// the vcpu's (which uses [`InterruptSource::pending`]).
    pub fn has_pending(&self) -> bool {
        self.poll_timer();
        self.pic.lock().unwrap_or_else(|e| e.into_inner()).pending()
    }

    /// Turns PIT channel 0 edges into IRQ 0 pulses, one at a time: the
    /// next one once the PIC has handed the last one to the cpu.
    pub fn poll_timer(&self) {
        let edges = self
            .pit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .irq0_edges();
        let mut pic = self.pic.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = self.lost_ticks.load(Ordering::Relaxed) + edges;
        let pulse = if pic.masked(0) {
            // The PIC still latches the request, but nothing more is kept.
            due = 0;
            edges > 0
        } else if due > 0 && !pic.requested(0) {
            due -= 1;
            true
        } else {
            false
        };
        if pulse {
            pic.set_irq(0, true);
            pic.set_irq(0, false);
        }
        self.lost_ticks
            .store(due.min(MAX_LOST_TICKS), Ordering::Relaxed);
    }
}

impl InterruptSource for PcInterrupts {
    fn acknowledge(&self) -> Option<u8> {
        self.pic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .acknowledge()
    }

    fn pending(&self) -> bool {
        self.bell.rearm();
        self.has_pending()
    }

    fn window_requested(&self) {
        self.bell.disarm();
    }

    fn wait(&self) -> bool {
        let now = self.clock.monotonic();
        let next = self
            .pit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_irq0();
        let timeout = next.map_or(MAX_WAIT, |t| t.saturating_sub(now).min(MAX_WAIT));
        self.bell.wait(timeout);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devices::bus::{AccessSize, PortIoDevice};

    #[derive(Default)]
    struct TestClock(Mutex<Duration>);

    impl Clock for TestClock {
        fn monotonic(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn wall(&self) -> Duration {
            Duration::ZERO
        }
    }

    /// A PIC pair set up as a BIOS does (vectors 8 and 0x70, IRQ 0
    /// unmasked) and the PIT's channel 0 ticking at 100 Hz.
    fn pc() -> (PcInterrupts, Arc<TestClock>) {
        let clock = Arc::new(TestClock::default());
        let pic = Arc::new(Mutex::new(Pic::new()));
        let pit = Arc::new(Mutex::new(Pit::new(clock.clone())));
        {
            let mut p = pic.lock().unwrap();
            for (port, v) in [
                (0x20, 0x11),
                (0x21, 0x08),
                (0x21, 0x04),
                (0x21, 0x01),
                (0xa0, 0x11),
                (0xa1, 0x70),
                (0xa1, 0x02),
                (0xa1, 0x01),
                (0x21, 0xfe),
                (0xa1, 0xff),
            ] {
                p.port_write(port, AccessSize::Byte, v);
            }
            let mut t = pit.lock().unwrap();
            let count: u32 = 11932; // 1193182 Hz / 100
            t.port_write(0x43, AccessSize::Byte, 0x34);
            t.port_write(0x40, AccessSize::Byte, count & 0xff);
            t.port_write(0x40, AccessSize::Byte, count >> 8);
        }
        let pc = PcInterrupts::new(pic, pit, clock.clone(), Arc::new(Doorbell::default()));
        (pc, clock)
    }

    fn advance(clock: &TestClock, d: Duration) {
        *clock.0.lock().unwrap() += d;
    }

    /// Takes every timer interrupt the guest would get now, with an EOI
    /// after each.
    fn take_all(pc: &PcInterrupts) -> usize {
        let mut n = 0;
        while pc.pending() {
            assert_eq!(pc.acknowledge(), Some(8));
            pc.pic
                .lock()
                .unwrap()
                .port_write(0x20, AccessSize::Byte, 0x20);
            n += 1;
            assert!(n < 10_000, "interrupts never stop");
        }
        n
    }

    #[test]
    fn ticks_lost_with_interrupts_off_are_delivered_later() {
        let (pc, clock) = pc();
        // 55 ms with interrupts off: five ticks, the first latched in the
        // PIC and four kept.
        for _ in 0..55 {
            advance(&clock, Duration::from_millis(1));
            pc.poll_timer();
        }
        assert_eq!(take_all(&pc), 5);
        // Time goes on normally afterwards: one tick per 10 ms.
        advance(&clock, Duration::from_millis(10));
        assert_eq!(take_all(&pc), 1);
        assert_eq!(take_all(&pc), 0);
    }

    #[test]
    fn lost_ticks_are_bounded_and_dropped_while_masked() {
        let (pc, clock) = pc();
        // An hour with interrupts off keeps at most MAX_LOST_TICKS.
        advance(&clock, Duration::from_secs(3600));
        pc.poll_timer();
        assert_eq!(take_all(&pc) as u64, MAX_LOST_TICKS + 1);
        // Ticks while IRQ 0 is masked are not kept for later: the PIC
        // latches one request, as it would on a PC.
        let mask = |v: u32| pc.pic.lock().unwrap().port_write(0x21, AccessSize::Byte, v);
        mask(0xff);
        advance(&clock, Duration::from_millis(100));
        pc.poll_timer();
        mask(0xfe);
        assert_eq!(take_all(&pc), 1);
    }
}
