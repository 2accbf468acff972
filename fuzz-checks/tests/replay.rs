//! Replays the fuzz targets' committed inputs (issue 7): the seeds in
//! `fuzz/seeds/<target>/` and every crash kept in
//! `fuzz/regressions/<target>/`, through the same checks the fuzz targets
//! run (this crate's), so that a crash the fuzzer found stays fixed in every `cargo test` run, without cargo-fuzz.
//! The Redis targets are not among them here: their checks need decoders
//! that session-redis exposes only under cargo-fuzz's `--cfg fuzzing`, and
//! session-redis's unit tests replay their inputs.

use std::path::{Path, PathBuf};

use session_fuzz_checks as checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files in `dir`, sorted; none when it does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.is_file());
    files.sort();
    files
}

#[test]
fn every_seed_and_kept_crash_input_passes_its_target_check() {
    let fuzz = fuzz_dir();
    for target in checks::TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(target.name));
        assert!(
            !seeds.is_empty(),
            "no seeds for fuzz target {}",
            target.name
        );
        let regressions = inputs(&fuzz.join("regressions").join(target.name));
        for input in seeds.iter().chain(&regressions) {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| (target.check)(&data));
            assert!(
                outcome.is_ok(),
                "{} fails on {}",
                target.name,
                input.display()
            );
        }
    }
}
