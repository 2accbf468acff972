//! The storage trait that every backend implements.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Changes, Error, Record};

/// Where sessions are kept.
///
/// One trait serves both kinds of store:
///
/// * **cookie-backed** stores put the whole record in the cookie value
///   (`save` returns the encoded record; `delete` has nothing to forget);
/// * **server-side** stores keep the record in a backend and put an id in the
///   cookie (`save` returns the id).
///
/// The request lifecycle in this crate decides *when* to call the store and
/// enforces expiry from the record's timestamps, so a store only translates
/// between cookie values and records. Its duties:
///
/// * `load` answers `Ok(None)` for anything it did not issue or no longer
///   has: unknown ids, malformed or tampered values. Only a backend failure
///   is an `Err`. It must never panic, whatever the value. The record comes
///   in an [`Arc`] so that a store that keeps records in memory can hand
///   out its own without copying it: a session copies the record only when
///   the request writes to it, and a read-only request never does.
/// * `save` with no previous cookie ([`Save::previous`] is `None`) creates a
///   session under a fresh id from a CSPRNG and never overwrites an existing
///   one. With a previous cookie, it applies [`Save::changes`] to what is
///   stored and, when nothing is stored any more (logged out, expired),
///   returns [`Saved::Gone`] instead of recreating it. An id the store did
///   not issue is therefore never adopted (strict mode).
/// * `touch` moves the deadline without rewriting data.
/// * `delete` forgets server-side state.
/// * `needs_reissue` (optional) asks for a loaded cookie to be replaced on
///   the response, e.g. after key rotation.
///
/// Run [`conformance::run`](crate::conformance::run) (feature `conformance`)
/// against your store to check all of this in one call.
///
/// ```
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use session_core::{Delete, Error, Load, Record, Save, Saved, SessionStore, Touch};
///
/// /// A store that forgets everything: every request starts a new session.
/// struct Amnesia;
///
/// #[async_trait]
/// impl SessionStore for Amnesia {
///     async fn load(&self, _: Load<'_>) -> Result<Option<Arc<Record>>, Error> {
///         Ok(None)
///     }
///     async fn save(&self, _: Save<'_>) -> Result<Saved, Error> {
///         Ok(Saved::Cookie(session_core::SessionId::generate().into_string()))
///     }
///     async fn touch(&self, _: Touch<'_>) -> Result<Option<String>, Error> {
///         Ok(None)
///     }
///     async fn delete(&self, _: Delete<'_>) -> Result<(), Error> {
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Cookie value to record. `Ok(None)`: unknown, invalid, tampered or
    /// gone.
    ///
    /// The session shares the returned record until the request writes to
    /// it, and then writes to a copy of its own: a store may return a
    /// record it keeps and shares with other requests.
    async fn load(&self, load: Load<'_>) -> Result<Option<Arc<Record>>, Error>;

    /// Persists a new or changed session and returns the cookie value to
    /// send, or [`Saved::Gone`] when the session it updates no longer exists.
    async fn save(&self, save: Save<'_>) -> Result<Saved, Error>;

    /// Moves the session's deadline to [`Touch::record`]'s `expires_at`
    /// without rewriting its data (rolling expiry). Returns a new cookie value
    /// when the cookie itself must change (cookie-backed stores), `None` when
    /// it stays the same.
    ///
    /// Also called, with the deadline possibly unchanged, to re-issue a
    /// cookie that [`needs_reissue`](SessionStore::needs_reissue) flagged.
    async fn touch(&self, touch: Touch<'_>) -> Result<Option<String>, Error>;

    /// Forgets the server-side state behind a cookie (logout, regenerate).
    async fn delete(&self, delete: Delete<'_>) -> Result<(), Error>;

    /// Whether a cookie value that [`load`](SessionStore::load) just accepted
    /// should be replaced on this response even if the session is unchanged:
    /// for example, a cookie sealed under a retired key, so that key rotation
    /// completes as users come back.
    ///
    /// Called only after `load` returned a live record for this same value,
    /// so it may assume the value is well formed, and it should be cheap: it
    /// runs on every load. When it answers `true`, the lifecycle sends the
    /// session back through [`save`](SessionStore::save) when the request
    /// changed it, and otherwise through [`touch`](SessionStore::touch) with
    /// the deadline as loaded (moved only if a rolling refresh is due
    /// anyway), whose new value it sends. The default answers `false`.
    fn needs_reissue(&self, load: Load<'_>) -> bool {
        let _ = load;
        false
    }
}

/// The arguments of [`SessionStore::load`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Load<'a> {
    /// The session cookie's name (cookie stores bind it into the value).
    pub cookie_name: &'a str,
    /// The cookie value the client sent. Untrusted.
    pub value: &'a str,
}

impl<'a> Load<'a> {
    /// The arguments for loading `value` from the cookie `cookie_name`.
    #[must_use]
    pub fn new(cookie_name: &'a str, value: &'a str) -> Self {
        Load { cookie_name, value }
    }
}

/// The arguments of [`SessionStore::save`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Save<'a> {
    /// The session cookie's name.
    pub cookie_name: &'a str,
    /// The cookie value the session was loaded from, or `None` to create a
    /// new session under a fresh id.
    pub previous: Option<&'a str>,
    /// The session as it is now. Its `expires_at` is the new deadline.
    ///
    /// Shared: a store that keeps records in memory may keep a clone of the
    /// [`Arc`] instead of copying the record. It is not written to again.
    pub record: &'a Arc<Record>,
    /// What this request changed: apply it to the stored state rather than
    /// overwrite, so concurrent requests on one session keep their changes.
    pub changes: &'a Changes,
    /// The time of the save, from the configured clock.
    pub now: SystemTime,
}

impl<'a> Save<'a> {
    /// The arguments for saving `record` with `changes`.
    #[must_use]
    pub fn new(
        cookie_name: &'a str,
        previous: Option<&'a str>,
        record: &'a Arc<Record>,
        changes: &'a Changes,
        now: SystemTime,
    ) -> Self {
        Save {
            cookie_name,
            previous,
            record,
            changes,
            now,
        }
    }

    /// How long the stored state should live: the time from `now` to the
    /// record's deadline (zero when it has passed), or `None` for never.
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        ttl(self.record, self.now)
    }

    /// Applies this save to the record a store holds for
    /// [`previous`](Save::previous): the delta to its data (so that keys other
    /// requests changed meanwhile are kept), and the new timestamps and
    /// expiry policy.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::SystemTime;
    /// use session_core::{Changes, Record, Save};
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
    /// Save::new("session", Some("id"), &record, &changes, now).apply_to(&mut stored);
    /// assert_eq!(stored.data.keys().collect::<Vec<_>>(), ["mine", "other_request"]);
    /// ```
    pub fn apply_to(&self, stored: &mut Record) {
        if self.changes.cleared() {
            stored.data.clear();
        }
        for key in self.changes.removed() {
            stored.data.remove(key);
        }
        for key in self.changes.written() {
            match self.record.data.get(key) {
                Some(value) => stored.data.insert(key.to_owned(), value.clone()),
                None => stored.data.remove(key),
            };
        }
        stored.created = self.record.created;
        stored.expires_at = self.record.expires_at;
        stored.expiry = self.record.expiry;
    }
}

