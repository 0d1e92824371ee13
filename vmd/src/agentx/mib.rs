//! The part of VM-MIB (RFC 7666) vmd serves, as values: what vm_agentx.c
//! registers under vmMIB (1.3.6.1.2.1.236) and fills from the VM list the
//! parent sends, and the answers to Get, GetNext and GetBulk over it.
//!
//! vmd serves the vmHypervisor scalars, vmNumber and these vmTable
//! columns: vmName, vmUUID and vmOSType (both empty), vmAdminState,
//! vmOperState, vmAutoStart, vmPersistent, the three CPU counts, vmMemUnit
//! (1 MiB), vmCurMem, vmMinMem (-1: no minimum) and vmMaxMem. Like the C
//! vmd it has no vmTableLastChange, no per-VM CPU, storage or network
//! tables and no notifications; those OIDs are noSuchObject.

use std::collections::BTreeMap;

use vm::abi::vmd_vm::{VM_STATE_DISABLED, VM_STATE_PAUSED, VM_STATE_RUNNING};
use vm::abi::VmopInfoResult;
use vmm_sys::wire::c_str;

use super::pdu::{Oid, Payload, SearchRange, Value, VarBind, ERROR_NONE};

/// vmMIB: mib-2.236.
pub const VM_MIB: [u32; 7] = [1, 3, 6, 1, 2, 1, 236];

/// vmObjects (vmMIB.1) sub-identifiers of the scalars.
const VM_HV_SOFTWARE: [u32; 3] = [1, 1, 1];
const VM_HV_VERSION: [u32; 3] = [1, 1, 2];
const VM_HV_OBJECT_ID: [u32; 3] = [1, 1, 3];
const VM_NUMBER: [u32; 2] = [1, 2];
/// vmEntry: vmObjects.4.1; its columns follow.
const VM_ENTRY: [u32; 3] = [1, 4, 1];

/// vmTable columns (vmIndex, column 1, is not-accessible).
const VM_NAME: u32 = 2;
const VM_UUID: u32 = 3;
const VM_OS_TYPE: u32 = 4;
const VM_ADMIN_STATE: u32 = 5;
const VM_OPER_STATE: u32 = 6;
const VM_AUTO_START: u32 = 7;
const VM_PERSISTENT: u32 = 8;
const VM_CUR_CPU_NUMBER: u32 = 9;
const VM_MIN_CPU_NUMBER: u32 = 10;
const VM_MAX_CPU_NUMBER: u32 = 11;
const VM_MEM_UNIT: u32 = 12;
const VM_CUR_MEM: u32 = 13;
const VM_MIN_MEM: u32 = 14;
const VM_MAX_MEM: u32 = 15;
const VM_COLUMNS: std::ops::RangeInclusive<u32> = VM_NAME..=VM_MAX_MEM;

/// vmMemUnit: memory counts are in MiB.
const MEM_SCALE: u64 = 1024 * 1024;

/// VirtualMachineAdminState.
const ADMIN_RUNNING: i32 = 1;
const ADMIN_PAUSED: i32 = 3;
const ADMIN_SHUTDOWN: i32 = 4;
/// VirtualMachineOperState.
const OPER_RUNNING: i32 = 4;
const OPER_PAUSED: i32 = 8;
const OPER_SHUTDOWN: i32 = 11;
/// VirtualMachineAutoStart.
const AUTO_START_ENABLED: i32 = 2;
const AUTO_START_DISABLED: i32 = 3;
/// VirtualMachinePersistent: vmd cannot tell VMs made at run time from
/// configured ones here, and says persistent for all, as C vmd.
const PERSISTENT: i32 = 1;

/// Most variable bindings in one GetBulk answer; the rest of the walk is
/// the manager's next request (RFC 2741, 7.2.3.3 lets it be shorter).
pub const MAX_BULK_VARBINDS: usize = 1024;

/// The vmHypervisor group's values.
#[derive(Debug, Clone)]
pub struct Hypervisor {
    /// vmHvSoftware.
    pub software: String,
    /// vmHvVersion: the kernel's release.
    pub version: String,
}

