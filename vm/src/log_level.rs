//! vmd's verbosity (`-v`, `vmctl log verbose|brief`) as a log level, the
//! same in every process: 0 logs informational messages and above, 1 adds
//! debug messages, 2 and more add traces.

use log::LevelFilter;

pub fn for_verbosity(verbose: i32) -> LevelFilter {
    match verbose {
        i32::MIN..=0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Applies `verbose` to this process's log from now on.
pub fn set_verbosity(verbose: i32) {
    log::set_max_level(for_verbosity(verbose));
}
