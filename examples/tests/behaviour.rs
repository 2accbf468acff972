//! The HTTP-level behaviour suite: the demo app served on a real socket by
//! each framework adapter, with each store, driven by an HTTP client that
//! keeps its own cookie jar (so that it can also replay old cookies).
//!
//! Every case is written once, in `cases`, and run for every framework and
//! every backend listed at the bottom of this file. To run the suite against
//! another store, add one line to `behaviour_suite!` with an expression that
//! gives its [`Backend`] (it may `.await`).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, COOKIE, HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use session_conformance::{FaultyStore, SetCookie};
use session_core::{
    CookieLifetime, MemoryStore, SameSite, SessionConfig, SessionManager, SessionStore,
};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
use session_examples::demo;
use session_examples::server::{self, Framework, Running};
use session_simple_cookie::SimpleCookieStore;

/// A store under test.
struct Backend {
    store: Arc<dyn SessionStore>,
    /// Whether the cookie holds an id (so that the server can forget a
    /// session) rather than the session itself.
    server_side: bool,
    /// Whatever must live as long as the store (a server process, say).
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl Backend {
    fn server_side(store: impl SessionStore) -> Self {
        Backend {
            store: Arc::new(store),
            server_side: true,
            _keep_alive: None,
        }
    }

    fn cookie(store: impl SessionStore) -> Self {
        Backend {
            store: Arc::new(store),
            server_side: false,
            _keep_alive: None,
        }
    }

    /// Keeps `guard` (a server process, say) alive as long as the backend.
    fn keeping_alive(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep_alive = Some(Box::new(guard));
        self
    }
}

/// The body of the suite's streaming route, in chunks.
const STREAM_CHUNKS: [&str; 3] = ["first ", "second ", "third"];

/// How the app is put together around the demo's routes: the compositions
/// each adapter must get right, whatever the store.
#[derive(Clone)]
enum Composition {
    /// The demo's session layer (with its error-response hook) around
    /// every route.
    Demo,
    /// No session layer: a handler that asks for the session is a
    /// programming error.
    NoLayer,
    /// The same manager's layer twice: around the app and around its routes
    /// (a route layer on axum, a scope's middleware on actix-web).
    Twice,
    /// The layer without an error-response hook.
    NoHook,
    /// The demo's routes again under `/admin`, with the layer of another
    /// manager, inside the app's.
    AdminInside(SessionManager),
}

/// Serves the demo app, plus `GET /stream` (writes to the session, answers a
/// streaming body), on `framework` with `manager`, put together as
/// `composition` says.
async fn serve(framework: Framework, manager: SessionManager, composition: Composition) -> Running {
    let addr = "127.0.0.1:0".parse().unwrap();
    match framework {
        Framework::Axum => {
            use axum::body::Body;
            use demo::axum::layer;
            use session_axum::Session;
            async fn stream(session: Session) -> Body {
                session.insert("streamed", &true).unwrap();
                Body::from_stream(futures_util::stream::iter(
                    STREAM_CHUNKS.map(Ok::<_, std::io::Error>),
                ))
            }
            let routes = demo::axum::routes().route("/stream", axum::routing::get(stream));
            let router = match composition {
                Composition::Demo => routes.layer(layer(manager)),
                Composition::NoLayer => routes,
                Composition::Twice => routes
                    .route_layer(layer(manager.clone()))
                    .layer(layer(manager)),
                Composition::NoHook => routes.layer(session_axum::SessionLayer::new(manager)),
                Composition::AdminInside(admin) => routes
                    .nest("/admin", demo::axum::router(admin))
                    .layer(layer(manager)),
            };
            server::serve_axum(router, addr).await.unwrap()
        }
        Framework::Actix => {
            use actix_web::{App, HttpResponse, web};
            use demo::actix::middleware;
            use session_actix::Session;
            async fn stream(session: Session) -> HttpResponse {
                session.insert("streamed", &true).unwrap();
                HttpResponse::Ok().streaming(futures_util::stream::iter(
                    STREAM_CHUNKS.map(|chunk| Ok::<_, std::io::Error>(web::Bytes::from(chunk))),
                ))
            }
            fn configure(config: &mut web::ServiceConfig) {
                demo::actix::configure(config);
                config.route("/stream", web::get().to(stream));
            }
            match composition {
                Composition::Demo => server::serve_actix(middleware(manager), configure, addr),
                Composition::NoLayer => {
                    server::serve_actix_app(move || App::new().configure(configure), addr)
                }
                Composition::Twice => server::serve_actix_app(
                    move || {
                        App::new().wrap(middleware(manager.clone())).service(
                            web::scope("")
                                .wrap(middleware(manager.clone()))
                                .configure(configure),
                        )
                    },
                    addr,
                ),
                Composition::NoHook => server::serve_actix(
                    session_actix::SessionMiddleware::new(manager),
                    configure,
                    addr,
                ),
                Composition::AdminInside(admin) => server::serve_actix_app(
                    move || {
                        App::new()
                            .wrap(middleware(manager.clone()))
                            .service(
                                web::scope("/admin")
                                    .wrap(middleware(admin.clone()))
                                    .configure(demo::actix::configure),
                            )
                            .configure(configure)
                    },
                    addr,
                ),
            }
            .unwrap()
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    set_cookies: Vec<String>,
    body: String,
}

impl Answer {
    fn cookies(&self) -> Vec<SetCookie> {
        SetCookie::parse_all(self.set_cookies.iter().map(String::as_str))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The response's `Vary` header values.
    fn vary(&self) -> Vec<&str> {
        self.headers
            .get_all("vary")
            .iter()
            .map(|value| value.to_str().expect("a text value"))
            .collect()
    }
}

/// An HTTP client with a one-cookie jar, as a browser holding the session.
struct Client {
    http: reqwest::Client,
    base: String,
    cookie_name: String,
    jar: Option<String>,
}

impl Client {
    fn new(server: &Running, config: &SessionConfig) -> Self {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url(),
            cookie_name: config.cookie().name().to_owned(),
            jar: None,
        }
    }

    /// Sends a request with `cookie` as the raw `Cookie` header, leaving the
    /// jar alone.
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, String)>,
        cookie: Option<&str>,
    ) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        if let Some((content_type, body)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let set_cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        let body = response.text().await.unwrap();
        Answer {
            status,
            headers,
            set_cookies,
            body,
        }
    }

    /// Sends a request with the jar's cookie, and keeps what comes back.
    async fn send(&mut self, method: Method, path: &str, body: Option<(&str, String)>) -> Answer {
        let cookie = self
            .jar
            .as_ref()
            .map(|v| format!("{}={v}", self.cookie_name));
        let answer = self.send_with(method, path, body, cookie.as_deref()).await;
        for set_cookie in answer.cookies() {
            assert_eq!(set_cookie.name(), self.cookie_name, "{set_cookie:?}");
            self.jar = (!set_cookie.is_removal()).then(|| set_cookie.value().to_owned());
        }
        answer
    }

    async fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None).await
    }

    async fn put_json(&mut self, path: &str, value: Value) -> Answer {
        self.send(
            Method::PUT,
            path,
            Some(("application/json", value.to_string())),
        )
        .await
    }

    async fn post_json(&mut self, path: &str, value: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            Some(("application/json", value.to_string())),
        )
        .await
    }

    async fn post_form(&mut self, path: &str, form: &str) -> Answer {
        let body = ("application/x-www-form-urlencoded", form.to_owned());
        self.send(Method::POST, path, Some(body)).await
    }

    /// `GET /api/session` with the cookie value `value`, as a client that
    /// kept an old cookie would.
    async fn session_with(&self, value: &str) -> Value {
        let cookie = format!("{}={value}", self.cookie_name);
        let answer = self
            .send_with(Method::GET, "/api/session", None, Some(&cookie))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        answer.json()
    }

    fn cookie(&self) -> String {
        self.jar
            .clone()
            .expect("the client holds no session cookie")
    }
}

