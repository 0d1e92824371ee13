//! vmctl [-v] command [arg ...]
//!
//! Messages, exit codes and the `status` table are those of OpenBSD's
//! vmctl (main.c 1.87, vmctl.c, 2025).

mod console;
mod scaled;
mod status;

use std::ffi::CStr;
use std::io::IsTerminal;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use devices::disk::{self, ImageFormat};
use imsg::{Imsg, ImsgBuf};
use vm::abi::vmop::VmopInfoResult;
use vm::abi::{VM_MAX_DISKS_PER_VM, VM_MAX_NICS_PER_VM};
use vmd::imsg_types::*;
use vmm_sys::Wire;

const VMOP_FORCE: u32 = 0x01;
const VMOP_WAIT: u32 = 0x02;
const VMD_VM_STOP_INVALID: i32 = 1004;
const CONFIG_VMS: u32 = 0x01;
const CONFIG_SWITCHES: u32 = 0x02;
const CONFIG_ALL: u32 = 0xff;
const VMM_MAX_NAME_LEN: usize = 64;

struct Command {
    name: &'static str,
    usage: &'static str,
}

const COMMANDS: &[Command] = &[
    Command { name: "console", usage: "id" },
    Command { name: "create", usage: "[-b base | -i disk] [-s size] disk" },
    Command { name: "load", usage: "filename" },
    Command { name: "log", usage: "[brief | verbose]" },
    Command { name: "pause", usage: "id" },
    Command { name: "reload", usage: "" },
    Command { name: "reset", usage: "[all | switches | vms]" },
    Command { name: "show", usage: "[id]" },
    Command {
        name: "start",
        usage: "[-cL] [-B device] [-b path] [-d disk] [-i count]\n\t\t[-m size] [-n switch] [-r path] [-t name] id | name",
    },
    Command { name: "status", usage: "[-r] [id]" },
    Command { name: "stop", usage: "[-fw] [id | -a]" },
    Command { name: "unpause", usage: "id" },
    Command { name: "wait", usage: "id" },
];

/// An early exit with vmctl's exit status; the message is already printed.
struct Exit(u8);

type Result<T> = std::result::Result<T, Exit>;

fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a valid C string for any value.
    unsafe { CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

fn warnx(msg: &str) {
    eprintln!("vmctl: {msg}");
}

fn errx(msg: &str) -> Exit {
    warnx(msg);
    Exit(1)
}

fn usage() -> Exit {
    eprintln!("usage:\tvmctl [-v] command [arg ...]");
    Exit(1)
}

fn ctl_usage(c: &Command) -> Exit {
    eprintln!("usage:\tvmctl [-v] {} {}", c.name, c.usage);
    Exit(1)
}

/// The options a command was given and its remaining operands.
type Parsed = (Vec<(char, String)>, Vec<String>);

/// A tiny getopt: flags in `opts` (a trailing ':' takes an argument).
fn getopt(args: &[String], opts: &str) -> std::result::Result<Parsed, ()> {
    let mut seen = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        let chars: Vec<char> = flags.chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            let pos = opts.find(c).ok_or(())?;
            if opts[pos + 1..].starts_with(':') {
                let rest: String = chars[j + 1..].iter().collect();
                let val = if !rest.is_empty() {
                    rest
                } else {
                    i += 1;
                    args.get(i).cloned().ok_or(())?
                };
                seen.push((c, val));
                break;
            }
            seen.push((c, String::new()));
            j += 1;
        }
        i += 1;
    }
    Ok((seen, args[i..].to_vec()))
}

/// A VM named by id (a number) or by name.
#[derive(Default)]
struct Target {
    id: u32,
    name: String,
}

fn parse_vmid(word: &str) -> Result<Target> {
    if word.starts_with('-') {
        return Err(errx(&format!("invalid id: {word}")));
    }
    if let Ok(id) = word.parse::<u32>() {
        return Ok(Target {
            id,
            name: String::new(),
        });
    }
    if word.len() >= VMM_MAX_NAME_LEN {
        warnx("name too long");
        return Err(errx(&format!("invalid id: {word}")));
    }
    Ok(Target {
        id: 0,
        name: word.to_string(),
    })
}

