//! aiohttp_session's `SimpleCookieStorage` format (feature `aiohttp`), so
//! that a Python aiohttp service and a Rust service read each other's plain
//! JSON session cookies during a migration.
//!
//! **Unauthenticated, for testing only**, as on the Python side: anyone can
//! read the cookie, and a client can rewrite it to say anything.
//!
//! # Format
//!
//! The cookie value is the JSON that every aiohttp_session storage keeps,
//! `json.dumps({"created": <unix seconds>, "session": {...}})`, written by
//! the codec of [`session_core::aiohttp`] byte for byte as Python writes
//! it, and quoted as Python's `http.cookies` (which aiohttp's `set_cookie`
//! uses) quotes it: in double quotes, with `"` and `\` escaped by a
//! backslash, `,` as `\054` and `;` as `\073`:
//!
//! ```text
//! Set-Cookie: AIOHTTP_SESSION="{\"created\": 1700000000\054 \"session\": {\"user\": \"ada\"}}"; Max-Age=3600; Path=/; ...
//! ```
//!
//! Reading undoes the quoting as Python does (octal and backslash escapes).
//! An empty session is written as aiohttp_session writes it, `"{}"`, which
//! both sides read as a new session. `created` is the time of the last
//! write, and a session whose `created + max_age` has passed is a new one,
//! as in aiohttp_session. A cookie that is not such JSON is a new session
//! (where aiohttp_session answers 500).
//!
//! ```
//! use std::time::Duration;
//! use session_core::SessionManager;
//! use session_simple_cookie::aiohttp::{SimpleCookieStore, session_config};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Python: SimpleCookieStorage(max_age=3600)
//! let max_age = Some(Duration::from_secs(3600));
//! let manager = SessionManager::new(SimpleCookieStore::new(max_age), session_config(max_age));
//!
//! // A cookie as the Python service set it:
//! let python = r#"AIOHTTP_SESSION="{\"created\": 4102444800\054 \"session\": {\"user\": \"ada\"}}""#;
//! let request = manager.request();
//! let session = request.session([python.as_bytes()]).await?;
//! assert_eq!(session.get::<String>("user")?.as_deref(), Some("ada"));
//! session.insert("lang", "fi")?;
//! let set_cookie = request.save_changes().await?;
//! assert!(set_cookie[0].starts_with(r#"AIOHTTP_SESSION="{\"created\": "#));
//! assert!(set_cookie[0].contains(r#"\054 \"session\": {\"lang\": \"fi\"\054 \"user\": \"ada\"}}""#));
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```

/// aiohttp_session's default cookie name: [`session_core::aiohttp::COOKIE_NAME`].
///
/// ```
/// assert_eq!(session_simple_cookie::aiohttp::COOKIE_NAME, "AIOHTTP_SESSION");
/// ```
pub use session_core::aiohttp::COOKIE_NAME;

/// The session settings that match an aiohttp_session storage with this
/// `max_age`: [`session_core::aiohttp::session_config`] (cookie name
/// [`COOKIE_NAME`], idle timeout `max_age`, no absolute timeout, reads never
/// extend a session), re-exported so that this crate's feature is all an
/// application needs.
///
/// ```
/// use std::time::Duration;
/// use session_simple_cookie::aiohttp;
///
/// let config = aiohttp::session_config(Some(Duration::from_secs(3600)));
/// assert_eq!(config.cookie().name(), "AIOHTTP_SESSION");
/// ```
pub use session_core::aiohttp::session_config;

use std::sync::Arc;
use std::time::Duration;

use session_core::CookieConfig;
use session_core::aiohttp::{self as codec, whole_seconds};
use session_core::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionStore, Update, Written,
    async_trait,
};

/// What aiohttp_session writes for an empty session, quoted.
const EMPTY: &str = "\"{}\"";

/// aiohttp_session's `SimpleCookieStorage`: the session as plain JSON in
/// the cookie, quoted as Python quotes it. **Testing only**: see the
/// [module docs](self).
///
/// ```
/// use std::time::Duration;
/// use session_simple_cookie::aiohttp::SimpleCookieStore;
///
/// let store = SimpleCookieStore::new(Some(Duration::from_secs(3600)));
/// assert_eq!(store.max_age(), Some(Duration::from_secs(3600)));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SimpleCookieStore {
    max_age_secs: Option<u64>,
}

impl SimpleCookieStore {
    /// The store for sessions that end `max_age` after their last write
    /// (aiohttp_session's `max_age`, in whole seconds, rounding up), or
    /// never with `None`. Give [`session_core::aiohttp::session_config`] the
    /// same `max_age`.
    #[must_use]
    pub fn new(max_age: Option<Duration>) -> Self {
        SimpleCookieStore {
            max_age_secs: max_age.map(whole_seconds),
        }
    }

