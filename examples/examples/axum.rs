//! aiohttp_session's "Last visited" example, on axum.
//!
//! `cargo run -p session-examples --example axum`, then open
//! http://127.0.0.1:8080/ and reload.

use std::time::SystemTime;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use session_axum::{Session, SessionLayer};
use session_core::{MemoryStore, SessionConfig, SessionManager};

async fn last_visited(session: Session) -> Result<String, StatusCode> {
    // Only a value that is not a string fails here.
    let last_visit = session
        .get::<String>("last_visit")
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    session.insert_value(
        "last_visit",
        httpdate::fmt_http_date(SystemTime::now()).into(),
    );
    Ok(format!(
        "Last visited: {}",
        last_visit.as_deref().unwrap_or("never")
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Plain http on localhost: without `Secure`, every browser keeps the cookie.
    let config = SessionConfig::default().with_secure(false);
    let manager = SessionManager::new(MemoryStore::new(), config);
    let app = Router::new()
        .route("/", get(last_visited))
        .layer(SessionLayer::new(manager));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
