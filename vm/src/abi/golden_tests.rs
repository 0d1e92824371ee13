//! Golden bytes: each wire struct, serialised, must equal bytes written by
//! hand from the clang offset table in vmm-sys/ABI.md. Offsets and sizes
//! here are literals from that table, deliberately not `offset_of!`, so
//! these tests catch an encoder that disagrees with the declared layout.

use vmm_sys::{VmInfoResult, VmMemRange, Wire};

use super::viodev_msg::{INTR_STATE_DEASSERT, VIODEV_MSG_IO_WRITE};
use super::virtio_dev::VMD_DEVTYPE_NET;
use super::*;

/// Writes `bytes` into `buf` at `off`.
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
    assert_eq!(
        &T::from_bytes(expected).unwrap(),
        value,
        "{} decode",
        T::NAME
    );
    let short = &expected[..expected.len() - 1];
    assert!(
        T::from_bytes(short).is_err(),
        "{} accepts a short buffer",
        T::NAME
    );
}

fn name<const N: usize>(s: &str) -> [u8; N] {
    vmm_sys::wire::c_string(s).unwrap()
}

#[test]
fn viodev_msg_golden() {
    let msg = ViodevMsg {
        msg_type: VIODEV_MSG_IO_WRITE,
        reg: 0x1234,
        io_sz: 4,
        vcpu: 1,
        irq: 9,
        state: INTR_STATE_DEASSERT,
        data: 0xdead_beef,
        data_valid: 1,
    };
    let expected = [
        0x05, // type
        0x34, 0x12, // reg (unaligned: packed)
        0x04, // io_sz
        0x01, // vcpu
        0x09, // irq
        0xff, // state = -1
        0xef, 0xbe, 0xad, 0xde, // data
        0x01, // data_valid
    ];
    check(&msg, &expected);
}

#[test]
fn vmop_result_golden() {
    let vmr = VmopResult {
        vmr_result: -2,
        vmr_id: 7,
        vmr_pid: 0x0102_0304,
        vmr_ttyname: name("/dev/ttyp3"),
    };
    let mut expected = vec![0u8; 28];
    at(&mut expected, 0, &[0xfe, 0xff, 0xff, 0xff]);
    at(&mut expected, 4, &[7, 0, 0, 0]);
    at(&mut expected, 8, &[4, 3, 2, 1]);
    at(&mut expected, 12, b"/dev/ttyp3");
    check(&vmr, &expected);
}

#[test]
fn vmop_id_golden() {
    let vid = VmopId {
        vid_id: 0x11,
        vid_name: name("openbsd-vm"),
        vid_uid: 1000,
        vid_flags: vmop::VMOP_FORCE | vmop::VMOP_WAIT,
    };
    let mut expected = vec![0u8; 76];
    at(&mut expected, 0, &[0x11, 0, 0, 0]);
    at(&mut expected, 4, b"openbsd-vm");
    at(&mut expected, 68, &[0xe8, 0x03, 0, 0]);
    at(&mut expected, 72, &[3, 0, 0, 0]);
    check(&vid, &expected);
}

#[test]
fn vmop_owner_golden() {
    let owner = VmopOwner {
        uid: 0x0a0b_0c0d,
        gid: -1,
    };
    let mut expected = vec![0u8; 16];
    at(&mut expected, 0, &[0x0d, 0x0c, 0x0b, 0x0a]);
    // 4..8 is padding and must stay zero.
    at(&mut expected, 8, &[0xff; 8]);
    check(&owner, &expected);
}

#[test]
fn local_prefix_golden() {
    let lp = LocalPrefix::vmd_default();
    let mut expected = vec![0u8; 40];
    at(&mut expected, 0, &[100, 64, 0, 0]);
    at(&mut expected, 4, &[255, 192, 0, 0]);
    at(&mut expected, 8, &[0xfd]);
    at(&mut expected, 24, &[0xff]);
    check(&lp, &expected);
}

