//! Compile-time proof that every struct has the OpenBSD/amd64 layout.
//!
//! The numbers are clang's, from compiling OpenBSD's headers for
//! x86_64-unknown-openbsd (procedure and tables in ABI.md). A mismatch
//! fails the build on every host. The `vei`/`vee` union members of
//! `struct vm_exit` both live in the Rust field `info`.

use core::mem::{align_of, offset_of, size_of};

use crate::types::*;

// struct vm_mem_range
const _: () = assert!(size_of::<VmMemRange>() == 32);
const _: () = assert!(align_of::<VmMemRange>() == 8);
const _: () = assert!(offset_of!(VmMemRange, vmr_gpa) == 0); // vmr_gpa
const _: () = assert!(offset_of!(VmMemRange, vmr_va) == 8); // vmr_va
const _: () = assert!(offset_of!(VmMemRange, vmr_size) == 16); // vmr_size
const _: () = assert!(offset_of!(VmMemRange, vmr_type) == 24); // vmr_type
                                                               // struct vm_create_params
const _: () = assert!(size_of::<VmCreateParams>() == 2656);
const _: () = assert!(align_of::<VmCreateParams>() == 8);
const _: () = assert!(offset_of!(VmCreateParams, vcp_nmemranges) == 0); // vcp_nmemranges
const _: () = assert!(offset_of!(VmCreateParams, vcp_ncpus) == 8); // vcp_ncpus
const _: () = assert!(offset_of!(VmCreateParams, vcp_memranges) == 16); // vcp_memranges
const _: () = assert!(offset_of!(VmCreateParams, vcp_name) == 528); // vcp_name
const _: () = assert!(offset_of!(VmCreateParams, vcp_sev) == 592); // vcp_sev
const _: () = assert!(offset_of!(VmCreateParams, vcp_seves) == 596); // vcp_seves
const _: () = assert!(offset_of!(VmCreateParams, vcp_id) == 600); // vcp_id
const _: () = assert!(offset_of!(VmCreateParams, vcp_poscbit) == 604); // vcp_poscbit
const _: () = assert!(offset_of!(VmCreateParams, vcp_asid) == 608); // vcp_asid
                                                                    // struct vm_info_result
const _: () = assert!(size_of::<VmInfoResult>() == 160);
const _: () = assert!(align_of::<VmInfoResult>() == 8);
const _: () = assert!(offset_of!(VmInfoResult, vir_memory_size) == 0); // vir_memory_size
const _: () = assert!(offset_of!(VmInfoResult, vir_used_size) == 8); // vir_used_size
const _: () = assert!(offset_of!(VmInfoResult, vir_ncpus) == 16); // vir_ncpus
const _: () = assert!(offset_of!(VmInfoResult, vir_vcpu_state) == 24); // vir_vcpu_state
const _: () = assert!(offset_of!(VmInfoResult, vir_creator_pid) == 88); // vir_creator_pid
const _: () = assert!(offset_of!(VmInfoResult, vir_id) == 92); // vir_id
const _: () = assert!(offset_of!(VmInfoResult, vir_name) == 96); // vir_name
                                                                 // struct vm_info_params
const _: () = assert!(size_of::<VmInfoParams>() == 24);
const _: () = assert!(align_of::<VmInfoParams>() == 8);
const _: () = assert!(offset_of!(VmInfoParams, vip_size) == 0); // vip_size
const _: () = assert!(offset_of!(VmInfoParams, vip_info_ct) == 8); // vip_info_ct
const _: () = assert!(offset_of!(VmInfoParams, vip_info) == 16); // vip_info
                                                                 // struct vm_terminate_params
const _: () = assert!(size_of::<VmTerminateParams>() == 4);
const _: () = assert!(align_of::<VmTerminateParams>() == 4);
const _: () = assert!(offset_of!(VmTerminateParams, vtp_vm_id) == 0); // vtp_vm_id
                                                                      // struct vm_resetcpu_params
