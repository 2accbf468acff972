//! The storage trait that every backend implements.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::user::UserIndex;
use crate::{Changes, Error, Record};

/// Where sessions are kept.
///
/// One trait serves both kinds of store:
///
/// * **cookie-backed** stores put the whole record in the cookie value
///   (every write returns the newly encoded record; `delete` has nothing to
///   forget);
/// * **server-side** stores keep the record in a backend and put an id in
///   the cookie (writes return the id).
///
/// Each method is one intent. The request lifecycle in this crate decides
/// *which* to call and enforces expiry from the record's timestamps, so a
/// store only translates between cookie values and records:
///
/// | method | called when | answers |
/// |---|---|---|
/// | [`load`](Self::load) | a handler asks for the session | the record, or `None` for anything unknown, malformed, tampered or gone |
/// | [`load_from_memory`](Self::load_from_memory) | before `load`, for a store that keeps records in memory | the record if it can tell at once, else `None` (`load` is asked) |
/// | [`create`](Self::create) | a new session is first written | the cookie value of a fresh id; never overwrites |
/// | [`update`](Self::update) | a loaded session changed | [`Written`]: the cookie value, or [`Written::Gone`] when the session no longer exists |
/// | [`refresh`](Self::refresh) | an unchanged session's deadline moves, or its cookie is re-issued | [`Written`], as `update` |
/// | [`regenerate`](Self::regenerate) | the session moves to a new id (login) | [`Written`]: the new id's cookie value, or `Gone` |
/// | [`delete`](Self::delete) | logout | whether something was deleted |
///
/// The rules that make a logout final, each checked by the conformance
/// suite (the `session-conformance` crate):
///
/// * `update`, `refresh` and `regenerate` **never bring back** a session
///   that is no longer stored (logged out, revoked, expired): they answer
///   [`Written::Gone`] and write nothing. A value the store never issued is
///   gone too, so a client cannot choose its own id (strict mode).
/// * `regenerate` moves a session to a new id **only if it still exists**,
///   atomically against a concurrent `delete`. The provided method does
///   this with [`create`](Self::create) then [`delete`](Self::delete),
///   undoing the create when the delete finds nothing: correct for any
///   store whose `delete` tells the truth. A cookie-backed store, which
///   keeps nothing to check, overrides it to seal the record anew.
/// * `load` must never panic, whatever the value, and only a backend
///   failure is an `Err`.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// use session_core::{Create, Error, Record, SessionCookie, SessionId, SessionStore, Update, Written};
/// use session_core::async_trait;
///
/// /// Sessions in a map (the crate's `MemoryStore` is the complete version).
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<SessionId, Arc<Record>>>);
///
/// #[async_trait]
/// impl SessionStore for MapStore {
///     async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
///         let Ok(id) = cookie.value.parse::<SessionId>() else { return Ok(None) };
///         Ok(self.0.lock().unwrap().get(&id).cloned())
///     }
///
///     async fn create(&self, create: Create<'_>) -> Result<String, Error> {
///         let id = SessionId::generate();
///         let value = id.as_str().to_owned();
///         self.0.lock().unwrap().insert(id, Arc::clone(create.record));
///         Ok(value)
///     }
///
///     async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
///         let Ok(id) = update.cookie.value.parse::<SessionId>() else { return Ok(Written::Gone) };
///         let mut sessions = self.0.lock().unwrap();
///         let Some(stored) = sessions.get_mut(&id) else { return Ok(Written::Gone) };
///         update.apply_to(Arc::make_mut(stored));
///         Ok(Written::Cookie(update.cookie.value.to_owned()))
///     }
///
///     async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
///         let Ok(id) = cookie.value.parse::<SessionId>() else { return Ok(false) };
///         Ok(self.0.lock().unwrap().remove(&id).is_some())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// The record behind a cookie value the client sent, or `None` when the
    /// value is unknown, malformed, tampered with or gone.
    ///
    /// The record comes in an [`Arc`] so that a store that keeps records in
    /// memory can hand out its own: the session shares it until the request
    /// writes, and then writes to a copy of its own.
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error>;

    /// The record behind a cookie value, if the store holds it in memory
    /// and can answer at once, without I/O: a cache hit, a map lookup.
    /// `None` leaves the answer to [`load`](Self::load), which is then
    /// asked.
    ///
    /// The lifecycle asks here first, for the first session cookie of the
    /// request, so that a session served from memory costs neither a boxed
    /// future nor a wait; only what `load` would answer may be answered
    /// here (`Some` of a record that `load` would not give is a bug). The
    /// default answers `None`: a store that always does I/O has nothing to
    /// gain.
    ///
    /// Like `load`, it must never panic, whatever the value.
    fn load_from_memory(&self, cookie: SessionCookie<'_>) -> Option<Arc<Record>> {
        let _ = cookie;
        None
    }

    /// Stores a new session under a fresh, unguessable id (at least 128 bits
    /// from a CSPRNG) and returns the cookie value to send. Never overwrites
    /// an existing session.
    async fn create(&self, create: Create<'_>) -> Result<String, Error>;

    /// Applies a request's changes to a stored session: [`Update::changes`]
    /// to its data (so that keys that concurrent requests changed are
    /// kept), and the record's timestamps and deadline (which a store may
    /// leave as stored when the update is [data only](Update::data_only)).
    ///
    /// Answers [`Written::Gone`], writing nothing, when the session is no
    /// longer stored or its stored deadline has passed at
    /// [`Update::now`].
    async fn update(&self, update: Update<'_>) -> Result<Written, Error>;

    /// Moves an unchanged session's deadline to [`Refresh::record`]'s
    /// `expires_at` (a rolling refresh), or re-issues its cookie
    /// ([`needs_reissue`](Self::needs_reissue)) with the deadline possibly
    /// unchanged. Answers as [`update`](Self::update) does, never bringing
    /// back a session that is gone.
    ///
    /// The provided method is an update without changes; a server-side store
    /// may rewrite only the deadline instead.
    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        let unchanged = Changes::default();
        self.update(Update {
            cookie: refresh.cookie,
            record: refresh.record,
            changes: &unchanged,
            now: refresh.now,
            data_only: false,
        })
        .await
    }

    /// Moves a session to a new id (on login, against session fixation),
    /// **only if it still exists**: the old id stops loading, and the new
    /// one holds the session with [`Regenerate::changes`] applied. Answers
    /// the new cookie value, or [`Written::Gone`], having written nothing,
    /// when the old session is no longer stored (a logout won the race).
    ///
    /// The provided method [`create`](Self::create)s the record under a new
    /// id, then [`delete`](Self::delete)s the old one; when that deletes
    /// nothing, the session was logged out meanwhile, and the new one is
    /// deleted again. A store that can do it in one atomic step (and carry
    /// over keys that concurrent requests wrote) should.
    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        regenerate.create_then_delete(self).await
    }

    /// Forgets the session behind a cookie value (logout). Answers whether
    /// a stored session was deleted: `false` for an unknown, expired or
    /// already deleted one, and always for a store that keeps nothing on the
    /// server. Deleting twice is not an error.
    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error>;

    /// Whether a cookie value that [`load`](Self::load) just accepted
    /// should be replaced on this response even if the session is
    /// unchanged: for example, a cookie sealed under a retired key, so that
    /// key rotation completes as users come back.
    ///
    /// Called only after `load` returned a live record for this same value,
    /// so it may assume the value is well formed, and it should be cheap: it
    /// runs on every load. When it answers `true`, an unchanged session goes
    /// through [`refresh`](Self::refresh), whose new value is sent. The
    /// default answers `false`.
    fn needs_reissue(&self, cookie: SessionCookie<'_>) -> bool {
        let _ = cookie;
        false
    }

    /// The index of each user's sessions, if this store keeps one: the
    /// optional capability behind listing and revoking a user's sessions
    /// ([`user`](crate::user)). A store that offers it adds every session
    /// it writes with a [`Record::user`] to that user's index, and drops
    /// it there when it deletes the session or the session expires. The
    /// default: `None`, no index (a cookie store, which cannot revoke a
    /// cookie it does not hold, has none).
    fn user_index(&self) -> Option<&dyn UserIndex> {
        None
    }
}

