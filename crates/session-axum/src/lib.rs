//! Sessions for [axum](https://docs.rs/axum), through `session-core`.
//!
//! * [`SessionLayer`] is a tower layer: it puts a handle to the request's
//!   session in the request (reading no header and doing no I/O), runs the
//!   handler, then saves what changed and adds the `Set-Cookie` headers to
//!   the response head (so streaming bodies keep their session), and, when
//!   the handler used the session, `Vary: Cookie` (so that shared caches
//!   keep one visitor's response from another).
//! * [`Session`] is the extractor handlers take. The `Cookie` headers are
//!   read and the session loaded from the store when a handler extracts
//!   it, and not at all otherwise: a route
//!   that never asks costs no store I/O and sets no cookie.
//!
//! All session behaviour (expiry, regeneration, invalidation, cookie
//! attributes) lives in `session-core`, so this adapter and `session-actix`
//! behave identically.
//!
//! # Errors
//!
//! A store failure while loading (in the extractor) or saving (after the
//! handler) answers 500. The application picks the response with
//! [`SessionLayer::with_error_response`]; a handler that wants to decide per
//! route takes `Result<Session, SessionRejection>` instead. A handler that
//! extracts [`Session`] on a route no [`SessionLayer`] wraps gets a 500 whose
//! body says the layer is missing.
//!
//! # Example
//!
//! aiohttp_session's "Last visited" example:
//!
//! ```
//! use axum::{Router, http::StatusCode, routing::get};
//! use session_axum::{Session, SessionLayer};
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//!
//! async fn last_visited(session: Session) -> Result<String, StatusCode> {
//!     // Only a value that is not a string fails here.
//!     let last = session
//!         .get::<String>("last_visit")
//!         .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
//!     session.insert_value("last_visit", "just now".into());
//!     Ok(format!("Last visited: {}", last.as_deref().unwrap_or("never")))
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! let app = Router::new()
//!     .route("/", get(last_visited))
//!     .layer(SessionLayer::new(manager));
//!
//! // Serve it with `axum::serve(listener, app)`; here, one request in process.
//! use tower_service::Service;
//! let request = http::Request::get("/").body(axum::body::Body::empty()).unwrap();
//! let response = app.into_service().call(request).await.unwrap();
//! let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
//! assert!(set_cookie.starts_with("session="));
//! # });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE, VARY};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use pin_project_lite::pin_project;
use session_core::{Error, OnError, Rejection, RequestSession, SessionManager, WithSessionSaved};
use tower_layer::Layer;
use tower_service::Service;

/// The body of the 500 answered for a handler that extracts [`Session`]
/// without a [`SessionLayer`].
const MISSING_LAYER: &str = "the session layer is missing: the handler extracts \
    session_axum::Session, but no session_axum::SessionLayer wraps this route";

/// Turns a session error into the response sent instead of the handler's.
type ErrorResponse = OnError<Response>;

/// A 500 that says the session failed, without details: they are logged, and
/// may name the backend's internals.
fn default_error_response(_: &Error) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "the session could not be loaded or saved",
    )
        .into_response()
}

/// What the layer puts in the request for the extractor.
#[derive(Clone)]
struct Attached {
    session: RequestSession,
    on_error: ErrorResponse,
}

