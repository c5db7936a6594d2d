//! Fuzz target `component_pin`: see `xray_fuzzing::component_pin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("component_pin", data);
});
