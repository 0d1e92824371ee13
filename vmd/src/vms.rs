//! The parent's table of VMs, as vmd.c's `vmd_vms`: VMs from vm.conf and
//! VMs started by vmctl, their ids, owners and states, and what it takes
//! to start one (config.c's config_setvm): the boot image, the disk images
//! with their backing chains and the console pty, opened here, where the
//! privileges are, and passed to the vmm process.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use devices::disk::{ImageFormat, Qcow2Image};
use vm::abi::vmd_vm::{VM_STATE_DISABLED, VM_STATE_PAUSED, VM_STATE_RUNNING};
use vm::abi::vmop::{
    VmopCreateParams, VmopInfoResult, VMDF_QCOW2, VMDF_RAW, VMIFF_LOCAL, VMIFF_LOCKED, VMIFF_UP,
    VMOP_CREATE_INSTANCE,
};
use vm::abi::{VM_MAX_BASE_PER_DISK, VM_MAX_DISKS_PER_VM, VM_MAX_NICS_PER_VM};
use vmm_sys::wire::{c_str, c_string};
use vmm_sys::Wire;

use crate::config::instance::{self, InstanceError, Membership};
use crate::config::model::{
    Config, DiskConfig, DiskFormat, InterfaceConfig, Owner, VmConfig, VM_DEFAULT_MEMORY,
};
use crate::host_ifs::{iface_ops, switch_ops, HostOp, Switch};

/// vmd.h: start errors vmctl explains beyond errno values.
pub const VMD_BIOS_MISSING: i32 = 1001;
pub const VMD_DISK_MISSING: i32 = 1002;
pub const VMD_CDROM_MISSING: i32 = 1005;
pub const VMD_CDROM_INVALID: i32 = 1006;
pub const VMD_PARENT_INVALID: i32 = 1007;

/// vmd's default firmware, and where Debian keeps SeaBIOS.
pub const VM_DEFAULT_BIOS: &str = "/etc/firmware/vmm-bios";
pub const SEABIOS_PATHS: [&str; 2] = ["/usr/share/seabios/bios.bin", "/usr/share/qemu/bios.bin"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Stopped,
    Starting,
    Running,
    Paused,
}

/// One network interface of a VM, from vm.conf or vmctl.
#[derive(Clone, Debug, Default)]
pub struct Iface {
    /// The tap's name, if vm.conf gives one.
    pub ifname: Option<String>,
    pub lladdr: Option<[u8; 6]>,
    pub locked: bool,
    pub local: bool,
    /// The switch it joins, by name: looked up when the VM starts.
    pub switch: Option<String>,
    pub group: Option<String>,
    pub rdomain: Option<u32>,
    /// `up` (the default) or `down`.
    pub up: bool,
}

#[derive(Debug)]
pub struct Vm {
    pub id: u32,
    pub name: String,
    pub from_config: bool,
    pub disabled: bool,
    pub memory: u64,
    pub boot: Option<PathBuf>,
    /// A boot image vmctl passed as an open file.
    pub boot_fd: Option<OwnedFd>,
    pub disks: Vec<(PathBuf, ImageFormat)>,
    pub ifaces: Vec<Iface>,
    pub cdrom: Option<PathBuf>,
    /// `boot device` or vmctl -B, as VMBOOTDEV_*.
    pub boot_device: u32,
    pub uid: u32,
    pub gid: Option<u32>,
    /// The definition this VM was made from (vm.conf, or an instance of
    /// one), which instances of it inherit.
    pub def: Option<VmConfig>,
    pub state: State,
    pub pid: i32,
    pub tty: String,
    /// The control connection waiting for the start result.
    pub start_peer: Option<u32>,
}

