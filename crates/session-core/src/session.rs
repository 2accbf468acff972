//! The session handle that handlers read and write.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::expiry::Rules;
use crate::lifecycle::RequestInner;
use crate::{Changes, Error, Expiry, Record, SessionHandle, SessionManager, UserSession};

/// A user's session: a JSON object that survives between requests.
///
/// Obtained from the framework adapter (the `Session` extractor of
/// `session-axum` or `session-actix`), or from
/// [`RequestSession::session`](crate::RequestSession::session). By the time a
/// handler holds it, it is loaded: every method is synchronous.
///
/// The handle is cheap to clone, `Send + Sync`, and every clone sees the
/// same session, so it can move into spawned tasks of the request. Changes
/// are tracked per key and saved when the response is sent.
///
/// ```
/// # use session_core::Session;
/// # fn handler(session: Session) -> Result<(), session_core::Error> {
/// let visits: u64 = session.get("visits")?.unwrap_or(0);
/// session.insert("visits", &(visits + 1))?;
/// # Ok(()) }
/// # handler(Session::new_detached()).unwrap();
/// ```
#[derive(Clone)]
pub struct Session(Handle);

/// Where a session's state lives.
#[derive(Clone)]
enum Handle {
    /// A request's: in the request's own allocation, beside what the
    /// lifecycle keeps of it (its manager, the cookie it was loaded from).
    Request(Arc<RequestInner>),
    /// One attached to no request or store.
    Detached(Arc<Mutex<State>>),
}

/// What happens to the session's identity when the response is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Keep the id.
    #[default]
    Keep,
    /// New id, same data: the old server state is deleted.
    Regenerate,
    /// Data dropped and old server state deleted; anything written afterwards
    /// starts a new session.
    Invalidate,
}

/// What a request did to its session: what the lifecycle has the store
/// write once the handler is done. Records carry their new deadline.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Nothing to write, and no cookie to send.
    Unchanged,
    /// A session the client had no cookie for was written to: store it
    /// under a fresh id.
    Created(Arc<Record>),
    /// A loaded session changed: apply the delta. `data_only`: only data
    /// keys changed, and the deadline stayed (see [`Update::data_only`]).
    Changed {
        record: Arc<Record>,
        changes: Changes,
        data_only: bool,
    },
    /// A loaded session moves to a new id, with this request's changes.
    Regenerated {
        record: Arc<Record>,
        changes: Changes,
    },
    /// A loaded session is unchanged, but its deadline moved (a rolling
    /// refresh, `restamped`) or its cookie must be re-issued.
    Refreshed {
        record: Arc<Record>,
        restamped: bool,
    },
    /// Logged out. What the request wrote afterwards, if anything, is a new
    /// session with no link to the old one.
    Invalidated { then: Option<Arc<Record>> },
}

#[derive(Debug)]
pub(crate) struct State {
    /// Shared with the store that loaded it (a cache, a map in memory)
    /// until the first write: see [`State::record_mut`].
    pub(crate) record: Arc<Record>,
    pub(crate) is_new: bool,
    pub(crate) changes: Changes,
    pub(crate) renewal: Renewal,
}

impl State {
    /// Locks `state`.
    pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a panic in
        // another holder leaves nothing half-written worth refusing.
        state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of a session loaded as `record`, unchanged yet; `is_new`:
    /// the client had no session.
    pub(crate) fn new(record: Arc<Record>, is_new: bool) -> Self {
        State {
            record,
            is_new,
            changes: Changes::default(),
            renewal: Renewal::Keep,
        }
    }
}

impl Session {
    pub(crate) fn from_record(record: Arc<Record>, is_new: bool) -> Self {
        Session(Handle::Detached(Arc::new(Mutex::new(State::new(
            record, is_new,
        )))))
    }

    /// The session of `request`, which holds its state: made only once
    /// the request's session is loaded.
    pub(crate) fn of_request(request: Arc<RequestInner>) -> Self {
        Session(Handle::Request(request))
    }

    /// A new, empty session attached to no request or store: for unit-testing
    /// code that takes a `Session`. Nothing written to it is saved.
    #[must_use]
    pub fn new_detached() -> Self {
        Self::from_record(Arc::new(Record::new(SystemTime::now())), true)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match &self.0 {
            Handle::Request(request) => State::lock(request.state()),
            Handle::Detached(state) => State::lock(state),
        }
    }

