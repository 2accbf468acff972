//! "After a logout is answered, no request can bring the session or its data
//! back", over real HTTP: the demo app on a real socket, on both frameworks,
//! on every server-side store (memory, Redis's hash layout, Redis's aiohttp
//! layout, Postgres, SQLite), with requests that race a logout by holding their body back
//! until the logout has been answered.
//!
//! A held request is written by hand on a TCP connection: its head goes out
//! at once, so the handler's session extractor loads the session, and its
//! body only when the test says, after the logout. The store is wrapped in
//! a [`FaultyStore`] (never told to fail) only to count loads, so that the
//! test knows the held request has loaded its session before it logs out.
//!
//! The cousins of that race are here too: a rolling refresh saved after a
//! logout, the absolute timeout across regenerations, and a session's own
//! expiry against the configured absolute timeout. So is a revocation,
//! which keeps a logout's promise: two devices of one user log in, one logs
//! the other out, and the other's next request, even one already in flight,
//! is a new, empty session (memory, and Redis on one server and a cluster).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use session_conformance::{FaultyStore, SetCookie};
use session_core::{
    Clock, CookieLifetime, Expiry, ManualClock, MemoryStore, Rolling, SessionConfig,
    SessionManager, SessionStore,
};
use session_examples::demo;
use session_examples::server::{self, Framework, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const COOKIE: &str = "session";

/// A server-side store under test, with whatever must outlive it (its
/// Redis processes).
struct Backend {
    store: Arc<dyn SessionStore>,
    _servers: Option<Box<dyn Any + Send>>,
}

fn memory() -> Backend {
    Backend {
        store: Arc::new(MemoryStore::new()),
        _servers: None,
    }
}

async fn redis(layout: session_redis::RedisLayout) -> Backend {
    let redis = session_testing::RedisServer::start();
    let store = session_redis::RedisStore::builder()
        .layout(layout)
        .connect(&redis.url())
        .await
        .expect("connect to the test redis-server");
    Backend {
        store: Arc::new(store),
        _servers: Some(Box::new(redis)),
    }
}

async fn redis_cluster() -> Backend {
    let cluster = session_testing::RedisCluster::start();
    let store = session_redis::RedisStore::from_url(&cluster.url())
        .await
        .expect("connect to the test cluster");
    Backend {
        store: Arc::new(store),
        _servers: Some(Box::new(cluster)),
    }
}

async fn postgres() -> Backend {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let postgres = session_testing::PostgresServer::shared();
    let table = format!(
        "logout_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let store = session_sqlx::PostgresStore::connect(&postgres.url())
        .await
        .expect("a Postgres URL")
        .with_table_name(&table)
        .expect("a valid table name");
    store.migrate().await.expect("migrate");
    Backend {
        store: Arc::new(store),
        _servers: Some(Box::new(postgres)),
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = session_sqlx::SqliteStore::connect(&url)
        .await
        .expect("open the test database");
    store.migrate().await.expect("migrate");
    Backend {
        store: Arc::new(store),
        _servers: Some(Box::new(dir)),
    }
}

async fn redis_hash() -> Backend {
    redis(session_redis::RedisLayout::Hash).await
}

/// The hash layout with the client cache: loads answered from memory while
/// Redis says the session did not change.
async fn redis_hash_cached() -> Backend {
    let redis = session_testing::RedisServer::start();
    Backend {
        store: cached_store_on(&redis).await,
        _servers: Some(Box::new(redis)),
    }
}

/// A store with the client cache on `redis`, which the caller keeps.
async fn cached_store_on(redis: &session_testing::RedisServer) -> Arc<dyn SessionStore> {
    let store = session_redis::RedisStore::builder()
        .client_cache(1_000)
        .connect(&redis.url())
        .await
        .expect("connect to the test redis-server");
    Arc::new(store)
}

async fn redis_aiohttp() -> Backend {
    redis(session_redis::RedisLayout::Aiohttp {
        max_age: Some(Duration::from_secs(3600)),
    })
    .await
}

/// The demo app plus two routes the races need, served on `framework`:
///
/// * `POST /hold`: loads the session, then reads the body, and answers the
///   session's data without writing to it (a read, which a rolling refresh
///   may save);
/// * `POST /remember-me`: gives the session a long expiry of its own.
async fn serve(framework: Framework, manager: SessionManager) -> Running {
    let addr = "127.0.0.1:0".parse().expect("an address");
    match framework {
        Framework::Axum => {
            use axum::body::Bytes;
            use session_axum::Session;
            async fn hold(session: Session, _body: Bytes) -> String {
                Value::Object(session.data()).to_string()
            }
            async fn remember_me(session: Session) -> &'static str {
                session.set_expiry(Some(remember_me_expiry()));
                "remembered"
            }
            let router = demo::axum::routes()
                .route("/hold", axum::routing::post(hold))
                .route("/remember-me", axum::routing::post(remember_me))
                .layer(demo::axum::layer(manager));
            server::serve_axum(router, addr).await.expect("serve axum")
        }
        Framework::Actix => {
            use actix_web::{HttpResponse, web};
            use session_actix::Session;
            async fn hold(session: Session, _body: web::Bytes) -> HttpResponse {
                HttpResponse::Ok().json(Value::Object(session.data()))
            }
            async fn remember_me(session: Session) -> HttpResponse {
                session.set_expiry(Some(remember_me_expiry()));
                HttpResponse::Ok().body("remembered")
            }
            let configure = |config: &mut web::ServiceConfig| {
                demo::actix::configure(config);
                config.route("/hold", web::post().to(hold));
                config.route("/remember-me", web::post().to(remember_me));
            };
            server::serve_actix(demo::actix::middleware(manager), configure, addr)
                .expect("serve actix-web")
        }
    }
}

fn remember_me_expiry() -> Expiry {
    Expiry::NEVER
        .with_idle_timeout(Some(Duration::from_secs(1000)))
        .with_absolute_timeout(Some(Duration::from_secs(10_000)))
}

/// A response read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    set_cookies: Vec<String>,
    body: String,
}

impl Response {
    /// The session cookie's value, if the response sets one that is not a
    /// removal.
    fn session_cookie(&self) -> Option<String> {
        SetCookie::parse_all(self.set_cookies.iter().map(String::as_str))
            .into_iter()
            .find(|set| set.name() == COOKIE && !set.is_removal())
            .map(|set| set.value().to_owned())
    }

    fn removes_the_cookie(&self) -> bool {
        self.set_cookies.len() == 1 && SetCookie::parse(&self.set_cookies[0]).is_removal()
    }

    /// What a request whose session ended while it ran answers: no
    /// cookie, neither a session's nor a removal (which would wipe a
    /// newer cookie the browser got meanwhile).
    fn sets_no_cookie(&self) -> bool {
        self.set_cookies.is_empty()
    }
}

/// One HTTP/1.1 request on its own connection, whose body is sent only by
/// [`Held::release`].
struct Held {
    stream: TcpStream,
    body: Vec<u8>,
}

impl Held {
    async fn send(
        server: &Running,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: &[u8],
    ) -> Self {
        let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
        let cookie = cookie.map_or(String::new(), |value| {
            format!("Cookie: {COOKIE}={value}\r\n")
        });
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{cookie}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.addr(),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        Held {
            stream,
            body: body.to_vec(),
        }
    }

    /// Sends the body and reads the whole response.
    async fn release(mut self) -> Response {
        self.stream.write_all(&self.body).await.expect("write body");
        let mut raw = Vec::new();
        self.stream
            .read_to_end(&mut raw)
            .await
            .expect("read response");
        let raw = String::from_utf8_lossy(&raw);
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {raw:?}"));
        let set_cookies = lines
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, value)| value.trim().to_owned())
            .collect();
        Response {
            status,
            set_cookies,
            body: body.to_owned(),
        }
    }
}

