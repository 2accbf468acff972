//! aiohttp_session's `EncryptedCookieStorage`: Fernet tokens.
//!
//! A token is `base64url(0x80 | timestamp | IV | ciphertext | HMAC)`, with
//! padding: the timestamp is the big-endian Unix time of sealing in whole
//! seconds, the IV 16 random bytes, the ciphertext AES-128-CBC with PKCS#7
//! padding under the second half of the 32-byte secret, and the HMAC
//! HMAC-SHA256 of everything before it under the first half.

use std::fmt;
use std::time::{Duration, SystemTime};

use aes::Aes128;
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose as Engine};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use session_core::aiohttp as codec;
use session_core::{Error, Record};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{cookie_store, max_age_secs, plaintext, random, token_deadline, unquoted};
use crate::KeyRing;

/// The version byte of every Fernet token.
const VERSION: u8 = 0x80;
/// Version, timestamp and IV.
const HEADER_LEN: usize = 1 + 8 + 16;
const HMAC_LEN: usize = 32;
const BLOCK: usize = 16;

/// URL-safe base64 that reads tokens with or without their `=` padding.
const LENIENT_URL_SAFE: GeneralPurpose = Engine::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A secret split as Fernet splits it.
struct FernetKey {
    signing: Zeroizing<[u8; 16]>,
    encryption: Zeroizing<[u8; 16]>,
}

impl FernetKey {
    fn new(secret: &[u8; 32]) -> Self {
        let mut signing = Zeroizing::new([0; 16]);
        let mut encryption = Zeroizing::new([0; 16]);
        signing.copy_from_slice(&secret[..16]);
        encryption.copy_from_slice(&secret[16..]);
        FernetKey {
            signing,
            encryption,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        <Hmac<Sha256> as KeyInit>::new_from_slice(self.signing.as_slice())
            .unwrap_or_else(|_| unreachable!("HMAC accepts 16-byte keys"))
    }

    fn seal(&self, plaintext: &[u8], timestamp: u64, iv: [u8; 16]) -> String {
        let encryptor = cbc::Encryptor::<Aes128>::new(&(*self.encryption).into(), &iv.into());
        let ciphertext = encryptor.encrypt_padded_vec::<Pkcs7>(plaintext);
        let mut token = Vec::with_capacity(HEADER_LEN + ciphertext.len() + HMAC_LEN);
        token.push(VERSION);
        token.extend_from_slice(&timestamp.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&ciphertext);
        let mut mac = self.mac();
        mac.update(&token);
        token.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE.encode(token)
    }

    /// The timestamp and plaintext of `token`, if this key signed it.
    fn open(&self, token: &[u8]) -> Option<(u64, Vec<u8>)> {
        let (signed, tag) = token.split_at(token.len().checked_sub(HMAC_LEN)?);
        let mut mac = self.mac();
        mac.update(signed);
        // Constant time.
        mac.verify_slice(tag).ok()?;
        let timestamp = u64::from_be_bytes(signed.get(1..9)?.try_into().ok()?);
        let iv: [u8; 16] = signed.get(9..HEADER_LEN)?.try_into().ok()?;
        let decryptor = cbc::Decryptor::<Aes128>::new(&(*self.encryption).into(), &iv.into());
        let plaintext = decryptor
            .decrypt_padded_vec::<Pkcs7>(&signed[HEADER_LEN..])
            .ok()?;
        Some((timestamp, plaintext))
    }
}

/// aiohttp_session's `EncryptedCookieStorage`: the session as a Fernet
/// token in the cookie, under the same 32-byte secret as the Python
/// service. See the [module docs](super) for the secret, expiry and what
/// differs.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use session_core::Record;
/// use session_encrypted_cookie::{Key, KeyRing, aiohttp::FernetCookieStore};
///
/// let ring = KeyRing::builder(Key::generate()).build()?;
/// let store = FernetCookieStore::new(ring, Some(Duration::from_secs(3600)));
///
/// let mut record = Record::new(SystemTime::now());
/// record.data.insert("user".into(), "ada".into());
/// let value = store.seal(&record, SystemTime::now())?;
/// assert_eq!(store.open(&value).unwrap().data, record.data);
/// assert!(store.open(&value.replace('A', "B")).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FernetCookieStore {
    ring: KeyRing,
    /// The ring's keys, the primary first.
    keys: Vec<FernetKey>,
    max_age_secs: Option<u64>,
}

