//! The benchmarked servers: one module per framework, with the same routes
//! ([`crate::scenario`]) on every variant.

use std::error::Error as StdError;
use std::fmt;
use std::net::TcpListener;

use session_core::{MemoryStore, SessionConfig, SessionManager};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};
use session_redis::RedisStore;
use session_sqlx::PostgresStore;
use session_sqlx::sqlx::postgres::{PgPool, PgPoolOptions};

use crate::server::{Framework, Server, StoreKind};

mod actix;
mod axum;

/// Any error that stops a server from starting.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `server` on `listener` until the process is killed. Blocks.
/// Calls `ready` once the server is built (Redis connected, Postgres
/// tables migrated) and about to accept connections.
///
/// Each framework gets one thread for requests: axum a current-thread tokio
/// runtime, actix-web one worker (its accept loop and the system arbiter
/// are extra threads that do almost nothing under load with keep-alive
/// connections). `store_url` is the URL of the store's server: Redis for
/// the Redis-backed servers, Postgres for the Postgres-backed ones, which
/// require it.
///
/// # Errors
///
/// When the server cannot start: no URL for a Redis or Postgres server,
/// the store unreachable, or the listener unusable.
pub fn serve(
    server: Server,
    listener: TcpListener,
    store_url: Option<&str>,
    ready: impl FnOnce(),
) -> Result<(), BoxError> {
    let store_url = match (server.needs_redis(), server.needs_postgres(), store_url) {
        (true, _, None) => return Err(format!("{server} needs --redis-url").into()),
        (_, true, None) => return Err(format!("{server} needs --database-url").into()),
        (_, _, url) => url.map(str::to_owned),
    };
    match server.framework() {
        Framework::Axum => axum::serve(server, listener, store_url, ready),
        Framework::Actix => actix::serve(server, listener, store_url, ready),
    }
}

pub use self::axum::{AxumApp, AxumAppUser};

/// Builds the app of axum server variant `server` and hands it to `user`,
/// for driving it in process (`bench-inprocess`), without sockets.
///
/// # Errors
///
/// As [`serve`]; also when `server` is not an axum server.
pub async fn with_axum_app<U: AxumAppUser>(
    server: Server,
    store_url: Option<&str>,
    user: U,
) -> Result<U::Output, BoxError> {
    axum::with_app(server, store_url, user).await
}

/// The bare axum routes under a layer that only forwards, added with
/// `Router::layer`: a reference for what axum charges any layer added that
/// way, before the layer does anything of its own (`bench-inprocess`).
pub fn axum_bare_with_empty_layer() -> ::axum::Router {
    axum::bare_with_empty_layer()
}

/// How many connections each Postgres-backed server's pool keeps, ours and
/// the peer's alike.
const POSTGRES_POOL: u32 = 8;

/// A pool of [`POSTGRES_POOL`] connections to `url`, the same for ours and
/// tower-sessions-sqlx-store.
async fn postgres_pool(url: &str) -> Result<PgPool, BoxError> {
    Ok(PgPoolOptions::new()
        .max_connections(POSTGRES_POOL)
        .min_connections(POSTGRES_POOL)
        .connect(url)
        .await?)
}

/// A session library's error in a handler: answered with a 500 whose body
/// the load generator reports.
#[derive(Debug)]
struct HandlerError(String);

impl HandlerError {
    fn new(error: impl fmt::Display) -> Self {
        HandlerError(error.to_string())
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The counter's next value: a missing counter counts as 0.
fn next_count(current: Option<u64>) -> u64 {
    current.unwrap_or(0) + 1
}

/// Our session manager for `server`'s kind of store, with the default
/// configuration (which is what an application starts from), except the
/// cipher of the `-aes` cookie variants.
async fn our_manager(server: Server, store_url: Option<&str>) -> Result<SessionManager, BoxError> {
    let config = SessionConfig::default();
    Ok(match server.store() {
        StoreKind::Cookie => {
            let keys = KeyRing::builder(Key::generate()).build()?;
            let store = EncryptedCookieStore::new(keys);
            let store = if server.uses_aes_gcm() {
                store.with_cipher(Cipher::Aes256Gcm)
            } else {
                store
            };
            SessionManager::new(store, config)
        }
        StoreKind::Memory => SessionManager::new(MemoryStore::new(), config),
        StoreKind::Redis => {
            let url = store_url.ok_or("no Redis URL")?;
            SessionManager::new(redis_store(server).connect(url).await?, config)
        }
        StoreKind::Postgres => {
            let url = store_url.ok_or("no Postgres URL")?;
            let store = PostgresStore::new(postgres_pool(url).await?);
            store.migrate().await?;
            SessionManager::new(store, config)
        }
        StoreKind::None => return Err(format!("{server} has no sessions").into()),
    })
}

/// The options of `server`'s Redis store: the defaults, with the client
/// cache on for the `-redis-cached` variants.
fn redis_store(server: Server) -> session_redis::RedisStoreBuilder {
    let builder = RedisStore::builder();
    if server.uses_client_cache() {
        builder.client_cache(crate::server::CLIENT_CACHE_SESSIONS)
    } else {
        builder
    }
}

/// What a cookie floor's counter sends back: the request's `Cookie`
/// header, the one cookie its client holds, as a `Set-Cookie` with the
/// attributes ours gives the cookie of a saved session.
fn cookie_sent_back(cookie: &[u8]) -> Vec<u8> {
    const ATTRIBUTES: &[u8] = b"; HttpOnly; SameSite=Lax; Secure; Path=/";
    [cookie, ATTRIBUTES].concat()
}

/// Our handlers' bodies, on the framework-independent session handle that
/// both adapters' `Session` extractors dereference to: the axum and actix-web
/// handlers only wrap these.
mod ours {
    use session_core::Session;

    use super::{HandlerError, next_count};
    use crate::scenario::{COUNTER_KEY, PAYLOAD_KEY, UNTOUCHED_BODY, USER, USER_KEY, payload};

    pub(super) fn setup_small(session: &Session) -> Result<&'static str, HandlerError> {
        session.insert(USER_KEY, USER).map_err(HandlerError::new)?;
        Ok(UNTOUCHED_BODY)
    }

    pub(super) fn setup_large(session: &Session) -> Result<&'static str, HandlerError> {
        session.insert(USER_KEY, USER).map_err(HandlerError::new)?;
        session
            .insert(PAYLOAD_KEY, payload())
            .map_err(HandlerError::new)?;
        Ok(UNTOUCHED_BODY)
    }

    pub(super) fn read(session: &Session) -> Result<String, HandlerError> {
        let user: Option<String> = session.get(USER_KEY).map_err(HandlerError::new)?;
        Ok(user.unwrap_or_default())
    }

    pub(super) fn counter(session: &Session) -> Result<String, HandlerError> {
        let count = next_count(session.get(COUNTER_KEY).map_err(HandlerError::new)?);
        session
            .insert(COUNTER_KEY, &count)
            .map_err(HandlerError::new)?;
        Ok(count.to_string())
    }

    pub(super) fn read_large(session: &Session) -> Result<String, HandlerError> {
        let payload: Option<String> = session.get(PAYLOAD_KEY).map_err(HandlerError::new)?;
        Ok(payload.map_or(0, |p| p.len()).to_string())
    }
}
