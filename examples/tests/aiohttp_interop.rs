//! Sessions shared with a real Python aiohttp service, for every storage
//! aiohttp_session ships.
//!
//! The Python app of `examples/aiohttp/app.py` (aiohttp-session as PyPI
//! serves it) and our demo app, served by axum or actix-web. One HTTP client
//! with one cookie jar drives both, as a browser would when both services
//! sit behind one site: the session cookie either side sets is sent to both.
//!
//! * `RedisStorage` against the Redis store's aiohttp layout, on one
//!   redis-server;
//! * `EncryptedCookieStorage` (Fernet), `NaClCookieStorage` and
//!   `SimpleCookieStorage` against the aiohttp cookie stores, under one
//!   secret (Python's `EncryptedCookieStorage` gets the 32 bytes on axum and
//!   the Fernet key string on actix-web: it takes both).
//!
//! The Python interpreter comes from `SESSION_TEST_PYTHON`, which `cargo
//! xtask test` sets to a virtual environment it creates with aiohttp,
//! aiohttp-session (with its `secure` and `pynacl` extras) and redis;
//! without it, `target/python-venv` is used if it exists, and otherwise the
//! test fails saying to run `cargo xtask test`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use session_conformance::SetCookie;
use session_core::{Record, SessionManager, SessionStore};
use session_encrypted_cookie::aiohttp::{FernetCookieStore, NaclCookieStore, fernet_key};
use session_encrypted_cookie::{Key, KeyRing};
use session_examples::server::{self, Framework, Running};
use session_redis::{RedisLayout, RedisStore, aiohttp};
use session_simple_cookie::aiohttp as aiohttp_simple;
use session_testing::{RedisServer, Reply};

/// aiohttp_session's `max_age` on both sides.
const MAX_AGE_SECS: u64 = 3600;

/// How long the Python app may take to start serving.
const PYTHON_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The interpreter of the virtual environment `cargo xtask test` creates.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("SESSION_TEST_PYTHON") {
        return path.into();
    }
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/python-venv/bin/python");
    assert!(
        fallback.is_file(),
        "the aiohttp interop test needs Python with aiohttp, aiohttp-session and redis: \
         run `cargo xtask test`, which creates target/python-venv and sets SESSION_TEST_PYTHON"
    );
    fallback
}

/// The Python app, killed when dropped.
struct PythonApp {
    child: Child,
    port: u16,
}

impl PythonApp {
    /// Starts `examples/aiohttp/app.py` and waits (boundedly) until it says
    /// it serves. A few attempts, as the free port it was given may have been
    /// taken in between.
    fn start(args: &[String]) -> PythonApp {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start(args) {
                Ok(app) => return app,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("the Python aiohttp app did not start: {failures:#?}");
    }

    fn try_start(args: &[String]) -> Result<PythonApp, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("aiohttp/app.py");
        let mut child = Command::new(python())
            .arg(&app)
            .args(["--port", &port.to_string()])
            .args(["--max-age", &MAX_AGE_SECS.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = mpsc::channel();
        // Keeps reading (and so draining) stdout for the life of the app.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let app = PythonApp { child, port };
        let ready = format!("listening on {port}");
        let deadline = Instant::now() + PYTHON_START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(Ok(line)) if line.trim() == ready => return Ok(app),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("reading its output: {e}")),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!("not serving after {PYTHON_START_TIMEOUT:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("it exited before serving (see its stderr above)".to_owned());
                }
            }
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PythonApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, with the body as JSON.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: Value,
}

impl Answer {
    /// The session data of a `/api/session` answer.
    fn data(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        &self.body["data"]
    }

    fn is_new(&self) -> bool {
        self.body["new"]
            .as_bool()
            .unwrap_or_else(|| panic!("no `new` in {self:?}"))
    }

