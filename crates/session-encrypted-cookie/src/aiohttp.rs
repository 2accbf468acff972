//! aiohttp_session's encrypted cookie formats (feature `aiohttp`), so that
//! a Python aiohttp service and a Rust service given the same secret read
//! and write each other's session cookies during a migration:
//!
//! | aiohttp_session | here | cookie value |
//! |---|---|---|
//! | `EncryptedCookieStorage(secret_key)` | [`FernetCookieStore`] | a Fernet token (version `0x80`, timestamp, IV, AES-128-CBC, HMAC-SHA256), URL-safe base64 |
//! | `NaClCookieStorage(secret_key)` | [`NaclCookieStore`] | a NaCl SecretBox (XSalsa20-Poly1305): 24-byte random nonce, tag and ciphertext, standard base64 |
//!
//! Both seal the JSON that every aiohttp_session storage keeps,
//! `{"created": <unix seconds>, "session": {...}}`, written by the codec of
//! [`session_core::aiohttp`] byte for byte as Python writes it. A value
//! that Python's `http.cookies` would quote (base64 with `=`, `+` or `/`)
//! is quoted as Python quotes it.
//!
//! # The secret
//!
//! aiohttp_session takes 32 bytes: `EncryptedCookieStorage` either the raw
//! bytes (which it encodes with `base64.urlsafe_b64encode` into a Fernet
//! key) or a Fernet key string, `NaClCookieStorage` the raw bytes. Here the
//! secret is a [`Key`], and [`Key::from_base64`] reads both of the text
//! forms Python prints: `base64.urlsafe_b64encode(secret)` and a Fernet key
//! (`Fernet.generate_key()`), which are the same thing. [`fernet_key`]
//! prints a key the way Python does.
//!
//! A [`KeyRing`](crate::KeyRing) gives key rotation, as `MultiFernet` does: the primary
//! key seals, older keys still open their cookies, and a cookie opened
//! under an older key is re-sealed under the primary on its next response.
//!
//! # Expiry
//!
//! aiohttp_session's `max_age` rules, applied as it applies them: a
//! session ends when `created + max_age` has passed (its `created` is the
//! time of the last write, so `max_age` counts from the last write); a
//! Fernet token also ends `max_age` after its timestamp (Fernet's `ttl`).
//! The session manager enforces both from the record on every load; give
//! [`session_core::aiohttp::session_config`] the same `max_age`. Reads do
//! not extend a session.
//!
//! # What differs from aiohttp_session
//!
//! * A cookie that does not open (tampered, truncated, under another key,
//!   expired, garbage) is a new session on both sides.
//! * An emptied session (all keys removed, or a logout) removes the cookie,
//!   as aiohttp_session does; a brand-new session that is saved empty seals
//!   `{}`, which both sides read as a new session.
//! * Cookies are `Secure`, `HttpOnly` and `SameSite=Lax` by default (the
//!   [`session_config`] defaults),
//!   where aiohttp_session sets only `HttpOnly`.
//! * Fernet tokens whose timestamp lies more than 60 seconds in the future
//!   are refused by Python's `cryptography` when a `ttl` is given; here
//!   they open, and the session's own `created` still bounds it.
//! * As with every cookie store, logout cannot revoke a copy of the cookie
//!   that a client kept: it stays valid until its `max_age` runs out.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use session_core::SessionManager;
//! use session_encrypted_cookie::aiohttp::{FernetCookieStore, session_config};
//! use session_encrypted_cookie::{Key, KeyRing};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // Python: EncryptedCookieStorage(b"0123456789abcdef0123456789abcdef", max_age=3600)
//! //     or: EncryptedCookieStorage("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", max_age=3600)
//! let secret = Key::from_bytes(b"0123456789abcdef0123456789abcdef")?;
//! assert_eq!(secret.id(), Key::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")?.id());
//! let max_age = Some(Duration::from_secs(3600));
//! let store = FernetCookieStore::new(KeyRing::builder(secret).build()?, max_age);
//! let manager = SessionManager::new(store, session_config(max_age));
//!
//! let request = manager.request();
//! request.session([]).await?.insert("user", "ada")?;
//! let set_cookie = request.save_changes().await?;
//! let cookie = set_cookie[0].split(';').next().unwrap();
//! assert!(cookie.starts_with("AIOHTTP_SESSION=gAAAAA") || cookie.starts_with("AIOHTTP_SESSION=\"gAAAAA"));
//!
//! let request = manager.request();
//! let user = request.session([cookie.as_bytes()]).await?.get::<String>("user")?;
//! assert_eq!(user.as_deref(), Some("ada"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod fernet;
mod nacl;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use session_core::CookieConfig;
use session_core::aiohttp as codec;
use session_core::{Error, Record};

/// aiohttp_session's default cookie name: [`session_core::aiohttp::COOKIE_NAME`].
///
/// ```
/// assert_eq!(session_encrypted_cookie::aiohttp::COOKIE_NAME, "AIOHTTP_SESSION");
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
/// use session_encrypted_cookie::aiohttp;
///
/// let config = aiohttp::session_config(Some(Duration::from_secs(3600)));
/// assert_eq!(config.cookie().name(), "AIOHTTP_SESSION");
/// ```
pub use session_core::aiohttp::session_config;

pub use fernet::FernetCookieStore;
pub use nacl::NaclCookieStore;

use crate::Key;

