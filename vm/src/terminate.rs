//! SIGTERM (and SIGINT) to a vm process: the guest stops where it is and
//! the process ends as after a shutdown, with its device processes shut
//! down and waited for. vmm sends it for `vmctl stop -f`, as vmd's
//! terminate_vm does, so disks are flushed and taps are free again when
//! vmd reports the VM stopped.

use std::io;
use std::mem::MaybeUninit;

use crate::machine::MachineControl;
use crate::vcpu::StopReason;

/// The signals, blocked in every thread so that one thread takes them
/// with `sigwait`. Spawned device processes start with an empty mask
/// (std's `Command` resets it).
pub struct TerminateSignals {
    set: libc::sigset_t,
}

impl TerminateSignals {
    /// Blocks the signals in the calling thread and in every thread it
    /// starts from now on: call it before the process starts any thread.
    pub fn block() -> io::Result<TerminateSignals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; sigaddset and
        // pthread_sigmask only read and write it and the thread's mask.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            let mut set = set.assume_init();
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            set
        };
        Ok(TerminateSignals { set })
    }

    /// Stops the guest through `control` when a signal arrives.
    pub fn stop_on_signal(self, name: String, control: MachineControl) -> io::Result<()> {
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                let mut sig = 0;
                // SAFETY: the set is initialised and blocked in this thread.
                if unsafe { libc::sigwait(&self.set, &mut sig) } == 0 {
                    log::info!("{name}: terminated by signal {sig}");
                    control.stop(StopReason::Shutdown);
                    return;
                }
            })
            .map(drop)
    }
}
