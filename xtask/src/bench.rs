//! `cargo xtask bench [--quick] [bench-http options]`: the HTTP benchmark of
//! ours against the bare frameworks, tower-sessions and actix-session
//! (package `session-bench`), then the axum routers in process
//! (`bench-inprocess`), the Redis stores alone (`bench-redis-store`), the
//! cost of the Redis store's durability setting (`bench-durability`) and
//! the encrypted cookie codec benchmark.
//!
//! The HTTP benchmark needs `redis-server` on `PATH` (all Redis-backed
//! servers share one) and Postgres (`apt-get install postgresql`; the
//! Postgres-backed servers, ours and tower-sessions-sqlx-store's, share one
//! throwaway cluster on the same machine) and uses `taskset` when present to pin the server under
//! test and the load generator to different cores. Its driver is the
//! `bench-http` binary, which keeps this crate free of dependencies: this
//! module only builds and starts it. Options other than `--quick` go to
//! `bench-http` (see `cargo run -p session-bench --bin bench-http -- --help`);
//! `--quick` also makes the other benchmarks short (one round; criterion's
//! `--quick`).

use crate::prerequisites::on_path;
use crate::{Result, cargo, run};

pub(crate) fn run_all(extra: &[String]) -> Result {
    if !on_path("redis-server") {
        return Err("the HTTP benchmark needs redis-server on PATH \
             (e.g. `apt-get install redis-server`, or run `cargo xtask test` once)"
            .to_owned());
    }
    if !crate::prerequisites::postgres_installed() && !on_path("initdb") {
        return Err("the HTTP benchmark needs Postgres \
             (e.g. `apt-get install postgresql`, or run `cargo xtask test` once)"
            .to_owned());
    }
    let quick = extra.iter().any(|arg| arg == "--quick");

    // Both binaries in release mode: bench-http finds bench-server next to
    // itself, whatever the target directory is.
    run(cargo().args(["build", "--release", "-p", "session-bench", "--bins"]))?;
    let short: Vec<String> = if quick {
        vec!["--rounds".to_owned(), "1".to_owned()]
    } else {
        Vec::new()
    };
    for (bin, args) in [
        ("bench-http", extra),
        ("bench-inprocess", &short[..]),
        ("bench-redis-store", &short[..]),
        ("bench-durability", &short[..]),
    ] {
        run(cargo()
            .args([
                "run",
                "--release",
                "-p",
                "session-bench",
                "--bin",
                bin,
                "--",
            ])
            .args(args))?;
    }

    run(cargo()
        .args([
            "bench",
            "-p",
            "session-encrypted-cookie",
            "--bench",
            "codec",
            "--",
        ])
        .args(quick.then_some("--quick")))
}
