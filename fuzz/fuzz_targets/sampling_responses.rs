//! Fuzz target `sampling_responses`: see `xray_fuzzing::sampling_responses`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("sampling_responses", data);
});
