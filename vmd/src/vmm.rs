//! The vmm process: owns the hypervisor and the vm processes. Until the vm
//! process exists it runs no VMs, so a status request lists none.

use imsg::{Imsg, ImsgBuf};

use crate::imsg_types::*;

pub fn handle(m: &Imsg, parent: &mut ImsgBuf) {
    match m.hdr.type_ {
        IMSG_VMDOP_GET_INFO_VM_REQUEST => {
            if let Err(e) =
                parent.compose(IMSG_VMDOP_GET_INFO_VM_END_DATA, m.hdr.peerid, 0, None, &[])
            {
                log::warn!("vmm: {e}");
            }
        }
        t => log::debug!("vmm_dispatch_parent: unexpected imsg {t}"),
    }
}
