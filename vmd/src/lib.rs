//! vmd: the daemon. For now this holds the vm.conf(5) parser and its typed
//! configuration model; the privsep processes arrive with issue 8 item 2.

pub mod config;