/// The session cookie a client sent: what [`SessionStore::load`] and
/// [`SessionStore::delete`] take, and what the writes of an existing session
/// name it by.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct SessionCookie<'a> {
    /// The cookie's name (cookie stores bind it into the value).
    pub name: &'a str,
    /// The cookie's value, as the client sent it. Untrusted.
    pub value: &'a str,
}

impl<'a> SessionCookie<'a> {
    /// The cookie `name=value`.
    #[must_use]
    pub fn new(name: &'a str, value: &'a str) -> Self {
        SessionCookie { name, value }
    }
}

/// The arguments of [`SessionStore::create`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Create<'a> {
    /// The session cookie's name.
    pub cookie_name: &'a str,
    /// The whole session. Its `expires_at` is its deadline.
    ///
    /// Shared: a store that keeps records in memory may keep a clone of the
    /// [`Arc`] instead of copying the record. It is not written to again.
    pub record: &'a Arc<Record>,
    /// The time of the write, from the configured clock.
    pub now: SystemTime,
}

impl<'a> Create<'a> {
    /// The arguments for storing `record` as a new session.
    #[must_use]
    pub fn new(cookie_name: &'a str, record: &'a Arc<Record>, now: SystemTime) -> Self {
        Create {
            cookie_name,
            record,
            now,
        }
    }

