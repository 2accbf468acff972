//! Sessions bound to a user: listed, and revoked one by one or all but one
//! ("log out everywhere else").
//!
//! A handler binds its session at login with
//! [`Session::bind_user`](crate::Session::bind_user) (and may label it, say
//! with the device). A store that keeps an index of each user's sessions
//! offers it through [`SessionStore::user_index`](crate::SessionStore::user_index);
//! the application then lists and revokes through the
//! [`SessionManager`](crate::SessionManager), from a handler or from
//! anywhere else (an admin task):
//!
//! ```
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
//! // Two devices log in as user 42.
//! for device in ["laptop", "phone"] {
//!     let request = manager.request();
//!     let session = request.session([]).await?;
//!     session.bind_user("42");
//!     session.set_label(device);
//!     request.save_changes().await?;
//! }
//! let sessions = manager.sessions_of("42").await?;
//! assert_eq!(sessions.len(), 2);
//! // "Log out everywhere else", from the laptop:
//! let laptop = sessions.iter().find(|s| s.label() == Some("laptop")).unwrap();
//! assert_eq!(manager.revoke_all_except("42", Some(laptop.handle())).await?, 1);
//! assert_eq!(manager.sessions_of("42").await?.len(), 1);
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! Revoking a session is deleting it, exactly as a logout does, so it has a
//! logout's guarantee: once answered, no request (not even one already in
//! flight) brings the revoked session or its data back.
//!
//! A listing never shows a session's id or cookie value: each session is
//! named by a [`SessionHandle`], a one-way digest of its id that cannot be
//! turned back into a cookie. A handler reads its own session's handle with
//! [`Session::handle`](crate::Session::handle), for logs and audit trails.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::{Error, Record};

/// The index of the sessions bound to each user, kept by a server-side
/// store: the optional capability behind
/// [`SessionStore::user_index`](crate::SessionStore::user_index).
///
/// The store adds a session to its user's index whenever it writes a
/// record whose [`user`](Record::user) is set, and removes it when it
/// deletes the session or the session expires, so that the index never
/// grows with sessions that ended. Revocation needs nothing more: the
/// manager revokes by [`delete`](crate::SessionStore::delete).
#[async_trait]
pub trait UserIndex: Send + Sync {
    /// The sessions bound to `user` that are stored and not expired at
    /// `now`, each with its cookie value (which the manager turns into a
    /// [`SessionHandle`] and never shows).
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error>;
}

/// One session in a [`UserIndex`]: what a store answers.
#[derive(Clone)]
#[non_exhaustive]
pub struct BoundSession {
    /// The session's cookie value (its id).
    pub cookie_value: String,
    /// The session as stored.
    pub record: Arc<Record>,
}

impl BoundSession {
    /// The session stored under `cookie_value`.
    #[must_use]
    pub fn new(cookie_value: String, record: Arc<Record>) -> Self {
        BoundSession {
            cookie_value,
            record,
        }
    }
}

impl fmt::Debug for BoundSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundSession")
            .field("cookie_value", &"..")
            .field("record", &self.record)
            .finish()
    }
}

/// A session as a listing shows it: its handle, when it was created and
/// last seen, and the label the application gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSession {
    handle: SessionHandle,
    pub(crate) current: bool,
    created: SystemTime,
    last_seen: SystemTime,
    label: Option<String>,
    expires_at: Option<SystemTime>,
}

impl UserSession {
    pub(crate) fn of(bound: &BoundSession) -> Self {
        let record = &bound.record;
        UserSession {
            handle: SessionHandle::of(&bound.cookie_value),
            current: false,
            created: record.created,
            last_seen: record.last_seen.unwrap_or(record.created),
            label: record.label.clone(),
            expires_at: record.expires_at,
        }
    }

    /// The session's handle: revoke it with
    /// [`SessionManager::revoke`](crate::SessionManager::revoke).
    #[must_use]
    pub fn handle(&self) -> &SessionHandle {
        &self.handle
    }

    /// Whether this is the session of the request that listed it
    /// ([`Session::user_sessions`](crate::Session::user_sessions)); always
    /// `false` in a listing from the manager.
    #[must_use]
    pub fn is_current(&self) -> bool {
        self.current
    }

    /// When the session was first created (regenerating keeps it).
    #[must_use]
    pub fn created(&self) -> SystemTime {
        self.created
    }

    /// When a request last wrote to or refreshed the session.
    #[must_use]
    pub fn last_seen(&self) -> SystemTime {
        self.last_seen
    }

    /// The label the application gave the session
    /// ([`Session::set_label`](crate::Session::set_label)).
    #[must_use]
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// When the session ends unless activity extends it.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// An opaque name for a session: a one-way digest of its id, so that it
/// can be shown, logged and sent to a browser without giving away a value
/// that works as a cookie.
///
/// ```
/// use session_core::SessionHandle;
/// let handle: SessionHandle = "x3Jb1nq0o9vXw0Zl2Nw0mQ".parse().unwrap();
/// assert_eq!(handle.as_str(), "x3Jb1nq0o9vXw0Zl2Nw0mQ");
/// assert!("not a handle!".parse::<SessionHandle>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionHandle(String);

/// A handle's length: 128 bits of SHA-256 in unpadded base64url.
const HANDLE_LEN: usize = 22;

impl SessionHandle {
    /// The handle of the session whose cookie value is `cookie_value`.
    pub(crate) fn of(cookie_value: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(b"session-handle\0")
            .chain_update(cookie_value.as_bytes())
            .finalize();
        let mut handle = URL_SAFE_NO_PAD.encode(digest);
        handle.truncate(HANDLE_LEN);
        SessionHandle(handle)
    }

    /// The handle as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not a secret: it cannot be turned into a cookie.
        write!(f, "SessionHandle({})", self.0)
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SessionHandle {
    type Err = InvalidSessionHandle;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if crate::id::is_base64url_of_len::<HANDLE_LEN>(text) {
            Ok(SessionHandle(text.to_owned()))
        } else {
            Err(InvalidSessionHandle)
        }
    }
}

/// Text that cannot be a [`SessionHandle`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidSessionHandle;

impl fmt::Display for InvalidSessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session handle: 22 base64url characters were expected")
    }
}

impl std::error::Error for InvalidSessionHandle {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;

    #[test]
    fn handles_are_stable_distinct_and_never_the_id() {
        let id = SessionId::generate().into_string();
        let handle = SessionHandle::of(&id);
        assert_eq!(handle, SessionHandle::of(&id));
        assert_ne!(
            handle,
            SessionHandle::of(&SessionId::generate().into_string())
        );
        assert_eq!(handle.as_str().len(), HANDLE_LEN);
        assert!(!id.contains(handle.as_str()));
        assert_eq!(handle.as_str().parse::<SessionHandle>(), Ok(handle));
    }

    #[test]
    fn only_the_shape_of_a_handle_parses() {
        let handle = SessionHandle::of(&SessionId::generate().into_string());
        let text = handle.as_str();
        for bad in [
            String::new(),
            text[1..].to_owned(),
            format!("{text}A"),
            format!("{}*", &text[1..]),
            format!("{}=", &text[1..]),
            format!("{}é", &text[2..]),
            SessionId::generate().into_string(),
        ] {
            assert_eq!(
                bad.parse::<SessionHandle>(),
                Err(InvalidSessionHandle),
                "{bad}"
            );
        }
    }
}