/// One server and one client for a case.
struct Harness {
    server: Running,
    client: Client,
}

impl Harness {
    async fn start(
        framework: Framework,
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
    ) -> Self {
        Self::composed(framework, store, config, Composition::Demo).await
    }

    async fn composed(
        framework: Framework,
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
        composition: Composition,
    ) -> Self {
        let manager = SessionManager::with_shared_store(store, config.clone());
        let server = serve(framework, manager, composition).await;
        let client = Client::new(&server, &config);
        Harness { server, client }
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

mod cases {
    use super::*;

    /// Which type an application forgot to add, as the 500 names it.
    fn layer_name(framework: Framework) -> &'static str {
        match framework {
            Framework::Axum => "SessionLayer",
            Framework::Actix => "SessionMiddleware",
        }
    }

    pub(super) async fn extracting_without_the_layer_is_a_500_that_names_it(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h = Harness::composed(
            framework,
            backend.store.clone(),
            SessionConfig::default(),
            Composition::NoLayer,
        )
        .await;
        let put = h.client.put_json("/api/session/a", json!(1)).await;
        assert_eq!(put.status, StatusCode::INTERNAL_SERVER_ERROR, "{put:?}");
        assert!(put.body.contains(layer_name(framework)), "{put:?}");
        assert!(put.set_cookies.is_empty(), "{put:?}");
        // Routes that do not use the session are served as ever.
        assert_eq!(h.client.get("/health").await.status, StatusCode::OK);
        h.stop().await;
    }

    pub(super) async fn a_route_that_does_not_use_the_session_costs_no_store_io(
        framework: Framework,
        backend: Backend,
    ) {
        let store = FaultyStore::around(backend.store.clone());
        let mut h =
            Harness::start(framework, Arc::new(store.clone()), SessionConfig::default()).await;
        h.client.put_json("/api/session/a", json!(1)).await;
        let io = (store.loads(), store.saves());
        for (path, status) in [
            ("/health", StatusCode::OK),
            ("/nothing", StatusCode::NOT_FOUND),
        ] {
            let answer = h.client.get(path).await;
            assert_eq!(answer.status, status, "{path}");
            assert!(answer.set_cookies.is_empty(), "{path}: {answer:?}");
        }
        assert_eq!((store.loads(), store.saves()), io);
        h.stop().await;
    }

    pub(super) async fn the_layer_applied_twice_loads_and_saves_once(
        framework: Framework,
        backend: Backend,
    ) {
        let store = FaultyStore::around(backend.store.clone());
        let mut h = Harness::composed(
            framework,
            Arc::new(store.clone()),
            SessionConfig::default(),
            Composition::Twice,
        )
        .await;
        let first = h.client.put_json("/api/session/a", json!(1)).await;
        assert_eq!(first.set_cookies.len(), 1, "{first:?}");
        assert_eq!(store.saves(), 1);
        let loads = store.loads();
        let second = h.client.put_json("/api/session/b", json!(2)).await;
        assert!(second.set_cookies.len() <= 1, "{second:?}");
        assert_eq!(store.loads() - loads, 1, "one load per request");
        assert_eq!(store.saves(), 2, "one save per request");
        let read = h.client.get("/api/session").await;
        assert_eq!(read.json()["data"], json!({ "a": 1, "b": 2 }));
        h.stop().await;
    }

    /// A layer of another manager nested inside the app's (a stricter one on
    /// `/admin`) keeps its own sessions: its routes use its cookie and store
    /// calls only, and the outer layer's stay as they were.
    pub(super) async fn a_layer_of_another_manager_inside_keeps_its_own_sessions(
        framework: Framework,
        backend: Backend,
    ) {
        let app_store = FaultyStore::around(backend.store.clone());
        let admin_store = FaultyStore::around(backend.store.clone());
        let admin = SessionManager::with_shared_store(
            Arc::new(admin_store.clone()),
            SessionConfig::default()
                .with_cookie_name("admin")
                .with_idle_timeout(Some(Duration::from_secs(300))),
        );
        let mut h = Harness::composed(
            framework,
            Arc::new(app_store.clone()),
            SessionConfig::default(),
            Composition::AdminInside(admin),
        )
        .await;
        h.client.put_json("/api/session/app", json!(1)).await;
        let app_cookie = format!("session={}", h.client.cookie());
        let admin_put = h
            .client
            .send_with(
                Method::PUT,
                "/admin/api/session/admin",
                Some(("application/json", "2".to_owned())),
                Some(&app_cookie),
            )
            .await;
        let [admin_cookie] = admin_put.cookies().try_into().unwrap_or_else(|cookies| {
            panic!("one Set-Cookie expected: {cookies:?}");
        });
        assert_eq!(admin_cookie.name(), "admin");
        assert_eq!(admin_cookie.attribute("Max-Age"), None);
        assert_eq!((app_store.saves(), admin_store.saves()), (1, 1));

        let both = format!("{app_cookie}; {}", admin_cookie.pair());
        for (path, data) in [
            ("/admin/api/session", json!({ "admin": 2 })),
            ("/api/session", json!({ "app": 1 })),
        ] {
            let read = h
                .client
                .send_with(Method::GET, path, None, Some(&both))
                .await;
            assert_eq!(read.json()["data"], data, "{path}");
        }
        assert_eq!((app_store.saves(), admin_store.saves()), (1, 1));
        h.stop().await;
    }

    pub(super) async fn without_a_hook_store_errors_are_a_plain_500(
        framework: Framework,
        backend: Backend,
    ) {
        let outage = FaultyStore::around(backend.store.clone());
        let mut h = Harness::composed(
            framework,
            Arc::new(outage.clone()),
            SessionConfig::default(),
            Composition::NoHook,
        )
        .await;
        outage.fail_writes(true);
        let put = h.client.put_json("/api/session/a", json!(1)).await;
        assert_eq!(
            (put.status, put.body.as_str()),
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the session could not be loaded or saved"
            )
        );
        assert!(put.set_cookies.is_empty(), "{put:?}");
        outage.fail_writes(false);
        h.stop().await;
    }

