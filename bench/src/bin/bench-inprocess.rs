//! The cost of the session layer alone, without sockets: drives the axum
//! servers' apps (the same ones `bench-server` serves) in process, one
//! request after another on one thread, and prints nanoseconds per request
//! (CPU time of this single-threaded process) for each scenario, with the
//! difference to bare axum.
//!
//! ```text
//! bench-inprocess [--requests N] [--rounds N] [--servers a,b] [--scenarios read,counter,read@5000]
//! ```
//!
//! A scenario `route@N` rotates through N distinct sessions, as the HTTP
//! benchmark's do: N setup requests first, then each measured request
//! presents the next session's cookie, in a fixed order unrelated to the
//! order the sessions were created in. It shows what a store's memory
//! costs when its entries are no longer all in the processor's caches.
//! Over HTTP, 32 connections interleave their sessions; visited in the
//! order they were allocated in, the sessions' memory was fetched ahead by
//! the processor, and the memory store's `read@5000` cost 45 ns more than
//! its `read` where it costs about 150 ns more shuffled.
//! Part of that difference is this driver's: it copies each session's
//! cookie into its request, from memory the caches may no longer hold
//! either (over HTTP, the kernel's copy of the request takes its place).
//! CPU time is the process's own clock, to the nanosecond. Every
//! measurement builds its server's app afresh, so that its store starts
//! empty, as an HTTP measurement's server process does.
//!
//! Over HTTP, the kernel's TCP work dominates a request (about 8 µs here,
//! three quarters of it in the kernel) and hides differences of a few
//! hundred nanoseconds under the noise of a shared machine; in process they
//! show. By default only the in-memory and cookie stores take part: Redis
//! round trips are what the HTTP benchmark is for. The axum Redis servers
//! (ours, tower-sessions-redis-store's and the Redis floor) take part when
//! named in `--servers` (a redis-server is started for them): one request
//! at a time, each waits for its round trip, so their CPU time is mostly
//! the wake-ups of a sequential client and says little; run under
//! callgrind, their instruction counts show what the client side of a
//! Redis-backed request costs, ours against the peer's and against the
//! floor's one command per round trip.
//! actix-web is left out: its services are not callable without its test
//! harness, which would add costs of its own.

use std::hint::black_box;
use std::pin::Pin;
use std::process::ExitCode;

use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser;
use session_bench::scenario::{Route, Scenario};
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
    /// Comma-separated scenarios, `route` or `route@N` (by default the four
    /// single-session ones, then `read@5000` and `counter@5000`).
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
const REDIS_SERVERS: [Server; 4] = [
    Server::AxumOursRedis,
    Server::AxumOursRedisCached,
    Server::AxumTowerSessionsRedis,
    Server::AxumRedisFloor,
];

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

/// Requests `path` once per turn of `turns`, turn `t` with the cookie of
/// session `t` modulo their number.
async fn rotate<A: AxumApp>(
    app: &mut A,
    path: &'static str,
    cookies: &mut [String],
    turns: std::ops::Range<u32>,
) -> Result<(), String> {
    for turn in turns {
        let index = turn as usize % cookies.len();
        request(app, path, &mut cookies[index]).await?;
    }
    Ok(())
}

/// Nanoseconds per request of `scenario` on fresh clients of `app`: one,
/// or one per distinct session, presented in turn.
async fn measure<A: AxumApp>(mut app: A, scenario: Scenario, requests: u32) -> Result<f64, String> {
    let mut cookies = vec![String::new(); scenario.sessions.unwrap_or(1)];
    for cookie in &mut cookies {
        request(&mut app, scenario.setup_path(), cookie).await?;
    }
    shuffle(&mut cookies);
    // Warm-up: a tenth of the requests, and a whole turn of the sessions,
    // unmeasured.
    let warm_up = (requests / 10).max(u32::try_from(cookies.len()).unwrap_or(u32::MAX));
    rotate(&mut app, scenario.path(), &mut cookies, 0..warm_up).await?;
    // CPU time rather than wall time: a preemption by other work on a shared
    // machine then does not count.
    let started = cpu::own_cpu_time();
    let measured = warm_up..warm_up.saturating_add(requests);
    rotate(&mut app, scenario.path(), &mut cookies, measured).await?;
    let spent = cpu::own_cpu_time() - started;
    Ok(spent.as_nanos() as f64 / f64::from(requests))
}

/// Puts `cookies` in an order unrelated to the order their sessions were
/// created in (a fixed pseudo-random permutation).
fn shuffle(cookies: &mut [String]) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for index in (1..cookies.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        cookies.swap(index, (state % (index as u64 + 1)) as usize);
    }
}

/// Measures one scenario on a fresh app of one server: its store starts
/// empty for every measurement, as each HTTP measurement's server process
/// does. Shared between measurements, an encrypted cookie cache still full
/// of the sessions of an earlier one would make this one's a mix of hits
/// and misses that depends on the order of the scenarios.
type Measurer = Box<dyn Fn(Scenario, u32) -> Pin<Box<dyn Future<Output = Result<f64, String>>>>>;

/// [`measure`] of one scenario, on the app it is given.
struct MeasureOn {
    scenario: Scenario,
    requests: u32,
}

impl AxumAppUser for MeasureOn {
    type Output = Result<f64, String>;

    async fn with_app<A: AxumApp>(self, app: A) -> Result<f64, String> {
        measure(app, self.scenario, self.requests).await
    }
}

/// The [`Measurer`] of `server`, whose Redis (for the Redis servers) is at
/// `store_url`.
fn measurer(server: Server, store_url: Option<String>) -> Measurer {
    Box::new(move |scenario, requests| {
        let store_url = store_url.clone();
        Box::pin(async move {
            let user = MeasureOn { scenario, requests };
            servers::with_axum_app(server, store_url.as_deref(), user)
                .await
                .map_err(|e| format!("{server}: {e}"))?
        })
    })
}

/// The [`Measurer`] of bare axum under an empty layer.
fn empty_layer_measurer() -> Measurer {
    Box::new(|scenario, requests| {
        Box::pin(MeasureOn { scenario, requests }.with_app(servers::axum_bare_with_empty_layer()))
    })
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
        let distinct = [Route::ReadKey, Route::Counter].map(|r| Scenario::distinct(r, 5_000));
        Scenario::SINGLE.into_iter().chain(distinct).collect()
    } else {
        args.scenarios.clone()
    };
    let mut apps = Vec::new();
    for &server in &servers {
        let store_url = redis_url
            .clone()
            .filter(|_| REDIS_SERVERS.contains(&server));
        apps.push((server.name(), measurer(server, store_url)));
        if server == Server::AxumBare {
            apps.push((EMPTY_LAYER, empty_layer_measurer()));
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
    let names: Vec<String> = scenarios.iter().map(|s| s.name()).collect();
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
