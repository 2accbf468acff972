//! A benchmark run: every server in turn, in alternating rounds.
//!
//! Each round takes the scenarios one at a time and measures every selected
//! server on it, each in a process of its own started for that measurement
//! (one after the other, never two at once). The servers compared on a
//! scenario are thus measured within a minute of each other, not minutes
//! apart: on a shared machine the speed drifts by several per cent over
//! minutes, and a ratio of two cells should not carry that. The order of
//! servers rotates from round to round, so that what drift remains hits
//! every server alike, and no server is always measured first or last.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use session_testing::{PostgresServer, RedisServer, Reply};

use crate::cpu;
use crate::load::{self, LoadConfig};
use crate::{Scenario, Server};

/// What to run, and how hard.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rounds over all servers; medians are taken over them.
    pub rounds: usize,
    /// Concurrent connections per scenario.
    pub connections: usize,
    /// Warm-up per scenario, not measured.
    pub warmup: Duration,
    /// Measurement per scenario, at most.
    pub duration: Duration,
    /// Measured requests per scenario, at most.
    pub max_requests: u64,
    /// Rounds in which the distinct-session scenarios (`read@5000`, ...)
    /// are measured: the first ones of [`rounds`](Options::rounds).
    pub distinct_rounds: usize,
    /// Warm-up of a distinct-session scenario, after its sessions are set up.
    pub distinct_warmup: Duration,
    /// Measurement of a distinct-session scenario, at most.
    pub distinct_duration: Duration,
    /// The servers, in report order.
    pub servers: Vec<Server>,
    /// The scenarios, in report order.
    pub scenarios: Vec<Scenario>,
    /// The `bench-server` executable.
    pub server_bin: PathBuf,
    /// Pin the server to [`cpu::SERVER_CORE`] and this process and
    /// redis-server to [`cpu::LOAD_CORE`]. The caller pins this process
    /// before it starts any thread.
    pub pin: bool,
}

/// One scenario measured on one server in one round.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The server.
    pub server: Server,
    /// The scenario.
    pub scenario: Scenario,
    /// The round, from 0.
    pub round: usize,
    /// The figures, or why there are none.
    pub outcome: Result<Figures, String>,
}

/// The figures of one cell.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Successful requests per second.
    pub requests_per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// Server CPU time per request, microseconds (all its threads).
    pub server_cpu_us: f64,
    /// Server CPU time over wall time: 1.0 is one core fully busy.
    pub server_cpu_share: f64,
    /// Load generator CPU time per request, microseconds.
    pub client_cpu_us: f64,
    /// What the store's server did: Redis (calls and CPU), or Postgres
    /// (CPU only, no calls), when the server uses one.
    pub redis: Option<RedisFigures>,
}

/// What Redis did per request.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisFigures {
    /// Calls per request of each command, by name (lower case), including
    /// the commands that scripts run: `EVALSHA` running `HGETALL` counts
    /// both, although it is one round trip.
    pub commands: Vec<(String, f64)>,
    /// Redis CPU time per request, microseconds.
    pub cpu_us: f64,
}

impl RedisFigures {
    /// All commands per request.
    #[must_use]
    pub fn total_commands(&self) -> f64 {
        self.commands.iter().map(|(_, calls)| calls).sum()
    }

    /// The breakdown as text, e.g. `evalsha 1, hgetall 1`.
    #[must_use]
    pub fn breakdown(&self) -> String {
        let parts: Vec<String> = self
            .commands
            .iter()
            .map(|(name, calls)| format!("{name} {}", trim_number(*calls)))
            .collect();
        parts.join(", ")
    }
}