#[test]
fn vmd_config_golden() {
    let mut cfg = VmdConfig::zeroed();
    cfg.cfg_flags = vmd_config::VMD_CFG_STAGGERED_START;
    cfg.delay.tv_sec = 30;
    cfg.parallelism = 2;
    cfg.cfg_localprefix = LocalPrefix::vmd_default();
    cfg.cfg_agentx.ax_enabled = 1;
    cfg.cfg_agentx.ax_path = name("/var/agentx/master");
    cfg.cfg_agentx.ax_context = name("vmctx");
    let mut expected = vec![0u8; 216];
    at(&mut expected, 0, &[4, 0, 0, 0]);
    // 4..8 is padding.
    at(&mut expected, 8, &[30]);
    at(&mut expected, 24, &[2]);
    at(&mut expected, 28, &[100, 64, 0, 0, 255, 192, 0, 0, 0xfd]);
    at(&mut expected, 28 + 24, &[0xff]);
    at(&mut expected, 68, &[1]);
    at(&mut expected, 72, b"/var/agentx/master");
    at(&mut expected, 176, b"vmctx");
    // 209..216 is padding.
    check(&cfg, &expected);
}

fn info_result() -> VmInfoResult {
    let mut vir = VmInfoResult::zeroed();
    vir.vir_memory_size = 0x2000_0000;
    vir.vir_used_size = 0x1000;
    vir.vir_ncpus = 1;
    vir.vir_vcpu_state[0] = 1;
    vir.vir_creator_pid = 4242;
    vir.vir_id = 3;
    vir.vir_name = name("vm3");
    vir
}

#[test]
fn vmop_info_result_golden() {
    let vir = VmopInfoResult {
        vir_info: info_result(),
        vir_ttyname: name("/dev/ttyp0"),
        vir_uid: 0,
        vir_gid: 0x7fff_ffff_0000_0001,
        vir_state: vmd_vm::VM_STATE_RUNNING | vmd_vm::VM_STATE_PAUSED,
    };
    let mut expected = vec![0u8; 200];
    at(&mut expected, 0, &0x2000_0000u64.to_le_bytes());
    at(&mut expected, 8, &[0x00, 0x10, 0, 0, 0, 0, 0, 0]);
    at(&mut expected, 16, &[1, 0, 0, 0, 0, 0, 0, 0]);
    at(&mut expected, 24, &[1]); // vir_vcpu_state[0]
    at(&mut expected, 88, &[0x92, 0x10, 0, 0]); // vir_creator_pid 4242
    at(&mut expected, 92, &[3, 0, 0, 0]);
    at(&mut expected, 96, b"vm3");
    at(&mut expected, 160, b"/dev/ttyp0");
    at(&mut expected, 176, &[0, 0, 0, 0]);
    at(&mut expected, 184, &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f]);
    at(&mut expected, 192, &[0x11, 0, 0, 0]);
    check(&vir, &expected);
}

fn create_params() -> VmopCreateParams {
    let mut vmc = VmopCreateParams::zeroed();
    vmc.vmc_nmemranges = 2;
    vmc.vmc_ncpus = 1;
    vmc.vmc_memranges[1] = VmMemRange {
        vmr_gpa: 0x10_0000,
        vmr_va: 0,
        vmr_size: 0x1000_0000,
        vmr_type: vmm_sys::consts::VM_MEM_RESERVED,
    };
    vmc.vmc_name = name("web");
    vmc.vmc_sev = 1;
    vmc.vmc_seves = 2;
    vmc.vmc_flags = vmop::VMOP_CREATE_MEMORY | vmop::VMOP_CREATE_DISK;
    vmc.vmc_checkaccess = vmop::VMOP_CREATE_CDROM;
    vmc.vmc_bootdevice = vmop::VMBOOTDEV_NET;
    vmc.vmc_ifflags[3] = vmop::VMIFF_UP | vmop::VMIFF_LOCAL;
    vmc.vmc_ndisks = 1;
    vmc.vmc_disks[1] = name("/var/vm/b.qcow2");
    vmc.vmc_disktypes[1] = vmop::VMDF_QCOW2;
    vmc.vmc_diskbases[1] = 2;
    vmc.vmc_cdrom = name("/iso/install.iso");
    vmc.vmc_kernel = -1;
    vmc.vmc_nnics = 4;
    vmc.vmc_ifnames[3] = name("tap3");
    vmc.vmc_ifswitch[3] = name("uplink");
    vmc.vmc_ifgroup[3] = name("vms");
    vmc.vmc_ifrdomain[3] = 5;
    vmc.vmc_macs[3] = [0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x03];
    vmc.vmc_owner = VmopOwner {
        uid: 1000,
        gid: 1001,
    };
    vmc.vmc_instance = name("tmpl");
    vmc.vmc_insowner = VmopOwner { uid: 7, gid: -1 };
    vmc.vmc_insflags = 0x7f;
    vmc
}

