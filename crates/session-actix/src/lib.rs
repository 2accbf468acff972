//! Sessions for [actix-web](https://docs.rs/actix-web), through
//! `session-core`.
//!
//! * [`SessionMiddleware`] puts a handle to the request's session in the
//!   request (reading no header and doing no I/O), runs the handler, then
//!   saves what changed and adds the `Set-Cookie` headers to the response
//!   head (so streaming bodies keep their session), and, when the handler
//!   used the session, `Vary: Cookie` (so that shared caches keep one
//!   visitor's response from another).
//! * [`Session`] is the extractor handlers take; [`SessionExt::session`]
//!   gives the same from an `HttpRequest` or a `ServiceRequest`. The
//!   `Cookie` headers are read and the session loaded from the store when
//!   it is first asked for, and not at all
//!   otherwise: a route that never asks costs no store I/O and sets no
//!   cookie.
//!
//! Unlike actix-session's, the handle is `Send + Sync`: it can move into
//! `tokio::spawn`ed tasks of the request. All session behaviour lives in
//! `session-core`, so this adapter and `session-axum` behave identically.
//!
//! # Errors
//!
//! A store failure while loading (in the extractor) or saving (after the
//! handler) answers 500. The application picks the response with
//! [`SessionMiddleware::with_error_response`]; a handler that wants to decide
//! per route takes `Result<Session, SessionRejection>` instead. A handler
//! that extracts [`Session`] on a route the middleware does not wrap gets a
//! 500 whose body says the middleware is missing.
//!
//! # Example
//!
//! aiohttp_session's "Last visited" example:
//!
//! ```
//! use actix_web::{App, HttpResponse, test, web};
//! use session_actix::{Session, SessionMiddleware};
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//!
//! async fn last_visited(session: Session) -> actix_web::Result<String> {
//!     let last = session.get::<String>("last_visit").map_err(actix_web::error::ErrorBadRequest)?;
//!     session.insert("last_visit", "just now").map_err(actix_web::error::ErrorInternalServerError)?;
//!     Ok(format!("Last visited: {}", last.as_deref().unwrap_or("never")))
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! let app = App::new()
//!     .wrap(SessionMiddleware::new(manager))
//!     .route("/", web::get().to(last_visited));
//!
//! // Serve it with `HttpServer::new(...)`; here, one request in process.
//! let app = test::init_service(app).await;
//! let response = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap();
//! assert!(set_cookie.starts_with("session="));
//! # });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

