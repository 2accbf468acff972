//! The framework-agnostic request lifecycle that adapters drive.
//!
//! An adapter does three things, and all session behaviour lives here so that
//! every framework behaves the same:
//!
//! 1. before the handler, [`SessionManager::request`] gives a
//!    [`RequestSession`], which the adapter puts in the request; it reads no
//!    header and does no I/O, so a route that never asks for the session pays
//!    only for one small allocation;
//! 2. the handler's extractor awaits [`RequestSession::session`] with the
//!    request's `Cookie` header values, which are parsed and loaded on first
//!    use only: a handler that never asks costs no parsing and no store I/O;
//! 3. after the handler, [`RequestSession::save_changes`] saves what changed and
//!    returns the `Set-Cookie` header values to append (none when nothing
//!    changed, nor when the client already holds the cookie it would set);
//!    [`WithSessionSaved`] is that step as a response future, around the
//!    handler's.
//!
//! Code without a framework (tests, scripts) takes the same three steps.
//!
//! The modules follow the steps: [`manager`] holds what an application
//! builds once, [`request`] loads a request's session and decides what to
//! save, [`write`] turns the session's [`Outcome`](crate::session::Outcome)
//! into store calls and cookies, and [`response`] runs step 3 as a future.

mod manager;
mod request;
mod response;
mod write;

pub use manager::SessionManager;
pub(crate) use request::RequestInner;
pub use request::{LoadSession, RequestSession, SaveChanges};
pub use response::WithSessionSaved;