    /// Whether the answer removes the session cookie.
    fn removes_the_cookie(&self) -> bool {
        self.set_cookies.iter().any(|c| removes(c))
    }
}

/// Whether a `Set-Cookie` value removes its cookie: `Max-Age=0` (both
/// sides send it), or an empty value (`""` from Python).
fn removes(set_cookie: &str) -> bool {
    let set_cookie = SetCookie::parse(set_cookie);
    set_cookie.value().is_empty() || set_cookie.value() == "\"\"" || set_cookie.is_removal()
}

/// A browser: one HTTP client and one cookie jar for both services. They
/// are on the same host (127.0.0.1), and cookies are scoped by host, not
/// port, so a browser would send each side's cookies to the other as well.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            jar: BTreeMap::new(),
        }
    }

    /// The session cookie's value, if the jar holds one.
    fn session(&self) -> Option<String> {
        self.jar.get(aiohttp::COOKIE_NAME).cloned()
    }

    fn cookie_header(&self) -> Option<String> {
        let pairs: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// Sends a request with the jar's cookies and keeps the cookies that
    /// come back.
    async fn send(
        &mut self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let cookie = self.cookie_header();
        let answer = self
            .send_with(base, method, path, body, cookie.as_deref())
            .await;
        for set_cookie in &answer.set_cookies {
            let parsed = SetCookie::parse(set_cookie);
            if removes(set_cookie) {
                self.jar.remove(parsed.name());
            } else {
                self.jar
                    .insert(parsed.name().to_owned(), parsed.value().to_owned());
            }
        }
        answer
    }

    /// Sends a request with `cookie` as the `Cookie` header, leaving the jar
    /// alone: a client that kept an old cookie.
    async fn send_with(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        cookie: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{base}{path}"));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().expect("ASCII Set-Cookie").to_owned())
            .collect();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text:?}"));
        Answer {
            status,
            set_cookies,
            body,
        }
    }

    async fn session_at(&mut self, base: &str) -> Answer {
        self.send(base, Method::GET, "/api/session", None).await
    }

    async fn put(&mut self, base: &str, key: &str, value: Value) -> Answer {
        let answer = self
            .send(
                base,
                Method::PUT,
                &format!("/api/session/{key}"),
                Some(value),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer
    }

    async fn login(&mut self, base: &str, user: &str) {
        let answer = self
            .send(
                base,
                Method::POST,
                "/api/login",
                Some(json!({ "user": user })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    }

    async fn logout(&mut self, base: &str) -> Answer {
        let answer = self.send(base, Method::POST, "/api/logout", None).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer
    }
}

/// Both services on one Redis.
struct Sides {
    redis: RedisServer,
    python: PythonApp,
    rust: Running,
}

impl Sides {
    async fn start(framework: Framework) -> Sides {
        let redis = RedisServer::start();
        let python = PythonApp::start(&[
            "--storage".to_owned(),
            "redis".to_owned(),
            "--redis-url".to_owned(),
            redis.url(),
        ]);
        let max_age = Some(Duration::from_secs(MAX_AGE_SECS));
        let store = RedisStore::builder()
            .layout(RedisLayout::Aiohttp { max_age })
            .connect(&redis.url())
            .await
            .expect("connect");
        // Secure off: the test talks plain http.
        let config = aiohttp::session_config(max_age).with_secure(false);
        let manager = SessionManager::new(store, config);
        let rust = server::serve_demo(framework, manager, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        Sides {
            redis,
            python,
            rust,
        }
    }

    fn py(&self) -> String {
        self.python.url()
    }

    fn rs(&self) -> String {
        self.rust.url()
    }

    fn key(id: &str) -> String {
        format!("{}_{id}", aiohttp::COOKIE_NAME)
    }

    /// The value stored for session `id`.
    fn stored(&self, id: &str) -> Option<String> {
        match self.redis.command(&["GET", &Self::key(id)]).expect("GET") {
            Reply::Nil => None,
            reply => Some(reply.text().expect("a string")),
        }
    }

    fn ttl(&self, id: &str) -> i64 {
        match self.redis.command(&["TTL", &Self::key(id)]).expect("TTL") {
            Reply::Integer(ttl) => ttl,
            other => panic!("TTL: {other:?}"),
        }
    }
}

async fn python_session_is_read_and_changed_in_rust(sides: &Sides) {
    let mut browser = Browser::new();
    browser.login(&sides.py(), "ada").await;
    let id = browser.session().expect("Python set the session cookie");

    let on_rust = browser.session_at(&sides.rs()).await;
    assert!(
        !on_rust.is_new(),
        "Rust loads Python's session: {on_rust:?}"
    );
    assert_eq!(on_rust.data(), &json!({"user": "ada"}));

    browser.put(&sides.rs(), "cart", json!([1, 2])).await;
    assert_eq!(browser.session(), Some(id.clone()), "same session, same id");
    let on_python = browser.session_at(&sides.py()).await;
    assert!(!on_python.is_new());
    assert_eq!(on_python.data(), &json!({"user": "ada", "cart": [1, 2]}));
}

async fn rust_session_is_read_and_changed_in_python(sides: &Sides) {
    let mut browser = Browser::new();
    browser.put(&sides.rs(), "theme", json!("dark")).await;
    // Our login regenerates the id, as it should; Python follows the cookie.
    browser.login(&sides.rs(), "grace").await;
    let id = browser.session().expect("Rust set the session cookie");
    assert!(sides.stored(&id).is_some());

    let on_python = browser.session_at(&sides.py()).await;
    assert!(
        !on_python.is_new(),
        "Python loads Rust's session: {on_python:?}"
    );
    assert_eq!(on_python.data(), &json!({"theme": "dark", "user": "grace"}));

    browser.put(&sides.py(), "lang", json!("fi")).await;
    assert_eq!(browser.session(), Some(id), "same session, same id");
    let on_rust = browser.session_at(&sides.rs()).await;
    assert_eq!(
        on_rust.data(),
        &json!({"theme": "dark", "user": "grace", "lang": "fi"})
    );
}

/// Nested objects, unicode, big and float numbers, booleans and null.
fn tricky_values() -> Value {
    json!({
        "big": 9_007_199_254_740_993_i64,
        "neg": -42,
        "min": i64::MIN,
        "float": 0.1,
        "whole_float": 1.0,
        "tiny": -2.5e-7,
        "huge": 1e16,
        "yes": true,
        "no": false,
        "nothing": null,
        "text": "héllo \"wörld\" \\ \n\t ✓ ключ; a, b",
        "astral": "🦀 𝄞 \u{10ffff}",
        "nested": {"a": {"b": [1, "two", 3.5, {"c": [true, null]}]}, "empty": {}, "list": []},
    })
}

/// Tricky values, written on one side and read on the other, both ways; and
/// the bytes each side stores for the same dict are the same.
async fn values_round_trip_exactly(sides: &Sides) {
    let values = tricky_values();
    let Value::Object(entries) = &values else {
        unreachable!()
    };

    // Python writes, Rust reads.
    let mut browser = Browser::new();
    for (key, value) in entries {
        browser.put(&sides.py(), key, value.clone()).await;
    }
    assert_eq!(browser.session_at(&sides.rs()).await.data(), &values);

    // Rust writes, Python reads.
    let mut browser = Browser::new();
    for (key, value) in entries {
        browser.put(&sides.rs(), key, value.clone()).await;
    }
    assert_eq!(browser.session_at(&sides.py()).await.data(), &values);

    // Byte for byte: what Rust stored, plus one more key that sorts last,
    // is what Python stores once it adds that key (Python keeps the order it
    // read, ours is sorted), and the same the other way round.
    let id = browser.session().expect("a session");
    let ours = sides.stored(&id).expect("stored");
    browser.put(&sides.py(), "zz", json!(1)).await;
    let theirs = sides.stored(&id).expect("stored");
    assert_eq!(without_created(&theirs), with_last(&ours, r#""zz": 1"#));
    browser.put(&sides.rs(), "zzz", json!([2])).await;
    let ours_again = sides.stored(&id).expect("stored");
    assert_eq!(
        without_created(&ours_again),
        with_last(&theirs, r#""zzz": [2]"#)
    );
}

/// The stored value with its `created` number blanked: the two writes
/// happen at different seconds.
fn without_created(stored: &str) -> String {
    let rest = stored
        .strip_prefix(r#"{"created": "#)
        .unwrap_or_else(|| panic!("unexpected layout: {stored}"));
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    format!(r#"{{"created": N{}"#, &rest[digits..])
}

/// `stored` (created blanked) with `entry` appended to the session object.
fn with_last(stored: &str, entry: &str) -> String {
    let stored = without_created(stored);
    let body = stored
        .strip_suffix("}}")
        .unwrap_or_else(|| panic!("unexpected layout: {stored}"));
    format!("{body}, {entry}}}}}")
}

async fn logout_in_python_logs_out_of_rust(sides: &Sides) {
    let mut browser = Browser::new();
    browser.login(&sides.rs(), "ada").await;
    let id = browser.session().expect("a session");
    let cookie = format!("{}={id}", aiohttp::COOKIE_NAME);
    assert_eq!(browser.session_at(&sides.py()).await.data()["user"], "ada");

    // A slow Rust request loads the session before the logout, writes after.
    let slow = spawn_late_write(sides, &cookie);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = browser.logout(&sides.py()).await;
    assert!(answer.removes_the_cookie(), "{answer:?}");
    assert_eq!(browser.session(), None);
    assert_eq!(
        sides.stored(&id).as_deref(),
        Some("{}"),
        "aiohttp's logout marker"
    );

    let late = slow.await.expect("slow request");
    assert_eq!(late.status, StatusCode::OK, "{late:?}");
    assert!(
        late.set_cookies.is_empty(),
        "the late write is refused, and sets no cookie: {late:?}"
    );
    assert_eq!(sides.stored(&id).as_deref(), Some("{}"), "not revived");

    // A logout from Python leaves `{}` under the key.
    assert_logged_out_everywhere(sides, &mut browser, &cookie, &id, &sides.rs(), Some("{}")).await;
}

async fn logout_in_rust_logs_out_of_python(sides: &Sides) {
    let mut browser = Browser::new();
    browser.login(&sides.py(), "ada").await;
    let id = browser.session().expect("a session");
    let cookie = format!("{}={id}", aiohttp::COOKIE_NAME);
    assert_eq!(browser.session_at(&sides.rs()).await.data()["user"], "ada");

    let slow = spawn_late_write(sides, &cookie);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = browser.logout(&sides.rs()).await;
    assert!(answer.removes_the_cookie(), "{answer:?}");
    assert_eq!(sides.stored(&id), None, "our logout deletes the key");

    let late = slow.await.expect("slow request");
    assert!(
        late.set_cookies.is_empty(),
        "the late write is refused, and sets no cookie: {late:?}"
    );
    assert_eq!(sides.stored(&id), None, "not revived");

    // Ours deletes the key; Python, too, then writes under a new id.
    assert_logged_out_everywhere(sides, &mut browser, &cookie, &id, &sides.py(), None).await;
}

/// A Rust request with `cookie` that loads the session, waits a second, then
/// writes to it: started before a logout, it writes after it.
fn spawn_late_write(sides: &Sides, cookie: &str) -> tokio::task::JoinHandle<Answer> {
    let browser = Browser::new();
    let url = format!("{}/api/session/late?delay_ms=1000", sides.rs());
    let cookie = cookie.to_owned();
    tokio::spawn(async move {
        browser
            .send_with(&url, Method::PUT, "", Some(json!("write")), Some(&cookie))
            .await
    })
}

/// After a logout: both sides, with the jar and with the old `cookie`, see a
/// new empty session; a stale write with the old cookie to `stale_side`
/// starts a session under a new id; and the old key still holds `stored`.
async fn assert_logged_out_everywhere(
    sides: &Sides,
    browser: &mut Browser,
    cookie: &str,
    id: &str,
    stale_side: &str,
    stored: Option<&str>,
) {
    for base in [sides.rs(), sides.py()] {
        let fresh = browser.session_at(&base).await;
        assert!(fresh.is_new() && fresh.data() == &json!({}), "{fresh:?}");
        let replayed = browser
            .send_with(&base, Method::GET, "/api/session", None, Some(cookie))
            .await;
        assert!(
            replayed.is_new() && replayed.data() == &json!({}),
            "{replayed:?}"
        );
    }
    let stale = browser
        .send_with(
            stale_side,
            Method::PUT,
            "/api/session/k",
            Some(json!(1)),
            Some(cookie),
        )
        .await;
    let new_id = SetCookie::parse(&stale.set_cookies[0]).value().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(sides.stored(id).as_deref(), stored, "not revived");
}

async fn both_sides_write_the_same_ttl(sides: &Sides) {
    let mut python = Browser::new();
    let answer = python.put(&sides.py(), "k", json!(1)).await;
    let python_cookie = answer.set_cookies[0].to_ascii_lowercase();
    let python_id = python.session().expect("a session");
    let mut rust = Browser::new();
    let answer = rust.put(&sides.rs(), "k", json!(1)).await;
    let rust_cookie = answer.set_cookies[0].to_ascii_lowercase();
    let rust_id = rust.session().expect("a session");

    let (python_ttl, rust_ttl) = (sides.ttl(&python_id), sides.ttl(&rust_id));
    let max_age = i64::try_from(MAX_AGE_SECS).expect("small");
    assert!(
        (max_age - 2..=max_age).contains(&python_ttl),
        "Python: {python_ttl}"
    );
    assert!(
        (max_age - 2..=max_age).contains(&rust_ttl),
        "Rust: {rust_ttl}"
    );
    let max_age_attribute = format!("max-age={MAX_AGE_SECS}");
    assert!(
        python_cookie.contains(&max_age_attribute),
        "{python_cookie}"
    );
    assert!(rust_cookie.contains(&max_age_attribute), "{rust_cookie}");

    // Each side's write restarts max_age on the other's session.
    for id in [&python_id, &rust_id] {
        sides
            .redis
            .command(&["EXPIRE", &Sides::key(id), "100"])
            .expect("EXPIRE");
    }
    python.put(&sides.rs(), "k", json!(2)).await;
    rust.put(&sides.py(), "k", json!(2)).await;
    assert!(sides.ttl(&python_id) > max_age - 3, "Rust's write");
    assert!(sides.ttl(&rust_id) > max_age - 3, "Python's write");
}

async fn interop(framework: Framework) {
    let sides = Sides::start(framework).await;
    python_session_is_read_and_changed_in_rust(&sides).await;
    rust_session_is_read_and_changed_in_python(&sides).await;
    values_round_trip_exactly(&sides).await;
    logout_in_python_logs_out_of_rust(&sides).await;
    logout_in_rust_logs_out_of_python(&sides).await;
    both_sides_write_the_same_ttl(&sides).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_shares_sessions_with_aiohttp_session() {
    interop(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_shares_sessions_with_aiohttp_session() {
    interop(Framework::Actix).await;
}

// ---------------------------------------------------------------------------
// The cookie storages: EncryptedCookieStorage (Fernet), NaClCookieStorage and
// SimpleCookieStorage, against our aiohttp cookie stores. No server-side
// state: the one cookie jar carries the session between the two services.
// ---------------------------------------------------------------------------

/// aiohttp_session's cookie storages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CookieStorage {
    /// `EncryptedCookieStorage`, against [`FernetCookieStore`].
    Encrypted,
    /// `NaClCookieStorage`, against [`NaclCookieStore`].
    Nacl,
    /// `SimpleCookieStorage`, against [`aiohttp_simple::SimpleCookieStore`].
    Simple,
}

impl CookieStorage {
    fn python_name(self) -> &'static str {
        match self {
            CookieStorage::Encrypted => "encrypted",
            CookieStorage::Nacl => "nacl",
            CookieStorage::Simple => "simple",
        }
    }

    fn has_key(self) -> bool {
        self != CookieStorage::Simple
    }
}

/// The Rust side's store for `storage` under `key`: what the demo's
/// `--store aiohttp-*` builds.
fn cookie_store(storage: CookieStorage, key: &Key) -> Arc<dyn SessionStore> {
    let ring = || KeyRing::builder(key.clone()).build().expect("ring");
    let max_age = Some(Duration::from_secs(MAX_AGE_SECS));
    match storage {
        CookieStorage::Encrypted => Arc::new(FernetCookieStore::new(ring(), max_age)),
        CookieStorage::Nacl => Arc::new(NaclCookieStore::new(ring(), max_age)),
        CookieStorage::Simple => Arc::new(aiohttp_simple::SimpleCookieStore::new(max_age)),
    }
}

/// The Python app and our demo on one cookie storage and one secret.
struct CookieSides {
    storage: CookieStorage,
    key: Key,
    python: PythonApp,
    rust: Running,
}

impl CookieSides {
    /// Both sides; `fernet_key_string` gives Python's
    /// `EncryptedCookieStorage` the Fernet key string instead of the 32
    /// bytes (it takes both).
    async fn start(framework: Framework, storage: CookieStorage, fernet_key_string: bool) -> Self {
        let key = Key::generate();
        let mut args = vec!["--storage".to_owned(), storage.python_name().to_owned()];
        if storage.has_key() {
            // base64.urlsafe_b64encode(secret), as the demo's --key takes it;
            // joined by `=`: one key in 64 starts with `-`, which argparse
            // would take for an option.
            args.push(format!("--secret={}", fernet_key(&key)));
        }
        if fernet_key_string {
            args.push("--fernet-key-string".to_owned());
        }
        let python = PythonApp::start(&args);
        let max_age = Some(Duration::from_secs(MAX_AGE_SECS));
        // Secure off: the test talks plain http.
        let config = session_core::aiohttp::session_config(max_age).with_secure(false);
        let manager = SessionManager::with_shared_store(cookie_store(storage, &key), config);
        let rust = server::serve_demo(framework, manager, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        CookieSides {
            storage,
            key,
            python,
            rust,
        }
    }

    fn py(&self) -> String {
        self.python.url()
    }

    fn rs(&self) -> String {
        self.rust.url()
    }

    /// A cookie value for `data` written at `at`, as the storage seals it
    /// under `key`.
    fn craft(&self, key: &Key, data: &Value, at: SystemTime) -> String {
        let mut record = Record::new(at);
        record.data = data.as_object().expect("an object").clone();
        let ring = KeyRing::builder(key.clone()).build().expect("ring");
        match self.storage {
            CookieStorage::Encrypted => FernetCookieStore::new(ring, None).seal(&record, at),
            CookieStorage::Nacl => NaclCookieStore::new(ring, None).seal(&record, at),
            CookieStorage::Simple => aiohttp_simple::SimpleCookieStore::encode(&record),
        }
        .expect("seal")
    }

    /// What each side makes of the cookie `value`: (Rust's answer,
    /// Python's answer).
    async fn both_read(&self, browser: &Browser, value: &str) -> (Answer, Answer) {
        let cookie = format!("{}={value}", session_core::aiohttp::COOKIE_NAME);
        let path = "/api/session";
        (
            browser
                .send_with(&self.rs(), Method::GET, path, None, Some(&cookie))
                .await,
            browser
                .send_with(&self.py(), Method::GET, path, None, Some(&cookie))
                .await,
        )
    }
}

async fn cookie_python_session_is_read_and_changed_in_rust(sides: &CookieSides) {
    let mut browser = Browser::new();
    browser.login(&sides.py(), "ada").await;
    assert!(browser.session().is_some(), "Python set the session cookie");

    let on_rust = browser.session_at(&sides.rs()).await;
    assert!(
        !on_rust.is_new(),
        "Rust loads Python's session: {on_rust:?}"
    );
    assert_eq!(on_rust.data(), &json!({"user": "ada"}));

    browser.put(&sides.rs(), "cart", json!([1, 2])).await;
    let on_python = browser.session_at(&sides.py()).await;
    assert!(!on_python.is_new(), "{on_python:?}");
    assert_eq!(on_python.data(), &json!({"user": "ada", "cart": [1, 2]}));
}

async fn cookie_rust_session_is_read_and_changed_in_python(sides: &CookieSides) {
    let mut browser = Browser::new();
    browser.put(&sides.rs(), "theme", json!("dark")).await;
    browser.login(&sides.rs(), "grace").await;
    assert!(browser.session().is_some(), "Rust set the session cookie");

    let on_python = browser.session_at(&sides.py()).await;
    assert!(
        !on_python.is_new(),
        "Python loads Rust's session: {on_python:?}"
    );
    assert_eq!(on_python.data(), &json!({"theme": "dark", "user": "grace"}));

    browser.put(&sides.py(), "lang", json!("fi")).await;
    let on_rust = browser.session_at(&sides.rs()).await;
    assert!(!on_rust.is_new(), "{on_rust:?}");
    assert_eq!(
        on_rust.data(),
        &json!({"theme": "dark", "user": "grace", "lang": "fi"})
    );
}

/// The tricky values of [`values_round_trip_exactly`], written on one side
/// and read on the other, both ways; for `SimpleCookieStorage`, whose
/// cookie is the JSON itself, the two sides' cookies are the same bytes.
async fn cookie_values_round_trip_exactly(sides: &CookieSides) {
    let values = tricky_values();
    let Value::Object(entries) = &values else {
        unreachable!()
    };
    // Python writes, Rust reads; and the other way round.
    for (writer, reader) in [(sides.py(), sides.rs()), (sides.rs(), sides.py())] {
        let mut browser = Browser::new();
        for (key, value) in entries {
            browser.put(&writer, key, value.clone()).await;
        }
        let read = browser.session_at(&reader).await;
        assert!(!read.is_new(), "{read:?}");
        assert_eq!(read.data(), &values);
    }

    if sides.storage == CookieStorage::Simple {
        // Byte for byte, as in the Redis test: Python's cookie for a dict
        // in our (sorted) order, plus one key that sorts last, is ours
        // with that key; and the same the other way round.
        let mut browser = Browser::new();
        for (key, value) in entries {
            browser.put(&sides.rs(), key, value.clone()).await;
        }
        let ours = simple_json(&browser);
        browser.put(&sides.py(), "zz", json!(1)).await;
        let theirs = simple_json(&browser);
        assert_eq!(without_created(&theirs), with_last(&ours, r#""zz": 1"#));
        browser.put(&sides.rs(), "zzz", json!([2])).await;
        let ours_again = simple_json(&browser);
        assert_eq!(
            without_created(&ours_again),
            with_last(&theirs, r#""zzz": [2]"#)
        );
    }
}

/// The JSON in the jar's `SimpleCookieStorage` cookie, its quoting undone
/// as Python's `http.cookies` undoes it.
fn simple_json(browser: &Browser) -> String {
    let value = browser.session().expect("a session cookie");
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("Python quotes JSON: {value}"));
    session_core::aiohttp::unescape_cookie_value(inner).into_owned()
}

/// A logout on `logout_side` ends the session on both sides.
async fn cookie_logout_ends_the_session_on_both(sides: &CookieSides, logout_side: &str) {
    let mut browser = Browser::new();
    let login_side = if logout_side == sides.py() {
        sides.rs()
    } else {
        sides.py()
    };
    browser.login(&login_side, "ada").await;
    assert_eq!(browser.session_at(&sides.py()).await.data()["user"], "ada");
    assert_eq!(browser.session_at(&sides.rs()).await.data()["user"], "ada");

    browser.logout(logout_side).await;
    for base in [sides.rs(), sides.py()] {
        let fresh = browser.session_at(&base).await;
        assert_eq!(fresh.data(), &json!({}), "logged out on {base}: {fresh:?}");
        assert!(fresh.is_new(), "{fresh:?}");
    }
}

/// A tampered cookie, one sealed under another secret, and an expired one
/// are new sessions on both sides; one within `max_age` loads on both.
async fn cookie_bad_and_expired_cookies_are_new_sessions_on_both(sides: &CookieSides) {
    let browser = Browser::new();
    let data = json!({"user": "ada", "n": 1});
    let now = SystemTime::now();
    let max_age = Duration::from_secs(MAX_AGE_SECS);

    // Within max_age (written max_age - 60 s ago): both load it.
    let alive = sides.craft(&sides.key, &data, now - max_age + Duration::from_secs(60));
    let (rust, python) = sides.both_read(&browser, &alive).await;
    assert!(!rust.is_new() && rust.data() == &data, "{rust:?}");
    assert!(!python.is_new() && python.data() == &data, "{python:?}");

    // Past max_age: a new, empty session on both (Python's
    // NaCl and Simple storages drop the data but say `new: false`).
    let expired = sides.craft(&sides.key, &data, now - max_age - Duration::from_secs(5));
    let (rust, python) = sides.both_read(&browser, &expired).await;
    assert!(rust.is_new() && rust.data() == &json!({}), "{rust:?}");
    assert_eq!(python.data(), &json!({}), "{python:?}");
    if sides.storage == CookieStorage::Encrypted {
        assert!(python.is_new(), "Fernet's ttl: {python:?}");
    }

    if !sides.storage.has_key() {
        // SimpleCookieStorage is unauthenticated: nothing to tamper with
        // that the other side could tell (and Python answers 500 to
        // a cookie that is not JSON).
        let cookie = format!("{}=not-json", session_core::aiohttp::COOKIE_NAME);
        let garbage = browser
            .send_with(
                &sides.rs(),
                Method::GET,
                "/api/session",
                None,
                Some(&cookie),
            )
            .await;
        assert!(
            garbage.is_new() && garbage.data() == &json!({}),
            "{garbage:?}"
        );
        return;
    }

    // Sealed under another secret.
    let foreign = sides.craft(&Key::generate(), &data, now);
    let (rust, python) = sides.both_read(&browser, &foreign).await;
    assert!(rust.is_new() && rust.data() == &json!({}), "{rust:?}");
    assert!(python.is_new() && python.data() == &json!({}), "{python:?}");

    // Tampered: one character of a valid cookie changed, here and there.
    let valid = sides.craft(&sides.key, &data, now);
    for at in [10, valid.len() / 2, valid.len() - 6] {
        let mut tampered = valid.clone().into_bytes();
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ASCII");
        let (rust, python) = sides.both_read(&browser, &tampered).await;
        assert!(rust.is_new() && rust.data() == &json!({}), "{rust:?}");
        assert!(python.is_new() && python.data() == &json!({}), "{python:?}");
    }
}

/// Both sides send the cookie with `Max-Age` = `max_age`.
async fn cookie_both_sides_set_max_age(sides: &CookieSides) {
    let max_age_attribute = format!("max-age={MAX_AGE_SECS}");
    for base in [sides.py(), sides.rs()] {
        let mut browser = Browser::new();
        let answer = browser.put(&base, "k", json!(1)).await;
        let set_cookie = answer.set_cookies[0].to_ascii_lowercase();
        assert!(set_cookie.contains(&max_age_attribute), "{set_cookie}");
    }
}

async fn cookie_interop(framework: Framework, storage: CookieStorage) {
    let sides = CookieSides::start(framework, storage, framework == Framework::Actix).await;
    cookie_python_session_is_read_and_changed_in_rust(&sides).await;
    cookie_rust_session_is_read_and_changed_in_python(&sides).await;
    cookie_values_round_trip_exactly(&sides).await;
    cookie_logout_ends_the_session_on_both(&sides, &sides.py()).await;
    cookie_logout_ends_the_session_on_both(&sides, &sides.rs()).await;
    cookie_bad_and_expired_cookies_are_new_sessions_on_both(&sides).await;
    cookie_both_sides_set_max_age(&sides).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_shares_fernet_cookies_with_encrypted_cookie_storage() {
    cookie_interop(Framework::Axum, CookieStorage::Encrypted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_shares_fernet_cookies_with_encrypted_cookie_storage() {
    cookie_interop(Framework::Actix, CookieStorage::Encrypted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_shares_nacl_cookies_with_nacl_cookie_storage() {
    cookie_interop(Framework::Axum, CookieStorage::Nacl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_shares_nacl_cookies_with_nacl_cookie_storage() {
    cookie_interop(Framework::Actix, CookieStorage::Nacl).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_shares_json_cookies_with_simple_cookie_storage() {
    cookie_interop(Framework::Axum, CookieStorage::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_shares_json_cookies_with_simple_cookie_storage() {
    cookie_interop(Framework::Actix, CookieStorage::Simple).await;
}