fn admin_state(state: u32) -> i32 {
    if state & VM_STATE_PAUSED != 0 {
        ADMIN_PAUSED
    } else if state & VM_STATE_RUNNING != 0 {
        ADMIN_RUNNING
    } else {
        // Shutting down, stopped, disabled: the VM is off.
        ADMIN_SHUTDOWN
    }
}

fn oper_state(state: u32) -> i32 {
    if state & VM_STATE_PAUSED != 0 {
        OPER_PAUSED
    } else if state & VM_STATE_RUNNING != 0 {
        OPER_RUNNING
    } else {
        OPER_SHUTDOWN
    }
}

fn int(v: u64) -> Value {
    Value::Integer(i32::try_from(v).unwrap_or(i32::MAX))
}

/// Every instance vmd serves at one moment, by OID.
#[derive(Debug, Clone)]
pub struct MibView {
    instances: BTreeMap<Oid, Value>,
    /// The registered objects (scalars and columns), for telling
    /// noSuchInstance from noSuchObject.
    objects: Vec<Oid>,
}

fn mib_oid(sub: &[u32]) -> Oid {
    let mut ids = VM_MIB.to_vec();
    ids.extend_from_slice(sub);
    // At most 7 + 5 sub-identifiers: far below the limit.
    Oid::new(&ids).unwrap_or_default()
}

fn column(col: u32) -> Oid {
    mib_oid(&[VM_ENTRY[0], VM_ENTRY[1], VM_ENTRY[2], col])
}

impl MibView {
    /// The view of `vms` as the parent listed them (running VMs from vmm,
    /// then the others).
    pub fn new(hv: &Hypervisor, vms: &[VmopInfoResult]) -> MibView {
        let mut instances = BTreeMap::new();
        let mut put = |object: Oid, index: u32, value: Value| {
            if let Some(oid) = object.child(&[index]) {
                instances.entry(oid).or_insert(value);
            }
        };
        put(
            mib_oid(&VM_HV_SOFTWARE),
            0,
            Value::OctetString(hv.software.clone().into_bytes()),
        );
        put(
            mib_oid(&VM_HV_VERSION),
            0,
            Value::OctetString(hv.version.clone().into_bytes()),
        );
        // vmd has no OID of its own to name here: 0.0, as C vmd.
        put(
            mib_oid(&VM_HV_OBJECT_ID),
            0,
            Value::ObjectIdentifier(Oid::new(&[0, 0]).unwrap_or_default()),
        );
        put(mib_oid(&VM_NUMBER), 0, int(vms.len() as u64));
        for vir in vms {
            let info = &vir.vir_info;
            let id = info.vir_id;
            // vmIndex is 1..2147483647.
            if id == 0 || id > i32::MAX as u32 {
                continue;
            }
            let state = vir.vir_state;
            let ncpus = int(info.vir_ncpus);
            let name = c_str(&info.vir_name).to_vec();
            for col in VM_COLUMNS {
                let value = match col {
                    VM_NAME => Value::OctetString(name.clone()),
                    VM_UUID | VM_OS_TYPE => Value::OctetString(Vec::new()),
                    VM_ADMIN_STATE => Value::Integer(admin_state(state)),
                    VM_OPER_STATE => Value::Integer(oper_state(state)),
                    VM_AUTO_START => Value::Integer(if state & VM_STATE_DISABLED != 0 {
                        AUTO_START_DISABLED
                    } else {
                        AUTO_START_ENABLED
                    }),
                    VM_PERSISTENT => Value::Integer(PERSISTENT),
                    VM_CUR_CPU_NUMBER | VM_MIN_CPU_NUMBER | VM_MAX_CPU_NUMBER => ncpus.clone(),
                    VM_MEM_UNIT => int(MEM_SCALE),
                    VM_CUR_MEM => int(info.vir_used_size / MEM_SCALE),
                    VM_MIN_MEM => Value::Integer(-1),
                    _ => int(info.vir_memory_size / MEM_SCALE),
                };
                put(column(col), id, value);
            }
        }
        let mut objects = vec![
            mib_oid(&VM_HV_SOFTWARE),
            mib_oid(&VM_HV_VERSION),
            mib_oid(&VM_HV_OBJECT_ID),
            mib_oid(&VM_NUMBER),
        ];
        objects.extend(VM_COLUMNS.map(column));
        MibView { instances, objects }
    }