    /// The manager of the request the session belongs to, and the cookie
    /// value it was loaded from (`None`: new to this request); `None` for
    /// a detached session.
    fn origin(&self) -> Option<(&SessionManager, Option<&str>)> {
        match &self.0 {
            Handle::Request(request) => Some((request.manager(), request.cookie())),
            Handle::Detached(_) => None,
        }
    }

    /// The value under `key`, deserialized as `T`. `Ok(None)` when absent;
    /// an error when present but not a `T`.
    ///
    /// ```
    /// # let session = session_core::Session::new_detached();
    /// session.insert("user", &"ada")?;
    /// assert_eq!(session.get::<String>("user")?.as_deref(), Some("ada"));
    /// assert_eq!(session.get::<String>("missing")?, None);
    /// assert!(session.get::<u32>("user").is_err());
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.get_value(key) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(Error::Value),
        }
    }

    /// The raw JSON value under `key`.
    #[must_use]
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.lock().record.data.get(key).cloned()
    }

    /// Stores `value` under `key`. Storing a value equal to the one already
    /// there is not a change, and saves nothing.
    ///
    /// ```
    /// # let session = session_core::Session::new_detached();
    /// session.insert("cart", &vec![1, 2, 3])?;
    /// assert!(session.is_changed());
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn insert<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let value = serde_json::to_value(value).map_err(Error::Value)?;
        self.insert_value(key, value);
        Ok(())
    }

    /// Stores a raw JSON value under `key`, returning the previous one.
    pub fn insert_value(&self, key: &str, value: Value) -> Option<Value> {
        let mut state = self.lock();
        if state.record.data.get(key) == Some(&value) {
            return Some(value);
        }
        let previous = state.record_mut().data.insert(key.to_owned(), value);
        if previous.is_some() {
            state.changes.record_write(key);
        } else {
            state.changes.record_addition(key);
        }
        previous
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.lock();
        if !state.record.data.contains_key(key) {
            return None;
        }
        let previous = state.record_mut().data.remove(key);
        if previous.is_some() {
            state.changes.record_remove(key);
        }
        previous
    }

    /// Whether `key` is present.
    #[must_use]
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().record.data.contains_key(key)
    }

    /// The keys, in sorted order.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.lock().record.data.keys().cloned().collect()
    }

    /// How many keys the session holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().record.data.len()
    }

    /// Whether the session holds no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.lock().record.data.is_empty()
    }

    /// A copy of the whole data object.
    #[must_use]
    pub fn data(&self) -> Map<String, Value> {
        self.lock().record.data.clone()
    }

    /// Removes every key (the session itself, and its id, stay).
    pub fn clear(&self) {
        let mut state = self.lock();
        if !state.record.data.is_empty() || !state.is_new {
            if !state.record.data.is_empty() {
                state.record_mut().data.clear();
            }
            state.changes.record_clear();
        }
    }

    /// Asks for the session to be saved even though no key changed, which
    /// also refreshes its idle deadline.
    pub fn mark_changed(&self) {
        self.lock().changes.record_forced();
    }

    /// Whether this request changed the session (so it will be saved).
    #[must_use]
    pub fn is_changed(&self) -> bool {
        let state = self.lock();
        !state.changes.is_empty() || state.renewal != Renewal::Keep
    }

    /// Whether the session was created by this request: the client sent no
    /// cookie, or one that was unknown, invalid or expired.
    #[must_use]
    pub fn is_new(&self) -> bool {
        self.lock().is_new
    }

    /// When the session was first created. Regenerating its id keeps this
    /// time, so the absolute timeout counts from the first login's session
    /// however often the id rotates.
    #[must_use]
    pub fn created(&self) -> SystemTime {
        self.lock().record.created
    }

    /// When the session expires unless activity extends it: as loaded, and
    /// once the request has saved the session, as saved. `None` for a new
    /// session, or one that never expires.
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.lock().record.expires_at
    }

    /// Gives this session its own expiry policy (for example a long idle
    /// timeout after "remember me"), saved with it. Its absolute timeout can
    /// only shorten the configured one, never lengthen it
    /// ([`Expiry::within`]): configure the longest absolute timeout any
    /// session may have.
    ///
    /// ```
    /// use std::time::Duration;
    /// # let session = session_core::Session::new_detached();
    /// let remember_me = session_core::Expiry::default()
    ///     .with_idle_timeout(Some(Duration::from_secs(30 * 24 * 3600)))
    ///     .with_absolute_timeout(Some(Duration::from_secs(90 * 24 * 3600)));
    /// session.set_expiry(Some(remember_me));
    /// assert_eq!(session.expiry(), Some(remember_me));
    /// ```
    pub fn set_expiry(&self, expiry: Option<Expiry>) {
        let mut state = self.lock();
        if state.record.expiry != expiry {
            state.record_mut().expiry = expiry;
            state.changes.record_forced();
        }
    }

    /// This session's own expiry policy, if it has one.
    #[must_use]
    pub fn expiry(&self) -> Option<Expiry> {
        self.lock().record.expiry
    }

    /// Ends the session (logout): drops the data and the binding to a user,
    /// deletes the server-side state, and sends a cookie that removes the
    /// client's. Anything written after this call starts a fresh session
    /// under a new id.
    pub fn invalidate(&self) {
        let mut state = self.lock();
        let record = state.record_mut();
        record.data.clear();
        record.expiry = None;
        record.user = None;
        record.label = None;
        record.last_seen = None;
        state.changes = Changes::default();
        state.renewal = Renewal::Invalidate;
    }

    /// Gives the session a new id and keeps its data, deleting the state
    /// under the old id: call it on login to defeat session fixation. The
    /// absolute timeout keeps counting from the session's first creation.
    ///
    /// The move happens only if the session still exists when the response
    /// is saved: if a logout, a revocation or another login ended or moved
    /// it meanwhile, nothing is saved and no cookie is sent (the client
    /// keeps whatever cookie the other response gave it).
    pub fn regenerate(&self) {
        let mut state = self.lock();
        if state.renewal == Renewal::Keep {
            state.renewal = Renewal::Regenerate;
        }
    }
}

