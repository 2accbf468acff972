//! One Redis store behind both adapters: the same sessions on axum and on
//! actix-web at once, as when a service moves from one framework to the other
//! or runs several processes.
//!
//! ```sh
//! redis-server --port 6379 &   # or any Redis >= 7.0
//! cargo run -p session-examples --example redis -- redis://127.0.0.1:6379
//! ```
//!
//! Then open http://localhost:8080/ (axum) and http://localhost:8081/
//! (actix-web) in turn: browsers send one host's cookies to every port, so
//! both servers see the same session, and the visit counter counts visits to
//! either.

use std::time::Duration;

use actix_web::{App, HttpServer, error, web};
use axum::http::StatusCode;
use session_core::{Session, SessionConfig, SessionManager};
use session_redis::RedisStore;

/// The page, written once against `session_core::Session`, which both
/// adapters' extractors dereference to.
fn visit(session: &Session, framework: &str) -> Result<String, session_core::Error> {
    let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
    session.insert("visits", &visits)?;
    let last = session.get::<String>("last_framework")?;
    session.insert("last_framework", framework)?;
    Ok(format!(
        "Visit {visits}, served by {framework}; the previous visit was served by {}",
        last.as_deref().unwrap_or("nobody")
    ))
}

async fn axum_page(session: session_axum::Session) -> Result<String, StatusCode> {
    visit(&session, "axum").map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn actix_page(session: session_actix::Session) -> actix_web::Result<String> {
    visit(&session, "actix-web").map_err(error::ErrorInternalServerError)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let store = RedisStore::builder()
        .command_timeout(Duration::from_secs(1))
        .connect(&url)
        .await?;
    // Plain http on localhost: without `Secure`, every browser keeps the cookie.
    let manager = SessionManager::new(store, SessionConfig::default().with_secure(false));

    let axum_app = axum::Router::new()
        .route("/", axum::routing::get(axum_page))
        .layer(session_axum::SessionLayer::new(manager.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    println!("axum on http://localhost:8080/");
    let axum_server = tokio::spawn(async move { axum::serve(listener, axum_app).await });

    let actix_server = HttpServer::new(move || {
        App::new()
            .wrap(session_actix::SessionMiddleware::new(manager.clone()))
            .route("/", web::get().to(actix_page))
    })
    .bind("127.0.0.1:8081")?;
    println!("actix-web on http://localhost:8081/");
    actix_server.run().await?;
    axum_server.abort();
    Ok(())
}