/// `struct vmop_id`: id, name[64], uid (vmd fills it in), flags.
fn vmop_id(t: &Target, flags: u32) -> Vec<u8> {
    let mut v = vec![0u8; VMOP_ID_SIZE];
    v[0..4].copy_from_slice(&t.id.to_ne_bytes());
    let n = t.name.len().min(VMM_MAX_NAME_LEN - 1);
    v[4..4 + n].copy_from_slice(&t.name.as_bytes()[..n]);
    v[72..76].copy_from_slice(&flags.to_ne_bytes());
    v
}

/// `struct vmop_result`: result and id.
fn vmop_result(m: &Imsg) -> Result<(i32, u32)> {
    let d = m
        .data_exact(28)
        .map_err(|_| errx("unexpected response received from vmd"))?;
    Ok((
        i32::from_ne_bytes([d[0], d[1], d[2], d[3]]),
        u32::from_ne_bytes([d[4], d[5], d[6], d[7]]),
    ))
}

struct Vmd {
    chan: ImsgBuf,
}

impl Vmd {
    fn connect() -> Result<Vmd> {
        let path = vmd::control::socket_path();
        let sock = UnixStream::connect(&path).map_err(|e| {
            errx(&format!(
                "connect: {path}: {}",
                strerror(e.raw_os_error().unwrap_or(libc::EIO))
            ))
        })?;
        let mut chan = ImsgBuf::new(sock);
        chan.allow_fdpass();
        Ok(Vmd { chan })
    }

    fn send(&mut self, type_: u32, data: &[u8]) -> Result<()> {
        self.chan
            .compose(type_, 0, 0, None, data)
            .and_then(|()| self.chan.flush())
            .map_err(|e| errx(&format!("write error: {e}")))
    }

    /// The next answer; IMSG_CTL_FAIL ends vmctl as C does.
    fn recv(&mut self) -> Result<Imsg> {
        let m = match self.chan.read_one() {
            Ok(Some(m)) => m,
            Ok(None) => return Err(errx("pipe closed")),
            Err(e) => return Err(errx(&format!("read error: {e}"))),
        };
        if m.hdr.type_ == IMSG_CTL_FAIL {
            return Err(match m.get::<i32>() {
                Ok(errno) if errno != 0 => errx(&format!("command failed: {}", strerror(errno))),
                _ => errx("command failed"),
            });
        }
        Ok(m)
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit(code)) => ExitCode::from(code),
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, rest) = getopt(&args, "v").map_err(|()| usage())?;
    let _verbose = !opts.is_empty();
    let Some(word) = rest.first() else {
        return Err(usage());
    };
    let matches: Vec<&Command> = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(word.as_str()))
        .collect();
    let cmd = match matches.as_slice() {
        [one] => *one,
        [] => {
            eprintln!("unknown argument: {word}");
            return Err(usage());
        }
        _ => {
            eprintln!("ambiguous argument: {word}");
            return Err(usage());
        }
    };
    let argv = &rest[1..];
    match cmd.name {
        "create" => create(cmd, argv),
        "status" | "show" => status(cmd, argv),
        "stop" => stop(cmd, argv),
        "wait" => one_vm(cmd, argv, IMSG_VMDOP_WAIT_VM_REQUEST),
        "pause" => one_vm(cmd, argv, IMSG_VMDOP_PAUSE_VM),
        "unpause" => one_vm(cmd, argv, IMSG_VMDOP_UNPAUSE_VM),
        "log" => log(cmd, argv),
        "reload" => {
            if !argv.is_empty() {
                return Err(ctl_usage(cmd));
            }
            simple(IMSG_VMDOP_RELOAD, &[])
        }
        "load" => {
            let [path] = argv else {
                return Err(ctl_usage(cmd));
            };
            let mut data = path.as_bytes().to_vec();
            data.push(0);
            simple(IMSG_VMDOP_LOAD, &data)
        }
        "reset" => {
            let mode = match argv {
                [] => CONFIG_ALL,
                [m] if m.eq_ignore_ascii_case("all") => CONFIG_ALL,
                [m] if m.eq_ignore_ascii_case("vms") => CONFIG_VMS,
                [m] if m.eq_ignore_ascii_case("switches") => CONFIG_SWITCHES,
                _ => return Err(ctl_usage(cmd)),
            };
            simple(IMSG_CTL_RESET, &mode.to_ne_bytes())
        }
        "start" => start(cmd, argv),
        "console" => console_cmd(cmd, argv),
        _ => Err(errx(&format!("{}: not supported yet", cmd.name))),
    }
}

