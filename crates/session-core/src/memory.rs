//! An in-process server-side store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionId, SessionStore, Update,
    Written,
};

/// Sweep expired sessions after this many writes.
const SWEEP_EVERY: u32 = 256;

/// Sessions kept in this process's memory, keyed by random id.
///
/// For tests and single-process applications: sessions vanish on restart
/// and are not shared between processes. Saves merge deltas like the Redis
/// store does, so concurrent requests on one session keep all their changes.
/// Expired sessions are swept every few hundred writes, or by
/// [`sweep`](MemoryStore::sweep).
///
/// ```
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
/// let store = MemoryStore::new();
/// let manager = SessionManager::new(store.clone(), SessionConfig::default());
/// assert!(store.is_empty());
/// ```
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    // Shared with the requests that loaded them: a write copies a record
    // only while a request still holds it.
    sessions: HashMap<String, Arc<Record>>,
    writes_since_sweep: u32,
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many sessions are held, counting expired ones not yet swept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().sessions.is_empty()
    }

    /// Drops every session whose deadline has passed at `now`, returning how
    /// many were dropped.
    pub fn sweep(&self, now: SystemTime) -> usize {
        let mut inner = self.lock();
        inner.writes_since_sweep = 0;
        let before = inner.sessions.len();
        inner
            .sessions
            .retain(|_, record| !record.is_expired_at(now));
        before - inner.sessions.len()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.len())
            .finish()
    }
}

impl Inner {
    /// Counts a write, and every [`SWEEP_EVERY`] writes drops the sessions
    /// expired at `now`.
    fn tick(&mut self, now: SystemTime) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= SWEEP_EVERY {
            self.writes_since_sweep = 0;
            self.sessions.retain(|_, record| !record.is_expired_at(now));
        }
    }

    /// The session stored under `id`, unless it has expired at `now` (then
    /// it is dropped): what a write may touch.
    fn live(&mut self, id: &str, now: SystemTime) -> Option<&mut Arc<Record>> {
        if self.sessions.get(id)?.is_expired_at(now) {
            self.sessions.remove(id);
            return None;
        }
        self.sessions.get_mut(id)
    }

    /// Stores `record` under a fresh id, which it returns.
    fn insert_new(&mut self, record: Arc<Record>) -> String {
        let id = loop {
            let id = SessionId::generate().into_string();
            if !self.sessions.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(id.clone(), record);
        id
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        Ok(self.lock().sessions.get(cookie.value).cloned())
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        let mut inner = self.lock();
        inner.tick(create.now);
        Ok(inner.insert_new(Arc::clone(create.record)))
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        let mut inner = self.lock();
        inner.tick(update.now);
        let Some(stored) = inner.live(update.cookie.value, update.now) else {
            return Ok(Written::Gone);
        };
        update.apply_to(Arc::make_mut(stored));
        Ok(Written::Cookie(update.cookie.value.to_owned()))
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        let mut inner = self.lock();
        let Some(stored) = inner.live(refresh.cookie.value, refresh.now) else {
            return Ok(Written::Gone);
        };
        // Only the deadline: what concurrent requests wrote stays.
        Arc::make_mut(stored).expires_at = refresh.record.expires_at;
        Ok(Written::Cookie(refresh.cookie.value.to_owned()))
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        let mut inner = self.lock();
        inner.tick(regenerate.now);
        // Under one lock: a logout either came first (gone) or finds the
        // session already moved.
        if inner
            .live(regenerate.cookie.value, regenerate.now)
            .is_none()
        {
            return Ok(Written::Gone);
        }
        let Some(mut record) = inner.sessions.remove(regenerate.cookie.value) else {
            return Ok(Written::Gone);
        };
        regenerate.apply_to(Arc::make_mut(&mut record));
        Ok(Written::Cookie(inner.insert_new(record)))
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        Ok(self.lock().sessions.remove(cookie.value).is_some())
    }
}
