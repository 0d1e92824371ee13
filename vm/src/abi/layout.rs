//! Compile-time proof that every wire struct has the OpenBSD/amd64 layout.
//!
//! The numbers are clang's, from compiling OpenBSD's vmd.h, virtio.h,
//! proc.h, imsg.h, event.h and virtio_pcireg.h structs (adapted to the 2026
//! names, see vmm-sys/ABI.md) for x86_64-unknown-openbsd. The union members
//! of `struct virtio_dev` (vioblk, vionet, vmmci, vioscsi) all live in the
//! Rust field `dev`; C's `type` in `viodev_msg` is `msg_type`.

use core::mem::{align_of, offset_of, size_of};

use super::*;

// struct imsgbuf
const _: () = assert!(size_of::<ImsgBuf>() == 24);
const _: () = assert!(align_of::<ImsgBuf>() == 8);
const _: () = assert!(offset_of!(ImsgBuf, w) == 0); // w
const _: () = assert!(offset_of!(ImsgBuf, pid) == 8); // pid
const _: () = assert!(offset_of!(ImsgBuf, maxsize) == 12); // maxsize
const _: () = assert!(offset_of!(ImsgBuf, fd) == 16); // fd
const _: () = assert!(offset_of!(ImsgBuf, flags) == 20); // flags
                                                         // struct event
const _: () = assert!(size_of::<Event>() == 128);
const _: () = assert!(align_of::<Event>() == 8);
const _: () = assert!(offset_of!(Event, ev_next) == 0); // ev_next
const _: () = assert!(offset_of!(Event, ev_active_next) == 16); // ev_active_next
const _: () = assert!(offset_of!(Event, ev_signal_next) == 32); // ev_signal_next
const _: () = assert!(offset_of!(Event, min_heap_idx) == 48); // min_heap_idx
const _: () = assert!(offset_of!(Event, ev_base) == 56); // ev_base
const _: () = assert!(offset_of!(Event, ev_fd) == 64); // ev_fd
const _: () = assert!(offset_of!(Event, ev_events) == 68); // ev_events
const _: () = assert!(offset_of!(Event, ev_ncalls) == 70); // ev_ncalls
const _: () = assert!(offset_of!(Event, ev_pncalls) == 72); // ev_pncalls
const _: () = assert!(offset_of!(Event, ev_timeout) == 80); // ev_timeout
const _: () = assert!(offset_of!(Event, ev_pri) == 96); // ev_pri
const _: () = assert!(offset_of!(Event, ev_callback) == 104); // ev_callback
const _: () = assert!(offset_of!(Event, ev_arg) == 112); // ev_arg
const _: () = assert!(offset_of!(Event, ev_res) == 120); // ev_res
const _: () = assert!(offset_of!(Event, ev_flags) == 124); // ev_flags
                                                           // struct imsgev
const _: () = assert!(size_of::<ImsgEv>() == 184);
const _: () = assert!(align_of::<ImsgEv>() == 8);
const _: () = assert!(offset_of!(ImsgEv, ibuf) == 0); // ibuf
const _: () = assert!(offset_of!(ImsgEv, handler) == 24); // handler
const _: () = assert!(offset_of!(ImsgEv, ev) == 32); // ev
const _: () = assert!(offset_of!(ImsgEv, proc) == 160); // proc
const _: () = assert!(offset_of!(ImsgEv, data) == 168); // data
const _: () = assert!(offset_of!(ImsgEv, events) == 176); // events
                                                          // struct virtio_pci_common_cfg