/// vmd.h's start errors beyond errno values.
const VMD_BIOS_MISSING: i32 = 1001;
const VMD_DISK_MISSING: i32 = 1002;
const VMD_CDROM_MISSING: i32 = 1005;
const VMD_CDROM_INVALID: i32 = 1006;
const VMD_PARENT_INVALID: i32 = 1007;

/// `vmctl start`, as vmctl's ctl_start and vm_start.
fn start(cmd: &Command, argv: &[String]) -> Result<()> {
    use vm::abi::vmop::*;
    let (opts, rest) = getopt(argv, "b:B:cd:i:Lm:n:r:t:").map_err(|()| ctl_usage(cmd))?;
    let [w] = rest.as_slice() else {
        return Err(ctl_usage(cmd));
    };
    let target = parse_vmid(w)?;
    let mut kernel: Option<String> = None;
    let mut bootdevice = VMBOOTDEV_AUTO;
    let mut autoconnect = false;
    let mut disks: Vec<(String, ImageFormat)> = Vec::new();
    let mut nifs: i64 = -1;
    let mut nics: Vec<String> = Vec::new();
    let mut memsize: u64 = 0;
    let mut iso: Option<String> = None;
    let mut instance: Option<String> = None;
    for (c, v) in &opts {
        match c {
            'b' => {
                if kernel.is_some() {
                    return Err(errx("boot image specified multiple times"));
                }
                let p = std::fs::canonicalize(v)
                    .map_err(|e| errx(&format!("invalid boot image path: {v}: {e}")))?;
                kernel = Some(p.to_string_lossy().into_owned());
            }
            'B' => {
                if bootdevice != VMBOOTDEV_AUTO {
                    return Err(errx("boot device specified multiple times"));
                }
                bootdevice = match v.as_str() {
                    "disk" => VMBOOTDEV_DISK,
                    "cdrom" => VMBOOTDEV_CDROM,
                    "net" => VMBOOTDEV_NET,
                    _ => return Err(errx("unknown boot device")),
                };
            }
            'r' => {
                if iso.is_some() {
                    return Err(errx("iso image specified multiple times"));
                }
                iso = Some(v.clone());
            }
            'c' => autoconnect = true,
            'L' => nics.push(".".into()),
            'm' => {
                if memsize != 0 {
                    return Err(errx("memory specified multiple times"));
                }
                memsize = match scaled::scan_scaled(v) {
                    Ok(m) if m > 0 => m as u64 / (1 << 20) * (1 << 20),
                    _ => return Err(errx(&format!("invalid memory size: {v}"))),
                };
            }
            'n' => nics.push(v.clone()),
            'd' => {
                let (format, path) = parse_disktype(v);
                let p = std::fs::canonicalize(path)
                    .map_err(|e| errx(&format!("invalid disk path: {path}: {e}")))?;
                disks.push((p.to_string_lossy().into_owned(), format));
            }
            'i' => {
                if nifs != -1 {
                    return Err(errx("interfaces specified multiple times"));
                }
                nifs = match v.parse::<i64>() {
                    Ok(n) if (0..=VM_MAX_NICS_PER_VM as i64).contains(&n) => n,
                    _ => return Err(errx(&format!("invalid count \"{v}\": too large"))),
                };
            }
            't' => {
                if instance.is_some() {
                    return Err(errx("instance specified multiple times"));
                }
                instance = Some(v.clone());
            }
            _ => return Err(ctl_usage(cmd)),
        }
    }
    // -n and -L add to the count from -i.
    let nnics = (nifs.max(0) as usize).max(nics.len());
    while nics.len() < nnics {
        nics.push(String::new());
    }
    let mut flags = 0;
    if memsize != 0 {
        flags |= VMOP_CREATE_MEMORY;
    }
    if nnics != 0 {
        flags |= VMOP_CREATE_NETWORK;
    }
    if !disks.is_empty() {
        flags |= VMOP_CREATE_DISK;
    }
    if kernel.is_some() {
        flags |= VMOP_CREATE_KERNEL;
    }
    if iso.is_some() {
        flags |= VMOP_CREATE_CDROM;
    }
    if instance.is_some() {
        flags |= VMOP_CREATE_INSTANCE;
    } else if flags != 0 {
        if memsize == 0 {
            memsize = vmd::config::model::VM_DEFAULT_MEMORY;
        }
        if disks.len() > VM_MAX_DISKS_PER_VM {
            return Err(errx("too many disks"));
        } else if kernel.is_none() && disks.is_empty() {
            warnx("starting without disks");
        }
        if kernel.is_none() && disks.is_empty() && iso.is_none() {
            return Err(errx("no kernel or disk/cdrom specified"));
        }
        if nnics > VM_MAX_NICS_PER_VM {
            return Err(errx("too many network interfaces"));
        }
        if kernel.is_none() && nnics == 0 {
            warnx("starting without network interfaces");
        }
    }
    let mut vmc = VmopCreateParams::zeroed();
    vmc.vmc_kernel = -1;
    vmc.vmc_flags = flags;
    vmc.vmc_nmemranges = 1;
    vmc.vmc_memranges[0].vmr_size = memsize;
    vmc.vmc_ncpus = 1;
    vmc.vmc_ndisks = disks.len() as u64;
    vmc.vmc_nnics = nnics as u64;
    for (i, (path, format)) in disks.iter().enumerate() {
        vmc.vmc_disks[i] =
            vmm_sys::wire::c_string(path).ok_or_else(|| errx("disk path too long"))?;
        vmc.vmc_disktypes[i] = match format {
            ImageFormat::Raw => VMDF_RAW,
            ImageFormat::Qcow2 => VMDF_QCOW2,
        };
    }
    for (i, nic) in nics.iter().enumerate() {
        vmc.vmc_ifflags[i] = VMIFF_UP;
        if nic == "." {
            vmc.vmc_ifflags[i] |= VMIFF_LOCAL;
        } else {
            vmc.vmc_ifswitch[i] =
                vmm_sys::wire::c_string(nic).ok_or_else(|| errx("interface name too long"))?;
        }
    }
    let name = target.name.as_str();
    if !name.is_empty() {
        let bad_start = name.starts_with(['-', '.', '_']);
        let bad_char = name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
        if bad_start || bad_char {
            return Err(errx("invalid VM name"));
        }
        vmc.vmc_name = vmm_sys::wire::c_string(name).ok_or_else(|| errx("vm name too long"))?;
    }
    let kernel_fd = match &kernel {
        Some(k) => {
            let f = std::fs::File::open(k)
                .map_err(|e| errx(&format!("cannot open kernel '{k}': {e}")))?;
            let meta = f
                .metadata()
                .map_err(|e| errx(&format!("fstat kernel: {e}")))?;
            if !meta.is_file() {
                return Err(errx("kernel must be a regular file"));
            }
            Some(std::os::fd::OwnedFd::from(f))
        }
        None => None,
    };
    if let Some(iso) = &iso {
        vmc.vmc_cdrom = vmm_sys::wire::c_string(iso).ok_or_else(|| errx("cdrom name too long"))?;
    }
    if let Some(inst) = &instance {
        vmc.vmc_instance =
            vmm_sys::wire::c_string(inst).ok_or_else(|| errx("instance vm name too long"))?;
    }
    vmc.vmc_bootdevice = bootdevice;

    let mut vmd = Vmd::connect()?;
    vmd.chan
        .compose(
            IMSG_VMDOP_START_VM_REQUEST,
            0,
            0,
            kernel_fd,
            &vmc.to_bytes(),
        )
        .and_then(|()| vmd.chan.flush())
        .map_err(|e| errx(&format!("write error: {e}")))?;
    let m = vmd.recv()?;
    if m.hdr.type_ != IMSG_VMDOP_START_VM_RESPONSE {
        return Err(errx("unexpected response received from vmd"));
    }
    let r = VmopResult::from_bytes(&m.data)
        .map_err(|e| errx(&format!("invalid answer from vmd: {e}")))?;
    match r.vmr_result {
        0 => {}
        VMD_BIOS_MISSING => return Err(errx("vmm bios firmware file not found.")),
        VMD_DISK_MISSING => return Err(errx("could not open disk image(s)")),
        VMD_CDROM_MISSING => return Err(errx("could not find specified iso image")),
        VMD_CDROM_INVALID => return Err(errx("specified iso image is not a regular file")),
        VMD_PARENT_INVALID => return Err(errx("invalid template")),
        e => return Err(errx(&format!("start vm command failed: {}", strerror(e)))),
    }
    let tty = String::from_utf8_lossy(vmm_sys::wire::c_str(&r.vmr_ttyname)).into_owned();
    if autoconnect {
        return console::open_console(&tty).map_err(|e| errx(&e));
    }
    warnx(&format!("started vm {} successfully, tty {tty}", r.vmr_id));
    Ok(())
}