impl Vm {
    fn from_config(id: u32, c: &VmConfig, switches: &[Switch]) -> Vm {
        Vm {
            id,
            name: c.name.clone(),
            from_config: true,
            disabled: c.disabled,
            memory: c.memory.unwrap_or(VM_DEFAULT_MEMORY),
            boot: c.boot.as_ref().map(PathBuf::from),
            boot_fd: None,
            disks: c
                .disks
                .iter()
                .map(|d| {
                    let f = match d.format {
                        DiskFormat::Raw => ImageFormat::Raw,
                        DiskFormat::Qcow2 => ImageFormat::Qcow2,
                    };
                    (PathBuf::from(&d.path), f)
                })
                .collect(),
            ifaces: c
                .interfaces
                .iter()
                .map(|i| {
                    // A switch member takes the switch's `locked lladdr`
                    // (vm_register's VMIFF_OPTMASK).
                    let switch = i
                        .switch
                        .as_ref()
                        .and_then(|name| switches.iter().find(|s| &s.config.name == name));
                    Iface {
                        ifname: i.ifname.clone(),
                        lladdr: i.lladdr,
                        locked: i.locked || switch.is_some_and(|s| s.config.locked_lladdr),
                        local: i.local,
                        switch: i.switch.clone(),
                        group: i.group.clone(),
                        rdomain: i.rdomain,
                        up: i.up,
                    }
                })
                .collect(),
            cdrom: c.cdrom.as_ref().map(PathBuf::from),
            boot_device: c.boot_device.wire_value(),
            uid: c.owner.uid,
            gid: c.owner.gid,
            def: Some(c.clone()),
            state: State::Stopped,
            pid: 0,
            tty: String::new(),
            start_peer: None,
        }
    }

    /// `vir_state`: what vmctl shows, and (the disabled bit, which stays
    /// while a disabled VM runs, as in vmd) what agentx reports as
    /// vmAutoStart.
    pub fn state_bits(&self) -> u32 {
        let disabled = if self.disabled { VM_STATE_DISABLED } else { 0 };
        disabled
            | match self.state {
                State::Running | State::Starting => VM_STATE_RUNNING,
                State::Paused => VM_STATE_RUNNING | VM_STATE_PAUSED,
                State::Stopped => 0,
            }
    }

    pub fn is_running(&self) -> bool {
        self.state != State::Stopped
    }

    /// May `uid` start, stop, pause or attach to this VM (vm_checkperm)?
    pub fn permits(&self, uid: u32, groups: &dyn Fn(u32, u32) -> bool) -> bool {
        uid == 0 || (self.uid != 0 && self.uid == uid) || self.gid.is_some_and(|g| groups(uid, g))
    }

    /// What vmctl status lists for a VM that is not running.
    pub fn info(&self) -> VmopInfoResult {
        let mut r = VmopInfoResult::zeroed();
        r.vir_info.vir_memory_size = self.memory;
        r.vir_info.vir_ncpus = 1;
        r.vir_info.vir_id = self.id;
        r.vir_info.vir_name = c_string(&self.name).unwrap_or([0; 64]);
        r.vir_uid = self.uid;
        r.vir_gid = self.gid.map_or(-1, i64::from);
        r.vir_state = self.state_bits();
        r
    }

    /// Fills in what only the parent knows about a running VM.
    pub fn complete_info(&self, r: &mut VmopInfoResult) {
        r.vir_ttyname = c_string(&self.tty).unwrap_or([0; 16]);
        r.vir_uid = self.uid;
        r.vir_gid = self.gid.map_or(-1, i64::from);
        r.vir_state = self.state_bits();
    }
}

