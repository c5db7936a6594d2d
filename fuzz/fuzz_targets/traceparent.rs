//! Fuzz target `traceparent`: see `xray_fuzzing::traceparent`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("traceparent", data);
});
