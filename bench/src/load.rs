//! The load generator: a fixed number of keep-alive HTTP/1.1 connections,
//! each with its own cookie jar, bounded by a request count and a time.
//!
//! It speaks just enough HTTP/1.1 over raw TCP to be cheap on the client
//! side (one buffered write and usually one read per request, no header
//! map), so that on a shared machine the server stays the bottleneck. Every
//! answer is checked (status 200 and the scenario's expected body), so a
//! server that lost the session cannot look fast.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::scenario::{Expect, Scenario};
use crate::stats::Latencies;

/// How hard and how long to load a server for one scenario.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The server, on loopback.
    pub addr: SocketAddr,
    /// Concurrent connections, each one a client with its own session.
    pub connections: usize,
    /// Measured requests sent before measuring, to warm caches and
    /// connections; not recorded.
    pub warmup: Duration,
    /// How long the measurement lasts at most.
    pub duration: Duration,
    /// How many measured requests are sent at most, over all connections.
    pub max_requests: u64,
}

/// What one scenario measured on one server.
#[derive(Debug)]
pub struct Measurement {
    /// Requests that completed with the expected answer.
    pub ok: u64,
    /// Requests that failed: I/O error, wrong status or wrong body.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// From the first measured request to the last answer.
    pub elapsed: Duration,
    /// The latency of every successful request.
    pub latencies: Latencies,
}

impl Measurement {
    /// Successful requests per second.
    #[must_use]
    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Connections whose sessions are set up and warm, ready to be measured.
pub struct Prepared {
    clients: Vec<Client>,
    path: &'static str,
}

/// Opens the connections to `config.addr`, sets the scenario's sessions up
/// with its setup request, then warms up on the measured route.
///
/// With one session per connection, each connection sets up its own. With
/// `n` distinct sessions, connection `c` of `k` sets up sessions `c`,
/// `c + k`, ... (all connections at once, so that 50,000 setups take
/// seconds), and later cycles through them; only `n` connections are used
/// when `n < k`. See [`Scenario`].
///
/// # Errors
///
/// When a connection cannot be opened or a setup request fails: the
/// server is not serving this scenario at all.
pub async fn prepare(
    config: &LoadConfig,
    scenario: Scenario,
    expect: Option<Expect>,
) -> io::Result<Prepared> {
    let sessions = scenario.sessions.unwrap_or(config.connections).max(1);
    let connections = config.connections.min(sessions).max(1);
    let mut setups = JoinSet::new();
    for index in 0..connections {
        let connection = Connection::open(config.addr).await?;
        // Sessions index, index + connections, ...: this connection's share.
        let share = (index..sessions).step_by(connections).count();
        let setup_path = scenario.setup_path();
        setups.spawn(async move { Client::set_up(connection, setup_path, share, expect).await });
    }
    let mut clients = Vec::with_capacity(connections);
    while let Some(joined) = setups.join_next().await {
        clients.push(joined.map_err(io::Error::other)??);
    }
    let (clients, results) = phase(clients, scenario.path(), config.warmup, u64::MAX, false).await;
    if let Some(error) = results.into_iter().find_map(|result| result.first_error) {
        return Err(io::Error::other(format!("warm-up: {error}")));
    }
    Ok(Prepared {
        clients,
        path: scenario.path(),
    })
}

/// Measures: every connection requests the scenario's route until
/// `config.duration` has passed or `config.max_requests` have been sent.
pub async fn measure(prepared: Prepared, config: &LoadConfig) -> Measurement {
    let started = Instant::now();
    let (_, results) = phase(
        prepared.clients,
        prepared.path,
        config.duration,
        config.max_requests,
        true,
    )
    .await;
    let elapsed = started.elapsed();

    let mut measurement = Measurement {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed,
        latencies: Latencies::default(),
    };
    for result in results {
        measurement.ok += result.ok;
        measurement.errors += result.errors;
        if measurement.first_error.is_none() {
            measurement.first_error = result.first_error;
        }
        measurement.latencies.extend(result.latencies_us);
    }
    measurement
}

/// One connection's tally for a phase.
#[derive(Default)]
struct PhaseResult {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latencies_us: Vec<u32>,
}

/// A connection, the sessions it holds and what its answers must be.
struct Client {
    connection: Connection,
    expect: Option<Expect>,
    /// This connection's sessions, used in turn; one in the single-session
    /// scenarios.
    sessions: Vec<ClientSession>,
    /// The session the next request presents.
    next: usize,
}

/// One session as a client holds it.
#[derive(Default)]
struct ClientSession {
    jar: CookieJar,
    /// With [`Expect::Increments`], the count the next answer must carry.
    next_count: u64,
}

impl Client {
    /// Creates `count` sessions over `connection`, one setup request each.
    async fn set_up(
        mut connection: Connection,
        setup_path: &'static str,
        count: usize,
        expect: Option<Expect>,
    ) -> io::Result<Client> {
        let mut sessions = Vec::with_capacity(count);
        for index in 0..count {
            let mut session = ClientSession {
                jar: CookieJar::default(),
                next_count: 1,
            };
            let response = connection.get(setup_path, index, &mut session.jar).await?;
            if response.status != 200 {
                return Err(io::Error::other(format!(
                    "setup {setup_path} answered {}: {}",
                    response.status,
                    String::from_utf8_lossy(response.body)
                )));
            }
            sessions.push(session);
        }
        Ok(Client {
            connection,
            expect,
            sessions,
            next: 0,
        })
    }

