//! vmd: the daemon. One binary re-executes itself for each process role
//! (see `proc`), as OpenBSD's vmd does; `config` is the vm.conf(5) parser.

pub mod agentx;
pub mod child;
pub mod config;
pub mod control;
pub mod host_ifs;
pub mod imsg_types;
pub mod logging;
pub mod parent;
pub mod privops;
pub mod proc;
pub mod shared_config;
pub mod sys;
pub mod vmm;
pub mod vms;