/// `1` for 1.0, `0.5` for 0.5: a count per request without noise digits.
fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Runs every round and returns every cell. Progress goes to stderr.
///
/// # Errors
///
/// When Redis cannot be prepared or the async runtime cannot start; a server
/// that fails only fails its own cells.
pub fn run(options: &Options) -> Result<Vec<Cell>, String> {
    let redis = if options.servers.iter().any(|s| s.needs_redis()) {
        Some(start_redis(options.pin)?)
    } else {
        None
    };
    let postgres = if options.servers.iter().any(|s| s.needs_postgres()) {
        Some(start_postgres(options.pin)?)
    } else {
        None
    };
    let stores = Stores {
        redis: redis.as_ref(),
        postgres: postgres.as_ref(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the load generator's runtime: {e}"))?;

    let mut cells = Vec::new();
    for round in 0..options.rounds {
        let mut order = options.servers.clone();
        let shift = round % order.len().max(1);
        order.rotate_left(shift);
        for &scenario in &options.scenarios {
            if !options.measures_in(scenario, round) {
                continue;
            }
            for &server in &order {
                let outcome = ServerProcess::start(server, options, stores).and_then(|process| {
                    runtime.block_on(measure(&process, options, scenario, stores))
                });
                let cell = Cell {
                    server,
                    scenario,
                    round,
                    outcome,
                };
                eprintln!("{}", progress_line(&cell, options.rounds));
                cells.push(cell);
            }
        }
    }
    Ok(cells)
}

impl Options {
    /// Whether `scenario` is measured in round `round` (from 0).
    #[must_use]
    pub fn measures_in(&self, scenario: Scenario, round: usize) -> bool {
        scenario.sessions.is_none() || round < self.distinct_rounds
    }

    /// The rounds in which `scenario` is measured.
    #[must_use]
    pub fn rounds_of(&self, scenario: Scenario) -> usize {
        if scenario.sessions.is_none() {
            self.rounds
        } else {
            self.distinct_rounds.min(self.rounds)
        }
    }
}

fn progress_line(cell: &Cell, rounds: usize) -> String {
    let prefix = format!(
        "round {}/{rounds} {:<27} {:<14}",
        cell.round + 1,
        cell.server.name(),
        cell.scenario.name()
    );
    match &cell.outcome {
        Ok(f) => format!(
            "{prefix} {:>8.0} req/s  p50 {:>6.0} us  p99 {:>6.0} us  server {:>5.1} us/req ({:>3.0}% of a core)  client {:>4.1} us/req{}",
            f.requests_per_second,
            f.p50_us,
            f.p99_us,
            f.server_cpu_us,
            f.server_cpu_share * 100.0,
            f.client_cpu_us,
            f.redis
                .as_ref()
                .filter(|r| !r.commands.is_empty())
                .map(|r| format!("  redis {}", r.breakdown()))
                .unwrap_or_default()
        ),
        Err(error) => format!("{prefix} FAILED: {error}"),
    }
}

/// Starts the one redis-server all Redis-backed servers share, pinned to
/// [`cpu::LOAD_CORE`] when `pin`.
///
/// # Errors
///
/// When redis-server does not start, or cannot be pinned.
pub fn start_redis(pin: bool) -> Result<RedisServer, String> {
    let redis = std::panic::catch_unwind(RedisServer::start)
        .map_err(|_| "could not start redis-server (see the message above)".to_owned())?;
    if pin {
        let pid = redis_info(&redis, "server", "process_id")?;
        cpu::pin(pid as u32, cpu::LOAD_CORE).map_err(|e| e.to_string())?;
    }
    Ok(redis)
}

/// The Postgres cluster all Postgres-backed servers share (each migrates
/// its tables when it starts), its postmaster pinned to
/// [`cpu::LOAD_CORE`] when `pin`: the backends it forks for connections
/// inherit the pinning.
///
/// # Errors
///
/// When Postgres does not start, or cannot be pinned.
pub fn start_postgres(pin: bool) -> Result<PostgresServer, String> {
    let postgres = std::panic::catch_unwind(PostgresServer::start)
        .map_err(|_| "could not start Postgres (see the message above)".to_owned())?;
    if pin {
        for pid in postgres.pids() {
            cpu::pin(pid, cpu::LOAD_CORE).map_err(|e| e.to_string())?;
        }
    }
    Ok(postgres)
}

/// The store servers of a run.
#[derive(Clone, Copy)]
struct Stores<'a> {
    redis: Option<&'a RedisServer>,
    postgres: Option<&'a PostgresServer>,
}

/// The CPU time of every process of `postgres` so far, in seconds: the
/// postmaster and the backends of the open connections (a backend that
/// exits during a measurement takes its time with it, but pools keep their
/// connections open).
fn postgres_cpu_seconds(postgres: &PostgresServer) -> f64 {
    postgres
        .pids()
        .into_iter()
        .filter_map(|pid| cpu::process_cpu_time(pid).ok())
        .map(|time| time.as_secs_f64())
        .sum()
}

/// One `INFO` section's text.
fn redis_info_text(redis: &RedisServer, section: &str) -> Result<String, String> {
    match redis.command(&["INFO", section]) {
        Ok(Reply::Bulk(bytes)) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Ok(other) => Err(format!("redis INFO answered {other:?}")),
        Err(error) => Err(format!("redis INFO: {error}")),
    }
}

/// A numeric field of one `INFO` section.
fn redis_info(redis: &RedisServer, section: &str, field: &str) -> Result<f64, String> {
    let text = redis_info_text(redis, section)?;
    session_testing::info_fields(&text)
        .find(|(name, _)| *name == field)
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| format!("redis INFO {section} has no {field}"))
}

