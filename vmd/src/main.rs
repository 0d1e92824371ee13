//! vmd(8): `vmd [-dnv] [-D macro=value] [-f file]`, and the process roles
//! it re-executes itself as (`-P name`; `-V` and `-X` arrive with the vm
//! process).

use std::process::ExitCode;

use vmd::config::{self, Diagnostic, ParseOptions, SystemHost};
use vmd::proc::ProcId;
use vmd::{child, control, logging, parent, sys, vmm};

const VMD_CONF: &str = "/etc/vm.conf";
/// The group that may reach the AgentX master's socket.
const AGENTX_GROUP: &str = "_agentx";

/// What the command line asks for.
#[derive(Debug, Default)]
struct Args {
    debug: bool,
    verbose: u32,
    noaction: bool,
    conffile: Option<String>,
    macros: Vec<String>,
    /// `-P name`: run as one of the privsep processes.
    process: Option<String>,
    /// `-V fd`: run as a vm process.
    vm_fd: Option<String>,
    /// `-X fd`: run as a device process.
    device_fd: Option<String>,
    /// `-t type`, `-i fd`, `-j fd`, `-p title`: details of -V and -X.
    device_type: Option<String>,
    vmm_fd: Option<String>,
    psp_fd: Option<String>,
    title: Option<String>,
}

enum ArgError {
    /// getopt's complaint, printed before the usage line.
    Usage(Option<String>),
}

/// getopt(3) with vmd's option string "D:P:V:X:df:i:j:nt:vp:".
fn parse_args(argv: &[String]) -> Result<Args, ArgError> {
    let mut args = Args::default();
    let mut i = 1;
    while i < argv.len() {
        let arg = &argv[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        let opts: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < opts.len() {
            let opt = opts[j];
            j += 1;
            match opt {
                'd' => args.debug = true,
                'n' => args.noaction = true,
                'v' => args.verbose += 1,
                'D' | 'P' | 'V' | 'X' | 'f' | 'i' | 'j' | 't' | 'p' => {
                    let value: String = if j < opts.len() {
                        let rest = opts[j..].iter().collect();
                        j = opts.len();
                        rest
                    } else {
                        i += 1;
                        argv.get(i).cloned().ok_or_else(|| {
                            ArgError::Usage(Some(format!("option requires an argument -- {opt}")))
                        })?
                    };
                    match opt {
                        'D' => args.macros.push(value),
                        'P' => args.process = Some(value),
                        'V' => args.vm_fd = Some(value),
                        'X' => args.device_fd = Some(value),
                        'f' => args.conffile = Some(value),
                        'i' => args.vmm_fd = Some(value),
                        'j' => args.psp_fd = Some(value),
                        't' => args.device_type = Some(value),
                        _ => args.title = Some(value),
                    }
                }
                _ => return Err(ArgError::Usage(Some(format!("unknown option -- {opt}")))),
            }
        }
        i += 1;
    }
    if i < argv.len() {
        return Err(ArgError::Usage(None));
    }
    Ok(args)
}

fn progname(argv: &[String]) -> String {
    argv.first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "vmd".to_string())
}

/// The arguments the parent passes on to its children.
fn passthrough(args: &Args) -> Vec<String> {
    let mut v = Vec::new();
    if args.debug {
        v.push("-d".to_string());
    }
    for _ in 0..args.verbose {
        v.push("-v".to_string());
    }
    for m in &args.macros {
        v.push("-D".to_string());
        v.push(m.clone());
    }
    if let Some(f) = &args.conffile {
        v.push("-f".to_string());
        v.push(f.clone());
    }
    v
}

/// Parses vm.conf, printing what the parser says as vmd does; `None` if
/// the file is not valid.
fn parse_options(args: &Args) -> ParseOptions {
    ParseOptions {
        is_default_path: args.conffile.is_none(),
        path: args
            .conffile
            .clone()
            .unwrap_or_else(|| VMD_CONF.to_string()),
        macros: args
            .macros
            .iter()
            .filter_map(|d| config::split_macro_definition(d))
            .collect(),
    }
}