    /// Get: the instance, else noSuchInstance under a served object, else
    /// noSuchObject.
    pub fn get(&self, name: &Oid) -> VarBind {
        let value = match self.instances.get(name) {
            Some(v) => v.clone(),
            None if self.objects.iter().any(|o| name.starts_with(o)) => Value::NoSuchInstance,
            None => Value::NoSuchObject,
        };
        VarBind {
            name: name.clone(),
            value,
        }
    }

    /// GetNext over one search range: the first instance after its start
    /// (or at it, when the range includes it) and before its end, else
    /// endOfMibView named by the start.
    pub fn next(&self, range: &SearchRange) -> VarBind {
        let after = if range.include {
            self.instances.range(range.start.clone()..)
        } else {
            self.instances.range((
                std::ops::Bound::Excluded(range.start.clone()),
                std::ops::Bound::Unbounded,
            ))
        };
        match after
            .take(1)
            .find(|(oid, _)| range.end.is_null() || **oid < range.end)
        {
            Some((oid, value)) => VarBind {
                name: oid.clone(),
                value: value.clone(),
            },
            None => VarBind {
                name: range.start.clone(),
                value: Value::EndOfMibView,
            },
        }
    }

    /// GetBulk (RFC 2741, 7.2.3.3): the non-repeaters once, then up to
    /// `max_repetitions` rounds over the repeaters, each from where it
    /// stopped, until every repeater is at the end of its range.
    fn bulk(
        &self,
        non_repeaters: u16,
        max_repetitions: u16,
        ranges: &[SearchRange],
    ) -> Vec<VarBind> {
        let split = usize::from(non_repeaters).min(ranges.len());
        let (fixed, repeating) = ranges.split_at(split);
        let mut out: Vec<VarBind> = fixed.iter().map(|r| self.next(r)).collect();
        let mut cursors: Vec<SearchRange> = repeating.to_vec();
        for _ in 0..max_repetitions {
            if cursors.is_empty() || out.len() + cursors.len() > MAX_BULK_VARBINDS {
                break;
            }
            let mut all_ended = true;
            for cursor in cursors.iter_mut() {
                let vb = self.next(cursor);
                if vb.value != Value::EndOfMibView {
                    all_ended = false;
                    cursor.start = vb.name.clone();
                    cursor.include = false;
                }
                out.push(vb);
            }
            if all_ended {
                break;
            }
        }
        out
    }

