//! aiohttp_session's "Last visited" example, on axum, with encrypted cookies.
//!
//! `cargo run -p session-examples --example axum`, then open
//! http://localhost:8080/ and reload. Set `SESSION_KEY` to a key printed by
//! `Key::generate().to_base64()` to keep sessions across restarts.

use std::time::SystemTime;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use session_axum::{Session, SessionLayer};
use session_core::{SessionConfig, SessionManager};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};

async fn last_visited(session: Session) -> Result<String, StatusCode> {
    // Only a stored value that is not a string fails here.
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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = match std::env::var("SESSION_KEY") {
        Ok(text) => Key::from_base64(&text)?,
        Err(_) => Key::generate(),
    };
    let store = EncryptedCookieStore::new(KeyRing::builder(key).build()?);
    let manager = SessionManager::new(store, SessionConfig::default());
    let app = Router::new()
        .route("/", get(last_visited))
        .layer(SessionLayer::new(manager));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("serving on http://localhost:8080/");
    axum::serve(listener, app).await?;
    Ok(())
}
