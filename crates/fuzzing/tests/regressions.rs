//! Replays every input kept in `regressions/<target>/` (seeds, and the inputs
//! fuzzing once found a problem with) through the fuzzing entry points: none may panic.

use std::path::Path;
use xray_fuzzing::{TARGETS, run};

#[test]
fn every_kept_fuzz_input_runs_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for target in TARGETS {
        let dir = root.join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no inputs for {target}");
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| run(target, &data));
            assert!(outcome.is_ok(), "{target} panics on {}", input.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}