/// `key` as a Fernet key string, as Python's
/// `base64.urlsafe_b64encode(secret)` (and `Fernet.generate_key()`) print
/// it: URL-safe base64 with padding, 44 characters. This is the secret
/// itself: print it only for the configuration of the two services.
///
/// ```
/// use session_encrypted_cookie::{Key, aiohttp::fernet_key};
///
/// let key = Key::from_bytes(&[0; 32])?;
/// assert_eq!(fernet_key(&key), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
/// assert_eq!(Key::from_base64(&fernet_key(&key))?.id(), key.id());
/// # Ok::<(), session_encrypted_cookie::ConfigError>(())
/// ```
#[must_use]
pub fn fernet_key(key: &Key) -> String {
    URL_SAFE.encode(key.secret())
}

/// The JSON sealed for `record`, written at `at`: aiohttp_session's
/// `{"created": .., "session": {..}}`, or `{}` for an empty session.
fn plaintext(record: &Record, at: SystemTime) -> Result<String, Error> {
    if record.data.is_empty() {
        return Ok("{}".to_owned());
    }
    codec::encode(&record.data, at)
}

/// The text of a cookie value as a store gets it, with any quotes and
/// Python escapes undone; `None` when it is longer than any cookie.
fn unquoted(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    if value.len() > CookieConfig::MAX_SIZE {
        return None;
    }
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    Some(codec::unescape_cookie_value(inner))
}

/// aiohttp_session's `max_age` in whole seconds.
fn max_age_secs(max_age: Option<Duration>) -> Option<u64> {
    max_age.map(codec::whole_seconds)
}

/// The deadline of a Fernet token stamped at `timestamp` under `ttl`: it
/// opens while `timestamp + ttl >= int(now)`, as in Python.
fn token_deadline(timestamp: u64, ttl: u64) -> Option<SystemTime> {
    let secs = timestamp.checked_add(ttl)?.checked_add(1)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Random bytes from the OS, for IVs and nonces.
fn random<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::store(format!("the OS random number generator failed: {e}")))?;
    Ok(bytes)
}

/// The [`SessionStore`](session_core::SessionStore) of a sealing format:
/// each write seals the whole session anew, an emptied session removes the
/// cookie (as aiohttp_session's `save_session` does), and nothing is kept
/// on the server.
macro_rules! cookie_store {
    ($store:ty) => {
        #[session_core::async_trait]
        impl session_core::SessionStore for $store {
            async fn load(
                &self,
                cookie: session_core::SessionCookie<'_>,
            ) -> Result<Option<std::sync::Arc<session_core::Record>>, session_core::Error> {
                match self.open_with_key(cookie.value) {
                    Some((record, _)) => Ok(Some(std::sync::Arc::new(record))),
                    None => {
                        tracing::debug!(
                            cookie = cookie.name,
                            "aiohttp session cookie did not open; a new session"
                        );
                        Ok(None)
                    }
                }
            }

            async fn create(
                &self,
                create: session_core::Create<'_>,
            ) -> Result<String, session_core::Error> {
                // An empty new session seals `{}`, which both sides read as
                // a new session.
                self.seal(create.record, create.now)
            }

            async fn update(
                &self,
                update: session_core::Update<'_>,
            ) -> Result<session_core::Written, session_core::Error> {
                $crate::aiohttp::written(update.record, |record| self.seal(record, update.now))
            }

            async fn refresh(
                &self,
                refresh: session_core::Refresh<'_>,
            ) -> Result<session_core::Written, session_core::Error> {
                // Reads never extend an aiohttp_session session: the
                // cookie stays as it is (so nothing is sent), unless it is
                // under an older key, which a re-issue replaces by the
                // session sealed as it was written.
                let record = refresh.record;
                if !session_core::SessionStore::needs_reissue(self, refresh.cookie) {
                    return Ok(session_core::Written::Cookie(
                        refresh.cookie.value.to_owned(),
                    ));
                }
                $crate::aiohttp::written(record, |record| self.seal(record, record.created))
            }

            async fn regenerate(
                &self,
                regenerate: session_core::Regenerate<'_>,
            ) -> Result<session_core::Written, session_core::Error> {
                // Nothing is kept on the server to move or check.
                let record = regenerate.record;
                $crate::aiohttp::written(record, |record| self.seal(record, regenerate.now))
            }

            async fn delete(
                &self,
                _: session_core::SessionCookie<'_>,
            ) -> Result<bool, session_core::Error> {
                // Nothing is kept on the server; the removal cookie does
                // the work.
                Ok(false)
            }

            fn needs_reissue(&self, cookie: session_core::SessionCookie<'_>) -> bool {
                // Only a cookie that loaded is asked about: with no old key
                // in the ring, it was sealed under the primary.
                !self.ring.old().is_empty()
                    && self
                        .open_with_key(cookie.value)
                        .is_some_and(|(_, key)| key != 0)
            }
        }
    };
}
pub(crate) use cookie_store;

/// A write's answer: the sealed cookie, or [`Written::Emptied`] (a removal
/// cookie) for an emptied session, as aiohttp_session removes the cookie of
/// an empty session.
///
/// [`Written::Emptied`]: session_core::Written::Emptied
pub(crate) fn written(
    record: &Record,
    seal: impl FnOnce(&Record) -> Result<String, Error>,
) -> Result<session_core::Written, Error> {
    if record.data.is_empty() {
        return Ok(session_core::Written::Emptied);
    }
    seal(record).map(session_core::Written::Cookie)
}

/// Shared by the two stores' tests.
#[cfg(test)]
fn record_with(data: serde_json::Value, created_secs: u64) -> std::sync::Arc<Record> {
    let mut record = Record::new(UNIX_EPOCH + Duration::from_secs(created_secs));
    if let serde_json::Value::Object(map) = data {
        record.data = map;
    }
    std::sync::Arc::new(record)
}
