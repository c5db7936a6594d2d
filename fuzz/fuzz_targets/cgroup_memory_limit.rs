//! Fuzz target `cgroup_memory_limit`: see `xray_fuzzing::host::cgroup_memory_limit`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    xray_fuzzing::run("cgroup_memory_limit", data);
});
