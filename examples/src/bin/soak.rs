//! The soak test (issue 7): the demo binary on Redis under sustained
//! concurrent load, with redis-server killed and restarted in the middle.
//!
//! `cargo xtask soak --seconds N` builds the demo and this driver and runs
//! it; by hand: `soak --demo target/release/demo --seconds 60`.
//!
//! What it does, all on loopback:
//!
//! 1. starts a persistent redis-server (`appendfsync always`, through
//!    `session-testing`) and the demo binary as a child process on it;
//! 2. runs `--users` simulated users for `--seconds`, each on one keep-alive
//!    connection, sequentially writing new keys into its session
//!    (`PUT /api/session/{key}`) with a read (`GET /api/session`) every
//!    fourth request; a user starts a new session after 32 keys, so that
//!    sessions stay small;
//! 3. reads the demo's RSS (`VmRSS` of `/proc/<pid>/status`) after warm-up
//!    (30% of the run), kills redis-server at 45% and restarts it 10% of the
//!    run later (at least three seconds, longer than the store's command
//!    timeout);
//! 4. after the load, reads every session back and checks that every write
//!    answered 200 is there with its value.
//!
//! It fails (exit code 1) when a write answered 200 is missing, when an
//! error falls outside the outage (from the kill to a few seconds after the
//! restart), when no error at all falls inside it (the outage went unseen),
//! or when the RSS at the end is not within 10% of the RSS after warm-up.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use session_testing::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Drives the demo on Redis under load through a Redis restart, then
/// checks that nothing answered 200 was lost and that memory is stable.
#[derive(Debug, Parser)]
struct Options {
    /// The demo binary to run.
    #[arg(long)]
    demo: PathBuf,

    /// How long the load runs.
    #[arg(long, default_value_t = 30)]
    seconds: u64,

    /// Concurrent users, each on its own connection.
    #[arg(long, default_value_t = 8)]
    users: usize,

    /// The framework the demo serves with: axum or actix.
    #[arg(long, default_value = "axum")]
    framework: String,
}

/// Keys a user writes into one session before starting a new one.
const KEYS_PER_SESSION: u64 = 32;

/// How long after the restart errors still count as the outage's: a
/// request started while Redis was down may wait out the store's command
/// timeout (2 s), and the client reconnects with a backoff of up to 1 s.
const OUTAGE_GRACE: Duration = Duration::from_secs(4);

/// The shortest outage: see where it is used.
const MIN_OUTAGE: Duration = Duration::from_secs(3);

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest RSS change from warm-up to the end that passes, in percent.
const RSS_TOLERANCE_PERCENT: f64 = 10.0;

/// A response on a keep-alive connection.
struct Response {
    status: u16,
    set_cookie: Option<String>,
    body: Vec<u8>,
}

/// One keep-alive HTTP/1.1 connection, reopened after an error. Written by
/// hand so that the driver controls exactly what goes over the wire.
struct Connection {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Connection {
    fn new(addr: SocketAddr) -> Self {
        Connection { addr, stream: None }
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: &str,
    ) -> Result<Response, String> {
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, cookie, body))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: &str,
    ) -> Result<Response, String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(BufReader::new(stream));
        }
        let stream = self.stream.as_mut().expect("connected above");
        let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{cookie}Content-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut line = String::new();
        stream
            .read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut content_length = 0;
        let mut set_cookie = None;
        let mut close = false;
        loop {
            line.clear();
            stream
                .read_line(&mut line)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().map_err(|_| "bad length")?,
                "set-cookie" => set_cookie = Some(value.to_owned()),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; content_length];
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("read body: {e}"))?;
        if close {
            self.stream = None;
        }
        Ok(Response {
            status,
            set_cookie,
            body,
        })
    }
}

/// A request that did not answer 200, with when it ran.
struct Failure {
    started: Duration,
    ended: Duration,
    what: String,
}

/// A session a user wrote to, and the writes that were answered 200.
struct WrittenSession {
    cookie: String,
    confirmed: BTreeMap<String, u64>,
}

