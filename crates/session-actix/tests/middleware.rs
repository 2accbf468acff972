//! The middleware, the extractor and `SessionExt` in an actix-web app served
//! on a real socket: what the shared behaviour suite (in `examples/tests`)
//! cannot show because it is about how the app is put together.

use actix_web::dev::Service as _;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, SET_COOKIE};
use session_actix::{Session, SessionExt, SessionMiddleware, SessionRejection};
use session_conformance::FaultyStore;
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
    assert_eq!(answer.set_cookies.len(), 1, "{:?}", answer.set_cookies);
    answer.set_cookies[0].split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extracting_without_the_middleware_is_a_500_that_names_it() {
    async fn probe(session: Result<Session, SessionRejection>) -> String {
        let rejection = session.unwrap_err();
        format!(
            "{} {}",
            rejection.is_missing_layer(),
            rejection.error().is_none()
        )
    }
    let base = serve!(|| App::new()
        .route("/visit", web::get().to(visit))
        .route("/probe", web::get().to(probe)));
    let answer = get_with(&format!("{base}/visit"), None).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.body.contains("SessionMiddleware"), "{}", answer.body);
    assert!(answer.set_cookies.is_empty());
    assert_eq!(
        get_with(&format!("{base}/probe"), None).await.body,
        "true true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_does_not_ask_for_the_session_costs_no_store_io() {
    let store = FaultyStore::default();
    let manager = manager(&store);
    let base = serve!(move || App::new()
        .wrap(SessionMiddleware::new(manager.clone()))
        .route("/visit", web::get().to(visit))
        .route("/plain", web::get().to(|| async { "plain" })));
    let cookie = cookie_of(&get_with(&format!("{base}/visit"), None).await);
    let loads = store.loads();
    let plain = get_with(&format!("{base}/plain"), Some(&cookie)).await;
    assert_eq!(plain.body, "plain");
    assert!(plain.set_cookies.is_empty());
    assert_eq!(store.loads(), loads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middleware_applied_twice_saves_once() {
    let store = FaultyStore::default();
    let manager = manager(&store);
    let base = serve!(move || App::new()
        .wrap(SessionMiddleware::new(manager.clone()))
        .service(
            web::scope("/scoped")
                .wrap(SessionMiddleware::new(manager.clone()))
                .route("/visit", web::get().to(visit))
        ));
    let url = format!("{base}/scoped/visit");
    let first = get_with(&url, None).await;
    assert_eq!(first.set_cookies.len(), 1, "{:?}", first.set_cookies);
    assert_eq!(store.saves(), 1);
    let second = get_with(&url, Some(&cookie_of(&first))).await;
    assert_eq!(second.body, "2");
    assert_eq!(store.saves(), 2);
    assert_eq!(store.loads(), 1, "one load per request");
}

/// A middleware of another manager nested inside the app's (a stricter
/// one on `/admin`) keeps its own sessions: its routes use its cookie and
/// store only, and the outer middleware's stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_middleware_of_another_manager_nested_inside_keeps_its_own_sessions() {
    let (app_store, admin_store) = (FaultyStore::default(), FaultyStore::default());
    let app = manager(&app_store);
    let admin = SessionManager::new(
        admin_store.clone(),
        SessionConfig::default()
            .with_cookie_name("admin")
            .with_idle_timeout(Some(std::time::Duration::from_secs(300))),
    );
    let base = serve!(move || App::new()
        .wrap(SessionMiddleware::new(app.clone()))
        .route("/visit", web::get().to(visit))
        .service(
            web::scope("/admin")
                .wrap(SessionMiddleware::new(admin.clone()))
                .route("/visit", web::get().to(visit))
        ));

    let app = get_with(&format!("{base}/visit"), None).await;
    let app_cookie = cookie_of(&app);
    assert!(app_cookie.starts_with("session="), "{app_cookie}");
    let admin = get_with(&format!("{base}/admin/visit"), Some(&app_cookie)).await;
    let admin_cookie = cookie_of(&admin);
    assert!(admin_cookie.starts_with("admin="), "{admin_cookie}");
    assert_eq!(admin.body, "1", "the admin session is its own");
    assert_eq!((app_store.saves(), admin_store.saves()), (1, 1));

    let both = format!("{app_cookie}; {admin_cookie}");
    assert_eq!(
        get_with(&format!("{base}/admin/visit"), Some(&both))
            .await
            .body,
        "2"
    );
    assert_eq!(
        get_with(&format!("{base}/visit"), Some(&both)).await.body,
        "2"
    );
    assert_eq!((app_store.saves(), admin_store.saves()), (2, 2));
}

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
async fn without_a_hook_store_errors_are_a_plain_500() {
    let store = FaultyStore::default();
    let manager = manager(&store);
    let base = serve!(move || App::new()
        .wrap(SessionMiddleware::new(manager.clone()))
        .route("/visit", web::get().to(visit)));
    store.fail_all(true);
    let answer = get_with(&format!("{base}/visit"), None).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, "the session could not be loaded or saved");
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
