//! The store: sessions sealed into the cookie itself.

use std::fmt;

use session_core::{Delete, Error, Load, Record, Save, Saved, SessionStore, Touch, async_trait};

use crate::cipher::Sealer;
use crate::format::{self, Rejection};
use crate::{Cipher, Key, KeyId, KeyRing};

/// A [`SessionStore`] that keeps the whole session in the cookie, encrypted
/// and authenticated, so that clients can neither read nor change it.
///
/// New cookies are sealed under the key ring's primary key; cookies sealed
/// under an older key of the ring still open, and the response re-seals them
/// under the primary key. Nothing is kept on the server, so logging out
/// cannot revoke a cookie that a client kept: the timeouts inside it (always
/// enforced) bound how long it stays valid. See the [crate docs](crate) for
/// the format, the size budget and key rotation.
///
/// ```
/// use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};
///
/// let ring = KeyRing::builder(Key::generate()).build()?;
/// let store = EncryptedCookieStore::new(ring).with_cipher(Cipher::Aes256Gcm);
/// assert_eq!(store.cipher(), Cipher::Aes256Gcm);
/// # Ok::<(), session_encrypted_cookie::ConfigError>(())
/// ```
pub struct EncryptedCookieStore {
    cipher: Cipher,
    ring: KeyRing,
    primary: (KeyId, Sealer),
    old: Vec<(KeyId, Sealer)>,
}

impl EncryptedCookieStore {
    /// A store sealing with `ring`'s keys and the default cipher,
    /// XChaCha20-Poly1305.
    #[must_use]
    pub fn new(ring: KeyRing) -> Self {
        Self::build(Cipher::default(), ring)
    }

    /// Switches to `cipher`. Cookies sealed with the other cipher no longer
    /// open.
    #[must_use]
    pub fn with_cipher(self, cipher: Cipher) -> Self {
        Self::build(cipher, self.ring)
    }

    /// The cipher that seals and opens cookies.
    #[must_use]
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The keys.
    #[must_use]
    pub fn key_ring(&self) -> &KeyRing {
        &self.ring
    }

    fn build(cipher: Cipher, ring: KeyRing) -> Self {
        let sealer = |key: &Key| (key.id(), Sealer::new(cipher, key));
        let primary = sealer(ring.primary());
        let old = ring.old().iter().map(sealer).collect();
        EncryptedCookieStore {
            cipher,
            ring,
            primary,
            old,
        }
    }

    fn seal(&self, cookie_name: &str, record: &Record) -> Result<String, Error> {
        let (primary_id, primary) = &self.primary;
        format::seal(self.cipher, *primary_id, primary, cookie_name, record)
    }

    fn sealer(&self, id: KeyId) -> Option<&Sealer> {
        std::iter::once(&self.primary)
            .chain(&self.old)
            .find(|(key_id, _)| *key_id == id)
            .map(|(_, sealer)| sealer)
    }
}

impl fmt::Debug for EncryptedCookieStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedCookieStore")
            .field("cipher", &self.cipher)
            .field("keys", &self.ring)
            .finish()
    }
}

#[async_trait]
impl SessionStore for EncryptedCookieStore {
    async fn load(&self, load: Load<'_>) -> Result<Option<Record>, Error> {
        let opened = format::open(
            self.cipher,
            |id| self.sealer(id),
            load.cookie_name,
            load.value,
        );
        match opened {
            Ok(record) => Ok(Some(record)),
            Err(Rejection::UnknownKey(key_id)) => {
                tracing::debug!(
                    cookie = load.cookie_name,
                    %key_id,
                    "session cookie sealed under a key that is not in the ring"
                );
                Ok(None)
            }
            Err(reason) => {
                tracing::debug!(
                    cookie = load.cookie_name,
                    ?reason,
                    "session cookie did not open"
                );
                Ok(None)
            }
        }
    }

    async fn save(&self, save: Save<'_>) -> Result<Saved, Error> {
        // The cookie carries the whole record, so there is nothing to merge
        // with: the previous value is simply replaced.
        self.seal(save.cookie_name, save.record).map(Saved::Cookie)
    }

    async fn touch(&self, touch: Touch<'_>) -> Result<Option<String>, Error> {
        // The deadline is inside the cookie: moving it means sealing anew.
        self.seal(touch.cookie_name, touch.record).map(Some)
    }

    async fn delete(&self, _: Delete<'_>) -> Result<(), Error> {
        // Nothing is kept on the server.
        Ok(())
    }

    fn needs_reissue(&self, load: Load<'_>) -> bool {
        let primary = self.ring.primary_id();
        let old_key = format::key_id_of(load.value).is_some_and(|id| id != primary);
        if old_key {
            tracing::debug!(
                cookie = load.cookie_name,
                "session cookie under an old key; re-sealing it under the primary key"
            );
        }
        old_key
    }
}
