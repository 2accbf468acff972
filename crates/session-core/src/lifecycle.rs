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
//! 3. after the handler, [`RequestSession::finish`] saves what changed and
//!    returns the `Set-Cookie` header values to append (none when nothing
//!    changed, nor when the client already holds the cookie it would set);
//!    [`SaveAfter`] is that step as a response future, around the
//!    handler's.
//!
//! Code without a framework (tests, scripts) takes the same three steps.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use tokio::sync::OnceCell;

use crate::cookie::{self, CookieConfig};
use crate::expiry::{CookieLifetime, Expiry};
use crate::session::Renewal;
use crate::{
    Changes, Delete, Error, Load, Record, Save, Saved, Session, SessionConfig, SessionStore, Touch,
};

/// Chrome's cap on cookie lifetimes, used as `Max-Age` for a persistent
/// cookie whose session never expires.
const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 3600);

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

struct Shared {
    store: Arc<dyn SessionStore>,
    config: SessionConfig,
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
        RequestSession {
            inner: Arc::new(RequestInner {
                manager: self.clone(),
                loaded: OnceCell::new(),
                finished: AtomicBool::new(false),
            }),
        }
    }

    /// The values of the session's cookies in `cookie_headers` worth trying,
    /// in order: at most [`MAX_CANDIDATES`](crate::cookie::MAX_CANDIDATES),
    /// none longer than a cookie we could have issued.
    fn candidates<'a>(
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

/// One request's session: loaded on first use, saved by
/// [`finish`](RequestSession::finish). Cheap to clone; clones share the
/// same session.
#[derive(Clone)]
pub struct RequestSession {
    inner: Arc<RequestInner>,
}

struct RequestInner {
    manager: SessionManager,
    loaded: OnceCell<Loaded>,
    finished: AtomicBool,
}

struct Loaded {
    session: Session,
    /// The cookie value the session was loaded from; `None` for a new one.
    cookie: Option<String>,
    /// Whether the store asked for that cookie to be replaced on this
    /// response even if the session is unchanged.
    reissue: bool,
}

impl RequestSession {
    /// The session, loaded from the store on the first call, from the cookies
    /// in `cookie_headers`: the request's `Cookie` header values. Once the
    /// session is loaded, later calls return it and leave the headers unread.
    ///
    /// The headers are parsed before this returns, so the future borrows
    /// neither them nor `self` (it is boxed for that: only requests that ask
    /// for the session pay for it, beside the load itself). Of the cookies
    /// with the session's name, the first few (a small fixed bound) are tried
    /// in order until one loads; values longer than any cookie that could
    /// have been issued are dropped unread.
    ///
    /// # Errors
    ///
    /// Only a store failure is an error (and a later call tries again): a
    /// missing, malformed, tampered, unknown or expired cookie gives a new,
    /// empty session.
    pub fn session<'a>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Pin<Box<dyn Future<Output = Result<Session, Error>> + Send + 'static>> {
        // In place rather than in a `Vec`: there are at most a few, and
        // usually one, so this spares an allocation on every load.
        let mut candidates: [Option<String>; cookie::MAX_CANDIDATES] = Default::default();
        if !self.is_loaded() {
            let values = self.inner.manager.candidates(cookie_headers);
            for (slot, value) in candidates.iter_mut().zip(values) {
                *slot = Some(value.to_owned());
            }
        }
        let this = self.clone();
        Box::pin(async move {
            let loaded = this
                .inner
                .loaded
                .get_or_try_init(|| this.load(candidates.into_iter().flatten()))
                .await?;
            Ok(loaded.session.clone())
        })
    }

    /// Whether a handler asked for the session.
    #[must_use]
    pub fn is_loaded(&self) -> bool {
        self.inner.loaded.initialized()
    }