const _: () = assert!(size_of::<VmResetcpuParams>() == 576);
const _: () = assert!(align_of::<VmResetcpuParams>() == 8);
const _: () = assert!(offset_of!(VmResetcpuParams, vrp_vm_id) == 0); // vrp_vm_id
const _: () = assert!(offset_of!(VmResetcpuParams, vrp_vcpu_id) == 4); // vrp_vcpu_id
const _: () = assert!(offset_of!(VmResetcpuParams, vrp_init_state) == 8); // vrp_init_state
                                                                          // struct vm_sharemem_params
const _: () = assert!(size_of::<VmSharememParams>() == 656);
const _: () = assert!(align_of::<VmSharememParams>() == 8);
const _: () = assert!(offset_of!(VmSharememParams, vsp_vm_id) == 0); // vsp_vm_id
const _: () = assert!(offset_of!(VmSharememParams, vsp_nmemranges) == 8); // vsp_nmemranges
const _: () = assert!(offset_of!(VmSharememParams, vsp_memranges) == 16); // vsp_memranges
const _: () = assert!(offset_of!(VmSharememParams, vsp_va) == 528); // vsp_va
                                                                    // struct vm_run_params
const _: () = assert!(size_of::<VmRunParams>() == 40);
const _: () = assert!(align_of::<VmRunParams>() == 8);
const _: () = assert!(offset_of!(VmRunParams, vrp_vm_id) == 0); // vrp_vm_id
const _: () = assert!(offset_of!(VmRunParams, vrp_vcpu_id) == 4); // vrp_vcpu_id
const _: () = assert!(offset_of!(VmRunParams, vrp_inject) == 8); // vrp_inject
const _: () = assert!(offset_of!(VmRunParams, vrp_intr_pending) == 20); // vrp_intr_pending
const _: () = assert!(offset_of!(VmRunParams, vrp_exit) == 24); // vrp_exit
const _: () = assert!(offset_of!(VmRunParams, vrp_exit_reason) == 32); // vrp_exit_reason
const _: () = assert!(offset_of!(VmRunParams, vrp_irqready) == 34); // vrp_irqready
                                                                    // struct vm_rwvmparams_params
const _: () = assert!(size_of::<VmRwvmparamsParams>() == 32);
const _: () = assert!(align_of::<VmRwvmparamsParams>() == 8);
const _: () = assert!(offset_of!(VmRwvmparamsParams, vpp_vm_id) == 0); // vpp_vm_id
const _: () = assert!(offset_of!(VmRwvmparamsParams, vpp_vcpu_id) == 4); // vpp_vcpu_id
const _: () = assert!(offset_of!(VmRwvmparamsParams, vpp_mask) == 8); // vpp_mask
const _: () = assert!(offset_of!(VmRwvmparamsParams, vpp_pvclock_system_gpa) == 16); // vpp_pvclock_system_gpa
const _: () = assert!(offset_of!(VmRwvmparamsParams, vpp_pvclock_version) == 24); // vpp_pvclock_version
                                                                                  // struct vm_exit_inout
const _: () = assert!(size_of::<VmExitInout>() == 16);
const _: () = assert!(align_of::<VmExitInout>() == 4);
const _: () = assert!(offset_of!(VmExitInout, vei_size) == 0); // vei_size
const _: () = assert!(offset_of!(VmExitInout, vei_dir) == 1); // vei_dir
const _: () = assert!(offset_of!(VmExitInout, vei_rep) == 2); // vei_rep
const _: () = assert!(offset_of!(VmExitInout, vei_string) == 3); // vei_string
const _: () = assert!(offset_of!(VmExitInout, vei_encoding) == 4); // vei_encoding
const _: () = assert!(offset_of!(VmExitInout, vei_port) == 6); // vei_port
const _: () = assert!(offset_of!(VmExitInout, vei_data) == 8); // vei_data
const _: () = assert!(offset_of!(VmExitInout, vei_insn_len) == 12); // vei_insn_len
                                                                    // struct vm_exit_eptviolation
