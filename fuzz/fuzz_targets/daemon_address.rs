//! Fuzz target `daemon_address`: see `xray_fuzzing::daemon_address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("daemon_address", data);
});