    /// How long the stored state should live: see [`Record::ttl_at`].
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.record.ttl_at(self.now)
    }
}

/// The arguments of [`SessionStore::update`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Update<'a> {
    /// The cookie the session was loaded from.
    pub cookie: SessionCookie<'a>,
    /// The session as the request leaves it. Its `expires_at` is the new
    /// deadline. Shared, as [`Create::record`] is.
    pub record: &'a Arc<Record>,
    /// What this request changed: apply it to the stored state rather than
    /// overwrite it, so that concurrent requests keep their changes.
    pub changes: &'a Changes,
    /// The time of the write, from the configured clock.
    pub now: SystemTime,
    /// Whether the request changed data keys only: `record`'s deadline,
    /// creation time, expiry policy and user are still what the session
    /// was loaded with (a write within the rolling throttle step, see
    /// [`Rolling`](crate::Rolling)). A store must then leave its stored
    /// deadline and metadata as they are and write the data delta alone
    /// ([`apply_to`](Self::apply_to) does): a concurrent request may have
    /// changed them since this one loaded the session (bound it to a user,
    /// given it an expiry of its own), and writing them again would undo
    /// that. `false` from [`Update::new`].
    pub data_only: bool,
}

impl<'a> Update<'a> {
    /// The arguments for applying `changes` to the session behind `cookie`,
    /// not [data only](Self::data_only).
    #[must_use]
    pub fn new(
        cookie: SessionCookie<'a>,
        record: &'a Arc<Record>,
        changes: &'a Changes,
        now: SystemTime,
    ) -> Self {
        Update {
            cookie,
            record,
            changes,
            now,
            data_only: false,
        }
    }

    /// These arguments, [data only](Self::data_only) or not.
    #[must_use]
    pub fn with_data_only(self, data_only: bool) -> Self {
        Update { data_only, ..self }
    }

