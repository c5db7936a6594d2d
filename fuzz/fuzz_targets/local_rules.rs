//! Fuzz target `local_rules`: see `xray_fuzzing::local_rules`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("local_rules", data);
});