/// Hand-written bytes of [`create_params`], field by field from the table.
fn create_params_bytes() -> Vec<u8> {
    let mut e = vec![0u8; 6336];
    at(&mut e, 0, &[2, 0, 0, 0, 0, 0, 0, 0]); // vmc_nmemranges
    at(&mut e, 8, &[1, 0, 0, 0, 0, 0, 0, 0]); // vmc_ncpus
                                              // vmc_memranges[1] at 16 + 32: gpa, va, size, type
    at(&mut e, 48, &[0, 0, 0x10, 0, 0, 0, 0, 0]);
    at(&mut e, 64, &[0, 0, 0, 0x10, 0, 0, 0, 0]);
    at(&mut e, 72, &[1, 0, 0, 0]);
    at(&mut e, 528, b"web"); // vmc_name
    at(&mut e, 592, &[1, 0, 0, 0]); // vmc_sev
    at(&mut e, 596, &[2, 0, 0, 0]); // vmc_seves
    at(&mut e, 600, &[0x14, 0, 0, 0]); // vmc_flags
    at(&mut e, 604, &[0x20, 0, 0, 0]); // vmc_checkaccess
    at(&mut e, 608, &[3, 0, 0, 0]); // vmc_bootdevice
    at(&mut e, 612 + 12, &[5, 0, 0, 0]); // vmc_ifflags[3]
    at(&mut e, 632, &[1, 0, 0, 0, 0, 0, 0, 0]); // vmc_ndisks
    at(&mut e, 640 + 1024, b"/var/vm/b.qcow2"); // vmc_disks[1]
    at(&mut e, 4736 + 4, &[2, 0, 0, 0]); // vmc_disktypes[1]
    at(&mut e, 4752 + 4, &[2, 0, 0, 0]); // vmc_diskbases[1]
    at(&mut e, 4768, b"/iso/install.iso"); // vmc_cdrom
    at(&mut e, 5792, &[0xff; 4]); // vmc_kernel
    at(&mut e, 5800, &[4, 0, 0, 0, 0, 0, 0, 0]); // vmc_nnics
    at(&mut e, 5808 + 48, b"tap3"); // vmc_ifnames[3]
    at(&mut e, 5872 + 192, b"uplink"); // vmc_ifswitch[3]
    at(&mut e, 6128 + 48, b"vms"); // vmc_ifgroup[3]
    at(&mut e, 6192 + 12, &[5, 0, 0, 0]); // vmc_ifrdomain[3]
    at(&mut e, 6208 + 18, &[0xfe, 0xe1, 0xba, 0xd0, 0x00, 0x03]); // vmc_macs[3]
    at(
        &mut e,
        6232,
        &[0xe8, 0x03, 0, 0, 0, 0, 0, 0, 0xe9, 0x03, 0, 0, 0, 0, 0, 0],
    );
    at(&mut e, 6248, b"tmpl"); // vmc_instance
    at(&mut e, 6312, &[7, 0, 0, 0, 0, 0, 0, 0]); // vmc_insowner.uid
    at(&mut e, 6320, &[0xff; 8]); // vmc_insowner.gid
    at(&mut e, 6328, &[0x7f, 0, 0, 0]); // vmc_insflags
    e
}

#[test]
fn vmop_create_params_golden() {
    check(&create_params(), &create_params_bytes());
}

