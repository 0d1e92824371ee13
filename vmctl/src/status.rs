//! The `vmctl status` table, as vmctl's print_vm_info formats it.

use std::ffi::CStr;

use vm::abi::vmop::VmopInfoResult;

use crate::scaled::fmt_scaled;

/// vm_state flags (vmd.h).
const VM_STATE_RUNNING: u32 = 0x01;
const VM_STATE_DISABLED: u32 = 0x02;
const VM_STATE_SHUTDOWN: u32 = 0x04;
const VM_STATE_PAUSED: u32 = 0x10;
const VM_STATE_WAITING: u32 = 0x20;

pub const HEADER: &str = "   ID   PID VCPUS  MAXMEM  CURMEM     TTY        OWNER    STATE NAME";

/// Which VM the user asked about: by id, by name, or all (id 0, no name).
#[derive(Default)]
pub struct Filter {
    pub id: u32,
    pub name: String,
}

impl Filter {
    /// vmctl's check_info_id: no filter matches everything.
    fn matches(&self, name: &str, id: u32) -> bool {
        (self.id == 0 && self.name.is_empty())
            || (self.id != 0 && self.id == id)
            || (!self.name.is_empty() && self.name == name)
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The state word as vmctl names it; the order matters (a paused VM is
/// also running).
pub fn vm_state(mask: u32) -> &'static str {
    if mask & VM_STATE_PAUSED != 0 {
        "paused"
    } else if mask & VM_STATE_WAITING != 0 {
        "waiting"
    } else if mask & VM_STATE_SHUTDOWN != 0 {
        "stopping"
    } else if mask & VM_STATE_RUNNING != 0 {
        "running"
    } else if mask == 0 || mask & VM_STATE_DISABLED != 0 {
        "stopped"
    } else {
        "unknown"
    }
}

fn user_name(uid: u32) -> String {
    // SAFETY: getpwuid returns static storage or null; the name is copied
    // out at once.
    unsafe {
        let pw = libc::getpwuid(uid);
        if pw.is_null() {
            uid.to_string()
        } else {
            CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned()
        }
    }
}

fn group_name(gid: i64) -> String {
    let Ok(g) = u32::try_from(gid) else {
        return gid.to_string();
    };
    // SAFETY: as user_name, for the group database.
    unsafe {
        let gr = libc::getgrgid(g);
        if gr.is_null() {
            gid.to_string()
        } else {
            CStr::from_ptr((*gr).gr_name).to_string_lossy().into_owned()
        }
    }
}

/// The owner column: "user" or "user:group", cut to 15 characters as the
/// C buffer does.
fn owner(v: &VmopInfoResult) -> String {
    let mut s = user_name(v.vir_uid);
    if v.vir_gid != -1 {
        s.push(':');
        s.push_str(&group_name(v.vir_gid));
    }
    s.chars().take(15).collect()
}

/// The table for `list`; the flag says whether any VM was counted (vmctl
/// exits 1 when none was).
pub fn format(list: &[VmopInfoResult], filter: &Filter, running_only: bool) -> (String, bool) {
    let mut out = format!("{HEADER}\n");
    let mut found = false;
    for v in list {
        let info = &v.vir_info;
        let running = info.vir_creator_pid != 0 && info.vir_id != 0;
        if !running && running_only {
            continue;
        }
        found = true;
        let name = cstr(&info.vir_name);
        if !filter.matches(&name, info.vir_id) {
            continue;
        }
        let maxmem = fmt_scaled(info.vir_memory_size);
        let user = owner(v);
        let state = vm_state(v.vir_state);
        if running {
            let tty_full = cstr(&v.vir_ttyname);
            let tty = match tty_full.rsplit_once('/') {
                _ if tty_full.is_empty() => "-".to_string(),
                Some((_, t)) if !t.is_empty() => t.to_string(),
                _ => tty_full.clone(),
            };
            out.push_str(&format!(
                "{:>5} {:>5} {:>5} {:>7} {:>7} {:>7} {:>12} {:>8} {}\n",
                info.vir_id,
                info.vir_creator_pid,
                info.vir_ncpus,
                maxmem,
                fmt_scaled(info.vir_used_size),
                tty,
                user,
                state,
                name
            ));
        } else {
            out.push_str(&format!(
                "{:>5} {:>5} {:>5} {:>7} {:>7} {:>7} {:>12} {:>8} {}\n",
                info.vir_id, "-", info.vir_ncpus, maxmem, "-", "-", user, state, name
            ));
        }
    }
    (out, found)
}

/// `status --json`: the same VMs as the table, as a JSON array of
/// objects, for programs. Memory in bytes, the full tty path, null where
/// the table shows "-".
pub fn format_json(list: &[VmopInfoResult], filter: &Filter, running_only: bool) -> (String, bool) {
    let mut vms = Vec::new();
    for v in list {
        let info = &v.vir_info;
        let running = info.vir_creator_pid != 0 && info.vir_id != 0;
        if !running && running_only {
            continue;
        }
        let name = cstr(&info.vir_name);
        if !filter.matches(&name, info.vir_id) {
            continue;
        }
        let tty = cstr(&v.vir_ttyname);
        vms.push(serde_json::json!({
            "id": info.vir_id,
            "pid": running.then_some(info.vir_creator_pid),
            "vcpus": info.vir_ncpus,
            "maxmem": info.vir_memory_size,
            "curmem": running.then_some(info.vir_used_size),
            "tty": (running && !tty.is_empty()).then_some(tty),
            "owner": owner(v),
            "state": vm_state(v.vir_state),
            "name": name,
        }));
    }
    let found = !vms.is_empty();
    (format!("{}\n", serde_json::Value::Array(vms)), found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys::Wire;

    fn vm(id: u32, pid: i32, name: &str, tty: &str, state: u32) -> VmopInfoResult {
        let mut v = VmopInfoResult::zeroed();
        v.vir_info.vir_id = id;
        v.vir_info.vir_creator_pid = pid;
        v.vir_info.vir_ncpus = 1;
        v.vir_info.vir_memory_size = 512 << 20;
        v.vir_info.vir_used_size = 3 << 29;
        v.vir_info.vir_name[..name.len()].copy_from_slice(name.as_bytes());
        v.vir_ttyname[..tty.len()].copy_from_slice(tty.as_bytes());
        v.vir_uid = 0;
        v.vir_gid = -1;
        v.vir_state = state;
        v
    }

    #[test]
    fn rows_as_vmctl_prints_them() {
        let list = [
            vm(1, 4242, "web", "/dev/ttyp3", VM_STATE_RUNNING),
            vm(2, 0, "db", "", VM_STATE_DISABLED),
            vm(
                3,
                77,
                "mail",
                "/dev/ttyp4",
                VM_STATE_RUNNING | VM_STATE_PAUSED,
            ),
        ];
        let (text, found) = format(&list, &Filter::default(), false);
        assert!(found);
        assert_eq!(
            text,
            format!(
                "{HEADER}\n\
                 \x20   1  4242     1    512M    1.5G   ttyp3         root  running web\n\
                 \x20   2     -     1    512M       -       -         root  stopped db\n\
                 \x20   3    77     1    512M    1.5G   ttyp4         root   paused mail\n"
            )
        );
        let (text, _) = format(&list, &Filter::default(), true);
        assert!(!text.contains(" db"));
        let (text, _) = format(
            &list,
            &Filter {
                id: 0,
                name: "mail".into(),
            },
            false,
        );
        assert_eq!(text.lines().count(), 2);
        let (_, found) = format(&[], &Filter::default(), false);
        assert!(!found);
    }
}
