//! One request's session: loaded on first use, and what it did decided
//! once the handler is done.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::OnceCell;

use super::manager::{SessionManager, Shared};
use super::write::Writer;
use crate::session::{Outcome, State};
use crate::{CookieConfig, Error, Record, Session, SessionCookie};

/// One request's session: loaded on first use, saved by
/// [`save_changes`](RequestSession::save_changes). Cheap to clone; clones share the
/// same session.
#[derive(Clone)]
pub struct RequestSession {
    inner: Arc<RequestInner>,
}

/// What a request's handles share: one allocation per request, which also
/// holds the session's state once loaded (the [`Session`]s handed out
/// point here).
pub(crate) struct RequestInner {
    manager: SessionManager,
    loaded: OnceCell<Loaded>,
    saved: AtomicBool,
}

struct Loaded {
    state: Mutex<State>,
    /// The cookie value the session was loaded from; `None` for a new one.
    cookie: Option<Box<str>>,
    /// Whether the store asked for that cookie to be replaced on this
    /// response even if the session is unchanged.
    reissue: bool,
}

impl RequestInner {
    /// The loaded session's state.
    ///
    /// # Panics
    ///
    /// Before the session is loaded: a [`Session`] of the request is made
    /// only after.
    pub(crate) fn state(&self) -> &Mutex<State> {
        &self
            .loaded
            .get()
            .expect("a request's Session is made once its session is loaded")
            .state
    }

    pub(crate) fn manager(&self) -> &SessionManager {
        &self.manager
    }

    /// The cookie value the session was loaded from: `None` for a session
    /// new to this request, or one not loaded yet.
    pub(crate) fn cookie(&self) -> Option<&str> {
        self.loaded.get()?.cookie.as_deref()
    }
}

impl RequestSession {
    pub(super) fn new(manager: SessionManager) -> Self {
        RequestSession {
            inner: Arc::new(RequestInner {
                manager,
                loaded: OnceCell::new(),
                saved: AtomicBool::new(false),
            }),
        }
    }

    /// The session, loaded from the store on the first call, from the cookies
    /// in `cookie_headers`: the request's `Cookie` header values. Once the
    /// session is loaded, later calls return it and leave the headers unread.
    ///
    /// The headers are parsed before this returns, so the future borrows
    /// neither them nor `self`. Of the cookies with the session's name, the
    /// first few (a small fixed bound) are tried in order until one loads;
    /// values longer than any cookie that could have been issued are dropped
    /// unread. When the session is already loaded, or the store has the
    /// first cookie's record in memory
    /// ([`SessionStore::load_from_memory`](crate::SessionStore::load_from_memory)),
    /// the future is ready at once and allocates nothing; otherwise it runs
    /// the load, boxed.
    ///
    /// # Errors
    ///
    /// Only a store failure is an error (and a later call tries again): a
    /// missing, malformed, tampered, unknown or expired cookie gives a new,
    /// empty session.
    pub fn session<'a>(&self, cookie_headers: impl IntoIterator<Item = &'a [u8]>) -> LoadSession {
        if self.inner.loaded.initialized() {
            return LoadSession::ready(self.loaded_session());
        }
        let mut values = self.inner.manager.candidates(cookie_headers).peekable();
        if let Some(session) = values.peek().and_then(|first| self.load_from_memory(first)) {
            return LoadSession::ready(session);
        }
        // In place rather than in a `Vec`: there are at most a few, and
        // usually one, so this spares an allocation on every load.
        let mut candidates: [Option<Box<str>>; CookieConfig::MAX_CANDIDATES] = Default::default();
        for (slot, value) in candidates.iter_mut().zip(values) {
            *slot = Some(Box::from(value));
        }
        let this = self.clone();
        LoadSession(Loading::Store(Box::pin(async move {
            this.inner
                .loaded
                .get_or_try_init(|| this.load(candidates.into_iter().flatten()))
                .await?;
            Ok(this.loaded_session())
        })))
    }

    /// The session of the cookie value `value`, if the store has its live
    /// record in memory, now loaded for this request. `None` when it has
    /// not, or the record has expired (the full load tells why), or another
    /// call is loading the session already (its load is then awaited).
    fn load_from_memory(&self, value: &str) -> Option<Session> {
        let Shared { store, config, .. } = self.inner.manager.shared();
        let cookie = SessionCookie::new(config.cookie().name(), value);
        let record = store.load_from_memory(cookie)?;
        if config
            .expiry_rules()
            .is_expired(&record, config.clock().now())
        {
            return None;
        }
        let loaded = self.loaded_from(record, Box::from(value));
        self.inner.loaded.set(loaded).ok()?;
        Some(self.loaded_session())
    }

    /// A handle on the session, once loaded.
    fn loaded_session(&self) -> Session {
        Session::of_request(Arc::clone(&self.inner))
    }

    /// Whether a handler asked for the session.
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.initialized()
    }

    async fn load(&self, candidates: impl IntoIterator<Item = Box<str>>) -> Result<Loaded, Error> {
        let Shared { store, config, .. } = self.inner.manager.shared();
        let name = config.cookie().name();
        let now = config.clock().now();
        let rules = config.expiry_rules();
        for value in candidates {
            let cookie = SessionCookie::new(name, &value);
            match store.load(cookie).await? {
                Some(record) if !rules.is_expired(&record, now) => {
                    return Ok(self.loaded_from(record, value));
                }
                Some(_) => tracing::debug!(cookie = name, "session expired; starting a new one"),
                None => tracing::debug!(cookie = name, "session cookie did not load"),
            }
        }
        Ok(Loaded {
            state: Mutex::new(State::new(Arc::new(Record::new(now)), true)),
            cookie: None,
            reissue: false,
        })
    }

    /// This request's session, loaded from `record` behind the cookie
    /// value `value`; the store says whether the cookie is to be issued
    /// again.
    fn loaded_from(&self, record: Arc<Record>, value: Box<str>) -> Loaded {
        let Shared { store, config, .. } = self.inner.manager.shared();
        let reissue = store.needs_reissue(SessionCookie::new(config.cookie().name(), &value));
        Loaded {
            state: Mutex::new(State::new(record, false)),
            cookie: Some(value),
            reissue,
        }
    }

    /// Saves what the request changed and returns the `Set-Cookie` header
    /// values for the response: none when the session was never loaded or
    /// nothing changed. Only the first call does anything.
    ///
    /// A save that leaves the cookie's value as the client sent it (a
    /// server-side store keeps the session's id) sends no cookie when the
    /// cookie is a browser-session one: the browser already holds exactly
    /// that cookie. A persistent cookie is sent again, because its
    /// `Max-Age` moves with the session's new deadline.
    ///
    /// What to save is decided when `save_changes` is called (later writes are not
    /// saved); the returned future does the store work. When there is
    /// nothing to save, as on every request that only read, it is ready at
    /// once and allocates nothing, so an adapter can poll it in place.
    ///
    /// # Errors
    ///
    /// A store failure, or [`Error::CookieTooLarge`] when the cookie would be
    /// too large to send. Adapters answer both with a 500.
    pub fn save_changes(&self) -> SaveChanges {
        let Some(loaded) = self.inner.loaded.get() else {
            return SaveChanges::nothing();
        };
        if self.inner.saved.swap(true, Ordering::AcqRel) {
            return SaveChanges::nothing();
        }
        let config = &self.inner.manager.shared().config;
        let now = config.clock().now();
        let outcome =
            State::lock(&loaded.state).outcome(&config.expiry_rules(), now, loaded.reissue);
        if matches!(outcome, Outcome::Unchanged) {
            return SaveChanges::nothing();
        }
        // The store work owns its request handle: the future borrows nothing.
        let this = self.clone();
        SaveChanges(Some(Box::pin(async move {
            let shared = this.inner.manager.shared();
            // Set before this future was made, and never unset.
            let previous = this.inner.loaded.get().and_then(|l| l.cookie.as_deref());
            let writer = Writer {
                store: &*shared.store,
                cookie: shared.config.cookie(),
                removal_cookie: &shared.removal_cookie,
                previous,
                now,
            };
            writer.write(outcome).await
        })))
    }

    /// The manager this request's session belongs to.
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.inner.manager
    }
}

