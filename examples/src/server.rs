//! Starting and stopping a server on either framework, shared by the demo
//! binary and the tests.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, HttpServer, web};
use session_actix::SessionMiddleware;
use session_core::SessionManager;
use tokio::task::JoinHandle;

use crate::demo;

/// The web frameworks the demo runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framework {
    /// axum, through `session-axum`.
    Axum,
    /// actix-web, through `session-actix`.
    Actix,
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framework::Axum => "axum",
            Framework::Actix => "actix",
        })
    }
}

/// A server running in the background.
#[must_use = "the server stops when the runtime does; keep the handle to know its address"]
pub struct Running {
    addr: SocketAddr,
    task: JoinHandle<io::Result<()>>,
    actix: Option<ServerHandle>,
}

impl Running {
    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://ADDR`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs until the server fails.
    ///
    /// # Errors
    ///
    /// The server's I/O error.
    pub async fn wait(self) -> io::Result<()> {
        self.task.await.map_err(io::Error::other)?
    }

    /// Stops accepting connections, without waiting for requests in flight
    /// (on axum, connections already open may still finish theirs).
    pub async fn stop(self) {
        match self.actix {
            Some(handle) => {
                handle.stop(false).await;
                let _ = self.task.await;
            }
            None => self.task.abort(),
        }
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Serves an axum router on `addr` (port 0 picks a free port) in a
/// background task of the current tokio runtime.
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve_axum(router: axum::Router, addr: SocketAddr) -> io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Running {
        addr,
        task,
        actix: None,
    })
}

/// Serves an actix-web app on `addr` (port 0 picks a free port), from the
/// current tokio runtime: `App::new().wrap(middleware).configure(configure)`.
/// One worker thread; no signal handling (the caller owns the process).
///
/// # Errors
///
/// The address cannot be bound.
pub fn serve_actix(
    middleware: SessionMiddleware,
    configure: impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    addr: SocketAddr,
) -> io::Result<Running> {
    serve_actix_app(
        move || {
            App::new()
                .wrap(middleware.clone())
                .configure(configure.clone())
        },
        addr,
    )
}

/// Serves the actix-web app that `factory` builds (once per worker, as
/// `HttpServer::new` takes it) on `addr`, as [`serve_actix`] does: for apps
/// put together otherwise (no middleware, two, one on a scope).
///
/// # Errors
///
/// The address cannot be bound.
pub fn serve_actix_app<F, T, B>(factory: F, addr: SocketAddr) -> io::Result<Running>
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let listener = std::net::TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(factory)
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    Ok(Running {
        addr,
        task: tokio::spawn(server),
        actix: Some(handle),
    })
}

/// Serves the demo app on `framework` at `addr`.
///
/// # Errors
///
/// The address cannot be bound.
pub async fn serve_demo(
    framework: Framework,
    manager: SessionManager,
    addr: SocketAddr,
) -> io::Result<Running> {
    match framework {
        Framework::Axum => serve_axum(demo::axum::router(manager), addr).await,
        Framework::Actix => serve_actix(
            demo::actix::middleware(manager),
            demo::actix::configure,
            addr,
        ),
    }
}
