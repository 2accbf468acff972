//! The demo's routes on actix-web.

use std::time::SystemTime;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, USER_AGENT};
use actix_web::{HttpRequest, HttpResponse, web};
use session_actix::{Session, SessionMiddleware};
use session_core::SessionManager;

use super::actions::{self, Reply};

/// Adds the demo's routes to an app, without the session middleware: wrap
/// the app in [`middleware`].
///
/// ```
/// use actix_web::App;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
/// use session_examples::demo;
///
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let app = App::new()
///     .wrap(demo::actix::middleware(manager))
///     .configure(demo::actix::configure);
/// ```
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/api/session", web::get().to(show))
        .service(
            web::resource("/api/session/{key}")
                .route(web::put().to(put_value))
                .route(web::delete().to(delete_value)),
        )
        .route("/api/counter", web::post().to(count))
        .route("/api/login", web::post().to(login))
        .route("/api/logout", web::post().to(logout))
        .route("/api/user/sessions", web::get().to(user_sessions))
        .route(
            "/api/user/sessions/revoke-others",
            web::post().to(revoke_others),
        )
        .route("/api/user/sessions/{handle}", web::delete().to(revoke))
        .route("/api/flash", web::get().to(flash))
        .route("/health", web::get().to(health));
}

/// The session middleware as the demo configures it: session errors answer
/// 500 with a JSON body.
pub fn middleware(manager: SessionManager) -> SessionMiddleware {
    SessionMiddleware::new(manager)
        .with_error_response(|error| respond(actions::session_error(error)))
}

fn respond(reply: Reply) -> HttpResponse {
    match reply {
        Reply::Json(status, body) => HttpResponse::build(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.to_string()),
        Reply::Html(html) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(html),
        Reply::Text(text) => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((CONTENT_TYPE, "text/plain; charset=utf-8"))
            .body(text),
        Reply::BackHome => HttpResponse::SeeOther()
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((LOCATION, "/"))
            .finish(),
    }
}

fn content_type(request: &HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
}

async fn index(session: Session) -> HttpResponse {
    respond(actions::index(&session, SystemTime::now()).await)
}

async fn show(session: Session) -> HttpResponse {
    respond(actions::show(&session))
}

async fn put_value(
    session: Session,
    key: web::Path<String>,
    request: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    respond(actions::put(&session, &key, Some(request.query_string()), &body).await)
}

async fn delete_value(session: Session, key: web::Path<String>) -> HttpResponse {
    respond(actions::delete(&session, &key))
}

async fn count(session: Session, request: HttpRequest) -> HttpResponse {
    respond(actions::count(
        &session,
        actions::is_form(content_type(&request)),
    ))
}

async fn login(session: Session, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|value| value.to_str().ok());
    respond(actions::login(
        &session,
        content_type(&request),
        user_agent,
        &body,
    ))
}

async fn logout(session: Session, request: HttpRequest) -> HttpResponse {
    respond(actions::logout(
        &session,
        actions::is_form(content_type(&request)),
    ))
}

async fn user_sessions(session: Session) -> HttpResponse {
    respond(actions::user_sessions(&session).await)
}

async fn revoke(session: Session, handle: web::Path<String>) -> HttpResponse {
    respond(actions::revoke(&session, &handle).await)
}

async fn revoke_others(session: Session, request: HttpRequest) -> HttpResponse {
    let from_form = actions::is_form(content_type(&request));
    respond(actions::revoke_others(&session, from_form).await)
}

async fn flash(session: Session) -> HttpResponse {
    respond(actions::flash(&session))
}

async fn health() -> HttpResponse {
    respond(actions::health())
}
