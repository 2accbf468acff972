//! The actix-web servers.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::cookie::Key;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{App, HttpServer, ResponseError};

use session_core::{SessionConfig, SessionManager};

use super::{BoxError, HandlerError, cookie_sent_back, our_manager, ours};
use crate::scenario::{
    COUNTER, PAYLOAD_LEN_TEXT, READ, READ_LARGE, SETUP_LARGE, SETUP_SMALL, UNTOUCHED,
    UNTOUCHED_BODY, USER,
};
use crate::server::Server;

/// One worker thread, like axum's current-thread runtime.
const WORKERS: usize = 1;

impl ResponseError for HandlerError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

pub(super) fn serve(
    server: Server,
    listener: TcpListener,
    redis_url: Option<String>,
    ready: impl FnOnce(),
) -> Result<(), BoxError> {
    actix_web::rt::System::new().block_on(async move {
        match server {
            Server::ActixBare => {
                let running = HttpServer::new(|| App::new().configure(bare))
                    .workers(WORKERS)
                    .listen(listener)?
                    .run();
                ready();
                running.await?;
            }
            Server::ActixCookieFloor => {
                let manager = our_manager(server, None).await?;
                let running =
                    HttpServer::new(move || App::new().configure(cookie_floor(manager.clone())))
                        .workers(WORKERS)
                        .listen(listener)?
                        .run();
                ready();
                running.await?;
            }
            Server::ActixSessionCookie => {
                let key = Key::generate();
                let running = HttpServer::new(move || {
                    App::new().configure(actix_session_routes).wrap(
                        actix_session::SessionMiddleware::new(
                            actix_session::storage::CookieSessionStore::default(),
                            key.clone(),
                        ),
                    )
                })
                .workers(WORKERS)
                .listen(listener)?
                .run();
                ready();
                running.await?;
            }
            Server::ActixSessionRedis => {
                let url = redis_url.ok_or("no Redis URL")?;
                // Its one multiplexed connection, driven from this (the
                // system) thread: the store is made by an async constructor,
                // which the (synchronous) worker factory cannot await, and
                // the middleware takes it when the app is built.
                let store = actix_session::storage::RedisSessionStore::new(url)
                    .await
                    .map_err(|e| e.to_string())?;
                let key = Key::generate();
                let running = HttpServer::new(move || {
                    App::new().configure(actix_session_routes).wrap(
                        actix_session::SessionMiddleware::new(store.clone(), key.clone()),
                    )
                })
                .workers(WORKERS)
                .listen(listener)?
                .run();
                ready();
                running.await?;
            }
            Server::ActixOursCookie
            | Server::ActixOursCookieAes
            | Server::ActixOursMemory
            | Server::ActixOursRedis
            | Server::ActixOursRedisCached => {
                // Each worker's session manager. On Redis, one store per
                // worker, made in the factory on the worker's own runtime, as
                // session-redis recommends for actix-web; the others share one.
                let worker_manager: Arc<dyn Fn() -> SessionManager + Send + Sync> =
                    if server.needs_redis() {
                        let url = redis_url.ok_or("no Redis URL")?;
                        Arc::new(move || {
                            let store = super::redis_store(server)
                                .connect_lazy(&url)
                                .expect("a valid Redis URL");
                            SessionManager::new(store, SessionConfig::default())
                        })
                    } else {
                        let manager = our_manager(server, redis_url.as_deref()).await?;
                        Arc::new(move || manager.clone())
                    };
                let running = HttpServer::new(move || {
                    App::new()
                        .configure(our_routes)
                        .wrap(session_actix::SessionMiddleware::new(worker_manager()))
                })
                .workers(WORKERS)
                .listen(listener)?
                .run();
                ready();
                running.await?;
            }
            other => return Err(format!("{other} is not an actix-web server").into()),
        }
        Ok(())
    })
}

async fn untouched() -> &'static str {
    UNTOUCHED_BODY
}

/// The same routes without sessions: constant answers.
fn bare(config: &mut ServiceConfig) {
    config
        .route(UNTOUCHED, web::get().to(untouched))
        .route(SETUP_SMALL, web::get().to(untouched))
        .route(SETUP_LARGE, web::get().to(untouched))
        .route(READ, web::get().to(async || USER))
        // No session to count in: the load generator does not check it.
        .route(COUNTER, web::get().to(async || "1"))
        .route(READ_LARGE, web::get().to(async || PAYLOAD_LEN_TEXT));
}

