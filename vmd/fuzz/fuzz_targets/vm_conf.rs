//! vm.conf parser: any bytes must give a config or errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = vmd::config::parse_bytes("vm.conf", data);
    // A config comes back exactly when no error was reported.
    assert_eq!(parsed.config.is_some(), parsed.errors().next().is_none());
});