#[test]
fn vmd_vm_golden() {
    let mut vm = VmdVm::zeroed();
    vm.vm_params = create_params();
    vm.vm_pid = 555;
    vm.vm_vmid = 2;
    vm.vm_vmmid = 9;
    vm.vm_poscbit = 51;
    vm.vm_sev_handle = 0xabcd;
    vm.vm_sev_asid[63] = 0x77;
    vm.vm_sev_nmemsegments = 128;
    vm.vm_sev_memsegments[127].vmr_type = vmm_sys::consts::VM_MEM_MMIO;
    vm.vm_kernel = 12;
    vm.vm_kernel_path = 0x0000_7f00_dead_0000;
    vm.vm_cdrom = -1;
    vm.vm_disks[3][3] = 42;
    vm.vm_ifs[3].vif_fd = 17;
    vm.vm_ifs[3].vif_entry = [0x1111, 0x2222];
    vm.vm_ttyname = name("/dev/ttyp9");
    vm.vm_tty = 8;
    vm.vm_peerid = 0xffff_fffe;
    vm.vm_from_config = 1;
    vm.vm_iev.ibuf.fd = 5;
    vm.vm_iev.ev.ev_fd = 5;
    vm.vm_iev.events = 2;
    vm.vm_uid = 1000;
    vm.vm_state = vmd_vm::VM_STATE_RUNNING;
    vm.vm_start_tv = Timeval {
        tv_sec: 1_700_000_000,
        tv_usec: 999_999,
    };
    vm.vm_start_limit = 3;
    vm.vm_entry = [0xaaaa, 0xbbbb];

    let mut e = create_params_bytes();
    e.resize(11296, 0);
    at(&mut e, 6336, &[0x2b, 0x02, 0, 0]); // vm_pid 555
    at(&mut e, 6340, &[2, 0, 0, 0]); // vm_vmid
    at(&mut e, 6344, &[9, 0, 0, 0]); // vm_vmmid
    at(&mut e, 6348, &[51, 0, 0, 0]); // vm_poscbit
    at(&mut e, 6352, &[0xcd, 0xab, 0, 0]); // vm_sev_handle
    at(&mut e, 6356 + 63 * 4, &[0x77, 0, 0, 0]); // vm_sev_asid[63]
    at(&mut e, 6616, &[128, 0, 0, 0, 0, 0, 0, 0]); // vm_sev_nmemsegments
    at(&mut e, 6624 + 127 * 32 + 24, &[2, 0, 0, 0]); // [127].vmr_type
    at(&mut e, 10720, &[12, 0, 0, 0]); // vm_kernel
    at(&mut e, 10728, &[0, 0, 0xad, 0xde, 0x00, 0x7f, 0, 0]); // vm_kernel_path
    at(&mut e, 10736, &[0xff; 4]); // vm_cdrom
    at(&mut e, 10740 + 60, &[42, 0, 0, 0]); // vm_disks[3][3]
    at(&mut e, 10808 + 3 * 56 + 24, &[17, 0, 0, 0]); // vm_ifs[3].vif_fd
    at(
        &mut e,
        10808 + 3 * 56 + 40,
        &[0x11, 0x11, 0, 0, 0, 0, 0, 0, 0x22, 0x22],
    );
    at(&mut e, 11032, b"/dev/ttyp9"); // vm_ttyname
    at(&mut e, 11048, &[8, 0, 0, 0]); // vm_tty
    at(&mut e, 11052, &[0xfe, 0xff, 0xff, 0xff]); // vm_peerid
    at(&mut e, 11056, &[1, 0, 0, 0]); // vm_from_config
    at(&mut e, 11064 + 16, &[5, 0, 0, 0]); // vm_iev.ibuf.fd
    at(&mut e, 11064 + 32 + 64, &[5, 0, 0, 0]); // vm_iev.ev.ev_fd
    at(&mut e, 11064 + 176, &[2, 0]); // vm_iev.events
    at(&mut e, 11248, &[0xe8, 0x03, 0, 0]); // vm_uid
    at(&mut e, 11252, &[1, 0, 0, 0]); // vm_state
    at(&mut e, 11256, &1_700_000_000i64.to_le_bytes()); // vm_start_tv.tv_sec
    at(&mut e, 11264, &[0x3f, 0x42, 0x0f, 0, 0, 0, 0, 0]); // tv_usec 999999
    at(&mut e, 11272, &[3, 0, 0, 0]); // vm_start_limit
    at(&mut e, 11280, &[0xaa, 0xaa, 0, 0, 0, 0, 0, 0, 0xbb, 0xbb]); // vm_entry
    check(&vm, &e);
}