/// Redis counters sampled around a measurement: its calls by command and
/// its CPU time.
pub struct RedisSample {
    /// Calls so far, by command.
    calls: BTreeMap<String, u64>,
    cpu_seconds: f64,
}

impl RedisSample {
    /// The counters now.
    ///
    /// # Errors
    ///
    /// When `INFO` fails or lacks a counter.
    pub fn take(redis: &RedisServer) -> Result<RedisSample, String> {
        let stats = redis_info_text(redis, "commandstats")?;
        let calls = session_testing::command_calls(&stats)
            .map(|(command, calls)| (command.to_owned(), calls))
            .collect();
        Ok(RedisSample {
            calls,
            cpu_seconds: redis_info(redis, "cpu", "used_cpu_user")?
                + redis_info(redis, "cpu", "used_cpu_sys")?,
        })
    }

    /// What happened since `before`, per request.
    #[must_use]
    pub fn since(&self, before: &RedisSample, requests: f64) -> RedisFigures {
        let commands = self
            .calls
            .iter()
            // The driver's own INFO calls are not the server's.
            .filter(|(name, _)| *name != "info")
            .map(|(name, calls)| {
                // A counter that went back (Redis restarted) counts none.
                let earlier = before.calls.get(name).copied().unwrap_or(0);
                (
                    name.clone(),
                    calls.saturating_sub(earlier) as f64 / requests,
                )
            })
            .filter(|(_, per_request)| *per_request >= 0.005)
            .collect();
        RedisFigures {
            commands,
            cpu_us: (self.cpu_seconds - before.cpu_seconds) * 1e6 / requests,
        }
    }
}

