//! The demo's routes on axum.

use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, USER_AGENT};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use session_axum::{Session, SessionLayer};
use session_core::SessionManager;

use super::actions::{self, Reply};

/// The demo's routes, without the session layer: add
/// [`layer`] (or use [`router`]).
pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/session", get(show))
        .route("/api/session/{key}", put(put_value).delete(delete_value))
        .route("/api/counter", post(count))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/user/sessions", get(user_sessions))
        .route("/api/user/sessions/revoke-others", post(revoke_others))
        .route("/api/user/sessions/{handle}", delete(revoke))
        .route("/api/flash", get(flash))
        .route("/health", get(health))
}

/// The session layer as the demo configures it: session errors answer 500
/// with a JSON body.
pub fn layer(manager: SessionManager) -> SessionLayer {
    SessionLayer::new(manager).with_error_response(|error| respond(actions::session_error(error)))
}

/// The demo app: [`routes`] with [`layer`].
pub fn router(manager: SessionManager) -> Router {
    routes().layer(layer(manager))
}

fn respond(reply: Reply) -> Response {
    let no_store = [(CACHE_CONTROL, "no-store")];
    match reply {
        Reply::Json(status, body) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            no_store,
            [(CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        Reply::Html(html) => {
            (no_store, [(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
        }
        Reply::Text(text) => (
            no_store,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response(),
        Reply::BackHome => (
            StatusCode::SEE_OTHER,
            no_store,
            [(LOCATION, "/")],
            Body::empty(),
        )
            .into_response(),
    }
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

async fn index(session: Session) -> Response {
    respond(actions::index(&session, SystemTime::now()).await)
}

async fn show(session: Session) -> Response {
    respond(actions::show(&session))
}

async fn put_value(session: Session, Path(key): Path<String>, uri: Uri, body: Bytes) -> Response {
    respond(actions::put(&session, &key, uri.query(), &body).await)
}

async fn delete_value(session: Session, Path(key): Path<String>) -> Response {
    respond(actions::delete(&session, &key))
}

async fn count(session: Session, headers: HeaderMap) -> Response {
    respond(actions::count(
        &session,
        actions::is_form(content_type(&headers)),
    ))
}

async fn login(session: Session, headers: HeaderMap, body: Bytes) -> Response {
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok());
    respond(actions::login(
        &session,
        content_type(&headers),
        user_agent,
        &body,
    ))
}

async fn logout(session: Session, headers: HeaderMap) -> Response {
    respond(actions::logout(
        &session,
        actions::is_form(content_type(&headers)),
    ))
}

async fn user_sessions(session: Session) -> Response {
    respond(actions::user_sessions(&session).await)
}

async fn revoke(session: Session, Path(handle): Path<String>) -> Response {
    respond(actions::revoke(&session, &handle).await)
}

async fn revoke_others(session: Session, headers: HeaderMap) -> Response {
    let from_form = actions::is_form(content_type(&headers));
    respond(actions::revoke_others(&session, from_form).await)
}

async fn flash(session: Session) -> Response {
    respond(actions::flash(&session))
}

async fn health() -> Response {
    respond(actions::health())
}