    /// How long the stored state should live: see [`Record::ttl_at`].
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.record.ttl_at(self.now)
    }

    /// Applies this update to the record a store holds: the delta to its
    /// data (keys other requests changed meanwhile are kept), and, unless
    /// the update is [data only](Self::data_only), the new timestamps,
    /// expiry policy and user.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use session_core::{Changes, Record, SessionCookie, Update};
    ///
    /// let now = SystemTime::now();
    /// let mut stored = Record::new(now);
    /// stored.data.insert("other_request".into(), 1.into());
    /// stored.data.insert("gone".into(), 2.into());
    ///
    /// let mut record = Record::new(now);
    /// record.data.insert("mine".into(), 3.into());
    /// let record = Arc::new(record);
    /// let mut changes = Changes::default();
    /// changes.record_write("mine");
    /// changes.record_remove("gone");
    ///
    /// let cookie = SessionCookie::new("session", "id");
    /// Update::new(cookie, &record, &changes, now).apply_to(&mut stored);
    /// assert_eq!(stored.data.keys().collect::<Vec<_>>(), ["mine", "other_request"]);
    /// ```
    pub fn apply_to(&self, stored: &mut Record) {
        self.changes.apply(self.record, stored);
        if !self.data_only {
            stored.take_metadata_of(self.record);
        }
    }
}

/// The arguments of [`SessionStore::refresh`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Refresh<'a> {
    /// The cookie the session was loaded from.
    pub cookie: SessionCookie<'a>,
    /// The session, unchanged but for its deadline in `expires_at`. Shared,
    /// as [`Create::record`] is.
    pub record: &'a Arc<Record>,
    /// The time of the refresh, from the configured clock.
    pub now: SystemTime,
}

impl<'a> Refresh<'a> {
    /// The arguments for moving the deadline of the session behind `cookie`
    /// to `record.expires_at`.
    #[must_use]
    pub fn new(cookie: SessionCookie<'a>, record: &'a Arc<Record>, now: SystemTime) -> Self {
        Refresh {
            cookie,
            record,
            now,
        }
    }

    /// How long the stored state should live: see [`Record::ttl_at`].
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.record.ttl_at(self.now)
    }
}

/// The arguments of [`SessionStore::regenerate`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Regenerate<'a> {
    /// The cookie of the session to move to a new id.
    pub cookie: SessionCookie<'a>,
    /// The session as the request leaves it, deadline included. Shared, as
    /// [`Create::record`] is.
    pub record: &'a Arc<Record>,
    /// What this request changed, for a store that carries the stored
    /// session over (with keys concurrent requests wrote) rather than
    /// writing `record` whole.
    pub changes: &'a Changes,
    /// The time of the write, from the configured clock.
    pub now: SystemTime,
}

impl<'a> Regenerate<'a> {
    /// The arguments for moving the session behind `cookie` to a new id.
    #[must_use]
    pub fn new(
        cookie: SessionCookie<'a>,
        record: &'a Arc<Record>,
        changes: &'a Changes,
        now: SystemTime,
    ) -> Self {
        Regenerate {
            cookie,
            record,
            changes,
            now,
        }
    }

