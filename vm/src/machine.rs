//! One vmd guest: its memory, the devices the vm process models itself
//! (PIC, PIT, RTC, UART, PCI bus, viornd, vmmci) and the virtio devices
//! that run elsewhere or here (vioblk), put together as vmd's vm process
//! does, and a vcpu driving them until the guest stops.
//!
//! Nothing here depends on the hypervisor: [`Machine::run`] takes any
//! [`Vcpu`]. Threads: the caller's thread runs the vcpu; a timer thread
//! turns PIT, RTC and vmmci deadlines into interrupts and kicks the vcpu
//! out of the guest when one is due; a console thread feeds the UART.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use devices::bus::{AccessSize, BusError, PortBus, PortIoDevice};
use devices::clock::{Clock, HostClock};
use devices::fw_cfg::{
    E820Entry, FwCfg, BIOS_MAP_FREE, BIOS_MAP_RES, FW_CFG_IO_DMA_ADDR_HIGH, FW_CFG_IO_SELECT,
};
use devices::i8253::Pit;
use devices::i8259::Pic;
use devices::irq::Irq;
use devices::mc146818::Rtc;
use devices::memory::{GuestMemory, MapError};
use devices::ns8250::{SerialSink, Uart};
use devices::pci::{PciBus, PciError, SharedBarHandler};
use devices::smbios::{SmbiosFiles, SmbiosMachine};
use devices::virtio::blk::{Blk, BlockBackend};
use devices::virtio::pci::{self as vpci, Layout, VirtioPci};
use devices::virtio::rnd::Rnd;
use devices::virtio::vmmci::{Timer, VmStop, Vmmci, VmmciCommand, VmmciError};
use devices::virtio::{DEVICE_BLOCK, DEVICE_NETWORK, DEVICE_SCSI};

use crate::device_proc::{DeviceHandle, DeviceProcError, DeviceProcess};
use crate::hv::{HvError, Vcpu, VcpuRegState};
use crate::interrupts::{Doorbell, PcInterrupts, PicLine};
use crate::loader::bios::{self, BiosError, RESET_IP, RESET_SEGMENT};
use crate::loader::elf;
use crate::memory_layout::{self, LayoutError, Range, RangeKind, GB, MB};
use crate::vcpu::{self, InterruptSource, StopReason, VcpuError};

/// Ports of the PC devices.
const PIC_PORTS: [(u16, u32); 3] = [(0x20, 2), (0xa0, 2), (0x4d0, 2)];
const PIT_PORTS: [(u16, u32); 2] = [(0x40, 4), (0x61, 1)];
const RTC_PORT: u16 = 0x70;
const COM1_PORT: u16 = 0x3f8;
const COM1_IRQ: u8 = 4;
const RTC_IRQ: u8 = 8;
const PCI_CONFIG_PORT: u16 = 0xcf8;
/// SeaBIOS writes its log here (QEMU's debugcon).
const FIRMWARE_LOG_PORT: u16 = 0x402;

/// The longest the timer thread sleeps without looking again.
const TIMER_SLICE: Duration = Duration::from_millis(10);

/// A disk: a block device model in this process, or a device process
/// (see [`crate::device_proc`]) that already said READY.
pub enum DiskDevice {
    Local(Box<dyn BlockBackend>),
    Process(Box<DeviceProcess>),
}

/// Where SeaBIOS should boot from (vm.conf `boot device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootDevice {
    /// SeaBIOS's own order.
    #[default]
    Auto,
    Disk,
    Cdrom,
    Net,
}