#[test]
fn virtio_dev_golden_vionet() {
    let mut dev = VirtioDev::zeroed();
    dev.device_id = 0x1000;
    dev.dev.set_vionet(&VionetDev {
        data_fd: 6,
        mac: [0xfe, 0xe1, 0xba, 0xd0, 0, 1],
        hostmac: [0xfe, 0xe1, 0xba, 0xd1, 0, 1],
        lockedmac: 1,
        local: 1,
        pxeboot: 0,
        local_prefix: LocalPrefix::vmd_default(),
        idx: 3,
    });
    dev.cfg.queue_notify = 0xbeef;
    dev.pci_cfg.device_status = 0x0f;
    dev.pci_cfg.queue_desc = 0x0102_0304_0506_0708;
    dev.pci_cfg.queue_used = u64::MAX;
    dev.vq[2].q_gpa = 0x4000;
    dev.vq[2].vq_enabled = 1;
    dev.num_queues = 2;
    dev.queue_size = 256;
    dev.isr = 1;
    dev.status = 7;
    dev.device_feature = 1 << 32 | 1 << 5;
    dev.driver_feature = 1 << 5;
    dev.pci_id = 4;
    dev.vmm_id = 10;
    dev.irq = 11;
    dev.async_iev.ibuf.fd = 20;
    dev.sync_iev.handler = 0x5555;
    dev.sync_fd = 21;
    dev.async_fd = 22;
    dev.vm_id = 12;
    dev.dev_pid = 3030;
    dev.dev_type = VMD_DEVTYPE_NET;
    dev.dev_next = 0x6666;

    let mut e = vec![0u8; 944];
    at(&mut e, 0, &[0x00, 0x10]); // device_id
                                  // the union at 8, read as vionet_dev
    at(&mut e, 8, &[6, 0, 0, 0]); // data_fd
    at(&mut e, 8 + 4, &[0xfe, 0xe1, 0xba, 0xd0, 0, 1]); // mac
    at(&mut e, 8 + 10, &[0xfe, 0xe1, 0xba, 0xd1, 0, 1]); // hostmac
    at(&mut e, 8 + 16, &[1, 0, 0, 0]); // lockedmac
    at(&mut e, 8 + 20, &[1, 0, 0, 0]); // local
    at(&mut e, 8 + 28, &[100, 64, 0, 0, 255, 192, 0, 0, 0xfd]); // local_prefix
    at(&mut e, 8 + 28 + 24, &[0xff]); // lp_mask6
    at(&mut e, 8 + 68, &[3, 0, 0, 0]); // idx
    at(&mut e, 304 + 16, &[0xef, 0xbe]); // cfg.queue_notify
    at(&mut e, 324 + 20, &[0x0f]); // pci_cfg.device_status
    at(&mut e, 324 + 32, &[8, 7, 6, 5, 4, 3, 2, 1]); // pci_cfg.queue_desc
    at(&mut e, 324 + 48, &[0xff; 8]); // pci_cfg.queue_used
    at(&mut e, 384 + 80, &[0, 0x40, 0, 0, 0, 0, 0, 0]); // vq[2].q_gpa
    at(&mut e, 384 + 80 + 36, &[1]); // vq[2].vq_enabled
    at(&mut e, 504, &[2, 0, 0, 1, 1, 7]); // num_queues, queue_size, isr, status
    at(&mut e, 512, &[0x20, 0, 0, 0, 1, 0, 0, 0]); // device_feature
    at(&mut e, 520, &[0x20, 0, 0, 0, 0, 0, 0, 0]); // driver_feature
    at(&mut e, 528, &[4]); // pci_id
    at(&mut e, 532, &[10, 0, 0, 0]); // vmm_id
    at(&mut e, 536, &[11, 0, 0, 0]); // irq
    at(&mut e, 544 + 16, &[20, 0, 0, 0]); // async_iev.ibuf.fd
    at(&mut e, 728 + 24, &[0x55, 0x55]); // sync_iev.handler
    at(&mut e, 912, &[21, 0, 0, 0, 22, 0, 0, 0]); // sync_fd, async_fd
    at(&mut e, 920, &[12, 0, 0, 0]); // vm_id
    at(&mut e, 924, &[0xd6, 0x0b, 0, 0]); // dev_pid 3030
    at(&mut e, 928, b"n"); // dev_type
    at(&mut e, 936, &[0x66, 0x66]); // dev_next
    check(&dev, &e);
    assert_eq!(dev.dev.vionet().idx, 3);
}