/// Why a VM could not be started; the errno goes back to vmctl.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("vm already running")]
    AlreadyRunning,
    #[error("permission denied")]
    Permission,
    #[error("invalid start request: {0}")]
    Invalid(String),
    #[error("boot image {path}: {source}")]
    BiosMissing {
        path: String,
        source: std::io::Error,
    },
    #[error("disk image {path}: {source}")]
    DiskMissing {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Disk(#[from] devices::disk::DiskError),
    #[error("could not open a console: {0}")]
    Tty(std::io::Error),
    #[error("could not open a tap: {0}")]
    Tap(std::io::Error),
    #[error("cdrom image {path}: {source}")]
    CdromMissing {
        path: String,
        source: std::io::Error,
    },
    #[error("cdrom image {0} is not a regular file")]
    CdromInvalid(String),
    #[error("no vm \"{0}\" to make an instance of")]
    ParentInvalid(String),
    #[error("vm \"{0}\" already exists")]
    NameTaken(String),
    #[error("{0}")]
    Instance(#[from] InstanceError),
}

impl StartError {
    pub fn errno(&self) -> i32 {
        match self {
            StartError::AlreadyRunning => libc::EALREADY,
            StartError::Permission => libc::EPERM,
            StartError::Invalid(_) => libc::EINVAL,
            StartError::BiosMissing { .. } => VMD_BIOS_MISSING,
            StartError::CdromMissing { .. } => VMD_CDROM_MISSING,
            StartError::CdromInvalid(_) => VMD_CDROM_INVALID,
            StartError::ParentInvalid(_) => VMD_PARENT_INVALID,
            StartError::NameTaken(_) => crate::sys::ENAME_TAKEN,
            // vmd's answers, ENAMETOOLONG included, so vmctl says the same.
            StartError::Instance(InstanceError::NotAllowed(_)) => libc::ENAMETOOLONG,
            StartError::Instance(
                InstanceError::DiskReused(..)
                | InstanceError::LladdrReused(_)
                | InstanceError::InterfaceReused(..),
            ) => libc::EBUSY,
            StartError::Instance(_) => libc::EPERM,
            StartError::DiskMissing { .. } | StartError::Disk(_) => VMD_DISK_MISSING,
            StartError::Tty(source) | StartError::Tap(source) => {
                source.raw_os_error().unwrap_or(libc::EIO)
            }
        }
    }
}

/// Everything the vmm process gets to start a VM.
pub struct StartPlan {
    pub params: VmopCreateParams,
    pub boot: OwnedFd,
    /// Per disk, the image then its backing chain.
    pub disks: Vec<Vec<OwnedFd>>,
    /// Per interface, the tap.
    pub taps: Vec<OwnedFd>,
    /// The CD-ROM image, read-only.
    pub cdrom: Option<OwnedFd>,
    /// Host-side set-up for the priv process.
    pub host_ops: Vec<HostOp>,
    pub tty: OwnedFd,
}

#[derive(Default)]
pub struct VmTable {
    pub vms: Vec<Vm>,
    next_id: u32,
    /// `local prefix`, where local interfaces take their addresses.
    pub prefix: devices::dhcp::LocalPrefix,
    /// The switches VMs may join; `vmctl reset switches` empties it and
    /// a reload or load adds the ones it does not have.
    pub switches: Vec<Switch>,
}

impl VmTable {
    pub fn from_config(config: &Config) -> VmTable {
        let mut t = VmTable::default();
        if let Some(p) = config.globals.local_prefix {
            let mask = if p.len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(p.len.min(32)))
            };
            t.prefix = devices::dhcp::LocalPrefix {
                addr: p.addr,
                mask: std::net::Ipv4Addr::from(mask),
            };
        }
        t.add_switches(config);
        for c in config.vms.iter().filter(|c| c.parent.is_none()) {
            let id = t.alloc_id();
            t.vms.push(Vm::from_config(id, c, &t.switches));
        }
        // Instances after the VMs they may name, in file order; vm.conf is
        // root's, so only the sharing rules apply.
        for c in config.vms.iter().filter(|c| c.parent.is_some()) {
            if let Err(e) = t.add_instance(c, 0, &|_, _| false, true) {
                log::warn!("vm \"{}\": {e}", c.name);
            }
        }
        t
    }

    /// Registers `child`, an instance of the VM its `parent` names, for
    /// the user `uid` (vm_instance and vm_register).
    fn add_instance(
        &mut self,
        child: &VmConfig,
        uid: u32,
        groups: &dyn Fn(u32, u32) -> bool,
        from_config: bool,
    ) -> Result<u32, StartError> {
        let groups = GroupsFn(groups);
        let groups: &dyn Membership = &groups;
        let parent_name = child.parent.clone().unwrap_or_default();
        let parent = self
            .vms
            .iter()
            .find(|v| v.name == parent_name)
            .and_then(|v| v.def.clone())
            .ok_or_else(|| StartError::ParentInvalid(parent_name.clone()))?;
        if !instance::owner_allows(parent.allow_instance.owner.as_ref(), uid, groups) {
            return Err(InstanceError::NotAllowed(parent.name).into());
        }
        if self.vms.iter().any(|v| v.name == child.name) {
            return Err(StartError::NameTaken(child.name.clone()));
        }
        let vm = instance::instantiate(&parent, child, uid, groups)?;
        let id = self.alloc_id();
        let mut new = Vm::from_config(id, &vm, &self.switches);
        new.from_config = from_config;
        self.vms.push(new);
        Ok(id)
    }

    /// Takes in the switches of `config` that are not known by name yet,
    /// numbered after the known ones; their bridges still need setting
    /// up (`switch_ops`).
    fn add_switches(&mut self, config: &Config) {
        for sw in &config.switches {
            if self.switches.iter().any(|s| s.config.name == sw.name) {
                continue;
            }
            let mut config = sw.clone();
            config.id = self.switches.len() as u32 + 1;
            self.switches.push(Switch {
                config,
                running: false,
            });
        }
    }

    /// The priv requests for switches whose bridges are not set up yet,
    /// which then count as set up.
    pub fn configure_switches(&mut self) -> Vec<HostOp> {
        let mut ops = Vec::new();
        for sw in self.switches.iter_mut().filter(|s| !s.running) {
            ops.extend(switch_ops(&sw.config));
            sw.running = true;
        }
        ops
    }

    /// Takes in a new configuration (reload, or load of another file):
    /// VMs that are not running get their new definition, new VMs are
    /// added, and with `replace` stopped VMs the file no longer has are
    /// forgotten. Running VMs are left alone. Returns the ids of enabled
    /// VMs that should start now.
    pub fn merge(&mut self, config: &Config, replace: bool) -> Vec<u32> {
        let fresh = VmTable::from_config(config);
        self.add_switches(config);
        if replace {
            self.vms.retain(|v| {
                v.is_running() || !v.from_config || config.vms.iter().any(|c| c.name == v.name)
            });
            self.prefix = fresh.prefix;
        }
        let mut start = Vec::new();
        for mut new in fresh.vms {
            match self.vms.iter_mut().find(|v| v.name == new.name) {
                Some(old) if old.is_running() => {}
                Some(old) => {
                    new.id = old.id;
                    *old = new;
                    if !old.disabled {
                        start.push(old.id);
                    }
                }
                None => {
                    new.id = self.alloc_id();
                    if !new.disabled {
                        start.push(new.id);
                    }
                    self.vms.push(new);
                }
            }
        }
        start
    }

    fn alloc_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// By id if `id` is not 0, else by name (vm_getbyid / vm_getbyname).
    pub fn find(&mut self, id: u32, name: &str) -> Option<&mut Vm> {
        if id != 0 {
            self.vms.iter_mut().find(|v| v.id == id)
        } else {
            self.vms.iter_mut().find(|v| v.name == name)
        }
    }

    /// Registers a start request from vmctl (vm_register): a VM from the
    /// configuration by name, or a new VM from the request's parameters.
    /// Returns the VM's id.
    pub fn register(
        &mut self,
        p: &VmopCreateParams,
        boot_fd: Option<OwnedFd>,
        uid: u32,
        groups: &dyn Fn(u32, u32) -> bool,
    ) -> Result<u32, StartError> {
        let name = String::from_utf8_lossy(c_str(&p.vmc_name)).into_owned();
        if name.is_empty() {
            return Err(StartError::Invalid("no vm name".into()));
        }
        if p.vmc_flags & VMOP_CREATE_INSTANCE != 0 && !c_str(&p.vmc_instance).is_empty() {
            let child = instance_request(p, name, uid, boot_fd.is_some())?;
            let id = self.add_instance(&child, uid, groups, false)?;
            if let Some(vm) = self.vms.iter_mut().find(|v| v.id == id) {
                if boot_fd.is_some() {
                    vm.boot_fd = boot_fd;
                }
            }
            return Ok(id);
        }
        if let Some(vm) = self.vms.iter_mut().find(|v| v.name == name) {
            if vm.is_running() {
                return Err(StartError::AlreadyRunning);
            }
            if !vm.permits(uid, groups) {
                return Err(StartError::Permission);
            }
            if boot_fd.is_some() {
                vm.boot_fd = boot_fd;
            }
            if p.vmc_memranges[0].vmr_size != 0 {
                vm.memory = p.vmc_memranges[0].vmr_size;
            }
            return Ok(vm.id);
        }
        let ndisks = usize::try_from(p.vmc_ndisks).unwrap_or(usize::MAX);
        if ndisks > VM_MAX_DISKS_PER_VM {
            return Err(StartError::Invalid(format!("{ndisks} disks")));
        }
        let mut disks = Vec::with_capacity(ndisks);
        for i in 0..ndisks {
            let path = String::from_utf8_lossy(c_str(&p.vmc_disks[i])).into_owned();
            let format = match p.vmc_disktypes[i] {
                VMDF_QCOW2 => ImageFormat::Qcow2,
                VMDF_RAW => ImageFormat::Raw,
                t => return Err(StartError::Invalid(format!("disk type {t}"))),
            };
            disks.push((PathBuf::from(path), format));
        }
        let memory = match p.vmc_memranges[0].vmr_size {
            0 => VM_DEFAULT_MEMORY,
            m => m,
        };
        let id = self.alloc_id();
        self.vms.push(Vm {
            id,
            name,
            from_config: false,
            disabled: false,
            memory,
            boot: None,
            boot_fd,
            disks,
            ifaces: (0..usize::try_from(p.vmc_nnics)
                .unwrap_or(0)
                .min(VM_MAX_NICS_PER_VM))
                .map(|i| Iface {
                    local: p.vmc_ifflags[i] & VMIFF_LOCAL != 0,
                    switch: Some(String::from_utf8_lossy(c_str(&p.vmc_ifswitch[i])).into_owned())
                        .filter(|s| !s.is_empty()),
                    up: true,
                    ..Default::default()
                })
                .collect(),
            cdrom: Some(PathBuf::from(
                String::from_utf8_lossy(c_str(&p.vmc_cdrom)).into_owned(),
            ))
            .filter(|p| !p.as_os_str().is_empty()),
            boot_device: p.vmc_bootdevice,
            uid,
            gid: None,
            def: None,
            state: State::Stopped,
            pid: 0,
            tty: String::new(),
            start_peer: None,
        });
        Ok(id)
    }

    /// Opens what VM `id` needs to run (config_setvm).
    pub fn plan_start(&mut self, id: u32) -> Result<StartPlan, StartError> {
        let vm = self
            .vms
            .iter_mut()
            .find(|v| v.id == id)
            .ok_or_else(|| StartError::Invalid(format!("no vm {id}")))?;
        let boot = match vm.boot_fd.take() {
            Some(fd) => fd,
            None => {
                let path = boot_image(vm.boot.as_deref());
                OwnedFd::from(File::open(&path).map_err(|source| StartError::BiosMissing {
                    path: path.display().to_string(),
                    source,
                })?)
            }
        };
        let mut params = VmopCreateParams::zeroed();
        params.vmc_name = c_string(&vm.name)
            .ok_or_else(|| StartError::Invalid(format!("vm name {} too long", vm.name)))?;
        params.vmc_ncpus = 1;
        params.vmc_bootdevice = vm.boot_device;
        params.vmc_nmemranges = 1;
        params.vmc_memranges[0].vmr_size = vm.memory;
        params.vmc_owner.uid = vm.uid;
        params.vmc_owner.gid = vm.gid.map_or(-1, i64::from);
        params.vmc_ndisks = vm.disks.len() as u64;
        let mut disks = Vec::with_capacity(vm.disks.len());
        for (i, (path, format)) in vm.disks.iter().enumerate() {
            let chain = match format {
                ImageFormat::Raw => vec![path.clone()],
                ImageFormat::Qcow2 => Qcow2Image::chain_paths(path)?,
            };
            if chain.len() > VM_MAX_BASE_PER_DISK {
                return Err(StartError::Invalid(format!(
                    "{}: more than {VM_MAX_BASE_PER_DISK} images in the chain",
                    path.display()
                )));
            }
            let mut fds = Vec::with_capacity(chain.len());
            for (j, image) in chain.iter().enumerate() {
                // Only the top image is written to.
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(j == 0)
                    .open(image)
                    .map_err(|source| StartError::DiskMissing {
                        path: image.display().to_string(),
                        source,
                    })?;
                fds.push(OwnedFd::from(f));
            }
            params.vmc_disks[i] = c_string(&path.to_string_lossy()).ok_or_else(|| {
                StartError::Invalid(format!("disk path {} too long", path.display()))
            })?;
            params.vmc_disktypes[i] = match format {
                ImageFormat::Raw => VMDF_RAW,
                ImageFormat::Qcow2 => VMDF_QCOW2,
            };
            params.vmc_diskbases[i] = fds.len() as u32;
            disks.push(fds);
        }
        let mut taps = Vec::with_capacity(vm.ifaces.len());
        let mut host_ops = Vec::new();
        params.vmc_nnics = vm.ifaces.len() as u64;
        for (i, iface) in vm.ifaces.iter().enumerate().take(VM_MAX_NICS_PER_VM) {
            let (fd, tap) = crate::sys::open_tap(iface.ifname.as_deref().unwrap_or("tap%d"))
                .map_err(StartError::Tap)?;
            let mac = iface.lladdr.unwrap_or_else(|| random_mac(vm.id, i));
            params.vmc_macs[i] = mac;
            params.vmc_ifflags[i] = if iface.up { VMIFF_UP } else { 0 }
                | if iface.locked { VMIFF_LOCKED } else { 0 }
                | if iface.local { VMIFF_LOCAL } else { 0 };
            params.vmc_ifnames[i] = c_string(&tap).unwrap_or([0; 16]);
            let host = if iface.local {
                Some(
                    devices::dhcp::local_address(&self.prefix, vm.id, i as u32, false).ok_or_else(
                        || StartError::Invalid(format!("no local address for vm {} if {i}", vm.id)),
                    )?,
                )
            } else {
                None
            };
            host_ops.extend(iface_ops(
                vm.id,
                &vm.name,
                i,
                &tap,
                iface,
                &self.switches,
                host,
            ));
            taps.push(fd);
        }
        let cdrom = match &vm.cdrom {
            Some(path) => {
                let f = File::open(path).map_err(|source| StartError::CdromMissing {
                    path: path.display().to_string(),
                    source,
                })?;
                if !f.metadata().is_ok_and(|m| m.is_file()) {
                    return Err(StartError::CdromInvalid(path.display().to_string()));
                }
                params.vmc_cdrom = c_string(&path.to_string_lossy()).ok_or_else(|| {
                    StartError::Invalid(format!("cdrom path {} too long", path.display()))
                })?;
                Some(OwnedFd::from(f))
            }
            None => None,
        };
        let (tty, name) = open_pty(vm.uid).map_err(StartError::Tty)?;
        vm.tty = name;
        Ok(StartPlan {
            params,
            boot,
            disks,
            taps,
            cdrom,
            host_ops,
            tty,
        })
    }
}