/// [`Server::ActixCookieFloor`]'s routes: our setup routes, each wrapped
/// in our middleware on `manager`, and bare answers to the measured
/// routes, which no middleware wraps. In [`bare`]'s order, since actix-web
/// tries its routes in turn.
fn cookie_floor(manager: SessionManager) -> impl FnOnce(&mut ServiceConfig) {
    use actix_web::http::header::{COOKIE, HeaderValue, SET_COOKIE};
    use actix_web::{HttpRequest, HttpResponse};
    use session_actix::{Session, SessionMiddleware};

    // The request's cookie, sent back as ours sends a saved one.
    async fn counter(request: HttpRequest) -> HttpResponse {
        let mut response = HttpResponse::Ok();
        if let Some(cookie) = request.headers().get(COOKIE)
            && let Ok(value) = HeaderValue::from_bytes(&cookie_sent_back(cookie.as_bytes()))
        {
            response.insert_header((SET_COOKIE, value));
        }
        response.body("1")
    }

    move |config| {
        config
            .route(UNTOUCHED, web::get().to(untouched))
            .service(
                web::resource(SETUP_SMALL)
                    .wrap(SessionMiddleware::new(manager.clone()))
                    .get(async |session: Session| ours::setup_small(&session)),
            )
            .service(
                web::resource(SETUP_LARGE)
                    .wrap(SessionMiddleware::new(manager))
                    .get(async |session: Session| ours::setup_large(&session)),
            )
            .route(READ, web::get().to(async || USER))
            .route(COUNTER, web::get().to(counter))
            .route(READ_LARGE, web::get().to(async || PAYLOAD_LEN_TEXT));
    }
}

/// Our handlers: the adapter's extractor around [`ours`].
fn our_routes(config: &mut ServiceConfig) {
    use session_actix::Session;
    config
        .route(UNTOUCHED, web::get().to(untouched))
        .route(
            SETUP_SMALL,
            web::get().to(async |session: Session| ours::setup_small(&session)),
        )
        .route(
            SETUP_LARGE,
            web::get().to(async |session: Session| ours::setup_large(&session)),
        )
        .route(
            READ,
            web::get().to(async |session: Session| ours::read(&session)),
        )
        .route(
            COUNTER,
            web::get().to(async |session: Session| ours::counter(&session)),
        )
        .route(
            READ_LARGE,
            web::get().to(async |session: Session| ours::read_large(&session)),
        );
}

use actix_session_handlers::routes as actix_session_routes;

/// The handlers on actix-session.
mod actix_session_handlers {
    use actix_session::Session;
    use actix_web::web::{self, ServiceConfig};

    use super::{HandlerError, untouched};
    use crate::scenario::{
        COUNTER, COUNTER_KEY, PAYLOAD_KEY, READ, READ_LARGE, SETUP_LARGE, SETUP_SMALL, UNTOUCHED,
        UNTOUCHED_BODY, USER, USER_KEY, payload,
    };
    use crate::servers::next_count;

    pub(super) fn routes(config: &mut ServiceConfig) {
        config
            .route(UNTOUCHED, web::get().to(untouched))
            .route(SETUP_SMALL, web::get().to(setup_small))
            .route(SETUP_LARGE, web::get().to(setup_large))
            .route(READ, web::get().to(read))
            .route(COUNTER, web::get().to(counter))
            .route(READ_LARGE, web::get().to(read_large));
    }

    async fn setup_small(session: Session) -> Result<&'static str, HandlerError> {
        session.insert(USER_KEY, USER).map_err(HandlerError::new)?;
        Ok(UNTOUCHED_BODY)
    }

    async fn setup_large(session: Session) -> Result<&'static str, HandlerError> {
        session.insert(USER_KEY, USER).map_err(HandlerError::new)?;
        session
            .insert(PAYLOAD_KEY, payload())
            .map_err(HandlerError::new)?;
        Ok(UNTOUCHED_BODY)
    }

    async fn read(session: Session) -> Result<String, HandlerError> {
        let user: Option<String> = session.get(USER_KEY).map_err(HandlerError::new)?;
        Ok(user.unwrap_or_default())
    }

    async fn counter(session: Session) -> Result<String, HandlerError> {
        let count = next_count(session.get(COUNTER_KEY).map_err(HandlerError::new)?);
        session
            .insert(COUNTER_KEY, count)
            .map_err(HandlerError::new)?;
        Ok(count.to_string())
    }

    async fn read_large(session: Session) -> Result<String, HandlerError> {
        let payload: Option<String> = session.get(PAYLOAD_KEY).map_err(HandlerError::new)?;
        Ok(payload.map_or(0, |p| p.len()).to_string())
    }
}
