//! A session store that keeps the whole session as plain JSON in the cookie.
//!
//! # For testing only
//!
//! **The cookie is neither encrypted nor signed.** Anyone can read it, and a
//! client can rewrite it to say anything: `{"user": "admin"}` included. Use
//! it to watch sessions in the browser's developer tools while developing,
//! or in tests; in production use `session-encrypted-cookie` or
//! `session-redis`. It is the counterpart of aiohttp_session's
//! `SimpleCookieStorage`.
//!
//! With the feature `aiohttp`, [`aiohttp::SimpleCookieStore`] reads and
//! writes aiohttp_session's `SimpleCookieStorage` cookies instead, so that
//! a Python aiohttp service and a Rust service share them.
//!
//! # Format
//!
//! The cookie value is the [`Record`]'s compact JSON form
//! (`{"c":created,"e":expires_at,"x":expiry,"d":data}`, times in Unix
//! milliseconds), base64url-encoded without padding so that quotes, commas
//! and semicolons stay valid in a cookie. The expiry deadlines travel inside
//! it and are enforced by `session-core` on load, but since the client can
//! rewrite them, they are advisory here.
//!
//! # Example
//!
//! ```
//! use session_core::{SessionConfig, SessionManager};
//! use session_simple_cookie::SimpleCookieStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let manager = SessionManager::new(SimpleCookieStore::new(), SessionConfig::default());
//! let request = manager.request();
//! request.session([]).await?.insert("user", "ada")?;
//! let set_cookie = request.save_changes().await?;
//!
//! // The value is readable by anyone who holds the cookie.
//! let value = set_cookie[0].split(';').next().unwrap().trim_start_matches("session=");
//! let record = SimpleCookieStore::decode(value).unwrap();
//! assert_eq!(record.data["user"], "ada");
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "aiohttp")]
#[cfg_attr(docsrs, doc(cfg(feature = "aiohttp")))]
pub mod aiohttp;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::CookieConfig;
use session_core::{
    Create, Error, Record, Regenerate, SessionCookie, SessionStore, Update, Written, async_trait,
};

/// The session as plain, unauthenticated JSON in the cookie. **Testing
/// only**: see the [crate documentation](crate).
#[derive(Clone, Copy, Debug, Default)]
pub struct SimpleCookieStore {
    _private: (),
}

impl SimpleCookieStore {
    /// The store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The cookie value for `record`.
    ///
    /// # Errors
    ///
    /// [`Error::Value`] if the record cannot be serialized.
    pub fn encode(record: &Record) -> Result<String, Error> {
        let json = serde_json::to_vec(record).map_err(Error::Value)?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    /// The record in a cookie value, or `None` when the value is not one this
    /// store wrote (or was damaged on the way).
    #[must_use]
    pub fn decode(value: &str) -> Option<Record> {
        // No cookie we issue is larger; refuse to decode anything bigger.
        if value.len() > CookieConfig::MAX_SIZE {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(value).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

// Every write encodes the record anew: the cookie is the whole session.
#[async_trait]
impl SessionStore for SimpleCookieStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        Ok(Self::decode(cookie.value).map(Arc::new))
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        Self::encode(create.record)
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        Self::encode(update.record).map(Written::Cookie)
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        // Nothing is kept on the server to move or check.
        Self::encode(regenerate.record).map(Written::Cookie)
    }

    async fn delete(&self, _: SessionCookie<'_>) -> Result<bool, Error> {
        // Nothing is kept on the server; the removal cookie does the work.
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn round_trips_a_record() {
        let mut record = Record::new(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123));
        record.expires_at = Some(UNIX_EPOCH + Duration::from_millis(1_700_000_060_123));
        record
            .data
            .insert("nested".into(), serde_json::json!({"a": [1, "ü", null]}));
        let value = SimpleCookieStore::encode(&record).unwrap();
        assert_eq!(SimpleCookieStore::decode(&value), Some(record));
    }

    #[test]
    fn garbage_decodes_to_none() {
        let not_json = URL_SAFE_NO_PAD.encode("not json");
        let wrong_shape = URL_SAFE_NO_PAD.encode(r#"{"d": 5}"#);
        let huge = "A".repeat(CookieConfig::MAX_SIZE + 1);
        for value in ["", "!!!", "eyJ", &not_json, &wrong_shape, &huge] {
            assert_eq!(SimpleCookieStore::decode(value), None, "{value:.20}");
        }
    }
}