const _: () = assert!(size_of::<VirtioPciCommonCfg>() == 56);
const _: () = assert!(align_of::<VirtioPciCommonCfg>() == 1);
const _: () = assert!(offset_of!(VirtioPciCommonCfg, device_feature_select) == 0); // device_feature_select
const _: () = assert!(offset_of!(VirtioPciCommonCfg, device_feature) == 4); // device_feature
const _: () = assert!(offset_of!(VirtioPciCommonCfg, driver_feature_select) == 8); // driver_feature_select
const _: () = assert!(offset_of!(VirtioPciCommonCfg, driver_feature) == 12); // driver_feature
const _: () = assert!(offset_of!(VirtioPciCommonCfg, config_msix_vector) == 16); // config_msix_vector
const _: () = assert!(offset_of!(VirtioPciCommonCfg, num_queues) == 18); // num_queues
const _: () = assert!(offset_of!(VirtioPciCommonCfg, device_status) == 20); // device_status
const _: () = assert!(offset_of!(VirtioPciCommonCfg, config_generation) == 21); // config_generation
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_select) == 22); // queue_select
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_size) == 24); // queue_size
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_msix_vector) == 26); // queue_msix_vector
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_enable) == 28); // queue_enable
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_notify_off) == 30); // queue_notify_off
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_desc) == 32); // queue_desc
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_avail) == 40); // queue_avail
const _: () = assert!(offset_of!(VirtioPciCommonCfg, queue_used) == 48); // queue_used
                                                                         // struct vmop_result
const _: () = assert!(size_of::<VmopResult>() == 28);
const _: () = assert!(align_of::<VmopResult>() == 4);
const _: () = assert!(offset_of!(VmopResult, vmr_result) == 0); // vmr_result
const _: () = assert!(offset_of!(VmopResult, vmr_id) == 4); // vmr_id
const _: () = assert!(offset_of!(VmopResult, vmr_pid) == 8); // vmr_pid
const _: () = assert!(offset_of!(VmopResult, vmr_ttyname) == 12); // vmr_ttyname
                                                                  // struct vmop_info_result
const _: () = assert!(size_of::<VmopInfoResult>() == 200);
const _: () = assert!(align_of::<VmopInfoResult>() == 8);
const _: () = assert!(offset_of!(VmopInfoResult, vir_info) == 0); // vir_info
const _: () = assert!(offset_of!(VmopInfoResult, vir_ttyname) == 160); // vir_ttyname
const _: () = assert!(offset_of!(VmopInfoResult, vir_uid) == 176); // vir_uid
const _: () = assert!(offset_of!(VmopInfoResult, vir_gid) == 184); // vir_gid
const _: () = assert!(offset_of!(VmopInfoResult, vir_state) == 192); // vir_state
                                                                     // struct vmop_id
const _: () = assert!(size_of::<VmopId>() == 76);
const _: () = assert!(align_of::<VmopId>() == 4);
const _: () = assert!(offset_of!(VmopId, vid_id) == 0); // vid_id
const _: () = assert!(offset_of!(VmopId, vid_name) == 4); // vid_name
const _: () = assert!(offset_of!(VmopId, vid_uid) == 68); // vid_uid
const _: () = assert!(offset_of!(VmopId, vid_flags) == 72); // vid_flags
                                                            // struct vmop_owner
const _: () = assert!(size_of::<VmopOwner>() == 16);
const _: () = assert!(align_of::<VmopOwner>() == 8);
const _: () = assert!(offset_of!(VmopOwner, uid) == 0); // uid
const _: () = assert!(offset_of!(VmopOwner, gid) == 8); // gid
                                                        // struct vmop_create_params
