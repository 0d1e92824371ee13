//! vmd [-dnv] [-D macro=value] [-f file] [-P title]

use std::process::ExitCode;

use vmd::proc::ProcId;
use vmd::{child, control, logging, parent, sys, vmm};

struct Args {
    debug: bool,
    noaction: bool,
    verbose: usize,
    title: Option<String>,
    /// The arguments to pass on to the children (all but -P).
    passthrough: Vec<String>,
}

fn usage() -> ExitCode {
    eprintln!("usage: vmd [-dnv] [-D macro=value] [-f file]");
    ExitCode::from(1)
}

fn parse_args() -> Result<Args, ()> {
    let mut a = Args {
        debug: false,
        noaction: false,
        verbose: 0,
        title: None,
        passthrough: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(());
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            match c {
                'd' => a.debug = true,
                'n' => a.noaction = true,
                'v' => a.verbose += 1,
                'D' | 'f' | 'P' => {
                    let rest: String = chars.by_ref().collect();
                    let value = if rest.is_empty() {
                        it.next().ok_or(())?
                    } else {
                        rest
                    };
                    if c == 'P' {
                        a.title = Some(value);
                    } else {
                        a.passthrough.push(format!("-{c}"));
                        a.passthrough.push(value);
                    }
                    break;
                }
                _ => return Err(()),
            }
        }
    }
    if a.debug {
        a.passthrough.push("-d".into());
    }
    for _ in 0..a.verbose {
        a.passthrough.push("-v".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let Ok(args) = parse_args() else {
        return usage();
    };
    logging::init(args.debug, args.verbose);
    if args.noaction {
        // Saying "configuration OK" without reading the file would be a lie.
        eprintln!("vmd: checking vm.conf is not implemented yet");
        return ExitCode::from(1);
    }
    let result = match args.title.as_deref() {
        None => run_parent(&args),
        Some(title) => match ProcId::from_title(title) {
            Some(id) => run_child(id),
            None => {
                eprintln!("vmd: invalid process name: {title}");
                return ExitCode::from(1);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => logging::fatalx(&e.to_string()),
    }
}

fn run_parent(args: &Args) -> std::io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(std::io::Error::other("need root privileges"));
    }
    let exe = std::env::current_exe()?;
    parent::run(&exe.to_string_lossy(), &args.passthrough)
}

fn run_child(id: ProcId) -> std::io::Result<()> {
    logging::set_procname(id.title());
    let signals = sys::SignalPipe::install(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGPIPE,
        libc::SIGUSR1,
    ])?;
    let chan = vmd::proc::parent_channel()?;
    let user = sys::unprivileged_user()?;
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    match id {
        ProcId::Control => {
            let listener = control::bind_socket(&control::socket_path())?;
            sys::drop_privileges(&user, Some(sys::EMPTY_DIR))?;
            sys::sandbox(id, &exe)?;
            control::run(chan, listener, signals)
        }
        ProcId::Vmm => {
            sys::drop_privileges(&user, None)?;
            sys::sandbox(id, &exe)?;
            child::run("vmm", chan, signals, vmm::handle)
        }
        ProcId::Priv => {
            // priv keeps root for interface ioctls but needs no files.
            child::run("priv", chan, signals, |m, _| {
                match vmd::privops::parse(m.hdr.type_, &m.data) {
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
            sys::drop_privileges(&user, Some(sys::EMPTY_DIR))?;
            sys::sandbox(id, &exe)?;
            child::run("agentx", chan, signals, |_, _| {})
        }
        ProcId::Parent => Err(std::io::Error::other("the parent has no -P title")),
    }
}
