//! Test helper: reads the tables of ABI.md, so the committed numbers, the
//! const assertions and the code cannot drift apart silently.

const ABI_MD: &str = include_str!("../ABI.md");

/// `(request, hex column, decimal column)` of each ioctl table row.
pub(crate) fn ioctl_table() -> Vec<(String, u64, u64)> {
    ABI_MD
        .lines()
        .filter(|l| l.starts_with("| `VMM_IOC_"))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            let hex = u64::from_str_radix(cols[3].trim_start_matches("0x"), 16).unwrap();
            (cols[1].to_owned(), hex, cols[4].parse().unwrap())
        })
        .collect()
}

/// `sizeof` of `struct name` from the sizes table.
pub(crate) fn size_of_struct(name: &str) -> usize {
    let row = format!("| `{name}` |");
    let line = ABI_MD
        .lines()
        .find(|l| l.starts_with(&row))
        .unwrap_or_else(|| panic!("struct {name} missing from ABI.md"));
    line.split('|').nth(2).unwrap().trim().parse().unwrap()
}

#[test]
fn sizes_match_abi_md() {
    use crate::types::*;
    use crate::wire::Wire;
    fn check<T: Wire>(c: &str) {
        assert_eq!(T::SIZE, size_of_struct(c), "struct {c}");
    }
    check::<VmMemRange>("vm_mem_range");
    check::<VmCreateParams>("vm_create_params");
    check::<VmInfoResult>("vm_info_result");
    check::<VmInfoParams>("vm_info_params");
    check::<VmTerminateParams>("vm_terminate_params");
    check::<VmResetcpuParams>("vm_resetcpu_params");
    check::<VmSharememParams>("vm_sharemem_params");
    check::<VmRunParams>("vm_run_params");
    check::<VmRwvmparamsParams>("vm_rwvmparams_params");
    check::<VmExitInout>("vm_exit_inout");
    check::<VmExitEptViolation>("vm_exit_eptviolation");
    check::<VcpuInjectEvent>("vcpu_inject_event");
    check::<VcpuSegmentInfo>("vcpu_segment_info");
    check::<VcpuRegState>("vcpu_reg_state");
    check::<VmExit>("vm_exit");
    check::<VmIntrParams>("vm_intr_params");
    check::<VmRwregsParams>("vm_rwregs_params");
}
