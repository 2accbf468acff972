//! The adversarial HTTP matrix (issue 7): hostile `Cookie` headers sent to
//! the demo app over a raw TCP socket, for each framework and each store.
//!
//! Every case must answer 200 with either a new, empty session or the
//! session the request rightly names (or the framework's own 4xx for a
//! header too large, asserted per framework), never a 500 or a panic, and
//! the server must keep serving: after each case, a normal request with a
//! session made before it still reads that session.
//!
//! The client writes the request bytes itself, because the cases include
//! bytes that no HTTP client library sends (non-UTF-8, 64 KiB headers).

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use session_core::{MemoryStore, SessionConfig, SessionManager, SessionStore};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
use session_examples::server::{self, Framework, Running};
use session_simple_cookie::SimpleCookieStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any single exchange may take before the case fails.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The stores of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreKind {
    Memory,
    Simple,
    Encrypted,
    Redis,
    Postgres,
    Sqlite,
}

impl StoreKind {
    /// Whether the cookie holds an id, so that the server can forget a
    /// session, rather than the session itself.
    fn server_side(self) -> bool {
        matches!(
            self,
            StoreKind::Memory | StoreKind::Redis | StoreKind::Postgres | StoreKind::Sqlite
        )
    }

    /// A fresh store of this kind: a new deployment, with its own key or
    /// its own server.
    async fn deploy(self) -> Deployment {
        let (store, keep_alive): (Arc<dyn SessionStore>, Option<Box<dyn Any + Send>>) = match self {
            StoreKind::Memory => (Arc::new(MemoryStore::new()), None),
            StoreKind::Simple => (Arc::new(SimpleCookieStore::new()), None),
            StoreKind::Encrypted => {
                let ring = KeyRing::builder(Key::generate()).build().unwrap();
                (Arc::new(EncryptedCookieStore::new(ring)), None)
            }
            StoreKind::Redis => {
                let redis = session_testing::RedisServer::start();
                let store = session_redis::RedisStore::from_url(&redis.url())
                    .await
                    .expect("connect to the test redis-server");
                (Arc::new(store), Some(Box::new(redis)))
            }
            StoreKind::Postgres => {
                // A database of its own on the server the process's tests
                // share: another deployment shares no sessions.
                let postgres = session_testing::PostgresServer::shared();
                let database = format!(
                    "adversarial_{}_{}",
                    std::process::id(),
                    NEXT_DATABASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                );
                postgres
                    .execute(&format!("CREATE DATABASE {database}"))
                    .expect("create the test database");
                let store = session_sqlx::PostgresStore::connect(&postgres.url_for(&database))
                    .await
                    .expect("a Postgres URL");
                store.migrate().await.expect("migrate the test database");
                (Arc::new(store), Some(Box::new(postgres)))
            }
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
                let store = session_sqlx::SqliteStore::connect(&url)
                    .await
                    .expect("open the test database");
                store.migrate().await.expect("migrate the test database");
                (Arc::new(store), Some(Box::new(dir)))
            }
        };
        Deployment {
            store,
            _keep_alive: keep_alive,
        }
    }
}

/// Numbers the Postgres databases of this process's deployments.
static NEXT_DATABASE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A store, and whatever must live as long as it (a redis-server).
struct Deployment {
    store: Arc<dyn SessionStore>,
    _keep_alive: Option<Box<dyn Any + Send>>,
}

/// A response as read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// The `session=value` pair this response sets, if it sets one.
    fn session_pair(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .map(|c| session_conformance::SetCookie::parse(c).pair())
            .find(|pair| pair.starts_with("session=") && pair != "session=")
    }
}

/// Sends one request, written byte by byte as given, on a new connection,
/// and reads the whole response (`Connection: close`).
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&[u8]>,
    body: Option<&str>,
) -> Answer {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    if let Some(cookie) = cookie {
        request.extend_from_slice(b"Cookie: ");
        request.extend_from_slice(cookie);
        request.extend_from_slice(b"\r\n");
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        request.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            )
            .as_bytes(),
        );
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body.as_bytes());
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        // A server may answer (and close) before reading a huge request to
        // its end: a failed write is fine as long as an answer comes back.
        let _ = stream.write_all(&request).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        response
    };
    let response = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within {EXCHANGE_TIMEOUT:?} to {method} {path}"));
    parse(&response)
}