    /// The variable bindings and the error status and index answering a
    /// Get, GetNext or GetBulk payload; `None` for other payloads.
    pub fn answer(&self, payload: &Payload) -> Option<(u16, u16, Vec<VarBind>)> {
        let varbinds = match payload {
            Payload::Get(ranges) => ranges.iter().map(|r| self.get(&r.start)).collect(),
            Payload::GetNext(ranges) => ranges.iter().map(|r| self.next(r)).collect(),
            Payload::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges,
            } => self.bulk(*non_repeaters, *max_repetitions, ranges),
            _ => return None,
        };
        Some((ERROR_NONE, 0, varbinds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm::abi::vmd_vm::VM_STATE_SHUTDOWN;
    use vmm_sys::wire::c_string;
    use vmm_sys::Wire;

    fn vm(id: u32, name: &str, state: u32, mem_mib: u64, used_mib: u64) -> VmopInfoResult {
        let mut r = VmopInfoResult::zeroed();
        r.vir_info.vir_id = id;
        r.vir_info.vir_name = c_string(name).unwrap();
        r.vir_info.vir_ncpus = 1;
        r.vir_info.vir_memory_size = mem_mib * MEM_SCALE;
        r.vir_info.vir_used_size = used_mib * MEM_SCALE;
        r.vir_state = state;
        r
    }

    fn hv() -> Hypervisor {
        Hypervisor {
            software: "OpenBSD VMM".into(),
            version: "7.8".into(),
        }
    }

    fn oid(sub: &[u32]) -> Oid {
        mib_oid(sub)
    }

    fn range(start: Oid, include: bool) -> SearchRange {
        SearchRange {
            start,
            include,
            end: Oid::null(),
        }
    }

    /// Walks the view as snmpwalk does, from vmMIB.
    fn walk(view: &MibView) -> Vec<VarBind> {
        let mut out = Vec::new();
        let mut r = range(mib_oid(&[]), false);
        r.end = Oid::new(&[1, 3, 6, 1, 2, 1, 237]).unwrap();
        loop {
            let vb = view.next(&r);
            if vb.value == Value::EndOfMibView {
                return out;
            }
            r.start = vb.name.clone();
            out.push(vb);
        }
    }

    #[test]
    fn the_walk_has_c_vmds_objects_and_values() {
        // vmd lists running VMs first: id order is the view's.
        let vms = [
            vm(2, "web", VM_STATE_RUNNING | VM_STATE_PAUSED, 512, 512),
            vm(1, "db", VM_STATE_DISABLED, 64, 0),
        ];
        let view = MibView::new(&hv(), &vms);
        let got: Vec<(String, Value)> = walk(&view)
            .into_iter()
            .map(|vb| (vb.name.to_string()[16..].to_string(), vb.value))
            .collect();
        let s = |t: &str| Value::OctetString(t.as_bytes().to_vec());
        let i = Value::Integer;
        let mut want = vec![
            ("1.1.1.0".to_string(), s("OpenBSD VMM")),
            ("1.1.2.0".into(), s("7.8")),
            (
                "1.1.3.0".into(),
                Value::ObjectIdentifier(Oid::new(&[0, 0]).unwrap()),
            ),
            ("1.2.0".into(), i(2)),
        ];
        let per_vm = |v: &[Value; 2]| {
            let mut rows = Vec::new();
            for col in 2..=15 {
                for (j, id) in [1, 2].iter().enumerate() {
                    let value = match col {
                        2 => s(if *id == 1 { "db" } else { "web" }),
                        3 | 4 => s(""),
                        5 => i(if *id == 1 { 4 } else { 3 }),
                        6 => i(if *id == 1 { 11 } else { 8 }),
                        7 => i(if *id == 1 { 3 } else { 2 }),
                        8 => i(1),
                        9..=11 => i(1),
                        12 => i(1048576),
                        13 => v[j].clone(),
                        14 => i(-1),
                        _ => i(if *id == 1 { 64 } else { 512 }),
                    };
                    rows.push((format!("1.4.1.{col}.{id}"), value));
                }
            }
            rows
        };
        want.extend(per_vm(&[i(0), i(512)]));
        assert_eq!(got, want);
    }

    #[test]
    fn states_map_as_c_vmd_maps_them() {
        let cases = [
            (VM_STATE_RUNNING, 1, 4),
            (VM_STATE_RUNNING | VM_STATE_PAUSED, 3, 8),
            (VM_STATE_RUNNING | VM_STATE_SHUTDOWN, 1, 4),
            (VM_STATE_RUNNING | VM_STATE_DISABLED, 1, 4),
            (VM_STATE_SHUTDOWN, 4, 11),
            (VM_STATE_DISABLED, 4, 11),
            (0, 4, 11),
        ];
        for (state, admin, oper) in cases {
            assert_eq!(admin_state(state), admin, "{state:#x}");
            assert_eq!(oper_state(state), oper, "{state:#x}");
        }
    }

    #[test]
    fn get_tells_missing_instances_from_missing_objects() {
        let view = MibView::new(&hv(), &[vm(3, "a", VM_STATE_RUNNING, 1, 1)]);
        let get = |sub: &[u32]| view.get(&oid(sub)).value;
        assert_eq!(get(&[1, 4, 1, 2, 3]), Value::OctetString(b"a".to_vec()));
        assert_eq!(get(&[1, 2, 0]), Value::Integer(1));
        // Served objects, wrong instances.
        assert_eq!(get(&[1, 4, 1, 2, 4]), Value::NoSuchInstance);
        assert_eq!(get(&[1, 2, 1]), Value::NoSuchInstance);
        // The object itself names no instance (libagentx says the same).
        assert_eq!(get(&[1, 2]), Value::NoSuchInstance);
        assert_eq!(get(&[1]), Value::NoSuchObject);
        assert_eq!(get(&[1, 4, 1, 2, 3, 0]), Value::NoSuchInstance);
        // Objects vmd does not serve: vmIndex, vmTableLastChange, vmCpuTable.
        assert_eq!(get(&[1, 4, 1, 1, 3]), Value::NoSuchObject);
        assert_eq!(get(&[1, 3, 0]), Value::NoSuchObject);
        assert_eq!(get(&[1, 5, 1, 1, 3, 1]), Value::NoSuchObject);
    }

    #[test]
    fn getnext_honours_include_and_the_end_of_the_range() {
        let view = MibView::new(&hv(), &[vm(3, "a", VM_STATE_RUNNING, 1, 1)]);
        let number = oid(&[1, 2, 0]);
        assert_eq!(view.next(&range(number.clone(), true)).name, number);
        assert_eq!(
            view.next(&range(number.clone(), false)).name,
            oid(&[1, 4, 1, 2, 3])
        );
        // An end that excludes everything after the start.
        let mut r = range(number.clone(), false);
        r.end = oid(&[1, 4, 1, 2, 3]);
        let vb = view.next(&r);
        assert_eq!((vb.name, vb.value), (number, Value::EndOfMibView));
        // Past the last column: the end of the view.
        let last = view.next(&range(oid(&[1, 4, 1, 15, 3]), false));
        assert_eq!(last.value, Value::EndOfMibView);
        // Index values beyond vmIndex's range simply sort after the rows.
        let vb = view.next(&range(oid(&[1, 4, 1, 2, u32::MAX]), false));
        assert_eq!(vb.name, oid(&[1, 4, 1, 3, 3]));
    }

    #[test]
    fn getbulk_repeats_and_stops_at_the_end() {
        let view = MibView::new(&hv(), &[vm(3, "a", VM_STATE_RUNNING, 1, 1)]);
        let answer = view
            .answer(&Payload::GetBulk {
                non_repeaters: 1,
                max_repetitions: 3,
                ranges: vec![
                    range(oid(&[1, 1]), false),
                    range(oid(&[1, 4, 1, 14]), false),
                    range(oid(&[1, 4, 1, 2]), false),
                ],
            })
            .unwrap();
        let names: Vec<String> = answer.2.iter().map(|v| v.name.to_string()).collect();
        let p = "1.3.6.1.2.1.236.";
        assert_eq!(
            names,
            [
                format!("{p}1.1.1.0"),
                format!("{p}1.4.1.14.3"),
                format!("{p}1.4.1.2.3"),
                format!("{p}1.4.1.15.3"),
                format!("{p}1.4.1.3.3"),
                format!("{p}1.4.1.15.3"),
                format!("{p}1.4.1.4.3"),
            ]
        );
        assert_eq!(answer.2[5].value, Value::EndOfMibView);
        // A hostile repetition count is capped.
        let vms: Vec<_> = (1..=100).map(|id| vm(id, "x", 0, 1, 0)).collect();
        let big = MibView::new(&hv(), &vms);
        let many = big
            .answer(&Payload::GetBulk {
                non_repeaters: 0,
                max_repetitions: u16::MAX,
                ranges: vec![range(Oid::null(), false); 3],
            })
            .unwrap();
        assert!(many.2.len() <= MAX_BULK_VARBINDS && many.2.len() > 1000);
        // Non-repeaters beyond the list are just the list.
        let all = view
            .answer(&Payload::GetBulk {
                non_repeaters: 9,
                max_repetitions: 9,
                ranges: vec![range(Oid::null(), false)],
            })
            .unwrap();
        assert_eq!(all.2.len(), 1);
    }
}
