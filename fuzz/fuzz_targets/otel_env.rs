//! Fuzz target `otel_env`: see `xray_fuzzing::otel_env` (the OpenTelemetry variables).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("otel_env", data);
});
