//! Replays the committed inputs of the fuzz targets of this crate's
//! decoders (issue 7): the seeds in `fuzz/seeds/<target>/` and every crash
//! kept in `fuzz/regressions/<target>/`, read at run time, through the
//! checks the fuzz targets run ([`crate::fuzzing`]), so that a crash the
//! fuzzer found stays fixed in every `cargo test` run, without cargo-fuzz.
//!
//! A unit test rather than an integration test: the decoders are private,
//! and the hooks that expose them are compiled only under cargo-fuzz's
//! `--cfg fuzzing` and in this crate's own tests.

use std::path::{Path, PathBuf};

use crate::fuzzing;

/// A fuzz target's check: panics when the input breaks a property.
type Check = fn(&[u8]);

/// The fuzz targets of this crate, as in `fuzz/Cargo.toml`, with their
/// checks.
const TARGETS: [(&str, Check); 2] = [
    ("redis_hash_reply", fuzzing::check_hash_reply),
    ("redis_aiohttp_value", fuzzing::check_aiohttp_value),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
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
    for (target, check) in TARGETS {
        let seeds = inputs(&fuzz.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        let regressions = inputs(&fuzz.join("regressions").join(target));
        for input in seeds.iter().chain(&regressions) {
            let data = std::fs::read(input).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", input.display());
        }
    }
}