#[test]
fn virtio_dev_union_views() {
    let mut dev = VirtioDev::zeroed();
    let mut blk = VioblkDev::zeroed();
    blk.disk_fd = [3, 4, -1, -1];
    blk.ndisk_fd = 2;
    blk.capacity = 0x20_0000;
    blk.seg_max = 126;
    blk.idx = 1;
    dev.dev.set_vioblk(&blk);
    let bytes = dev.to_bytes();
    // vioblk_dev: disk_fd at 48, ndisk_fd 64, capacity 72, seg_max 80, idx 84
    assert_eq!(
        &bytes[8 + 48..8 + 64],
        &[3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
    );
    assert_eq!(bytes[8 + 64], 2);
    assert_eq!(&bytes[8 + 72..8 + 80], &0x20_0000u64.to_le_bytes());
    assert_eq!(&bytes[8 + 80..8 + 88], &[126, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(VirtioDev::from_bytes(&bytes).unwrap().dev.vioblk(), blk);

    // Switching member clears the old member's bytes.
    let mut scsi = VioscsiDev::zeroed();
    scsi.cdrom_fd = 9;
    scsi.max_xfer = 2048;
    dev.dev.set_vioscsi(&scsi);
    let bytes = dev.to_bytes();
    assert_eq!(&bytes[8 + 48..8 + 56], &[9, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&bytes[8 + 80..8 + 84], &[0, 8, 0, 0]);
    assert!(bytes[8 + 84..8 + 296].iter().all(|&b| b == 0));

    let mut vmmci = VmmciDev::zeroed();
    vmmci.cmd = virtio_dev::VMMCI_REBOOT;
    vmmci.dev_pipe.read_ev.ev_flags = 0x80;
    dev.dev.set_vmmci(&vmmci);
    let bytes = dev.to_bytes();
    assert_eq!(&bytes[8 + 144..8 + 148], &[2, 0, 0, 0]); // cmd
    assert_eq!(
        &bytes[8 + 160 + 8 + 124..8 + 160 + 8 + 128],
        &[0x80, 0, 0, 0]
    );
    assert_eq!(dev.dev.vmmci(), vmmci);
}

/// The sizes table of vmm-sys/ABI.md and the Rust types agree.
#[test]
fn sizes_match_abi_md() {
    const ABI_MD: &str = include_str!("../../../vmm-sys/ABI.md");
    fn size_in_table(name: &str) -> usize {
        let row = format!("| `{name}` |");
        let line = ABI_MD
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("struct {name} missing from ABI.md"));
        line.split('|').nth(2).unwrap().trim().parse().unwrap()
    }
    fn check<T: Wire>(c: &str) {
        assert_eq!(T::SIZE, size_in_table(c), "struct {c}");
    }
    check::<ImsgBuf>("imsgbuf");
    check::<Event>("event");
    check::<ImsgEv>("imsgev");
    check::<VirtioPciCommonCfg>("virtio_pci_common_cfg");
    check::<VmopResult>("vmop_result");
    check::<VmopInfoResult>("vmop_info_result");
    check::<VmopId>("vmop_id");
    check::<VmopOwner>("vmop_owner");
    check::<VmopCreateParams>("vmop_create_params");
    check::<VmdIf>("vmd_if");
    check::<VmdVm>("vmd_vm");
    check::<Timeval>("timeval");
    check::<LocalPrefix>("local_prefix");
    check::<VmdAgentx>("vmd_agentx");
    check::<VmdConfig>("vmd_config");
    check::<VmDevPipe>("vm_dev_pipe");
    check::<ViodevMsg>("viodev_msg");
    check::<VirtioIoCfg>("virtio_io_cfg");
    check::<VirtioBacking>("virtio_backing");
    check::<VirtioVqInfo>("virtio_vq_info");
    check::<VioblkDev>("vioblk_dev");
    check::<VioscsiDev>("vioscsi_dev");
    check::<VionetDev>("vionet_dev");
    check::<VmmciDev>("vmmci_dev");
    check::<VirtioDev>("virtio_dev");
}