/// A request sent whole. Its status is the caller's to check.
async fn request(
    server: &Running,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Value,
) -> Response {
    let body = body.to_string();
    Held::send(server, method, path, cookie, body.as_bytes())
        .await
        .release()
        .await
}

/// The session a request with `cookie` sees: `{"new": .., "data": ..}`.
async fn session_seen_with(server: &Running, cookie: &str) -> Value {
    let response = request(server, "GET", "/api/session", Some(cookie), json!({})).await;
    assert_eq!(response.status, 200, "{response:?}");
    json_of(&response)
}

/// A response's JSON body.
fn json_of(response: &Response) -> Value {
    let body = response.body.trim();
    // A chunked body: the JSON is the line between the chunk sizes.
    let json = body
        .lines()
        .find(|line| line.starts_with('{'))
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

/// One server on `framework` with `config`, over the backend's store
/// wrapped to count loads.
struct Case {
    server: Running,
    loads: FaultyStore,
}

impl Case {
    async fn start(framework: Framework, backend: &Backend, config: SessionConfig) -> Self {
        let loads = FaultyStore::around(backend.store.clone());
        let manager = SessionManager::new(loads.clone(), config);
        Case {
            server: serve(framework, manager).await,
            loads,
        }
    }

    /// A device logging in as `user`: its cookie.
    async fn log_in(&self, user: &str) -> String {
        self.log_in_with(None, user).await
    }

    /// A login as `user` of the session behind `cookie` (a new one without
    /// it), which regenerates it: the cookie it sets.
    async fn log_in_with(&self, cookie: Option<&str>, user: &str) -> String {
        let login = request(
            &self.server,
            "POST",
            "/api/login",
            cookie,
            json!({ "user": user }),
        )
        .await;
        login
            .session_cookie()
            .expect("a logged-in session's cookie")
    }

    /// `GET /api/user/sessions` with `cookie`: the listed sessions.
    async fn sessions(&self, cookie: &str) -> Vec<Value> {
        let listed = request(
            &self.server,
            "GET",
            "/api/user/sessions",
            Some(cookie),
            json!({}),
        )
        .await;
        let body = json_of(&listed);
        body["sessions"]
            .as_array()
            .unwrap_or_else(|| panic!("no sessions in {body}"))
            .clone()
    }

    /// `POST /api/user/sessions/revoke-others` with `cookie`: the answer.
    async fn revoke_others(&self, cookie: &str) -> Value {
        let revoked = request(
            &self.server,
            "POST",
            "/api/user/sessions/revoke-others",
            Some(cookie),
            json!({}),
        )
        .await;
        json_of(&revoked)
    }

    /// A session holding `{"secret": "s3cr3t"}`: its cookie.
    async fn session_with_a_secret(&self) -> String {
        let response = request(
            &self.server,
            "PUT",
            "/api/session/secret",
            None,
            json!("s3cr3t"),
        )
        .await;
        response.session_cookie().expect("a new session's cookie")
    }

    /// Sends the head of a request with `cookie`, and waits until its
    /// handler has loaded the session.
    async fn hold(&self, method: &str, path: &str, cookie: &str, body: Value) -> Held {
        let before = self.loads.loads();
        let held = Held::send(
            &self.server,
            method,
            path,
            Some(cookie),
            body.to_string().as_bytes(),
        )
        .await;
        for _ in 0..500 {
            if self.loads.loads() > before {
                return held;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the held request never loaded its session");
    }

    /// [`hold`](Self::hold)s a write of the key `late`.
    async fn hold_a_late_write(&self, cookie: &str) -> Held {
        self.hold("PUT", "/api/session/late", cookie, json!("write"))
            .await
    }

    /// [`hold`](Self::hold)s a login as `user`.
    async fn hold_a_login(&self, cookie: &str, user: &str) -> Held {
        self.hold("POST", "/api/login", cookie, json!({ "user": user }))
            .await
    }

    async fn logout(&self, cookie: &str) {
        let logout = request(&self.server, "POST", "/api/logout", Some(cookie), json!({})).await;
        assert!(logout.removes_the_cookie(), "{logout:?}");
    }

    /// Whether `cookie` now loads an empty, new session.
    async fn assert_logged_out(&self, cookie: &str, what: &str) {
        let seen = session_seen_with(&self.server, cookie).await;
        assert_eq!(seen, json!({"new": true, "data": {}}), "{what}");
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

mod cases {
    use super::*;

    /// The race of the issue: a login held back during a logout.
    pub(super) async fn a_login_held_back_during_a_logout_brings_nothing_back(
        framework: Framework,
        backend: Backend,
    ) {
        let case = Case::start(framework, &backend, SessionConfig::default()).await;
        let cookie = case.session_with_a_secret().await;
        let login = case.hold_a_login(&cookie, "mallory").await;
        case.logout(&cookie).await;
        let login = login.release().await;
        assert!(
            login.sets_no_cookie(),
            "the late login gets no session, and no cookie: {login:?}"
        );
        case.assert_logged_out(&cookie, "the logged-out cookie stays out")
            .await;
        case.stop().await;
    }

    /// A write held back during a logout.
    pub(super) async fn a_write_held_back_during_a_logout_brings_nothing_back(
        framework: Framework,
        backend: Backend,
    ) {
        let case = Case::start(framework, &backend, SessionConfig::default()).await;
        let cookie = case.session_with_a_secret().await;
        let write = case.hold_a_late_write(&cookie).await;
        case.logout(&cookie).await;
        let write = write.release().await;
        assert!(write.sets_no_cookie(), "{write:?}");
        case.assert_logged_out(&cookie, "the late write did not bring it back")
            .await;
        case.stop().await;
    }

    /// A write held back during a login (which moves the session to a new
    /// id), and a second login held back too: neither's response wipes the
    /// login's cookie, and the user stays logged in, without the late
    /// write.
    pub(super) async fn requests_held_back_during_a_login_keep_the_login_cookie(
        framework: Framework,
        backend: Backend,
    ) {
        let case = Case::start(framework, &backend, SessionConfig::default()).await;
        let cookie = case.session_with_a_secret().await;
        let write = case.hold_a_late_write(&cookie).await;
        let second_login = case.hold_a_login(&cookie, "mallory").await;
        let logged_in = case.log_in_with(Some(&cookie), "ada").await;
        assert_ne!(logged_in, cookie, "the login moved the session");
        let write = write.release().await;
        assert!(write.sets_no_cookie(), "the late write: {write:?}");
        let second_login = second_login.release().await;
        assert!(
            second_login.sets_no_cookie(),
            "the second login: {second_login:?}"
        );
        let seen = session_seen_with(&case.server, &logged_in).await;
        assert_eq!(
            seen,
            json!({"new": false, "data": {"secret": "s3cr3t", "user": "ada"}}),
            "still logged in, without the late write"
        );
        case.assert_logged_out(&cookie, "the pre-login cookie loads nothing")
            .await;
        case.stop().await;
    }

    /// A read whose rolling refresh is saved after a logout: a persistent
    /// cookie is not sent again with a fresh `Max-Age`.
    pub(super) async fn a_refresh_held_back_during_a_logout_does_not_resend_the_cookie(
        framework: Framework,
        backend: Backend,
    ) {
        let clock = ManualClock::starting_now();
        let config = SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(3600)))
            .with_rolling(Rolling::Throttled(Duration::from_secs(60)))
            .with_cookie_lifetime(CookieLifetime::Persistent)
            .with_clock(Clock::from(clock.clone()));
        let case = Case::start(framework, &backend, config).await;
        let cookie = case.session_with_a_secret().await;
        clock.advance(Duration::from_secs(120)); // a refresh is due
        let read = case.hold("POST", "/hold", &cookie, json!({})).await;
        case.logout(&cookie).await;
        let read = read.release().await;
        assert_eq!(read.status, 200, "{read:?}");
        assert!(
            read.sets_no_cookie(),
            "the refresh after the logout sets no cookie: {read:?}"
        );
        case.assert_logged_out(&cookie, "the refresh did not bring it back")
            .await;
        case.stop().await;
    }

    /// Logging in again and again (each a regenerate) never restarts the
    /// absolute timeout.
    pub(super) async fn regenerating_never_restarts_the_absolute_timeout(
        framework: Framework,
        backend: Backend,
    ) {
        let clock = ManualClock::starting_now();
        let config = SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(60)))
            .with_absolute_timeout(Some(Duration::from_secs(150)))
            .with_rolling(Rolling::Disabled)
            .with_clock(Clock::from(clock.clone()));
        let case = Case::start(framework, &backend, config).await;
        let mut cookie = case.session_with_a_secret().await;
        for _ in 0..3 {
            clock.advance(Duration::from_secs(45));
            cookie = case.log_in_with(Some(&cookie), "ada").await;
        }
        let alive = session_seen_with(&case.server, &cookie).await;
        assert_eq!(alive["new"], json!(false), "135 s: alive");
        clock.advance(Duration::from_secs(20)); // 155 s after the first creation
        case.assert_logged_out(&cookie, "past the absolute timeout")
            .await;
        case.stop().await;
    }

    /// A session's own expiry can shorten the configured absolute timeout,
    /// never lengthen it.
    pub(super) async fn a_sessions_own_expiry_never_outlives_the_absolute_timeout(
        framework: Framework,
        backend: Backend,
    ) {
        let clock = ManualClock::starting_now();
        let config = SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(60)))
            .with_absolute_timeout(Some(Duration::from_secs(100)))
            .with_rolling(Rolling::Disabled)
            .with_clock(Clock::from(clock.clone()));
        let case = Case::start(framework, &backend, config).await;
        let cookie = case.session_with_a_secret().await;
        request(
            &case.server,
            "POST",
            "/remember-me",
            Some(&cookie),
            json!({}),
        )
        .await;
        clock.advance(Duration::from_secs(90)); // past the configured idle timeout
        let alive = session_seen_with(&case.server, &cookie).await;
        assert_eq!(
            alive["data"]["secret"],
            json!("s3cr3t"),
            "its own idle timeout"
        );
        clock.advance(Duration::from_secs(11));
        case.assert_logged_out(&cookie, "past the configured absolute timeout")
            .await;
        case.stop().await;
    }
}