    /// aiohttp_session's `max_age`, in whole seconds.
    #[must_use]
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_secs.map(Duration::from_secs)
    }

    /// The cookie value for `record` written at `record.created`, as
    /// aiohttp_session writes it: the JSON quoted as Python quotes it, or
    /// `"{}"` for an empty session.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use session_core::Record;
    /// use session_simple_cookie::aiohttp::SimpleCookieStore;
    ///
    /// let mut record = Record::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    /// assert_eq!(SimpleCookieStore::encode(&record)?, r#""{}""#);
    /// record.data.insert("n".into(), serde_json::json!([1, 2.5]));
    /// assert_eq!(
    ///     SimpleCookieStore::encode(&record)?,
    ///     r#""{\"created\": 1700000000\054 \"session\": {\"n\": [1\054 2.5]}}""#,
    /// );
    /// # Ok::<(), session_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Value`] when the data cannot be written as JSON.
    pub fn encode(record: &Record) -> Result<String, Error> {
        if record.data.is_empty() {
            return Ok(EMPTY.to_owned());
        }
        let json = codec::encode(&record.data, record.created)?;
        Ok(codec::quote_cookie_value(&json).into_owned())
    }

    /// The record in a cookie value, or `None` when it holds no session
    /// (not aiohttp_session's JSON, or `{}`). `value` is the cookie's value
    /// as the session manager hands it to stores: without the double quotes
    /// that Python puts around it (they are removed too, if present); its
    /// backslash and octal escapes are undone here. The deadline is
    /// aiohttp_session's (see [`codec::decode_cookie_json`]); the session
    /// manager enforces it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_simple_cookie::aiohttp::SimpleCookieStore;
    ///
    /// let store = SimpleCookieStore::new(Some(Duration::from_secs(60)));
    /// let record = store.decode(r#"{\"created\": 5\054 \"session\": {\"k\": \"\\u00e9\"}}"#).unwrap();
    /// assert_eq!(record.data["k"], "é");
    /// assert!(store.decode("{}").is_none());
    /// assert!(store.decode("not json").is_none());
    /// ```
    #[must_use]
    pub fn decode(&self, value: &str) -> Option<Record> {
        if value.len() > CookieConfig::MAX_SIZE {
            return None;
        }
        let inner = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let json = codec::unescape_cookie_value(inner);
        codec::decode_cookie_json(json.as_bytes(), self.max_age_secs)
    }

    /// The value for a write at `now`: aiohttp_session's `created` is the
    /// time of the last write.
    fn write(record: &Record, now: std::time::SystemTime) -> Result<String, Error> {
        if record.data.is_empty() {
            return Ok(EMPTY.to_owned());
        }
        let json = codec::encode(&record.data, now)?;
        Ok(codec::quote_cookie_value(&json).into_owned())
    }
}

// Every write encodes the record anew: the cookie is the whole session.
#[async_trait]
impl SessionStore for SimpleCookieStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        let record = self.decode(cookie.value);
        if record.is_none() {
            tracing::debug!(
                cookie = cookie.name,
                "not an aiohttp_session cookie; a new session"
            );
        }
        Ok(record.map(Arc::new))
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        Self::write(create.record, create.now)
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        Self::write(update.record, update.now).map(Written::Cookie)
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        // Reads never extend an aiohttp_session session: the cookie keeps
        // what it holds (quoted again, as the manager hands stores values
        // without their quotes).
        let inner = codec::unescape_cookie_value(refresh.cookie.value);
        Ok(Written::Cookie(
            codec::quote_cookie_value(&inner).into_owned(),
        ))
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        // Nothing is kept on the server to move or check.
        Self::write(regenerate.record, regenerate.now).map(Written::Cookie)
    }

    async fn delete(&self, _: SessionCookie<'_>) -> Result<bool, Error> {
        // Nothing is kept on the server; the removal cookie does the work.
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    /// `SimpleCookieStorage`'s `Set-Cookie` value, as aiohttp 3.14 with
    /// aiohttp-session 2.12.1 wrote it for
    /// `{"user": "ada", "n": [1, 2.5], "é": None}` at 1700000000.
    const PYTHON_VALUE: &str = r#""{\"created\": 1700000000\054 \"session\": {\"user\": \"ada\"\054 \"n\": [1\054 2.5]\054 \"\\u00e9\": null}}""#;

    #[test]
    fn reads_what_python_writes() {
        let store = SimpleCookieStore::new(Some(Duration::from_secs(3600)));
        let inner = &PYTHON_VALUE[1..PYTHON_VALUE.len() - 1];
        for value in [PYTHON_VALUE, inner] {
            let record = store.decode(value).unwrap();
            let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            assert_eq!(record.created, created);
            assert_eq!(record.expires_at, Some(created + Duration::from_secs(3601)));
            assert_eq!(
                serde_json::Value::Object(record.data),
                json!({"user": "ada", "n": [1, 2.5], "é": null})
            );
        }
    }

    #[test]
    fn writes_what_python_writes() {
        let mut record = Record::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        // Python keeps insertion order; ours is sorted: the same dict in
        // the same order is the same bytes.
        record.data.insert("n".into(), json!([1, 2.5]));
        record.data.insert("user".into(), json!("ada"));
        record.data.insert("é".into(), json!(null));
        assert_eq!(
            SimpleCookieStore::encode(&record).unwrap(),
            r#""{\"created\": 1700000000\054 \"session\": {\"n\": [1\054 2.5]\054 \"user\": \"ada\"\054 \"\\u00e9\": null}}""#
        );
    }

    #[test]
    fn garbage_and_empty_sessions_do_not_load() {
        let store = SimpleCookieStore::new(None);
        let huge = "{".repeat(CookieConfig::MAX_SIZE + 1);
        for value in [
            "",
            "\"\"",
            "{}",
            "\"{}\"",
            "!!!",
            r#"{\"created\": 1\054 \"session\": 5}"#,
            r"\",
            &huge,
        ] {
            assert!(store.decode(value).is_none(), "{value:.20}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_values_never_panic(value in "\\PC*") {
            let _ = SimpleCookieStore::new(Some(Duration::from_secs(1))).decode(&value);
        }

        #[test]
        fn sessions_round_trip(data in session_conformance::arbitrary::session_data()) {
            let mut record = Record::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
            record.data = data;
            let value = SimpleCookieStore::encode(&record).unwrap();
            let read = SimpleCookieStore::new(None).decode(&value);
            if record.data.is_empty() {
                proptest::prop_assert!(read.is_none());
            } else {
                proptest::prop_assert_eq!(read.map(|r| r.data), Some(record.data));
            }
        }
    }
}
