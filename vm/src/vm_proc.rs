//! The vm process (`vmd -V fd -i vmm_fd -j psp_fd`), as vmd's vm.c: it
//! reads its `struct vmd_vm` and the local prefix from the vmm process,
//! creates the VM, answers with the VM's id, starts the device processes
//! and runs the guest. The same socket then carries imsgs: pause,
//! unpause, shutdown and reboot requests from vmm, and the VM's own
//! shutdown or reboot on the way out.
//!
//! Exit status, as the C vm process: 0 when the guest shut down or asked
//! for a reboot (vmm is told which), EAGAIN after a triple fault (vmm
//! restarts the VM), an errno otherwise.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use devices::memory::GuestMemory;
use devices::ns8250::SerialSink;
use devices::virtio::vmmci::VmmciCommand;
use imsg::ImsgBuf;
use vmm_sys::Wire;

use crate::abi::imsg_types::*;
use crate::abi::vmop::{VmopResult, VMBOOTDEV_CDROM, VMBOOTDEV_DISK, VMBOOTDEV_NET};
use crate::abi::{LocalPrefix, VmdVm, VM_MAX_BASE_PER_DISK, VM_MAX_DISKS_PER_VM};
use crate::device_proc::{self, LaunchSpec};
use crate::machine::{BootDevice, DiskDevice, Machine, MachineConfig, MachineControl};
use crate::memory_layout;
use crate::terminate::TerminateSignals;
use crate::vcpu::StopReason;

/// The command line of a vm process.
#[derive(Clone, Debug)]
pub struct VmArgs {
    /// `-V`: the socket to the vmm process.
    pub fd: RawFd,
    /// `-i`: the hypervisor handle (-1 on Linux, where each VM opens
    /// /dev/kvm itself).
    pub vmm_fd: RawFd,
    /// The vmd binary, for the device processes.
    pub exe: PathBuf,
    pub debug: bool,
    pub verbose: u8,
}

fn inherited(fd: RawFd, what: &str) -> Result<OwnedFd, String> {
    // SAFETY: F_GETFD only inspects the fd table.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(format!("{what}: fd {fd} is not open"));
    }
    // SAFETY: vmm passed this fd number to this process for this purpose
    // and nothing else here owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The guest's COM1 output into the VM's pty. Never blocks the vcpu: when
/// nobody reads the console and the pty is full, output is dropped, as a
/// serial line without a listener drops it.
struct PtySink {
    tty: File,
    dropped: u64,
}

impl SerialSink for PtySink {
    fn write_byte(&mut self, b: u8) {
        if self.tty.write(&[b]).is_err() {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::debug!(
                    "console: {} bytes dropped (nobody reads the tty)",
                    self.dropped
                );
            }
        }
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on an open fd.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags == -1 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs the vm process; returns its exit status. `set_title` names the
/// process once the VM's name is known.
pub fn main(args: VmArgs, set_title: &dyn Fn(&str)) -> i32 {
    let signals = match TerminateSignals::block() {
        Ok(s) => s,
        Err(e) => {
            log::warn!("signals: {e}");
            return libc::EIO;
        }
    };
    let sock = match inherited(args.fd, "vmm channel") {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("{e}");
            return libc::EBADF;
        }
    };
    let mut raw = File::from(sock);
    let mut buf = vec![0u8; VmdVm::SIZE];
    if raw.read_exact(&mut buf).is_err() {
        log::warn!("failed to receive start message");
        return libc::EIO;
    }
    let vm = VmdVm::get(&buf);
    let name = String::from_utf8_lossy(vmm_sys::wire::c_str(&vm.vm_params.vmc_name)).into_owned();
    set_title(&name);
    let mut buf = vec![0u8; LocalPrefix::SIZE];
    if raw.read_exact(&mut buf).is_err() {
        log::warn!("failed to receive local prefix");
        return libc::EIO;
    }
    let prefix = LocalPrefix::get(&buf);
    if vm.vm_kernel == -1 {
        log::warn!("{name}: failed to receive boot fd");
        return libc::EINVAL;
    }
    match start_vm(&args, &vm, &prefix, &name, raw, signals) {
        Ok(status) => status,
        Err((errno, why)) => {
            log::warn!("{name}: {why}");
            errno
        }
    }
}