impl State {
    /// What this request did to the session, as of `now`, for the
    /// lifecycle to save; `reissue` asks for the cookie of an unchanged
    /// session to be sent anew. A record to save gets its new deadline
    /// here, in the session's own record, which the store then shares
    /// rather than copies (a write has already made it the session's own);
    /// a later write goes to a copy, unsaved.
    pub(crate) fn outcome(&mut self, rules: &Rules, now: SystemTime, reissue: bool) -> Outcome {
        match self.renewal {
            Renewal::Invalidate => {
                let then = (!self.record.data.is_empty()).then(|| self.restart(rules, now));
                Outcome::Invalidated { then }
            }
            _ if self.is_new => {
                if self.changes.is_empty() && self.renewal == Renewal::Keep {
                    Outcome::Unchanged
                } else {
                    Outcome::Created(self.restart(rules, now))
                }
            }
            Renewal::Regenerate => Outcome::Regenerated {
                record: self.stamped(rules, now),
                changes: self.changes.clone(),
            },
            Renewal::Keep if !self.changes.is_empty() => {
                let data_only =
                    !self.changes.forced() && !rules.write_moves_deadline(&self.record, now);
                Outcome::Changed {
                    record: if data_only {
                        Arc::clone(&self.record)
                    } else {
                        self.stamped(rules, now)
                    },
                    changes: self.changes.clone(),
                    data_only,
                }
            }
            Renewal::Keep if rules.refresh_due(&self.record, now) => Outcome::Refreshed {
                record: self.stamped(rules, now),
                restamped: true,
            },
            // Decided without a copy: a read-only request copies nothing.
            Renewal::Keep if reissue => Outcome::Refreshed {
                record: Arc::clone(&self.record),
                restamped: false,
            },
            Renewal::Keep => Outcome::Unchanged,
        }
    }
}

/// Sessions bound to a user: see [`user`](crate::user).
impl Session {
    /// Binds the session to `user` (call it at login, beside
    /// [`regenerate`](Self::regenerate)), so that it is listed among that
    /// user's sessions and can be revoked from any of them, or from
    /// anywhere through the [`SessionManager`].
    ///
    /// ```
    /// # let session = session_core::Session::new_detached();
    /// session.regenerate();
    /// session.bind_user("42");
    /// session.set_label("Firefox on Linux");
    /// assert_eq!(session.user().as_deref(), Some("42"));
    /// ```
    pub fn bind_user(&self, user: impl Into<String>) {
        let user = Some(user.into());
        let mut state = self.lock();
        if state.record.user != user {
            state.record_mut().user = user;
            state.changes.record_forced();
        }
    }

