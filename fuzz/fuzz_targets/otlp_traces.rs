//! Fuzz target `otlp_traces`: see `xray_fuzzing::otlp_traces`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("otlp_traces", data);
});
