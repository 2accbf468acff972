//! The axum servers.

use std::convert::Infallible;
use std::net::TcpListener;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, ServiceExt};
use tower_layer::Layer;
use tower_service::Service;

use super::{BoxError, HandlerError, cookie_sent_back, our_manager, ours, postgres_pool};
use crate::scenario::{
    COUNTER, PAYLOAD_LEN_TEXT, READ, READ_LARGE, SETUP_LARGE, SETUP_SMALL, UNTOUCHED,
    UNTOUCHED_BODY, USER,
};
use crate::server::Server;

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
    }
}

/// A whole axum app as axum serves it: the router, possibly wrapped in a
/// session layer.
pub trait AxumApp:
    Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> AxumApp for S where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// What is done with an axum server variant's app: served on a socket, or
/// driven in process. Each variant's app has its own type and is handed
/// to this generic method rather than returned: a boxed service would
/// charge every variant, bare axum included, an allocation per request.
pub trait AxumAppUser {
    /// What using the app gives.
    type Output;

    /// Uses `app`.
    fn with_app<A: AxumApp>(self, app: A) -> impl Future<Output = Self::Output>;
}

pub(super) fn serve(
    server: Server,
    listener: TcpListener,
    store_url: Option<String>,
    ready: impl FnOnce(),
) -> Result<(), BoxError> {
    /// Serves the app on the listener once the app is built.
    struct Serve<R> {
        listener: TcpListener,
        ready: R,
    }

    impl<R: FnOnce()> AxumAppUser for Serve<R> {
        type Output = Result<(), BoxError>;

        async fn with_app<A: AxumApp>(self, app: A) -> Result<(), BoxError> {
            self.listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(self.listener)?;
            (self.ready)();
            axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await?;
            Ok(())
        }
    }

    // One thread serves everything, as actix-web's single worker does.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        with_app(server, store_url.as_deref(), Serve { listener, ready }).await?
    })
}

/// Builds axum server `server`'s app and hands it to `user`.
///
/// The session layers wrap the whole router, as `session-axum` recommends
/// for the least cost per request: axum's `Router::layer` would wrap every
/// route's service in the layer's and box the result, which axum clones for
/// every request (see [`bare_with_empty_layer`]). tower-sessions gets the
/// same wiring, so that the comparison is of the session layers alone.
pub(super) async fn with_app<U: AxumAppUser>(
    server: Server,
    store_url: Option<&str>,
    user: U,
) -> Result<U::Output, BoxError> {
    Ok(match server {
        Server::AxumBare => user.with_app(bare()).await,
        Server::AxumTowerSessionsMemory => {
            let store = tower_sessions::MemoryStore::default();
            let layer = tower_sessions::SessionManagerLayer::new(store);
            user.with_app(layer.layer(handlers_tower_sessions_015::routes()))
                .await
        }
        Server::AxumTowerSessionsRedis => {
            use tower_sessions_redis_store::fred::prelude::{ClientLike, Config};
            let url = store_url.ok_or("no Redis URL")?;
            // One connection, as our store and actix-session's use: fred
            // pipelines concurrent commands on it.
            let client = tower_sessions_redis_store::fred::prelude::Client::new(
                Config::from_url(url)?,
                None,
                None,
                None,
            );
            client.init().await?;
            let store = tower_sessions_redis_store::RedisStore::new(client);
            let layer = tower_sessions_014::SessionManagerLayer::new(store);
            user.with_app(layer.layer(handlers_tower_sessions_014::routes()))
                .await
        }
        Server::AxumTowerSessionsPostgres => {
            let url = store_url.ok_or("no Postgres URL")?;
            let store = tower_sessions_sqlx_store::PostgresStore::new(postgres_pool(url).await?);
            store.migrate().await?;
            let layer = tower_sessions_014::SessionManagerLayer::new(store);
            user.with_app(layer.layer(handlers_tower_sessions_014::routes()))
                .await
        }
        Server::AxumRedisFloor => {
            let url = store_url.ok_or("no Redis URL")?;
            user.with_app(redis_floor::routes(url).await?).await
        }
        Server::AxumCookieFloor => {
            let layer = session_axum::SessionLayer::new(our_manager(server, None).await?);
            user.with_app(cookie_floor(layer)).await
        }
        Server::AxumOursCookie
        | Server::AxumOursCookieAes
        | Server::AxumOursMemory
        | Server::AxumOursRedis
        | Server::AxumOursRedisCached
        | Server::AxumOursPostgres => {
            let layer = session_axum::SessionLayer::new(our_manager(server, store_url).await?);
            user.with_app(layer.layer(our_routes())).await
        }
        other => return Err(format!("{other} is not an axum server").into()),
    })
}

async fn untouched() -> &'static str {
    UNTOUCHED_BODY
}

/// [`bare`] under a layer that only forwards, added with `Router::layer`,
/// which wraps every route's service in the layer's and boxes the result,
/// which axum clones for every request: a cost any layer added that way
/// pays before it does anything.
pub(super) fn bare_with_empty_layer() -> Router {
    bare().layer(EmptyLayer)
}

