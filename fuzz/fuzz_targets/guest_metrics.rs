//! Fuzz target `guest_metrics`: see `xray_fuzzing::guest_metrics` (a component's wasi:otel
//! metric exports).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("guest_metrics", data);
});