type Failure = (i32, String);

fn start_vm(
    args: &VmArgs,
    vm: &VmdVm,
    prefix: &LocalPrefix,
    name: &str,
    mut raw: File,
    signals: TerminateSignals,
) -> Result<i32, Failure> {
    let p = &vm.vm_params;
    let mem_bytes = p.vmc_memranges[0].vmr_size;
    let created = memory_layout::memory_map(mem_bytes)
        .map_err(|e| e.to_string())
        .and_then(|map| {
            let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map))
                .map_err(|e| e.to_string())?;
            Ok((map, mem))
        });
    let (map, mem) = match created {
        Ok(x) => x,
        Err(e) => {
            // A vm id of 0 tells vmm the VM could not be created.
            let _ = raw.write_all(&0u32.to_le_bytes());
            return Err((libc::ENOMEM, format!("could not create vm: {e}")));
        }
    };
    let hv = crate::sys::Hypervisor::new(args.vmm_fd, name, &mem);
    let hv = match hv {
        Ok(hv) => hv,
        Err(e) => {
            let _ = raw.write_all(&0u32.to_le_bytes());
            return Err((libc::ENODEV, format!("could not create vm: {e}")));
        }
    };
    let tty = inherited(vm.vm_tty, "console tty").map_err(|e| (libc::EBADF, e))?;
    set_nonblocking(tty.as_raw_fd()).map_err(|e| {
        (
            libc::EIO,
            format!("failed to set nonblocking mode on console: {e}"),
        )
    })?;
    // Our id for the VM: vmm(4)'s on OpenBSD, vmd's own here.
    let vmid = hv.id().unwrap_or(vm.vm_vmid).max(1);
    raw.write_all(&vmid.to_le_bytes()).map_err(|e| {
        (
            libc::EIO,
            format!("failed to send created vm id to vmm process: {e}"),
        )
    })?;

    let mut boot = Vec::new();
    let kernel = inherited(vm.vm_kernel, "boot image").map_err(|e| (libc::EBADF, e))?;
    let mut kernel = File::from(kernel);
    // After a reboot the same file comes again: read it from the start.
    kernel
        .rewind()
        .and_then(|()| kernel.read_to_end(&mut boot).map(drop))
        .map_err(|e| {
            (
                libc::EIO,
                format!("failed to load kernel or firmware image: {e}"),
            )
        })?;

    // Device processes see the VM as created: vmm(4)'s id and the memory
    // map, which they share on OpenBSD.
    let mut created = *vm;
    created.vm_vmmid = hv.id().unwrap_or(0);
    device_proc::set_memranges(&mut created.vm_params, &map)
        .map_err(|e| (libc::ENOMEM, e.to_string()))?;
    let vm = &created;
    let disks = launch_disks(args, vm, &mem)?;
    let nics = launch_nics(args, vm, prefix, &mem)?;
    let cdrom = if vm.vm_cdrom >= 0 {
        let process = device_proc::launch(LaunchSpec {
            exe: &args.exe,
            dev: device_proc::vioscsi_dev(vm.vm_cdrom),
            vm,
            mem: &mem,
            data_fds: vec![vm.vm_cdrom],
            vmm_fd: args.vmm_fd,
            debug: args.debug,
            verbose: args.verbose,
        })
        .map_err(|e| (libc::EIO, format!("failed to launch virtio device: {e}")))?;
        Some(process)
    } else {
        None
    };

    let console_in = tty
        .try_clone()
        .map_err(|e| (libc::EIO, format!("console: {e}")))?;
    let mut machine = Machine::with_memory(
        MachineConfig {
            name: name.to_string(),
            memory: mem_bytes,
            bios: boot,
            disks,
            nics,
            cdrom,
            console: Box::new(PtySink {
                tty: File::from(tty),
                dropped: 0,
            }),
            console_input: Some(console_in),
            // vm.c: a network boot tells the kernel which interface.
            boot_mac: (p.vmc_bootdevice == VMBOOTDEV_NET && p.vmc_nnics > 0)
                .then_some(p.vmc_macs[0]),
            firmware_log: None,
            boot_device: match p.vmc_bootdevice {
                VMBOOTDEV_DISK => BootDevice::Disk,
                VMBOOTDEV_CDROM => BootDevice::Cdrom,
                VMBOOTDEV_NET => BootDevice::Net,
                _ => BootDevice::Auto,
            },
        },
        map,
        mem,
    )
    .map_err(|e| (libc::EINVAL, e.to_string()))?;

    let reader = raw
        .try_clone()
        .map_err(|e| (libc::EIO, format!("vmm channel: {e}")))?;
    let writer = Arc::new(Mutex::new(ImsgBuf::new(OwnedFd::from(raw))));
    let control = machine.control();
    signals
        .stop_on_signal(name.to_string(), control.clone())
        .map_err(|e| (libc::EIO, format!("signals: {e}")))?;
    {
        let writer = writer.clone();
        let control = control.clone();
        let vmid = vm.vm_vmid;
        std::thread::Builder::new()
            .name("vmm channel".into())
            .spawn(move || vmm_channel(OwnedFd::from(reader), &writer, &control, vmid))
            .map_err(|e| (libc::EIO, e.to_string()))?;
    }

    let mut vcpu = hv.create_vcpu().map_err(|e| (libc::EIO, e.to_string()))?;
    let reason = machine.run(&mut *vcpu);
    control.shutdown_devices();
    let reason = reason.map_err(|e| (libc::EIO, e.to_string()))?;
    let tell = |type_: u32| {
        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
        let _ = w.compose(type_, 0, 0, None, &[]).and_then(|()| w.flush());
    };
    Ok(match reason.clone() {
        StopReason::Shutdown | StopReason::HaltedWithInterruptsOff => {
            log::info!("{name}: guest shut down ({reason:?})");
            tell(IMSG_VMDOP_VM_SHUTDOWN);
            0
        }
        StopReason::Reboot => {
            tell(IMSG_VMDOP_VM_REBOOT);
            0
        }
        StopReason::TripleFault => {
            log::info!("{name}: triple fault: rebooting");
            libc::EAGAIN
        }
        StopReason::HaltedForever => {
            log::warn!("{name}: vcpu halted with nothing to wake it");
            libc::EIO
        }
        StopReason::DeviceFailed(why) => {
            log::warn!("{name}: stopping: {why}");
            libc::EIO
        }
        StopReason::Unhandled(why) => {
            log::warn!("{name}: stopping: {why}");
            libc::EIO
        }
    })
}