const _: () = assert!(size_of::<VmopCreateParams>() == 6336);
const _: () = assert!(align_of::<VmopCreateParams>() == 8);
const _: () = assert!(offset_of!(VmopCreateParams, vmc_nmemranges) == 0); // vmc_nmemranges
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ncpus) == 8); // vmc_ncpus
const _: () = assert!(offset_of!(VmopCreateParams, vmc_memranges) == 16); // vmc_memranges
const _: () = assert!(offset_of!(VmopCreateParams, vmc_name) == 528); // vmc_name
const _: () = assert!(offset_of!(VmopCreateParams, vmc_sev) == 592); // vmc_sev
const _: () = assert!(offset_of!(VmopCreateParams, vmc_seves) == 596); // vmc_seves
const _: () = assert!(offset_of!(VmopCreateParams, vmc_flags) == 600); // vmc_flags
const _: () = assert!(offset_of!(VmopCreateParams, vmc_checkaccess) == 604); // vmc_checkaccess
const _: () = assert!(offset_of!(VmopCreateParams, vmc_bootdevice) == 608); // vmc_bootdevice
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ifflags) == 612); // vmc_ifflags
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ndisks) == 632); // vmc_ndisks
const _: () = assert!(offset_of!(VmopCreateParams, vmc_disks) == 640); // vmc_disks
const _: () = assert!(offset_of!(VmopCreateParams, vmc_disktypes) == 4736); // vmc_disktypes
const _: () = assert!(offset_of!(VmopCreateParams, vmc_diskbases) == 4752); // vmc_diskbases
const _: () = assert!(offset_of!(VmopCreateParams, vmc_cdrom) == 4768); // vmc_cdrom
const _: () = assert!(offset_of!(VmopCreateParams, vmc_kernel) == 5792); // vmc_kernel
const _: () = assert!(offset_of!(VmopCreateParams, vmc_nnics) == 5800); // vmc_nnics
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ifnames) == 5808); // vmc_ifnames
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ifswitch) == 5872); // vmc_ifswitch
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ifgroup) == 6128); // vmc_ifgroup
const _: () = assert!(offset_of!(VmopCreateParams, vmc_ifrdomain) == 6192); // vmc_ifrdomain
const _: () = assert!(offset_of!(VmopCreateParams, vmc_macs) == 6208); // vmc_macs
const _: () = assert!(offset_of!(VmopCreateParams, vmc_owner) == 6232); // vmc_owner
const _: () = assert!(offset_of!(VmopCreateParams, vmc_instance) == 6248); // vmc_instance
const _: () = assert!(offset_of!(VmopCreateParams, vmc_insowner) == 6312); // vmc_insowner
const _: () = assert!(offset_of!(VmopCreateParams, vmc_insflags) == 6328); // vmc_insflags
                                                                           // struct vmd_if
const _: () = assert!(size_of::<VmdIf>() == 56);
const _: () = assert!(align_of::<VmdIf>() == 8);
const _: () = assert!(offset_of!(VmdIf, vif_name) == 0); // vif_name
const _: () = assert!(offset_of!(VmdIf, vif_switch) == 8); // vif_switch
const _: () = assert!(offset_of!(VmdIf, vif_group) == 16); // vif_group
const _: () = assert!(offset_of!(VmdIf, vif_fd) == 24); // vif_fd
const _: () = assert!(offset_of!(VmdIf, vif_rdomain) == 28); // vif_rdomain
const _: () = assert!(offset_of!(VmdIf, vif_flags) == 32); // vif_flags
const _: () = assert!(offset_of!(VmdIf, vif_entry) == 40); // vif_entry
                                                           // struct vmd_vm
const _: () = assert!(size_of::<VmdVm>() == 11296);
const _: () = assert!(align_of::<VmdVm>() == 8);
const _: () = assert!(offset_of!(VmdVm, vm_params) == 0); // vm_params
const _: () = assert!(offset_of!(VmdVm, vm_pid) == 6336); // vm_pid
const _: () = assert!(offset_of!(VmdVm, vm_vmid) == 6340); // vm_vmid
const _: () = assert!(offset_of!(VmdVm, vm_vmmid) == 6344); // vm_vmmid
const _: () = assert!(offset_of!(VmdVm, vm_poscbit) == 6348); // vm_poscbit
const _: () = assert!(offset_of!(VmdVm, vm_sev_handle) == 6352); // vm_sev_handle
const _: () = assert!(offset_of!(VmdVm, vm_sev_asid) == 6356); // vm_sev_asid
const _: () = assert!(offset_of!(VmdVm, vm_sev_nmemsegments) == 6616); // vm_sev_nmemsegments
const _: () = assert!(offset_of!(VmdVm, vm_sev_memsegments) == 6624); // vm_sev_memsegments
const _: () = assert!(offset_of!(VmdVm, vm_kernel) == 10720); // vm_kernel
const _: () = assert!(offset_of!(VmdVm, vm_kernel_path) == 10728); // vm_kernel_path
const _: () = assert!(offset_of!(VmdVm, vm_cdrom) == 10736); // vm_cdrom
const _: () = assert!(offset_of!(VmdVm, vm_disks) == 10740); // vm_disks
const _: () = assert!(offset_of!(VmdVm, vm_ifs) == 10808); // vm_ifs
const _: () = assert!(offset_of!(VmdVm, vm_ttyname) == 11032); // vm_ttyname
const _: () = assert!(offset_of!(VmdVm, vm_tty) == 11048); // vm_tty
const _: () = assert!(offset_of!(VmdVm, vm_peerid) == 11052); // vm_peerid
const _: () = assert!(offset_of!(VmdVm, vm_from_config) == 11056); // vm_from_config
const _: () = assert!(offset_of!(VmdVm, vm_iev) == 11064); // vm_iev
const _: () = assert!(offset_of!(VmdVm, vm_uid) == 11248); // vm_uid
const _: () = assert!(offset_of!(VmdVm, vm_state) == 11252); // vm_state
const _: () = assert!(offset_of!(VmdVm, vm_start_tv) == 11256); // vm_start_tv
const _: () = assert!(offset_of!(VmdVm, vm_start_limit) == 11272); // vm_start_limit
const _: () = assert!(offset_of!(VmdVm, vm_entry) == 11280); // vm_entry
                                                             // struct timeval
