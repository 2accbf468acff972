//! What a store keeps: the session's data with its timestamps, and the
//! delta a request made to it.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::expiry::{self, Expiry};

/// A session as stored: the data plus the metadata that expiry is enforced
/// from.
///
/// Cookie-backed stores serialize the whole record into the cookie (its serde
/// form is compact: `{"c":created,"e":expires_at,"x":expiry,"d":data}` with
/// times in Unix milliseconds, plus `"u"`, `"l"` and `"s"` for a session
/// bound to a user); server-side stores keep it in their backend.
///
/// ```
/// use session_core::Record;
/// let mut record = Record::new(std::time::SystemTime::now());
/// record.data.insert("user".into(), "ada".into());
/// let json = serde_json::to_string(&record).unwrap();
/// let back: Record = serde_json::from_str(&json).unwrap();
/// assert_eq!(back.data, record.data);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// When the session was created (or last regenerated).
    #[serde(rename = "c", with = "expiry::millis")]
    pub created: SystemTime,
    /// When the session expires unless activity extends it; `None` means
    /// never.
    #[serde(
        rename = "e",
        with = "expiry::opt_unix_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<SystemTime>,
    /// This session's own expiry policy, overriding the configured one.
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Expiry>,
    /// The user the session is bound to
    /// ([`Session::bind_user`](crate::Session::bind_user)), if any.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The label the application gave the session (a device, say), shown
    /// when the user's sessions are listed.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When a request last wrote to or refreshed a session bound to a user
    /// (kept only for those, for listings).
    #[serde(
        rename = "s",
        with = "expiry::opt_unix_millis",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_seen: Option<SystemTime>,
    /// The session's data: a JSON object, like aiohttp's session dict.
    #[serde(rename = "d", default)]
    pub data: Map<String, Value>,
}

impl Record {
    /// An empty record created at `created`, with no deadline yet.
    #[must_use]
    pub fn new(created: SystemTime) -> Self {
        Record {
            created,
            expires_at: None,
            expiry: None,
            user: None,
            label: None,
            last_seen: None,
            data: Map::new(),
        }
    }

    /// Everything of `other` but its data: its timestamps, deadline,
    /// expiry policy, user and label (what a write that is not
    /// [data only](crate::Update::data_only) stores).
    pub(crate) fn take_metadata_of(&mut self, other: &Record) {
        self.created = other.created;
        self.expires_at = other.expires_at;
        self.expiry = other.expiry;
        self.user.clone_from(&other.user);
        self.label.clone_from(&other.label);
        self.last_seen = other.last_seen;
    }

    /// Whether the record's deadline has passed at `now`.
    #[must_use]
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|deadline| deadline <= now)
    }

    /// How long a store should keep the record from `now`: until its
    /// deadline (zero once that has passed), or `None` for ever.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use session_core::Record;
    ///
    /// let now = SystemTime::now();
    /// let mut record = Record::new(now);
    /// assert_eq!(record.ttl_at(now), None);
    /// record.expires_at = Some(now + Duration::from_secs(60));
    /// assert_eq!(record.ttl_at(now), Some(Duration::from_secs(60)));
    /// assert_eq!(record.ttl_at(now + Duration::from_secs(61)), Some(Duration::ZERO));
    /// ```
    #[must_use]
    pub fn ttl_at(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|deadline| deadline.duration_since(now).unwrap_or(Duration::ZERO))
    }
}

/// The changes a request made to a session's data: the delta that
/// server-side stores apply instead of rewriting the whole record.
///
/// Applying a delta means: if [`cleared`](Changes::cleared), drop every stored
/// key; then delete the [`removed`](Changes::removed) keys; then write the
/// [`written`](Changes::written) keys with their values from the record.
/// Two requests that change different keys of one session therefore both
/// keep their changes.
///
/// ```
/// use session_core::Changes;
/// let mut changes = Changes::default();
/// changes.record_write("a");
/// changes.record_remove("b");
/// assert_eq!(changes.written().collect::<Vec<_>>(), ["a"]);
/// assert_eq!(changes.removed().collect::<Vec<_>>(), ["b"]);
/// assert!(!changes.cleared());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    cleared: bool,
    written: BTreeSet<String>,
    removed: BTreeSet<String>,
    forced: bool,
    adds_keys: bool,
}

