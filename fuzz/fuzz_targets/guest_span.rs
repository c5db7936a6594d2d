//! Fuzz target `guest_span`: see `xray_fuzzing::guest_span`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("guest_span", data);
});