    pub(super) async fn an_untouched_route_sets_no_cookie(framework: Framework, backend: Backend) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let health = h.client.get("/health").await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::OK, "ok")
        );
        assert!(health.set_cookies.is_empty(), "{health:?}");

        // Nor when the client has a session.
        h.client.put_json("/api/session/a", json!(1)).await;
        let health = h.client.get("/health").await;
        assert!(health.set_cookies.is_empty(), "{health:?}");
        // And a read that changes nothing sends nothing either.
        let read = h.client.get("/api/session").await;
        assert_eq!(read.json()["data"], json!({ "a": 1 }));
        assert!(read.set_cookies.is_empty(), "{read:?}");
        h.stop().await;
    }

    /// A response whose handler loaded the session varies with the `Cookie`
    /// header, so that a shared cache never gives one visitor's response
    /// (or session cookie) to another; one whose handler did not, does not.
    pub(super) async fn a_response_that_used_the_session_varies_on_cookie(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let health = h.client.get("/health").await;
        assert!(health.vary().is_empty(), "{health:?}");
        let write = h.client.put_json("/api/session/a", json!(1)).await;
        assert_eq!(write.vary(), ["Cookie"], "{write:?}");
        let read = h.client.get("/api/session").await;
        assert!(read.set_cookies.is_empty(), "{read:?}");
        assert_eq!(read.vary(), ["Cookie"], "{read:?}");
        let health = h.client.get("/health").await;
        assert!(health.vary().is_empty(), "{health:?}");
        h.stop().await;
    }

    pub(super) async fn insert_then_get_across_requests(framework: Framework, backend: Backend) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let first = h.client.get("/api/session").await;
        assert_eq!(first.json(), json!({ "new": true, "data": {} }));
        assert!(
            first.set_cookies.is_empty(),
            "an empty new session is not saved"
        );

        let put = h
            .client
            .put_json("/api/session/cart", json!([1, 2, {"x": "é"}]))
            .await;
        assert_eq!(put.status, StatusCode::OK);
        assert_eq!(put.set_cookies.len(), 1, "{put:?}");
        let put = h.client.put_json("/api/session/user", json!("ada")).await;
        assert_eq!(put.status, StatusCode::OK);

        let read = h.client.get("/api/session").await;
        assert_eq!(
            read.json(),
            json!({ "new": false, "data": { "cart": [1, 2, {"x": "é"}], "user": "ada" } })
        );

        let deleted = h
            .client
            .send(Method::DELETE, "/api/session/cart", None)
            .await;
        assert_eq!(deleted.status, StatusCode::OK);
        let read = h.client.get("/api/session").await;
        assert_eq!(read.json()["data"], json!({ "user": "ada" }));

        let counted = h.client.send(Method::POST, "/api/counter", None).await;
        assert_eq!(counted.json(), json!({ "counter": 1 }));
        let counted = h.client.send(Method::POST, "/api/counter", None).await;
        assert_eq!(counted.json(), json!({ "counter": 2 }));
        h.stop().await;
    }

    pub(super) async fn a_write_followed_by_a_redirect_is_saved(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let redirect = h.client.post_form("/api/counter", "").await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER);
        assert_eq!(redirect.headers["location"], "/");
        assert_eq!(redirect.set_cookies.len(), 1, "{redirect:?}");
        let read = h.client.get("/api/session").await;
        assert_eq!(read.json()["data"], json!({ "counter": 1 }));

        // The page follows it, and shows the count.
        let page = h.client.get("/").await;
        assert!(
            page.body.contains(r#"<span id="counter">1</span>"#),
            "{}",
            page.body
        );
        h.stop().await;
    }

    pub(super) async fn the_default_cookie_attributes_are_the_safe_ones(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let put = h.client.put_json("/api/session/a", json!(1)).await;
        let [set_cookie] = put.set_cookies.as_slice() else {
            panic!("one Set-Cookie expected: {put:?}");
        };
        let set_cookie = SetCookie::parse(set_cookie);
        assert_eq!(set_cookie.name(), "session");
        assert_eq!(
            set_cookie.attributes(),
            ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"]
        );
        h.stop().await;
    }

    pub(super) async fn every_cookie_attribute_is_as_configured(
        framework: Framework,
        backend: Backend,
    ) {
        let config = SessionConfig::default()
            .with_cookie_name("sid")
            .with_cookie_path("/api")
            .with_cookie_domain(Some("example.test".to_owned()))
            .with_secure(false)
            .with_http_only(false)
            .with_same_site(SameSite::Strict)
            .with_idle_timeout(Some(Duration::from_secs(600)))
            .with_cookie_lifetime(CookieLifetime::Persistent);
        let mut h = Harness::start(framework, backend.store.clone(), config).await;
        let put = h.client.put_json("/api/session/a", json!(1)).await;
        let [set_cookie] = put.set_cookies.as_slice() else {
            panic!("one Set-Cookie expected: {put:?}");
        };
        let set_cookie = SetCookie::parse(set_cookie);
        assert_eq!(set_cookie.name(), "sid");
        assert_eq!(
            set_cookie.attributes(),
            [
                "SameSite=Strict",
                "Path=/api",
                "Domain=example.test",
                "Max-Age=600"
            ]
        );
        let read = h.client.get("/api/session").await;
        assert_eq!(
            read.json()["data"],
            json!({ "a": 1 }),
            "the cookie `sid` is read back"
        );

        // The removal cookie carries the same path, domain and flags.
        let logout = h.client.post_json("/api/logout", json!({})).await;
        let [removal] = logout.set_cookies.as_slice() else {
            panic!("one Set-Cookie expected: {logout:?}");
        };
        let removal = SetCookie::parse(removal);
        assert_eq!(removal.pair(), "sid=");
        let removal_attributes = removal.attributes();
        for expected in [
            "Path=/api",
            "Domain=example.test",
            "Max-Age=0",
            "SameSite=Strict",
        ] {
            assert!(
                removal_attributes.iter().any(|a| a == expected),
                "{removal:?}"
            );
        }
        assert_eq!(
            (removal.attribute("Secure"), removal.attribute("HttpOnly")),
            (None, None)
        );
        h.stop().await;
    }

    pub(super) async fn invalidate_removes_the_cookie_and_the_session(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let login = h
            .client
            .post_json("/api/login", json!({ "user": "ada" }))
            .await;
        assert_eq!(login.json(), json!({ "user": "ada" }));
        let logged_in = h.client.cookie();

        let logout = h.client.post_json("/api/logout", json!({})).await;
        assert_eq!(logout.status, StatusCode::OK);
        let [removal] = logout.set_cookies.as_slice() else {
            panic!("one Set-Cookie expected: {logout:?}");
        };
        let removal = SetCookie::parse(removal);
        assert_eq!(removal.pair(), "session=");
        assert!(removal.is_removal(), "{removal:?}");
        assert!(h.client.jar.is_none());

        let after = h.client.get("/api/session").await;
        assert_eq!(after.json(), json!({ "new": true, "data": {} }));
        if backend.server_side {
            // A client that kept the old cookie is logged out all the same.
            let replayed = h.client.session_with(&logged_in).await;
            assert_eq!(replayed, json!({ "new": true, "data": {} }));
        }
        h.stop().await;
    }

    pub(super) async fn regenerate_changes_the_cookie_and_keeps_the_data(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        h.client
            .put_json("/api/session/cart", json!(["book"]))
            .await;
        let before = h.client.cookie();

        let login = h
            .client
            .post_json("/api/login", json!({ "user": "ada" }))
            .await;
        assert_eq!(login.status, StatusCode::OK);
        assert_eq!(login.set_cookies.len(), 1, "{login:?}");
        let after = h.client.cookie();
        assert_ne!(before, after, "login must change the cookie");

        let read = h.client.get("/api/session").await;
        assert_eq!(
            read.json(),
            json!({ "new": false, "data": { "cart": ["book"], "user": "ada" } })
        );
        if backend.server_side {
            let replayed = h.client.session_with(&before).await;
            assert_eq!(
                replayed,
                json!({ "new": true, "data": {} }),
                "the old id is dead"
            );
        }

        // The page's form logs in too, and redirects.
        let form = h.client.post_form("/api/login", "user=grace").await;
        assert_eq!(form.status, StatusCode::SEE_OTHER);
        assert_ne!(h.client.cookie(), after);
        let page = h.client.get("/").await;
        assert!(
            page.body.contains(r#"<strong id="user">grace</strong>"#),
            "{}",
            page.body
        );
        h.stop().await;
    }

    /// Flash messages: left by the page's login and logout forms, read once
    /// through `GET /api/flash`, on every store.
    pub(super) async fn flash_messages_are_read_once(framework: Framework, backend: Backend) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let none = h.client.get("/api/flash").await;
        assert_eq!(none.json(), json!({ "messages": [] }));
        assert!(
            none.set_cookies.is_empty(),
            "reading no message writes nothing"
        );

        let login = h.client.post_form("/api/login", "user=ada").await;
        assert_eq!(login.status, StatusCode::SEE_OTHER);
        let flash = h.client.get("/api/flash").await;
        assert_eq!(
            flash.json(),
            json!({ "messages": [{ "level": "success", "text": "Logged in as ada." }] })
        );
        let again = h.client.get("/api/flash").await;
        assert_eq!(again.json(), json!({ "messages": [] }), "read once");
        let session = h.client.get("/api/session").await;
        assert_eq!(
            session.json()["data"]["user"],
            json!("ada"),
            "the rest stays"
        );

        let logout = h.client.post_form("/api/logout", "").await;
        assert_eq!(logout.status, StatusCode::SEE_OTHER);
        let flash = h.client.get("/api/flash").await;
        assert_eq!(
            flash.json(),
            json!({ "messages": [{ "level": "info", "text": "Logged out." }] })
        );
        let session = h.client.get("/api/session").await;
        assert_eq!(session.json()["data"], json!({}), "logged out");
        h.stop().await;
    }

    pub(super) async fn a_bogus_cookie_gives_a_new_session(framework: Framework, backend: Backend) {
        let h = Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let long = "A".repeat(5000);
        for bogus in [
            "session=bogus",
            "session=",
            "session=\"",
            "session=../../etc/passwd",
            "session=eyJjIjotMX0",
            "session=a; session=b; session=c; session=d; session=e",
            "garbage without equals",
            &format!("session={long}"),
        ] {
            let answer = h
                .client
                .send_with(Method::GET, "/api/session", None, Some(bogus))
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{bogus}");
            assert_eq!(answer.json(), json!({ "new": true, "data": {} }), "{bogus}");

            let written = h
                .client
                .send_with(
                    Method::PUT,
                    "/api/session/a",
                    Some(("application/json", "1".to_owned())),
                    Some(bogus),
                )
                .await;
            assert_eq!(written.status, StatusCode::OK, "{bogus}");
            assert_eq!(written.json(), json!({ "new": true, "data": { "a": 1 } }));
            let [set_cookie] = written.set_cookies.as_slice() else {
                panic!("one Set-Cookie expected: {written:?}");
            };
            assert!(
                !bogus.contains(SetCookie::parse(set_cookie).value()),
                "a client-chosen id was adopted"
            );
        }
        h.stop().await;
    }

    pub(super) async fn a_failing_store_gives_a_500(framework: Framework, backend: Backend) {
        let outage = FaultyStore::around(backend.store.clone());
        let mut h = Harness::start(
            framework,
            Arc::new(outage.clone()),
            SessionConfig::default(),
        )
        .await;
        h.client.put_json("/api/session/a", json!(1)).await;

        outage.fail_loads(true);
        if backend.server_side {
            let read = h.client.get("/api/session").await;
            assert_eq!(read.status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(read.json(), json!({ "error": "the session store failed" }));
            assert!(read.set_cookies.is_empty());
        }
        let page = h.client.get("/").await;
        assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR, "{page:?}");
        // Routes that do not use the session still work.
        assert_eq!(h.client.get("/health").await.status, StatusCode::OK);
        outage.fail_loads(false);

        // A write that cannot be saved is a 500, not a 200 that lost data.
        outage.fail_writes(true);
        let put = h.client.put_json("/api/session/b", json!(2)).await;
        assert_eq!(put.status, StatusCode::INTERNAL_SERVER_ERROR, "{put:?}");
        assert_eq!(put.json(), json!({ "error": "the session store failed" }));
        assert!(put.set_cookies.is_empty());
        outage.fail_writes(false);

        // Back up: served again, with the data from before the outage.
        let read = h.client.get("/api/session").await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json()["data"], json!({ "a": 1 }));
        h.stop().await;
    }

    pub(super) async fn an_oversized_session_is_a_500_naming_its_size(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h = Harness::start(framework, backend.store, SessionConfig::default()).await;
        h.client.put_json("/api/session/small", json!("kept")).await;
        let big = "x".repeat(5000);
        let put = h.client.put_json("/api/session/big", json!(big)).await;
        if backend.server_side {
            // Only an id travels in the cookie.
            assert_eq!(put.status, StatusCode::OK, "{put:?}");
        } else {
            assert_eq!(put.status, StatusCode::INTERNAL_SERVER_ERROR, "{put:?}");
            assert!(
                put.set_cookies.is_empty(),
                "an oversized cookie was sent: {put:?}"
            );
            let error = put.json()["error"].as_str().unwrap_or_default().to_owned();
            let size: usize = error
                .split(" would be ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no size in {error:?}"));
            assert!(size > 5000 && error.contains("4096"), "{error}");
            // The session as last saved is intact.
            let read = h.client.get("/api/session").await;
            assert_eq!(read.json()["data"], json!({ "small": "kept" }));
        }
        h.stop().await;
    }

    /// Requests that write different keys of one session at the same time:
    /// a server-side store keeps every key (each request saves its delta);
    /// with a cookie store, each response carries a whole session, so the
    /// cookie the client keeps last wins, and only that is checked there.
    pub(super) async fn concurrent_writes_of_different_keys_are_all_kept(
        framework: Framework,
        backend: Backend,
    ) {
        const WRITERS: usize = 16;
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        h.client.put_json("/api/session/base", json!(0)).await;
        let cookie = format!("{}={}", h.client.cookie_name, h.client.cookie());
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..WRITERS {
            let request = h
                .client
                .http
                .put(format!("{}/api/session/k{i}", h.client.base))
                .header(COOKIE, cookie.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(json!(i).to_string());
            writes.spawn(async move { request.send().await.map(|r| r.status()) });
        }
        while let Some(status) = writes.join_next().await {
            assert_eq!(status.unwrap().unwrap(), StatusCode::OK);
        }
        if backend.server_side {
            let data = h.client.session_with(&h.client.cookie()).await["data"].clone();
            let mut expected = serde_json::Map::new();
            expected.insert("base".into(), json!(0));
            for i in 0..WRITERS {
                expected.insert(format!("k{i}"), json!(i));
            }
            assert_eq!(data, Value::Object(expected), "every key is kept");
        }
        h.stop().await;
    }

    pub(super) async fn a_streaming_response_carries_the_cookie(
        framework: Framework,
        backend: Backend,
    ) {
        let mut h =
            Harness::start(framework, backend.store.clone(), SessionConfig::default()).await;
        let streamed = h.client.get("/stream").await;
        assert_eq!(streamed.status, StatusCode::OK);
        assert_eq!(streamed.body, STREAM_CHUNKS.concat());
        assert_eq!(
            streamed.headers["transfer-encoding"], "chunked",
            "{streamed:?}"
        );
        assert_eq!(streamed.set_cookies.len(), 1, "{streamed:?}");
        let read = h.client.get("/api/session").await;
        assert_eq!(read.json()["data"], json!({ "streamed": true }));
        h.stop().await;
    }
}