mod revocation {
    use super::*;

    /// Two devices of one user; the laptop logs the phone out while the
    /// phone has a write in flight.
    pub(crate) async fn a_revoked_device_is_logged_out_even_mid_request(
        framework: Framework,
        backend: Backend,
    ) {
        let case = Case::start(framework, &backend, SessionConfig::default()).await;
        let laptop = case.log_in("ada").await;
        let phone = case.log_in("ada").await;
        let listed = case.sessions(&laptop).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        let current: Vec<_> = listed.iter().filter(|s| s["current"] == true).collect();
        assert_eq!(current.len(), 1, "{listed:?}");
        for session in &listed {
            let handle = session["handle"].as_str().expect("a handle");
            assert!(!laptop.contains(handle) && !phone.contains(handle));
        }

        let in_flight = case.hold_a_late_write(&phone).await;
        assert_eq!(case.revoke_others(&laptop).await, json!({ "revoked": 1 }));
        let late = in_flight.release().await;
        assert!(
            late.sets_no_cookie(),
            "the phone's write in flight sets no cookie: {late:?}"
        );
        case.assert_logged_out(&phone, "the phone's next request is a new, empty session")
            .await;
        let listed = case.sessions(&laptop).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["current"], json!(true));
        case.stop().await;
    }

    /// One session revoked by its handle; a handle that is not one of the
    /// user's is a 404, and a visitor who is not logged in gets a 401.
    pub(crate) async fn a_session_is_revoked_by_its_handle(framework: Framework, backend: Backend) {
        let case = Case::start(framework, &backend, SessionConfig::default()).await;
        let laptop = case.log_in("ada").await;
        let phone = case.log_in("ada").await;
        let other_user = case.log_in("bob").await;
        let phone_handle = case
            .sessions(&laptop)
            .await
            .iter()
            .find(|s| s["current"] == false)
            .and_then(|s| s["handle"].as_str().map(str::to_owned))
            .expect("the phone's handle");
        let path = format!("/api/user/sessions/{phone_handle}");
        let from_bob = request(&case.server, "DELETE", &path, Some(&other_user), json!({})).await;
        assert_eq!(from_bob.status, 404, "bob cannot revoke ada's session");
        let revoked = request(&case.server, "DELETE", &path, Some(&laptop), json!({})).await;
        assert_eq!(revoked.status, 200, "{revoked:?}");
        case.assert_logged_out(&phone, "revoked by handle").await;
        let again = request(&case.server, "DELETE", &path, Some(&laptop), json!({})).await;
        assert_eq!(again.status, 404);
        let anonymous = request(&case.server, "GET", "/api/user/sessions", None, json!({})).await;
        assert_eq!(anonymous.status, 401);
        assert_eq!(case.sessions(&laptop).await.len(), 1);
        case.stop().await;
    }
}

