//! Fuzz target `datagram`: see `xray_fuzzing::datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("datagram", data);
});