/// `vmctl console id`: find the VM's terminal and attach to it.
fn console_cmd(cmd: &Command, argv: &[String]) -> Result<()> {
    let [w] = argv else {
        return Err(ctl_usage(cmd));
    };
    let target = parse_vmid(w)?;
    let mut vmd = Vmd::connect()?;
    vmd.send(IMSG_VMDOP_GET_INFO_VM_REQUEST, &[])?;
    let list = read_list(&mut vmd)?;
    let found = list.iter().find(|v| {
        let name = vmm_sys::wire::c_str(&v.vir_info.vir_name);
        (target.id != 0 && v.vir_info.vir_id == target.id)
            || (!target.name.is_empty() && name == target.name.as_bytes())
    });
    let Some(v) = found else {
        return Err(errx("vm not found"));
    };
    let tty = String::from_utf8_lossy(vmm_sys::wire::c_str(&v.vir_ttyname)).into_owned();
    if v.vir_info.vir_creator_pid == 0 || tty.is_empty() {
        return Err(errx("console not found"));
    }
    console::open_console(&tty).map_err(|e| errx(&e))
}

/// Sends one request and takes whatever single answer comes back.
fn simple(type_: u32, data: &[u8]) -> Result<()> {
    let mut vmd = Vmd::connect()?;
    vmd.send(type_, data)?;
    vmd.recv().map(|_| ())
}

