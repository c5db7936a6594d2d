//! Fuzz target `trace_header`: see `xray_fuzzing::trace_header`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("trace_header", data);
});