    /// How long the stored state should live: see [`Record::ttl_at`].
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        self.record.ttl_at(self.now)
    }

    /// Applies this request's changes to the record stored under the old
    /// id, as [`Update::apply_to`] does: what the new id should hold.
    pub fn apply_to(&self, stored: &mut Record) {
        self.changes.apply(self.record, stored);
        stored.take_metadata_of(self.record);
    }

    /// Regenerates on any store whose [`delete`](SessionStore::delete)
    /// tells the truth, without atomicity of its own (what the provided
    /// [`SessionStore::regenerate`] does): [`create`](SessionStore::create)s
    /// the record under a new id, then deletes the old id; when that
    /// deletes nothing, a logout came first, and the new id is deleted
    /// again (nobody else knows it) and the answer is [`Written::Gone`].
    ///
    /// Keys that concurrent requests wrote to the old id between this
    /// request's load and its regenerate are not carried over: the new id
    /// holds [`record`](Self::record) as it is.
    ///
    /// # Errors
    ///
    /// The store's. When the second delete fails, the new id stays behind,
    /// unknown to every client, until its deadline.
    pub async fn create_then_delete<S: SessionStore + ?Sized>(
        self,
        store: &S,
    ) -> Result<Written, Error> {
        let cookie = self.cookie;
        self.create_then_delete_with(store, store.delete(cookie))
            .await
    }

    /// [`create_then_delete`](Self::create_then_delete), with the old id
    /// deleted by `delete_old` (the delete of [`cookie`](Self::cookie),
    /// answering whether it deleted anything), for a store whose delete
    /// answers differently here than for a logout. A store that waits for
    /// replicas, for one: once the old session is deleted, the login
    /// should answer its new cookie even if the delete's own
    /// acknowledgement falls short, rather than an error that leaves the
    /// client the cookie of a deleted session. `delete_old` is awaited
    /// only once the new id is created (a future does nothing before).
    ///
    /// # Errors
    ///
    /// As [`create_then_delete`](Self::create_then_delete)'s.
    pub async fn create_then_delete_with<S: SessionStore + ?Sized>(
        self,
        store: &S,
        delete_old: impl Future<Output = Result<bool, Error>>,
    ) -> Result<Written, Error> {
        let name = self.cookie.name;
        let value = store
            .create(Create::new(name, self.record, self.now))
            .await?;
        if delete_old.await? {
            return Ok(Written::Cookie(value));
        }
        store.delete(SessionCookie::new(name, &value)).await?;
        Ok(Written::Gone)
    }
}

/// What a write of an existing session did: [`SessionStore::update`],
/// [`refresh`](SessionStore::refresh) and
/// [`regenerate`](SessionStore::regenerate) answer it.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub enum Written {
    /// Written; send this cookie value (for a server-side store, usually
    /// the id the client already holds).
    Cookie(String),
    /// The session no longer exists under this cookie (a logout, a
    /// revocation, a login that moved it to a new id, or its expiry came
    /// first), and nothing was written. The response sets no cookie: by
    /// the time it arrives, the client may hold a newer one (the id a
    /// concurrent login sent, or a new session begun after a logout),
    /// which a removal cookie would wipe. The old cookie loads nothing.
    Gone,
    /// Written empty, by a store that answers an empty session by removing
    /// its cookie, as aiohttp_session does (its cookie formats, and its
    /// Redis format, which stores `{}`): the response removes the client's
    /// cookie.
    Emptied,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value may be a session id: never print it.
        match self {
            Written::Cookie(_) => f.write_str("Written::Cookie(..)"),
            Written::Gone => f.write_str("Written::Gone"),
            Written::Emptied => f.write_str("Written::Emptied"),
        }
    }
}

// Cookie values may be session ids: `Debug` shows only that one is there.
impl std::fmt::Debug for SessionCookie<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .field("value", &"..")
            .finish()
    }
}

macro_rules! debug_without_values {
    ($ty:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $ty<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish()
            }
        }
    };
}

debug_without_values!(Create {
    cookie_name,
    record,
    now
});
debug_without_values!(Update {
    cookie,
    record,
    changes,
    now
});
debug_without_values!(Refresh {
    cookie,
    record,
    now
});
debug_without_values!(Regenerate {
    cookie,
    record,
    changes,
    now
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_cookie_value() {
        let record = Arc::new(Record::new(SystemTime::UNIX_EPOCH));
        let cookie = SessionCookie::new("session", "SECRET-ID");
        let changes = Changes::default();
        let now = SystemTime::UNIX_EPOCH;
        for debug in [
            format!("{cookie:?}"),
            format!("{:?}", Update::new(cookie, &record, &changes, now)),
            format!("{:?}", Refresh::new(cookie, &record, now)),
            format!("{:?}", Regenerate::new(cookie, &record, &changes, now)),
            format!("{:?}", Written::Cookie("SECRET-ID".into())),
        ] {
            assert!(!debug.contains("SECRET"), "{debug}");
        }
    }
}