impl FernetCookieStore {
    /// A store that seals with `ring`'s primary key and opens tokens of
    /// every key of it (as `MultiFernet` does), for sessions that end
    /// `max_age` after their last write (aiohttp_session's `max_age`, in
    /// whole seconds, rounding up) or never with `None`. Give
    /// [`session_core::aiohttp::session_config`] the same `max_age`.
    #[must_use]
    pub fn new(ring: KeyRing, max_age: Option<Duration>) -> Self {
        let keys = std::iter::once(ring.primary())
            .chain(ring.old())
            .map(|key| FernetKey::new(key.secret()))
            .collect();
        FernetCookieStore {
            ring,
            keys,
            max_age_secs: max_age_secs(max_age),
        }
    }

    /// aiohttp_session's `max_age`, in whole seconds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use session_encrypted_cookie::{Key, KeyRing, aiohttp::FernetCookieStore};
    ///
    /// let ring = KeyRing::builder(Key::generate()).build()?;
    /// let store = FernetCookieStore::new(ring, Some(Duration::from_millis(1500)));
    /// assert_eq!(store.max_age(), Some(Duration::from_secs(2)));
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
    /// writes it: a Fernet token stamped `at`, under the primary key, of
    /// `{"created": <at>, "session": {...}}` (`{}` for an empty session),
    /// quoted as Python's `http.cookies` quotes it when it ends in `=`.
    ///
    /// # Errors
    ///
    /// [`Error::Value`] when the data cannot be written as JSON;
    /// [`Error::Store`] when the OS gives no random bytes for the IV.
    pub fn seal(&self, record: &Record, at: SystemTime) -> Result<String, Error> {
        let json = plaintext(record, at)?;
        let token = self.keys[0].seal(json.as_bytes(), codec::unix_seconds(at), random()?);
        Ok(codec::quote_cookie_value(&token).into_owned())
    }

    /// The record in a cookie value, or `None` when it does not open under
    /// any key of the ring, or holds no session. The value may come quoted
    /// or not. The record's deadline is the earlier of aiohttp_session's
    /// two (`created + max_age` and the token's timestamp `+ max_age`); the
    /// session manager enforces it.
    #[must_use]
    pub fn open(&self, value: &str) -> Option<Record> {
        self.open_with_key(value).map(|(record, _)| record)
    }

    /// [`open`](Self::open), and the index in the ring of the key that
    /// opened it (0: the primary).
    pub(crate) fn open_with_key(&self, value: &str) -> Option<(Record, usize)> {
        let text = unquoted(value)?;
        let token = LENIENT_URL_SAFE.decode(text.as_bytes()).ok()?;
        let body = token.len().checked_sub(HEADER_LEN + HMAC_LEN)?;
        if token.first() != Some(&VERSION) || body == 0 || body % BLOCK != 0 {
            return None;
        }
        let (index, (timestamp, json)) = self
            .keys
            .iter()
            .enumerate()
            .find_map(|(index, key)| Some((index, key.open(&token)?)))?;
        let mut record = codec::decode_cookie_json(&json, self.max_age_secs)?;
        if let Some(ttl) = self.max_age_secs {
            let token_deadline = token_deadline(timestamp, ttl)?;
            record.expires_at = record.expires_at.map(|d| d.min(token_deadline));
        }
        Some((record, index))
    }
}

impl fmt::Debug for FernetCookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FernetCookieStore")
            .field("keys", &self.ring)
            .field("max_age_secs", &self.max_age_secs)
            .finish()
    }
}

