//! Fuzz target `deploy_settings`: see `xray_fuzzing::deploy_settings`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("deploy_settings", data);
});
