//! aiohttp_session's "Last visited" example, on actix-web.
//!
//! `cargo run -p session-examples --example actix`, then open
//! http://127.0.0.1:8080/ and reload.

use std::time::SystemTime;

use actix_web::{App, HttpServer, error, web};
use session_actix::{Session, SessionMiddleware};
use session_core::{MemoryStore, SessionConfig, SessionManager};

async fn last_visited(session: Session) -> actix_web::Result<String> {
    let last_visit = session
        .get::<String>("last_visit")
        .map_err(error::ErrorInternalServerError)?;
    session
        .insert("last_visit", &httpdate::fmt_http_date(SystemTime::now()))
        .map_err(error::ErrorInternalServerError)?;
    Ok(format!(
        "Last visited: {}",
        last_visit.as_deref().unwrap_or("never")
    ))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // Plain http on localhost: without `Secure`, every browser keeps the cookie.
    let config = SessionConfig::default().with_secure(false);
    // Built once, outside the factory: every worker shares the one store.
    let manager = SessionManager::new(MemoryStore::new(), config);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(SessionMiddleware::new(manager.clone()))
            .route("/", web::get().to(last_visited))
    })
    .bind("127.0.0.1:8080")?;
    println!("serving on http://{}", server.addrs()[0]);
    server.run().await
}
