//! The vcpu loop: port I/O goes to the port bus, HLT waits for an
//! interrupt, and anything that ends the run is reported as a
//! [`StopReason`] rather than a panic.

use devices::bus::{AccessSize, PortBus};

use crate::hv::{Exit, HvError, Vcpu};

/// Where interrupts for the vcpu come from (the i8259 pair in a full VM).
pub trait InterruptSource {
    /// The vector to deliver now, if one is pending (an INTA cycle).
    fn acknowledge(&self) -> Option<u8>;
    /// Whether an interrupt is pending without acknowledging it.
    fn pending(&self) -> bool;
    /// The loop has asked for an exit once the guest can take interrupts,
    /// so it will look at [`InterruptSource::pending`] again by itself.
    fn window_requested(&self) {}
    /// Blocks until an interrupt may be pending or the loop should look
    /// again (pause, shutdown). Returns false if nothing can ever wake the
    /// vcpu.
    fn wait(&self) -> bool;
    /// Whether the run should end now; may block while the VM is paused.
    fn stop_requested(&self) -> Option<StopReason> {
        None
    }
}

/// No interrupt controller: HLT with interrupts on cannot be woken.
pub struct NoInterrupts;

impl InterruptSource for NoInterrupts {
    fn acknowledge(&self) -> Option<u8> {
        None
    }
    fn pending(&self) -> bool {
        false
    }
    fn wait(&self) -> bool {
        false
    }
}

/// Why the vcpu loop ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// Asked to stop: the VM is shut down.
    Shutdown,
    /// Asked to restart the VM (vmmci reboot).
    Reboot,
    /// A device process died or broke the protocol.
    DeviceFailed(String),
    /// HLT with interrupts disabled: the guest is done.
    HaltedWithInterruptsOff,
    /// HLT waiting for an interrupt that nothing can send.
    HaltedForever,
    /// A triple fault; vmd reboots the VM.
    TripleFault,
    /// An exit this loop does not handle; the VM is stopped.
    Unhandled(String),
}

#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error(transparent)]
    Hv(#[from] HvError),
}

/// Runs `vcpu` until the guest stops.
pub fn run(
    vcpu: &mut dyn Vcpu,
    bus: &PortBus,
    irqs: &dyn InterruptSource,
) -> Result<StopReason, VcpuError> {
    loop {
        if let Some(reason) = irqs.stop_requested() {
            return Ok(reason);
        }
        if irqs.pending() {
            if vcpu.ready_for_interrupt() {
                if let Some(v) = irqs.acknowledge() {
                    vcpu.inject_interrupt(v)?;
                }
                vcpu.request_interrupt_window(false);
            } else {
                vcpu.request_interrupt_window(true);
                irqs.window_requested();
            }
        }
        match vcpu.run()? {
            Exit::IoOut { port, data } => match AccessSize::from_len(data.len()) {
                Some(size) => {
                    let mut v = [0u8; 4];
                    v[..data.len()].copy_from_slice(data);
                    bus.write(port, size, u32::from_le_bytes(v));
                }
                None => {
                    return Ok(StopReason::Unhandled(format!(
                        "out of {} bytes to {port:#x}",
                        data.len()
                    )))
                }
            },
            Exit::IoIn { port, data } => match AccessSize::from_len(data.len()) {
                Some(size) => {
                    let v = bus.read(port, size).to_le_bytes();
                    let n = data.len();
                    data.copy_from_slice(&v[..n]);
                }
                None => {
                    return Ok(StopReason::Unhandled(format!(
                        "in of {} bytes from {port:#x}",
                        data.len()
                    )))
                }
            },
            // Nothing is mapped there (vmd has no MMIO devices): reads see
            // a floating bus, writes vanish, as on a PC.
            Exit::MmioRead { addr, data } => {
                log::trace!("vcpu: read of {} bytes at unmapped {addr:#x}", data.len());
                data.fill(0xff);
            }
            Exit::MmioWrite { addr, data } => {
                log::trace!("vcpu: write of {} bytes to unmapped {addr:#x}", data.len());
            }
            Exit::Halt => {
                if !vcpu.interrupts_enabled()? {
                    return Ok(StopReason::HaltedWithInterruptsOff);
                }
                while !irqs.pending() {
                    if !irqs.wait() {
                        return Ok(StopReason::HaltedForever);
                    }
                }
            }
            Exit::InterruptWindow | Exit::Interrupted => {}
            Exit::Shutdown => return Ok(StopReason::TripleFault),
            Exit::Other(what) => {
                log::warn!("vcpu: unhandled exit: {what}");
                return Ok(StopReason::Unhandled(what));
            }
        }
    }
}