/// Runs each group's cases on both frameworks for each backend of the
/// group: `[module => backend, ...] [cases]`.
macro_rules! races {
    () => {};
    ([$($backend:ident => $make:expr),+ $(,)?] $cases:tt $($rest:tt)*) => {
        $(
            mod $backend {
                use super::*;
                races!(@framework $make; $cases; axum Framework::Axum, actix Framework::Actix);
            }
        )+
        races!($($rest)*);
    };
    (@framework $make:expr; $cases:tt; $($framework:ident $value:expr),*) => {$(
        mod $framework {
            use super::*;
            races!(@cases $make, $value; $cases);
        }
    )*};
    (@cases $make:expr, $framework:expr; [$($module:ident::$case:ident),* $(,)?]) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            $module::$case($framework, $make).await;
        }
    )*};
}

races! {
    [
        memory => memory(),
        redis_hash => redis_hash().await,
        redis_hash_cached => redis_hash_cached().await,
        postgres => postgres().await,
        sqlite => sqlite().await,
    ] [
        cases::a_login_held_back_during_a_logout_brings_nothing_back,
        cases::a_write_held_back_during_a_logout_brings_nothing_back,
        cases::a_refresh_held_back_during_a_logout_does_not_resend_the_cookie,
        cases::requests_held_back_during_a_login_keep_the_login_cookie,
        cases::regenerating_never_restarts_the_absolute_timeout,
        cases::a_sessions_own_expiry_never_outlives_the_absolute_timeout,
        revocation::a_revoked_device_is_logged_out_even_mid_request,
        revocation::a_session_is_revoked_by_its_handle,
    ]
    // A cluster regenerates with a create and a checked delete, and keeps
    // each user's index in a slot of its own.
    [redis_cluster => redis_cluster().await] [
        cases::a_login_held_back_during_a_logout_brings_nothing_back,
        cases::a_write_held_back_during_a_logout_brings_nothing_back,
        cases::requests_held_back_during_a_login_keep_the_login_cookie,
        revocation::a_revoked_device_is_logged_out_even_mid_request,
        revocation::a_session_is_revoked_by_its_handle,
    ]
    // aiohttp_session's format keeps `created` as the last write, no
    // per-session expiry and no user index, so the timeout and revocation
    // cases cannot apply to it (see session_redis::aiohttp); the races do.
    [redis_aiohttp => redis_aiohttp().await] [
        cases::a_login_held_back_during_a_logout_brings_nothing_back,
        cases::a_write_held_back_during_a_logout_brings_nothing_back,
        cases::a_refresh_held_back_during_a_logout_does_not_resend_the_cookie,
        cases::requests_held_back_during_a_login_keep_the_login_cookie,
    ]
}

