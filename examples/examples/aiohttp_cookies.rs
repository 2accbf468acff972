//! A Rust route beside a Python aiohttp service on aiohttp_session's
//! `EncryptedCookieStorage`: both read and write the same Fernet cookie, so
//! a user logged in on one is logged in on the other (README, "Migrating
//! from aiohttp_session").
//!
//! ```sh
//! # The secret both services share: Python's fernet.Fernet.generate_key().
//! export AIOHTTP_SESSION_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
//! cargo run -p session-examples --example aiohttp_cookies
//! ```
//!
//! `GET /whoami` answers who is logged in, `POST /logout` logs out; the
//! Python side logs in.

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use session_axum::{Session, SessionLayer};
use session_core::SessionManager;
use session_encrypted_cookie::aiohttp::{FernetCookieStore, session_config};
use session_encrypted_cookie::{Key, KeyRing};

async fn whoami(session: Session) -> Result<String, StatusCode> {
    let user = session
        .get::<String>("user")
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(match user {
        Some(user) => format!("Logged in as {user}\n"),
        None => "Not logged in\n".to_owned(),
    })
}

async fn logout(session: Session) -> &'static str {
    session.invalidate();
    "Logged out\n"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // base64.urlsafe_b64encode(secret_key), i.e. the Fernet key string.
    let key = Key::from_base64(&std::env::var("AIOHTTP_SESSION_KEY")?)?;
    // Python: EncryptedCookieStorage(secret_key, max_age=3600)
    let max_age = Some(Duration::from_secs(3600));
    let store = FernetCookieStore::new(KeyRing::builder(key).build()?, max_age);
    // Cookie AIOHTTP_SESSION, idle timeout = max_age, reads never extend a
    // session; not Secure, so that it also works over plain http here.
    let config = session_config(max_age).with_secure(false);
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(SessionManager::new(store, config)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
