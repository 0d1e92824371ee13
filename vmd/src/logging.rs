//! Logging as vmd's log.c: to stderr in the foreground (`-d`), otherwise to
//! syslog with the daemon facility through libc, which keeps working after
//! chroot because the log socket is opened before it (LOG_NDELAY).

use std::ffi::CString;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

use log::{Level, Log, Metadata, Record};

static TO_STDERR: AtomicBool = AtomicBool::new(true);
static VERBOSE: AtomicUsize = AtomicUsize::new(0);
static PROCNAME: OnceLock<String> = OnceLock::new();

struct Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        // Only our own crates: dependencies' tracing is not vmd's log.
        let ours = ["vmd", "vmctl", "vm", "imsg", "devices"]
            .iter()
            .any(|c| m.target() == *c || m.target().starts_with(&format!("{c}::")));
        // The level is the log crate's, which the vm and device
        // processes' code sets too when vmctl changes the verbosity.
        ours && m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        if TO_STDERR.load(Ordering::Relaxed) {
            let _ = writeln!(std::io::stderr(), "{msg}");
            return;
        }
        let prio = match r.level() {
            Level::Error => libc::LOG_CRIT,
            Level::Warn => libc::LOG_ERR,
            Level::Info => libc::LOG_INFO,
            Level::Debug | Level::Trace => libc::LOG_DEBUG,
        };
        if let Ok(c) = CString::new(msg.replace('\0', " ")) {
            // SAFETY: "%s" with one valid C string argument.
            unsafe { libc::syslog(prio, c"%s".as_ptr(), c.as_ptr()) };
        }
    }

    fn flush(&self) {}
}

/// Starts logging: `debug` logs to stderr, else to syslog as "vmd".
pub fn init(debug: bool, verbose: usize) {
    TO_STDERR.store(debug, Ordering::Relaxed);
    VERBOSE.store(verbose, Ordering::Relaxed);
    if !debug {
        // SAFETY: the ident is a static C string; LOG_NDELAY opens the
        // socket now, before any chroot.
        unsafe {
            libc::openlog(
                c"vmd".as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                libc::LOG_DAEMON,
            )
        };
    }
    let _ = log::set_logger(&Logger);
    vm::log_level::set_verbosity(verbose_i32(verbose));
}

/// Names this process in fatal messages (log_procinit).
pub fn set_procname(name: &str) {
    let _ = PROCNAME.set(name.to_string());
}

pub fn procname() -> &'static str {
    PROCNAME.get().map(String::as_str).unwrap_or("vmd")
}

/// `log verbose|brief` and -v at run time.
pub fn set_verbose(v: usize) {
    VERBOSE.store(v, Ordering::Relaxed);
    vm::log_level::set_verbosity(verbose_i32(v));
}

fn verbose_i32(v: usize) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

pub fn verbose() -> usize {
    VERBOSE.load(Ordering::Relaxed)
}

/// Logs a fatal error as "<process>: <message>" and exits 1 (fatalx).
pub fn fatalx(msg: &str) -> ! {
    log::error!("{}: {msg}", procname());
    std::process::exit(1);
}