/// A tower layer whose service forwards every request untouched.
#[derive(Clone, Copy)]
struct EmptyLayer;

impl<S> tower_layer::Layer<S> for EmptyLayer {
    type Service = Forward<S>;

    fn layer(&self, inner: S) -> Forward<S> {
        Forward(inner)
    }
}

/// [`EmptyLayer`]'s service.
#[derive(Clone)]
struct Forward<S>(S);

impl<S: Service<R>, R> Service<R> for Forward<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.0.call(request)
    }
}

/// The same routes without sessions: constant answers.
fn bare() -> Router {
    constant_routes()
        .route(SETUP_SMALL, get(untouched))
        .route(SETUP_LARGE, get(untouched))
        // No session to count in: the load generator does not check it.
        .route(COUNTER, get(async || "1"))
}

/// The routes whose answers are constants without sessions: all but the
/// setups and the counter.
fn constant_routes() -> Router {
    Router::new()
        .route(UNTOUCHED, get(untouched))
        .route(READ, get(async || USER))
        .route(READ_LARGE, get(async || PAYLOAD_LEN_TEXT))
}

/// [`Server::AxumCookieFloor`]'s app: our setup routes under `layer`,
/// in a router of their own so that the layer wraps nothing that is
/// measured, and bare answers to the measured routes.
fn cookie_floor(layer: session_axum::SessionLayer) -> Router {
    use axum::http::header::{COOKIE, SET_COOKIE};
    use axum::http::{HeaderMap, HeaderValue};

    // The request's cookie, sent back as ours sends a saved one. The
    // request is taken whole, a move: extracting a `HeaderMap` would copy
    // the headers.
    let counter = async |request: Request| {
        let mut headers = HeaderMap::new();
        if let Some(cookie) = request.headers().get(COOKIE)
            && let Ok(value) = HeaderValue::from_bytes(&cookie_sent_back(cookie.as_bytes()))
        {
            headers.insert(SET_COOKIE, value);
        }
        (headers, "1")
    };
    our_setup_routes()
        .layer(layer)
        .merge(constant_routes().route(COUNTER, get(counter)))
}

/// Our setup routes: the adapter's extractor around [`ours`].
fn our_setup_routes() -> Router {
    use session_axum::Session;
    Router::new()
        .route(
            SETUP_SMALL,
            get(async |session: Session| ours::setup_small(&session)),
        )
        .route(
            SETUP_LARGE,
            get(async |session: Session| ours::setup_large(&session)),
        )
}

/// Our handlers: the adapter's extractor around [`ours`].
fn our_routes() -> Router {
    use session_axum::Session;
    our_setup_routes()
        .route(UNTOUCHED, get(untouched))
        .route(READ, get(async |session: Session| ours::read(&session)))
        .route(
            COUNTER,
            get(async |session: Session| ours::counter(&session)),
        )
        .route(
            READ_LARGE,
            get(async |session: Session| ours::read_large(&session)),
        )
}

/// The handlers on tower-sessions, whose API is the same in 0.14 (the
/// version tower-sessions-redis-store 0.16 implements) and 0.15: one
/// definition, instantiated for each.
macro_rules! tower_sessions_handlers {
    ($module:ident, $krate:ident) => {
        mod $module {
            use ::$krate::Session;
            use axum::Router;
            use axum::routing::get;

            use super::{HandlerError, untouched};
            use crate::scenario::{
                COUNTER, COUNTER_KEY, PAYLOAD_KEY, READ, READ_LARGE, SETUP_LARGE, SETUP_SMALL,
                UNTOUCHED, UNTOUCHED_BODY, USER, USER_KEY, payload,
            };
            use crate::servers::next_count;

            pub(super) fn routes() -> Router {
                Router::new()
                    .route(UNTOUCHED, get(untouched))
                    .route(SETUP_SMALL, get(setup_small))
                    .route(SETUP_LARGE, get(setup_large))
                    .route(READ, get(read))
                    .route(COUNTER, get(counter))
                    .route(READ_LARGE, get(read_large))
            }

            async fn setup_small(session: Session) -> Result<&'static str, HandlerError> {
                session
                    .insert(USER_KEY, USER)
                    .await
                    .map_err(HandlerError::new)?;
                Ok(UNTOUCHED_BODY)
            }

            async fn setup_large(session: Session) -> Result<&'static str, HandlerError> {
                session
                    .insert(USER_KEY, USER)
                    .await
                    .map_err(HandlerError::new)?;
                session
                    .insert(PAYLOAD_KEY, payload())
                    .await
                    .map_err(HandlerError::new)?;
                Ok(UNTOUCHED_BODY)
            }

            async fn read(session: Session) -> Result<String, HandlerError> {
                let user: Option<String> =
                    session.get(USER_KEY).await.map_err(HandlerError::new)?;
                Ok(user.unwrap_or_default())
            }

            async fn counter(session: Session) -> Result<String, HandlerError> {
                let count = next_count(session.get(COUNTER_KEY).await.map_err(HandlerError::new)?);
                session
                    .insert(COUNTER_KEY, count)
                    .await
                    .map_err(HandlerError::new)?;
                Ok(count.to_string())
            }

            async fn read_large(session: Session) -> Result<String, HandlerError> {
                let payload: Option<String> =
                    session.get(PAYLOAD_KEY).await.map_err(HandlerError::new)?;
                Ok(payload.map_or(0, |p| p.len()).to_string())
            }
        }
    };
}

