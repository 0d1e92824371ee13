//! `vm "parent" instance "name"`: building an instance from its parent,
//! with the permission checks vmd makes when an instance is registered.
//!
//! Root may do anything. Anyone else must be the parent's `allow instance
//! owner` and may only set what `allow instance` lists; what the instance
//! does not set is inherited. Failures carry the C vmd's log wording.
//!
//! Two checks follow what vmd means rather than what vmd.c 1.x does: an
//! instance may not reuse any of its parent's MAC addresses (the C loop
//! compares against the wrong index), and an inherited `allow instance`
//! keeps its owner's uid (the C code copies the gid into it).

use super::model::{Owner, VmConfig};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    #[error("vm \"{0}\" no permission to create vm instance")]
    NotAllowed(String),
    #[error("vm \"{0}\" no permission to set memory")]
    Memory(String),
    #[error("vm \"{0}\" no permission to set disks")]
    Disks(String),
    #[error("vm \"{0}\" disk {1} cannot be reused")]
    DiskReused(String, String),
    #[error("vm \"{0}\" no permission to set interfaces")]
    Interfaces(String),
    #[error("vm \"{0}\" lladdr cannot be reused")]
    LladdrReused(String),
    /// vmd prints the interface where the VM name belongs; kept as it is.
    #[error("vm \"{1}\" {0} cannot be reused")]
    InterfaceReused(String, String),
    #[error("vm \"{0}\" no permission to set boot image")]
    Boot(String),
    #[error("vm \"{0}\" no permission to set cdrom")]
    Cdrom(String),
    #[error("vm \"{0}\" user mismatch")]
    User(String),
    #[error("vm \"{0}\" group mismatch")]
    Group(String),
    #[error("vm \"{0}\" cannot change instance permissions")]
    InstancePolicy(String),
}

/// Group membership, for owners given as `:group`.
pub trait Membership {
    /// True if `uid`'s primary group is `gid` or it is listed in `gid`.
    fn in_group(&self, uid: u32, gid: u32) -> bool;
}

/// vm_checkperm for a VM that is not running: may `uid` act as `owner`?
pub fn owner_allows(owner: Option<&Owner>, uid: u32, groups: &dyn Membership) -> bool {
    if uid == 0 {
        return true;
    }
    let Some(owner) = owner else { return false };
    owner.uid == uid || owner.gid.is_some_and(|gid| groups.in_group(uid, gid))
}