fn log(cmd: &Command, argv: &[String]) -> Result<()> {
    let [w] = argv else {
        return Err(ctl_usage(cmd));
    };
    let w = w.to_ascii_lowercase();
    let verbose: i32 = if "brief".starts_with(&w) {
        0
    } else if "verbose".starts_with(&w) {
        2
    } else {
        return Err(ctl_usage(cmd));
    };
    simple(IMSG_CTL_VERBOSE, &verbose.to_ne_bytes())
}

fn status(cmd: &Command, argv: &[String]) -> Result<()> {
    // `--json` is ours, not the C vmctl's; anywhere among the arguments.
    let json = argv.iter().any(|a| a == "--json");
    let argv: Vec<String> = argv.iter().filter(|a| *a != "--json").cloned().collect();
    let (opts, rest) = getopt(&argv, "r").map_err(|()| ctl_usage(cmd))?;
    let running_only = opts.iter().any(|(c, _)| *c == 'r');
    let target = match rest.as_slice() {
        [] => Target::default(),
        [w] => parse_vmid(w)?,
        _ => return Err(ctl_usage(cmd)),
    };
    let mut vmd = Vmd::connect()?;
    vmd.send(IMSG_VMDOP_GET_INFO_VM_REQUEST, &[])?;
    let list = read_list(&mut vmd)?;
    let filter = status::Filter {
        id: target.id,
        name: target.name,
    };
    let (text, found) = if json {
        status::format_json(&list, &filter, running_only)
    } else {
        status::format(&list, &filter, running_only)
    };
    print!("{text}");
    // As vmctl: a list with no VM counted is "not found", exit status 1.
    if found {
        Ok(())
    } else {
        Err(Exit(1))
    }
}

/// Collects GET_INFO_VM_DATA until GET_INFO_VM_END_DATA.
fn read_list(vmd: &mut Vmd) -> Result<Vec<VmopInfoResult>> {
    let mut list = Vec::new();
    loop {
        let m = vmd.recv()?;
        match m.hdr.type_ {
            IMSG_VMDOP_GET_INFO_VM_DATA => match VmopInfoResult::from_bytes(&m.data) {
                Ok(v) => list.push(v),
                Err(e) => return Err(errx(&format!("invalid VM information from vmd: {e}"))),
            },
            IMSG_VMDOP_GET_INFO_VM_END_DATA => return Ok(list),
            _ => return Err(errx("unexpected response received from vmd")),
        }
    }
}