cookie_store!(FernetCookieStore);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;
    use crate::aiohttp::record_with;
    use serde_json::json;
    use session_core::{Create, SessionCookie, SessionStore, Update, Written};
    use std::time::UNIX_EPOCH;

    /// `bytes(range(32))`, aiohttp_session's `secret_key`.
    fn secret() -> Key {
        Key::from_bytes(&(0..32).collect::<Vec<u8>>()).unwrap()
    }

    fn store(max_age: Option<u64>) -> FernetCookieStore {
        let ring = KeyRing::builder(secret()).build().unwrap();
        FernetCookieStore::new(ring, max_age.map(Duration::from_secs))
    }

    /// The JSON aiohttp_session sealed for
    /// `{"user": "ada", "n": [1, 2.5], "é": None}` created at 1700000000.
    const JSON: &str =
        r#"{"created": 1700000000, "session": {"user": "ada", "n": [1, 2.5], "\u00e9": null}}"#;

    /// Python's `cryptography` 50 (`Fernet(base64.urlsafe_b64encode(
    /// bytes(range(32))))._encrypt_from_parts(JSON, 1700000000,
    /// bytes(range(100, 116)))`).
    const PYTHON_TOKEN: &str = "gAAAAABlU_EAZGVmZ2hpamtsbW5vcHFycxwujXD6Aby2-BhToM-0doUp-mYAyPiNxSnIKivklq2r53g6RfKsczX4EZomn0RZvcVdDlYqVZefVzqVn7zAkO_232nnWpEJcf8dN0v5V4E_vKKc2TM-s16W_D_Rdrho-La-Z_vGvRF_EZDEBuzts5G_ijuEiXBiE0mOTbaDb5ZW";

    #[test]
    fn seals_what_python_seals() {
        let key = FernetKey::new(secret().secret());
        let iv: [u8; 16] = std::array::from_fn(|i| 100 + i as u8);
        assert_eq!(key.seal(JSON.as_bytes(), 1_700_000_000, iv), PYTHON_TOKEN);
        assert_eq!(
            super::super::fernet_key(&secret()),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        );
    }

    #[test]
    fn opens_what_python_seals_with_both_deadlines() {
        let record = store(Some(60)).open(PYTHON_TOKEN).unwrap();
        let created = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(record.created, created);
        // Alive through the whole second created + max_age, as in Python.
        assert_eq!(record.expires_at, Some(created + Duration::from_secs(61)));
        assert_eq!(
            serde_json::Value::Object(record.data),
            json!({"user": "ada", "n": [1, 2.5], "é": null})
        );
        assert_eq!(store(None).open(PYTHON_TOKEN).unwrap().expires_at, None);
        // Quoted, as a browser may send it back.
        assert!(store(None).open(&format!("\"{PYTHON_TOKEN}\"")).is_some());
    }

    #[test]
    fn the_token_timestamp_bounds_the_session_too() {
        // created is late, but the token was stamped early: Fernet's ttl
        // ends it first.
        let late = record_with(json!({"k": 1}), 1_700_000_500);
        let value = store(Some(60))
            .seal(&late, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .unwrap();
        let record = store(Some(60)).open(&value).unwrap();
        assert_eq!(
            record.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_061))
        );
    }

    #[test]
    fn tampered_foreign_and_garbage_tokens_do_not_open() {
        let store = store(Some(60));
        let other =
            FernetCookieStore::new(KeyRing::builder(Key::generate()).build().unwrap(), None);
        let record = record_with(json!({"user": "ada"}), 1_700_000_000);
        let value = other.seal(&record, SystemTime::now()).unwrap();
        assert!(other.open(&value).is_some());
        assert!(store.open(&value).is_none(), "another key");
        let mut token = URL_SAFE.decode(PYTHON_TOKEN).unwrap();
        for at in [0, 1, 9, 30, token.len() - 1] {
            token[at] ^= 1;
            assert!(
                store.open(&URL_SAFE.encode(&token)).is_none(),
                "bit at {at}"
            );
            token[at] ^= 1;
        }
        for bad in ["", "\"\"", "gAAAAA", "!!!", &PYTHON_TOKEN[..100], "{}"] {
            assert!(store.open(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn older_keys_open_and_ask_for_a_reissue() {
        let old = Key::generate();
        let before = KeyRing::builder(old.clone()).build().unwrap();
        let after = KeyRing::builder(Key::generate())
            .old_key(old)
            .build()
            .unwrap();
        let (before, after) = (
            FernetCookieStore::new(before, None),
            FernetCookieStore::new(after, None),
        );
        let record = record_with(json!({"k": 1}), 1_700_000_000);
        let old_value = before.seal(&record, SystemTime::now()).unwrap();
        let new_value = after.seal(&record, SystemTime::now()).unwrap();
        assert_eq!(after.open(&old_value).unwrap().data, record.data);
        assert!(after.needs_reissue(SessionCookie::new("AIOHTTP_SESSION", &old_value)));
        assert!(!after.needs_reissue(SessionCookie::new("AIOHTTP_SESSION", &new_value)));
        assert!(before.open(&new_value).is_none());
    }

    #[tokio::test]
    async fn a_refresh_keeps_the_cookie_unless_its_key_is_old() {
        let old = Key::generate();
        let new = Key::generate();
        let before = FernetCookieStore::new(KeyRing::builder(old.clone()).build().unwrap(), None);
        let after = FernetCookieStore::new(
            KeyRing::builder(new.clone()).old_key(old).build().unwrap(),
            None,
        );
        let only_new = FernetCookieStore::new(KeyRing::builder(new).build().unwrap(), None);
        let record = record_with(json!({"k": 1}), 1_700_000_000);
        let now = SystemTime::now();
        let current = after.seal(&record, now).unwrap();
        let cookie = SessionCookie::new("AIOHTTP_SESSION", &current);
        let refresh = session_core::Refresh::new(cookie, &record, now);
        assert_eq!(
            after.refresh(refresh).await.unwrap(),
            Written::Cookie(current.clone()),
            "a read sends nothing new"
        );
        let old_value = before.seal(&record, now).unwrap();
        let cookie = SessionCookie::new("AIOHTTP_SESSION", &old_value);
        let refresh = session_core::Refresh::new(cookie, &record, now);
        let Written::Cookie(resealed) = after.refresh(refresh).await.unwrap() else {
            panic!("re-sealed")
        };
        let opened = only_new.open(&resealed).unwrap();
        assert_eq!(opened.data, record.data);
        // Sealed as it was written: the re-issue extends nothing.
        assert_eq!(opened.created, record.created);
    }

    #[tokio::test]
    async fn an_emptied_session_removes_the_cookie() {
        let store = store(Some(60));
        let now = SystemTime::now();
        let full = record_with(json!({"k": 1}), 1_700_000_000);
        let value = store
            .create(Create::new("AIOHTTP_SESSION", &full, now))
            .await
            .unwrap();
        let empty = record_with(json!({}), 1_700_000_000);
        let changes = session_core::Changes::default();
        let cookie = SessionCookie::new("AIOHTTP_SESSION", &value);
        let written = store
            .update(Update::new(cookie, &empty, &changes, now))
            .await
            .unwrap();
        assert_eq!(written, Written::Emptied);
        // A new session saved empty seals `{}`: a new session on both sides.
        let value = store
            .create(Create::new("AIOHTTP_SESSION", &empty, now))
            .await
            .unwrap();
        assert!(store.open(&value).is_none());
    }

    #[test]
    fn debug_shows_no_key_material() {
        let debug = format!("{:?}", store(Some(60)));
        assert!(debug.contains("FernetCookieStore"), "{debug}");
        assert!(!debug.contains("AAECAw"), "{debug}");
        assert!(!debug.contains("[0, 1, 2"), "{debug}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_values_never_panic_nor_open(value in "\\PC*|[A-Za-z0-9_=-]{0,300}") {
            proptest::prop_assert!(store(Some(60)).open(&value).is_none());
        }

        #[test]
        fn arbitrary_tokens_never_open(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut bytes = bytes;
            if let Some(first) = bytes.first_mut() {
                *first = VERSION;
            }
            proptest::prop_assert!(store(Some(60)).open(&URL_SAFE.encode(&bytes)).is_none());
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
