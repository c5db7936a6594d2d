//! Fuzz target `ecs_metadata`: see `xray_fuzzing::ecs_metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("ecs_metadata", data);
});
