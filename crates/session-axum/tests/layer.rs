//! The layer and the extractor in an axum app served on a real socket:
//! what is particular to axum (its router's ways to add a layer, its
//! extractor's `Result`). What every adapter must do, however the app is
//! put together, is in the shared behaviour suite (`examples/tests/behaviour.rs`),
//! run on both frameworks with every store.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, ServiceExt};
use reqwest::header::{COOKIE, SET_COOKIE};
use session_axum::{Session, SessionLayer, SessionRejection};
use session_conformance::{FaultyStore, SetCookie};
use session_core::{Error, SessionConfig, SessionManager};
use tower_layer::Layer;

/// A manager over `store` with the default configuration.
fn manager(store: &FaultyStore) -> SessionManager {
    SessionManager::new(store.clone(), SessionConfig::default())
}

/// Counts visits in the session.
async fn visit(session: Session) -> String {
    let visits = session.get::<u64>("visits").unwrap().unwrap_or(0) + 1;
    session.insert("visits", &visits).unwrap();
    visits.to_string()
}

struct Answer {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Serves `router` wrapped whole in `layer` (not with `Router::layer`).
async fn serve_wrapped(router: Router, layer: SessionLayer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = ServiceExt::<Request>::into_make_service(layer.layer(router));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn get_with(url: &str, cookie: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let set_cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.text().await.unwrap();
    Answer {
        status,
        set_cookies,
        body,
    }
}

fn cookie_of(answer: &Answer) -> String {
    let [set_cookie] = answer.set_cookies.as_slice() else {
        panic!("one Set-Cookie expected: {:?}", answer.set_cookies);
    };
    SetCookie::parse(set_cookie).pair()
}

/// Two visits in a row with the cookie of the first: the second must count 2.
async fn assert_sessions_work(url: &str) {
    let first = get_with(url, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    let second = get_with(url, Some(&cookie_of(&first))).await;
    assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "2"));
}

#[tokio::test]
async fn a_handler_taking_the_result_sees_the_missing_layer() {
    async fn probe(session: Result<Session, SessionRejection>) -> String {
        let rejection = session.unwrap_err();
        format!(
            "{} {}",
            rejection.is_missing_layer(),
            rejection.error().is_none()
        )
    }
    let base = serve(Router::new().route("/probe", get(probe))).await;
    assert_eq!(
        get_with(&format!("{base}/probe"), None).await.body,
        "true true"
    );
}

/// A layer of another manager nested inside the app's (a stricter one on
/// `/admin`) keeps its own sessions: its routes use its cookie and store
/// only, and the outer layer's stay as they were.
#[tokio::test]
async fn route_layer_and_nested_routers_keep_sessions() {
    let store = FaultyStore::default();
    let with_route_layer = Router::new()
        .route("/visit", get(visit))
        .route_layer(SessionLayer::new(manager(&store)));
    let nested_inside_layer = Router::new().route("/visit", get(visit));
    let base = serve(
        Router::new().nest("/routed", with_route_layer).merge(
            Router::new()
                .nest("/outer", nested_inside_layer)
                .layer(SessionLayer::new(manager(&store))),
        ),
    )
    .await;
    assert_sessions_work(&format!("{base}/routed/visit")).await;
    assert_sessions_work(&format!("{base}/outer/visit")).await;
    // route_layer leaves unmatched paths alone: a 404 carries no cookie.
    let missing = get_with(&format!("{base}/routed/nothing"), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.set_cookies.is_empty());
}

#[tokio::test]
async fn a_layer_around_the_whole_router_keeps_sessions() {
    let store = FaultyStore::default();
    let router = Router::new()
        .route("/visit", get(visit))
        .route("/plain", get(|| async { "plain" }))
        .nest("/nested", Router::new().route("/visit", get(visit)));
    let base = serve_wrapped(router, SessionLayer::new(manager(&store))).await;
    assert_sessions_work(&format!("{base}/visit")).await;
    assert_sessions_work(&format!("{base}/nested/visit")).await;
    // Routes that do not extract the session, and paths no route matches,
    // pass through the layer untouched: no store I/O, no cookie.
    let cookie = cookie_of(&get_with(&format!("{base}/visit"), None).await);
    let loads = store.loads();
    for (path, status) in [
        ("/plain", StatusCode::OK),
        ("/nothing", StatusCode::NOT_FOUND),
    ] {
        let answer = get_with(&format!("{base}{path}"), Some(&cookie)).await;
        assert_eq!(answer.status, status, "{path}");
        assert!(answer.set_cookies.is_empty(), "{path}");
    }
    assert_eq!(store.loads(), loads);
}

#[tokio::test]
async fn store_errors_answer_the_applications_response() {
    let store = FaultyStore::default();
    let layer = SessionLayer::new(manager(&store)).with_error_response(|error| {
        let kind = match error {
            Error::Store(_) => "store",
            _ => "other",
        };
        (StatusCode::SERVICE_UNAVAILABLE, format!("custom: {kind}")).into_response()
    });
    async fn degrade(session: Result<Session, SessionRejection>) -> String {
        match session {
            Ok(_) => "session".to_owned(),
            Err(rejection) => format!("degraded: {}", rejection.into_error().unwrap()),
        }
    }
    let base = serve(
        Router::new()
            .route("/visit", get(visit))
            .route("/degrade", get(degrade))
            .layer(layer),
    )
    .await;
    let url = format!("{base}/visit");
    let cookie = cookie_of(&get_with(&url, None).await);

    store.fail_all(true);
    // Loading fails: the extractor's rejection uses the hook.
    let load = get_with(&url, Some(&cookie)).await;
    assert_eq!(
        (load.status, load.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "custom: store")
    );
    // Saving a new session fails: the handler's response is replaced.
    let save = get_with(&url, None).await;
    assert_eq!(
        (save.status, save.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "custom: store")
    );
    assert!(save.set_cookies.is_empty());
    // A handler that takes the Result decides for itself.
    let degraded = get_with(&format!("{base}/degrade"), Some(&cookie)).await;
    assert_eq!(degraded.status, StatusCode::OK);
    assert!(
        degraded.body.starts_with("degraded: session store failed"),
        "{}",
        degraded.body
    );

    store.fail_all(false);
    assert_eq!(get_with(&url, Some(&cookie)).await.body, "2");
}