/// Parses an HTTP/1.1 response with a `Content-Length` or chunked body.
fn parse(response: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(response);
    let (head, raw_body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut set_cookies = Vec::new();
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "set-cookie" {
            set_cookies.push(value.to_owned());
        } else if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(raw_body)
    } else {
        raw_body.to_owned()
    };
    Answer {
        status,
        set_cookies,
        body,
    }
}

fn dechunk(mut raw: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        body.push_str(&rest[..size]);
        raw = rest[size..].trim_start_matches("\r\n");
    }
    body
}

/// The demo on one framework and one store, with a session made before any
/// hostile request, to show the server keeps serving it.
struct Harness {
    framework: Framework,
    kind: StoreKind,
    /// Kept alive for the server's lifetime (a redis-server, say).
    _deployment: Deployment,
    server: Running,
    /// `session=value` of a session holding `{"keep": "me"}`.
    kept: String,
}

impl Harness {
    async fn start(framework: Framework, kind: StoreKind) -> Self {
        let deployment = kind.deploy().await;
        let manager =
            SessionManager::with_shared_store(deployment.store.clone(), SessionConfig::default());
        let server = server::serve_demo(framework, manager, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("serve the demo");
        let addr = server.addr();
        let answer = exchange(addr, "PUT", "/api/session/keep", None, Some(r#""me""#)).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let kept = answer.session_pair().expect("a session cookie");
        Harness {
            framework,
            kind,
            _deployment: deployment,
            server,
            kept,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `GET /api/session` with `cookie` as the raw header.
    async fn read(&self, cookie: &[u8]) -> Answer {
        exchange(self.addr(), "GET", "/api/session", Some(cookie), None).await
    }

    /// A new session with `data` written through the API; its `session=value`.
    async fn new_session(&self, key: &str, value: Value) -> String {
        let answer = exchange(
            self.addr(),
            "PUT",
            &format!("/api/session/{key}"),
            None,
            Some(&value.to_string()),
        )
        .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.session_pair().expect("a session cookie")
    }

    /// Asserts `answer` is a 200 with a new, empty session, and that a write
    /// with the same hostile header gets a fresh cookie of its own.
    async fn assert_new_session(&self, case: &str, cookie: &[u8], answer: &Answer) {
        assert_eq!(answer.status, 200, "{self:?} {case}: {answer:?}");
        assert_eq!(
            answer.json(),
            json!({"new": true, "data": {}}),
            "{self:?} {case}"
        );
        let written = exchange(
            self.addr(),
            "PUT",
            "/api/session/w",
            Some(cookie),
            Some("1"),
        )
        .await;
        assert_eq!(written.status, 200, "{self:?} {case}: {written:?}");
        assert_eq!(
            written.json(),
            json!({"new": true, "data": {"w": 1}}),
            "{self:?} {case}"
        );
        let pair = written.session_pair().expect("a fresh session cookie");
        let value = pair.trim_start_matches("session=");
        if self.kind.server_side() {
            assert!(
                !cookie.windows(value.len()).any(|w| w == value.as_bytes()),
                "{self:?} {case}: a client-sent id was adopted"
            );
        }
    }

    /// Asserts `answer` is a 200 with the session holding `data`.
    fn assert_session(&self, case: &str, answer: &Answer, data: &Value) {
        assert_eq!(answer.status, 200, "{self:?} {case}: {answer:?}");
        assert_eq!(
            answer.json(),
            json!({"new": false, "data": data}),
            "{self:?} {case}"
        );
    }

    /// The server still serves: the session made at the start reads back.
    async fn assert_still_serving(&self, case: &str) {
        let answer = self.read(self.kept.as_bytes()).await;
        self.assert_session(&format!("after {case}"), &answer, &json!({"keep": "me"}));
        let health = exchange(self.addr(), "GET", "/health", None, None).await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (200, "ok"),
            "{self:?} after {case}"
        );
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{:?}", self.framework, self.kind)
    }
}

/// The cases, each run for every framework and store by `matrix!`.
mod cases {
    use super::*;

    /// A 64 KiB `Cookie` header: both frameworks read it (hyper buffers up
    /// to about 400 KiB of request head, actix-web 128 KiB), and the value
    /// is dropped unread as too long to be a cookie we issued. Spread over
    /// thousands of small cookies, the session's among them still loads.
    /// Past each framework's limit (a 512 KiB header), the framework itself
    /// answers 431 before any session code runs.
    pub(super) async fn a_64_kib_cookie_header(h: &Harness) {
        let case = "64 KiB Cookie header";
        let huge = format!("session={}", "A".repeat(64 * 1024));
        let answer = h.read(huge.as_bytes()).await;
        h.assert_new_session(case, huge.as_bytes(), &answer).await;

        let mut many: String = (0..4000).map(|i| format!("pad{i}=xxxxxxxxxx; ")).collect();
        many.push_str(&h.kept);
        assert!(many.len() > 64 * 1024);
        let answer = h.read(many.as_bytes()).await;
        h.assert_session(case, &answer, &json!({"keep": "me"}));

        let too_large = format!("session={}", "A".repeat(512 * 1024));
        let answer = h.read(too_large.as_bytes()).await;
        assert_eq!(
            answer.status, 431,
            "{h:?} 512 KiB Cookie header: {answer:?}"
        );
        h.assert_still_serving(case).await;
    }

    /// 500 cookies in one request: none of them the session's gives a new
    /// session; with the session's among them, the right one.
    pub(super) async fn five_hundred_cookies(h: &Harness) {
        let case = "500 cookies";
        let others: Vec<String> = (0..500).map(|i| format!("c{i}=v{i}")).collect();
        let header = others.join("; ");
        let answer = h.read(header.as_bytes()).await;
        h.assert_new_session(case, header.as_bytes(), &answer).await;

        let mut with_session = others[..499].to_vec();
        with_session.insert(250, h.kept.clone());
        let answer = h.read(with_session.join("; ").as_bytes()).await;
        h.assert_session(case, &answer, &json!({"keep": "me"}));
        h.assert_still_serving(case).await;
    }

    /// The session's name 20 times with different values: only the first
    /// few are tried, so a valid one first loads, a valid one last does not.
    pub(super) async fn the_same_name_twenty_times(h: &Harness) {
        let case = "the same cookie name 20 times";
        let bogus: Vec<String> = (0..20).map(|i| format!("session=bogus{i:02}")).collect();
        let header = bogus.join("; ");
        let answer = h.read(header.as_bytes()).await;
        h.assert_new_session(case, header.as_bytes(), &answer).await;

        let mut valid_first = bogus[..19].to_vec();
        valid_first.insert(0, h.kept.clone());
        let answer = h.read(valid_first.join("; ").as_bytes()).await;
        h.assert_session(case, &answer, &json!({"keep": "me"}));

        let mut valid_last = bogus[..19].to_vec();
        valid_last.push(h.kept.clone());
        let header = valid_last.join("; ");
        let answer = h.read(header.as_bytes()).await;
        // Past the bound on candidates: not even looked at.
        assert_eq!(answer.status, 200, "{h:?} {case}: {answer:?}");
        assert_eq!(
            answer.json(),
            json!({"new": true, "data": {}}),
            "{h:?} {case}"
        );
        h.assert_still_serving(case).await;
    }

    /// Bytes that are not UTF-8, in the session's value and around it.
    pub(super) async fn non_utf8_bytes(h: &Harness) {
        let case = "non-UTF-8 bytes";
        let header: &[u8] = b"session=\xff\xfe\x80abc; other=\xc3\x28";
        let answer = h.read(header).await;
        h.assert_new_session(case, header, &answer).await;

        let mut around = b"x=\xff\xff; ".to_vec();
        around.extend_from_slice(h.kept.as_bytes());
        around.extend_from_slice(b"; y=\x80\x81");
        let answer = h.read(&around).await;
        h.assert_session(case, &answer, &json!({"keep": "me"}));
        h.assert_still_serving(case).await;
    }

    /// `session=` with nothing after it.
    pub(super) async fn an_empty_value(h: &Harness) {
        let case = "an empty value";
        for header in [&b"session="[..], b"session=;", b"session=\"\""] {
            let answer = h.read(header).await;
            h.assert_new_session(case, header, &answer).await;
        }
        h.assert_still_serving(case).await;
    }

    /// A quoted value: quotes around a valid value are taken off (RFC 6265
    /// allows them); quotes around anything else give a new session.
    pub(super) async fn a_quoted_value(h: &Harness) {
        let case = "a quoted value";
        let value = h.kept.trim_start_matches("session=");
        let quoted = format!("session=\"{value}\"");
        let answer = h.read(quoted.as_bytes()).await;
        h.assert_session(case, &answer, &json!({"keep": "me"}));
        for bogus in [
            "session=\"bogus\"",
            "session=\"",
            "session=\"\"\"",
            &format!("session=\"{value}"),
        ] {
            let answer = h.read(bogus.as_bytes()).await;
            h.assert_new_session(case, bogus.as_bytes(), &answer).await;
        }
        h.assert_still_serving(case).await;
    }

    /// Characters outside base64url, and base64 of the wrong length.
    pub(super) async fn invalid_base64(h: &Harness) {
        let case = "invalid base64";
        let value = h.kept.trim_start_matches("session=");
        let mut starred = value.to_owned();
        starred.replace_range(value.len() / 2..value.len() / 2 + 1, "*");
        for bogus in [
            "session=!!!!".to_owned(),
            "session=YWJj=".to_owned(),
            "session=a".to_owned(),
            "session=+/+/+/+/".to_owned(),
            format!("session={starred}"),
        ] {
            let answer = h.read(bogus.as_bytes()).await;
            h.assert_new_session(case, bogus.as_bytes(), &answer).await;
        }
        h.assert_still_serving(case).await;
    }

    /// A valid cookie with garbage stuck to its value is another value, and
    /// no session; garbage after it, as other pairs, leaves it valid.
    pub(super) async fn a_valid_cookie_with_trailing_garbage(h: &Harness) {
        let case = "a valid cookie with trailing garbage";
        for suffix in ["x", "AAAA", "%00", "\\", " trailing words", "=="] {
            let header = format!("{}{suffix}", h.kept);
            let answer = h.read(header.as_bytes()).await;
            if h.kind == StoreKind::Simple && answer.json()["new"] == false {
                // Unauthenticated: a suffix that still decodes to the same
                // record (base64 of trailing JSON whitespace, say) is the
                // same session, which is right for this store.
                h.assert_session(case, &answer, &json!({"keep": "me"}));
            } else {
                h.assert_new_session(case, header.as_bytes(), &answer).await;
            }
        }
        for suffix in [";", "; garbage", ";;;===;; \t", "; session=bogus"] {
            let header = format!("{}{suffix}", h.kept);
            let answer = h.read(header.as_bytes()).await;
            h.assert_session(case, &answer, &json!({"keep": "me"}));
        }
        h.assert_still_serving(case).await;
    }

    /// A session id or cookie value in the URL is ignored: sessions travel
    /// only in the cookie, so a link cannot plant or leak one.
    pub(super) async fn an_id_in_the_url_is_ignored(h: &Harness) {
        let case = "an id in the URL";
        let value = h.kept.trim_start_matches("session=");
        for query in [format!("session={value}"), format!("id={value}")] {
            let answer = exchange(
                h.addr(),
                "GET",
                &format!("/api/session?{query}"),
                None,
                None,
            )
            .await;
            assert_eq!(answer.status, 200, "{h:?} {case}: {answer:?}");
            assert_eq!(
                answer.json(),
                json!({"new": true, "data": {}}),
                "{h:?} {case}"
            );
            let path = format!("/api/session/w?{query}");
            let written = exchange(h.addr(), "PUT", &path, None, Some("1")).await;
            assert_eq!(written.status, 200, "{h:?} {case}: {written:?}");
            assert_eq!(
                written.json(),
                json!({"new": true, "data": {"w": 1}}),
                "{h:?} {case}"
            );
            assert_ne!(written.session_pair(), Some(h.kept.clone()), "{h:?} {case}");
        }
        // A path parameter is no route of the demo: the framework's 404.
        let path = format!("/api/session;session={value}");
        let answer = exchange(h.addr(), "GET", &path, None, None).await;
        assert_eq!(answer.status, 404, "{h:?} {case}: {answer:?}");
        h.assert_still_serving(case).await;
    }

    /// A cookie kept from before a logout. A server-side store forgot the
    /// session: a new one. A cookie store cannot revoke a cookie: the copy
    /// still opens until its deadline (the documented limit, SECURITY.md).
    pub(super) async fn an_old_cookie_after_logout(h: &Harness) {
        let case = "an old cookie after logout";
        let login = exchange(
            h.addr(),
            "POST",
            "/api/login",
            None,
            Some(r#"{"user":"ada"}"#),
        )
        .await;
        assert_eq!(login.status, 200, "{h:?} {case}: {login:?}");
        let logged_in = login.session_pair().expect("a session cookie");
        let logout = exchange(
            h.addr(),
            "POST",
            "/api/logout",
            Some(logged_in.as_bytes()),
            None,
        )
        .await;
        assert_eq!(logout.status, 200, "{h:?} {case}: {logout:?}");
        assert!(
            logout
                .set_cookies
                .iter()
                .any(|c| c.starts_with("session=;") && c.contains("Max-Age=0")),
            "{h:?} {case}: no removal cookie: {logout:?}"
        );
        let replayed = h.read(logged_in.as_bytes()).await;
        if h.kind.server_side() {
            h.assert_new_session(case, logged_in.as_bytes(), &replayed)
                .await;
        } else {
            h.assert_session(case, &replayed, &json!({"user": "ada"}));
        }
        h.assert_still_serving(case).await;
    }

    /// A cookie issued by another deployment: another key (encrypted),
    /// another memory store or Redis server. Only the unauthenticated
    /// simple store takes it, as it takes any well-formed record.
    pub(super) async fn a_cookie_from_another_deployment(h: &Harness) {
        let case = "a cookie from another deployment";
        let other = Harness::start(h.framework, h.kind).await;
        let foreign = other.new_session("from", json!("elsewhere")).await;
        let answer = h.read(foreign.as_bytes()).await;
        if h.kind == StoreKind::Simple {
            h.assert_session(case, &answer, &json!({"from": "elsewhere"}));
        } else {
            h.assert_new_session(case, foreign.as_bytes(), &answer)
                .await;
        }
        // And this deployment's cookie means nothing over there.
        let back = other.read(h.kept.as_bytes()).await;
        if h.kind == StoreKind::Simple {
            other.assert_session(case, &back, &json!({"keep": "me"}));
        } else {
            other
                .assert_new_session(case, h.kept.as_bytes(), &back)
                .await;
        }
        other.stop().await;
        h.assert_still_serving(case).await;
    }
}

/// Runs every case for each framework and store: `matrix!(store_module =>
/// StoreKind, ...)`.
macro_rules! matrix {
    ($($store:ident => $kind:expr,)*) => {$(
        mod $store {
            use super::*;
            matrix!(@framework $kind; axum Framework::Axum, actix Framework::Actix);
        }
    )*};
    (@framework $kind:expr; $($framework:ident $value:expr),*) => {$(
        mod $framework {
            use super::*;
            matrix!(@cases $kind, $value;
                a_64_kib_cookie_header,
                five_hundred_cookies,
                the_same_name_twenty_times,
                non_utf8_bytes,
                an_empty_value,
                a_quoted_value,
                invalid_base64,
                a_valid_cookie_with_trailing_garbage,
                an_id_in_the_url_is_ignored,
                an_old_cookie_after_logout,
                a_cookie_from_another_deployment
            );
        }
    )*};
    (@cases $kind:expr, $framework:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let harness = Harness::start($framework, $kind).await;
            cases::$case(&harness).await;
            harness.stop().await;
        }
    )*};
}

matrix! {
    memory => StoreKind::Memory,
    simple_cookie => StoreKind::Simple,
    encrypted_cookie => StoreKind::Encrypted,
    redis => StoreKind::Redis,
    postgres => StoreKind::Postgres,
    sqlite => StoreKind::Sqlite,
}