use std::fmt;
use std::future::{Future, Ready, ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::StatusCode;
use actix_web::http::header::{COOKIE, HeaderMap, HeaderValue, SET_COOKIE, VARY};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use pin_project_lite::pin_project;
use session_core::{Error, OnError, Rejection, RequestSession, SessionManager, WithSessionSaved};

/// The body of the 500 answered for a handler that extracts [`Session`]
/// without a [`SessionMiddleware`].
const MISSING_MIDDLEWARE: &str = "the session middleware is missing: the handler extracts \
    session_actix::Session, but no session_actix::SessionMiddleware wraps this route";

/// Turns a session error into the response sent instead of the handler's.
type ErrorResponse = OnError<HttpResponse>;

/// A 500 that says the session failed, without details: they are logged, and
/// may name the backend's internals.
fn default_error_response(_: &Error) -> HttpResponse {
    HttpResponse::InternalServerError()
        .content_type("text/plain; charset=utf-8")
        .body("the session could not be loaded or saved")
}

/// What the middleware puts in the request for the extractor.
#[derive(Clone)]
struct Attached {
    session: RequestSession,
    on_error: ErrorResponse,
}

/// Middleware that gives every request a session: loaded when a handler
/// asks for it, saved after the handler returns.
///
/// Add it with `App::wrap`, `Scope::wrap` or `Resource::wrap`. Applied
/// twice with the same manager (or clones of it), the inner one finds the
/// outer one's session and stands aside, so the session is saved once.
/// Nested with a *different* manager (say, a stricter one on `/admin`),
/// each keeps its own sessions independently: handlers inside the inner
/// one see its session, and the outer one's is left untouched (unless
/// something outside the inner one loads it). Give the two managers
/// different cookie names, or the inner one a narrower cookie path, so
/// that their cookies do not overwrite each other in the browser.
///
/// ```
/// use actix_web::{App, web};
/// use session_actix::SessionMiddleware;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let app = App::new()
///     .wrap(SessionMiddleware::new(manager))
///     .route("/", web::get().to(|| async { "hello" }));
/// ```
#[derive(Clone)]
pub struct SessionMiddleware {
    manager: SessionManager,
    on_error: ErrorResponse,
}

impl SessionMiddleware {
    /// A middleware that keeps sessions with `manager`. Session errors answer
    /// a plain-text 500 until
    /// [`with_error_response`](Self::with_error_response) says otherwise.
    #[must_use]
    pub fn new(manager: SessionManager) -> Self {
        SessionMiddleware {
            manager,
            on_error: OnError::new(default_error_response),
        }
    }

    /// Sets the response sent when the session cannot be loaded (the
    /// [`Session`] extractor's error) or saved (after the handler, which
    /// replaces the handler's response: a response whose session was lost
    /// must not look like a success). The error is logged before `respond`
    /// is called.
    ///
    /// A middleware nested inside another of the same manager stands aside,
    /// and the outer one's response is the one sent: give nested
    /// middleware of one manager the same response.
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use session_actix::SessionMiddleware;
    /// use session_core::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let middleware = SessionMiddleware::new(manager).with_error_response(|_error| {
    ///     HttpResponse::ServiceUnavailable().body("sessions are down, try again")
    /// });
    /// ```
    #[must_use]
    pub fn with_error_response(
        mut self,
        respond: impl Fn(&Error) -> HttpResponse + Send + Sync + 'static,
    ) -> Self {
        self.on_error = OnError::new(respond);
        self
    }
}

impl fmt::Debug for SessionMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionMiddleware")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(SessionService {
            service: Rc::new(service),
            manager: self.manager.clone(),
            on_error: self.on_error.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the application.
pub struct SessionService<S> {
    service: Rc<S>,
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
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: WithSessionSaved<F, ServiceResponse<B>, HeaderValue>,
        on_error: ErrorResponse,
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // A service error (not a handler's: actix turns those into
        // responses) ends the request before the session is saved.
        let (mut response, saved) = std::task::ready!(this.inner.as_mut().poll(cx))?;
        Poll::Ready(Ok(match saved {
            Ok(headers) => {
                let response_headers = response.headers_mut();
                for header in headers {
                    response_headers.append(SET_COOKIE, header);
                }
                let vary = response_headers.get_all(VARY).map(HeaderValue::as_bytes);
                if this.inner.needs_vary_cookie(vary) {
                    response_headers.append(VARY, HeaderValue::from_static("Cookie"));
                }
                response.map_into_left_body()
            }
            Err(error) => {
                tracing::error!(%error, "the session could not be saved");
                let replacement = this.on_error.respond(&error);
                response.into_response(replacement).map_into_right_body()
            }
        }))
    }
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future, B>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // Read first: the extensions' borrow must end before they are written.
        let owned_by_outer = request
            .extensions()
            .get::<Attached>()
            .is_some_and(|outer| outer.session.manager().same_as(&self.manager));
        // `None` when an outer SessionMiddleware of the same manager owns
        // this request's session and saves it. One of another manager keeps
        // its own session, which this one's replaces for the handlers inside.
        let session = (!owned_by_outer).then(|| {
            // The cookies are read when a handler asks for the session, if one does.
            let session = self.manager.request();
            request.extensions_mut().insert(Attached {
                session: session.clone(),
                on_error: self.on_error.clone(),
            });
            session
        });
        ResponseFuture {
            inner: WithSessionSaved::new(self.service.call(request), session),
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
/// saved whatever the response's status, a handler's `Err` included
/// (actix-web turns it into a response): a handler that fails after
/// writing should undo its writes.
///
/// ```
/// use session_actix::Session;
///
/// async fn counter(session: Session) -> actix_web::Result<String> {
///     let count = session.get::<u64>("count").ok().flatten().unwrap_or(0) + 1;
///     session.insert("count", &count).map_err(actix_web::error::ErrorInternalServerError)?;
///     Ok(count.to_string())
/// }
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

impl FromRequest for Session {
    type Error = SessionRejection;
    type Future = SessionFuture;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        request.session()
    }
}

/// Access to the session from an [`HttpRequest`] or a [`ServiceRequest`], for
/// code that is not a handler's argument list (another middleware, a
/// guard-like helper).
///
/// ```
/// use actix_web::HttpRequest;
/// use session_actix::SessionExt;
///
/// async fn whoami(request: HttpRequest) -> actix_web::Result<String> {
///     let session = request.session().await?;
///     Ok(session.get::<String>("user").ok().flatten().unwrap_or_default())
/// }
/// ```
pub trait SessionExt {
    /// The request's session, loaded from the store on the first call of the
    /// request (from here or from the [`Session`] extractor). The future
    /// does not borrow the request, so a middleware can start it and then
    /// hand the request on.
    fn session(&self) -> SessionFuture;
}

/// The future of [`SessionExt::session`] and of the [`Session`] extractor:
/// `Send`, and borrowing nothing.
pub struct SessionFuture(Loading);

/// Where a [`SessionFuture`] stands.
enum Loading {
    /// Loading from the store (or ready at once, when already loaded).
    Store(session_core::LoadSession, ErrorResponse),
    /// No middleware put a session in the request.
    MissingMiddleware,
    /// The output was returned.
    Done,
}

impl fmt::Debug for SessionFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            Loading::Store(..) => "loading",
            Loading::MissingMiddleware => "missing middleware",
            Loading::Done => "done",
        };
        f.debug_tuple("SessionFuture").field(&state).finish()
    }
}

