//! `cargo xtask fuzz --seconds N`: runs every fuzz target in `fuzz/` for N
//! seconds each and prints its executions.
//!
//! The targets use cargo-fuzz and libFuzzer. cargo-fuzz wants a nightly
//! compiler for its sanitizers; on a stable toolchain they run without one
//! (`--sanitizer none`, which costs nothing for code that forbids `unsafe`)
//! and with `RUSTC_BOOTSTRAP=1` for the few unstable flags cargo-fuzz still
//! passes. Overflow checks and debug assertions are on (`fuzz/Cargo.toml`),
//! so an arithmetic overflow is a finding.
//!
//! libFuzzer's working corpus grows in `fuzz/corpus/<target>/` (ignored by
//! git), seeded from `fuzz/seeds/<target>/`; a crash lands in
//! `fuzz/artifacts/<target>/`, and this command copies it to
//! `fuzz/regressions/<target>/`, where the normal test suite replays it
//! (`crates/session-redis/src/fuzz_regressions.rs` for the Redis targets,
//! `fuzz-checks/tests/replay.rs` for the others) once the bug is
//! fixed. cargo-fuzz builds with `--cfg fuzzing`, under which session-redis
//! exposes its decoders to the targets.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Result, prerequisites, root, run};

/// The fuzz targets, as in `fuzz/Cargo.toml`.
const TARGETS: &[&str] = &[
    "cookie_header",
    "encrypted_cookie",
    "simple_cookie",
    "redis_hash_reply",
    "redis_aiohttp_value",
    "aiohttp_cookies",
];

/// The longest input libFuzzer makes: a little over the 4096-byte cookie
/// limit, so that the decoders' length checks are crossed both ways.
const MAX_LEN: usize = 5000;

pub(crate) fn parse_seconds(args: &[String]) -> Result<u64> {
    match args {
        [] => Ok(60),
        [flag, seconds] if flag == "--seconds" => seconds
            .parse()
            .map_err(|_| "--seconds takes a whole number of seconds".to_owned()),
        _ => Err("usage: cargo xtask fuzz [--seconds N]".to_owned()),
    }
}

fn cargo_fuzz() -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("fuzz")
        .current_dir(root())
        .env("RUSTC_BOOTSTRAP", "1");
    command
}

/// Installs cargo-fuzz from crates.io when it is missing.
fn ensure_cargo_fuzz() -> Result {
    if prerequisites::on_path("cargo-fuzz") {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (a few minutes, once)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

pub(crate) fn run_fuzz(seconds: u64) -> Result {
    ensure_cargo_fuzz()?;
    run(cargo_fuzz().args(["build", "--sanitizer", "none", "--debug-assertions"]))?;
    let fuzz = root().join("fuzz");
    let mut summary = Vec::new();
    let mut crashed = Vec::new();
    for target in TARGETS {
        let corpus = fuzz.join("corpus").join(target);
        fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
        let mut command = cargo_fuzz();
        command
            .args(["run", "--sanitizer", "none", "--debug-assertions", target])
            .arg(&corpus)
            .arg(fuzz.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-max_len={MAX_LEN}"))
            .arg("-print_final_stats=1")
            .stderr(Stdio::piped());
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let output = command
            .output()
            .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let executions = final_stat(&log, "stat::number_of_executed_units:");
        let per_second = final_stat(&log, "stat::average_exec_per_sec:");
        summary.push(format!(
            "{target:<20} {:>12} executions {:>9}/s",
            executions.as_deref().unwrap_or("?"),
            per_second.as_deref().unwrap_or("?")
        ));
        if !output.status.success() {
            eprintln!("{log}");
            crashed.push(*target);
            keep_crashes(&fuzz, target)?;
        }
    }
    println!("fuzz: {seconds} s per target");
    for line in &summary {
        println!("  {line}");
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets failed: {}; their inputs are in fuzz/regressions/ (replayed by the tests of session-redis and session-fuzz-checks)",
            crashed.join(", ")
        ))
    }
}

/// The value of one of libFuzzer's `-print_final_stats` lines.
fn final_stat(log: &str, name: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.strip_prefix(name))
        .map(|value| value.trim().to_owned())
}

/// Copies the target's crash artifacts to `fuzz/regressions/<target>/`.
fn keep_crashes(fuzz: &Path, target: &str) -> Result {
    let artifacts = fuzz.join("artifacts").join(target);
    let regressions = fuzz.join("regressions").join(target);
    fs::create_dir_all(&regressions).map_err(|e| format!("{}: {e}", regressions.display()))?;
    let Ok(entries) = fs::read_dir(&artifacts) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let kept = regressions.join(entry.file_name());
        fs::copy(entry.path(), &kept).map_err(|e| format!("{}: {e}", kept.display()))?;
        eprintln!("xtask: kept {}", kept.display());
    }
    Ok(())
}