    /// The user the session is bound to, if any.
    #[must_use]
    pub fn user(&self) -> Option<String> {
        self.lock().record.user.clone()
    }

    /// Labels the session (a device, a browser, an address) for the
    /// listing of its user's sessions.
    pub fn set_label(&self, label: impl Into<String>) {
        let label = Some(label.into());
        let mut state = self.lock();
        if state.record.label != label {
            state.record_mut().label = label;
            state.changes.record_forced();
        }
    }

    /// This session's [`SessionHandle`]: the name it has in its user's
    /// listing, safe to log (it cannot be turned into a cookie), as
    /// aiohttp_session's `identity`. `None` for a session new to this
    /// request. Stable for as long as a server-side store keeps the id;
    /// a cookie store's changes with every write.
    #[must_use]
    pub fn handle(&self) -> Option<SessionHandle> {
        let (_, cookie) = self.origin()?;
        Some(SessionHandle::of(cookie?))
    }

    /// The live sessions of the user this session is bound to, this one
    /// marked [current](UserSession::is_current); empty when it is bound to
    /// no user.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the store keeps no user index (or the
    /// session is detached), or the store's error.
    pub async fn user_sessions(&self) -> Result<Vec<UserSession>, Error> {
        let Some((manager, user)) = self.bound()? else {
            return Ok(Vec::new());
        };
        let current = self.handle();
        let mut sessions = manager.sessions_of(&user).await?;
        for session in &mut sessions {
            session.current = current.as_ref() == Some(session.handle());
        }
        Ok(sessions)
    }

    /// Revokes the session `handle` if it is one of this session's user's:
    /// whether it was.
    ///
    /// # Errors
    ///
    /// As [`user_sessions`](Self::user_sessions).
    pub async fn revoke_user_session(&self, handle: &SessionHandle) -> Result<bool, Error> {
        match self.bound()? {
            Some((manager, user)) => manager.revoke(&user, handle).await,
            None => Ok(false),
        }
    }

    /// Revokes every other session of this session's user ("log out
    /// everywhere else", after a password change): how many.
    ///
    /// # Errors
    ///
    /// As [`SessionManager::revoke_all_except`](crate::SessionManager::revoke_all_except).
    pub async fn revoke_other_user_sessions(&self) -> Result<usize, Error> {
        let keep = self.handle();
        match self.bound()? {
            Some((manager, user)) => manager.revoke_all_except(&user, keep.as_ref()).await,
            None => Ok(0),
        }
    }

    /// The manager and the user, for a session bound to one.
    fn bound(&self) -> Result<Option<(SessionManager, String)>, Error> {
        let Some((manager, _)) = self.origin() else {
            return Err(Error::Unsupported("user sessions on a detached session"));
        };
        let user = self.lock().record.user.clone();
        Ok(user.map(|user| (manager.clone(), user)))
    }
}

impl State {
    /// The record, to write to: copied first if it is still shared with the
    /// store that loaded it, which must not see this request's writes.
    pub(crate) fn record_mut(&mut self) -> &mut Record {
        Arc::make_mut(&mut self.record)
    }

    /// The record with its deadline as of a write at `now` (and, bound to
    /// a user, last seen then).
    fn stamped(&mut self, rules: &Rules, now: SystemTime) -> Arc<Record> {
        let record = self.record_mut();
        rules.stamp(record, now);
        if record.user.is_some() {
            record.last_seen = Some(now);
        }
        Arc::clone(&self.record)
    }

