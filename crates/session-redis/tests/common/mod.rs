//! Helpers shared by the integration tests: a browser-like cookie jar over
//! a `SessionManager`, Redis inspection, and a Redis that stops answering.

#![allow(dead_code, unreachable_pub)]

use session_core::{Session, SessionManager};
use session_testing::{RedisServer, Reply, info_fields};

/// The `name=value` pair of the one `Set-Cookie` a response sent.
pub fn cookie_pair(set_cookies: &[String]) -> String {
    assert_eq!(
        set_cookies.len(),
        1,
        "expected one Set-Cookie: {set_cookies:?}"
    );
    session_conformance::SetCookie::parse(&set_cookies[0]).pair()
}

/// The value of a `name=value` pair.
pub fn cookie_value(pair: &str) -> &str {
    pair.split_once('=').expect("name=value").1
}

/// One request: loads the session, runs `handler`, saves; returns the
/// Set-Cookie values.
pub async fn visit(
    manager: &SessionManager,
    cookie: Option<&str>,
    handler: impl FnOnce(&Session),
) -> Vec<String> {
    let request = manager.request();
    handler(
        &request
            .session(cookie.map(str::as_bytes))
            .await
            .expect("load"),
    );
    request.save_changes().await.expect("save_changes")
}

/// The session a request with `cookie` sees.
pub async fn peek(manager: &SessionManager, cookie: &str) -> Session {
    manager
        .request()
        .session([cookie.as_bytes()])
        .await
        .expect("load")
}

/// The Redis key of the session behind a `name=value` cookie pair, with the
/// default prefix.
pub fn redis_key(pair: &str) -> String {
    format!("session:{}", cookie_value(pair))
}

/// `INFO section` as text.
pub fn info(server: &RedisServer, section: &str) -> String {
    server
        .command(&["INFO", section])
        .expect("INFO")
        .text()
        .expect("INFO text")
}

/// An integer reply.
pub fn integer(reply: std::io::Result<Reply>) -> i64 {
    match reply.expect("reply") {
        Reply::Integer(i) => i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

/// Calls per command since the last `CONFIG RESETSTAT`.
pub fn command_calls(server: &RedisServer) -> Vec<(String, u64)> {
    session_testing::command_calls(&info(server, "commandstats"))
        .map(|(command, calls)| (command.to_owned(), calls))
        .collect()
}

/// The calls, in `calls` (from [`command_calls`]), of the commands whose
/// name `matches`.
pub fn calls_where(calls: &[(String, u64)], matches: impl Fn(&str) -> bool) -> u64 {
    calls
        .iter()
        .filter(|(name, _)| matches(name))
        .map(|(_, count)| count)
        .sum()
}

/// A Redis stopped with `SIGSTOP`: its connections stay open, and it answers
/// nothing until this is dropped, which sends `SIGCONT` (also when a test
/// fails, so that no Redis is left stopped).
pub struct Stopped(String);

impl Stopped {
    pub fn new(server: &RedisServer) -> Self {
        let pid = info_fields(&info(server, "server"))
            .find(|(name, _)| *name == "process_id")
            .map(|(_, pid)| pid.to_owned())
            .expect("process_id");
        signal(&pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
    }
}

fn signal(pid: &str, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A runtime with one worker thread: the one a test that also drives the
/// store from a runtime of its own keeps.
pub fn one_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Polls the future `start` makes once, on a runtime of its own, then shuts
/// that runtime down with whatever the poll spawned not yet run: what a
/// runtime that ends in the middle of a call leaves behind. Panics unless
/// the future was still pending.
pub fn poll_once_then_shut_down<F: std::future::Future>(start: impl FnOnce() -> F) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut future = std::pin::pin!(start());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            future.as_mut().poll(&mut context).is_pending(),
            "the call ended in one poll"
        );
    });
}