/// Starts one vioblk process per disk, with the image and base fds vmm
/// passed in `vm_disks`.
fn launch_disks(args: &VmArgs, vm: &VmdVm, mem: &GuestMemory) -> Result<Vec<DiskDevice>, Failure> {
    let p = &vm.vm_params;
    let ndisks = usize::try_from(p.vmc_ndisks).unwrap_or(usize::MAX);
    if ndisks > VM_MAX_DISKS_PER_VM {
        return Err((libc::EINVAL, format!("{ndisks} disks")));
    }
    let mut disks = Vec::with_capacity(ndisks);
    for i in 0..ndisks {
        let nbases = (p.vmc_diskbases[i] as usize).clamp(1, VM_MAX_BASE_PER_DISK);
        let fds: Vec<RawFd> = vm.vm_disks[i][..nbases]
            .iter()
            .copied()
            .take_while(|&fd| fd >= 0)
            .collect();
        let dev =
            device_proc::vioblk_dev(i as u32, &fds).map_err(|e| (libc::EINVAL, e.to_string()))?;
        let process = device_proc::launch(LaunchSpec {
            exe: &args.exe,
            dev,
            vm,
            mem,
            data_fds: fds,
            vmm_fd: args.vmm_fd,
            debug: args.debug,
            verbose: args.verbose,
        })
        .map_err(|e| (libc::EIO, format!("failed to launch virtio device: {e}")))?;
        disks.push(DiskDevice::Process(Box::new(process)));
    }
    Ok(disks)
}

