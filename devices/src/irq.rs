//! Interrupt lines from devices to the interrupt controller.
//!
//! A device holds one [`IrqLine`] per ISA or PCI interrupt it drives. The vm
//! process implements it by updating the i8259 pair and kicking the vcpu if
//! the result is a new pending interrupt; tests implement it with a recorder.

use std::sync::Arc;

pub trait IrqLine: Send + Sync {
    /// Drives the line high (`true`) or low (`false`). Level-triggered
    /// inputs stay asserted until lowered; edge-triggered ones latch on the
    /// low-to-high transition.
    fn set_level(&self, level: bool);

    /// An edge: high, then low.
    fn pulse(&self) {
        self.set_level(true);
        self.set_level(false);
    }
}

/// A shareable handle to an interrupt line.
pub type Irq = Arc<dyn IrqLine>;

/// A line that goes nowhere, for devices whose interrupt is not wired.
#[derive(Debug, Default)]
pub struct NoIrq;

impl IrqLine for NoIrq {
    fn set_level(&self, _level: bool) {}
}