/// Runs every case for each framework against each backend: one line per
/// backend, `module_name => expression giving its Backend`.
macro_rules! behaviour_suite {
    ($($backend:ident => $make:expr,)*) => {$(
        mod $backend {
            use super::*;
            behaviour_suite!(@framework $make; axum Framework::Axum, actix Framework::Actix);
        }
    )*};
    (@framework $make:expr; $($framework:ident $value:expr),*) => {$(
        mod $framework {
            use super::*;
            behaviour_suite!(@cases $make, $value;
                an_untouched_route_sets_no_cookie,
                a_response_that_used_the_session_varies_on_cookie,
                insert_then_get_across_requests,
                a_write_followed_by_a_redirect_is_saved,
                the_default_cookie_attributes_are_the_safe_ones,
                every_cookie_attribute_is_as_configured,
                invalidate_removes_the_cookie_and_the_session,
                regenerate_changes_the_cookie_and_keeps_the_data,
                a_bogus_cookie_gives_a_new_session,
                a_failing_store_gives_a_500,
                an_oversized_session_is_a_500_naming_its_size,
                a_streaming_response_carries_the_cookie,
                flash_messages_are_read_once,
                concurrent_writes_of_different_keys_are_all_kept,
                extracting_without_the_layer_is_a_500_that_names_it,
                a_route_that_does_not_use_the_session_costs_no_store_io,
                the_layer_applied_twice_loads_and_saves_once,
                a_layer_of_another_manager_inside_keeps_its_own_sessions,
                without_a_hook_store_errors_are_a_plain_500
            );
        }
    )*};
    (@cases $make:expr, $framework:expr; $($case:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            cases::$case($framework, $make).await;
        }
    )*};
}

