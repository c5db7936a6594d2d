//! Fuzz target `console_logs_query`: see `xray_fuzzing::console_logs_query`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("console_logs_query", data);
});