/// A locally administered MAC for an interface vm.conf gives none, as
/// vmd makes them: ether_fakeaddr's fe:e1:ba:d0 moved on by one (fe:e1:bb),
/// the interface number in the low nibble of the fourth byte, and two
/// random bytes.
fn random_mac(vmid: u32, idx: usize) -> [u8; 6] {
    let mut r = [0u8; 2];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut r))
        .is_err()
    {
        r = [vmid as u8, idx as u8];
    }
    [
        0xfe,
        0xe1,
        0xba + 1,
        0xd0 | ((idx + 1) & 0xf) as u8,
        r[0],
        r[1],
    ]
}

/// The boot image: the configured one, else vmd's default firmware, else
/// the host's SeaBIOS (Linux hosts have no /etc/firmware/vmm-bios).
fn boot_image(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    std::iter::once(VM_DEFAULT_BIOS)
        .chain(SEABIOS_PATHS)
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(VM_DEFAULT_BIOS))
}

/// A new pty for a VM's console (vm_opentty): the master for the vm
/// process, the terminal's name for `vmctl console`, owned by `uid`.
fn open_pty(uid: u32) -> std::io::Result<(OwnedFd, String)> {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: openpty writes two new fds and a NUL-terminated name into a
    // buffer far larger than any pty name.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            buf.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds are new and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    // The console user opens the terminal by name; vmd keeps no slave.
    drop(slave);
    // SAFETY: openpty NUL-terminated buf.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: fcntl on our new fd.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    let cname = std::ffi::CString::new(name.clone()).map_err(std::io::Error::other)?;
    // SAFETY: chown/chmod of the terminal device by path.
    unsafe {
        if uid != 0 {
            libc::chown(cname.as_ptr(), uid, u32::MAX);
        }
        libc::chmod(cname.as_ptr(), 0o620);
    }
    Ok((master, name))
}