/// What to build.
pub struct MachineConfig {
    pub name: String,
    /// Guest memory in bytes.
    pub memory: u64,
    /// The boot image: an OpenBSD ELF kernel (gzip'd or not) or, as vmd
    /// falls back to, a BIOS image (SeaBIOS).
    pub bios: Vec<u8>,
    pub disks: Vec<DiskDevice>,
    /// vionet device processes, in interface order.
    pub nics: Vec<DeviceProcess>,
    /// The vioscsi device process for the CD-ROM, if there is one.
    pub cdrom: Option<DeviceProcess>,
    /// Where the guest's COM1 output goes.
    pub console: Box<dyn SerialSink>,
    /// Where COM1 input comes from, if anywhere.
    pub console_input: Option<OwnedFd>,
    /// For an ELF kernel booted with `boot device net`: the first
    /// interface's MAC, passed as BOOTARG_BOOTMAC (vmd's vm.c).
    pub boot_mac: Option<[u8; 6]>,
    /// Where the firmware's debug log (port 0x402) goes, if anywhere.
    pub firmware_log: Option<Box<dyn SerialSink>>,
    pub boot_device: BootDevice,
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("memory layout: {0}")]
    Layout(#[from] LayoutError),
    #[error("guest memory: {0}")]
    Memory(#[from] MapError),
    #[error("BIOS: {0}")]
    Bios(#[from] BiosError),
    #[error("kernel: {0}")]
    Kernel(#[from] elf::ElfError),
    #[error("port bus: {0}")]
    Bus(#[from] BusError),
    #[error("PCI: {0}")]
    Pci(#[from] PciError),
    #[error("vcpu: {0}")]
    Vcpu(#[from] VcpuError),
    #[error("hypervisor: {0}")]
    Hv(#[from] HvError),
    #[error("device process: {0}")]
    Device(#[from] DeviceProcError),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The vmmci grace-period timer: the timer thread watches the deadline.
#[derive(Clone, Default)]
struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Timer for Deadline {
    fn arm(&mut self, after: Duration) {
        *lock(&self.0) = Some(Instant::now() + after);
    }
}

impl Deadline {
    fn take_expired(&self) -> bool {
        let mut d = lock(&self.0);
        match *d {
            Some(t) if t <= Instant::now() => {
                *d = None;
                true
            }
            _ => false,
        }
    }
}

/// The firmware's debug port: whole lines go to the debug log and, if
/// given, to a sink.
struct FirmwareLog {
    line: Vec<u8>,
    sink: Option<Box<dyn SerialSink>>,
}

impl PortIoDevice for FirmwareLog {
    fn port_read(&mut self, _port: u16, _size: AccessSize) -> u32 {
        // QEMU's debugcon reads back 0xe9 so firmware can detect it.
        0xe9
    }

    fn port_write(&mut self, _port: u16, _size: AccessSize, value: u32) {
        let b = value as u8;
        if let Some(s) = self.sink.as_mut() {
            s.write_byte(b);
        }
        if b == b'\n' || self.line.len() >= 256 {
            log::debug!(
                "firmware: {}",
                String::from_utf8_lossy(&self.line).trim_end()
            );
            self.line.clear();
        } else {
            self.line.push(b);
        }
    }
}

/// Requests from outside the vcpu thread.
#[derive(Default)]
struct Requests {
    stop: Mutex<Option<StopReason>>,
    paused: Mutex<bool>,
    unpaused: std::sync::Condvar,
}

/// The interrupt source the vcpu loop sees: the PIC pair, plus stop and
/// pause requests.
struct MachineInterrupts {
    pc: Arc<PcInterrupts>,
    requests: Arc<Requests>,
}

impl InterruptSource for MachineInterrupts {
    fn acknowledge(&self) -> Option<u8> {
        self.pc.acknowledge()
    }
    fn pending(&self) -> bool {
        self.pc.pending()
    }
    fn window_requested(&self) {
        self.pc.window_requested()
    }
    fn wait(&self) -> bool {
        self.pc.wait()
    }
    fn stop_requested(&self) -> Option<StopReason> {
        let mut paused = lock(&self.requests.paused);
        while *paused && lock(&self.requests.stop).is_none() {
            paused = self
                .requests
                .unpaused
                .wait(paused)
                .unwrap_or_else(|e| e.into_inner());
        }
        lock(&self.requests.stop).clone()
    }
}

/// A handle to a running machine for other threads: stop, pause, vmmci.
#[derive(Clone)]
pub struct MachineControl {
    requests: Arc<Requests>,
    bell: Arc<Doorbell>,
    vmmci: Arc<OnceLock<Arc<Mutex<VirtioPci<Vmmci>>>>>,
    devices: Arc<OnceLock<Vec<DeviceHandle>>>,
}

impl MachineControl {
    /// Ends the run at once with `reason`.
    pub fn stop(&self, reason: StopReason) {
        lock(&self.requests.stop).get_or_insert(reason);
        self.requests.unpaused.notify_all();
        self.bell.alert();
    }

    pub fn pause(&self) {
        *lock(&self.requests.paused) = true;
        self.bell.alert();
        for d in self.devices.get().into_iter().flatten() {
            d.pause();
        }
    }

    pub fn unpause(&self) {
        for d in self.devices.get().into_iter().flatten() {
            d.unpause();
        }
        *lock(&self.requests.paused) = false;
        self.requests.unpaused.notify_all();
        self.bell.alert();
    }

    /// Passes vmd's verbosity on to every device process (as vm.c's
    /// virtio_broadcast_imsg of IMSG_CTL_VERBOSE).
    pub fn set_device_verbosity(&self, verbose: i32) {
        for d in self.devices.get().into_iter().flatten() {
            d.set_verbosity(verbose);
        }
    }

    /// Asks the guest through vmmci to shut down or reboot.
    pub fn vmmci_command(&self, cmd: VmmciCommand) -> Result<(), VmmciError> {
        match self.vmmci.get() {
            Some(v) => lock(v).vmmci_command(cmd),
            None => Err(VmmciError::NotReady),
        }
    }

    /// The device processes' pids, in PCI order.
    pub fn device_pids(&self) -> Vec<u32> {
        self.devices
            .get()
            .into_iter()
            .flatten()
            .map(DeviceHandle::pid)
            .collect()
    }

    /// Tells every device process to exit and reaps it.
    pub fn shutdown_devices(&self) {
        for d in self.devices.get().into_iter().flatten() {
            d.shutdown(Duration::from_secs(2));
        }
    }
}

/// A guest ready to run.
pub struct Machine {
    pub name: String,
    pub mem: GuestMemory,
    pub map: Vec<Range>,
    bus: Arc<PortBus>,
    pc: Arc<PcInterrupts>,
    rtc: Arc<Mutex<Rtc>>,
    uart: Arc<Mutex<Uart>>,
    vmmci: Arc<Mutex<VirtioPci<Vmmci>>>,
    vmmci_deadline: Deadline,
    control: MachineControl,
    console_input: Option<OwnedFd>,
    fw_cfg: Arc<Mutex<FwCfg>>,
    /// The start state an ELF kernel needs; a BIOS starts at the reset
    /// vector.
    kernel_state: Option<VcpuRegState>,
}

impl Machine {
    /// Builds the guest's memory and devices and loads the BIOS.
    pub fn new(config: MachineConfig) -> Result<Machine, MachineError> {
        let map = memory_layout::memory_map(config.memory)?;
        let mem = GuestMemory::new_anonymous(&memory_layout::backed_ranges(&map))?;
        Machine::with_memory(config, map, mem)
    }

    /// As [`Machine::new`], with memory the caller made (e.g. to share its
    /// file descriptors with device processes first).
    pub fn with_memory(
        config: MachineConfig,
        map: Vec<Range>,
        mem: GuestMemory,
    ) -> Result<Machine, MachineError> {
        // As vmd: an ELF kernel if it is one, else a BIOS image.
        let is_elf = config.bios.starts_with(b"\x7fELF") || config.bios.starts_with(&[0x1f, 0x8b]);
        let kernel_state = if is_elf {
            let loaded = elf::load_kernel(
                &mem,
                &config.bios[..],
                &elf::KernelBoot {
                    map: &map,
                    boot_mac: config.boot_mac,
                },
            )?;
            Some(loaded.regs)
        } else {
            bios::load_bios(&mem, &config.bios)?;
            None
        };
        let clock: Arc<dyn Clock> = Arc::new(HostClock::new());
        let bell = Arc::new(Doorbell::default());
        let control = MachineControl {
            requests: Arc::new(Requests::default()),
            bell: bell.clone(),
            vmmci: Arc::new(OnceLock::new()),
            devices: Arc::new(OnceLock::new()),
        };
        let pic = Arc::new(Mutex::new(Pic::new()));
        let pit = Arc::new(Mutex::new(Pit::new(clock.clone())));
        let line = |irq: u8| -> Irq { Arc::new(PicLine::new(pic.clone(), irq, bell.clone())) };

        let mut bus = PortBus::new();
        for (base, len) in PIC_PORTS {
            bus.insert(base, len, pic.clone())?;
        }
        for (base, len) in PIT_PORTS {
            bus.insert(base, len, pit.clone())?;
        }
        let (memlo, memhi) = cmos_memory_sizes(&map);
        let rtc = Arc::new(Mutex::new(Rtc::new(
            clock.clone(),
            line(RTC_IRQ),
            memlo,
            memhi,
        )));
        bus.insert(RTC_PORT, 2, rtc.clone())?;
        let uart = Arc::new(Mutex::new(Uart::new(config.console, line(COM1_IRQ))));
        bus.insert(COM1_PORT, 8, uart.clone())?;
        let fwlog = Arc::new(Mutex::new(FirmwareLog {
            line: Vec::new(),
            sink: config.firmware_log,
        }));
        bus.insert(FIRMWARE_LOG_PORT, 1, fwlog)?;

        // The PCI devices in the order of vmd's virtio_init.
        let mut pci = PciBus::new();
        vpci::attach(&mut pci, Rnd::new(), Layout::Modern, mem.clone(), line)?;
        let mut handles = Vec::new();
        // A device process on the bus: its failure stops the VM.
        let mut attach_process = |pci: &mut PciBus,
                                  device_type: u16,
                                  process: DeviceProcess|
         -> Result<u8, MachineError> {
            let stopper = control.clone();
            let on_failure = Arc::new(move |why: String| {
                log::warn!("{why}");
                stopper.stop(StopReason::DeviceFailed(why));
            });
            let mut failed = None;
            let id = vpci::add_function(pci, device_type, Layout::Modern, |irq| {
                match process.attach(line(irq), on_failure) {
                    Ok((regs, handle)) => {
                        handles.push(handle);
                        regs as SharedBarHandler
                    }
                    Err(e) => {
                        failed = Some(e);
                        Arc::new(Mutex::new(devices::pci::NoBar))
                    }
                }
            })?;
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(id),
            }
        };
        for nic in config.nics {
            attach_process(&mut pci, DEVICE_NETWORK, nic)?;
        }
        let mut first_disk = None;
        for disk in config.disks {
            let id = match disk {
                DiskDevice::Local(backend) => {
                    vpci::attach(
                        &mut pci,
                        Blk::new(backend),
                        Layout::Modern,
                        mem.clone(),
                        line,
                    )?
                    .0
                }
                DiskDevice::Process(process) => attach_process(&mut pci, DEVICE_BLOCK, *process)?,
            };
            first_disk.get_or_insert(id);
        }
        let cdrom = match config.cdrom {
            Some(process) => Some(attach_process(&mut pci, DEVICE_SCSI, process)?),
            None => None,
        };
        let _ = control.devices.set(handles);
        let vmmci_deadline = Deadline::default();
        let (_, vmmci) = vpci::attach(
            &mut pci,
            Vmmci::new(clock.clone(), Box::new(vmmci_deadline.clone())),
            Layout::Legacy,
            mem.clone(),
            line,
        )?;
        let _ = control.vmmci.set(vmmci.clone());

        // fw_cfg as vmd's fw_cfg_init: the memory map and the boot order.
        let e820: Vec<E820Entry> = map
            .iter()
            .filter(|r| r.kind != RangeKind::Mmio)
            .map(|r| E820Entry {
                addr: r.gpa,
                size: r.size,
                kind: if r.kind == RangeKind::Ram {
                    BIOS_MAP_FREE
                } else {
                    BIOS_MAP_RES
                },
            })
            .collect();
        let bootorder = match (config.boot_device, first_disk) {
            (BootDevice::Disk, Some(id)) => Some(format!("/pci@i0cf8/*@{id}\nHALT")),
            (BootDevice::Net, _) => Some("HALT".to_string()),
            (BootDevice::Cdrom, _) => {
                cdrom.map(|id| format!("/pci@i0cf8/*@{id}/*@0/*@0,40000100\nHALT"))
            }
            _ => None,
        };
        let fw_cfg = Arc::new(Mutex::new(FwCfg::with_vmd_files(
            mem.clone(),
            &e820,
            bootorder.as_deref(),
        )));
        bus.insert(FW_CFG_IO_SELECT, 2, fw_cfg.clone())?;
        bus.insert(FW_CFG_IO_DMA_ADDR_HIGH, 8, fw_cfg.clone())?;
        let pci = Arc::new(Mutex::new(pci));
        bus.insert(PCI_CONFIG_PORT, 8, pci.clone())?;
        bus.set_fallback(pci);

        let pc = Arc::new(PcInterrupts::new(pic, pit, clock, bell));
        Ok(Machine {
            name: config.name,
            mem,
            map,
            bus: Arc::new(bus),
            pc,
            rtc,
            uart,
            vmmci,
            vmmci_deadline,
            control,
            console_input: config.console_input,
            fw_cfg,
            kernel_state,
        })
    }

    pub fn control(&self) -> MachineControl {
        self.control.clone()
    }

    /// SMBIOS tables as OpenBSD's vmm firmware builds them, for the
    /// firmware to copy (see devices/src/smbios.rs). They need the vcpu's
    /// CPUID, so they are added when it first runs; the firmware reads
    /// fw_cfg only after that.
    fn offer_smbios(&self, (cpu_signature, cpu_features): (u32, u32)) {
        let (ram_below_4g, ram_above_4g) = SmbiosMachine::ram_from_e820(
            self.map
                .iter()
                .map(|r| (r.gpa, r.size, r.kind == RangeKind::Ram)),
        );
        let files = SmbiosFiles::build(&SmbiosMachine {
            cpu_signature,
            cpu_features,
            vcpus: 1,
            ram_below_4g,
            ram_above_4g,
        });
        let mut fw_cfg = lock(&self.fw_cfg);
        // A restarted guest finds them there already.
        let _ = fw_cfg.add_file(devices::smbios::TABLES_FILE, files.tables);
        let _ = fw_cfg.add_file(devices::smbios::ANCHOR_FILE, files.anchor);
    }

    /// The port bus, for tests and benchmarks that drive devices directly.
    pub fn bus(&self) -> &PortBus {
        &self.bus
    }

    /// Runs `vcpu` (already created on this machine's memory) from the
    /// BIOS reset vector until the guest stops. Call it on the thread that
    /// is to run the vcpu.
    pub fn run(&mut self, vcpu: &mut dyn Vcpu) -> Result<StopReason, MachineError> {
        match &self.kernel_state {
            Some(regs) => vcpu.set_reg_state(regs)?,
            None => vcpu.set_real_mode_entry(RESET_SEGMENT, RESET_IP)?,
        }
        let kick = vcpu.bind_to_current_thread()?;
        self.pc.bell.set_kick(kick);
        self.offer_smbios(vcpu.cpuid_leaf1());

        let done = Arc::new(AtomicBool::new(false));
        let timer = {
            let pc = self.pc.clone();
            let rtc = self.rtc.clone();
            let deadline = self.vmmci_deadline.clone();
            let vmmci = self.vmmci.clone();
            let control = self.control();
            let done = done.clone();
            thread::Builder::new()
                .name("timer".into())
                .spawn(move || timer_loop(&pc, &rtc, &deadline, &vmmci, &control, &done))
                .map_err(|e| MachineError::Thread("timer", e))?
        };
        if let Some(fd) = self.console_input.take() {
            let uart = self.uart.clone();
            let done = done.clone();
            thread::Builder::new()
                .name("console".into())
                .spawn(move || console_loop(fd, &uart, &done))
                .map_err(|e| MachineError::Thread("console", e))?;
        }

        let irqs = MachineInterrupts {
            pc: self.pc.clone(),
            requests: self.control.requests.clone(),
        };
        let result = vcpu::run(vcpu, &self.bus, &irqs);
        done.store(true, Ordering::Release);
        let _ = timer.join();
        Ok(result?)
    }
}

/// RAM between 16 MiB and the PCI hole, and RAM above 4 GiB, as vmd
/// passes them to the RTC's NVRAM.
fn cmos_memory_sizes(map: &[Range]) -> (u64, u64) {
    let mut lo = 0;
    let mut hi = 0;
    for r in map.iter().filter(|r| r.kind == RangeKind::Ram) {
        if r.gpa >= 4 * GB {
            hi += r.size;
        } else {
            let end = r.gpa + r.size;
            lo += end.saturating_sub(r.gpa.max(16 * MB));
        }
    }
    (lo, hi)
}

fn timer_loop(
    pc: &PcInterrupts,
    rtc: &Mutex<Rtc>,
    vmmci_deadline: &Deadline,
    vmmci: &Mutex<VirtioPci<Vmmci>>,
    control: &MachineControl,
    done: &AtomicBool,
) {
    while !done.load(Ordering::Acquire) {
        let now = pc.clock.monotonic();
        let next = [lock(&pc.pit).next_irq0(), lock(rtc).next_event()]
            .into_iter()
            .flatten()
            .min()
            .map_or(TIMER_SLICE, |t| t.saturating_sub(now).min(TIMER_SLICE));
        thread::sleep(next);
        lock(rtc).poll();
        if vmmci_deadline.take_expired() {
            let how = lock(vmmci).vmmci_timeout();
            control.stop(match how {
                VmStop::Shutdown => StopReason::Shutdown,
                VmStop::Reboot => StopReason::Reboot,
            });
        }
        if pc.has_pending() {
            pc.bell.ring();
        }
    }
}

/// Feeds COM1 from `fd`, never faster than the guest drains the FIFO, so
/// nothing typed is lost. Works with blocking and non-blocking fds.
fn console_loop(fd: OwnedFd, uart: &Mutex<Uart>, done: &AtomicBool) {
    use std::os::fd::AsRawFd;
    let mut input = std::fs::File::from(fd);
    let mut buf = [0u8; 256];
    while !done.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd {
            fd: input.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd; the timeout lets the loop see
        // `done`.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        let n = match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                ) =>
            {
                continue
            }
            Err(e) => {
                // A pty whose other side is closed reads EIO until
                // someone opens it again: wait rather than give up.
                if e.raw_os_error() == Some(libc::EIO) {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
                log::warn!("console: {e}");
                return;
            }
        };
        let mut sent = 0;
        while sent < n && !done.load(Ordering::Acquire) {
            sent += lock(uart).push_rx(&buf[sent..n]);
            if sent < n {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
