//! The typed configuration that vm.conf(5) describes.
//!
//! Field limits are the C vmd's (vmd.h, dev/vmm/vmm.h); the parser enforces
//! them, so every value held here is already valid.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest VM name plus its NUL (VMM_MAX_NAME_LEN).
pub const VMM_MAX_NAME_LEN: usize = 64;
/// Longest switch name plus its NUL (VM_NAME_MAX).
pub const VM_NAME_MAX: usize = 64;
/// Disks per VM (VM_MAX_DISKS_PER_VM).
pub const VM_MAX_DISKS_PER_VM: usize = 4;
/// Base images per disk chain (VM_MAX_BASE_PER_DISK).
pub const VM_MAX_BASE_PER_DISK: usize = 4;
/// Network interfaces per VM (VM_MAX_NICS_PER_VM).
pub const VM_MAX_NICS_PER_VM: usize = 4;
/// Interface names plus their NUL (IF_NAMESIZE).
pub const IF_NAMESIZE: usize = 16;
/// Paths plus their NUL (PATH_MAX on OpenBSD).
pub const PATH_MAX: usize = 1024;
/// Highest routing domain (RT_TABLEID_MAX).
pub const RT_TABLEID_MAX: i64 = 255;
/// Smallest guest memory: 1 MiB.
pub const VM_MIN_MEMORY: i64 = 1024 * 1024;
/// Largest guest memory (VMM_MAX_VM_MEM_SIZE, 128 GiB in the 2025 tree).
pub const VMM_MAX_VM_MEM_SIZE: i64 = 128 * 1024 * 1024 * 1024;
/// Memory of a VM that does not say (VM_DEFAULT_MEMORY).
pub const VM_DEFAULT_MEMORY: u64 = 512 * 1024 * 1024;
/// sun_path of a sockaddr_un on OpenBSD, for the agentx socket path.
pub const SUN_PATH_LEN: usize = 104;
/// vacmContextName plus its NUL, for the agentx context.
pub const AGENTX_CONTEXT_LEN: usize = 33;
/// Where the agentx master listens when vm.conf does not say.
pub const AGENTX_MASTER_PATH: &str = "/var/agentx/master";
/// The local IPv4 prefix when vm.conf does not say (VMD_DHCP_PREFIX).
pub const VMD_DHCP_PREFIX: &str = "100.64.0.0/10";
/// The local IPv6 prefix when vm.conf does not say (VMD_ULA_PREFIX).
pub const VMD_ULA_PREFIX: &str = "fd00::/8";

/// Everything one vm.conf (with its includes) configures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub globals: Globals,
    /// Enabled switches, in file order. Disabled ones are dropped as vmd does.
    pub switches: Vec<SwitchConfig>,
    /// Every VM block, enabled or not, in file order.
    pub vms: Vec<VmConfig>,
}

/// The options outside any block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Globals {
    /// `local prefix`: the IPv4 prefix for `local interface` addresses.
    pub local_prefix: Option<Ipv4Prefix>,
    /// `local inet6`: give local interfaces IPv6 addresses too.
    pub local_inet6: bool,
    /// `local inet6 prefix`: the IPv6 prefix for them.
    pub local_prefix6: Option<Ipv6Prefix>,
    /// `socket owner`: who owns the control socket (uid, gid; gid 0 if unset).
    pub socket_owner: Option<(u32, u32)>,
    /// `agentx ...`: the SNMP AgentX subagent.
    pub agentx: Option<Agentx>,
    /// `staggered start parallel N delay S`.
    pub staggered_start: Option<StaggeredStart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Prefix {
    pub addr: Ipv6Addr,
    pub len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agentx {
    pub context: Option<String>,
    /// The master's socket; [`AGENTX_MASTER_PATH`] unless `path` was given.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaggeredStart {
    /// How many VMs start at once. vmd keeps the C `int`, so it is signed.
    pub parallel: i64,
    /// Seconds between batches.
    pub delay: i64,
}

/// A `switch` block: a bridge(4) or veb(4) that VM interfaces join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchConfig {
    /// 1-based, in the order the enabled switches appear.
    pub id: u32,
    pub name: String,
    /// The bridge interface, e.g. `bridge0` or `veb0`.
    pub ifname: String,
    pub group: Option<String>,
    pub rdomain: Option<u32>,
    /// `locked lladdr`, inherited by member interfaces.
    pub locked_lladdr: bool,
    /// `up` (default) or `down`.
    pub up: bool,
}

/// What the VM firmware boots first (`boot device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootDevice {
    #[default]
    Auto,
    Disk,
    Cdrom,
    Net,
}

impl BootDevice {
    /// The VMBOOTDEV_* number the C vmd uses on the wire.
    pub fn wire_value(self) -> u32 {
        match self {
            BootDevice::Auto => 0,
            BootDevice::Disk => 1,
            BootDevice::Cdrom => 2,
            BootDevice::Net => 3,
        }
    }
}

/// A disk image format (VMDF_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    pub fn wire_value(self) -> u32 {
        match self {
            DiskFormat::Raw => 1,
            DiskFormat::Qcow2 => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// Absolute, resolved path.
    pub path: String,
    /// Given by `format`, or guessed from the qcow2 magic, raw otherwise.
    pub format: DiskFormat,
}

/// One network interface of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// A fixed tap(4) interface, or none to take the next free one.
    pub ifname: Option<String>,
    pub switch: Option<String>,
    pub group: Option<String>,
    /// The guest MAC address; none means vmd picks a random one.
    pub lladdr: Option<[u8; 6]>,
    /// `locked lladdr`: the guest may send only from its own MAC.
    pub locked: bool,
    pub rdomain: Option<u32>,
    pub up: bool,
    /// `local interface`: vmd serves DHCP and routes for it.
    pub local: bool,
}

impl Default for InterfaceConfig {
    fn default() -> Self {
        InterfaceConfig {
            ifname: None,
            switch: None,
            group: None,
            lladdr: None,
            locked: false,
            rdomain: None,
            up: true,
            local: false,
        }
    }
}

/// `owner user[:group]`: a uid and an optional gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u32,
    pub gid: Option<u32>,
}

/// What `allow instance` lets the owner of an instance change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstancePolicy {
    pub boot: bool,
    pub memory: bool,
    pub interface: bool,
    pub disk: bool,
    pub cdrom: bool,
    pub instance: bool,
    /// `owner` inside `allow instance`: who may create instances.
    pub owner: Option<Owner>,
}

/// A `vm` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmConfig {
    pub name: String,
    /// `vm "parent" instance "name"`: the VM this one is an instance of.
    pub parent: Option<String>,
    pub disabled: bool,
    pub sev: bool,
    pub seves: bool,
    /// `boot`: the resolved kernel or BIOS image path.
    pub boot: Option<String>,
    pub boot_device: BootDevice,
    pub cdrom: Option<String>,
    pub disks: Vec<DiskConfig>,
    /// Configured interfaces, followed by plain ones up to `interfaces N`.
    pub interfaces: Vec<InterfaceConfig>,
    /// Bytes, rounded down to the MiB; none means [`VM_DEFAULT_MEMORY`].
    pub memory: Option<u64>,
    pub owner: Owner,
    pub allow_instance: InstancePolicy,
}
