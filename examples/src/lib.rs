//! The demo app and the shared pieces of the examples of the session crates.
//!
//! * [`demo`]: the demo app's routes, the same on axum and actix-web, which
//!   the `demo` binary serves and the behaviour suite drives;
//! * [`server`]: starting an axum or actix-web server on a listener, and
//!   stopping it, for the binary and the tests alike.
//!
//! Run the demo with `cargo run -p session-examples --bin demo -- --help`.
//!
//! ```
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//! use session_examples::server::{self, Framework};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! let running = server::serve_demo(Framework::Axum, manager, "127.0.0.1:0".parse().unwrap())
//!     .await
//!     .unwrap();
//! assert!(running.addr().port() != 0);
//! running.stop().await;
//! # });
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod demo;
pub mod server;