/// The arguments of [`SessionStore::touch`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Touch<'a> {
    /// The session cookie's name.
    pub cookie_name: &'a str,
    /// The cookie value the session was loaded from.
    pub value: &'a str,
    /// The session with its new deadline in `expires_at`, shared as
    /// [`Save::record`] is.
    pub record: &'a Arc<Record>,
    /// The time of the refresh, from the configured clock.
    pub now: SystemTime,
}

impl<'a> Touch<'a> {
    /// The arguments for moving `value`'s deadline to `record.expires_at`.
    #[must_use]
    pub fn new(
        cookie_name: &'a str,
        value: &'a str,
        record: &'a Arc<Record>,
        now: SystemTime,
    ) -> Self {
        Touch {
            cookie_name,
            value,
            record,
            now,
        }
    }

    /// How long the stored state should live from now on; see [`Save::ttl`].
    #[must_use]
    pub fn ttl(&self) -> Option<Duration> {
        ttl(self.record, self.now)
    }
}

/// The arguments of [`SessionStore::delete`].
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Delete<'a> {
    /// The session cookie's name.
    pub cookie_name: &'a str,
    /// The cookie value whose state to forget.
    pub value: &'a str,
}

impl<'a> Delete<'a> {
    /// The arguments for forgetting `value`.
    #[must_use]
    pub fn new(cookie_name: &'a str, value: &'a str) -> Self {
        Delete { cookie_name, value }
    }
}

/// What [`SessionStore::save`] did.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Saved {
    /// Saved; send this cookie value.
    Cookie(String),
    /// The session being updated no longer exists (a logout or expiry won
    /// the race) and was not recreated; the client's cookie is removed.
    Gone,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value may be a session id: never print it.
        match self {
            Saved::Cookie(_) => f.write_str("Saved::Cookie(..)"),
            Saved::Gone => f.write_str("Saved::Gone"),
        }
    }
}

// Cookie values may be session ids: `Debug` shows only whether one is there.
macro_rules! redacted_debug {
    ($ty:ident { $($field:ident),* } value: $value:ident) => {
        impl std::fmt::Debug for $ty<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("cookie_name", &self.cookie_name)
                    .field(stringify!($value), &"..")
                    $(.field(stringify!($field), &self.$field))*
                    .finish()
            }
        }
    };
}

redacted_debug!(Load {} value: value);
redacted_debug!(Touch { record, now } value: value);
redacted_debug!(Delete {} value: value);

impl std::fmt::Debug for Save<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Save")
            .field("cookie_name", &self.cookie_name)
            .field("previous", &self.previous.map(|_| ".."))
            .field("record", self.record)
            .field("changes", self.changes)
            .field("now", &self.now)
            .finish()
    }
}

fn ttl(record: &Record, now: SystemTime) -> Option<Duration> {
    record
        .expires_at
        .map(|deadline| deadline.duration_since(now).unwrap_or(Duration::ZERO))
}