const _: () = assert!(size_of::<Timeval>() == 16);
const _: () = assert!(align_of::<Timeval>() == 8);
const _: () = assert!(offset_of!(Timeval, tv_sec) == 0); // tv_sec
const _: () = assert!(offset_of!(Timeval, tv_usec) == 8); // tv_usec
                                                          // struct local_prefix
const _: () = assert!(size_of::<LocalPrefix>() == 40);
const _: () = assert!(align_of::<LocalPrefix>() == 4);
const _: () = assert!(offset_of!(LocalPrefix, lp_in) == 0); // lp_in
const _: () = assert!(offset_of!(LocalPrefix, lp_mask) == 4); // lp_mask
const _: () = assert!(offset_of!(LocalPrefix, lp_in6) == 8); // lp_in6
const _: () = assert!(offset_of!(LocalPrefix, lp_mask6) == 24); // lp_mask6
                                                                // struct vmd_agentx
const _: () = assert!(size_of::<VmdAgentx>() == 144);
const _: () = assert!(align_of::<VmdAgentx>() == 4);
const _: () = assert!(offset_of!(VmdAgentx, ax_enabled) == 0); // ax_enabled
const _: () = assert!(offset_of!(VmdAgentx, ax_path) == 4); // ax_path
const _: () = assert!(offset_of!(VmdAgentx, ax_context) == 108); // ax_context
                                                                 // struct vmd_config
const _: () = assert!(size_of::<VmdConfig>() == 216);
const _: () = assert!(align_of::<VmdConfig>() == 8);
const _: () = assert!(offset_of!(VmdConfig, cfg_flags) == 0); // cfg_flags
const _: () = assert!(offset_of!(VmdConfig, delay) == 8); // delay
const _: () = assert!(offset_of!(VmdConfig, parallelism) == 24); // parallelism
const _: () = assert!(offset_of!(VmdConfig, cfg_localprefix) == 28); // cfg_localprefix
const _: () = assert!(offset_of!(VmdConfig, cfg_agentx) == 68); // cfg_agentx
                                                                // struct vm_dev_pipe
const _: () = assert!(size_of::<VmDevPipe>() == 136);
const _: () = assert!(align_of::<VmDevPipe>() == 8);
const _: () = assert!(offset_of!(VmDevPipe, read) == 0); // read
const _: () = assert!(offset_of!(VmDevPipe, write) == 4); // write
const _: () = assert!(offset_of!(VmDevPipe, read_ev) == 8); // read_ev
                                                            // struct viodev_msg
const _: () = assert!(size_of::<ViodevMsg>() == 12);
const _: () = assert!(align_of::<ViodevMsg>() == 1);
const _: () = assert!(offset_of!(ViodevMsg, msg_type) == 0); // type
const _: () = assert!(offset_of!(ViodevMsg, reg) == 1); // reg
const _: () = assert!(offset_of!(ViodevMsg, io_sz) == 3); // io_sz
const _: () = assert!(offset_of!(ViodevMsg, vcpu) == 4); // vcpu
const _: () = assert!(offset_of!(ViodevMsg, irq) == 5); // irq
const _: () = assert!(offset_of!(ViodevMsg, state) == 6); // state
const _: () = assert!(offset_of!(ViodevMsg, data) == 7); // data
const _: () = assert!(offset_of!(ViodevMsg, data_valid) == 11); // data_valid
                                                                // struct virtio_io_cfg
