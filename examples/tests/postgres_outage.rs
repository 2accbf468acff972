//! Postgres going away and coming back, seen over HTTP: while it is down
//! (stopped) or hung (every process frozen with SIGSTOP), requests that
//! need the session answer 500 within the store's timeout (never hang,
//! never a 200 that lost data) and routes that do not use the session keep
//! working; once it is back, the same server answers 200 again, with the
//! sessions written before the outage, without a restart of the app.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use session_core::{SessionConfig, SessionManager};
use session_examples::server::{self, Framework};
use session_sqlx::PostgresStore;
use session_testing::PostgresServer;

const STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// Slack for scheduling on a loaded machine: a bound on hanging, not a speed
/// target.
const SLACK: Duration = Duration::from_secs(3);

struct Client {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Client {
    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the server answers");
        if let Some(set_cookie) = response.headers().get(SET_COOKIE) {
            let set_cookie = set_cookie.to_str().expect("ASCII Set-Cookie");
            self.cookie = Some(session_conformance::SetCookie::parse(set_cookie).pair());
        }
        let status = response.status();
        let bytes = response.bytes().await.expect("a body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The requests that need the session all answer 500 in time.
async fn every_session_route_fails_fast(client: &mut Client, outage: &str) {
    for (method, path, body) in [
        (reqwest::Method::GET, "/api/session", None),
        (
            reqwest::Method::PUT,
            "/api/session/late",
            Some(json!("lost?")),
        ),
        (reqwest::Method::POST, "/api/counter", None),
    ] {
        let started = Instant::now();
        let (status, body) = client.send(method.clone(), path, body).await;
        let took = started.elapsed();
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path} with Postgres {outage}"
        );
        assert_eq!(body, json!({ "error": "the session store failed" }));
        assert!(
            took < STORE_TIMEOUT + SLACK,
            "{method} {path} took {took:?} with Postgres {outage}"
        );
    }
}

async fn postgres_outages_under_the_demo(framework: Framework) {
    let mut postgres = PostgresServer::start();
    let store = PostgresStore::connect(&postgres.url())
        .await
        .expect("a Postgres URL")
        .with_timeout(STORE_TIMEOUT);
    store.migrate().await.expect("migrate");
    let manager = SessionManager::new(store, SessionConfig::default().with_secure(false));
    let demo = server::serve_demo(framework, manager, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the demo");
    let mut client = Client {
        http: reqwest::Client::new(),
        base: demo.url(),
        cookie: None,
    };
    let (status, _) = client
        .send(
            reqwest::Method::PUT,
            "/api/session/cart",
            Some(json!([1, 2, 3])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    postgres.pause();
    every_session_route_fails_fast(&mut client, "frozen").await;
    let health = reqwest::get(format!("{}/health", demo.url()))
        .await
        .expect("health");
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "routes without sessions keep working"
    );
    postgres.resume();
    let (status, body) = client
        .send(reqwest::Method::GET, "/api/session", None)
        .await;
    assert_eq!(status, StatusCode::OK, "after the freeze: {body}");
    assert_eq!(body, json!({ "new": false, "data": { "cart": [1, 2, 3] } }));

    postgres.stop();
    every_session_route_fails_fast(&mut client, "stopped").await;
    postgres.restart();
    let (status, body) = client
        .send(reqwest::Method::GET, "/api/session", None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first request after the restart: {body}"
    );
    assert_eq!(body, json!({ "new": false, "data": { "cart": [1, 2, 3] } }));
    let (status, body) = client
        .send(reqwest::Method::POST, "/api/counter", None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "counter": 1 })));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outages_under_the_axum_demo() {
    postgres_outages_under_the_demo(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outages_under_the_actix_demo() {
    postgres_outages_under_the_demo(Framework::Actix).await;
}
