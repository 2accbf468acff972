//! Project automation, run as `cargo xtask <command>`.
//!
//! * `test`: makes sure what the tests need is installed (redis-server, Postgres,
//!   Chromium and its driver, Python for the aiohttp interop test), then runs
//!   every test of the workspace.
//! * `ci`: formatting, lints and docs with warnings denied, `cargo deny`
//!   (installed when missing), the packages of the published crates, a
//!   build of them on the toolchain of the workspace's `rust-version`
//!   (installed through rustup when missing), then `test`.
//! * `package`: the packages of the published crates (part of `ci`).
//! * `msrv`: the build on the `rust-version` toolchain (part of `ci`).
//! * `bench`: the benchmarks.
//! * `fuzz --seconds N`: every fuzz target for N seconds (cargo-fuzz).
//! * `soak [--topology standalone|cluster|sentinel] [--apps N] --seconds N
//!   [--wait-replicas N] [--client-cache N] [--debug]`: demo processes on
//!   Redis under load through a failover.
//!
//! xtask has no dependencies, so that it builds in seconds on a fresh clone.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod fuzz;
mod msrv;
mod package;
mod prerequisites;
mod soak;

type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test    install what the tests need, then run every test of the workspace
  ci      fmt --check, clippy -D warnings, doc -D warnings, cargo deny, cargo package,
          a build on the rust-version toolchain, then test
  package cargo package the published crates, checking what each package holds
  msrv    cargo check the published crates on the toolchain of the workspace's rust-version
  bench   run the benchmarks
  fuzz    [--seconds N] run every fuzz target for N seconds (default 60), print executions
  soak    [--topology standalone|cluster|sentinel] [--apps N] [--seconds N] [--wait-replicas N] [--client-cache N] [--debug] [--framework axum|actix]
          demo processes on Redis under load through a failover (default: standalone, 2 processes, 30 s)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("package") => package::check(),
        Some("msrv") => msrv::check(),
        Some("fuzz") => fuzz::parse_seconds(&args[1..]).and_then(fuzz::run_fuzz),
        Some("soak") => soak::Soak::parse(&args[1..]).and_then(|s| soak::run_soak(&s)),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut command = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    command.current_dir(root());
    command
}

/// Runs `command`, echoing it first; fails when it does.
fn run(command: &mut Command) -> Result {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}

/// The cargo command, up to its options, that builds and runs every test
/// target of the workspace.
const TEST_BUILD: [&str; 4] = ["test", "--workspace", "--all-features", "--all-targets"];

fn test(extra: &[String]) -> Result {
    prerequisites::ensure_all()?;
    let python = prerequisites::ensure_python_env(&root())?;
    run(cargo()
        .args(TEST_BUILD)
        .args(extra)
        .env("SESSION_TEST_PYTHON", &python))?;
    // Doc tests are not part of --all-targets.
    run(cargo().args(["test", "--workspace", "--all-features", "--doc"]))?;
    // Short soaks on the debug build: two demo processes (axum and
    // actix-web) on one Redis through its restart, without and with the
    // client cache (each process then answers from memory sessions the
    // other writes and logs out), then on a cluster with replicas through a
    // master's failover, with writes waiting for the replica (so that none
    // may be lost).
    let standalone = soak::Soak {
        seconds: SHORT_SOAK_SECONDS,
        debug: true,
        framework: None,
        topology: Some("standalone".to_owned()),
        apps: Some(2),
        wait_replicas: None,
        client_cache: None,
    };
    soak::run_soak(&standalone)?;
    soak::build_and_run(
        &soak::Soak {
            client_cache: Some(SOAK_CLIENT_CACHE),
            ..standalone.clone()
        },
        false,
    )?;
    soak::build_and_run(
        &soak::Soak {
            topology: Some("cluster".to_owned()),
            wait_replicas: Some(1),
            ..standalone
        },
        false,
    )
}

/// The client cache of the cached soak, in sessions per process: more
/// than the run's users ever have, so that what is read is kept.
const SOAK_CLIENT_CACHE: usize = 1024;

/// The length of each soak run that `cargo xtask test` includes
/// (standalone without and with the client cache, then cluster); `cargo
/// xtask soak` runs longer ones. Fuzzing is not part of `test`: building
/// the instrumented targets takes minutes, and the property tests cover
/// the same decoders.
const SHORT_SOAK_SECONDS: u64 = 10;

fn ci() -> Result {
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    prerequisites::ensure_cargo_deny()?;
    run(cargo().args(["deny", "check", "licenses", "bans", "sources"]))?;
    package::check()?;
    msrv::check()?;
    test(&[])
}

fn bench(extra: &[String]) -> Result {
    bench::run_all(extra)
}