/// Builds the instance `child` of `parent` for the user `uid`.
///
/// `child.parent` should name `parent`; finding the parent by name is the
/// caller's business, as is refusing a name that is already taken.
pub fn instantiate(
    parent: &VmConfig,
    child: &VmConfig,
    uid: u32,
    groups: &dyn Membership,
) -> Result<VmConfig, InstanceError> {
    let policy = &parent.allow_instance;
    let name = child.name.clone();
    let may = |allowed: bool| uid == 0 || allowed;
    if !owner_allows(policy.owner.as_ref(), uid, groups) {
        return Err(InstanceError::NotAllowed(parent.name.clone()));
    }
    let mut vm = child.clone();
    vm.parent = None;

    vm.memory = vm.memory.or(parent.memory);
    if !may(policy.memory) && vm.memory != parent.memory {
        return Err(InstanceError::Memory(name));
    }

    // Disks are never inherited, and never shared with the parent.
    if !may(policy.disk) && !vm.disks.is_empty() {
        return Err(InstanceError::Disks(name));
    }
    if let Some(disk) = vm
        .disks
        .iter()
        .find(|d| parent.disks.iter().any(|p| p.path == d.path))
    {
        return Err(InstanceError::DiskReused(name, disk.path.clone()));
    }

    if !vm.interfaces.is_empty()
        && !may(policy.interface)
        && vm.interfaces.len() != parent.interfaces.len()
    {
        return Err(InstanceError::Interfaces(name));
    }
    let own = vm.interfaces.len();
    vm.interfaces
        .extend(parent.interfaces.iter().skip(own).cloned());
    for nic in &vm.interfaces[..own] {
        if nic.lladdr.is_some() && parent.interfaces.iter().any(|p| p.lladdr == nic.lladdr) {
            return Err(InstanceError::LladdrReused(name));
        }
        if let Some(ifname) = &nic.ifname {
            if parent
                .interfaces
                .iter()
                .any(|p| p.ifname.as_ref() == Some(ifname))
            {
                return Err(InstanceError::InterfaceReused(ifname.clone(), name));
            }
        }
    }

    // A parent with a boot image makes the boot image a permission too.
    if vm.boot.is_some() || parent.boot.is_some() {
        if !may(policy.boot) {
            return Err(InstanceError::Boot(name));
        }
        vm.boot = vm.boot.or_else(|| parent.boot.clone());
    }

    if vm.cdrom.is_some() {
        if !may(policy.cdrom) {
            return Err(InstanceError::Cdrom(name));
        }
    } else {
        vm.cdrom = parent.cdrom.clone();
    }

    if vm.owner.uid == 0 {
        vm.owner.uid = parent.owner.uid;
    } else if vm.owner.uid != uid && vm.owner.uid != parent.owner.uid {
        return Err(InstanceError::User(name));
    }
    // Only an explicit group 0 inherits; "no group" must match the parent's.
    if vm.owner.gid == Some(0) {
        vm.owner.gid = parent.owner.gid;
    } else if vm.owner.gid != parent.owner.gid {
        return Err(InstanceError::Group(name));
    }

    if vm.allow_instance != Default::default() {
        return Err(InstanceError::InstancePolicy(name));
    }
    // Instances of instances only where the parent allows it.
    if policy.instance {
        vm.allow_instance = *policy;
    }
    Ok(vm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{DiskConfig, DiskFormat, InstancePolicy, InterfaceConfig};

    struct NoGroups;
    impl Membership for NoGroups {
        fn in_group(&self, uid: u32, gid: u32) -> bool {
            uid == 1001 && gid == 50
        }
    }

    fn parent() -> VmConfig {
        VmConfig {
            name: "base".into(),
            memory: Some(1 << 30),
            disks: vec![DiskConfig {
                path: "/vm/base.img".into(),
                format: DiskFormat::Raw,
            }],
            interfaces: vec![InterfaceConfig {
                ifname: Some("tap5".into()),
                lladdr: Some([2, 0, 0, 0, 0, 1]),
                ..Default::default()
            }],
            cdrom: Some("/iso/install.iso".into()),
            owner: Owner {
                uid: 1000,
                gid: None,
            },
            allow_instance: InstancePolicy {
                memory: true,
                disk: true,
                owner: Some(Owner {
                    uid: 1000,
                    gid: Some(50),
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn child() -> VmConfig {
        VmConfig {
            name: "kid".into(),
            parent: Some("base".into()),
            ..Default::default()
        }
    }

    #[test]
    fn inherits_what_it_does_not_set() {
        let vm = instantiate(&parent(), &child(), 1000, &NoGroups).unwrap();
        assert_eq!(vm.memory, Some(1 << 30));
        assert!(vm.disks.is_empty(), "disks are not inherited");
        assert_eq!(vm.interfaces, parent().interfaces);
        assert_eq!(vm.cdrom.as_deref(), Some("/iso/install.iso"));
        assert_eq!(vm.owner.uid, 1000);
        assert_eq!(vm.allow_instance, InstancePolicy::default());
    }

    #[test]
    fn permissions() {
        // Not the instance owner, but in its group: allowed.
        assert!(instantiate(&parent(), &child(), 1001, &NoGroups).is_ok());
        assert_eq!(
            instantiate(&parent(), &child(), 1002, &NoGroups)
                .unwrap_err()
                .to_string(),
            "vm \"base\" no permission to create vm instance"
        );
        let mut c = child();
        c.cdrom = Some("/iso/other.iso".into());
        assert_eq!(
            instantiate(&parent(), &c, 1000, &NoGroups).unwrap_err(),
            InstanceError::Cdrom("kid".into())
        );
        // Root may do it all.
        assert!(instantiate(&parent(), &c, 0, &NoGroups).is_ok());
        let mut c = child();
        c.memory = Some(2 << 30);
        assert!(
            instantiate(&parent(), &c, 1000, &NoGroups).is_ok(),
            "memory is allowed"
        );
        let mut c = child();
        c.disks = parent().disks;
        assert_eq!(
            instantiate(&parent(), &c, 0, &NoGroups)
                .unwrap_err()
                .to_string(),
            "vm \"kid\" disk /vm/base.img cannot be reused"
        );
        let mut c = child();
        c.interfaces = vec![InterfaceConfig {
            ifname: Some("tap5".into()),
            ..Default::default()
        }];
        assert_eq!(
            instantiate(&parent(), &c, 0, &NoGroups)
                .unwrap_err()
                .to_string(),
            "vm \"kid\" tap5 cannot be reused"
        );
        let mut c = child();
        c.owner.uid = 4242;
        assert_eq!(
            instantiate(&parent(), &c, 1000, &NoGroups).unwrap_err(),
            InstanceError::User("kid".into())
        );
        let mut c = child();
        c.allow_instance.boot = true;
        assert_eq!(
            instantiate(&parent(), &c, 0, &NoGroups).unwrap_err(),
            InstanceError::InstancePolicy("kid".into())
        );
        let mut p = parent();
        p.boot = Some("/bsd".into());
        assert_eq!(
            instantiate(&p, &child(), 1000, &NoGroups).unwrap_err(),
            InstanceError::Boot("kid".into())
        );
    }
}