fn stop(cmd: &Command, argv: &[String]) -> Result<()> {
    let (opts, rest) = getopt(argv, "afw").map_err(|()| ctl_usage(cmd))?;
    let mut flags = 0;
    let mut all = false;
    for (c, _) in &opts {
        match c {
            'f' => flags |= VMOP_FORCE,
            'w' => flags |= VMOP_WAIT,
            _ => all = true,
        }
    }
    if all {
        if !rest.is_empty() {
            return Err(ctl_usage(cmd));
        }
        let mut vmd = Vmd::connect()?;
        vmd.send(IMSG_VMDOP_GET_INFO_VM_REQUEST, &[])?;
        let list = read_list(&mut vmd)?;
        drop(vmd);
        // As vmctl's terminate_all: one stop request per running VM.
        for v in list {
            let info = &v.vir_info;
            if info.vir_creator_pid == 0 || info.vir_id == 0 {
                continue;
            }
            let end = info
                .vir_name
                .iter()
                .position(|&c| c == 0)
                .unwrap_or(info.vir_name.len());
            let t = Target {
                id: 0,
                name: String::from_utf8_lossy(&info.vir_name[..end]).into_owned(),
            };
            let mut vmd = Vmd::connect()?;
            eprint!("stopping vm {}: ", t.name);
            vmd.send(IMSG_VMDOP_TERMINATE_VM_REQUEST, &vmop_id(&t, flags))?;
            terminate_complete(&mut vmd, flags)?;
        }
        return Ok(());
    }
    let [w] = rest.as_slice() else {
        return Err(ctl_usage(cmd));
    };
    let t = parse_vmid(w)?;
    let mut vmd = Vmd::connect()?;
    if t.name.is_empty() {
        eprint!("stopping vm: ");
    } else {
        eprint!("stopping vm {}: ", t.name);
    }
    vmd.send(IMSG_VMDOP_TERMINATE_VM_REQUEST, &vmop_id(&t, flags))?;
    terminate_complete(&mut vmd, flags)
}

/// Prints the outcome of a stop or wait as vmctl's terminate_vm_complete.
fn terminate_complete(vmd: &mut Vmd, flags: u32) -> Result<()> {
    let m = vmd.recv()?;
    match m.hdr.type_ {
        IMSG_VMDOP_TERMINATE_VM_RESPONSE => {
            let (res, id) = vmop_result(&m)?;
            match res {
                0 => {
                    eprintln!("requested to shutdown vm {id}");
                    Ok(())
                }
                VMD_VM_STOP_INVALID => {
                    eprintln!("cannot stop vm that is not running");
                    Err(Exit(1))
                }
                libc::ENOENT => {
                    eprintln!("vm not found");
                    Err(Exit(1))
                }
                libc::EINTR => {
                    eprintln!("interrupted call");
                    Err(Exit(1))
                }
                e => {
                    eprintln!("failed: {}", strerror(e));
                    Err(Exit(1))
                }
            }
        }
        IMSG_VMDOP_TERMINATE_VM_EVENT => {
            let (_, id) = vmop_result(&m)?;
            if flags & VMOP_WAIT != 0 {
                eprintln!("terminated vm {id}");
            } else if flags & VMOP_FORCE != 0 {
                eprintln!("forced to terminate vm {id}");
            }
            Ok(())
        }
        _ => {
            eprintln!("unexpected response received from vmd");
            Err(Exit(1))
        }
    }
}

fn one_vm(cmd: &Command, argv: &[String], type_: u32) -> Result<()> {
    let [w] = argv else {
        return Err(ctl_usage(cmd));
    };
    let t = parse_vmid(w)?;
    let mut vmd = Vmd::connect()?;
    if type_ == IMSG_VMDOP_WAIT_VM_REQUEST {
        if t.name.is_empty() {
            eprint!("waiting for vm: ");
        } else {
            eprint!("waiting for vm {}: ", t.name);
        }
    }
    vmd.send(type_, &vmop_id(&t, 0))?;
    if type_ == IMSG_VMDOP_WAIT_VM_REQUEST {
        return terminate_complete(&mut vmd, VMOP_WAIT);
    }
    let m = vmd.recv()?;
    let (what, expect) = if type_ == IMSG_VMDOP_PAUSE_VM {
        ("pause", IMSG_VMDOP_PAUSE_VM_RESPONSE)
    } else {
        ("unpause", IMSG_VMDOP_UNPAUSE_VM_RESPONSE)
    };
    if m.hdr.type_ != expect {
        return Err(errx("unexpected response received from vmd"));
    }
    let (res, id) = vmop_result(&m)?;
    if res != 0 {
        return Err(errx(&format!(
            "{what} vm command failed: {}",
            strerror(res)
        )));
    }
    warnx(&format!("{what}d vm {id} successfully"));
    Ok(())
}