    /// Requests `path` with the next session, and checks the answer.
    async fn request(&mut self, path: &'static str) -> Result<(), (String, bool)> {
        let index = self.next;
        self.next = (self.next + 1) % self.sessions.len();
        let session = &mut self.sessions[index];
        match self.connection.get(path, index, &mut session.jar).await {
            Ok(response) => check(
                self.expect,
                &mut session.next_count,
                response.status,
                response.body,
            )
            .map_err(|error| (error, true)),
            Err(error) => Err((format!("I/O: {error}"), false)),
        }
    }
}

/// Checks an answer against `expect`, advancing the expected counter.
fn check(
    expect: Option<Expect>,
    next_count: &mut u64,
    status: u16,
    body: &[u8],
) -> Result<(), String> {
    if status != 200 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    match expect {
        None => Ok(()),
        Some(Expect::Body(expected)) if body == expected.as_bytes() => Ok(()),
        Some(Expect::Body(expected)) => Err(format!(
            "expected {expected:?}, got {:?}",
            String::from_utf8_lossy(body)
        )),
        Some(Expect::Increments) => {
            let expected = *next_count;
            *next_count += 1;
            if body == expected.to_string().as_bytes() {
                Ok(())
            } else {
                Err(format!(
                    "expected counter {expected}, got {:?}",
                    String::from_utf8_lossy(body)
                ))
            }
        }
    }
}

/// Runs every client concurrently, requesting `path` until `duration` has
/// passed or `max_requests` have been sent over all of them; gives the
/// clients back (those whose connection broke are dropped) with their tallies.
async fn phase(
    clients: Vec<Client>,
    path: &'static str,
    duration: Duration,
    max_requests: u64,
    record: bool,
) -> (Vec<Client>, Vec<PhaseResult>) {
    let deadline = Instant::now() + duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for mut client in clients {
        let sent = Arc::clone(&sent);
        tasks.spawn(async move {
            let mut result = PhaseResult::default();
            let mut alive = true;
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
                let started = Instant::now();
                match client.request(path).await {
                    Ok(()) => {
                        result.ok += 1;
                        if record {
                            let micros = started.elapsed().as_micros();
                            result
                                .latencies_us
                                .push(u32::try_from(micros).unwrap_or(u32::MAX));
                        }
                    }
                    Err((error, still_alive)) => {
                        alive = still_alive;
                        result.errors += 1;
                        result.first_error.get_or_insert(error);
                    }
                }
                if !alive {
                    break;
                }
            }
            (alive.then_some(client), result)
        });
    }
    let mut clients = Vec::new();
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (client, result) = joined.expect("a load task panicked");
        clients.extend(client);
        results.push(result);
    }
    (clients, results)
}

/// An HTTP/1.1 answer, borrowing the connection's buffer.
struct Response<'a> {
    status: u16,
    body: &'a [u8],
}

/// A keep-alive connection. The cookie jars are the sessions', passed in
/// with each request.
struct Connection {
    stream: TcpStream,
    host: String,
    /// The last request sent, reused while the path, the session and its
    /// cookies stay the same (the common case with one session per
    /// connection: a session whose cookie does not change).
    request: Vec<u8>,
    request_path: &'static str,
    request_session: usize,
    request_jar_version: u64,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            host: addr.to_string(),
            request: Vec::new(),
            request_path: "",
            request_session: usize::MAX,
            request_jar_version: u64::MAX,
            buffer: Vec::with_capacity(16 * 1024),
        })
    }

    /// Sends `GET path` with the cookies of `jar`, the jar of the client's
    /// session number `session`, reads the answer and keeps the cookies it
    /// sets in `jar`.
    async fn get(
        &mut self,
        path: &'static str,
        session: usize,
        jar: &mut CookieJar,
    ) -> io::Result<Response<'_>> {
        if self.request_path != path
            || self.request_session != session
            || self.request_jar_version != jar.version
        {
            self.request.clear();
            self.request.extend_from_slice(b"GET ");
            self.request.extend_from_slice(path.as_bytes());
            self.request.extend_from_slice(b" HTTP/1.1\r\nHost: ");
            self.request.extend_from_slice(self.host.as_bytes());
            self.request.extend_from_slice(b"\r\n");
            jar.write_header(&mut self.request);
            self.request.extend_from_slice(b"\r\n");
            self.request_path = path;
            self.request_session = session;
            self.request_jar_version = jar.version;
        }
        self.stream.write_all(&self.request).await?;

        self.buffer.clear();
        let head_len = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end + 4;
            }
            self.read_more().await?;
        };
        let head = parse_head(&self.buffer[..head_len], jar)?;
        while self.buffer.len() < head_len + head.content_length {
            self.read_more().await?;
        }
        if self.buffer.len() > head_len + head.content_length {
            return Err(io::Error::other(
                "bytes after the response: not a request-response server",
            ));
        }
        Ok(Response {
            status: head.status,
            body: &self.buffer[head_len..],
        })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        if self.buffer.capacity() - self.buffer.len() < 4096 {
            self.buffer.reserve(16 * 1024);
        }
        if self.stream.read_buf(&mut self.buffer).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// What the load generator needs of a response head.