    async fn load(&self, candidates: impl IntoIterator<Item = String>) -> Result<Loaded, Error> {
        let Shared { store, config } = &*self.inner.manager.shared;
        let name = config.cookie().name();
        let now = config.clock().now();
        for value in candidates {
            match store.load(Load::new(name, &value)).await? {
                Some(record) if !is_expired(&record, config.expiry(), now) => {
                    let reissue = store.needs_reissue(Load::new(name, &value));
                    return Ok(Loaded {
                        session: Session::from_record(record, false),
                        cookie: Some(value),
                        reissue,
                    });
                }
                Some(_) => tracing::debug!(cookie = name, "session expired; starting a new one"),
                None => tracing::debug!(cookie = name, "session cookie did not load"),
            }
        }
        Ok(Loaded {
            session: Session::from_record(Arc::new(Record::new(now)), true),
            cookie: None,
            reissue: false,
        })
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
    /// What to save is decided when `finish` is called (later writes are not
    /// saved); the returned future does the store work. When there is
    /// nothing to save, as on every request that only read, it is ready at
    /// once and allocates nothing, so an adapter can poll it in place.
    ///
    /// # Errors
    ///
    /// A store failure, or [`Error::CookieTooLarge`] when the cookie would be
    /// too large to send. Adapters answer both with a 500.
    pub fn finish(&self) -> Finish {
        let Some(loaded) = self.inner.loaded.get() else {
            return Finish::nothing();
        };
        if self.inner.finished.swap(true, Ordering::AcqRel) {
            return Finish::nothing();
        }
        let config = &self.inner.manager.shared.config;
        let now = config.clock().now();
        let (record, changes, renewal, refresh_due) = {
            let mut state = loaded.session.lock();
            let unchanged = state.renewal == Renewal::Keep && state.changes.is_empty();
            let refresh_due = !state.is_new && refresh_due(config, &state.record, now);
            // Decided under the lock, so that a read-only request copies nothing.
            if unchanged && !refresh_due && !loaded.reissue {
                return Finish::nothing();
            }
            // A save, or a refresh, of the same session moves its deadline:
            // set in the session's own record, which the store then shares
            // rather than copies (a write has already made it the
            // session's own). A later write goes to a copy, unsaved.
            if state.renewal == Renewal::Keep && (!unchanged || refresh_due) {
                stamp(config, state.record_mut(), now);
            }
            let record = Arc::clone(&state.record);
            (record, state.changes.clone(), state.renewal, refresh_due)
        };
        // The store work owns its request handle: the future borrows nothing.
        let this = self.clone();
        Finish(Some(Box::pin(async move {
            // Set before this future was made, and never unset.
            let Some(loaded) = this.inner.loaded.get() else {
                return Ok(Vec::new());
            };
            let finisher = Finisher {
                store: &*this.inner.manager.shared.store,
                config: &this.inner.manager.shared.config,
                previous: loaded.cookie.as_deref(),
                now,
            };
            match renewal {
                Renewal::Invalidate => finisher.invalidate(record).await,
                Renewal::Regenerate => finisher.regenerate(record).await,
                Renewal::Keep if changes.is_empty() => finisher.refresh(record, refresh_due).await,
                Renewal::Keep => finisher.save(record, &changes).await,
            }
        })))
    }
}

/// The future of [`RequestSession::finish`]: the `Set-Cookie` header values
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
/// let finish: session_core::Finish = request.finish();
/// assert_eq!(finish.await?.len(), 1);
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[must_use = "a session is saved only when its `Finish` future is awaited"]
pub struct Finish(Option<Saving>);

/// The store work of a [`Finish`] that has something to save.
type Saving = Pin<Box<dyn Future<Output = Result<Vec<String>, Error>> + Send>>;

impl Finish {
    /// Nothing to save and no cookie to send.
    fn nothing() -> Self {
        Finish(None)
    }
}

impl Future for Finish {
    type Output = Result<Vec<String>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            None => Poll::Ready(Ok(Vec::new())),
            Some(saving) => saving.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Finish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finish")
            .field("saving", &self.0.is_some())
            .finish()
    }
}

pin_project_lite::pin_project! {
    /// Step 3 as an adapter's response future: runs the handler (the inner
    /// service's future), then, when the handler loaded the session, saves
    /// it with [`RequestSession::finish`]. Its output is the handler's
    /// response with the `Set-Cookie` header values to append to it, or the
    /// save's error, for which the adapter answers its error response.
    ///
    /// The values come as `H`: `String` unless the adapter names its
    /// framework's header value type (anything made `TryFrom<String>`, such
    /// as `http::HeaderValue`); a value that does not convert is an error.
    ///
    /// A request whose handler never asked for the session, or only read
    /// it, gets its response back without an allocation: the save future is
    /// polled in place. An error of the handler's future itself (a
    /// framework-level failure, not a response) ends the request unsaved.
    ///
    /// ```
    /// use session_core::{MemoryStore, SaveAfter, SessionConfig, SessionManager};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    /// let request = manager.request();
    /// let handler = {
    ///     let request = request.clone();
    ///     async move {
    ///         request.session([]).await?.insert("user", "ada")?;
    ///         Ok::<_, session_core::Error>("the response")
    ///     }
    /// };
    /// let (response, set_cookies) = SaveAfter::new(handler, Some(request)).await?;
    /// assert_eq!(response, "the response");
    /// assert_eq!(set_cookies?.len(), 1);
    /// # Ok::<(), session_core::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct SaveAfter<F, R, H = String> {
        #[pin]
        handler: F,
        // `None` when someone else saves this request's session (an outer
        // layer), or once the handler's response arrived.
        session: Option<RequestSession>,
        // The save in progress, with the response it belongs to.
        saving: Option<(Finish, R)>,
        header: PhantomData<fn() -> H>,
    }
}

