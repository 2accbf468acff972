//! What an application builds once: a store with its configuration.

use std::fmt;
use std::sync::Arc;

use super::request::RequestSession;
use crate::cookie;
use crate::{SessionConfig, SessionStore};

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
/// let set_cookie = request.finish().await?;
/// assert_eq!(set_cookie.len(), 1);
///
/// // Second request: the browser sends the cookie back.
/// let cookie = set_cookie[0].split(';').next().unwrap();
/// let request = manager.request();
/// let session = request.session([cookie.as_bytes()]).await?;
/// assert!(!session.is_new());
/// assert_eq!(session.get::<String>("last_visit")?.as_deref(), Some("2026-11-25T12:00:00Z"));
/// assert!(request.finish().await?.is_empty()); // nothing changed, nothing sent
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
}

impl SessionManager {
    /// A manager for `store` configured by `config`.
    pub fn new(store: impl SessionStore, config: SessionConfig) -> Self {
        Self::with_shared_store(Arc::new(store), config)
    }

    /// A manager for a store that is shared with other code.
    pub fn with_shared_store(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        SessionManager {
            shared: Arc::new(Shared { store, config }),
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

    /// The values of the session's cookies in `cookie_headers` worth trying,
    /// in order: at most [`MAX_CANDIDATES`](crate::cookie::MAX_CANDIDATES),
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