struct Head {
    status: u16,
    content_length: usize,
}

/// Parses a response head (status line and headers, up to the blank line),
/// storing the cookies it sets in `jar`.
fn parse_head(head: &[u8], jar: &mut CookieJar) -> io::Result<Head> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let text = std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let mut content_length = None;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid("bad header"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().map_err(|_| invalid("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("set-cookie") {
            jar.set(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Every route answers a short fixed body; frameworks send those
            // with a length.
            return Err(invalid("transfer-encoding is not supported"));
        }
    }
    Ok(Head {
        status,
        content_length: content_length.ok_or_else(|| invalid("no content-length"))?,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A browser's cookie jar, reduced to one host and path: name-value pairs,
/// replaced by name, removed by an expired `Set-Cookie`. Attributes such as
/// `Secure` are ignored: the benchmark speaks plain HTTP on loopback.
#[derive(Debug, Default)]
struct CookieJar {
    cookies: Vec<(String, String)>,
    /// Bumped on every change, so that requests are rebuilt only then.
    version: u64,
}

impl CookieJar {
    /// Applies one `Set-Cookie` header value.
    fn set(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let removed = value.is_empty()
            || parts.any(|attribute| {
                let attribute = attribute.trim().to_ascii_lowercase();
                attribute == "max-age=0"
                    || attribute.starts_with("max-age=-")
                    || attribute.starts_with("expires=thu, 01 jan 1970")
            });
        let existing = self.cookies.iter().position(|(n, _)| n == name);
        match (existing, removed) {
            (Some(index), true) => {
                self.cookies.remove(index);
            }
            (None, true) => return,
            (Some(index), false) if self.cookies[index].1 == value => return,
            (Some(index), false) => self.cookies[index].1 = value.to_owned(),
            (None, false) => self.cookies.push((name.to_owned(), value.to_owned())),
        }
        self.version += 1;
    }

    /// Appends the `Cookie` header line, if there are cookies.
    fn write_header(&self, request: &mut Vec<u8>) {
        for (index, (name, value)) in self.cookies.iter().enumerate() {
            request.extend_from_slice(if index == 0 { b"Cookie: " } else { b"; " });
            request.extend_from_slice(name.as_bytes());
            request.push(b'=');
            request.extend_from_slice(value.as_bytes());
        }
        if !self.cookies.is_empty() {
            request.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jar_keeps_replaces_and_removes_cookies() {
        let mut jar = CookieJar::default();
        jar.set("session=abc; Path=/; Secure; HttpOnly; SameSite=Lax");
        jar.set("other=1");
        jar.set("session=def; Path=/");
        let mut header = Vec::new();
        jar.write_header(&mut header);
        assert_eq!(header, b"Cookie: session=def; other=1\r\n");

        jar.set("session=; Path=/; Max-Age=0");
        jar.set("other=gone; expires=Thu, 01 Jan 1970 00:00:00 GMT");
        header.clear();
        jar.write_header(&mut header);
        assert!(header.is_empty());
    }

    #[test]
    fn unchanged_cookie_keeps_the_version() {
        let mut jar = CookieJar::default();
        jar.set("id=1");
        let version = jar.version;
        jar.set("id=1; Path=/");
        assert_eq!(jar.version, version);
    }

    #[test]
    fn parses_a_head() {
        let mut jar = CookieJar::default();
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nset-cookie: id=x; Path=/\r\n\r\n",
            &mut jar,
        )
        .unwrap();
        assert_eq!((head.status, head.content_length), (200, 3));
        assert_eq!(jar.cookies, [("id".to_owned(), "x".to_owned())]);
    }
}
