//! Golden bytes for the vmm(4) structs, written by hand from the clang
//! offset table in ABI.md (literal offsets, not `offset_of!`).

use crate::consts::*;
use crate::types::*;
use crate::wire::Wire;

fn at(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

fn check<T: Wire + PartialEq + std::fmt::Debug>(value: &T, expected: &[u8]) {
    let bytes = value.to_bytes();
    assert_eq!(bytes.len(), expected.len(), "{} size", T::NAME);
    if let Some(i) = (0..bytes.len()).find(|&i| bytes[i] != expected[i]) {
        panic!(
            "{}: first difference at offset {i}: got {:#04x}, want {:#04x}",
            T::NAME,
            bytes[i],
            expected[i]
        );
    }
    assert_eq!(&T::from_bytes(expected).unwrap(), value);
}

#[test]
fn vm_exit_inout_golden() {
    let mut exit = VmExit::zeroed();
    exit.info.set_inout(&VmExitInout {
        vei_size: 1,
        vei_dir: VEI_DIR_IN,
        vei_rep: 0,
        vei_string: 0,
        vei_encoding: 0,
        vei_port: 0x3f8,
        vei_data: 0x41,
        vei_insn_len: 1,
    });
    exit.vrs.vrs_gprs[VCPU_REGS_RIP] = 0xfff0;
    exit.vrs.vrs_sregs[VCPU_REGS_CS] = VcpuSegmentInfo {
        vsi_sel: 0xf000,
        vsi_limit: 0xffff,
        vsi_ar: 0x9b,
        vsi_base: 0xffff_0000,
    };
    exit.vrs.vrs_idtr.vsi_limit = 0x3ff;
    exit.cpl = 3;

    let mut e = vec![0u8; 600];
    at(&mut e, 0, &[1, 1, 0, 0, 0]); // vei_size .. vei_encoding
    at(&mut e, 6, &[0xf8, 0x03]); // vei_port
    at(&mut e, 8, &[0x41, 0, 0, 0]); // vei_data
    at(&mut e, 12, &[1]); // vei_insn_len
                          // vrs at 24: gprs[16] (RIP) at +128
    at(&mut e, 24 + 128, &[0xf0, 0xff, 0, 0, 0, 0, 0, 0]);
    // vrs_sregs at +328, CS is [1], 24 bytes each: sel, limit@4, ar@8, base@16
    at(&mut e, 24 + 328 + 24, &[0x00, 0xf0]);
    at(&mut e, 24 + 328 + 24 + 4, &[0xff, 0xff, 0, 0]);
    at(&mut e, 24 + 328 + 24 + 8, &[0x9b, 0, 0, 0]);
    at(&mut e, 24 + 328 + 24 + 16, &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    // vrs_idtr at +544, limit at +4
    at(&mut e, 24 + 544 + 4, &[0xff, 0x03, 0, 0]);
    at(&mut e, 592, &[3, 0, 0, 0]); // cpl
    check(&exit, &e);
    assert_eq!(exit.info.inout().vei_port, 0x3f8);
}

#[test]
fn vm_exit_ept_violation_view() {
    let mut exit = VmExit::zeroed();
    let mut vee = VmExitEptViolation::zeroed();
    vee.vee_fault_type = VEE_FAULT_MMIO_ASSIST;
    vee.vee_insn_info = VEE_LEN_VALID | VEE_BYTES_VALID;
    vee.vee_insn_len = 3;
    vee.vee_insn_bytes[14] = 0xcc;
    exit.info.set_ept_violation(&vee);
    let b = exit.to_bytes();
    assert_eq!(&b[0..3], &[2, 3, 3]);
    assert_eq!(b[17], 0xcc);
    assert_eq!(&b[18..24], &[0; 6], "union tail and padding stay zero");
    assert_eq!(exit.info.ept_violation(), vee);
}

#[test]
fn vm_run_params_golden() {
    let vrp = VmRunParams {
        vrp_vm_id: 1,
        vrp_vcpu_id: 2,
        vrp_inject: VcpuInjectEvent {
            vie_vector: 0x20,
            vie_errorcode: 0x0bad,
            vie_type: VCPU_INJECT_INTR,
        },
        vrp_intr_pending: 1,
        vrp_exit: 0x0000_7f7f_0000_1000,
        vrp_exit_reason: VM_EXIT_NONE,
        vrp_irqready: 1,
    };
    let mut e = vec![0u8; 40];
    at(&mut e, 0, &[1, 0, 0, 0, 2, 0, 0, 0]);
    at(&mut e, 8, &[0x20, 0, 0, 0, 0xad, 0x0b, 0, 0, 1]); // vrp_inject
    at(&mut e, 20, &[1]); // vrp_intr_pending
    at(&mut e, 24, &[0, 0x10, 0, 0, 0x7f, 0x7f, 0, 0]); // vrp_exit
    at(&mut e, 32, &[0xff, 0xff, 1]); // exit_reason, irqready
    check(&vrp, &e);
}

#[test]
fn vm_sharemem_and_rwvmparams_golden() {
    let mut vsp = VmSharememParams::zeroed();
    vsp.vsp_vm_id = 4;
    vsp.vsp_nmemranges = 1;
    vsp.vsp_memranges[0].vmr_size = 0x1000;
    vsp.vsp_va[15] = 0x1234;
    let mut e = vec![0u8; 656];
    at(&mut e, 0, &[4]);
    at(&mut e, 8, &[1]);
    at(&mut e, 16 + 16, &[0, 0x10]);
    at(&mut e, 528 + 15 * 8, &[0x34, 0x12]);
    check(&vsp, &e);

    let vpp = VmRwvmparamsParams {
        vpp_vm_id: 1,
        vpp_vcpu_id: 0,
        vpp_mask: VM_RWVMPARAMS_ALL,
        vpp_pvclock_system_gpa: 0x9000,
        vpp_pvclock_version: 5,
    };
    let mut e = vec![0u8; 32];
    at(&mut e, 0, &[1, 0, 0, 0, 0, 0, 0, 0, 3]);
    at(&mut e, 16, &[0, 0x90]);
    at(&mut e, 24, &[5]);
    check(&vpp, &e);
}

#[test]
fn vm_intr_and_rwregs_golden() {
    let vip = VmIntrParams {
        vip_vm_id: 1,
        vip_vcpu_id: 0,
        vip_intr: 1,
    };
    check(&vip, &[1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);

    let mut vrwp = VmRwregsParams::zeroed();
    vrwp.vrwp_vm_id = 2;
    vrwp.vrwp_mask = VM_RWREGS_ALL;
    vrwp.vrwp_regs.vrs_msrs[VCPU_REGS_EFER] = 0x500;
    vrwp.vrwp_regs.vrs_drs[VCPU_REGS_DR7] = 0x400;
    let mut e = vec![0u8; 584];
    at(&mut e, 0, &[2]);
    at(&mut e, 8, &[0x1f]);
    at(&mut e, 16 + 224, &[0, 5]); // vrs_msrs at +224
    at(&mut e, 16 + 280 + 40, &[0, 4]); // vrs_drs at +280, DR7 is [5]
    check(&vrwp, &e);
}