    /// The record as a brand-new session created at `now`.
    fn restart(&mut self, rules: &Rules, now: SystemTime) -> Arc<Record> {
        self.record_mut().created = now;
        self.stamped(rules, now)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Session")
            .field("is_new", &state.is_new)
            .field("keys", &state.record.data.len())
            .field("changes", &state.changes)
            .field("renewal", &state.renewal)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_new_session_is_empty_and_unchanged() {
        let s = Session::new_detached();
        assert!(s.is_new() && s.is_empty() && !s.is_changed());
        assert_eq!(s.len(), 0);
        assert!(s.keys().is_empty());
    }

    #[test]
    fn insert_marks_changed_but_an_equal_value_does_not() {
        let s = Session::from_record(
            Arc::new({
                let mut r = Record::new(SystemTime::now());
                r.data.insert("a".into(), json!({"x": [1, 2]}));
                r
            }),
            false,
        );
        s.insert("a", &json!({"x": [1, 2]})).unwrap();
        assert!(!s.is_changed());
        s.insert("a", &json!({"x": [1, 3]})).unwrap();
        assert!(s.is_changed());
        assert_eq!(s.lock().changes.written().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn writing_a_key_the_session_lacks_adds_keys() {
        let s = Session::from_record(
            Arc::new({
                let mut r = Record::new(SystemTime::now());
                r.data.insert("a".into(), json!(1));
                r
            }),
            false,
        );
        s.insert("a", &2).unwrap();
        assert!(!s.lock().changes.adds_keys(), "an overwrite");
        s.remove("a");
        s.insert("a", &3).unwrap();
        assert!(s.lock().changes.adds_keys(), "removed, then added again");

        let s = Session::new_detached();
        s.insert("b", &1).unwrap();
        assert!(s.lock().changes.adds_keys());
    }

    #[test]
    fn writes_go_to_a_copy_and_never_to_the_record_the_store_shared() {
        let shared = Arc::new({
            let mut r = Record::new(SystemTime::now());
            r.data.insert("a".into(), json!(1));
            r.data.insert("b".into(), json!(2));
            r
        });
        let s = Session::from_record(Arc::clone(&shared), false);
        // Reads, and writes that change nothing, copy nothing.
        assert_eq!(s.get::<u8>("a").unwrap(), Some(1));
        s.insert("a", &1).unwrap();
        s.remove("missing");
        assert!(Arc::ptr_eq(&s.lock().record, &shared));

        s.insert("a", &10).unwrap();
        s.remove("b");
        s.set_expiry(Some(Expiry::NEVER));
        assert_eq!(s.get::<u8>("a").unwrap(), Some(10));
        assert_eq!(shared.data.get("a"), Some(&json!(1)));
        assert_eq!(shared.data.get("b"), Some(&json!(2)));
        assert_eq!(shared.expiry, None);

        let other = Session::from_record(Arc::clone(&shared), false);
        other.clear();
        other.invalidate();
        assert_eq!(shared.data.len(), 2);
    }

    #[test]
    fn remove_and_clear_are_tracked() {
        let s = Session::new_detached();
        s.insert("a", &1).unwrap();
        s.insert("b", &2).unwrap();
        assert_eq!(s.remove("a"), Some(json!(1)));
        assert_eq!(s.remove("a"), None);
        assert!(!s.contains_key("a") && s.contains_key("b"));
        s.clear();
        assert!(s.is_empty());
        assert!(s.lock().changes.cleared());
    }

    #[test]
    fn typed_get_round_trips_and_reports_type_errors() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct User {
            name: String,
            admin: bool,
        }
        let s = Session::new_detached();
        let ada = User {
            name: "Ada ✓".into(),
            admin: true,
        };
        s.insert("user", &ada).unwrap();
        assert_eq!(s.get::<User>("user").unwrap(), Some(ada));
        assert!(matches!(s.get::<u8>("user"), Err(Error::Value(_))));
    }

    #[test]
    fn invalidate_empties_and_marks_changed() {
        let s = Session::from_record(
            Arc::new({
                let mut r = Record::new(SystemTime::now());
                r.data.insert("user".into(), json!("ada"));
                r
            }),
            false,
        );
        s.invalidate();
        assert!(s.is_empty() && s.is_changed());
        assert_eq!(s.lock().renewal, Renewal::Invalidate);
    }

    #[test]
    fn regenerate_keeps_the_data() {
        let s = Session::new_detached();
        s.insert("user", &"ada").unwrap();
        s.regenerate();
        assert_eq!(s.get::<String>("user").unwrap().as_deref(), Some("ada"));
        assert_eq!(s.lock().renewal, Renewal::Regenerate);
    }

    #[test]
    fn mark_changed_forces_a_save() {
        let s = Session::new_detached();
        s.mark_changed();
        assert!(s.is_changed());
    }

    #[test]
    fn the_handle_is_send_sync_and_shared_between_clones() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Session>();
        let s = Session::new_detached();
        let clone = s.clone();
        std::thread::spawn(move || clone.insert("from", &"thread").unwrap())
            .join()
            .unwrap();
        assert!(s.contains_key("from"));
    }
}