const _: () = assert!(size_of::<VmExitEptViolation>() == 18);
const _: () = assert!(align_of::<VmExitEptViolation>() == 1);
const _: () = assert!(offset_of!(VmExitEptViolation, vee_fault_type) == 0); // vee_fault_type
const _: () = assert!(offset_of!(VmExitEptViolation, vee_insn_info) == 1); // vee_insn_info
const _: () = assert!(offset_of!(VmExitEptViolation, vee_insn_len) == 2); // vee_insn_len
const _: () = assert!(offset_of!(VmExitEptViolation, vee_insn_bytes) == 3); // vee_insn_bytes
                                                                            // struct vcpu_inject_event
const _: () = assert!(size_of::<VcpuInjectEvent>() == 12);
const _: () = assert!(align_of::<VcpuInjectEvent>() == 4);
const _: () = assert!(offset_of!(VcpuInjectEvent, vie_vector) == 0); // vie_vector
const _: () = assert!(offset_of!(VcpuInjectEvent, vie_errorcode) == 4); // vie_errorcode
const _: () = assert!(offset_of!(VcpuInjectEvent, vie_type) == 8); // vie_type
                                                                   // struct vcpu_segment_info
const _: () = assert!(size_of::<VcpuSegmentInfo>() == 24);
const _: () = assert!(align_of::<VcpuSegmentInfo>() == 8);
const _: () = assert!(offset_of!(VcpuSegmentInfo, vsi_sel) == 0); // vsi_sel
const _: () = assert!(offset_of!(VcpuSegmentInfo, vsi_limit) == 4); // vsi_limit
const _: () = assert!(offset_of!(VcpuSegmentInfo, vsi_ar) == 8); // vsi_ar
const _: () = assert!(offset_of!(VcpuSegmentInfo, vsi_base) == 16); // vsi_base
                                                                    // struct vcpu_reg_state
const _: () = assert!(size_of::<VcpuRegState>() == 568);
const _: () = assert!(align_of::<VcpuRegState>() == 8);
const _: () = assert!(offset_of!(VcpuRegState, vrs_gprs) == 0); // vrs_gprs
const _: () = assert!(offset_of!(VcpuRegState, vrs_crs) == 144); // vrs_crs
const _: () = assert!(offset_of!(VcpuRegState, vrs_msrs) == 224); // vrs_msrs
const _: () = assert!(offset_of!(VcpuRegState, vrs_drs) == 280); // vrs_drs
const _: () = assert!(offset_of!(VcpuRegState, vrs_sregs) == 328); // vrs_sregs
const _: () = assert!(offset_of!(VcpuRegState, vrs_gdtr) == 520); // vrs_gdtr
const _: () = assert!(offset_of!(VcpuRegState, vrs_idtr) == 544); // vrs_idtr
                                                                  // struct vm_exit
const _: () = assert!(size_of::<VmExit>() == 600);
const _: () = assert!(align_of::<VmExit>() == 8);
const _: () = assert!(offset_of!(VmExit, info) == 0); // vei
const _: () = assert!(offset_of!(VmExit, info) == 0); // vee
const _: () = assert!(offset_of!(VmExit, vrs) == 24); // vrs
const _: () = assert!(offset_of!(VmExit, cpl) == 592); // cpl
                                                       // struct vm_intr_params
const _: () = assert!(size_of::<VmIntrParams>() == 12);
const _: () = assert!(align_of::<VmIntrParams>() == 4);
const _: () = assert!(offset_of!(VmIntrParams, vip_vm_id) == 0); // vip_vm_id
const _: () = assert!(offset_of!(VmIntrParams, vip_vcpu_id) == 4); // vip_vcpu_id
const _: () = assert!(offset_of!(VmIntrParams, vip_intr) == 8); // vip_intr
                                                                // struct vm_rwregs_params
const _: () = assert!(size_of::<VmRwregsParams>() == 584);
const _: () = assert!(align_of::<VmRwregsParams>() == 8);
const _: () = assert!(offset_of!(VmRwregsParams, vrwp_vm_id) == 0); // vrwp_vm_id
const _: () = assert!(offset_of!(VmRwregsParams, vrwp_vcpu_id) == 4); // vrwp_vcpu_id
const _: () = assert!(offset_of!(VmRwregsParams, vrwp_mask) == 8); // vrwp_mask
const _: () = assert!(offset_of!(VmRwregsParams, vrwp_regs) == 16); // vrwp_regs