const _: () = assert!(size_of::<VirtioIoCfg>() == 20);
const _: () = assert!(align_of::<VirtioIoCfg>() == 4);
const _: () = assert!(offset_of!(VirtioIoCfg, device_feature) == 0); // device_feature
const _: () = assert!(offset_of!(VirtioIoCfg, guest_feature) == 4); // guest_feature
const _: () = assert!(offset_of!(VirtioIoCfg, queue_pfn) == 8); // queue_pfn
const _: () = assert!(offset_of!(VirtioIoCfg, queue_select) == 12); // queue_select
const _: () = assert!(offset_of!(VirtioIoCfg, queue_size) == 14); // queue_size
const _: () = assert!(offset_of!(VirtioIoCfg, queue_notify) == 16); // queue_notify
                                                                    // struct virtio_backing
const _: () = assert!(size_of::<VirtioBacking>() == 48);
const _: () = assert!(align_of::<VirtioBacking>() == 8);
const _: () = assert!(offset_of!(VirtioBacking, p) == 0); // p
const _: () = assert!(offset_of!(VirtioBacking, pread) == 8); // pread
const _: () = assert!(offset_of!(VirtioBacking, preadv) == 16); // preadv
const _: () = assert!(offset_of!(VirtioBacking, pwrite) == 24); // pwrite
const _: () = assert!(offset_of!(VirtioBacking, pwritev) == 32); // pwritev
const _: () = assert!(offset_of!(VirtioBacking, close) == 40); // close
                                                               // struct virtio_vq_info
const _: () = assert!(size_of::<VirtioVqInfo>() == 40);
const _: () = assert!(align_of::<VirtioVqInfo>() == 8);
const _: () = assert!(offset_of!(VirtioVqInfo, q_gpa) == 0); // q_gpa
const _: () = assert!(offset_of!(VirtioVqInfo, q_hva) == 8); // q_hva
const _: () = assert!(offset_of!(VirtioVqInfo, qs) == 16); // qs
const _: () = assert!(offset_of!(VirtioVqInfo, mask) == 20); // mask
const _: () = assert!(offset_of!(VirtioVqInfo, vq_availoffset) == 24); // vq_availoffset
const _: () = assert!(offset_of!(VirtioVqInfo, vq_usedoffset) == 28); // vq_usedoffset
const _: () = assert!(offset_of!(VirtioVqInfo, last_avail) == 32); // last_avail
const _: () = assert!(offset_of!(VirtioVqInfo, notified_avail) == 34); // notified_avail
const _: () = assert!(offset_of!(VirtioVqInfo, vq_enabled) == 36); // vq_enabled
                                                                   // struct vioblk_dev
const _: () = assert!(size_of::<VioblkDev>() == 88);
const _: () = assert!(align_of::<VioblkDev>() == 8);
const _: () = assert!(offset_of!(VioblkDev, file) == 0); // file
const _: () = assert!(offset_of!(VioblkDev, disk_fd) == 48); // disk_fd
const _: () = assert!(offset_of!(VioblkDev, ndisk_fd) == 64); // ndisk_fd
const _: () = assert!(offset_of!(VioblkDev, capacity) == 72); // capacity
const _: () = assert!(offset_of!(VioblkDev, seg_max) == 80); // seg_max
const _: () = assert!(offset_of!(VioblkDev, idx) == 84); // idx
                                                         // struct vioscsi_dev
const _: () = assert!(size_of::<VioscsiDev>() == 88);
const _: () = assert!(align_of::<VioscsiDev>() == 8);
const _: () = assert!(offset_of!(VioscsiDev, file) == 0); // file
const _: () = assert!(offset_of!(VioscsiDev, cdrom_fd) == 48); // cdrom_fd
const _: () = assert!(offset_of!(VioscsiDev, locked) == 52); // locked
const _: () = assert!(offset_of!(VioscsiDev, sz) == 56); // sz
const _: () = assert!(offset_of!(VioscsiDev, lba) == 64); // lba
const _: () = assert!(offset_of!(VioscsiDev, n_blocks) == 72); // n_blocks
const _: () = assert!(offset_of!(VioscsiDev, max_xfer) == 80); // max_xfer
                                                               // struct vionet_dev
