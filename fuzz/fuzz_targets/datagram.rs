//! Fuzz target `datagram`: see `xray_host::fuzzing::datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_host::fuzzing::run("datagram", data);
});
