//! aiohttp_session's `NaClCookieStorage`: NaCl SecretBox.
//!
//! A value is `base64(nonce | tag | ciphertext)` in the standard alphabet
//! with padding (PyNaCl's `Base64Encoder`): a 24-byte random nonce, then
//! XSalsa20-Poly1305 of the JSON under the 32-byte secret, its 16-byte
//! Poly1305 tag first, as `crypto_secretbox_easy` lays it out.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, GeneralPurpose as Engine};
use crypto_secretbox::aead::Aead;
use crypto_secretbox::{KeyInit, Nonce, XSalsa20Poly1305};
use session_core::aiohttp as codec;
use session_core::{Error, Record};

use super::{cookie_store, max_age_secs, plaintext, random, unquoted};
use crate::KeyRing;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Standard base64 that reads values with or without their `=` padding.
const LENIENT_STANDARD: GeneralPurpose = Engine::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// aiohttp_session's `NaClCookieStorage`: the session in a NaCl SecretBox
/// in the cookie, under the same 32-byte secret as the Python service. See
/// the [module docs](super) for the secret, expiry and what differs.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use session_core::Record;
/// use session_encrypted_cookie::{Key, KeyRing, aiohttp::NaclCookieStore};
///
/// // Python: NaClCookieStorage(secret_key, max_age=3600)
/// let ring = KeyRing::builder(Key::generate()).build()?;
/// let store = NaclCookieStore::new(ring, Some(Duration::from_secs(3600)));
///
/// let mut record = Record::new(SystemTime::now());
/// record.data.insert("user".into(), "ada".into());
/// let value = store.seal(&record, SystemTime::now())?;
/// assert_eq!(store.open(&value).unwrap().data, record.data);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NaclCookieStore {
    ring: KeyRing,
    /// The ring's keys, the primary first.
    boxes: Vec<XSalsa20Poly1305>,
    max_age_secs: Option<u64>,
}

impl NaclCookieStore {
    /// A store that seals with `ring`'s primary key and opens boxes of
    /// every key of it, for sessions that end `max_age` after their last
    /// write (aiohttp_session's `max_age`, in whole seconds, rounding up)
    /// or never with `None`. Give
    /// [`session_core::aiohttp::session_config`] the same `max_age`.
    #[must_use]
    pub fn new(ring: KeyRing, max_age: Option<Duration>) -> Self {
        let boxes = std::iter::once(ring.primary())
            .chain(ring.old())
            .map(|key| XSalsa20Poly1305::new(key.secret().into()))
            .collect();
        NaclCookieStore {
            ring,
            boxes,
            max_age_secs: max_age_secs(max_age),
        }
    }

    /// aiohttp_session's `max_age`, in whole seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_encrypted_cookie::{Key, KeyRing, aiohttp::NaclCookieStore};
    ///
    /// let ring = KeyRing::builder(Key::generate()).build()?;
    /// assert_eq!(NaclCookieStore::new(ring, None).max_age(), None);
    /// # Ok::<(), session_encrypted_cookie::ConfigError>(())
    /// ```
    #[must_use]
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age_secs.map(Duration::from_secs)
    }

    /// The keys.
    #[must_use]
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The cookie value for `record` written at `at`, as aiohttp_session
    /// writes it: a SecretBox under the primary key, with a fresh random
    /// nonce, of `{"created": <at>, "session": {...}}` (`{}` for an empty
    /// session), in standard base64, quoted as Python's `http.cookies`
    /// quotes it.
    ///
    /// # Errors
    ///
    /// [`Error::Value`] when the data cannot be written as JSON;
    /// [`Error::Store`] when the OS gives no random bytes for the nonce.
    pub fn seal(&self, record: &Record, at: SystemTime) -> Result<String, Error> {
        let json = plaintext(record, at)?;
        let value = Self::seal_with_nonce(&self.boxes[0], json.as_bytes(), random()?)?;
        Ok(codec::quote_cookie_value(&value).into_owned())
    }

    fn seal_with_nonce(
        secret_box: &XSalsa20Poly1305,
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Result<String, Error> {
        let sealed = secret_box
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .map_err(|_| Error::store("XSalsa20-Poly1305 refused the session's plaintext"))?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(STANDARD.encode(bytes))
    }

    /// The record in a cookie value, or `None` when it does not open under
    /// any key of the ring, or holds no session. The value may come quoted
    /// or not. The record's deadline is aiohttp_session's,
    /// `created + max_age`; the session manager enforces it.
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Record> {
        self.open_with_key(value).map(|(record, _)| record)
    }

    /// [`open`](Self::open), and the index in the ring of the key that
    /// opened it (0: the primary).
    pub(crate) fn open_with_key(&self, value: &str) -> Option<(Record, usize)> {
        let text = unquoted(value)?;
        let bytes = LENIENT_STANDARD.decode(text.as_bytes()).ok()?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::from_slice(nonce);
        let (index, json) = self
            .boxes
            .iter()
            .enumerate()
            .find_map(|(index, secret_box)| {
                Some((index, secret_box.decrypt(nonce, sealed).ok()?))
            })?;
        let record = codec::decode_cookie_json(&json, self.max_age_secs)?;
        Some((record, index))
    }
}

