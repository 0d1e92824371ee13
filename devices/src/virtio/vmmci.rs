//! vmmci: the OpenBSD VMM control interface, a virtio 0.9 device without
//! queues. The host asks the guest to shut down, reboot or resync its
//! clock through a command register; the guest acknowledges by writing the
//! command back, and the host gives it a short or long grace period before
//! it is stopped by force. It also shows the guest the host's time.

use std::sync::Arc;
use std::time::Duration;

use super::pci::VirtioPci;
use super::queue::Queue;
use super::{VirtioDevice, DEVICE_VMMCI, ISR_CONFIG_CHANGE, STATUS_DRIVER_OK};
use crate::bus::AccessSize;
use crate::clock::Clock;
use crate::memory::GuestMemory;

/// Feature bits.
pub const VMMCI_F_TIMESYNC: u64 = 1 << 0;
pub const VMMCI_F_ACK: u64 = 1 << 1;
pub const VMMCI_F_SYNCRTC: u64 = 1 << 2;

/// Grace periods: before the guest acknowledged, and after.
pub const VMMCI_TIMEOUT_SHORT: Duration = Duration::from_secs(3);
pub const VMMCI_TIMEOUT_LONG: Duration = Duration::from_secs(120);

/// Device configuration registers (offsets from the device config area).
const CONFIG_COMMAND: u16 = 0;
const CONFIG_TIME_SEC_LO: u16 = 4;
const CONFIG_TIME_SEC_HI: u16 = 8;
const CONFIG_TIME_USEC_LO: u16 = 12;
const CONFIG_TIME_USEC_HI: u16 = 16;

/// A command for the guest (enum vmmci_cmd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VmmciCommand {
    None = 0,
    Shutdown = 1,
    Reboot = 2,
    SyncRtc = 3,
}

impl VmmciCommand {
    pub fn from_u32(v: u32) -> Option<VmmciCommand> {
        match v {
            0 => Some(VmmciCommand::None),
            1 => Some(VmmciCommand::Shutdown),
            2 => Some(VmmciCommand::Reboot),
            3 => Some(VmmciCommand::SyncRtc),
            _ => None,
        }
    }
}

/// The one-shot timer the caller supplies; arming again replaces the
/// deadline. When it fires the caller calls [`VirtioPci::vmmci_timeout`].
pub trait Timer: Send {
    fn arm(&mut self, after: Duration);
}

/// What to do with the VM when the grace period ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmStop {
    Shutdown,
    Reboot,
}

/// Why a command was not delivered.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmmciError {
    #[error("guest vmmci driver is not ready")]
    NotReady,
}

/// The vmmci device model.
pub struct Vmmci {
    cmd: VmmciCommand,
    time: Duration,
    clock: Arc<dyn Clock>,
    timer: Box<dyn Timer>,
}

impl Vmmci {
    pub fn new(clock: Arc<dyn Clock>, timer: Box<dyn Timer>) -> Vmmci {
        Vmmci {
            cmd: VmmciCommand::None,
            time: Duration::ZERO,
            clock,
            timer,
        }
    }

    /// The pending command.
    pub fn command(&self) -> VmmciCommand {
        self.cmd
    }

    /// The guest wrote `value` to the command register.
    fn ack(&mut self, value: u32) {
        match VmmciCommand::from_u32(value) {
            Some(VmmciCommand::None) => {}
            Some(VmmciCommand::Shutdown) if self.cmd == VmmciCommand::None => {
                // The guest shuts down on its own: give it a moment to
                // get there before stopping it.
                log::debug!("vmmci_ack: vm requested shutdown");
                self.timer.arm(VMMCI_TIMEOUT_SHORT);
            }
            Some(c @ (VmmciCommand::Shutdown | VmmciCommand::Reboot)) => {
                if c == self.cmd {
                    // rc.shutdown may take a while.
                    log::debug!("vmmci_ack: vm acknowledged shutdown request");
                    self.timer.arm(VMMCI_TIMEOUT_LONG);
                }
            }
            Some(VmmciCommand::SyncRtc) => {
                log::debug!("vmmci_ack: vm acknowledged RTC sync request");
                self.cmd = VmmciCommand::None;
            }
            None => log::warn!("vmmci_ack: illegal request {value}"),
        }
    }
}

impl VirtioDevice for Vmmci {
    fn device_type(&self) -> u16 {
        DEVICE_VMMCI
    }

    fn features(&self) -> u64 {
        VMMCI_F_TIMESYNC | VMMCI_F_ACK | VMMCI_F_SYNCRTC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[]
    }

    fn read_config(&mut self, offset: u16, _size: AccessSize) -> u32 {
        match offset {
            CONFIG_COMMAND => self.cmd as u32,
            CONFIG_TIME_SEC_LO => {
                // The first time register latches the clock for the rest.
                self.time = self.clock.wall();
                self.time.as_secs() as u32
            }
            CONFIG_TIME_SEC_HI => (self.time.as_secs() >> 32) as u32,
            CONFIG_TIME_USEC_LO => self.time.subsec_micros(),
            CONFIG_TIME_USEC_HI => 0,
            _ => u32::MAX,
        }
    }

    fn write_config(&mut self, offset: u16, _size: AccessSize, value: u32) {
        if offset == CONFIG_COMMAND {
            self.ack(value);
        }
    }

    fn queue_notify(&mut self, _index: u16, _queue: &mut Queue, _mem: &GuestMemory) -> bool {
        false
    }
}

impl VirtioPci<Vmmci> {
    /// Asks the guest to carry out `cmd` (vmmci_ctl). Fails if the guest
    /// driver has not set DRIVER_OK.
    pub fn vmmci_command(&mut self, cmd: VmmciCommand) -> Result<(), VmmciError> {
        if self.status() & STATUS_DRIVER_OK == 0 {
            return Err(VmmciError::NotReady);
        }
        if cmd == self.device().cmd {
            return Ok(());
        }
        match cmd {
            VmmciCommand::None => {}
            VmmciCommand::Shutdown | VmmciCommand::Reboot => {
                let dev = self.device_mut();
                dev.cmd = cmd;
                dev.timer.arm(VMMCI_TIMEOUT_SHORT);
                self.raise(ISR_CONFIG_CHANGE);
            }
            VmmciCommand::SyncRtc => {
                if self.driver_features() & VMMCI_F_SYNCRTC != 0 {
                    self.device_mut().cmd = cmd;
                    self.raise(ISR_CONFIG_CHANGE);
                } else {
                    log::debug!("vmmci_ctl: RTC sync skipped (guest does not support RTC sync)");
                }
            }
        }
        Ok(())
    }

    /// The caller's timer fired: the VM is to be stopped (vmmci_timeout).
    /// vmm(4) guests cannot power off, so a shutdown is a reboot that the
    /// caller then turns into a stop.
    pub fn vmmci_timeout(&self) -> VmStop {
        log::debug!("vm shutdown");
        if self.device().cmd == VmmciCommand::Reboot {
            VmStop::Reboot
        } else {
            VmStop::Shutdown
        }
    }
}
