//! The PC's interrupt path in the vm process: devices drive i8259 inputs
//! through [`PicLine`]s, the PIT's channel 0 pulses IRQ 0, and the vcpu
//! loop asks [`PcInterrupts`] what to inject and waits on it in HLT.

use std::sync::atomic::{AtomicBool, Ordering};
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

/// The PIC pair fed by the PIT and by device lines.
pub struct PcInterrupts {
    pub pic: Arc<Mutex<Pic>>,
    pub pit: Arc<Mutex<Pit>>,
    pub clock: Arc<dyn Clock>,
    pub bell: Arc<Doorbell>,
}

impl PcInterrupts {
    /// Whether the PIC has an interrupt for the cpu, for threads other than
    /// the vcpu's (which uses [`InterruptSource::pending`]).
    pub fn has_pending(&self) -> bool {
        self.poll_timer();
        self.pic.lock().unwrap_or_else(|e| e.into_inner()).pending()
    }

    /// Turns PIT channel 0 edges into an IRQ 0 pulse.
    pub fn poll_timer(&self) {
        let edges = self
            .pit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .irq0_edges();
        if edges > 0 {
            let mut pic = self.pic.lock().unwrap_or_else(|e| e.into_inner());
            pic.set_irq(0, true);
            pic.set_irq(0, false);
        }
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
