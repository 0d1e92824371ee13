//! vmd(8): `vmd [-dnv] [-D macro=value] [-f file]`.
//!
//! Only `-n` (check the configuration) works so far. The daemon itself and
//! the re-executed roles (`-P` privsep process, `-V` vm, `-X` device) come
//! with the rest of issue 8; until then they fail loudly instead of
//! pretending.

use std::process::ExitCode;

use vmd::config::{self, Diagnostic, ParseOptions, SystemHost};

const VMD_CONF: &str = "/etc/vm.conf";

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

    let mut macros = Vec::new();
    for definition in &args.macros {
        match config::split_macro_definition(definition) {
            Some(pair) => macros.push(pair),
            None => eprintln!("{progname}: could not parse macro definition {definition}"),
        }
    }

    // Placeholder: the re-executed roles of DESIGN.md are not written yet.
    if args.process.is_some() || args.vm_fd.is_some() || args.device_fd.is_some() {
        eprintln!("{progname}: process roles (-P, -V, -X) are not implemented yet");
        return ExitCode::from(1);
    }

    if !args.noaction {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("{progname}: need root privileges");
            return ExitCode::from(1);
        }
        // Placeholder until the daemon exists (issue 8 item 2).
        eprintln!("{progname}: the daemon is not implemented yet; only -n works");
        return ExitCode::from(1);
    }

    // With -n, vmd logs to stderr, and debug lines need -vv.
    let show_debug = args.verbose > 1 || (args.debug && args.verbose > 0);
    let options = ParseOptions {
        is_default_path: args.conffile.is_none(),
        path: args.conffile.unwrap_or_else(|| VMD_CONF.to_string()),
        macros,
    };
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
    if parsed.config.is_none() {
        return ExitCode::from(1);
    }
    eprintln!("configuration OK");
    ExitCode::SUCCESS
}