impl<F, R> SaveAfter<F, R> {
    /// Runs `handler`, then saves `session` if the handler loaded it, and
    /// gives the `Set-Cookie` values as `String`s. `None`: only runs the
    /// handler, for a request whose session another layer of the same kind
    /// owns and saves.
    pub fn new(handler: F, session: Option<RequestSession>) -> Self {
        Self::with_header_type(handler, session)
    }
}

impl<F, R, H> SaveAfter<F, R, H> {
    /// As [`new`](SaveAfter::new), giving the `Set-Cookie` values as `H`,
    /// the framework's header value type (named where the future is kept,
    /// e.g. `SaveAfter<F, Response, HeaderValue>`).
    pub fn with_header_type(handler: F, session: Option<RequestSession>) -> Self {
        SaveAfter {
            handler,
            session,
            saving: None,
            header: PhantomData,
        }
    }
}

impl<F, R, H, E> Future for SaveAfter<F, R, H>
where
    F: Future<Output = Result<R, E>>,
    H: TryFrom<String>,
{
    /// The handler's response with the `Set-Cookie` header values to add
    /// (none when nothing was saved), or the error that kept the session
    /// from being saved.
    type Output = Result<(R, Result<Vec<H>, Error>), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (finish, _) = match this.saving {
            Some(saving) => saving,
            None => {
                let response = std::task::ready!(this.handler.poll(cx))?;
                match this.session.take() {
                    // `finish` is ready at once when nothing is to be saved.
                    Some(session) if session.is_loaded() => {
                        this.saving.insert((session.finish(), response))
                    }
                    // Never loaded: nothing to save (what `finish` would say).
                    _ => return Poll::Ready(Ok((response, Ok(Vec::new())))),
                }
            }
        };
        let saved = std::task::ready!(Pin::new(finish).poll(cx));
        let Some((_, response)) = this.saving.take() else {
            unreachable!("the save in progress was just polled");
        };
        Poll::Ready(Ok((response, saved.and_then(header_values))))
    }
}

/// `cookies` as header values of type `H`.
fn header_values<H: TryFrom<String>>(cookies: Vec<String>) -> Result<Vec<H>, Error> {
    cookies
        .into_iter()
        .map(|cookie| {
            H::try_from(cookie)
                .map_err(|_| Error::store("the session cookie is not a valid header value"))
        })
        .collect()
}

impl<F, R, H> fmt::Debug for SaveAfter<F, R, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaveAfter")
            .field("saving", &self.saving.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RequestSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSession")
            .field("loaded", &self.is_loaded())
            .finish_non_exhaustive()
    }
}

/// Whether `record` must not be served at `now`: its stored deadline has
/// passed, or its absolute timeout has (which also catches a timeout that
/// was shortened since the record was written).
fn is_expired(record: &Record, default: Expiry, now: SystemTime) -> bool {
    let expiry = record.expiry.unwrap_or(default);
    let past_absolute = expiry
        .absolute_timeout()
        .and_then(|timeout| record.created.checked_add(timeout))
        .is_some_and(|deadline| deadline <= now);
    record.is_expired_at(now) || past_absolute
}

/// Rolling expiry: whether a request that only read `record` should move
/// its deadline at `now`, because that gains at least the throttle step.
fn refresh_due(config: &SessionConfig, record: &Record, now: SystemTime) -> bool {
    let expiry = record.expiry.unwrap_or(config.expiry());
    let Some(min_gain) = config.rolling().min_gain(&expiry) else {
        return false;
    };
    match (record.expires_at, expiry.deadline(record.created, now)) {
        (Some(old), Some(new)) => new
            .duration_since(old)
            .is_ok_and(|gained| !gained.is_zero() && gained >= min_gain),
        _ => false,
    }
}

/// Sets `record`'s deadline as of a write or refresh at `now`.
fn stamp(config: &SessionConfig, record: &mut Record, now: SystemTime) {
    let expiry = record.expiry.unwrap_or(config.expiry());
    record.expires_at = expiry.deadline(record.created, now);
}