/// A tower [`Layer`] that gives every request a session: loaded when a
/// handler extracts [`Session`], saved after the handler returns.
///
/// Add it with `Router::layer` (every route), `Router::route_layer` (matched
/// routes only) or on a nested router. Applied twice with the same manager
/// (or clones of it), the inner layer finds the outer one's session and
/// stands aside, so the session is saved once. Nested with a *different*
/// manager (say, a stricter one on `/admin`), each keeps its own sessions
/// independently: handlers inside the inner layer see its session, and the
/// outer one's is left untouched (unless something outside the inner layer
/// loads it). Give the two managers different cookie names, or the inner
/// one a narrower cookie path, so that their cookies do not overwrite each
/// other in the browser.
///
/// ```
/// use axum::{Router, routing::get};
/// use session_axum::SessionLayer;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(SessionLayer::new(manager));
/// ```
///
/// # Around the whole router
///
/// The layer can also wrap the finished router, the way axum's docs wrap
/// middleware that must run before routing. That is the cheapest place for
/// it: `Router::layer` wraps every route's service in the layer's and
/// boxes the result, which axum clones for every request, whatever the
/// layer does (BENCHMARKS.md in the repository measures it), while a layer
/// around the router is called directly. Every request, including those no
/// route matches, then passes through it, which costs no store I/O when no
/// handler extracts the session. Serve the result with axum's
/// [`ServiceExt::into_make_service`](https://docs.rs/axum/0.8/axum/trait.ServiceExt.html#method.into_make_service):
///
/// ```
/// use axum::extract::Request;
/// use axum::{Router, ServiceExt, routing::get};
/// use session_axum::SessionLayer;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
/// use tower_layer::Layer;
///
/// # async fn run() -> std::io::Result<()> {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let router = Router::new().route("/", get(|| async { "hello" }));
/// let app = SessionLayer::new(manager).layer(router);
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    manager: SessionManager,
    on_error: ErrorResponse,
}

impl SessionLayer {
    /// A layer that keeps sessions with `manager`. Session errors answer a
    /// plain-text 500 until [`with_error_response`](Self::with_error_response)
    /// says otherwise.
    #[must_use]
    pub fn new(manager: SessionManager) -> Self {
        SessionLayer {
            manager,
            on_error: OnError::new(default_error_response),
        }
    }

    /// Sets the response sent when the session cannot be loaded (the
    /// [`Session`] extractor's rejection) or saved (after the handler, which
    /// replaces the handler's response: a response whose session was lost
    /// must not look like a success). The error is logged before `respond`
    /// is called.
    ///
    /// A layer nested inside another layer of the same manager stands
    /// aside, and the outer layer's response is the one sent: give nested
    /// layers of one manager the same response.
    ///
    /// ```
    /// use axum::http::StatusCode;
    /// use axum::response::IntoResponse;
    /// use session_axum::SessionLayer;
    /// use session_core::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let layer = SessionLayer::new(manager).with_error_response(|_error| {
    ///     (StatusCode::SERVICE_UNAVAILABLE, "sessions are down, try again").into_response()
    /// });
    /// ```
    #[must_use]
    pub fn with_error_response(
        mut self,
        respond: impl Fn(&Error) -> Response + Send + Sync + 'static,
    ) -> Self {
        self.on_error = OnError::new(respond);
        self
    }
}

impl fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around the application.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    on_error: ErrorResponse,
}

impl<S> fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of [`SessionService`]'s responses.
    ///
    /// It runs the inner service's future; when the handler loaded the
    /// session, it then saves it and adds the `Set-Cookie` headers. A request
    /// whose handler never asked for the session, or only read it, returns
    /// the inner response without allocating.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithSessionSaved<F, Response, HeaderValue>,
        on_error: ErrorResponse,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (mut response, saved) = std::task::ready!(this.inner.as_mut().poll(cx))?;
        Poll::Ready(Ok(match saved {
            Ok(headers) => {
                let response_headers = response.headers_mut();
                for header in headers {
                    response_headers.append(SET_COOKIE, header);
                }
                let vary = response_headers
                    .get_all(VARY)
                    .iter()
                    .map(HeaderValue::as_bytes);
                if this.inner.needs_vary_cookie(vary) {
                    response_headers.append(VARY, HeaderValue::from_static("Cookie"));
                }
                response
            }
            Err(error) => {
                tracing::error!(%error, "the session could not be saved");
                this.on_error.respond(&error)
            }
        }))
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // `poll_ready` readied `self.inner`, and its future borrows nothing,
        // so no clone of the service is needed.
        // `None` when an outer SessionLayer of the same manager owns this
        // request's session and saves it. One of another manager keeps its
        // own session, which this one's replaces for the handlers inside.
        let owned_by_outer = request
            .extensions()
            .get::<Attached>()
            .is_some_and(|outer| outer.session.manager().same_as(&self.manager));
        let session = (!owned_by_outer).then(|| {
            // The cookies are read by the extractor, if a handler asks.
            let session = self.manager.request();
            request.extensions_mut().insert(Attached {
                session: session.clone(),
                on_error: self.on_error.clone(),
            });
            session
        });
        ResponseFuture {
            inner: WithSessionSaved::new(self.inner.call(request), session),
            on_error: self.on_error.clone(),
        }
    }
}

