//! The middleware, the extractor and `SessionExt` in an actix-web app served
//! on a real socket: what is particular to actix-web (`SessionExt`, the
//! extractor's `Result`). What every adapter must do, however the app is
//! put together, is in the shared behaviour suite (`examples/tests/behaviour.rs`),
//! run on both frameworks with every store.

use actix_web::dev::Service as _;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use session_actix::{Session, SessionExt, SessionMiddleware, SessionRejection};
use session_conformance::{FaultyStore, SetCookie};
use session_core::{Error, SessionConfig, SessionCookie, SessionManager, SessionStore};

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

/// Serves the app built by `$factory` on a free loopback port, with one
/// worker; evaluates to its base URL.
macro_rules! serve {
    ($factory:expr) => {{
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = HttpServer::new($factory)
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        tokio::spawn(server);
        format!("http://{addr}")
    }};
}

struct Answer {
    status: StatusCode,
    set_cookies: Vec<String>,
    body: String,
}

async fn get_with(url: &str, cookie: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_taking_the_result_sees_the_missing_middleware() {
    async fn probe(session: Result<Session, SessionRejection>) -> String {
        let rejection = session.unwrap_err();
        format!(
            "{} {}",
            rejection.is_missing_layer(),
            rejection.error().is_none()
        )
    }
    let base = serve!(|| App::new().route("/probe", web::get().to(probe)));
    assert_eq!(
        get_with(&format!("{base}/probe"), None).await.body,
        "true true"
    );
}

/// A middleware of another manager nested inside the app's (a stricter
/// one on `/admin`) keeps its own sessions: its routes use its cookie and
/// store only, and the outer middleware's stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_answer_the_applications_response() {
    let store = FaultyStore::default();
    let manager = manager(&store);
    async fn degrade(session: Result<Session, SessionRejection>) -> String {
        match session {
            Ok(_) => "session".to_owned(),
            Err(rejection) => format!("degraded: {}", rejection.into_error().unwrap()),
        }
    }
    let base = serve!(move || App::new()
        .wrap(
            SessionMiddleware::new(manager.clone()).with_error_response(|error| {
                let kind = match error {
                    Error::Store(_) => "store",
                    _ => "other",
                };
                HttpResponse::ServiceUnavailable().body(format!("custom: {kind}"))
            })
        )
        .route("/visit", web::get().to(visit))
        .route("/degrade", web::get().to(degrade)));
    let url = format!("{base}/visit");
    let cookie = cookie_of(&get_with(&url, None).await);

    store.fail_all(true);
    // Loading fails: the extractor's error uses the hook.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ext_and_spawned_tasks_reach_the_same_session() {
    // From an HttpRequest, and moved into a task on another thread.
    async fn from_request(request: HttpRequest) -> actix_web::Result<String> {
        let session = request.session().await?;
        let handle = session.clone();
        tokio::task::spawn_blocking(move || handle.insert("from_task", &"yes").unwrap())
            .await
            .unwrap();
        Ok(session
            .get::<String>("from_middleware")
            .unwrap()
            .unwrap_or_default())
    }
    let store = FaultyStore::default();
    let manager = manager(&store);
    let base = serve!(move || App::new()
        // From a ServiceRequest, in a middleware inside the session's.
        .wrap_fn(|request, service| {
            let session = request.session();
            let response = service.call(request);
            async move {
                session.await?.insert("from_middleware", &"yes").unwrap();
                response.await
            }
        })
        .wrap(SessionMiddleware::new(manager.clone()))
        .route("/ext", web::get().to(from_request))
        .route("/visit", web::get().to(visit)));
    let first = get_with(&format!("{base}/ext"), None).await;
    assert_eq!(first.body, "yes");
    let cookie = cookie_of(&first);
    assert_eq!(
        get_with(&format!("{base}/visit"), Some(&cookie)).await.body,
        "1"
    );
    let record = store
        .load(SessionCookie::new(
            "session",
            cookie.trim_start_matches("session="),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.data["from_task"], "yes");
    assert_eq!(record.data["from_middleware"], "yes");
}