fn encrypted_cookie_store() -> EncryptedCookieStore {
    EncryptedCookieStore::new(KeyRing::builder(Key::generate()).build().unwrap())
}

/// A Redis store on its own redis-server, which lives as long as the backend.
async fn redis_backend() -> Backend {
    let redis = session_testing::RedisServer::start();
    let store = session_redis::RedisStore::from_url(&redis.url())
        .await
        .expect("connect to the test redis-server");
    Backend::server_side(store).keeping_alive(redis)
}

/// aiohttp_session's `max_age` for its formats' stores.
const AIOHTTP_MAX_AGE: Option<std::time::Duration> = Some(std::time::Duration::from_secs(3600));

/// A Postgres store on a table of its own on the Postgres server that the
/// tests of this process share (stopped when the last one ends).
async fn postgres_backend() -> Backend {
    let postgres = session_testing::PostgresServer::shared();
    let store = session_sqlx::PostgresStore::connect(&postgres.url())
        .await
        .expect("a Postgres URL")
        .with_table_name(&unique_table())
        .expect("a valid table name");
    store.migrate().await.expect("migrate the test table");
    Backend::server_side(store).keeping_alive(postgres)
}

/// A SQLite store on a file of its own, removed with the backend.
async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = session_sqlx::SqliteStore::connect(&url)
        .await
        .expect("open the test database");
    store.migrate().await.expect("migrate the test database");
    Backend::server_side(store).keeping_alive(dir)
}

/// A table name that no other test of this process uses.
fn unique_table() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("sessions_{}_{n}", std::process::id())
}

behaviour_suite! {
    memory => Backend::server_side(MemoryStore::new()),
    simple_cookie => Backend::cookie(SimpleCookieStore::new()),
    encrypted_cookie => Backend::cookie(encrypted_cookie_store()),
    redis => redis_backend().await,
    aiohttp_fernet => Backend::cookie(session_encrypted_cookie::aiohttp::FernetCookieStore::new(
        KeyRing::builder(Key::generate()).build().unwrap(),
        AIOHTTP_MAX_AGE,
    )),
    aiohttp_nacl => Backend::cookie(session_encrypted_cookie::aiohttp::NaclCookieStore::new(
        KeyRing::builder(Key::generate()).build().unwrap(),
        AIOHTTP_MAX_AGE,
    )),
    postgres => postgres_backend().await,
    sqlite => sqlite_backend().await,
}
// aiohttp_session's SimpleCookieStorage format is not in the suite: under
// the suite's rolling refresh (aiohttp's `session_config` turns it off), a
// read sends its unchanged cookie again, quoted, which
// `an_untouched_route_sets_no_cookie` refuses. The interop test and the
// conformance suite cover it.
