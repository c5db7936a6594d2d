//! Fuzz target `outbound_address`: see `xray_fuzzing::outbound_address`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("outbound_address", data);
});
