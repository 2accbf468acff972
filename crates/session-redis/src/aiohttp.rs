//! Sharing sessions with a Python service on aiohttp_session's
//! `RedisStorage`, for a migration from aiohttp one service at a time.
//!
//! [`RedisLayout::Aiohttp`] stores sessions exactly as aiohttp_session 2.x
//! does, so both services read and write the same sessions: a user logged in
//! on one side is logged in on the other, and a logout on either side ends
//! the session on both. [`session_config`] gives the matching cookie and
//! expiry settings.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use session_core::SessionManager;
//! use session_redis::{RedisLayout, RedisStore, aiohttp};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), session_core::Error> {
//! # let server = session_testing::RedisServer::start();
//! # let url = server.url();
//! // Python: RedisStorage(redis, max_age=3600)
//! let max_age = Some(Duration::from_secs(3600));
//! let store = RedisStore::builder()
//!     .layout(RedisLayout::Aiohttp { max_age })
//!     .connect(&url) // the same Redis as the Python service
//!     .await?;
//! let manager = SessionManager::new(store, aiohttp::session_config(max_age));
//!
//! let request = manager.request();
//! request.session([]).await?.insert("user", "ada")?;
//! let set_cookie = request.save_changes().await?;
//! assert!(set_cookie[0].starts_with("AIOHTTP_SESSION="));
//!
//! // What aiohttp_session would have written:
//! let id = set_cookie[0].split(['=', ';']).nth(1).unwrap();
//! let key = format!("AIOHTTP_SESSION_{id}");
//! let stored = server.command(&["GET", &key]).unwrap().text().unwrap();
//! assert!(stored.starts_with(r#"{"created": "#));
//! assert!(stored.ends_with(r#", "session": {"user": "ada"}}"#));
//! # Ok(())
//! # }
//! ```
//!
//! # Configuring both sides
//!
//! * the same Redis server (and database);
//! * the same cookie name: aiohttp_session's default `AIOHTTP_SESSION`,
//!   which [`session_config`] sets; if Python passes `cookie_name=`, call
//!   [`SessionConfig::with_cookie_name`] with the same name (the Redis keys
//!   follow it);
//! * the same `max_age`, in [`RedisLayout::Aiohttp`] and in
//!   [`session_config`];
//! * the same cookie `path` and `domain`, so that browsers send the cookie
//!   to both services (both default to `Path=/` and no `Domain`).
//!
//! # The format
//!
//! | what | value |
//! |---|---|
//! | cookie value | `uuid.uuid4().hex`: 32 lowercase hex digits, from the OS CSPRNG |
//! | key | `{cookie_name}_{id}` |
//! | value | `{"created": <unix seconds>, "session": {...}}`, written as Python's `json.dumps` writes it (`", "` and `": "` separators, non-ASCII as `\uXXXX`, floats as Python's `repr`) |
//! | expiry | `EX max_age` on every write; none without a `max_age` |
//!
//! As in aiohttp_session: a missing key or the value `{}` is a new session;
//! a session whose `created + max_age` has passed is a new session;
//! `created` is set to the time of every write, so `max_age` counts from
//! the last write; a session whose keys were all removed is saved as `{}`
//! and its cookie removed; and a session that did not change writes
//! nothing.
//!
//! # Where this differs from aiohttp_session, on purpose
//!
//! * **Logout deletes the key.** aiohttp_session's `invalidate()` writes `{}`
//!   under the key; ours deletes it. aiohttp_session reads a missing key as
//!   a new session, so the user is logged out on both sides either way.
//! * **A write never revives a logged-out session.** An update writes only
//!   while the key exists and does not hold `{}` (one atomic script), so a
//!   slow request that finishes after a logout on either side has its writes
//!   dropped (and sets no cookie) instead of bringing the session back. A new session is created
//!   with `SET NX`, so it never overwrites another.
//! * **Cookies are `Secure`, `HttpOnly` and `SameSite=Lax` by default**,
//!   where aiohttp_session sets only `HttpOnly`. Change them on the
//!   [`SessionConfig`] if you must (over plain http, `Secure` cookies are
//!   dropped by browsers).
//! * **A login leaves a mark.** Where it moves a session to a new id, it
//!   leaves the key `{{cookie_name}_{id}}:moved` holding the new key, for a
//!   minute or more, so that a login whose answer was lost can be sent
//!   again and tell its own move from a logout (the
//!   [hash layout](crate::hash) does the same). aiohttp_session never reads
//!   it.
//! * **Ids are checked.** Only cookie values shaped like a uuid4 in hex (what
//!   aiohttp_session's default `key_factory` makes) are looked up; anything
//!   else is a new session, and a new session always gets an id of ours.
//!
//! # Limits of this format
//!
//! * **Reads do not extend a session**, as in aiohttp_session: only a write
//!   moves `created`, and the store cannot move the deadline without
//!   rewriting the data, so a rolling refresh does nothing.
//!   [`session_config`] disables it ([`Rolling::Disabled`]).
//! * **No absolute timeout.** `created` moves on every write, so an absolute
//!   timeout would count from the last write; [`session_config`] sets none.
//! * **Concurrent writes: the last one wins.** Each save writes the whole
//!   session, as aiohttp_session's do; two requests of one session that
//!   change different keys at the same time may lose one change (the
//!   [hash layout](crate::hash#atomicity-and-merging) merges them).
//! * **Whole seconds.** `created` and `max_age` are whole seconds; a session
//!   may end up to a second earlier here than on the Python side, whose
//!   check is `int(now) - created > max_age` (Redis's `EX` usually removes
//!   the key within that second anyway).
//! * **No per-session expiry.** [`Session::set_expiry`] is not stored:
//!   `max_age` applies to every session. The configured idle timeout is not
//!   used either: the deadline is always `created + max_age`, so give
//!   [`session_config`] the same `max_age`.
//! * **JSON values that Rust cannot hold**: integers beyond 64 bits read as
//!   floats, and values Python can write but JSON cannot (`NaN`,
//!   `Infinity`, lone surrogates) make the session load as a new one.
//!   Object keys are written in sorted order where Python keeps insertion
//!   order; both read either the same.
//!
//! [`SessionConfig`]: session_core::SessionConfig
//! [`SessionConfig::with_cookie_name`]: session_core::SessionConfig::with_cookie_name
//! [`Rolling::Disabled`]: session_core::Rolling::Disabled
//! [`Session::set_expiry`]: session_core::Session::set_expiry
//! [`RedisLayout::Aiohttp`]: crate::RedisLayout::Aiohttp

/// aiohttp_session's default cookie name, which its `RedisStorage` also
/// uses to name the Redis keys (`AIOHTTP_SESSION_{id}`); the same constant
/// as [`session_core::aiohttp::COOKIE_NAME`].
///
/// ```
/// assert_eq!(session_redis::aiohttp::COOKIE_NAME, "AIOHTTP_SESSION");
/// ```
pub use session_core::aiohttp::COOKIE_NAME;

/// The session settings that match an aiohttp_session storage with this
/// `max_age`: [`session_core::aiohttp::session_config`], shared by every
/// aiohttp_session format (cookie name [`COOKIE_NAME`], idle timeout
/// `max_age`, no absolute timeout, reads never extend a session).
///
/// ```
/// use std::time::Duration;
/// use session_redis::aiohttp;
///
/// let config = aiohttp::session_config(Some(Duration::from_secs(3600)));
/// assert_eq!(config.cookie().name(), "AIOHTTP_SESSION");
/// assert_eq!(config.expiry().idle_timeout(), Some(Duration::from_secs(3600)));
/// ```
pub use session_core::aiohttp::session_config;
