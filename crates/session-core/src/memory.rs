//! An in-process server-side store.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::user::{BoundSession, UserIndex};
use crate::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionId, SessionStore, Update,
    Written,
};

/// At most this many sessions past their deadline are dropped by one write,
/// so that a write never waits for a large sweep (when many sessions end at
/// once); each write drops more than it can add, so they do not pile up.
const SWEPT_PER_WRITE: usize = 64;

/// Sessions kept in this process's memory, keyed by random id.
///
/// For tests and single-process applications: sessions vanish on restart
/// and are not shared between processes. Saves merge deltas like the Redis
/// store does, so concurrent requests on one session keep all their changes.
/// Sessions past their deadline are dropped by the writes that follow it (a
/// few at a time, in the order of their deadlines, at a cost that does not
/// grow with the number of sessions held), or all at once by
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
    sessions: HashMap<Arc<str>, Stored>,
    /// The sessions with a deadline, by the deadline they had when entered
    /// here, which is never later than the one they have: a sweep walks
    /// this from the front and stops at the first deadline still ahead,
    /// rather than looking at every session. A deadline that moves later
    /// (every rolling refresh) leaves the entry as it is, to be moved when
    /// the sweep reaches it; one that moves earlier moves it at once.
    deadlines: BTreeSet<(SystemTime, Arc<str>)>,
    /// The ids of each user's sessions: every change of `sessions` goes
    /// through a method of `Inner` that keeps this and `deadlines` in step,
    /// under the same lock, so neither holds a session that ended.
    /// The ids are `sessions`' own keys, shared.
    users: HashMap<String, HashSet<Arc<str>>>,
}

/// A session and where it is in [`Inner::deadlines`].
struct Stored {
    // Shared with the requests that loaded it: a write copies the record
    // only while a request still holds it.
    record: Arc<Record>,
    indexed_at: Option<SystemTime>,
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
        self.lock().drop_expired(now, usize::MAX)
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
    /// What every write does first: drops a few of the sessions whose
    /// deadline has passed at `now`.
    fn tick(&mut self, now: SystemTime) {
        self.drop_expired(now, SWEPT_PER_WRITE);
    }

    /// Drops up to `limit` sessions whose deadline has passed at `now`,
    /// earliest first: how many.
    fn drop_expired(&mut self, now: SystemTime, limit: usize) -> usize {
        let mut dropped = 0;
        while dropped < limit {
            // The id is copied only when its entry is due: most writes
            // find none.
            let Some((_, id)) = self.deadlines.first().filter(|(d, _)| *d <= now) else {
                break;
            };
            let id = Arc::clone(id);
            let Some(stored) = self.sessions.get_mut(&id) else {
                // Not reachable: `remove` takes a session's entry with it.
                self.deadlines.pop_first();
                continue;
            };
            if stored.record.is_expired_at(now) {
                self.remove(&id);
                dropped += 1;
            } else {
                // Its deadline moved later since it was entered.
                self.deadlines.pop_first();
                stored.indexed_at = stored.record.expires_at;
                if let Some(deadline) = stored.indexed_at {
                    self.deadlines.insert((deadline, id));
                }
            }
        }
        dropped
    }

    /// The session stored under `id`, unless it has expired at `now` (then
    /// it is dropped): what a write may touch.
    fn live(&mut self, id: &str, now: SystemTime) -> Option<&mut Stored> {
        if self.sessions.get(id)?.record.is_expired_at(now) {
            self.remove(id);
            return None;
        }
        self.sessions.get_mut(id)
    }

    /// Stores `record` under a fresh id, which it returns.
    fn insert_new(&mut self, record: Arc<Record>) -> String {
        let id = loop {
            let id = SessionId::generate().into_string();
            if !self.sessions.contains_key(id.as_str()) {
                break id;
            }
        };
        let key: Arc<str> = Arc::from(id.as_str());
        let indexed_at = record.expires_at;
        if let Some(deadline) = indexed_at {
            self.deadlines.insert((deadline, Arc::clone(&key)));
        }
        self.index(&key, None, record.user.as_deref());
        self.sessions.insert(key, Stored { record, indexed_at });
        id
    }

