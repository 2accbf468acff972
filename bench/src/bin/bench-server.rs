//! Serves one benchmark server variant until killed.
//!
//! ```text
//! bench-server --server axum-ours-redis --listen 127.0.0.1:0 --redis-url redis://127.0.0.1:6400
//! bench-server --server axum-ours-postgres --database-url postgres://postgres@127.0.0.1:5433/postgres
//! ```
//!
//! Prints `listening on ADDR` once it accepts connections, so that a driver
//! can bind port 0 and learn the port without a race.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

use clap::Parser;
use session_bench::Server;

/// Serves one benchmark server variant until killed.
#[derive(Parser)]
struct Args {
    /// The variant, e.g. `axum-bare` or `actix-session-redis`.
    #[arg(long)]
    server: Server,
    /// The address to listen on; loopback only.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Redis, for the Redis-backed variants.
    #[arg(long)]
    redis_url: Option<String>,
    /// Postgres, for the Postgres-backed variants: postgres://...
    #[arg(long)]
    database_url: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "bench-server: listens on loopback only, not {}",
            args.listen
        );
        return ExitCode::FAILURE;
    }
    let listener = match TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bench-server: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("bench-server: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Printed only once the server is built, so that a driver reading it
    // knows the server started; connections queue in the backlog meanwhile.
    let ready = || println!("listening on {addr}");
    let store_url = if args.server.needs_postgres() {
        args.database_url.as_deref()
    } else {
        args.redis_url.as_deref()
    };
    match session_bench::servers::serve(args.server, listener, store_url, ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-server: {}: {error}", args.server);
            ExitCode::FAILURE
        }
    }
}