/// `Membership` over the parent's group lookup.
struct GroupsFn<'a>(&'a dyn Fn(u32, u32) -> bool);

impl Membership for GroupsFn<'_> {
    fn in_group(&self, uid: u32, gid: u32) -> bool {
        (self.0)(uid, gid)
    }
}

/// What `vmctl start -t parent` asks for, as an instance definition:
/// only what the request sets, so the rest is inherited.
fn instance_request(
    p: &VmopCreateParams,
    name: String,
    uid: u32,
    has_boot: bool,
) -> Result<VmConfig, StartError> {
    let text = |b: &[u8]| String::from_utf8_lossy(c_str(b)).into_owned();
    let ndisks = usize::try_from(p.vmc_ndisks).unwrap_or(usize::MAX);
    let nnics = usize::try_from(p.vmc_nnics).unwrap_or(usize::MAX);
    if ndisks > VM_MAX_DISKS_PER_VM {
        return Err(StartError::Invalid(format!("{ndisks} disks")));
    }
    if nnics > VM_MAX_NICS_PER_VM {
        return Err(StartError::Invalid(format!("{nnics} interfaces")));
    }
    let mut disks = Vec::with_capacity(ndisks);
    for i in 0..ndisks {
        let format = match p.vmc_disktypes[i] {
            VMDF_QCOW2 => DiskFormat::Qcow2,
            VMDF_RAW => DiskFormat::Raw,
            t => return Err(StartError::Invalid(format!("disk type {t}"))),
        };
        disks.push(DiskConfig {
            path: text(&p.vmc_disks[i]),
            format,
        });
    }
    let interfaces = (0..nnics)
        .map(|i| {
            let flags = p.vmc_ifflags[i];
            let opt = |s: String| Some(s).filter(|s| !s.is_empty());
            InterfaceConfig {
                ifname: opt(text(&p.vmc_ifnames[i])),
                switch: opt(text(&p.vmc_ifswitch[i])),
                group: opt(text(&p.vmc_ifgroup[i])),
                lladdr: Some(p.vmc_macs[i]).filter(|m| *m != [0; 6]),
                locked: flags & VMIFF_LOCKED != 0,
                local: flags & VMIFF_LOCAL != 0,
                ..Default::default()
            }
        })
        .collect();
    let memory = p.vmc_memranges[0].vmr_size;
    let cdrom = text(&p.vmc_cdrom);
    Ok(VmConfig {
        name,
        parent: Some(text(&p.vmc_instance)),
        memory: (memory != 0).then_some(memory),
        disks,
        interfaces,
        // A boot image comes as an fd; the path only marks that one is set.
        boot: has_boot.then(|| String::from("-")),
        cdrom: (!cdrom.is_empty()).then_some(cdrom),
        owner: Owner {
            uid,
            gid: u32::try_from(p.vmc_owner.gid).ok(),
        },
        ..Default::default()
    })
}