/// What every user shares: the clock, the counters and the failures.
struct Shared {
    start: Instant,
    deadline: Instant,
    requests: AtomicU64,
    writes_ok: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

impl Failure {
    fn describe(&self) -> String {
        format!(
            "{} ({:.2} s to {:.2} s)",
            self.what,
            self.started.as_secs_f64(),
            self.ended.as_secs_f64()
        )
    }
}

impl Shared {
    fn failed(&self, started: Instant, what: String) {
        let failure = Failure {
            started: started - self.start,
            ended: self.start.elapsed(),
            what,
        };
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(failure);
    }
}

/// The `session=value` pair of a `Set-Cookie`, unless it removes the cookie.
fn session_pair(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?.trim();
    (pair.starts_with("session=") && pair != "session=").then(|| pair.to_owned())
}

/// One user: writes keys `u{user}-{n}` with the value `n`, a read every
/// fourth request, a new session every [`KEYS_PER_SESSION`] keys, until
/// the deadline.
async fn user(id: usize, addr: SocketAddr, shared: Arc<Shared>) -> Vec<WrittenSession> {
    let mut connection = Connection::new(addr);
    let mut sessions: Vec<WrittenSession> = Vec::new();
    let mut current: Option<WrittenSession> = None;
    let mut n: u64 = 0;
    while Instant::now() < shared.deadline {
        let started = Instant::now();
        let cookie = current.as_ref().map(|s| s.cookie.clone());
        if n % 4 == 3 {
            n += 1;
            let Some(session) = &current else { continue };
            shared.requests.fetch_add(1, Ordering::Relaxed);
            match connection
                .send("GET", "/api/session", cookie.as_deref(), "")
                .await
            {
                Ok(response) if response.status == 200 => {
                    let data: Value = serde_json::from_slice(&response.body).unwrap_or_default();
                    for (key, value) in &session.confirmed {
                        if data["data"][key] != *value {
                            shared.failed(started, format!("user {id}: a read lacks {key}"));
                        }
                    }
                }
                Ok(response) => {
                    shared.failed(started, format!("user {id}: read {}", response.status))
                }
                Err(error) => shared.failed(started, format!("user {id}: read: {error}")),
            }
            continue;
        }
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let key = format!("u{id}-{n}");
        let answer = connection
            .send(
                "PUT",
                &format!("/api/session/{key}"),
                cookie.as_deref(),
                &n.to_string(),
            )
            .await;
        match answer {
            Ok(response) if response.status == 200 => {
                shared.writes_ok.fetch_add(1, Ordering::Relaxed);
                let new_cookie = response.set_cookie.as_deref().and_then(session_pair);
                match (&mut current, new_cookie) {
                    (Some(session), None) => {
                        session.confirmed.insert(key, n);
                    }
                    (Some(session), Some(cookie)) if cookie == session.cookie => {
                        session.confirmed.insert(key, n);
                    }
                    (_, Some(cookie)) => {
                        // A new session: the first write, or the old one
                        // was not found (which the readback then reports).
                        if let Some(previous) = current.take() {
                            sessions.push(previous);
                        }
                        current = Some(WrittenSession {
                            cookie,
                            confirmed: BTreeMap::from([(key, n)]),
                        });
                    }
                    (None, None) => {
                        shared.failed(started, format!("user {id}: no cookie for a new session"))
                    }
                }
            }
            Ok(response) => shared.failed(started, format!("user {id}: write {}", response.status)),
            Err(error) => shared.failed(started, format!("user {id}: write: {error}")),
        }
        n += 1;
        if current
            .as_ref()
            .is_some_and(|s| s.confirmed.len() as u64 >= KEYS_PER_SESSION)
        {
            sessions.extend(current.take());
        }
    }
    sessions.extend(current);
    sessions
}

/// The resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("reading /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS for process {pid}"))
}

