//! The cost of the session layer alone, without sockets: drives the axum
//! servers' apps (the same ones `bench-server` serves) in process, one
//! request after another on one thread, and prints nanoseconds per request
//! (CPU time of this single-threaded process) for each scenario, with the
//! difference to bare axum.
//!
//! ```text
//! bench-inprocess [--requests N] [--rounds N] [--servers a,b] [--scenarios read,counter]
//! ```
//!
//! Over HTTP, the kernel's TCP work dominates a request (about 8 µs here,
//! three quarters of it in the kernel) and hides differences of a few
//! hundred nanoseconds under the noise of a shared machine; in process they
//! show. By default only the in-memory and cookie stores take part: Redis
//! round trips are what the HTTP benchmark is for. The two axum Redis
//! servers take part when named in `--servers` (a redis-server is started
//! for them): one request at a time, each waits for its round trip, so
//! their CPU time is mostly the wake-ups of a sequential client and says
//! little; run under callgrind, their instruction counts show what the
//! client side of a Redis-backed request costs, ours against the peer's.
//! actix-web is left out: its services are not callable without its test
//! harness, which would add costs of its own.

use std::hint::black_box;
use std::pin::Pin;
use std::process::ExitCode;

use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser;
use session_bench::scenario::Route as Scenario;
use session_bench::servers::{self, AxumApp, AxumAppUser};
use session_bench::stats::median;
use session_bench::{Server, cpu};
use session_testing::RedisServer;

/// Nanoseconds per request of the axum servers, in process.
#[derive(Parser)]
struct Args {
    /// Requests per scenario, server and round.
    #[arg(long, default_value_t = 100_000)]
    requests: u32,
    /// Rounds over all servers; medians are printed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Comma-separated servers besides axum-bare, which is always measured
    /// [default: all that run in process, except the Redis ones, which
    /// run only when named].
    #[arg(long, value_delimiter = ',')]
    servers: Vec<Server>,
    /// Comma-separated scenarios [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
}

/// The servers that run in process by default, the baseline first.
const SERVERS: [Server; 5] = [
    Server::AxumBare,
    Server::AxumOursMemory,
    Server::AxumOursCookie,
    Server::AxumOursCookieAes,
    Server::AxumTowerSessionsMemory,
];

/// The servers that run in process only when named, with a redis-server
/// started for them.
const REDIS_SERVERS: [Server; 2] = [Server::AxumOursRedis, Server::AxumTowerSessionsRedis];

/// The reference row: bare axum under a layer that only forwards, which
/// shows what axum charges any layer before the layer does anything.
const EMPTY_LAYER: &str = "axum-bare + empty layer";

/// One request through `app`, sending `cookie` and keeping what the
/// response sets (the first `name=value` of each `Set-Cookie`, enough for
/// these servers, which set at most one cookie).
async fn request<A: AxumApp>(
    app: &mut A,
    path: &'static str,
    cookie: &mut String,
) -> Result<(), String> {
    let request = Request::get(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::COOKIE, cookie.as_str())
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let Ok(()) = std::future::poll_fn(|cx| app.poll_ready(cx)).await;
    let Ok(response) = app.call(request).await;
    if !response.status().is_success() {
        return Err(format!("{path} answered {}", response.status()));
    }
    if let Some(set) = response.headers().get(header::SET_COOKIE) {
        let pair = set.to_str().map_err(|e| e.to_string())?;
        *cookie = pair.split(';').next().unwrap_or_default().to_owned();
    }
    black_box(response);
    Ok(())
}

/// Nanoseconds per request of `scenario` on a fresh client of `app`.
async fn measure<A: AxumApp>(mut app: A, scenario: Scenario, requests: u32) -> Result<f64, String> {
    let mut cookie = String::new();
    request(&mut app, scenario.setup_path(), &mut cookie).await?;
    // Warm-up: a tenth of the requests, unmeasured.
    for _ in 0..requests / 10 {
        request(&mut app, scenario.path(), &mut cookie).await?;
    }
    // CPU time rather than wall time: a preemption by other work on a shared
    // machine then does not count.
    let cpu_time = || cpu::process_cpu_time(std::process::id()).map_err(|e| e.to_string());
    let started = cpu_time()?;
    for _ in 0..requests {
        request(&mut app, scenario.path(), &mut cookie).await?;
    }
    let spent = cpu_time()? - started;
    Ok(spent.as_nanos() as f64 / f64::from(requests))
}

/// Measures one scenario of one app: [`measure`] on a clone of the app.
type Measurer = Box<dyn Fn(Scenario, u32) -> Pin<Box<dyn Future<Output = Result<f64, String>>>>>;

/// Turns each server's app, whatever its type, into its [`Measurer`].
struct MakeMeasurer;

impl AxumAppUser for MakeMeasurer {
    type Output = Measurer;

    async fn with_app<A: AxumApp>(self, app: A) -> Measurer {
        Box::new(move |scenario, requests| Box::pin(measure(app.clone(), scenario, requests)))
    }
}

async fn run(args: &Args) -> Result<(), String> {
    if let Some(server) = args
        .servers
        .iter()
        .find(|s| !SERVERS.contains(s) && !REDIS_SERVERS.contains(s))
    {
        return Err(format!("{server} does not run in process"));
    }
    let servers: Vec<Server> = SERVERS
        .into_iter()
        .filter(|s| *s == SERVERS[0] || args.servers.is_empty() || args.servers.contains(s))
        .chain(
            REDIS_SERVERS
                .into_iter()
                .filter(|s| args.servers.contains(s)),
        )
        .collect();
    let redis = if servers.iter().any(|s| REDIS_SERVERS.contains(s)) {
        Some(session_bench::driver::start_redis(false)?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(RedisServer::url);
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut apps = Vec::new();
    for &server in &servers {
        let store_url = redis_url
            .as_deref()
            .filter(|_| REDIS_SERVERS.contains(&server));
        let measurer = servers::with_axum_app(server, store_url, MakeMeasurer)
            .await
            .map_err(|e| format!("{server}: {e}"))?;
        apps.push((server.name(), measurer));
        if server == Server::AxumBare {
            let measurer = MakeMeasurer
                .with_app(servers::axum_bare_with_empty_layer())
                .await;
            apps.push((EMPTY_LAYER, measurer));
        }
    }
    // times[server][scenario] over rounds.
    let mut times = vec![vec![Vec::new(); scenarios.len()]; apps.len()];
    for round in 0..args.rounds {
        for (index, (_, measure)) in apps.iter().enumerate().cycle().skip(round).take(apps.len()) {
            for (scenario_index, &scenario) in scenarios.iter().enumerate() {
                times[index][scenario_index].push(measure(scenario, args.requests).await?);
            }
        }
    }
    println!(
        "In process, one thread; CPU ns per request, median of {} rounds of {} requests (+ difference to axum-bare).\n",
        args.rounds, args.requests
    );
    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    println!("| server | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    let bare: Vec<f64> = times[0]
        .iter()
        .map(|samples| median(samples).unwrap_or(0.0))
        .collect();
    for (index, (server, _)) in apps.iter().enumerate() {
        let cells: Vec<String> = times[index]
            .iter()
            .zip(&bare)
            .map(|(samples, bare)| {
                let ns = median(samples).unwrap_or(0.0);
                if index == 0 {
                    format!("{ns:.0}")
                } else {
                    format!("{ns:.0} ({:+.0})", ns - bare)
                }
            })
            .collect();
        println!("| {server} | {} |", cells.join(" | "));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    session_bench::run_on_one_thread("bench-inprocess", run(&args))
}