/// The future of [`RequestSession::session`]: the request's session, once
/// loaded.
///
/// Ready at once, without an allocation, when the session was loaded
/// before or the store had it in memory; otherwise it runs the load,
/// boxed.
///
/// ```
/// use session_core::{LoadSession, MemoryStore, SessionConfig, SessionManager};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let request = manager.request();
/// let load: LoadSession = request.session([]);
/// assert!(load.await?.is_new());
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "the session is loaded only when its `LoadSession` future is awaited"]
pub struct LoadSession(Loading);

enum Loading {
    /// The answer, until it is taken.
    Ready(Option<Session>),
    Store(Pin<Box<dyn Future<Output = Result<Session, Error>> + Send>>),
}

impl LoadSession {
    fn ready(session: Session) -> Self {
        LoadSession(Loading::Ready(Some(session)))
    }
}

impl Future for LoadSession {
    type Output = Result<Session, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            Loading::Ready(session) => Poll::Ready(Ok(session
                .take()
                .expect("LoadSession polled after completion"))),
            Loading::Store(loading) => loading.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for LoadSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadSession")
            .field("ready", &matches!(self.0, Loading::Ready(_)))
            .finish()
    }
}

/// The future of [`RequestSession::save_changes`]: the `Set-Cookie` header values
/// for the response, once the store has saved what changed.
///
/// Ready at once, without an allocation, when there is nothing to save;
/// otherwise it runs the store work, boxed.
///
/// ```
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let request = manager.request();
/// request.session([]).await?.insert("user", "ada")?;
/// let save: session_core::SaveChanges = request.save_changes();
/// assert_eq!(save.await?.len(), 1);
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a session is saved only when its `SaveChanges` future is awaited"]
pub struct SaveChanges(Option<Saving>);

/// The store work of a [`SaveChanges`] that has something to save.
type Saving = Pin<Box<dyn Future<Output = Result<Vec<String>, Error>> + Send>>;

impl SaveChanges {
    /// Nothing to save and no cookie to send.
    fn nothing() -> Self {
        SaveChanges(None)
    }
}

impl Future for SaveChanges {
    type Output = Result<Vec<String>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            None => Poll::Ready(Ok(Vec::new())),
            Some(saving) => saving.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for SaveChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveChanges")
            .field("saving", &self.0.is_some())
            .finish()
    }
}

impl fmt::Debug for RequestSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSession")
            .field("loaded", &self.is_loaded())
            .finish_non_exhaustive()
    }
}
