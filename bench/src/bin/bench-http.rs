//! The HTTP benchmark driver and load generator: `cargo xtask bench` runs
//! it. See the `session_bench` crate docs and BENCHMARKS.md.
//!
//! ```text
//! bench-http [--quick] [--rounds N] [--servers a,b] [--scenarios read,counter,read@5000]
//!            [--sessions 100,5000,50000] ...
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use session_bench::driver::{self, Options};
use session_bench::scenario::DEFAULT_SESSION_COUNTS;
use session_bench::{Scenario, Server, cpu, report};

/// Benchmarks every server variant side by side, in alternating rounds, and
/// prints medians and ratios as Markdown on stdout (progress on stderr).
#[derive(Parser)]
struct Args {
    /// A short run: 3 rounds of 1 s per scenario (unless overridden).
    #[arg(long)]
    quick: bool,
    /// Rounds over all servers [default: 5; --quick: 3].
    #[arg(long)]
    rounds: Option<usize>,
    /// Measured seconds per scenario and server [default: 3; --quick: 1].
    #[arg(long)]
    duration: Option<f64>,
    /// Warm-up seconds per scenario and server [default: 1; --quick: 0.25].
    #[arg(long)]
    warmup: Option<f64>,
    /// Concurrent connections, each a client with its own session.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured requests per scenario and server, at most.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// Comma-separated servers [default: all].
    #[arg(long, value_delimiter = ',')]
    servers: Vec<Server>,
    /// Comma-separated scenarios: untouched, read, counter, read-1kb, each
    /// with one session per connection, and read@N, counter@N, read-1kb@N
    /// over N distinct sessions in rotation. By default the four
    /// single-session ones, then read@N and counter@N for each N of
    /// --sessions, and read-1kb@N for the middle one.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// Comma-separated numbers of distinct sessions for the default
    /// scenarios [default: 100,5000,50000].
    #[arg(long, value_delimiter = ',', value_parser = session_bench::scenario::parse_count)]
    sessions: Vec<usize>,
    /// Rounds that also measure the distinct-session scenarios: the first
    /// ones [default: 3; --quick: 1].
    #[arg(long)]
    distinct_rounds: Option<usize>,
    /// Measured seconds per distinct-session scenario and server
    /// [default: 2; --quick: 1].
    #[arg(long)]
    distinct_duration: Option<f64>,
    /// Warm-up seconds per distinct-session scenario and server, after the
    /// sessions are set up [default: 0.5; --quick: 0.25].
    #[arg(long)]
    distinct_warmup: Option<f64>,
    /// The bench-server executable [default: next to this one].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Do not pin processes to cores.
    #[arg(long)]
    no_pin: bool,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn seconds(value: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("--{name}: {value} is not a duration"))
}

fn options(args: Args) -> Result<(Options, Option<PathBuf>), String> {
    let server_bin = match args.server_bin {
        Some(path) => path,
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate this executable: {e}"))?
            .with_file_name("bench-server"),
    };
    if !server_bin.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p session-bench --bins`",
            server_bin.display()
        ));
    }
    let pin = !args.no_pin && cpu::can_pin();
    let options = Options {
        rounds: args.rounds.unwrap_or(if args.quick { 3 } else { 5 }).max(1),
        connections: args.connections.max(1),
        warmup: seconds(
            args.warmup.unwrap_or(if args.quick { 0.25 } else { 1.0 }),
            "warmup",
        )?,
        duration: seconds(
            args.duration.unwrap_or(if args.quick { 1.0 } else { 3.0 }),
            "duration",
        )?,
        max_requests: args.max_requests,
        distinct_rounds: args
            .distinct_rounds
            .unwrap_or(if args.quick { 1 } else { 3 })
            .max(1),
        distinct_warmup: seconds(
            args.distinct_warmup
                .unwrap_or(if args.quick { 0.25 } else { 0.5 }),
            "distinct-warmup",
        )?,
        distinct_duration: seconds(
            args.distinct_duration
                .unwrap_or(if args.quick { 1.0 } else { 2.0 }),
            "distinct-duration",
        )?,
        servers: if args.servers.is_empty() {
            Server::ALL.to_vec()
        } else {
            args.servers
        },
        scenarios: if args.scenarios.is_empty() {
            Scenario::defaults(if args.sessions.is_empty() {
                &DEFAULT_SESSION_COUNTS
            } else {
                &args.sessions
            })
        } else {
            args.scenarios
        },
        server_bin,
        pin,
    };
    Ok((options, args.output))
}

fn main() -> ExitCode {
    let (options, output) = match options(Args::parse()) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("bench-http: {message}");
            return ExitCode::FAILURE;
        }
    };
    // Before any thread starts, so that every later thread inherits it.
    if options.pin
        && let Err(error) = cpu::pin(std::process::id(), cpu::LOAD_CORE)
    {
        eprintln!("bench-http: {error}");
        return ExitCode::FAILURE;
    }
    let cells = match driver::run(&options) {
        Ok(cells) => cells,
        Err(message) => {
            eprintln!("bench-http: {message}");
            return ExitCode::FAILURE;
        }
    };
    let summaries = report::summarize(&cells, &options);
    let markdown = report::markdown(&summaries, &options);
    println!("{markdown}");
    if let Some(path) = output
        && let Err(error) = std::fs::write(&path, &markdown)
    {
        eprintln!("bench-http: cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