    /// Removes the session `id`, and it from its user's index and from
    /// `deadlines`.
    fn remove(&mut self, id: &str) -> Option<Arc<Record>> {
        let (key, stored) = self.sessions.remove_entry(id)?;
        self.index(&key, stored.record.user.as_deref(), None);
        if let Some(deadline) = stored.indexed_at {
            self.deadlines.remove(&(deadline, key));
        }
        Some(stored.record)
    }

    /// `sessions`' own key for `id`, shared.
    fn key_of(&self, id: &str) -> Option<Arc<str>> {
        self.sessions
            .get_key_value(id)
            .map(|(key, _)| Arc::clone(key))
    }

    /// Moves the session under `key` (`sessions`' own) in the user index
    /// from `before`'s sessions to `after`'s.
    fn index(&mut self, key: &Arc<str>, before: Option<&str>, after: Option<&str>) {
        if let Some(user) = before {
            if let Some(ids) = self.users.get_mut(user) {
                ids.remove(&**key);
                if ids.is_empty() {
                    self.users.remove(user);
                }
            }
        }
        if let Some(user) = after {
            self.users
                .entry(user.to_owned())
                .or_default()
                .insert(Arc::clone(key));
        }
    }

    /// Applies `change` to the live session `id`, keeping the user index
    /// and `deadlines` in step: `false` when there is no such session at
    /// `now`.
    fn change(&mut self, id: &str, now: SystemTime, change: impl FnOnce(&mut Record)) -> bool {
        let Some(stored) = self.live(id, now) else {
            return false;
        };
        let record = Arc::make_mut(&mut stored.record);
        let before = record.user.clone();
        change(record);
        let after = record.user.clone();
        // An entry at or before the deadline still finds the session in
        // time; one past it, or none for a session that now has one, would
        // keep it past its end.
        let deadline = record.expires_at;
        if let Some(deadline) = deadline.filter(|d| stored.indexed_at.is_none_or(|i| i > *d)) {
            let indexed = stored.indexed_at.replace(deadline);
            self.move_deadline(id, indexed, deadline);
        }
        if before != after {
            if let Some(key) = self.key_of(id) {
                self.index(&key, before.as_deref(), after.as_deref());
            }
        }
        true
    }

    /// Moves `id`'s entry in `deadlines` from `from` (none: no entry) to
    /// `to`.
    fn move_deadline(&mut self, id: &str, from: Option<SystemTime>, to: SystemTime) {
        let Some(key) = self.key_of(id) else {
            return;
        };
        if let Some(from) = from {
            self.deadlines.remove(&(from, Arc::clone(&key)));
        }
        self.deadlines.insert((to, key));
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        Ok(self.load_from_memory(cookie))
    }

