//! An in-process server-side store.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::user::{BoundSession, UserIndex};
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
    /// The ids of each user's sessions: every change of `sessions` goes
    /// through a method of `Inner` that keeps this in step, under the same
    /// lock, so it never holds a session that ended.
    users: HashMap<String, HashSet<String>>,
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
        inner.drop_expired(now)
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
            self.drop_expired(now);
        }
    }

    /// Drops the sessions expired at `now`: how many.
    fn drop_expired(&mut self, now: SystemTime) -> usize {
        let expired: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, record)| record.is_expired_at(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired.len()
    }

    /// The session stored under `id`, unless it has expired at `now` (then
    /// it is dropped): what a write may touch.
    fn live(&mut self, id: &str, now: SystemTime) -> Option<&mut Arc<Record>> {
        if self.sessions.get(id)?.is_expired_at(now) {
            self.remove(id);
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
        self.index(&id, None, record.user.as_deref());
        self.sessions.insert(id.clone(), record);
        id
    }

    /// Removes the session `id`, and it from its user's index.
    fn remove(&mut self, id: &str) -> Option<Arc<Record>> {
        let record = self.sessions.remove(id)?;
        self.index(id, record.user.as_deref(), None);
        Some(record)
    }

    /// Moves `id` in the user index from `before`'s sessions to `after`'s.
    fn index(&mut self, id: &str, before: Option<&str>, after: Option<&str>) {
        if before == after {
            return;
        }
        if let Some(user) = before {
            if let Some(ids) = self.users.get_mut(user) {
                ids.remove(id);
                if ids.is_empty() {
                    self.users.remove(user);
                }
            }
        }
        if let Some(user) = after {
            self.users
                .entry(user.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
    }

    /// Applies `change` to the live session `id`, keeping the user index
    /// in step: `false` when there is no such session at `now`.
    fn change(&mut self, id: &str, now: SystemTime, change: impl FnOnce(&mut Record)) -> bool {
        let Some(stored) = self.live(id, now) else {
            return false;
        };
        let record = Arc::make_mut(stored);
        let before = record.user.clone();
        change(record);
        let after = record.user.clone();
        self.index(id, before.as_deref(), after.as_deref());
        true
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        Ok(self.load_from_memory(cookie))
    }

    fn load_from_memory(&self, cookie: SessionCookie<'_>) -> Option<Arc<Record>> {
        self.lock().sessions.get(cookie.value).cloned()
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        let mut inner = self.lock();
        inner.tick(create.now);
        Ok(inner.insert_new(Arc::clone(create.record)))
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        let mut inner = self.lock();
        inner.tick(update.now);
        let id = update.cookie.value;
        Ok(
            if inner.change(id, update.now, |stored| update.apply_to(stored)) {
                Written::Cookie(id.to_owned())
            } else {
                Written::Gone
            },
        )
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        let mut inner = self.lock();
        let id = refresh.cookie.value;
        // Only the deadline (and when it was last seen): what concurrent
        // requests wrote stays.
        let refreshed = inner.change(id, refresh.now, |stored| {
            stored.expires_at = refresh.record.expires_at;
            stored.last_seen = refresh.record.last_seen;
        });
        Ok(if refreshed {
            Written::Cookie(id.to_owned())
        } else {
            Written::Gone
        })
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
        let Some(mut record) = inner.remove(regenerate.cookie.value) else {
            return Ok(Written::Gone);
        };
        regenerate.apply_to(Arc::make_mut(&mut record));
        Ok(Written::Cookie(inner.insert_new(record)))
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        Ok(self.lock().remove(cookie.value).is_some())
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }
}

#[async_trait]
impl UserIndex for MemoryStore {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        let mut inner = self.lock();
        let ids: Vec<String> = inner
            .users
            .get(user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = inner.live(&id, now) {
                let record = Arc::clone(record);
                sessions.push(BoundSession::new(id, record));
            }
        }
        Ok(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bound(user: &str, now: SystemTime, ttl: u64) -> Arc<Record> {
        let mut record = Record::new(now);
        record.user = Some(user.to_owned());
        record.expires_at = Some(now + Duration::from_secs(ttl));
        Arc::new(record)
    }

    #[test]
    fn the_user_index_never_holds_a_session_that_ended() {
        let store = MemoryStore::new();
        let now = SystemTime::now();
        let mut inner = store.lock();
        let short = inner.insert_new(bound("ada", now, 10));
        let long = inner.insert_new(bound("ada", now, 1000));
        let other = inner.insert_new(bound("bob", now, 1000));
        assert_eq!(inner.users["ada"].len(), 2);
        inner.remove(&long);
        assert_eq!(inner.users["ada"].len(), 1);
        assert_eq!(inner.drop_expired(now + Duration::from_secs(11)), 1);
        assert!(!inner.users.contains_key("ada"), "{:?}", inner.users.keys());
        assert!(inner.change(&other, now, |r| r.user = Some("carol".into())));
        assert!(!inner.users.contains_key("bob"));
        assert!(inner.users["carol"].contains(&other));
        assert!(!inner.sessions.contains_key(&short));
    }
}