tower_sessions_handlers!(handlers_tower_sessions_015, tower_sessions);
tower_sessions_handlers!(handlers_tower_sessions_014, tower_sessions_014);

/// [`Server::AxumRedisFloor`]: the least a Redis-backed session does, by
/// hand. The cookie `id` names a Redis string holding the one value a route
/// reads (the user, the payload or the counter); nothing is encoded or
/// checked beyond what the load generator's answers need.
mod redis_floor {
    use axum::Router;
    use axum::extract::State;
    use axum::http::header::{COOKIE, SET_COOKIE};
    use axum::http::{HeaderMap, HeaderValue};
    use axum::routing::get;
    use session_redis::fred::prelude::{Client, ClientLike, Config, KeysInterface};
    use session_redis::fred::types::Expiration;

    use super::{BoxError, HandlerError, untouched};
    use crate::scenario::{
        COUNTER, READ, READ_LARGE, SETUP_LARGE, SETUP_SMALL, UNTOUCHED, UNTOUCHED_BODY, USER,
        payload,
    };
    use crate::servers::next_count;

    /// How long a value lives, as a session's idle timeout would.
    const LIFETIME_SECONDS: i64 = 24 * 60 * 60;

    /// The routes, on one fred connection to `url` configured as
    /// tower-sessions-redis-store's is in these benchmarks.
    pub(super) async fn routes(url: &str) -> Result<Router, BoxError> {
        let client = Client::new(Config::from_url(url)?, None, None, None);
        client.init().await?;
        Ok(Router::new()
            .route(UNTOUCHED, get(untouched))
            .route(
                SETUP_SMALL,
                get(async |State(redis): State<Client>| create(&redis, USER).await),
            )
            .route(
                SETUP_LARGE,
                get(async |State(redis): State<Client>| create(&redis, payload()).await),
            )
            .route(READ, get(read))
            .route(COUNTER, get(counter))
            .route(READ_LARGE, get(read_large))
            .with_state(client))
    }

    /// The Redis key the request's cookie names, if it has one.
    fn key(headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|header| header.to_str().ok())
            .flat_map(|header| header.split(';'))
            .find_map(|pair| pair.trim().strip_prefix("id="))
            .map(|id| format!("floor:{id}"))
    }

    async fn value(redis: &Client, headers: &HeaderMap) -> Result<Option<String>, HandlerError> {
        match key(headers) {
            Some(key) => redis.get(key).await.map_err(HandlerError::new),
            None => Ok(None),
        }
    }

    async fn create(
        redis: &Client,
        value: &str,
    ) -> Result<([(axum::http::HeaderName, HeaderValue); 1], &'static str), HandlerError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        store(redis, format!("floor:{id}"), value).await?;
        let cookie = HeaderValue::try_from(format!("id={id}; Path=/; HttpOnly"))
            .map_err(HandlerError::new)?;
        Ok(([(SET_COOKIE, cookie)], UNTOUCHED_BODY))
    }

    async fn read(State(redis): State<Client>, headers: HeaderMap) -> Result<String, HandlerError> {
        Ok(value(&redis, &headers).await?.unwrap_or_default())
    }

    async fn read_large(
        State(redis): State<Client>,
        headers: HeaderMap,
    ) -> Result<String, HandlerError> {
        let payload = value(&redis, &headers).await?;
        Ok(payload.map_or(0, |p| p.len()).to_string())
    }

    /// A `GET` and a `SET`, as a session's load and save: the setup's value
    /// (not a number) counts as 0.
    async fn counter(
        State(redis): State<Client>,
        headers: HeaderMap,
    ) -> Result<String, HandlerError> {
        let key = key(&headers).ok_or_else(|| HandlerError::new("no session cookie"))?;
        let current: Option<String> = redis.get(&key).await.map_err(HandlerError::new)?;
        let count = next_count(current.and_then(|c| c.parse().ok()));
        store(&redis, key, &count.to_string()).await?;
        Ok(count.to_string())
    }

    /// `SET key value EX lifetime`, as a session's save.
    async fn store(redis: &Client, key: String, value: &str) -> Result<(), HandlerError> {
        redis
            .set::<(), _, _>(
                key,
                value,
                Some(Expiration::EX(LIFETIME_SECONDS)),
                None,
                false,
            )
            .await
            .map_err(HandlerError::new)
    }
}
