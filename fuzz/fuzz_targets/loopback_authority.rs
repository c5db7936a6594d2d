//! Fuzz target `loopback_authority`: see `xray_fuzzing::loopback_authority`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("loopback_authority", data);
});