/// The format vmctl takes from a "raw:" or "qcow2:" prefix, else from the
/// file's signature, else from its extension, else raw.
fn parse_disktype(s: &str) -> (ImageFormat, &str) {
    if let Some(p) = s.strip_prefix("raw:") {
        return (ImageFormat::Raw, p);
    }
    if let Some(p) = s.strip_prefix("qcow2:") {
        return (ImageFormat::Qcow2, p);
    }
    if let Ok(f) = ImageFormat::detect(Path::new(s)) {
        if f == ImageFormat::Qcow2 {
            return (f, s);
        }
    }
    match s.rsplit_once('.') {
        Some((_, ext)) if ext.eq_ignore_ascii_case("qcow2") => (ImageFormat::Qcow2, s),
        _ => (ImageFormat::Raw, s),
    }
}

/// `-s` as vmctl's parse_size: at least 1 MB, rounded down to megabytes.
fn parse_size(word: &str, what: &str) -> Result<u64> {
    let v = match scaled::scan_scaled(word) {
        Ok(v) => v,
        Err(e) => {
            return Err(errx(&format!(
                "invalid {what} size: {word}: {}",
                e.strerror()
            )))
        }
    };
    if v < 1 << 20 {
        return Err(errx(&format!("{what} size must be at least 1MB")));
    }
    let v = v as u64;
    let size = v / (1 << 20) * (1 << 20);
    if size != v {
        warnx(&format!(
            "{what} size rounded to {}",
            scaled::fmt_scaled(size)
        ));
    }
    Ok(size)
}

fn create(cmd: &Command, argv: &[String]) -> Result<()> {
    let (opts, rest) = getopt(argv, "b:i:s:").map_err(|()| ctl_usage(cmd))?;
    let (mut base, mut input, mut size) = (None, None, 0u64);
    for (c, v) in opts {
        match c {
            'b' => base = Some(v),
            'i' => input = Some(v),
            _ => size = parse_size(&v, "disk")?,
        }
    }
    let [disk] = rest.as_slice() else {
        return Err(ctl_usage(cmd));
    };
    let (format, path) = parse_disktype(disk);
    let path = Path::new(path);
    if let Some(input) = input {
        if base.is_some() {
            return Err(errx("conflicting -b and -i arguments"));
        }
        let tty = std::io::stderr().is_terminal();
        let mut last = u64::MAX;
        let mut progress = |done: u64, total: u64| {
            let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
            if tty && pct != last {
                last = pct;
                eprint!("\rvmctl: converting {}: {pct:3}%", path.display());
                if done == total {
                    eprintln!();
                }
            }
        };
        let want = (size != 0).then_some(size);
        let requested = match want {
            Some(w) => w,
            None => ImageFormat::detect(Path::new(&input))
                .and_then(|f| disk::open_image(Path::new(&input), f, true))
                .map(|img| img.size())
                .unwrap_or(0),
        };
        return match disk::convert_image(Path::new(&input), path, format, want, &mut progress) {
            Ok(size) => {
                if requested < size {
                    warnx(&format!(
                        "destination size rounded to {} megabytes",
                        size / 1048576
                    ));
                }
                warnx(&format!("{} imagefile created", format.name()));
                Ok(())
            }
            // vmctl names only the step that failed.
            Err(e) => Err(errx(e.step.message())),
        };
    }
    if base.is_some() && format != ImageFormat::Qcow2 {
        return Err(errx("base images require qcow2 disk format"));
    }
    if size == 0 && base.is_none() {
        eprintln!("could not create {}: missing size argument", path.display());
        return Err(ctl_usage(cmd));
    }
    let result = match format {
        ImageFormat::Qcow2 => disk::create_qcow2(path, size, base.as_deref().map(Path::new)),
        ImageFormat::Raw => disk::create_raw(path, size),
    };
    match result {
        Ok(()) => {
            warnx(&format!("{} imagefile created", format.name()));
            Ok(())
        }
        Err(e) => Err(errx(&create_failure(&e, path))),
    }
}

/// What vmctl says when it cannot create `image`: the errno of the
/// image file, its own words for a base image that does not fit, and
/// "failure to read base image header" for one it cannot read.
fn create_failure(e: &disk::DiskError, image: &Path) -> String {
    match e {
        disk::DiskError::Create { reason, .. } => reason.clone(),
        disk::DiskError::Io { path, source } if path == image => format!(
            "create imagefile operation failed: {}",
            strerror(source.raw_os_error().unwrap_or(libc::EIO))
        ),
        _ => "failure to read base image header".to_string(),
    }
}