const _: () = assert!(size_of::<VionetDev>() == 72);
const _: () = assert!(align_of::<VionetDev>() == 4);
const _: () = assert!(offset_of!(VionetDev, data_fd) == 0); // data_fd
const _: () = assert!(offset_of!(VionetDev, mac) == 4); // mac
const _: () = assert!(offset_of!(VionetDev, hostmac) == 10); // hostmac
const _: () = assert!(offset_of!(VionetDev, lockedmac) == 16); // lockedmac
const _: () = assert!(offset_of!(VionetDev, local) == 20); // local
const _: () = assert!(offset_of!(VionetDev, pxeboot) == 24); // pxeboot
const _: () = assert!(offset_of!(VionetDev, local_prefix) == 28); // local_prefix
const _: () = assert!(offset_of!(VionetDev, idx) == 68); // idx
                                                         // struct vmmci_dev
const _: () = assert!(size_of::<VmmciDev>() == 296);
const _: () = assert!(align_of::<VmmciDev>() == 8);
const _: () = assert!(offset_of!(VmmciDev, timeout) == 0); // timeout
const _: () = assert!(offset_of!(VmmciDev, time) == 128); // time
const _: () = assert!(offset_of!(VmmciDev, cmd) == 144); // cmd
const _: () = assert!(offset_of!(VmmciDev, mutex) == 152); // mutex
const _: () = assert!(offset_of!(VmmciDev, dev_pipe) == 160); // dev_pipe
                                                              // struct virtio_dev
const _: () = assert!(size_of::<VirtioDev>() == 944);
const _: () = assert!(align_of::<VirtioDev>() == 8);
const _: () = assert!(offset_of!(VirtioDev, device_id) == 0); // device_id
const _: () = assert!(offset_of!(VirtioDev, dev) == 8); // vioblk
const _: () = assert!(offset_of!(VirtioDev, dev) == 8); // vionet
const _: () = assert!(offset_of!(VirtioDev, dev) == 8); // vmmci
const _: () = assert!(offset_of!(VirtioDev, dev) == 8); // vioscsi
const _: () = assert!(offset_of!(VirtioDev, cfg) == 304); // cfg
const _: () = assert!(offset_of!(VirtioDev, pci_cfg) == 324); // pci_cfg
const _: () = assert!(offset_of!(VirtioDev, vq) == 384); // vq
const _: () = assert!(offset_of!(VirtioDev, num_queues) == 504); // num_queues
const _: () = assert!(offset_of!(VirtioDev, queue_size) == 506); // queue_size
const _: () = assert!(offset_of!(VirtioDev, isr) == 508); // isr
const _: () = assert!(offset_of!(VirtioDev, status) == 509); // status
const _: () = assert!(offset_of!(VirtioDev, device_feature) == 512); // device_feature
const _: () = assert!(offset_of!(VirtioDev, driver_feature) == 520); // driver_feature
const _: () = assert!(offset_of!(VirtioDev, pci_id) == 528); // pci_id
const _: () = assert!(offset_of!(VirtioDev, vmm_id) == 532); // vmm_id
const _: () = assert!(offset_of!(VirtioDev, irq) == 536); // irq
const _: () = assert!(offset_of!(VirtioDev, async_iev) == 544); // async_iev
const _: () = assert!(offset_of!(VirtioDev, sync_iev) == 728); // sync_iev
const _: () = assert!(offset_of!(VirtioDev, sync_fd) == 912); // sync_fd
const _: () = assert!(offset_of!(VirtioDev, async_fd) == 916); // async_fd
const _: () = assert!(offset_of!(VirtioDev, vm_id) == 920); // vm_id
const _: () = assert!(offset_of!(VirtioDev, dev_pid) == 924); // dev_pid
const _: () = assert!(offset_of!(VirtioDev, dev_type) == 928); // dev_type
const _: () = assert!(offset_of!(VirtioDev, dev_next) == 936); // dev_next
