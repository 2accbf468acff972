//! Sessions for Rust web servers, in the spirit of Python's `aiohttp_session`.
//!
//! A handler asks for the [`Session`], reads and writes it like a map of JSON
//! values, and the data is there on the user's next request. Where the data
//! lives is the application's pick, through a [`SessionStore`]: an encrypted
//! cookie (`session-encrypted-cookie`), Redis (`session-redis`), a plain
//! cookie for tests (`session-simple-cookie`), [`MemoryStore`] (feature
//! `memory-store`) or a store of your own. Framework adapters
//! (`session-axum`, `session-actix`) bind it to a web framework.
//!
//! This crate holds everything that does not depend on a framework or a
//! backend, so that all of them behave the same:
//!
//! * [`Session`]: the handle handlers use, with change tracking;
//! * [`Record`] and [`Changes`]: what a store keeps, and the delta a request
//!   made;
//! * [`SessionStore`]: the trait backends implement, one method per intent
//!   (load, create, update, refresh, regenerate, delete), with the
//!   argument types [`SessionCookie`], [`Create`], [`Update`], [`Refresh`],
//!   [`Regenerate`] and the answer [`Written`];
//! * [`SessionConfig`], [`CookieConfig`], [`Expiry`]: cookie attributes and
//!   timeouts, with safe defaults;
//! * [`SessionManager`] and [`RequestSession`]: the request lifecycle that
//!   adapters drive: lazy loading, expiry enforcement, saving, regeneration,
//!   invalidation, and the `Set-Cookie` headers to send;
//! * [`Rejection`] and [`OnError`]: why an adapter's extractor could not
//!   give a handler its session, and how the application answers it;
//! * [`user`]: sessions bound to a user, listed and revoked ("log out
//!   everywhere else"), on stores that keep a user index;
//! * [`Flash`] messages, read once on a later request;
//! * the checks every store passes are the `session-conformance` crate;
//! * [`aiohttp`](aiohttp/index.html) (feature `aiohttp`): aiohttp_session's session JSON and
//!   Python's cookie quoting, shared by the stores that read and write
//!   aiohttp_session's formats.
//!
//! # Example
//!
//! aiohttp_session's "Last visited" example, driven by hand the way an
//! adapter drives it:
//!
//! ```
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//!
//! async fn handler(session: session_core::Session) -> Result<String, session_core::Error> {
//!     let last = session.get::<String>("last_visit")?;
//!     session.insert("last_visit", "2026-11-25 12:00")?;
//!     Ok(format!("Last visited: {}", last.as_deref().unwrap_or("never")))
//! }
//!
//! let request = manager.request();
//! let page = handler(request.session([]).await?).await?; // no Cookie header
//! assert_eq!(page, "Last visited: never");
//! let set_cookie = request.save_changes().await?;
//! assert!(set_cookie[0].starts_with("session="));
//! assert!(set_cookie[0].ends_with("; HttpOnly; SameSite=Lax; Secure; Path=/"));
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "aiohttp")]
#[cfg_attr(docsrs, doc(cfg(feature = "aiohttp")))]
pub mod aiohttp;
mod config;
mod cookie;
mod error;
mod expiry;
mod flash;
mod id;
mod lifecycle;
mod record;
mod rejection;
mod session;
mod store;
pub mod user;

#[cfg(feature = "memory-store")]
mod memory;

pub use config::SessionConfig;
pub use cookie::{CookieConfig, CookieLifetime, SameSite};
pub use error::{BoxError, ContractViolation, Error};
pub use expiry::{Clock, Expiry, ManualClock, Rolling, from_unix_millis, unix_millis};
pub use flash::{FLASH_KEY, Flash, Level};
pub use id::{InvalidSessionId, SessionId};
pub use lifecycle::{LoadSession, RequestSession, SaveChanges, SessionManager, WithSessionSaved};
pub use record::{Changes, Record};
pub use rejection::{OnError, Rejection};
pub use session::Session;
pub use store::{Create, Refresh, Regenerate, SessionCookie, SessionStore, Update, Written};
pub use user::{SessionHandle, UserSession};

#[cfg(feature = "memory-store")]
pub use memory::MemoryStore;

/// Re-exported so that stores implement [`SessionStore`] with the same
/// macro version.
pub use async_trait::async_trait;