impl Future for SessionFuture {
    type Output = Result<Session, SessionRejection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match std::mem::replace(&mut self.0, Loading::Done) {
            Loading::Store(mut loading, on_error) => match Pin::new(&mut loading).poll(cx) {
                Poll::Pending => {
                    self.0 = Loading::Store(loading, on_error);
                    Poll::Pending
                }
                Poll::Ready(Ok(session)) => Poll::Ready(Ok(Session(session))),
                Poll::Ready(Err(error)) => Poll::Ready(Err(SessionRejection(
                    Rejection::load_failed(error, on_error),
                ))),
            },
            Loading::MissingMiddleware => Poll::Ready(Err(SessionRejection(
                Rejection::missing_layer(MISSING_MIDDLEWARE),
            ))),
            Loading::Done => panic!("session_actix::SessionFuture polled after completion"),
        }
    }
}

impl SessionExt for HttpRequest {
    fn session(&self) -> SessionFuture {
        load(self.extensions().get::<Attached>(), self.headers())
    }
}

impl SessionExt for ServiceRequest {
    fn session(&self) -> SessionFuture {
        load(self.extensions().get::<Attached>(), self.headers())
    }
}

/// Starts loading the session from the request's `Cookie` headers, which
/// are parsed before this returns: the future borrows nothing.
fn load(attached: Option<&Attached>, headers: &HeaderMap) -> SessionFuture {
    SessionFuture(match attached {
        Some(attached) => {
            let cookies = headers.get_all(COOKIE).map(HeaderValue::as_bytes);
            Loading::Store(attached.session.session(cookies), attached.on_error.clone())
        }
        None => Loading::MissingMiddleware,
    })
}

/// Why the session could not be had.
///
/// As a response it is a 500: for a store failure, the one chosen with
/// [`SessionMiddleware::with_error_response`]; for a missing middleware, a
/// text that says so. Take `Result<Session, SessionRejection>` in a handler
/// to answer differently.
///
/// ```
/// use actix_web::HttpResponse;
/// use session_actix::{Session, SessionRejection};
///
/// async fn greeting(session: Result<Session, SessionRejection>) -> HttpResponse {
///     match session {
///         Ok(session) => HttpResponse::Ok().body(format!("{} keys", session.len())),
///         // Degrade instead of failing: the page works without a session.
///         Err(rejection) if rejection.error().is_some() => HttpResponse::Ok().body("hello"),
///         Err(rejection) => HttpResponse::InternalServerError().body(rejection.to_string()),
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
    type Target = Rejection<OnError<HttpResponse>>;

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

impl ResponseError for SessionRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        self.0.respond(
            |message| {
                HttpResponse::InternalServerError()
                    .content_type("text/plain; charset=utf-8")
                    .body(message)
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
        assert_send_sync::<SessionMiddleware>();
    }

    #[test]
    fn the_session_future_can_move_to_another_thread() {
        fn assert_send_unpin<T: Send + Unpin + 'static>() {}
        assert_send_unpin::<SessionFuture>();
    }
}
