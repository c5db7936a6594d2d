//! Fuzz target `daemon_address`: see `xray_host::fuzzing::daemon_address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_host::fuzzing::run("daemon_address", data);
});
