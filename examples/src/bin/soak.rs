//! The soak test (issues 7 and 21): several demo processes, of both
//! frameworks, on one Redis topology under sustained concurrent load,
//! through a failover of that topology and a restart of one process.
//!
//! `cargo xtask soak --topology standalone|cluster|sentinel --apps N
//! --seconds S [--wait-replicas N] [--client-cache N]` builds the demo and
//! this driver and runs it; by hand: `soak --demo target/release/demo
//! --topology cluster --apps 4 --seconds 120`.
//!
//! What it does, all on loopback:
//!
//! 1. starts the topology through `session-testing`: `standalone`, one
//!    persistent redis-server (`appendfsync always`); `cluster`, three
//!    masters with a replica each (`cluster-node-timeout` 2 s); `sentinel`,
//!    a master with two replicas and three sentinels;
//! 2. starts `--apps` demo processes on it, alternating axum and
//!    actix-web (`--framework` names the first), each told to exit when
//!    this driver's pipe to it closes, so none outlives the driver; with
//!    `--client-cache N`, each keeps up to N sessions in memory
//!    (`RedisStoreBuilder::client_cache`), so that a process answers from
//!    memory sessions that the others write and log out;
//! 3. runs `--users` simulated users for `--seconds`, each sending every
//!    request to a process picked at random (as a load balancer without
//!    affinity would): logins (`POST /api/login`, a new id), reads
//!    (`GET /api/session`), counter increments (`POST /api/counter`),
//!    bursts of concurrent writes of distinct keys to one session (`PUT
//!    /api/session/{key}`, each on its own connection and process), and
//!    logouts (`POST /api/logout`), at random;
//! 4. at 35% of the run, fails the topology: kills redis-server (restarted
//!    from its append-only file after 10% of the run, at least 3 s), or a
//!    cluster master (its replica takes over; the old master is brought
//!    back as a replica), or the sentinels' master (likewise); later,
//!    takes one demo process out of rotation, kills it, restarts it and
//!    puts it back;
//! 5. samples every demo process's RSS (`VmRSS` of `/proc/<pid>/status`)
//!    each second;
//! 6. after the load, reads every session back through the processes.
//!
//! What it checks and prints:
//!
//! * **every write answered 200 is there** afterwards (each write is a key
//!   of its own; a counter increment must answer one more than the last).
//!   Redis replicates asynchronously: a master killed right after
//!   answering may not have passed its last writes on to the replica that
//!   replaces it. A write answered within [`REPLICATION_LOSS_WINDOW`]
//!   before the kill, or up to that long after the server exited (the
//!   answer to a write it took as it died arrives after the kill), and
//!   missing afterwards is counted apart, as lost to asynchronous
//!   replication; with `--wait-replicas N` (the store's
//!   `Durability::Replicas`), none may be lost at all;
//! * **every session logged out stays out**: each logged-out cookie,
//!   replayed at the end, gives a new, empty session (a logout undone by
//!   asynchronous replication is counted apart in the same way, and fails
//!   with `--wait-replicas`);
//! * **no response carries another user's data**: a user's session never
//!   shows another user's name or keys, and no cookie issued to one user
//!   is ever issued to another;
//! * **errors fall within the failover window**: from the kill until the
//!   topology serves again (the restart, the promotion, or, when
//!   `--wait-replicas` asks for more replicas than the promoted master
//!   has until the old one is back, the old master's return), plus
//!   [`GRACE`]; their measured span is printed. A process taken out of
//!   rotation is drained first, so its restart costs no error;
//! * **memory stays flat**: each process's RSS at the end is at most its
//!   RSS after warm-up plus [`RSS_GROWTH_PERCENT`]% or [`RSS_GROWTH_KIB`]
//!   KiB, whichever is larger (sessions live in Redis: a process holds
//!   only per-connection and per-request state, which a steady load keeps
//!   steady; the absolute allowance absorbs the allocator's arenas in
//!   short runs). The restarted process is measured from its own warm-up.
//!
//! It exits non-zero when a check fails, and always kills every process it
//! started (the Redis servers are reaped by `session-testing` even after a
//! SIGKILL of this driver; the demo processes exit when their input pipe
//! closes).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use session_testing::{RedisCluster, RedisSentinel, RedisServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Drives demo processes on a Redis topology under load through a
/// failover, then checks that nothing acknowledged was lost, no logout was
/// undone, no user saw another's data, and memory stayed flat.
#[derive(Debug, Parser)]
struct Options {
    /// The demo binary to run.
    #[arg(long)]
    demo: PathBuf,

    /// The Redis topology.
    #[arg(long, value_enum, default_value_t = Topology::Standalone)]
    topology: Topology,

    /// How many demo processes, alternating axum and actix-web.
    #[arg(long, default_value_t = 2)]
    apps: usize,

    /// How long the load runs, at least (the failover and the restart
    /// must be over before it stops).
    #[arg(long, default_value_t = 30)]
    seconds: u64,

    /// Concurrent simulated users.
    #[arg(long, default_value_t = 8)]
    users: usize,

    /// The framework of the first demo process: axum or actix (the others
    /// alternate).
    #[arg(long, default_value = "axum")]
    framework: String,

    /// The demo's `--redis-wait-replicas`: writes answered only once this
    /// many replicas have them (0: off). Not with `standalone`.
    #[arg(long, default_value_t = 0)]
    wait_replicas: u32,

    /// The demo's `--redis-client-cache`: each process keeps up to this
    /// many sessions in memory, answered while Redis says they have not
    /// changed (0: off). Not with `cluster`, where the store has no cache.
    #[arg(long, default_value_t = 0)]
    client_cache: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// One persistent redis-server, killed and restarted.
    Standalone,
    /// Three masters with a replica each; a master is killed.
    Cluster,
    /// A master with two replicas and three sentinels; the master is
    /// killed.
    Sentinel,
}

/// How long after the topology serves again errors still count as the
/// failover's: a request started before may wait out the store's command
/// timeout (2 s), and the client reconnects with a backoff of up to 1 s.
const GRACE: Duration = Duration::from_secs(4);

/// A write (or logout) answered this long before the master was killed,
/// or less, may not have reached the replica that replaces it: Redis
/// answers before it replicates. On loopback a replica is microseconds
/// behind; a second is a wide margin. Answers up to this long after the
/// master exited count too: the client hears of a write the master took
/// as it died only afterwards, and no replica takes over that soon (the
/// sentinels wait 1 s, the cluster 2 s, before they decide).
const REPLICATION_LOSS_WINDOW: Duration = Duration::from_secs(1);