    fn load_from_memory(&self, cookie: SessionCookie<'_>) -> Option<Arc<Record>> {
        self.lock()
            .sessions
            .get(cookie.value)
            .map(|stored| Arc::clone(&stored.record))
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
        inner.tick(refresh.now);
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
        // No `tick`: a delete has no clock to sweep by.
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
        let ids: Vec<Arc<str>> = inner
            .users
            .get(user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let mut sessions = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(stored) = inner.live(&id, now) {
                let record = Arc::clone(&stored.record);
                sessions.push(BoundSession::new(id.to_string(), record));
            }
        }
        Ok(sessions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn bound(user: &str, now: SystemTime, ttl: u64) -> Arc<Record> {
        let mut record = Record::new(now);
        record.user = Some(user.to_owned());
        record.expires_at = Some(now + Duration::from_secs(ttl));
        Arc::new(record)
    }

    impl Inner {
        /// Panics unless `deadlines` has exactly one entry per session with
        /// an `indexed_at`, at it, no later than the session's deadline,
        /// and nothing else; and unless `users` holds exactly the bound
        /// sessions, under their users, sharing `sessions`' keys.
        fn check_indexes(&self) {
            let indexed: BTreeSet<(SystemTime, Arc<str>)> = self
                .sessions
                .iter()
                .filter_map(|(id, stored)| Some((stored.indexed_at?, Arc::clone(id))))
                .collect();
            assert_eq!(self.deadlines, indexed);
            for stored in self.sessions.values() {
                if let Some(deadline) = stored.record.expires_at {
                    let indexed = stored.indexed_at.expect("a deadline without an entry");
                    assert!(indexed <= deadline, "entered after its deadline");
                }
            }
            let mut bound: HashMap<&str, HashSet<&str>> = HashMap::new();
            for (id, stored) in &self.sessions {
                if let Some(user) = &stored.record.user {
                    bound.entry(user).or_default().insert(id);
                }
            }
            let indexed: HashMap<&str, HashSet<&str>> = self
                .users
                .iter()
                .map(|(user, ids)| (user.as_str(), ids.iter().map(|id| &**id).collect()))
                .collect();
            assert_eq!(indexed, bound);
            for id in self.users.values().flatten() {
                let (key, _) = self.sessions.get_key_value(&**id).expect("indexed");
                assert!(Arc::ptr_eq(key, id), "a copy of the id, not the key");
            }
        }
    }

    #[test]
    fn the_user_index_never_holds_a_session_that_ended() {
        let now = SystemTime::now();
        let mut inner = Inner::default();
        let short = inner.insert_new(bound("ada", now, 10));
        let long = inner.insert_new(bound("ada", now, 1000));
        let other = inner.insert_new(bound("bob", now, 1000));
        assert_eq!(inner.users["ada"].len(), 2);
        inner.remove(&long);
        assert_eq!(inner.users["ada"].len(), 1);
        assert_eq!(
            inner.drop_expired(now + Duration::from_secs(11), usize::MAX),
            1
        );
        assert!(!inner.users.contains_key("ada"), "{:?}", inner.users.keys());
        assert!(inner.change(&other, now, |r| r.user = Some("carol".into())));
        assert!(!inner.users.contains_key("bob"));
        assert!(inner.users["carol"].contains(other.as_str()));
        assert!(!inner.sessions.contains_key(short.as_str()));
        inner.check_indexes();
    }

    #[test]
    fn a_write_drops_a_bounded_number_of_ended_sessions_earliest_first() {
        let store = MemoryStore::new();
        let now = SystemTime::now();
        let mut inner = store.lock();
        let ids: Vec<String> = (0..200)
            .map(|i| inner.insert_new(bound("ada", now, 10 + i)))
            .collect();
        let later = now + Duration::from_secs(1000);
        inner.tick(later);
        assert_eq!(inner.sessions.len(), 200 - SWEPT_PER_WRITE);
        assert!(
            ids[..SWEPT_PER_WRITE]
                .iter()
                .all(|id| !inner.sessions.contains_key(id.as_str()))
        );
        inner.check_indexes();
        drop(inner);
        assert_eq!(store.sweep(later), 200 - SWEPT_PER_WRITE);
        assert!(store.is_empty());
        assert!(store.lock().users.is_empty());
        store.lock().check_indexes();
    }

    #[test]
    fn a_deadline_moved_later_keeps_the_session_until_the_new_one() {
        let now = SystemTime::now();
        let mut inner = Inner::default();
        let id = inner.insert_new(bound("ada", now, 10));
        let extend = |r: &mut Record| r.expires_at = Some(now + Duration::from_secs(100));
        assert!(inner.change(&id, now, extend));
        // The entry stays at the first deadline until a sweep reaches it.
        assert_eq!(
            inner.deadlines.first().map(|e| e.0),
            Some(now + Duration::from_secs(10))
        );
        assert_eq!(
            inner.drop_expired(now + Duration::from_secs(11), usize::MAX),
            0
        );
        assert!(inner.sessions.contains_key(id.as_str()));
        inner.check_indexes();
        assert_eq!(
            inner.drop_expired(now + Duration::from_secs(100), usize::MAX),
            1
        );
        assert!(inner.sessions.is_empty() && inner.deadlines.is_empty());
    }

    #[test]
    fn a_deadline_moved_earlier_or_added_is_swept_on_time() {
        let now = SystemTime::now();
        let mut inner = Inner::default();
        let shortened = inner.insert_new(bound("ada", now, 1000));
        let mut unbounded = Record::new(now);
        unbounded.user = Some("bob".into());
        let bounded_later = inner.insert_new(Arc::new(unbounded));
        let kept = inner.insert_new(bound("carol", now, 10));
        let in_10 = |r: &mut Record| r.expires_at = Some(now + Duration::from_secs(10));
        assert!(inner.change(&shortened, now, in_10));
        assert!(inner.change(&bounded_later, now, in_10));
        assert!(inner.change(&kept, now, |r| r.expires_at = None));
        inner.check_indexes();
        assert_eq!(
            inner.drop_expired(now + Duration::from_secs(11), usize::MAX),
            2
        );
        assert_eq!(
            inner.sessions.keys().map(|k| &**k).collect::<Vec<_>>(),
            [kept.as_str()]
        );
        // Its stale entry went on the way; it has no deadline, so no entry.
        assert!(inner.deadlines.is_empty());
        inner.check_indexes();
    }

    /// One step of the property test, after the clock moves on by the
    /// seconds beside it. A `target` picks a session modulo how many there
    /// are; a `ttl` of `None` is no deadline, a `user` of `None` no user.
    #[derive(Clone, Debug)]
    enum Step {
        Create { ttl: Option<u8>, user: Option<u8> },
        SetDeadline { target: usize, ttl: Option<u8> },
        Bind { target: usize, user: Option<u8> },
        Delete { target: usize },
        Sweep { limit: usize },
    }

    fn step() -> impl Strategy<Value = (Step, u8)> {
        let ttl = proptest::option::of(0u8..50);
        // Few users, so that they share sessions.
        let user = proptest::option::of(0u8..3);
        let step = prop_oneof![
            (ttl.clone(), user.clone()).prop_map(|(ttl, user)| Step::Create { ttl, user }),
            (any::<usize>(), ttl).prop_map(|(target, ttl)| Step::SetDeadline { target, ttl }),
            (any::<usize>(), user).prop_map(|(target, user)| Step::Bind { target, user }),
            any::<usize>().prop_map(|target| Step::Delete { target }),
            (0usize..4).prop_map(|limit| Step::Sweep { limit }),
        ];
        (step, 0u8..5)
    }

    proptest! {
        /// Against a model that looks at every session: whatever the
        /// writes, a full sweep drops exactly the sessions past their
        /// deadline, and `deadlines` holds one entry per session with a
        /// deadline, never after it, and nothing for sessions gone; and
        /// the user index holds exactly the bound sessions.
        #[test]
        fn sweeps_drop_what_a_full_scan_would(steps in proptest::collection::vec(step(), 1..80)) {
            let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            let mut inner = Inner::default();
            // The model: every session's deadline, looked at one by one.
            let mut model: Vec<(String, Option<SystemTime>)> = Vec::new();
            let mut clock = start;
            for (step, advance) in steps {
                clock += Duration::from_secs(u64::from(advance));
                let deadline = |ttl: Option<u8>| ttl.map(|t| clock + Duration::from_secs(u64::from(t)));
                let user = |user: Option<u8>| user.map(|u| format!("user-{u}"));
                let mut deleted = None;
                match step {
                    Step::Create { ttl, user: bound } => {
                        let mut record = Record::new(clock);
                        record.expires_at = deadline(ttl);
                        record.user = user(bound);
                        model.push((inner.insert_new(Arc::new(record)), deadline(ttl)));
                    }
                    Step::SetDeadline { target, ttl } if !model.is_empty() => {
                        let i = target % model.len();
                        if inner.change(&model[i].0, clock, |r| r.expires_at = deadline(ttl)) {
                            model[i].1 = deadline(ttl);
                        }
                    }
                    Step::Bind { target, user: bound } if !model.is_empty() => {
                        let i = target % model.len();
                        inner.change(&model[i].0, clock, |r| r.user = user(bound));
                    }
                    Step::Delete { target } if !model.is_empty() => {
                        let (id, _) = model.remove(target % model.len());
                        inner.remove(&id);
                        deleted = Some(id);
                    }
                    Step::Sweep { limit } => {
                        inner.drop_expired(clock, limit);
                    }
                    _ => {}
                }
                inner.check_indexes();
                prop_assert!(deleted.is_none_or(|id| !inner.sessions.contains_key(id.as_str())));
                // Besides a delete, only a session past its deadline goes.
                for (id, deadline) in &model {
                    if !inner.sessions.contains_key(id.as_str()) {
                        prop_assert!(deadline.is_some_and(|d| d <= clock), "{id} dropped alive");
                    }
                }
                model.retain(|(id, _)| inner.sessions.contains_key(id.as_str()));
                prop_assert_eq!(model.len(), inner.sessions.len());
            }
            let expected: usize = inner
                .sessions
                .values()
                .filter(|s| s.record.is_expired_at(clock))
                .count();
            prop_assert_eq!(inner.drop_expired(clock, usize::MAX), expected);
            prop_assert!(inner.sessions.values().all(|s| !s.record.is_expired_at(clock)));
            inner.check_indexes();
        }
    }
}
