//! Session ids and cookie values never appear in logs (OWASP: no session
//! ids in logs). Every log event of the session crates and the demo, at
//! TRACE level, is captured while the demo serves logins, writes, bogus
//! cookies, regenerations and logouts on both frameworks and every store;
//! no cookie value that crossed the wire may appear in them.
//!
//! Its own test binary, with one test: the capturing subscriber is global,
//! so that it sees the server's worker threads too.

use std::io::Write;
use std::sync::{Arc, Mutex};

use session_conformance::SetCookie;
use session_core::{MemoryStore, SessionConfig, SessionManager, SessionStore};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
use session_examples::server::{self, Framework};
use session_simple_cookie::SimpleCookieStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One request on a new connection; the raw response.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// The `session=value` pairs a response sets.
fn set_cookie_pairs(response: &str) -> Vec<String> {
    response
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, c)| SetCookie::parse(c.trim()).pair())
        .collect()
}

fn request(method: &str, path: &str, cookie: Option<&str>, body: &str) -> String {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{cookie}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Drives a login, a write, a read with bogus cookies, a re-login and a
/// logout; returns every cookie value sent or received.
async fn a_user_session(addr: std::net::SocketAddr) -> Vec<String> {
    let mut seen = Vec::new();
    let login = exchange(
        addr,
        &request("POST", "/api/login", None, r#"{"user":"ada"}"#),
    )
    .await;
    let mut cookie = set_cookie_pairs(&login).pop().expect("a cookie at login");
    seen.push(cookie.clone());
    for step in [
        request("PUT", "/api/session/k", Some(&cookie), "1"),
        request("GET", "/", Some(&cookie), ""),
        request("POST", "/api/login", Some(&cookie), r#"{"user":"bob"}"#),
    ] {
        let response = exchange(addr, &step).await;
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.1 303"),
            "{response}"
        );
        if let Some(next) = set_cookie_pairs(&response).pop() {
            cookie = next;
            seen.push(cookie.clone());
        }
    }
    let bogus = format!("{cookie}x; session=bogus-value-123");
    let response = exchange(addr, &request("GET", "/api/session", Some(&bogus), "")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    seen.push("bogus-value-123".to_owned());
    let logout = exchange(addr, &request("POST", "/api/logout", Some(&cookie), "")).await;
    assert!(logout.starts_with("HTTP/1.1 200"), "{logout}");
    seen.into_iter()
        .map(|pair| pair.trim_start_matches("session=").to_owned())
        .filter(|value| !value.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_and_cookie_values_never_appear_in_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(
            "session_core=trace,session_axum=trace,session_actix=trace,session_redis=trace,\
             session_encrypted_cookie=trace,session_simple_cookie=trace,session_examples=trace",
        )
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let redis = session_testing::RedisServer::start();
    let mut values = Vec::new();
    for framework in [Framework::Axum, Framework::Actix] {
        let stores: Vec<Arc<dyn SessionStore>> = vec![
            Arc::new(MemoryStore::new()),
            Arc::new(SimpleCookieStore::new()),
            Arc::new(EncryptedCookieStore::new(
                KeyRing::builder(Key::generate()).build().unwrap(),
            )),
            Arc::new(
                session_redis::RedisStore::from_url(&redis.url())
                    .await
                    .unwrap(),
            ),
        ];
        for store in stores {
            let manager = SessionManager::with_shared_store(store, SessionConfig::default());
            let running = server::serve_demo(framework, manager, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            values.extend(a_user_session(running.addr()).await);
            running.stop().await;
        }
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The bogus cookies were logged about (at debug), so the capture works.
    assert!(logs.contains("did not load"), "nothing captured: {logs}");
    // Per store and framework: the two logins' cookies and the bogus one,
    // and a cookie store's new value after each of the two writes (a
    // server-side store keeps its id and does not send it again).
    assert!(values.len() >= 32, "{} cookie values", values.len());
    for value in &values {
        assert!(
            !logs.contains(value.as_str()),
            "a cookie value was logged: {value}"
        );
    }
}