/// The session of the current request: extract it in a handler.
///
/// It dereferences to [`session_core::Session`], whose methods read and
/// write it. Extracting it loads the session from the store (once per
/// request, however many extractors ask); it is saved after the handler
/// returns. A handler that does not take it leaves the session untouched.
///
/// Writes made after the handler returned (from a task still running, or
/// while a streaming body is sent) are not saved. Writes made before are
/// saved whatever the response's status: a handler that fails after
/// writing should undo its writes, and a panic or timeout caught by a
/// layer *inside* the session layer still leaves a response, so what the
/// handler wrote is saved with it (put such layers outside the session
/// layer to save nothing).
///
/// ```
/// use axum::http::StatusCode;
/// use session_axum::Session;
///
/// async fn counter(session: Session) -> Result<String, StatusCode> {
///     let count = session.get::<u64>("count").map_err(|_| StatusCode::BAD_REQUEST)?;
///     let count = count.unwrap_or(0) + 1;
///     session.insert_value("count", count.into());
///     Ok(count.to_string())
/// }
/// # let _: axum::routing::MethodRouter = axum::routing::post(counter);
/// ```
#[derive(Clone, Debug)]
pub struct Session(session_core::Session);

impl Session {
    /// The framework-independent handle.
    #[must_use]
    pub fn into_inner(self) -> session_core::Session {
        self.0
    }
}

impl Deref for Session {
    type Target = session_core::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<session_core::Session> for Session {
    /// Wraps a handle, for example
    /// [`session_core::Session::new_detached`] to unit-test a handler.
    fn from(session: session_core::Session) -> Self {
        Session(session)
    }
}

impl From<Session> for session_core::Session {
    fn from(session: Session) -> Self {
        session.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = SessionRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Borrowed, not cloned: the load owns what it needs, and the error
        // response is cloned only for a load that failed.
        let Some(attached) = parts.extensions.get::<Attached>() else {
            return Err(SessionRejection(Rejection::missing_layer(MISSING_LAYER)));
        };
        let cookies = parts
            .headers
            .get_all(COOKIE)
            .iter()
            .map(HeaderValue::as_bytes);
        match attached.session.session(cookies).await {
            Ok(session) => Ok(Session(session)),
            Err(error) => Err(SessionRejection(Rejection::load_failed(
                error,
                attached.on_error.clone(),
            ))),
        }
    }
}

/// Why [`Session`] could not be extracted.
///
/// As a response it is a 500: for a store failure, the one chosen with
/// [`SessionLayer::with_error_response`]; for a missing layer, a text that
/// says so. Take `Result<Session, SessionRejection>` in a handler to answer
/// differently.
///
/// ```
/// use axum::http::StatusCode;
/// use session_axum::{Session, SessionRejection};
///
/// async fn greeting(session: Result<Session, SessionRejection>) -> (StatusCode, String) {
///     match session {
///         Ok(session) => (StatusCode::OK, format!("{} keys", session.len())),
///         // Degrade instead of failing: the page works without a session.
///         Err(rejection) if rejection.error().is_some() => (StatusCode::OK, "hello".into()),
///         Err(rejection) => (StatusCode::INTERNAL_SERVER_ERROR, rejection.to_string()),
///     }
/// }
/// ```
///
/// It dereferences to [`session_core::Rejection`], which tells the two
/// apart ([`is_missing_layer`](Rejection::is_missing_layer),
/// [`error`](Rejection::error)).
pub struct SessionRejection(Rejection<ErrorResponse>);

impl SessionRejection {
    /// The error that kept the session from loading, if that is what
    /// happened.
    #[must_use]
    pub fn into_error(self) -> Option<Error> {
        self.0.into_error()
    }
}

impl Deref for SessionRejection {
    type Target = Rejection<OnError<Response>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Debug for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SessionRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl IntoResponse for SessionRejection {
    fn into_response(self) -> Response {
        self.0.respond(
            |message| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                    message,
                )
                    .into_response()
            },
            |on_error, error| on_error.respond(error),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<Session>();
        assert_send_sync::<SessionLayer>();
    }
}
