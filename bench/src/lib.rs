//! Side-by-side HTTP benchmarks of this workspace's session crates against
//! tower-sessions and actix-session. Not published.
//!
//! * `bench-server` serves one [`Server`] variant: bare axum or actix-web,
//!   ours on either with the encrypted cookie, memory or Redis store (and
//!   on axum with the Postgres store), or a peer library. All serve the
//!   same routes ([`scenario`]).
//! * `bench-http` drives a run: it starts one redis-server and one
//!   throwaway Postgres cluster (for the servers that need them), then, in
//!   alternating rounds, for each [`Scenario`] each server in a process of
//!   its own, which it loads with the [`load`] generator, and prints medians
//!   over the rounds with the ratios ours / bare framework and ours / peer.
//! * `bench-inprocess` drives the axum servers' routers in process, without
//!   sockets, to show the session layer's own cost in nanoseconds, which the
//!   kernel's TCP work hides over HTTP; beside them, bare axum under a layer
//!   that does nothing shows what axum charges any layer.
//! * `bench-redis-store` calls the Redis stores directly, ours and
//!   tower-sessions-redis-store, to compare their client CPU per load and
//!   save without HTTP.
//!
//! `cargo xtask bench [--quick]` builds them in release mode and runs them.

pub mod cpu;
pub mod driver;
pub mod load;
pub mod report;
pub mod scenario;
pub mod server;
pub mod servers;
pub mod stats;

pub use scenario::Scenario;
pub use server::Server;

/// Runs `work` on a current-thread tokio runtime, as the in-process
/// benchmarks' `main`: an error, or a runtime that cannot start, is printed
/// after `program`'s name and fails the process.
pub fn run_on_one_thread(
    program: &str,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> std::process::ExitCode {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
        .and_then(|runtime| runtime.block_on(work));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{program}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The one of `all` that `name_of` calls `wanted` (a name given on the
/// command line); the error names the `kind` of thing and lists the names.
fn by_name<T: Copy>(
    all: &[T],
    name_of: impl Fn(&T) -> &'static str,
    kind: &str,
    wanted: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|item| name_of(item) == wanted)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(name_of).collect();
            format!("unknown {kind} {wanted:?}; one of: {}", names.join(", "))
        })
}