impl Changes {
    /// A delta that replaces everything the store held with `record`'s data.
    #[must_use]
    pub fn replace_all(record: &Record) -> Self {
        Changes {
            cleared: true,
            written: record.data.keys().cloned().collect(),
            removed: BTreeSet::new(),
            forced: true,
            adds_keys: true,
        }
    }

    /// Whether the stored data must be dropped before the rest applies.
    #[must_use]
    pub fn cleared(&self) -> bool {
        self.cleared
    }

    /// Keys whose values must be written from the record.
    pub fn written(&self) -> impl ExactSizeIterator<Item = &str> {
        self.written.iter().map(String::as_str)
    }

    /// Keys that must be deleted.
    pub fn removed(&self) -> impl ExactSizeIterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    /// Whether there is anything to save at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.cleared && !self.forced && self.written.is_empty() && self.removed.is_empty()
    }

    /// Notes that `key` was set.
    pub fn record_write(&mut self, key: &str) {
        self.removed.remove(key);
        self.written.insert(key.to_owned());
    }

    /// Notes that `key`, which the session did not hold, was set: a
    /// [write](Self::record_write) that [adds a key](Self::adds_keys).
    ///
    /// ```
    /// use session_core::Changes;
    /// let mut changes = Changes::default();
    /// changes.record_write("counter");
    /// assert!(!changes.adds_keys());
    /// changes.record_addition("cart");
    /// assert!(changes.adds_keys());
    /// assert_eq!(changes.written().collect::<Vec<_>>(), ["cart", "counter"]);
    /// ```
    pub fn record_addition(&mut self, key: &str) {
        self.record_write(key);
        self.adds_keys = true;
    }

    /// Whether a key was written that the session did not hold when it
    /// was written (and, for [`replace_all`](Self::replace_all), always).
    /// A hint, for a store that can tell that a session still exists from
    /// its write finding keys already there: when this is `false`, every
    /// written key was there when the request loaded the session or since.
    #[must_use]
    pub fn adds_keys(&self) -> bool {
        self.adds_keys
    }

    /// Notes that `key` was deleted.
    pub fn record_remove(&mut self, key: &str) {
        self.written.remove(key);
        if !self.cleared {
            self.removed.insert(key.to_owned());
        }
    }

    /// Notes that every key was deleted.
    pub fn record_clear(&mut self) {
        self.cleared = true;
        self.written.clear();
        self.removed.clear();
    }

    /// Forces a save even though no key changed (metadata changed, or the
    /// application asked for it).
    pub fn record_forced(&mut self) {
        self.forced = true;
    }

    /// Whether the save was forced ([`record_forced`](Self::record_forced)):
    /// something besides data keys changed, or the application asked for
    /// the deadline to move.
    #[must_use]
    pub fn forced(&self) -> bool {
        self.forced
    }

    /// Applies this delta, with the values in `record` (the session as the
    /// request left it), to `stored`: the data a store holds, which
    /// concurrent requests may have changed. The data alone: its metadata
    /// is [`Record::take_metadata_of`]'s.
    pub(crate) fn apply(&self, record: &Record, stored: &mut Record) {
        if self.cleared {
            stored.data.clear();
        }
        for key in &self.removed {
            stored.data.remove(key);
        }
        for key in &self.written {
            match record.data.get(key) {
                Some(value) => stored.data.insert(key.clone(), value.clone()),
                None => stored.data.remove(key),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_after_remove_is_a_write() {
        let mut c = Changes::default();
        c.record_remove("k");
        c.record_write("k");
        assert_eq!(c.written().collect::<Vec<_>>(), ["k"]);
        assert_eq!(c.removed().count(), 0);
    }

    #[test]
    fn remove_after_clear_needs_no_entry() {
        let mut c = Changes::default();
        c.record_write("a");
        c.record_clear();
        c.record_remove("b");
        assert!(c.cleared());
        assert_eq!(c.written().count() + c.removed().count(), 0);
        assert!(!c.is_empty());
    }

    #[test]
    fn hostile_timestamps_are_errors_not_panics() {
        let huge = format!(r#"{{"c":{},"e":{},"d":{{}}}}"#, u64::MAX, u64::MAX);
        let _ = serde_json::from_str::<Record>(&huge);
        for bad in [
            r#"{"c":-1,"d":{}}"#,
            r#"{"c":"x","d":{}}"#,
            r#"{"c":1.5,"d":{}}"#,
            r#"{"d":{}}"#,
        ] {
            assert!(serde_json::from_str::<Record>(bad).is_err(), "{bad}");
        }
    }
}
