//! Fuzz target `table_item`: see `xray_fuzzing::table_item`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("table_item", data);
});