/// Measures `scenario` on the server `process` runs.
async fn measure(
    process: &ServerProcess,
    options: &Options,
    scenario: Scenario,
    stores: Stores<'_>,
) -> Result<Figures, String> {
    let distinct = scenario.sessions.is_some();
    let config = &LoadConfig {
        addr: process.addr,
        connections: options.connections,
        warmup: if distinct {
            options.distinct_warmup
        } else {
            options.warmup
        },
        duration: if distinct {
            options.distinct_duration
        } else {
            options.duration
        },
        max_requests: options.max_requests,
    };
    let redis = stores.redis.filter(|_| process.server.needs_redis());
    let postgres = stores.postgres.filter(|_| process.server.needs_postgres());
    let expect = scenario.expect(process.server.has_sessions());
    let prepared = load::prepare(config, scenario, expect)
        .await
        .map_err(|e| format!("setup: {e}"))?;

    let server_cpu = || cpu::process_cpu_time(process.child.id()).map_err(|e| e.to_string());
    let redis_before = redis.map(RedisSample::take).transpose()?;
    let postgres_before = postgres.map(postgres_cpu_seconds);
    let (server_before, client_before) = (server_cpu()?, cpu::own_cpu_time());
    let mut measurement = load::measure(prepared, config).await;
    let (server_after, client_after) = (server_cpu()?, cpu::own_cpu_time());
    let redis_after = redis.map(RedisSample::take).transpose()?;
    let postgres_after = postgres.map(postgres_cpu_seconds);

    if measurement.errors > 0 {
        return Err(format!(
            "{} of {} requests failed, first: {}",
            measurement.errors,
            measurement.errors + measurement.ok,
            measurement.first_error.unwrap_or_default()
        ));
    }
    if measurement.ok == 0 {
        return Err("no request completed".to_owned());
    }
    let requests = measurement.ok as f64;
    let per_request_us = |seconds: f64| seconds * 1e6 / requests;
    let server_seconds = (server_after - server_before).as_secs_f64();
    Ok(Figures {
        requests_per_second: measurement.requests_per_second(),
        p50_us: f64::from(measurement.latencies.percentile(50.0).unwrap_or(0)),
        p99_us: f64::from(measurement.latencies.percentile(99.0).unwrap_or(0)),
        server_cpu_us: per_request_us(server_seconds),
        server_cpu_share: server_seconds / measurement.elapsed.as_secs_f64(),
        client_cpu_us: per_request_us((client_after - client_before).as_secs_f64()),
        redis: redis_before
            .zip(redis_after)
            .map(|(before, after)| after.since(&before, requests))
            .or_else(|| {
                postgres_before
                    .zip(postgres_after)
                    .map(|(before, after)| RedisFigures {
                        commands: Vec::new(),
                        cpu_us: (after - before) * 1e6 / requests,
                    })
            }),
    })
}

/// A running `bench-server`, killed when dropped.
struct ServerProcess {
    server: Server,
    child: Child,
    addr: SocketAddr,
    /// Collects the server's stderr, so that its pipe never fills up and
    /// its last words can be reported.
    stderr: Option<JoinHandle<String>>,
}

/// How long a server may take to bind its port (Redis servers connect
/// first).
const START_TIMEOUT: Duration = Duration::from_secs(30);

impl ServerProcess {
    fn start(
        server: Server,
        options: &Options,
        stores: Stores<'_>,
    ) -> Result<ServerProcess, String> {
        let mut command =
            cpu::command_on(options.pin.then_some(cpu::SERVER_CORE), &options.server_bin);
        command
            .args(["--server", server.name(), "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let (true, Some(redis)) = (server.needs_redis(), stores.redis) {
            command.args(["--redis-url", &redis.url()]);
        }
        if let (true, Some(postgres)) = (server.needs_postgres(), stores.postgres) {
            command.args(["--database-url", &postgres.url()]);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", options.server_bin.display()))?;
        let stderr = child.stderr.take().map(|mut pipe| {
            thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        });
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut process = ServerProcess {
            server,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let line = receiver.recv_timeout(START_TIMEOUT).unwrap_or_default();
        match line.trim().strip_prefix("listening on ").map(str::parse) {
            Some(Ok(addr)) => {
                process.addr = addr;
                Ok(process)
            }
            _ => Err(format!("{server} did not start{}", process.stop())),
        }
    }

    /// Kills the server and returns its stderr, formatted as a suffix.
    fn stop(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .and_then(|collector| collector.join().ok())
            .unwrap_or_default();
        let stderr = stderr.trim();
        if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