fn check_config(progname: &str, args: &Args) -> Option<config::Config> {
    let mut macros = Vec::new();
    for definition in &args.macros {
        match config::split_macro_definition(definition) {
            Some(pair) => macros.push(pair),
            None => eprintln!("{progname}: could not parse macro definition {definition}"),
        }
    }
    // With -n, vmd logs to stderr, and debug lines need -vv.
    let show_debug = args.verbose > 1 || (args.debug && args.verbose > 0);
    let mut options = parse_options(args);
    options.macros = macros;
    let parsed = config::parse(&options, &mut SystemHost);
    for diagnostic in &parsed.diagnostics {
        match diagnostic {
            Diagnostic::Error(err) => eprintln!("{progname}: {err}"),
            Diagnostic::Warning(text) => eprintln!("{progname}: {text}"),
            Diagnostic::Debug(text) if show_debug => eprintln!("{progname}: {text}"),
            Diagnostic::Debug(_) => {}
            Diagnostic::UnusedMacro(text) => eprintln!("{text}"),
        }
    }
    parsed.config
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let progname = progname(&argv);
    let args = match parse_args(&argv) {
        Ok(args) => args,
        Err(ArgError::Usage(complaint)) => {
            if let Some(complaint) = complaint {
                eprintln!("{progname}: {complaint}");
            }
            eprintln!("usage: {progname} [-dnv] [-D macro=value] [-f file]");
            return ExitCode::from(1);
        }
    };
    logging::init(args.debug || args.noaction, args.verbose as usize);

    if let Some(title) = args.process.as_deref() {
        let Some(id) = ProcId::from_title(title) else {
            eprintln!("{progname}: invalid process name: {title}");
            return ExitCode::from(1);
        };
        return match run_child(id, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => logging::fatalx(&e.to_string()),
        };
    }
    if let Some(fd) = args.device_fd.as_deref() {
        return run_device(&progname, fd, &args);
    }
    if let Some(fd) = args.vm_fd.as_deref() {
        return run_vm(&progname, fd, &args);
    }
    if !args.noaction {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("{progname}: need root privileges");
            return ExitCode::from(1);
        }
    }
    // vmd refuses to start with a broken configuration, as with -n.
    let Some(config) = check_config(&progname, &args) else {
        return ExitCode::from(1);
    };
    if args.noaction {
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => logging::fatalx(&e.to_string()),
    };
    let reparse = |file: Option<&str>| {
        let mut options = parse_options(&args);
        if let Some(f) = file {
            options.path = f.to_string();
            options.is_default_path = false;
        }
        let parsed = config::parse(&options, &mut SystemHost);
        for d in &parsed.diagnostics {
            if let Diagnostic::Error(e) = d {
                log::warn!("{e}");
            }
        }
        parsed.config
    };
    match parent::run(
        &exe.to_string_lossy(),
        &passthrough(&args),
        &config,
        &reparse,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => logging::fatalx(&e.to_string()),
    }
}

/// `-V fd -i vmm_fd -j psp_fd`: a vm process.
fn run_vm(progname: &str, fd: &str, args: &Args) -> ExitCode {
    let Ok(fd) = fd.parse::<i32>() else {
        eprintln!("{progname}: invalid vm fd");
        return ExitCode::from(1);
    };
    let vmm_fd = args
        .vmm_fd
        .as_deref()
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(-1);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => logging::fatalx(&e.to_string()),
    };
    let status = vm::vm_proc::main(
        vm::vm_proc::VmArgs {
            fd,
            vmm_fd,
            exe,
            debug: args.debug,
            verbose: args.verbose.min(2) as u8,
        },
        &|name| logging::set_procname(&format!("vm/{name}")),
    );
    ExitCode::from(status.clamp(0, 255) as u8)
}

