//! Fuzz target `xray_api`: see `xray_fuzzing::xray_api`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("xray_api", data);
});