/// The demo process, killed when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits (at most 30 s) until the demo answers `/health`.
async fn wait_until_serving(addr: SocketAddr, demo: &mut Demo) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = demo.0.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the demo exited at start: {status}"));
        }
        let mut connection = Connection::new(addr);
        if let Ok(response) = connection.send("GET", "/health", None, "").await {
            if response.status == 200 {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the demo did not answer on {addr} within 30 s"))
}

/// Sleeps until `at` after `start`.
async fn sleep_until(start: Instant, at: Duration) {
    tokio::time::sleep_until((start + at).into()).await;
}

async fn soak(options: Options) -> Result<(), String> {
    let duration = Duration::from_secs(options.seconds.max(5));
    let mut redis = RedisServer::builder().persistence(true).start();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(|e| format!("{e}"))?;
    let child = Command::new(&options.demo)
        .args(["--store", "redis", "--redis-url", &redis.url()])
        .args(["--framework", &options.framework])
        .args(["--listen", &addr.to_string(), "--insecure-cookies"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", options.demo.display()))?;
    let mut demo = Demo(child);
    let pid = demo.0.id();
    wait_until_serving(addr, &mut demo).await?;
    println!(
        "soak: demo ({}) on {addr} with Redis at {}, {} users for {} s",
        options.framework,
        redis.url(),
        options.users,
        duration.as_secs()
    );

    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        deadline: start + duration,
        requests: AtomicU64::new(0),
        writes_ok: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    });
    let users: Vec<_> = (0..options.users)
        .map(|id| tokio::spawn(user(id, addr, shared.clone())))
        .collect();

    let warm_up = duration.mul_f64(0.30);
    let kill_at = duration.mul_f64(0.45);
    // Longer than the store's command timeout (2 s), during which the Redis
    // client holds commands for a reconnect: a shorter outage can pass
    // without a single failed request.
    let outage = duration.mul_f64(0.10).max(MIN_OUTAGE);
    sleep_until(start, warm_up).await;
    let rss_warm = rss_kib(pid)?;
    println!(
        "soak: RSS after warm-up ({:.1} s): {rss_warm} KiB",
        warm_up.as_secs_f64()
    );
    sleep_until(start, kill_at).await;
    redis.kill();
    let down = start.elapsed();
    println!("soak: redis-server killed at {:.1} s", down.as_secs_f64());
    sleep_until(start, kill_at + outage).await;
    let redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .map_err(|e| format!("restarting redis-server: {e}"))?;
    let up = start.elapsed();
    println!("soak: redis-server back at {:.1} s", up.as_secs_f64());

    let mut sessions = Vec::new();
    for user in users {
        sessions.extend(user.await.map_err(|e| format!("a user task failed: {e}"))?);
    }
    let rss_end = rss_kib(pid)?;
    let elapsed = start.elapsed();

    // Every write answered 200 must be there.
    let mut connection = Connection::new(addr);
    let (mut verified, mut missing) = (0u64, Vec::new());
    for session in &sessions {
        let response = connection
            .send("GET", "/api/session", Some(&session.cookie), "")
            .await
            .map_err(|e| format!("readback: {e}"))?;
        if response.status != 200 {
            return Err(format!("readback answered {}", response.status));
        }
        let data: Value = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        for (key, value) in &session.confirmed {
            if data["data"][key] == *value {
                verified += 1;
            } else {
                missing.push(key.clone());
            }
        }
    }

    let failures = shared
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let in_outage = |f: &&Failure| f.ended >= down && f.started <= up + OUTAGE_GRACE;
    let (during, outside): (Vec<&Failure>, Vec<&Failure>) = failures.iter().partition(in_outage);
    let requests = shared.requests.load(Ordering::Relaxed);
    let rss_change = (rss_end as f64 - rss_warm as f64) / rss_warm as f64 * 100.0;
    println!(
        "soak: {requests} requests in {:.1} s ({:.0}/s), {} writes answered 200, {} sessions",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        shared.writes_ok.load(Ordering::Relaxed),
        sessions.len()
    );
    println!(
        "soak: errors: {} during the outage ({:.1} s to {:.1} s + {} s grace), {} outside it",
        during.len(),
        down.as_secs_f64(),
        up.as_secs_f64(),
        OUTAGE_GRACE.as_secs(),
        outside.len()
    );
    println!(
        "soak: writes verified after the run: {verified}, missing: {}",
        missing.len()
    );
    println!(
        "soak: RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end ({rss_change:+.1}%)"
    );

    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "{} writes answered 200 are missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if !outside.is_empty() {
        let examples: Vec<String> = outside.iter().take(5).map(|f| f.describe()).collect();
        problems.push(format!(
            "{} errors outside the outage, e.g.:\n  {}",
            outside.len(),
            examples.join("\n  ")
        ));
    }
    if during.is_empty() {
        problems.push("no request failed while Redis was down: the outage went unseen".to_owned());
    }
    if verified == 0 {
        problems.push("no write was verified".to_owned());
    }
    if rss_change.abs() > RSS_TOLERANCE_PERCENT {
        problems.push(format!(
            "RSS moved {rss_change:+.1}% from warm-up to the end (limit ±{RSS_TOLERANCE_PERCENT}%)"
        ));
    }
    drop(redis);
    if problems.is_empty() {
        println!("soak: passed");
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let options = Options::parse();
    match soak(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
            eprintln!("soak: FAILED\n{message}");
            ExitCode::FAILURE
        }
    }
}