impl fmt::Debug for NaclCookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NaclCookieStore")
            .field("keys", &self.ring)
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

cookie_store!(NaclCookieStore);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;
    use crate::aiohttp::record_with;
    use serde_json::json;
    use session_core::{SessionCookie, SessionStore};
    use std::time::UNIX_EPOCH;

    fn secret() -> Key {
        Key::from_bytes(&(0..32).collect::<Vec<u8>>()).unwrap()
    }

    fn store(max_age: Option<u64>) -> NaclCookieStore {
        let ring = KeyRing::builder(secret()).build().unwrap();
        NaclCookieStore::new(ring, max_age.map(Duration::from_secs))
    }

    const JSON: &str =
        r#"{"created": 1700000000, "session": {"user": "ada", "n": [1, 2.5], "\u00e9": null}}"#;

    /// PyNaCl 1.6's `SecretBox(bytes(range(32))).encrypt(JSON,
    /// bytes(range(50, 74)), encoder=Base64Encoder)`.
    const PYTHON_VALUE: &str = "MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJ8CKd59+bCqM0vd6raoxKDVUmMoycqoYDBnU7ipGv8kYUNn0Iv9JWG7nquYeYZ4BNDFIgDzTCWBKyZejaJSNGkU3uvCLMotDuWl/xud4sMIaWtt9qGlBT3FOTJcP0ERTOiBw=";

    #[test]
    fn seals_what_python_seals() {
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| 50 + i as u8);
        let sealed =
            NaclCookieStore::seal_with_nonce(&store(None).boxes[0], JSON.as_bytes(), nonce)
                .unwrap();
        assert_eq!(sealed, PYTHON_VALUE);
        // And Python's http.cookies quotes it (`+`, `/`, `=`).
        assert_eq!(
            codec::quote_cookie_value(PYTHON_VALUE),
            format!("\"{PYTHON_VALUE}\"")
        );
    }

    #[test]
    fn opens_what_python_seals() {
        let record = store(Some(60)).open(PYTHON_VALUE).unwrap();
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(record.expires_at, Some(created + Duration::from_secs(61)));
        assert_eq!(
            serde_json::Value::Object(record.data),
            json!({"user": "ada", "n": [1, 2.5], "é": null})
        );
        assert!(store(None).open(&format!("\"{PYTHON_VALUE}\"")).is_some());
    }

    #[test]
    fn tampered_foreign_and_garbage_values_do_not_open() {
        let store = store(Some(60));
        let mut bytes = STANDARD.decode(PYTHON_VALUE).unwrap();
        for at in [0, 23, 24, 39, 40, bytes.len() - 1] {
            bytes[at] ^= 0x80;
            assert!(store.open(&STANDARD.encode(&bytes)).is_none(), "byte {at}");
            bytes[at] ^= 0x80;
        }
        let other = NaclCookieStore::new(KeyRing::builder(Key::generate()).build().unwrap(), None);
        let value = other
            .seal(&record_with(json!({"k": 1}), 5), SystemTime::now())
            .unwrap();
        assert!(store.open(&value).is_none());
        for bad in ["", "\"\"", "AAAA", "!!!", &PYTHON_VALUE[..60], "{}"] {
            assert!(store.open(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn older_keys_open_and_ask_for_a_reissue() {
        let old = Key::generate();
        let before = NaclCookieStore::new(KeyRing::builder(old.clone()).build().unwrap(), None);
        let after = NaclCookieStore::new(
            KeyRing::builder(Key::generate())
                .old_key(old)
                .build()
                .unwrap(),
            None,
        );
        let record = record_with(json!({"k": 1}), 1_700_000_000);
        let old_value = before.seal(&record, SystemTime::now()).unwrap();
        assert_eq!(after.open(&old_value).unwrap().data, record.data);
        assert!(after.needs_reissue(SessionCookie::new("AIOHTTP_SESSION", &old_value)));
        let new_value = after.seal(&record, SystemTime::now()).unwrap();
        assert!(!after.needs_reissue(SessionCookie::new("AIOHTTP_SESSION", &new_value)));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let debug = format!("{:?}", store(None));
        assert!(debug.contains("NaclCookieStore"), "{debug}");
        assert!(!debug.contains("[0, 1, 2"), "{debug}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_values_never_panic_nor_open(value in "\\PC*|[A-Za-z0-9+/=]{0,300}") {
            proptest::prop_assert!(store(Some(60)).open(&value).is_none());
        }

        #[test]
        fn sessions_round_trip(data in session_conformance::arbitrary::session_data()) {
            proptest::prop_assume!(!data.is_empty());
            let mut record = Record::new(UNIX_EPOCH);
            record.data = data;
            let store = store(None);
            let value = store.seal(&record, SystemTime::now()).unwrap();
            proptest::prop_assert_eq!(store.open(&value).map(|r| r.data), Some(record.data));
        }
    }
}