/// The shortest standalone outage: longer than the store's command
/// timeout, so that the outage is seen.
const MIN_OUTAGE: Duration = Duration::from_secs(3);

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Allowed RSS growth from warm-up to the end: this percentage, or
/// [`RSS_GROWTH_KIB`], whichever is larger.
const RSS_GROWTH_PERCENT: f64 = 10.0;
const RSS_GROWTH_KIB: u64 = 4096;

/// Concurrent writes in one burst, each on its own connection.
const BURST: usize = 4;

/// How an error on a connection that the other side had already closed
/// starts: no answer, not even its first byte.
const STALE: &str = "connection closed";

/// A response on a keep-alive connection.
struct Response {
    status: u16,
    set_cookie: Option<String>,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
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
        // A kept-alive connection may have been closed by the other side
        // (a process restarted) before this request: nothing of the
        // request was read there, so it goes once more on a new
        // connection, as HTTP clients do with the connections they pool.
        let reused = self.stream.is_some();
        let mut result = self.exchange_in_time(method, path, cookie, body).await;
        if reused && result.as_ref().is_err_and(|e| e.starts_with(STALE)) {
            result = self.exchange_in_time(method, path, cookie, body).await;
        }
        result
    }

    async fn exchange_in_time(
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
            .map_err(|e| format!("{STALE}: write: {e}"))?;
        let mut line = String::new();
        let read = stream
            .read_line(&mut line)
            .await
            .map_err(|e| format!("{STALE}: {e}"))?;
        if read == 0 {
            return Err(format!("{STALE}: closed before an answer"));
        }
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

/// What a `Set-Cookie` did to the session cookie.
enum CookieChange {
    /// No `Set-Cookie`: the session, if any, stays.
    None,
    /// A new `session=value`.
    Set(String),
    /// A removal cookie: the session the request named is gone.
    Removed,
}

fn cookie_change(set_cookie: Option<&str>) -> CookieChange {
    let Some(pair) = set_cookie.and_then(|c| c.split(';').next()).map(str::trim) else {
        return CookieChange::None;
    };
    match pair.strip_prefix("session=") {
        Some("") => CookieChange::Removed,
        Some(_) => CookieChange::Set(pair.to_owned()),
        None => CookieChange::None,
    }
}

/// A small, fast random number generator (xorshift64*), seeded per user:
/// the load needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A request that did not answer 200, with when it ran.
struct Failure {
    started: Duration,
    ended: Duration,
    what: String,
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

/// A session and the writes to it answered 200: key, value, when answered
/// (since the start).
struct Tracked {
    cookie: String,
    user: Option<String>,
    confirmed: BTreeMap<String, (Value, Duration)>,
}

/// A session logged out: its cookie, and when the logout was answered.
struct LoggedOut {
    cookie: String,
    answered: Duration,
}

/// The fate of one user's acknowledged writes.
#[derive(Default)]
struct Tally {
    /// Writes answered 200 (keys written, counter increments).
    acknowledged: u64,
    /// Read back afterwards: at the end, or by the read before a logout,
    /// or (a counter increment) by the next increment answering one more.
    verified: u64,
    /// Writes found missing: when each was answered, and what it was.
    lost: Vec<(Duration, String)>,
    /// Reads during the run that lacked an acknowledged write (whether it
    /// was lost is decided by the last read of the session).
    absent_reads: u64,
    absent_examples: Vec<String>,
}

/// Counts of what the load did.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    logins: AtomicU64,
    reads: AtomicU64,
    counter_writes: AtomicU64,
    burst_writes: AtomicU64,
    logouts: AtomicU64,
    writes_ok: AtomicU64,
}

/// The demo processes in rotation, as a load balancer sees them.
struct Rotation {
    addrs: Vec<SocketAddr>,
    in_rotation: Vec<AtomicBool>,
}

impl Rotation {
    /// A process in rotation, at random.
    fn pick(&self, rng: &mut Rng) -> usize {
        let live: Vec<usize> = (0..self.addrs.len())
            .filter(|&i| self.in_rotation[i].load(Ordering::SeqCst))
            .collect();
        live[rng.below(live.len())]
    }
}

/// What every user shares.
struct Shared {
    start: Instant,
    stop: AtomicBool,
    rotation: Rotation,
    counts: Counts,
    failures: Mutex<Vec<Failure>>,
    leaks: Mutex<Vec<String>>,
    /// Every session cookie issued, and to which user (`""`: anonymous).
    issued: Mutex<HashMap<String, String>>,
    /// Requests in flight to each process, so that one is drained before
    /// it is killed.
    in_flight: Vec<AtomicU64>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn failed(&self, started: Duration, what: String) {
        let failure = Failure {
            started,
            ended: self.since_start(),
            what,
        };
        lock(&self.failures).push(failure);
    }

    fn leak(&self, what: String) {
        lock(&self.leaks).push(what);
    }

    /// Records a cookie issued to `user`; a cookie issued to two users is
    /// a leak.
    fn issued(&self, cookie: &str, user: &str) {
        let mut issued = lock(&self.issued);
        match issued.get(cookie) {
            Some(owner) if owner != user && !owner.is_empty() && !user.is_empty() => {
                let owner = owner.clone();
                drop(issued);
                self.leak(format!("a cookie of {owner} was issued to {user}"));
            }
            Some(_) => {}
            None => {
                issued.insert(cookie.to_owned(), user.to_owned());
            }
        }
    }

    /// Checks that a session shown to `user` holds nothing of another user.
    fn check_data(&self, user: &str, logged_in_as: Option<&str>, data: &Value) {
        let Some(data) = data.as_object() else {
            return;
        };
        if let Some(shown) = data.get("user") {
            if Some(shown.as_str().unwrap_or("?")) != logged_in_as {
                self.leak(format!(
                    "{user} (logged in as {logged_in_as:?}) was shown user {shown}"
                ));
            }
        }
        for key in data.keys() {
            if let Some(owner) = key.strip_prefix('w').and_then(|k| k.split('-').next()) {
                if owner != user.trim_start_matches('u') {
                    self.leak(format!("{user} was shown key {key}"));
                }
            }
        }
    }
}

/// One simulated user's state.
struct User {
    id: usize,
    name: String,
    rng: Rng,
    /// Connections to each process: one for sequential requests, then
    /// [`BURST`] for concurrent writes.
    connections: Vec<Vec<Arc<tokio::sync::Mutex<Connection>>>>,
    session: Option<Tracked>,
    /// Sessions left behind (their cookie changed unexpectedly) or logged
    /// in elsewhere: read back at the end.
    archived: Vec<Tracked>,
    logged_out: Vec<LoggedOut>,
    tally: Tally,
    next_key: u64,
}

impl User {
    fn new(id: usize, shared: &Shared) -> Self {
        let seed = (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(shared.start.elapsed().subsec_nanos());
        User {
            id,
            name: format!("u{id}"),
            rng: Rng::new(seed),
            connections: shared
                .rotation
                .addrs
                .iter()
                .map(|&addr| {
                    (0..=BURST)
                        .map(|_| Arc::new(tokio::sync::Mutex::new(Connection::new(addr))))
                        .collect()
                })
                .collect(),
            session: None,
            archived: Vec::new(),
            logged_out: Vec::new(),
            tally: Tally::default(),
            next_key: 0,
        }
    }

    fn logged_in(&self) -> Option<&str> {
        self.session.as_ref().and_then(|s| s.user.as_deref())
    }

    fn cookie(&self) -> Option<String> {
        self.session.as_ref().map(|s| s.cookie.clone())
    }

    /// Sends one request to a process in rotation.
    async fn send(
        &mut self,
        shared: &Shared,
        slot: usize,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<Response, String> {
        let app = shared.rotation.pick(&mut self.rng);
        let cookie = self.cookie();
        send_on(
            shared,
            app,
            &self.connections[app][slot],
            method,
            path,
            cookie.as_deref(),
            body,
        )
        .await
    }

    /// Applies a response's cookie to the current session: `true` when the
    /// session the request named is still the one the client holds.
    fn follow_cookie(&mut self, shared: &Shared, response: &Response) -> bool {
        match cookie_change(response.set_cookie.as_deref()) {
            CookieChange::None => self.session.is_some(),
            CookieChange::Set(cookie) => {
                shared.issued(&cookie, self.logged_in().unwrap_or(""));
                match &self.session {
                    Some(session) if session.cookie == cookie => true,
                    _ => {
                        // A new session: the first write, or the old one
                        // was not found (which the readback then reports).
                        self.archive();
                        self.session = Some(Tracked {
                            cookie,
                            user: None,
                            confirmed: BTreeMap::new(),
                        });
                        false
                    }
                }
            }
            CookieChange::Removed => {
                self.archive();
                false
            }
        }
    }

    fn archive(&mut self) {
        if let Some(session) = self.session.take() {
            if !session.confirmed.is_empty() {
                self.archived.push(session);
            }
        }
    }

    /// Records a write answered 200 to the current session. A counter
    /// increment that answers more than the last one confirmed verifies
    /// that one; no more means it was lost.
    fn confirm(&mut self, key: String, value: Value, answered: Duration) {
        let Some(session) = &mut self.session else {
            return;
        };
        self.tally.acknowledged += 1;
        if key == "counter" {
            if let Some((last, last_answered)) = session.confirmed.get("counter") {
                let last = last.as_u64().unwrap_or(0);
                if value.as_u64().unwrap_or(0) > last {
                    self.tally.verified += 1;
                } else {
                    self.tally.lost.push((
                        *last_answered,
                        format!(
                            "{}: counter {last} (answered at {:.2} s; the next increment at \
                             {:.2} s answered {value})",
                            self.name,
                            last_answered.as_secs_f64(),
                            answered.as_secs_f64()
                        ),
                    ));
                }
            }
        }
        session.confirmed.insert(key, (value, answered));
    }

    /// Checks `data` against what was confirmed for `session`: each write
    /// missing is lost (and forgotten); with `last`, each one there is
    /// verified and forgotten too (the session is not read again).
    fn check(tally: &mut Tally, user: &str, session: &mut Tracked, data: &Value, last: bool) {
        let mut absent = 0;
        session.confirmed.retain(|key, (value, answered)| {
            let stored = &data[key.as_str()];
            // A counter may have moved on: an increment that failed (a
            // 500) may still have been applied.
            let there = if key == "counter" {
                stored.as_u64().unwrap_or(0) >= value.as_u64().unwrap_or(u64::MAX)
            } else {
                stored == value
            };
            if there {
                if last {
                    tally.verified += 1;
                }
                !last
            } else if last {
                tally.lost.push((
                    *answered,
                    format!(
                        "{user}: {key} (answered at {:.2} s; {} by the last read)",
                        answered.as_secs_f64(),
                        if stored.is_null() {
                            "absent"
                        } else {
                            "different"
                        },
                    ),
                ));
                false
            } else {
                // Decided by the last read: a read served by a server that
                // lacked it is told apart from a write lost.
                absent += 1;
                true
            }
        });
        if absent > 0 {
            tally.absent_reads += 1;
            tally.absent_examples.push(format!(
                "{user}: a read lacked {absent} acknowledged write(s)"
            ));
        }
    }

    async fn login(&mut self, shared: &Shared) {
        let started = shared.since_start();
        shared.counts.logins.fetch_add(1, Ordering::Relaxed);
        let body = json!({ "user": self.name }).to_string();
        match self.send(shared, 0, "POST", "/api/login", &body).await {
            Ok(response) if response.status == 200 => {
                if response.json()["user"] != self.name.as_str() {
                    shared.leak(format!("{} logged in as {}", self.name, response.json()));
                }
                let CookieChange::Set(cookie) = cookie_change(response.set_cookie.as_deref())
                else {
                    shared.failed(started, format!("{}: login set no cookie", self.name));
                    return;
                };
                shared.issued(&cookie, &self.name);
                // The data comes along under the new id.
                let confirmed = self.session.take().map(|s| s.confirmed).unwrap_or_default();
                self.session = Some(Tracked {
                    cookie,
                    user: Some(self.name.clone()),
                    confirmed,
                });
            }
            Ok(response) => {
                shared.failed(started, format!("{}: login {}", self.name, response.status))
            }
            Err(error) => shared.failed(started, format!("{}: login: {error}", self.name)),
        }
    }

    async fn logout(&mut self, shared: &Shared) {
        let started = shared.since_start();
        let Some(cookie) = self.cookie() else { return };
        // The last look at the session's data: every write to it must be
        // there. No logout unless this read answered.
        match self.send(shared, 0, "GET", "/api/session", "").await {
            Ok(response) if response.status == 200 && response.set_cookie.is_none() => {
                shared.counts.reads.fetch_add(1, Ordering::Relaxed);
                let data = response.json();
                let user = self.logged_in().map(str::to_owned);
                shared.check_data(&self.name, user.as_deref(), &data["data"]);
                if let Some(session) = &mut self.session {
                    User::check(&mut self.tally, &self.name, session, &data["data"], true);
                }
            }
            Ok(response) if response.status == 200 => {
                // The session is gone: a new one was started.
                self.follow_cookie(shared, &response);
                return;
            }
            Ok(response) => {
                shared.failed(started, format!("{}: read {}", self.name, response.status));
                return;
            }
            Err(error) => {
                shared.failed(started, format!("{}: read: {error}", self.name));
                return;
            }
        }
        let started = shared.since_start();
        shared.counts.logouts.fetch_add(1, Ordering::Relaxed);
        match self.send(shared, 0, "POST", "/api/logout", "").await {
            Ok(response) if response.status == 200 => {
                self.logged_out.push(LoggedOut {
                    cookie,
                    answered: shared.since_start(),
                });
                // Its data is gone with it; the flash message starts a
                // new session.
                self.session = None;
                if let CookieChange::Set(cookie) = cookie_change(response.set_cookie.as_deref()) {
                    shared.issued(&cookie, "");
                    self.session = Some(Tracked {
                        cookie,
                        user: None,
                        confirmed: BTreeMap::new(),
                    });
                }
            }
            Ok(response) => shared.failed(
                started,
                format!("{}: logout {}", self.name, response.status),
            ),
            Err(error) => shared.failed(started, format!("{}: logout: {error}", self.name)),
        }
    }

    async fn read(&mut self, shared: &Shared) {
        let started = shared.since_start();
        shared.counts.reads.fetch_add(1, Ordering::Relaxed);
        match self.send(shared, 0, "GET", "/api/session", "").await {
            Ok(response) if response.status == 200 => {
                let data = response.json();
                let user = self.logged_in().map(str::to_owned);
                shared.check_data(&self.name, user.as_deref(), &data["data"]);
                if self.follow_cookie(shared, &response) {
                    if let Some(session) = &mut self.session {
                        let before = self.tally.absent_examples.len();
                        User::check(&mut self.tally, &self.name, session, &data["data"], false);
                        if let Some(example) = self.tally.absent_examples.get_mut(before) {
                            example.push_str(&format!(
                                " ({:.2} s to {:.2} s)",
                                started.as_secs_f64(),
                                shared.since_start().as_secs_f64()
                            ));
                        }
                    }
                }
            }
            Ok(response) => {
                shared.failed(started, format!("{}: read {}", self.name, response.status))
            }
            Err(error) => shared.failed(started, format!("{}: read: {error}", self.name)),
        }
    }

    async fn count(&mut self, shared: &Shared) {
        let started = shared.since_start();
        shared.counts.counter_writes.fetch_add(1, Ordering::Relaxed);
        match self.send(shared, 0, "POST", "/api/counter", "").await {
            Ok(response) if response.status == 200 => {
                self.follow_cookie(shared, &response);
                let Some(counter) = response.json()["counter"].as_u64() else {
                    shared.failed(started, format!("{}: counter without a count", self.name));
                    return;
                };
                if self.session.is_some() {
                    shared.counts.writes_ok.fetch_add(1, Ordering::Relaxed);
                    self.confirm("counter".to_owned(), json!(counter), shared.since_start());
                }
            }
            Ok(response) => shared.failed(
                started,
                format!("{}: counter {}", self.name, response.status),
            ),
            Err(error) => shared.failed(started, format!("{}: counter: {error}", self.name)),
        }
    }

    /// [`BURST`] concurrent writes of distinct keys to the current session,
    /// each on its own connection to a process picked at random.
    async fn burst(&mut self, shared: &Arc<Shared>) {
        let Some(cookie) = self.cookie() else {
            // No session yet: one write makes it.
            self.write_one(shared).await;
            return;
        };
        let mut tasks = Vec::new();
        for slot in 1..=BURST {
            let key = format!("w{}-{}", self.id, self.next_key);
            self.next_key += 1;
            let app = shared.rotation.pick(&mut self.rng);
            let connection = Arc::clone(&self.connections[app][slot]);
            let shared = Arc::clone(shared);
            let cookie = cookie.clone();
            let value = self.next_key;
            tasks.push(tokio::spawn(async move {
                let started = shared.since_start();
                shared.counts.burst_writes.fetch_add(1, Ordering::Relaxed);
                let path = format!("/api/session/{key}");
                let result = send_on(
                    &shared,
                    app,
                    &connection,
                    "PUT",
                    &path,
                    Some(&cookie),
                    &value.to_string(),
                )
                .await;
                (key, value, started, shared.since_start(), result)
            }));
        }
        for task in tasks {
            let Ok((key, value, started, answered, result)) = task.await else {
                continue;
            };
            match result {
                Ok(response) if response.status == 200 => {
                    let data = response.json();
                    let user = self.logged_in().map(str::to_owned);
                    shared.check_data(&self.name, user.as_deref(), &data["data"]);
                    if matches!(
                        cookie_change(response.set_cookie.as_deref()),
                        CookieChange::None
                    ) && self.cookie().as_deref() == Some(&cookie)
                    {
                        shared.counts.writes_ok.fetch_add(1, Ordering::Relaxed);
                        self.confirm(key, json!(value), answered);
                    } else {
                        self.follow_cookie(shared, &response);
                    }
                }
                Ok(response) => {
                    shared.failed(started, format!("{}: write {}", self.name, response.status))
                }
                Err(error) => shared.failed(started, format!("{}: write: {error}", self.name)),
            }
        }
    }

    /// One write on the sequential connection (which may create the
    /// session).
    async fn write_one(&mut self, shared: &Shared) {
        let started = shared.since_start();
        shared.counts.burst_writes.fetch_add(1, Ordering::Relaxed);
        let key = format!("w{}-{}", self.id, self.next_key);
        self.next_key += 1;
        let path = format!("/api/session/{key}");
        let value = self.next_key;
        match self.send(shared, 0, "PUT", &path, &value.to_string()).await {
            Ok(response) if response.status == 200 => {
                let had = self.cookie();
                self.follow_cookie(shared, &response);
                if self.session.is_some()
                    && (had.is_none() || had == self.cookie())
                    && !matches!(
                        cookie_change(response.set_cookie.as_deref()),
                        CookieChange::Removed
                    )
                {
                    shared.counts.writes_ok.fetch_add(1, Ordering::Relaxed);
                    self.confirm(key, json!(value), shared.since_start());
                }
            }
            Ok(response) => {
                shared.failed(started, format!("{}: write {}", self.name, response.status))
            }
            Err(error) => shared.failed(started, format!("{}: write: {error}", self.name)),
        }
    }
}

/// Sends one request on `connection` to process `app`, counted in flight.
async fn send_on(
    shared: &Shared,
    app: usize,
    connection: &tokio::sync::Mutex<Connection>,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Result<Response, String> {
    shared.counts.requests.fetch_add(1, Ordering::Relaxed);
    shared.in_flight[app].fetch_add(1, Ordering::SeqCst);
    let result = connection
        .lock()
        .await
        .send(method, path, cookie, body)
        .await;
    shared.in_flight[app].fetch_sub(1, Ordering::SeqCst);
    result
}

/// A user's whole run: a random action at a time until told to stop.
async fn run_user(id: usize, shared: Arc<Shared>) -> User {
    let mut user = User::new(id, &shared);
    while !shared.stop.load(Ordering::Relaxed) {
        let roll = user.rng.below(100);
        match (roll, user.logged_in().is_some()) {
            (0..=9, false) => user.login(&shared).await,
            (0..=4, true) => user.logout(&shared).await,
            (0..=29, _) => user.read(&shared).await,
            (30..=54, _) => user.count(&shared).await,
            _ => user.burst(&shared).await,
        }
    }
    user.archive();
    user
}

/// The resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A demo process, killed when dropped. It also exits by itself once its
/// input (this pipe) closes, so that it never outlives the driver.
struct Demo {
    child: Child,
    _stdin: Option<ChildStdin>,
    framework: String,
    addr: SocketAddr,
    args: Vec<String>,
    demo: PathBuf,
}

impl Demo {
    fn spawn(
        demo: &PathBuf,
        framework: &str,
        addr: SocketAddr,
        args: Vec<String>,
    ) -> Result<Demo, String> {
        let mut child = Command::new(demo)
            .args(&args)
            .args(["--framework", framework])
            .args(["--listen", &addr.to_string(), "--insecure-cookies"])
            .arg("--exit-with-stdin")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", demo.display()))?;
        let stdin = child.stdin.take();
        Ok(Demo {
            child,
            _stdin: stdin,
            framework: framework.to_owned(),
            addr,
            args,
            demo: demo.clone(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let fresh = Demo::spawn(&self.demo, &self.framework, self.addr, self.args.clone())?;
        let old = std::mem::replace(self, fresh);
        drop(old);
        Ok(())
    }

    /// Waits (at most 30 s) until it answers `/health`.
    async fn wait_until_serving(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("the demo exited at start: {status}"));
            }
            let mut connection = Connection::new(self.addr);
            if let Ok(response) = connection.send("GET", "/health", None, "").await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the demo did not answer on {} within 30 s",
            self.addr
        ))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_addr() -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// The Redis servers of the run.
enum Servers {
    Standalone(RedisServer),
    Cluster(RedisCluster, Option<usize>),
    Sentinel(RedisSentinel),
}

impl Servers {
    fn start(topology: Topology) -> Servers {
        match topology {
            Topology::Standalone => {
                Servers::Standalone(RedisServer::builder().persistence(true).start())
            }
            Topology::Cluster => Servers::Cluster(
                RedisCluster::builder()
                    .replicas(1)
                    .node_timeout(Duration::from_secs(2))
                    .start(),
                None,
            ),
            Topology::Sentinel => Servers::Sentinel(RedisSentinel::start_with_replicas(2)),
        }
    }

    fn url(&self) -> String {
        match self {
            Servers::Standalone(server) => server.url(),
            Servers::Cluster(cluster, _) => cluster.url(),
            Servers::Sentinel(sentinel) => sentinel.url(),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Servers::Standalone(_) => "standalone (one redis-server, appendfsync always)",
            Servers::Cluster(..) => "cluster (3 masters with a replica each)",
            Servers::Sentinel(_) => "sentinel (a master, 2 replicas, 3 sentinels)",
        }
    }

    /// How many calls of each of `commands` (as `INFO commandstats` names
    /// them: `hgetall`, `client|trackinginfo`) the servers that answer
    /// counted, summed. A server counts from its last start.
    fn command_calls<const N: usize>(&self, commands: [&str; N]) -> [u64; N] {
        let servers = match self {
            Servers::Standalone(server) => std::slice::from_ref(server),
            Servers::Cluster(cluster, _) => cluster.nodes(),
            Servers::Sentinel(sentinel) => sentinel.servers(),
        };
        let mut calls = [0; N];
        for server in servers {
            let Some(stats) = server
                .command(&["INFO", "commandstats"])
                .ok()
                .and_then(|reply| reply.text())
            else {
                continue;
            };
            for (command, count) in session_testing::command_calls(&stats) {
                if let Some(index) = commands.iter().position(|c| *c == command) {
                    calls[index] += count;
                }
            }
        }
        calls
    }

    /// Kills the server, or a master; says which.
    fn kill(&mut self) -> String {
        match self {
            Servers::Standalone(server) => {
                server.kill();
                format!("redis-server on port {}", server.port())
            }
            Servers::Cluster(cluster, victim) => {
                let index = cluster.master_indexes()[0];
                let port = cluster.nodes()[index].port();
                cluster.kill_master(index);
                *victim = Some(index);
                format!("the cluster master on port {port}")
            }
            Servers::Sentinel(sentinel) => {
                let port = sentinel.kill_master();
                format!("the sentinels' master on port {port}")
            }
        }
    }

    /// Waits until the topology serves again (restarting a standalone
    /// server after `outage`); says how.
    fn recover(&mut self, outage: Duration) -> String {
        match self {
            Servers::Standalone(server) => {
                std::thread::sleep(outage);
                server.restart();
                "redis-server restarted from its append-only file".to_owned()
            }
            Servers::Cluster(cluster, _) => {
                let promoted = cluster.wait_for_failover(Duration::from_secs(60));
                format!(
                    "its replica on port {} promoted",
                    cluster.nodes()[promoted].port()
                )
            }
            Servers::Sentinel(sentinel) => {
                let port = sentinel.wait_for_failover(Duration::from_secs(60));
                format!("the replica on port {port} promoted")
            }
        }
    }

    /// Brings the killed master back as a replica (nothing to do for a
    /// standalone server).
    fn rejoin(&mut self) -> Option<String> {
        match self {
            Servers::Standalone(_) => None,
            Servers::Cluster(cluster, victim) => {
                let index = victim.take()?;
                cluster.nodes_mut()[index].restart();
                cluster.wait_until_replica(index, Duration::from_secs(60));
                Some(format!(
                    "the old master (port {}) back as a replica, in sync",
                    cluster.nodes()[index].port()
                ))
            }
            Servers::Sentinel(sentinel) => {
                sentinel.restart_as_replica(Duration::from_secs(60));
                Some("the old master back as a replica, in sync".to_owned())
            }
        }
    }
}

/// Sleeps until `at` after `start`.
async fn sleep_until(start: Instant, at: Duration) {
    tokio::time::sleep_until((start + at).into()).await;
}

/// Runs a blocking step on the topology.
async fn blocking<T: Send + 'static>(
    servers: &Arc<Mutex<Servers>>,
    step: impl FnOnce(&mut Servers) -> T + Send + 'static,
) -> Result<T, String> {
    let servers = Arc::clone(servers);
    tokio::task::spawn_blocking(move || step(&mut lock(&servers)))
        .await
        .map_err(|e| format!("a topology step failed: {e}"))
}

/// RSS samples of one process: (time, KiB).
#[derive(Default)]
struct RssSeries(Vec<(Duration, u64)>);

impl RssSeries {
    /// The first sample at or after `at`.
    fn at(&self, at: Duration) -> Option<u64> {
        self.0.iter().find(|(t, _)| *t >= at).map(|&(_, kib)| kib)
    }

    fn last(&self) -> Option<u64> {
        self.0.last().map(|&(_, kib)| kib)
    }
}

/// When things happened, since the start of the load.
#[derive(Default)]
struct Timeline {
    killed: Duration,
    /// When the kill step returned: the server had exited.
    dead: Duration,
    recovered: Duration,
    rejoined: Option<Duration>,
    app_restarted: Option<(usize, Duration)>,
}

#[allow(clippy::too_many_lines)]
async fn soak(options: Options) -> Result<(), String> {
    if options.topology == Topology::Standalone && options.wait_replicas > 0 {
        return Err("--wait-replicas needs replicas: --topology cluster or sentinel".to_owned());
    }
    if options.topology == Topology::Cluster && options.client_cache > 0 {
        return Err("--client-cache: the store has no client cache on a cluster".to_owned());
    }
    let duration = Duration::from_secs(options.seconds.max(5));
    let apps = options.apps.max(1);
    let servers = Arc::new(Mutex::new(
        tokio::task::spawn_blocking(move || Servers::start(options.topology))
            .await
            .map_err(|e| format!("starting Redis: {e}"))?,
    ));
    let (url, described) = {
        let servers = lock(&servers);
        (servers.url(), servers.describe())
    };
    let mut store_args = vec![
        "--store".to_owned(),
        "redis".to_owned(),
        "--redis-url".to_owned(),
        url,
    ];
    if options.wait_replicas > 0 {
        store_args.extend([
            "--redis-wait-replicas".to_owned(),
            options.wait_replicas.to_string(),
        ]);
    }
    if options.client_cache > 0 {
        store_args.extend([
            "--redis-client-cache".to_owned(),
            options.client_cache.to_string(),
        ]);
    }
    let other = if options.framework == "axum" {
        "actix"
    } else {
        "axum"
    };
    let mut demos = Vec::new();
    for i in 0..apps {
        let framework = if i % 2 == 0 {
            options.framework.as_str()
        } else {
            other
        };
        demos.push(Demo::spawn(
            &options.demo,
            framework,
            free_addr()?,
            store_args.clone(),
        )?);
    }
    for demo in &mut demos {
        demo.wait_until_serving().await?;
    }
    let frameworks: Vec<&str> = demos.iter().map(|d| d.framework.as_str()).collect();
    println!(
        "soak: topology {described}; {apps} demo processes ({}); {} users; {} s; durability: {}; client cache: {}",
        frameworks.join(", "),
        options.users,
        duration.as_secs(),
        if options.wait_replicas > 0 {
            format!("WAIT for {} replica(s), 500 ms", options.wait_replicas)
        } else {
            "off (answered once the master has it)".to_owned()
        },
        if options.client_cache > 0 {
            format!("{} sessions per process", options.client_cache)
        } else {
            "off".to_owned()
        }
    );

    let start = Instant::now();
    let shared = Arc::new(Shared {
        start,
        stop: AtomicBool::new(false),
        rotation: Rotation {
            addrs: demos.iter().map(|d| d.addr).collect(),
            in_rotation: (0..apps).map(|_| AtomicBool::new(true)).collect(),
        },
        counts: Counts::default(),
        failures: Mutex::new(Vec::new()),
        leaks: Mutex::new(Vec::new()),
        issued: Mutex::new(HashMap::new()),
        in_flight: (0..apps).map(|_| AtomicU64::new(0)).collect(),
    });
    let users: Vec<_> = (0..options.users)
        .map(|id| tokio::spawn(run_user(id, Arc::clone(&shared))))
        .collect();

    // RSS, every second, of every process (a restarted one under its new
    // pid: the series is per slot).
    let pids: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(demos.iter().map(Demo::pid).collect()));
    let rss: Arc<Mutex<Vec<RssSeries>>> = Arc::new(Mutex::new(
        (0..apps).map(|_| RssSeries::default()).collect(),
    ));
    let sampler = {
        let (pids, rss, shared) = (Arc::clone(&pids), Arc::clone(&rss), Arc::clone(&shared));
        tokio::spawn(async move {
            while !shared.stop.load(Ordering::Relaxed) {
                let now = shared.since_start();
                let pids = lock(&pids).clone();
                for (slot, pid) in pids.into_iter().enumerate() {
                    if let Some(kib) = rss_kib(pid) {
                        lock(&rss)[slot].0.push((now, kib));
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The failover.
    let warm_up = duration.mul_f64(0.25);
    let mut timeline = Timeline::default();
    sleep_until(start, duration.mul_f64(0.35)).await;
    // The kill is timed from just before it: requests that the dying
    // server fails may end before the step returns.
    timeline.killed = start.elapsed();
    let victim = blocking(&servers, Servers::kill).await?;
    timeline.dead = start.elapsed();
    println!(
        "soak: {victim} killed at {:.1} s",
        timeline.killed.as_secs_f64()
    );
    let outage = duration.mul_f64(0.10).max(MIN_OUTAGE);
    let how = blocking(&servers, move |s| s.recover(outage)).await?;
    timeline.recovered = start.elapsed();
    println!(
        "soak: {how} at {:.1} s ({:.1} s after the kill)",
        timeline.recovered.as_secs_f64(),
        (timeline.recovered - timeline.killed).as_secs_f64()
    );
    if options.topology != Topology::Standalone {
        sleep_until(
            start,
            duration
                .mul_f64(0.55)
                .max(timeline.recovered + Duration::from_secs(1)),
        )
        .await;
        if let Some(how) = blocking(&servers, Servers::rejoin).await? {
            let at = start.elapsed();
            timeline.rejoined = Some(at);
            println!("soak: {how} at {:.1} s", at.as_secs_f64());
        }
    }

    // One demo process restarted: out of rotation, drained, killed,
    // restarted, back in rotation.
    sleep_until(start, duration.mul_f64(0.70)).await;
    let restarted = apps - 1;
    if apps > 1 {
        shared.rotation.in_rotation[restarted].store(false, Ordering::SeqCst);
        let drained = Instant::now() + Duration::from_secs(5);
        while shared.in_flight[restarted].load(Ordering::SeqCst) > 0 && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        demos[restarted].restart()?;
        demos[restarted].wait_until_serving().await?;
        lock(&pids)[restarted] = demos[restarted].pid();
        shared.rotation.in_rotation[restarted].store(true, Ordering::SeqCst);
        let at = start.elapsed();
        timeline.app_restarted = Some((restarted, at));
        println!(
            "soak: demo process {restarted} ({}) restarted, back in rotation at {:.1} s",
            demos[restarted].framework,
            at.as_secs_f64()
        );
    }

    // The load runs its time, and a little past the last step if the
    // failover took longer than planned.
    let steps_done = start.elapsed() + duration.mul_f64(0.15).max(Duration::from_secs(3));
    sleep_until(start, duration.max(steps_done)).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut finished = Vec::new();
    for user in users {
        finished.push(user.await.map_err(|e| format!("a user task failed: {e}"))?);
    }
    let _ = sampler.await;
    let elapsed = start.elapsed();

    // Read everything back, through every process in turn.
    let mut connections: Vec<Connection> = demos.iter().map(|d| Connection::new(d.addr)).collect();
    let (mut turn, apps_count) = (0, connections.len());
    let mut next_connection = || {
        turn = (turn + 1) % apps_count;
        turn
    };
    // A write the server took just before it died is answered to the
    // client after the kill began, or even after the server exited (the
    // demo still has to send its response): those count as lost to
    // replication too. No replica is promoted, and no server restarted,
    // within the window after the kill, so nothing answered in it can have
    // been written anywhere but on the dead master.
    let loss_from = timeline.killed.saturating_sub(REPLICATION_LOSS_WINDOW);
    let loss_until = timeline.dead + REPLICATION_LOSS_WINDOW;
    let in_loss_window = |answered: Duration| answered >= loss_from && answered <= loss_until;
    let (mut writes, mut verified, mut lost_replication, mut missing) =
        (0u64, 0u64, 0u64, Vec::new());
    let (mut logouts, mut stayed_out, mut undone_replication, mut undone) =
        (0u64, 0u64, 0u64, Vec::new());
    let mut lost_examples = Vec::new();
    let (mut absent_reads, mut absent_examples) = (0u64, Vec::new());
    for user in &mut finished {
        let mut archived = std::mem::take(&mut user.archived);
        for session in &mut archived {
            let c = next_connection();
            let response = connections[c]
                .send("GET", "/api/session", Some(&session.cookie), "")
                .await
                .map_err(|e| format!("readback: {e}"))?;
            if response.status != 200 {
                return Err(format!("readback answered {}", response.status));
            }
            let data = response.json();
            shared.check_data(&user.name, session.user.as_deref(), &data["data"]);
            let user_name = user.name.clone();
            User::check(&mut user.tally, &user_name, session, &data["data"], true);
        }
        writes += user.tally.acknowledged;
        absent_reads += user.tally.absent_reads;
        absent_examples.extend(user.tally.absent_examples.iter().cloned());
        verified += user.tally.verified;
        for (answered, what) in &user.tally.lost {
            if in_loss_window(*answered) {
                lost_replication += 1;
                lost_examples.push(what.clone());
            } else {
                missing.push(what.clone());
            }
        }
        for logged_out in &user.logged_out {
            logouts += 1;
            let c = next_connection();
            let response = connections[c]
                .send("GET", "/api/session", Some(&logged_out.cookie), "")
                .await
                .map_err(|e| format!("readback: {e}"))?;
            let data = response.json();
            let empty = data["data"].as_object().is_none_or(|d| d.is_empty());
            if response.status == 200 && data["new"] == true && empty {
                stayed_out += 1;
            } else if in_loss_window(logged_out.answered) {
                undone_replication += 1;
            } else {
                undone.push(format!(
                    "{} logged out at {:.2} s: {}",
                    user.name,
                    logged_out.answered.as_secs_f64(),
                    data
                ));
            }
        }
    }

    // Errors: within the window from the kill until the topology serves
    // again (with --wait-replicas on a cluster, until the old master is
    // back as the promoted one's replica), plus the grace.
    // Replicas the promoted master has until the old one is back: none
    // on the cluster (one each), one behind Sentinel (two). While fewer
    // than --wait-replicas, every write fails by design.
    let replicas_left = match options.topology {
        Topology::Standalone | Topology::Cluster => 0,
        Topology::Sentinel => 1,
    };
    let served_again = if options.wait_replicas > replicas_left {
        timeline.rejoined.unwrap_or(timeline.recovered)
    } else {
        timeline.recovered
    };
    let window_end = served_again + GRACE;
    let failures = lock(&shared.failures);
    let in_window = |f: &&Failure| f.ended >= timeline.killed && f.started <= window_end;
    let (during, outside): (Vec<&Failure>, Vec<&Failure>) = failures.iter().partition(in_window);
    let first_error = during.iter().map(|f| f.started).min();
    let last_error = during.iter().map(|f| f.ended).max();

    let counts = &shared.counts;
    let requests = counts.requests.load(Ordering::Relaxed);
    println!(
        "soak: {requests} requests in {:.1} s ({:.0}/s): {} logins, {} reads, {} counter writes, \
         {} concurrent writes (bursts of {BURST}), {} logouts; {} writes answered 200",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        counts.logins.load(Ordering::Relaxed),
        counts.reads.load(Ordering::Relaxed),
        counts.counter_writes.load(Ordering::Relaxed),
        counts.burst_writes.load(Ordering::Relaxed),
        counts.logouts.load(Ordering::Relaxed),
        counts.writes_ok.load(Ordering::Relaxed),
    );
    match (first_error, last_error) {
        (Some(first), Some(last)) => println!(
            "soak: failover window {:.1} s to {:.1} s (+{} s grace): {} errors, from {:.2} s to \
             {:.2} s ({:.2} s); {} errors outside it",
            timeline.killed.as_secs_f64(),
            served_again.as_secs_f64(),
            GRACE.as_secs(),
            during.len(),
            first.as_secs_f64(),
            last.as_secs_f64(),
            (last - first).as_secs_f64(),
            outside.len()
        ),
        _ => println!(
            "soak: failover window {:.1} s to {:.1} s (+{} s grace): no error in it; {} errors \
             outside it",
            timeline.killed.as_secs_f64(),
            served_again.as_secs_f64(),
            GRACE.as_secs(),
            outside.len()
        ),
    }
    let unaccounted = writes.saturating_sub(verified + lost_replication + missing.len() as u64);
    println!(
        "soak: acknowledged writes: {writes}; read back afterwards: {verified}; lost to \
         asynchronous replication (answered from {} s before the kill to {} s after the server \
         exited): {lost_replication}; missing otherwise: {}; unaccounted: {unaccounted}",
        REPLICATION_LOSS_WINDOW.as_secs(),
        REPLICATION_LOSS_WINDOW.as_secs(),
        missing.len()
    );
    if absent_reads > 0 {
        println!(
            "soak: reads during the run that lacked acknowledged writes (which the session's \
             last read then found or counted lost above): {absent_reads}, e.g. {:?}",
            &absent_examples[..absent_examples.len().min(5)]
        );
    } else {
        println!("soak: reads during the run that lacked acknowledged writes: 0");
    }
    println!(
        "soak: logouts answered: {logouts}; stayed out: {stayed_out}; undone by asynchronous \
         replication: {undone_replication}; undone otherwise: {}",
        undone.len()
    );
    if let Servers::Sentinel(sentinel) = &*lock(&servers) {
        let switches: Vec<String> = sentinel
            .sentinel_log()
            .lines()
            .filter(|line| line.contains("+switch-master") || line.contains("+odown"))
            .map(str::to_owned)
            .collect();
        println!(
            "soak: the sentinels' failovers:\n  {}",
            switches.join("\n  ")
        );
    }
    let leaks = lock(&shared.leaks);
    println!("soak: cross-user leaks: {}", leaks.len());

    let mut problems = Vec::new();
    if options.client_cache > 0 {
        let [barriers, reads] = lock(&servers).command_calls(["client|trackinginfo", "hgetall"]);
        println!(
            "soak: client cache: {barriers} barriers (CLIENT TRACKINGINFO) and {reads} session \
             reads (HGETALL), as the servers counted them since they last started"
        );
        // Every load the cache serves passes a barrier first: without one,
        // the run tested the store without its cache.
        if barriers == 0 {
            problems.push("the client cache sent no barrier: it served no load".to_owned());
        }
    }
    let rss = lock(&rss);
    let mut rss_report = Vec::new();
    for (slot, series) in rss.iter().enumerate() {
        let from = match timeline.app_restarted {
            Some((restarted, at)) if restarted == slot => at + Duration::from_secs(2),
            _ => warm_up,
        };
        let (Some(warm), Some(end)) = (series.at(from), series.last()) else {
            rss_report.push(format!("process {slot}: too few samples"));
            continue;
        };
        let allowed = ((warm as f64 * RSS_GROWTH_PERCENT / 100.0) as u64).max(RSS_GROWTH_KIB);
        let change = (end as f64 - warm as f64) / warm as f64 * 100.0;
        rss_report.push(format!(
            "process {slot}: {warm} -> {end} KiB ({change:+.1}%)"
        ));
        if end > warm + allowed {
            problems.push(format!(
                "process {slot}'s RSS grew from {warm} KiB to {end} KiB (allowed: +{allowed} KiB)"
            ));
        }
    }
    println!(
        "soak: RSS after warm-up -> at the end: {} (allowed growth: {RSS_GROWTH_PERCENT}% or \
         {RSS_GROWTH_KIB} KiB)",
        rss_report.join("; ")
    );

    if !missing.is_empty() {
        problems.push(format!(
            "{} acknowledged writes are missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if options.wait_replicas > 0 && lost_replication > 0 {
        problems.push(format!(
            "{lost_replication} acknowledged writes were lost in the failover despite \
             --wait-replicas {}, e.g. {:?}",
            options.wait_replicas,
            &lost_examples[..lost_examples.len().min(5)]
        ));
    } else if lost_replication > 0 {
        println!(
            "soak: lost to asynchronous replication, e.g. {:?}",
            &lost_examples[..lost_examples.len().min(5)]
        );
    }
    if !undone.is_empty() {
        problems.push(format!(
            "{} logouts were undone, e.g. {:?}",
            undone.len(),
            &undone[..undone.len().min(5)]
        ));
    }
    if options.wait_replicas > 0 && undone_replication > 0 {
        problems.push(format!(
            "{undone_replication} logouts were undone in the failover despite --wait-replicas"
        ));
    }
    if !leaks.is_empty() {
        problems.push(format!(
            "{} cross-user leaks, e.g. {:?}",
            leaks.len(),
            &leaks[..leaks.len().min(5)]
        ));
    }
    if !outside.is_empty() {
        let examples: Vec<String> = outside.iter().take(5).map(|f| f.describe()).collect();
        problems.push(format!(
            "{} errors outside the failover window, e.g.:\n  {}",
            outside.len(),
            examples.join("\n  ")
        ));
    }
    if options.topology == Topology::Standalone && during.is_empty() {
        problems.push("no request failed while Redis was down: the outage went unseen".to_owned());
    }
    if verified == 0 {
        problems.push("no write was verified".to_owned());
    }
    if unaccounted > 0 {
        problems.push(format!(
            "{unaccounted} acknowledged writes were never read back"
        ));
    }
    if logouts > 0 && stayed_out == 0 {
        problems.push("no logout was verified".to_owned());
    }
    drop(demos);
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
