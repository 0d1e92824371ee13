//! The vmm(4) backend (OpenBSD), as vmd's vm.c drives it: the VM is
//! created on the guest memory this process maps, a vcpu runs with
//! VMM_IOC_RUN, an IN's result goes back in the exit structure on the next
//! run, interrupts are injected through `vrp_inject` when vmm(4) says the
//! guest is ready (`vrp_irqready`), and VMM_IOC_INTR asks it to exit at
//! the next interrupt window. Only built on OpenBSD; CI type-checks it.

use std::sync::Arc;

use devices::memory::GuestMemory;
use vmm_sys::consts::*;
use vmm_sys::{
    VcpuRegState, VcpuSegmentInfo, VmCreateParams, VmExit, VmExitInout, VmMemRange, VmRunParams,
    Vmm, Wire,
};

use super::{Exit, HvError};

fn sys(what: &'static str) -> impl FnOnce(vmm_sys::Error) -> HvError {
    move |e| HvError::Sys {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

/// A VM in vmm(4).
pub struct VmmVm {
    vmm: Arc<Vmm>,
    id: u32,
    _mem: GuestMemory,
}

impl VmmVm {
    /// Creates VM `name` on `mem`, mapped in this process.
    pub fn new(vmm: Vmm, name: &str, mem: &GuestMemory) -> Result<VmmVm, HvError> {
        let ranges: Vec<VmMemRange> = mem
            .regions()
            .map(|r| VmMemRange {
                vmr_gpa: r.range.guest_addr,
                vmr_va: r.host_addr as u64,
                vmr_size: r.range.size as u64,
                vmr_type: VM_MEM_RAM,
            })
            .collect();
        let mut params = VmCreateParams::new(name, 1, &ranges).map_err(sys("vm parameters"))?;
        let id = vmm.create(&mut params).map_err(sys("VMM_IOC_CREATE"))?;
        Ok(VmmVm {
            vmm: Arc::new(vmm),
            id,
            _mem: mem.clone(),
        })
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn create_vcpu(&self) -> VmmVcpu {
        let mut params = VmRunParams::zeroed();
        params.vrp_vm_id = self.id;
        params.vrp_vcpu_id = 0;
        VmmVcpu {
            vmm: self.vmm.clone(),
            vm_id: self.id,
            params,
            exit: Box::new(VmExit::zeroed()),
            io: [0; 4],
            pending_in: None,
        }
    }
}

impl Drop for VmmVm {
    fn drop(&mut self) {
        let _ = self.vmm.terminate(self.id);
    }
}

pub struct VmmVcpu {
    vmm: Arc<Vmm>,
    vm_id: u32,
    params: VmRunParams,
    exit: Box<VmExit>,
    /// Data of the current IN/OUT exit.
    io: [u8; 4],
    /// An IN whose result goes to the kernel with the next run.
    pending_in: Option<VmExitInout>,
}

fn segment(sel: u16, limit: u32, ar: u32, base: u64) -> VcpuSegmentInfo {
    VcpuSegmentInfo {
        vsi_sel: sel,
        vsi_limit: limit,
        vsi_ar: ar,
        vsi_base: base,
    }
}

impl super::Vcpu for VmmVcpu {
    fn run(&mut self) -> Result<Exit<'_>, HvError> {
        if let Some(mut vei) = self.pending_in.take() {
            vei.vei_data = u32::from_le_bytes(self.io);
            self.exit.info.set_inout(&vei);
        }
        self.vmm
            .run(&mut self.params, &mut self.exit)
            .map_err(sys("VMM_IOC_RUN"))?;
        self.params.vrp_inject.vie_type = VCPU_INJECT_NONE;
        Ok(match self.params.vrp_exit_reason {
            VMX_EXIT_IO | SVM_VMEXIT_IOIO => {
                let vei = self.exit.info.inout();
                let len = usize::from(vei.vei_size).clamp(1, 4);
                if vei.vei_dir == VEI_DIR_IN {
                    self.io = [0; 4];
                    self.pending_in = Some(vei);
                    Exit::IoIn {
                        port: vei.vei_port,
                        data: &mut self.io[..len],
                    }
                } else {
                    self.io = vei.vei_data.to_le_bytes();
                    Exit::IoOut {
                        port: vei.vei_port,
                        data: &self.io[..len],
                    }
                }
            }
            VMX_EXIT_HLT | SVM_VMEXIT_HLT => Exit::Halt,
            VMX_EXIT_INT_WINDOW | SVM_VMEXIT_VINTR => Exit::InterruptWindow,
            VMX_EXIT_TRIPLE_FAULT | SVM_VMEXIT_SHUTDOWN => Exit::Shutdown,
            VM_EXIT_NONE | VMX_EXIT_EXTINT | SVM_VMEXIT_INTR => Exit::Interrupted,
            other => Exit::Other(format!("vmm(4) exit reason {other:#x}")),
        })
    }

    fn interrupts_enabled(&mut self) -> Result<bool, HvError> {
        let regs = self
            .vmm
            .read_regs(self.vm_id, 0, VM_RWREGS_GPRS)
            .map_err(sys("VMM_IOC_READREGS"))?;
        Ok(regs.vrs_gprs[VCPU_REGS_RFLAGS] & (1 << 9) != 0)
    }

    fn ready_for_interrupt(&mut self) -> bool {
        self.params.vrp_irqready != 0
    }

    fn inject_interrupt(&mut self, vector: u8) -> Result<(), HvError> {
        self.params.vrp_inject.vie_vector = vector;
        self.params.vrp_inject.vie_type = VCPU_INJECT_INTR;
        Ok(())
    }

    fn request_interrupt_window(&mut self, on: bool) {
        self.params.vrp_intr_pending = u8::from(on);
        let _ = self.vmm.intr(self.vm_id, 0, u16::from(on));
    }

    /// vmd's flat 16-bit start state (vcpu_init_flat16), at `segment`:`ip`.
    fn set_real_mode_entry(&mut self, seg: u16, ip: u16) -> Result<(), HvError> {
        let mut vrs = VcpuRegState::zeroed();
        vrs.vrs_gprs[VCPU_REGS_RFLAGS] = 0x2;
        vrs.vrs_gprs[VCPU_REGS_RIP] = u64::from(ip);
        vrs.vrs_crs[VCPU_REGS_CR0] = 0x6000_0010;
        vrs.vrs_sregs[VCPU_REGS_CS] = segment(seg, 0xffff, 0x9b, u64::from(seg) << 4);
        for s in [
            VCPU_REGS_DS,
            VCPU_REGS_ES,
            VCPU_REGS_FS,
            VCPU_REGS_GS,
            VCPU_REGS_SS,
        ] {
            vrs.vrs_sregs[s] = segment(0, 0xffff, 0x93, 0);
        }
        vrs.vrs_sregs[VCPU_REGS_LDTR] = segment(0, 0xffff, 0x82, 0);
        vrs.vrs_sregs[VCPU_REGS_TR] = segment(0, 0xffff, 0x8b, 0);
        vrs.vrs_gdtr = segment(0, 0xffff, 0, 0);
        vrs.vrs_idtr = segment(0, 0xffff, 0, 0);
        vrs.vrs_drs[VCPU_REGS_DR6] = 0xffff_0ff0;
        vrs.vrs_drs[VCPU_REGS_DR7] = 0x400;
        self.vmm
            .reset_cpu(self.vm_id, 0, &vrs)
            .map_err(sys("VMM_IOC_RESETCPU"))
    }

    fn set_reg_state(&mut self, vrs: &VcpuRegState) -> Result<(), HvError> {
        self.vmm
            .reset_cpu(self.vm_id, 0, vrs)
            .map_err(sys("VMM_IOC_RESETCPU"))
    }

    fn reg_state(&mut self) -> Result<VcpuRegState, HvError> {
        self.vmm
            .read_regs(self.vm_id, 0, VM_RWREGS_ALL)
            .map_err(sys("VMM_IOC_READREGS"))
    }

    /// vmm(4) returns to vmd on every host interrupt, so a vcpu needs no
    /// signal: a pending interrupt is announced with VMM_IOC_INTR.
    fn bind_to_current_thread(&mut self) -> Result<Box<dyn Fn() + Send + Sync>, HvError> {
        let vmm = self.vmm.clone();
        let vm_id = self.vm_id;
        Ok(Box::new(move || {
            let _ = vmm.intr(vm_id, 0, 1);
        }))
    }

    /// vmm(4) answers CPUID in the kernel: the host's leaf 1 with the
    /// feature bits of its VMM_CPUIDEDX_MASK cleared.
    fn cpuid_leaf1(&self) -> (u32, u32) {
        // ACPI, TM, HTT, DS, APIC, PSN, SS, PBE, MTRR, MCE, MCA.
        const HIDDEN_EDX: u32 = 1 << 22
            | 1 << 29
            | 1 << 28
            | 1 << 21
            | 1 << 9
            | 1 << 18
            | 1 << 27
            | 1 << 31
            | 1 << 12
            | 1 << 7
            | 1 << 14;
        // SAFETY: CPUID exists on every x86_64 CPU; leaf 1 always does.
        #[allow(unused_unsafe)]
        let leaf = unsafe { std::arch::x86_64::__cpuid(1) };
        (leaf.eax, leaf.edx & !HIDDEN_EDX)
    }
}