/// `-X fd -t type -i fd -p vmname`: a virtio device process.
fn run_device(progname: &str, sync_fd: &str, args: &Args) -> ExitCode {
    let number = |v: Option<&str>, what: &str| -> Option<i32> {
        let n = v.and_then(|v| v.parse::<i32>().ok());
        if n.is_none() {
            eprintln!("{progname}: invalid {what}");
        }
        n
    };
    let Some(sync_fd) = number(Some(sync_fd), "device fd") else {
        return ExitCode::from(1);
    };
    let Some(vmm_fd) = number(args.vmm_fd.as_deref().or(Some("-1")), "vmm fd") else {
        return ExitCode::from(1);
    };
    let dev_type = match args.device_type.as_deref().map(str::as_bytes) {
        Some([t]) => *t,
        _ => {
            eprintln!("{progname}: invalid device type");
            return ExitCode::from(1);
        }
    };
    let vm_name = args.title.clone().unwrap_or_default();
    let role = match dev_type {
        b'd' => "vioblk",
        b'n' => "vionet",
        _ => "viodev",
    };
    logging::set_procname(role);
    // Device processes keep only the fds they were given: no root.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        if let Err(e) = sys::unprivileged_user().and_then(|u| sys::drop_privileges(&u, None)) {
            logging::fatalx(&format!("{role}: {e}"));
        }
    }
    let status = vm::device_proc::child::main(vm::device_proc::child::DeviceArgs {
        sync_fd,
        dev_type,
        vmm_fd,
        vm_name,
    });
    ExitCode::from(status.clamp(0, 255) as u8)
}

fn run_child(id: ProcId, args: &Args) -> std::io::Result<()> {
    logging::set_procname(id.title());
    let signals = sys::SignalPipe::install(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGUSR1,
        libc::SIGCHLD,
    ])?;
    let chan = vmd::proc::parent_channel()?;
    let user = sys::unprivileged_user()?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    match id {
        ProcId::Control => {
            // The parent checked the file; only `socket owner` matters here.
            let owner = config::parse(&parse_options(args), &mut SystemHost)
                .config
                .and_then(|c| c.globals.socket_owner);
            let listener = control::bind_socket(&control::socket_path(), owner)?;
            sys::drop_privileges(&user, Some(sys::EMPTY_DIR))?;
            sys::sandbox(id, &exe)?;
            control::run(chan, listener, signals)
        }
        ProcId::Vmm => {
            // The hypervisor handle is opened while root and passed to
            // each vm process, which then needs no privileges of its own.
            let hv = match sys::open_hypervisor() {
                Ok(fd) => Some(fd),
                Err(e) => {
                    log::warn!("vmm: cannot open the hypervisor: {e}");
                    None
                }
            };
            sys::drop_privileges(&user, None)?;
            sys::sandbox(id, &exe)?;
            vmm::Vmm::new(hv, exe.clone(), args.debug, args.verbose).run(chan, signals)
        }
        ProcId::Priv => {
            // priv keeps root for interface ioctls but needs no files.
            child::run("priv", chan, signals, |m, _| {
                match vmd::privops::parse(m.hdr.type_, &m.data) {
                    // As vmd, a switch whose bridge is missing ends vmd.
                    Ok(op @ vmd::privops::PrivOp::Exists { .. }) => match sys::priv_op(&op) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            logging::fatalx(&format!("priv_dispatch_parent: {e}"))
                        }
                        Err(e) => log::warn!("priv: {e}"),
                        Ok(()) => {}
                    },
                    Ok(op) => {
                        if let Err(e) = sys::priv_op(&op) {
                            log::warn!("priv: {e}");
                        }
                    }
                    Err(e) => log::warn!("{e}"),
                }
            })
        }
        ProcId::Agentx => {
            // The master's socket is connected to again whenever the
            // master restarts, and a reload may move it, so agentx keeps
            // the file system (C vmd's agentx keeps "/" as its root) and
            // runs unprivileged in the _agentx group where there is one,
            // for the master's group permissions.
            let mut user = user;
            if let Some(gid) = sys::lookup_group(AGENTX_GROUP) {
                user.gid = gid;
            }
            sys::drop_privileges(&user, None)?;
            sys::sandbox(id, &exe)?;
            let hv = vmd::agentx::mib::Hypervisor {
                software: sys::HYPERVISOR_SOFTWARE.to_string(),
                version: sys::os_release(),
            };
            vmd::agentx::run(chan, signals, hv)
        }
        ProcId::Parent => Err(std::io::Error::other("the parent has no -P title")),
    }
}
