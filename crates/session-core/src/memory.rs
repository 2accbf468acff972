//! An in-process server-side store.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{Delete, Error, Load, Record, Save, Saved, SessionId, SessionStore, Touch};

/// Sweep expired sessions after this many saves.
const SWEEP_EVERY: u32 = 256;

/// Sessions kept in this process's memory, keyed by random id.
///
/// For tests and single-process applications: sessions vanish on restart
/// and are not shared between processes. Saves merge deltas like the Redis
/// store does, so concurrent requests on one session keep all their changes.
/// Expired sessions are swept every few hundred saves, or by
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
    // Shared with the requests that loaded them: a save copies a record
    // only while a request still holds it.
    sessions: HashMap<String, Arc<Record>>,
    saves_since_sweep: u32,
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
        inner.saves_since_sweep = 0;
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

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, load: Load<'_>) -> Result<Option<Arc<Record>>, Error> {
        Ok(self.lock().sessions.get(load.value).cloned())
    }

    async fn save(&self, save: Save<'_>) -> Result<Saved, Error> {
        let mut inner = self.lock();
        inner.saves_since_sweep += 1;
        if inner.saves_since_sweep >= SWEEP_EVERY {
            inner.saves_since_sweep = 0;
            inner
                .sessions
                .retain(|_, record| !record.is_expired_at(save.now));
        }
        let Some(previous) = save.previous else {
            let id = loop {
                let id = SessionId::generate().into_string();
                if !inner.sessions.contains_key(&id) {
                    break id;
                }
            };
            inner.sessions.insert(id.clone(), Arc::clone(save.record));
            return Ok(Saved::Cookie(id));
        };
        let Some(stored) = inner.sessions.get_mut(previous) else {
            return Ok(Saved::Gone);
        };
        if stored.is_expired_at(save.now) {
            inner.sessions.remove(previous);
            return Ok(Saved::Gone);
        }
        save.apply_to(Arc::make_mut(stored));
        Ok(Saved::Cookie(previous.to_owned()))
    }

    async fn touch(&self, touch: Touch<'_>) -> Result<Option<String>, Error> {
        if let Some(stored) = self.lock().sessions.get_mut(touch.value) {
            Arc::make_mut(stored).expires_at = touch.record.expires_at;
        }
        Ok(None)
    }

    async fn delete(&self, delete: Delete<'_>) -> Result<(), Error> {
        self.lock().sessions.remove(delete.value);
        Ok(())
    }
}
