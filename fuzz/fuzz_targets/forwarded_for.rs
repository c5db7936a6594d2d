//! Fuzz target `forwarded_for`: see `xray_fuzzing::forwarded_for`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("forwarded_for", data);
});
