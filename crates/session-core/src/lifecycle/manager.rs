//! What an application builds once: a store with its configuration.

use std::fmt;
use std::sync::Arc;

use std::time::SystemTime;

use super::request::RequestSession;
use crate::cookie;
use crate::user::UserIndex;
use crate::{Error, SessionConfig, SessionCookie, SessionHandle, SessionStore, UserSession};

/// How many times a revocation lists the user's sessions, at most (see
/// `SessionManager::revoke_where`). Each pass past the first needs a login
/// to have moved one of them in the moment between listing and deleting.
const REVOCATION_PASSES: usize = 8;

/// A store with its configuration: what an application builds once and hands
/// to its framework adapter. Cheap to clone.
///
/// ```
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
///
/// // First request: no cookie. The handler writes to the session.
/// let request = manager.request();
/// let session = request.session([]).await?;
/// session.insert("last_visit", &"2026-11-25T12:00:00Z")?;
/// let set_cookie = request.save_changes().await?;
/// assert_eq!(set_cookie.len(), 1);
///
/// // Second request: the browser sends the cookie back.
/// let cookie = set_cookie[0].split(';').next().unwrap();
/// let request = manager.request();
/// let session = request.session([cookie.as_bytes()]).await?;
/// assert!(!session.is_new());
/// assert_eq!(session.get::<String>("last_visit")?.as_deref(), Some("2026-11-25T12:00:00Z"));
/// assert!(request.save_changes().await?.is_empty()); // nothing changed, nothing sent
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) store: Arc<dyn SessionStore>,
    pub(super) config: SessionConfig,
    /// The `Set-Cookie` of a logout, the same for every request: formatted
    /// once (its `Expires` date costs the `cookie` crate a calendar
    /// conversion each time).
    pub(super) removal_cookie: String,
}

impl SessionManager {
    /// A manager for `store` configured by `config`.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Self {
        Self::with_shared_store(Arc::new(store), config)
    }

    /// A manager for a store that is shared with other code.
    pub fn with_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        SessionManager {
            shared: Arc::new(Shared {
                store,
                removal_cookie: config.cookie().removal_cookie(),
                config,
            }),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.shared.store
    }

    /// Starts a request's session. Reads nothing and does no I/O: the
    /// request's `Cookie` headers are read by [`RequestSession::session`],
    /// when (and if) a handler asks for the session. What an adapter calls
    /// for every request, so that routes that never touch the session stay
    /// cheap.
    ///
    /// ```
    /// use session_core::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let request = manager.request();
    /// // In the handler's extractor, with the request's `Cookie` headers:
    /// let session = request.session([&b"theme=dark"[..]]).await?;
    /// assert!(session.is_new());
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn request(&self) -> RequestSession {
        RequestSession::new(self.clone())
    }

    /// Whether `other` is this manager or a clone of it (they share one
    /// store and configuration). Adapters use it to tell a layer of the
    /// same manager nested in another, which stands aside, from one of a
    /// different manager, which keeps its own sessions.
    ///
    /// ```
    /// use session_core::{MemoryStore, SessionConfig, SessionManager};
    ///
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let other = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// assert!(manager.same_as(&manager.clone()));
    /// assert!(!manager.same_as(&other));
    /// ```
    #[must_use]
    pub fn same_as(&self, other: &SessionManager) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The live sessions bound to `user`
    /// ([`Session::bind_user`](crate::Session::bind_user)), from anywhere
    /// (an admin task, say; a handler has
    /// [`Session::user_sessions`](crate::Session::user_sessions)). See
    /// [`user`](crate::user).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the store keeps no user index, or the
    /// store's error.
    pub async fn sessions_of(&self, user: &str) -> Result<Vec<UserSession>, Error> {
        let (index, now) = self.user_index()?;
        let rules = self.shared.config.expiry_rules();
        Ok(index
            .sessions_of(user, now)
            .await?
            .iter()
            .filter(|bound| {
                bound.record.user.as_deref() == Some(user) && !rules.is_expired(&bound.record, now)
            })
            .map(UserSession::of)
            .collect())
    }

    /// Revokes `user`'s session `handle`: deletes it as a logout does, so
    /// that once this returns no request brings it back. Whether it was one
    /// of `user`'s live sessions.
    ///
    /// # Errors
    ///
    /// As [`sessions_of`](Self::sessions_of).
    pub async fn revoke(&self, user: &str, handle: &SessionHandle) -> Result<bool, Error> {
        Ok(self
            .revoke_where(user, |candidate| candidate == handle)
            .await?
            > 0)
    }

    /// Revokes every session of `user` but `keep` ("log out everywhere
    /// else"), or all of them: how many were revoked. A session that a
    /// login moves to a new id while this runs is revoked under its new id.
    ///
    /// # Errors
    ///
    /// As [`sessions_of`](Self::sessions_of); and [`Error::Store`] in the
    /// unlikely case that logins keep moving the user's sessions to new ids
    /// through several listings (some may then be left: call it again).
    pub async fn revoke_all_except(
        &self,
        user: &str,
        keep: Option<&SessionHandle>,
    ) -> Result<usize, Error> {
        self.revoke_where(user, |candidate| Some(candidate) != keep)
            .await
    }

    /// Deletes the sessions of `user` that `revoke` picks, listing them
    /// again while a delete finds nothing: a login on one of them (a
    /// regenerate, which keeps the session bound to the user under a new
    /// id) may land between the listing and the delete, and the next
    /// listing has the new id. A session that ended meanwhile (a logout,
    /// its expiry) is not listed again, so a pass with nothing left that
    /// vanished under it ends the revocation.
    async fn revoke_where(
        &self,
        user: &str,
        revoke: impl Fn(&SessionHandle) -> bool,
    ) -> Result<usize, Error> {
        let name = self.shared.config.cookie().name();
        let mut revoked = 0;
        for _ in 0..REVOCATION_PASSES {
            let (index, now) = self.user_index()?;
            let mut vanished = false;
            for bound in index.sessions_of(user, now).await? {
                if bound.record.user.as_deref() != Some(user)
                    || !revoke(&SessionHandle::of(&bound.cookie_value))
                {
                    continue;
                }
                let cookie = SessionCookie::new(name, &bound.cookie_value);
                if self.shared.store.delete(cookie).await? {
                    tracing::debug!(cookie = name, "session revoked");
                    revoked += 1;
                } else {
                    vanished = true;
                }
            }
            if !vanished {
                return Ok(revoked);
            }
        }
        Err(Error::store(format!(
            "the sessions being revoked kept moving to new ids (logins) through \
             {REVOCATION_PASSES} listings; {revoked} were revoked"
        )))
    }

    fn user_index(&self) -> Result<(&dyn UserIndex, SystemTime), Error> {
        let index = self
            .shared
            .store
            .user_index()
            .ok_or(Error::Unsupported("listing and revoking a user's sessions"))?;
        Ok((index, self.shared.config.clock().now()))
    }

    /// The values of the session's cookies in `cookie_headers` worth trying,
    /// in order: at most [`CookieConfig::MAX_CANDIDATES`],
    /// none longer than a cookie we could have issued.
    pub(super) fn candidates<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> impl Iterator<Item = &'a str> {
        let cookie = self.shared.config.cookie();
        cookie::cookie_value_slices(cookie_headers, cookie.name(), cookie.max_value_len())
    }
}

impl fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionManager")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}