/// Two application servers on one Redis, each with the client cache, as
/// when a fleet shares it: what one answers, the other's next request
/// sees, though it had the session in memory.
mod two_servers {
    use super::*;

    async fn cached_store(redis: &session_testing::RedisServer) -> Backend {
        Backend {
            store: cached_store_on(redis).await,
            _servers: None,
        }
    }

    async fn a_logout_on_one_server_is_final_on_the_other(framework: Framework) {
        let redis = session_testing::RedisServer::start();
        let config = SessionConfig::default();
        let a = Case::start(framework, &cached_store(&redis).await, config.clone()).await;
        let b = Case::start(framework, &cached_store(&redis).await, config).await;
        for round in 0..40 {
            let cookie = a.session_with_a_secret().await;
            // Read twice on A: the second load is answered from A's cache.
            for _ in 0..2 {
                let seen = session_seen_with(&a.server, &cookie).await;
                assert_eq!(seen["data"]["secret"], json!("s3cr3t"), "round {round}");
            }
            let loads_before = a.loads.loads();
            let write = request(
                &b.server,
                "PUT",
                "/api/session/from-b",
                Some(&cookie),
                json!("written on B"),
            )
            .await;
            assert_eq!(write.status, 200, "{write:?}");
            let seen = session_seen_with(&a.server, &cookie).await;
            assert_eq!(
                seen["data"]["from-b"],
                json!("written on B"),
                "round {round}: A sees B's write at once"
            );
            assert!(a.loads.loads() > loads_before);
            b.logout(&cookie).await;
            a.assert_logged_out(&cookie, &format!("round {round}: B's logout is final on A"))
                .await;
        }
        // A revocation on B reaches A's cache too.
        let laptop = b.log_in("ada").await;
        let phone = a.log_in("ada").await;
        assert_eq!(a.sessions(&phone).await.len(), 2);
        assert_eq!(b.revoke_others(&laptop).await, json!({ "revoked": 1 }));
        a.assert_logged_out(&phone, "revoked on B, logged out on A")
            .await;
        a.stop().await;
        b.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn axum() {
        a_logout_on_one_server_is_final_on_the_other(Framework::Axum).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn actix() {
        a_logout_on_one_server_is_final_on_the_other(Framework::Actix).await;
    }
}