/// The end-of-request decisions, for one request.
struct Finisher<'a> {
    store: &'a dyn SessionStore,
    config: &'a SessionConfig,
    previous: Option<&'a str>,
    now: SystemTime,
}

impl Finisher<'_> {
    fn cookie(&self) -> &CookieConfig {
        self.config.cookie()
    }

    fn set_cookie(&self, value: &str, record: &Record) -> Result<String, Error> {
        let max_age = match self.config.cookie_lifetime() {
            CookieLifetime::BrowserSession => None,
            CookieLifetime::Persistent => {
                Some(record.expires_at.map_or(MAX_COOKIE_AGE, |deadline| {
                    deadline.duration_since(self.now).unwrap_or(Duration::ZERO)
                }))
            }
        };
        self.cookie().set_cookie(value, max_age)
    }

    fn removal(&self) -> Vec<String> {
        self.previous
            .map(|_| self.cookie().removal_cookie())
            .into_iter()
            .collect()
    }

    async fn delete_previous(&self) -> Result<(), Error> {
        match self.previous {
            Some(previous) => {
                self.store
                    .delete(Delete::new(self.cookie().name(), previous))
                    .await
            }
            None => Ok(()),
        }
    }

    /// Stores `record` as a brand-new session under a fresh id.
    async fn save_new(&self, mut record: Arc<Record>) -> Result<Vec<String>, Error> {
        let fresh = Arc::make_mut(&mut record);
        fresh.created = self.now;
        stamp(self.config, fresh, self.now);
        let changes = Changes::replace_all(&record);
        let save = Save::new(self.cookie().name(), None, &record, &changes, self.now);
        match self.store.save(save).await? {
            Saved::Cookie(value) => Ok(vec![self.set_cookie(&value, &record)?]),
            Saved::Gone => Err(Error::store("the store reported a new session as gone")),
        }
    }

    async fn invalidate(&self, record: Arc<Record>) -> Result<Vec<String>, Error> {
        self.delete_previous().await?;
        if record.data.is_empty() {
            tracing::debug!(cookie = self.cookie().name(), "session invalidated");
            return Ok(self.removal());
        }
        // Written after the logout: a fresh session, with no link to the old.
        self.save_new(record).await
    }

    async fn regenerate(&self, record: Arc<Record>) -> Result<Vec<String>, Error> {
        // Save first: if it fails, the old session is still there.
        let cookies = self.save_new(record).await?;
        self.delete_previous().await?;
        tracing::debug!(cookie = self.cookie().name(), "session regenerated");
        Ok(cookies)
    }

    /// Saves `record`, stamped with its new deadline.
    async fn save(&self, record: Arc<Record>, changes: &Changes) -> Result<Vec<String>, Error> {
        let save = Save::new(
            self.cookie().name(),
            self.previous,
            &record,
            changes,
            self.now,
        );
        match self.store.save(save).await? {
            // The browser already holds this very cookie, and a browser-session
            // cookie has no `Max-Age` to move: sending it again would change
            // nothing, and would keep shared caches from storing the response.
            Saved::Cookie(value)
                if self.previous == Some(value.as_str())
                    && self.config.cookie_lifetime() == CookieLifetime::BrowserSession =>
            {
                Ok(Vec::new())
            }
            Saved::Cookie(value) => Ok(vec![self.set_cookie(&value, &record)?]),
            Saved::Gone => {
                tracing::debug!(
                    cookie = self.cookie().name(),
                    "session ended during the request"
                );
                Ok(self.removal())
            }
        }
    }

    /// Sends an unchanged session back through the store: to move its
    /// deadline when `restamp` (a rolling refresh, `record` stamped with the
    /// new one), or else as it was loaded, to re-issue its cookie
    /// ([`SessionStore::needs_reissue`]).
    async fn refresh(&self, record: Arc<Record>, restamp: bool) -> Result<Vec<String>, Error> {
        let Some(previous) = self.previous else {
            return Ok(Vec::new());
        };
        let touch = Touch::new(self.cookie().name(), previous, &record, self.now);
        match self.store.touch(touch).await? {
            Some(value) => Ok(vec![self.set_cookie(&value, &record)?]),
            None if restamp && self.config.cookie_lifetime() == CookieLifetime::Persistent => {
                // Same value, but the browser's Max-Age must move too.
                Ok(vec![self.set_cookie(previous, &record)?])
            }
            None => Ok(Vec::new()),
        }
    }
}