/// Starts one vionet process per interface, on the tap fds vmm passed in
/// `vm_ifs`.
fn launch_nics(
    args: &VmArgs,
    vm: &VmdVm,
    prefix: &LocalPrefix,
    mem: &GuestMemory,
) -> Result<Vec<crate::device_proc::DeviceProcess>, Failure> {
    let n = usize::try_from(vm.vm_params.vmc_nnics).unwrap_or(usize::MAX);
    if n > crate::abi::VM_MAX_NICS_PER_VM {
        return Err((libc::EINVAL, format!("{n} network interfaces")));
    }
    let mut nics = Vec::with_capacity(n);
    for i in 0..n {
        let tap = vm.vm_ifs[i].vif_fd;
        if tap < 0 {
            log::warn!("vionet{i}: no tap; the interface is left out");
            continue;
        }
        let dev = device_proc::vionet_dev(i as u32, tap, vm, prefix);
        let process = device_proc::launch(LaunchSpec {
            exe: &args.exe,
            dev,
            vm,
            mem,
            data_fds: vec![tap],
            vmm_fd: args.vmm_fd,
            debug: args.debug,
            verbose: args.verbose,
        })
        .map_err(|e| (libc::EIO, format!("failed to launch virtio device: {e}")))?;
        nics.push(process);
    }
    Ok(nics)
}

/// Requests from vmm until the channel closes.
fn vmm_channel(fd: OwnedFd, writer: &Mutex<ImsgBuf>, control: &MachineControl, vmid: u32) {
    let mut ibuf = ImsgBuf::new(fd);
    loop {
        let msg = match ibuf.read_one() {
            Ok(Some(m)) => m,
            Ok(None) => {
                log::debug!("vmm channel closed");
                control.stop(StopReason::Shutdown);
                return;
            }
            Err(e) => {
                log::warn!("vmm channel: {e}");
                control.stop(StopReason::Shutdown);
                return;
            }
        };
        let reply = |type_: u32| {
            let mut r = VmopResult::zeroed();
            r.vmr_id = vmid;
            let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
            let _ = w
                .compose(type_, msg.hdr.peerid, msg.hdr.pid, None, &r.to_bytes())
                .and_then(|()| w.flush());
        };
        match msg.type_() {
            IMSG_CTL_VERBOSE => match msg.get::<i32>() {
                Ok(v) => {
                    crate::log_level::set_verbosity(v);
                    control.set_device_verbosity(v);
                }
                Err(e) => log::warn!("vmm channel: {e}"),
            },
            IMSG_VMDOP_VM_SHUTDOWN => {
                if control.vmmci_command(VmmciCommand::Shutdown).is_err() {
                    control.stop(StopReason::Shutdown);
                }
            }
            IMSG_VMDOP_VM_REBOOT => {
                if control.vmmci_command(VmmciCommand::Reboot).is_err() {
                    control.stop(StopReason::Shutdown);
                }
            }
            IMSG_VMDOP_PAUSE_VM => {
                control.pause();
                reply(IMSG_VMDOP_PAUSE_VM_RESPONSE);
            }
            IMSG_VMDOP_UNPAUSE_VM => {
                control.unpause();
                reply(IMSG_VMDOP_UNPAUSE_VM_RESPONSE);
            }
            t => {
                log::warn!("vmm channel: got invalid imsg {t}");
            }
        }
    }
}
