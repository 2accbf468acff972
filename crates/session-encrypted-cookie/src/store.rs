//! The store: sessions sealed into the cookie itself.

use std::fmt;
use std::sync::Arc;

use session_core::{
    Create, Error, Record, Regenerate, SessionCookie, SessionStore, Update, Written, async_trait,
};

use crate::cache::OpenedCookies;
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
/// The store remembers the records of the cookies it recently sealed or
/// opened, within a memory budget ([`with_cache_size`]), so that a client
/// sending the same cookie again, as a browser does on every request until
/// the session changes, costs a lookup instead of decrypting it again.
///
/// [`with_cache_size`]: EncryptedCookieStore::with_cache_size
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
    opened: OpenedCookies,
}

impl EncryptedCookieStore {
    /// The memory the store spends by default on the records of recent
    /// cookies, as the allocator counts it: 8 MiB, some 8,000 sessions of a
    /// few short keys each, or 4,000 of 1 KB.
    pub const DEFAULT_CACHE_SIZE: usize = 8 << 20;

    /// A store sealing with `ring`'s keys and the default cipher,
    /// XChaCha20-Poly1305.
    #[must_use]
    pub fn new(ring: KeyRing) -> Self {
        Self::build(Cipher::default(), ring, Self::DEFAULT_CACHE_SIZE)
    }

    /// Switches to `cipher`. Cookies sealed with the other cipher no longer
    /// open.
    #[must_use]
    pub fn with_cipher(self, cipher: Cipher) -> Self {
        Self::build(cipher, self.ring, self.opened.budget())
    }

    /// Spends at most about `bytes` of memory on the records of the cookies
    /// the store recently sealed or opened; `0` turns the cache off, so that
    /// every load opens its cookie.
    ///
    /// A cookie is served from the cache only when it is one that this
    /// store sealed or opened under the same cookie name (its keyed 128-bit
    /// digest is that cookie's), and it gives the record that opening it
    /// would: tampered, forged and expired cookies fare exactly as without
    /// a cache (the timeouts are checked on the record, on every load).
    /// Each entry is charged the heap memory it keeps alive, estimated from
    /// its record (its strings, maps and arrays, as the allocator rounds
    /// them) and its slot; with the allocator counting, the cache holds
    /// 0.78 to 0.97 of its budget in the tests. When the budget is used
    /// up, a new cookie replaces a cached one only if it was asked for more
    /// often (CLOCK eviction with TinyLFU admission), so that a burst of
    /// cookies seen once, or a cycle over more clients than fit, does not
    /// flush the cache; a saved session's new cookie takes its old one's
    /// place.
    ///
    /// ```
    /// use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
    ///
    /// let ring = KeyRing::builder(Key::generate()).build()?;
    /// let store = EncryptedCookieStore::new(ring).with_cache_size(64 << 20);
    /// assert_eq!(store.cache_size(), 64 << 20);
    /// # Ok::<(), session_encrypted_cookie::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_cache_size(self, bytes: usize) -> Self {
        Self::build(self.cipher, self.ring, bytes)
    }

    /// The most memory spent on the records of recent cookies.
    #[must_use]
    pub fn cache_size(&self) -> usize {
        self.opened.budget()
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

    fn build(cipher: Cipher, ring: KeyRing, cache_size: usize) -> Self {
        let sealer = |key: &Key| (key.id(), Sealer::new(cipher, key));
        let primary = sealer(ring.primary());
        let old = ring.old().iter().map(sealer).collect();
        EncryptedCookieStore {
            cipher,
            ring,
            primary,
            old,
            opened: OpenedCookies::new(cache_size),
        }
    }

    /// Seals `record` into a new value for the cookie `cookie_name`, which
    /// replaces the client's cookie `replacing`, if it had one.
    fn seal(
        &self,
        cookie_name: &str,
        record: &Arc<Record>,
        replacing: Option<&str>,
    ) -> Result<String, Error> {
        let (primary_id, primary) = &self.primary;
        let value = format::seal(self.cipher, *primary_id, primary, cookie_name, record)?;
        // The client sends it back on its next request, instead of
        // `replacing`, which is forgotten. The record is not written to
        // again (sessions write to copies): shared, not copied.
        self.opened
            .insert_sealed(cookie_name, &value, record, replacing);
        Ok(value)
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
            .field("cache_size", &self.opened.budget())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for EncryptedCookieStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        let opened = self.opened.get_or_open(cookie.name, cookie.value, || {
            format::open(self.cipher, |id| self.sealer(id), cookie.name, cookie.value)
        });
        match opened {
            Ok(record) => Ok(Some(record)),
            Err(Rejection::UnknownKey(key_id)) => {
                tracing::debug!(
                    cookie = cookie.name,
                    %key_id,
                    "session cookie sealed under a key that is not in the ring"
                );
                Ok(None)
            }
            Err(reason) => {
                tracing::debug!(cookie = cookie.name, ?reason, "session cookie did not open");
                Ok(None)
            }
        }
    }

    fn load_from_memory(&self, cookie: SessionCookie<'_>) -> Option<Arc<Record>> {
        // A miss is counted by the `load` that follows.
        self.opened.get_if_hit(cookie.name, cookie.value)
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        self.seal(create.cookie_name, create.record, None)
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        // The cookie carries the whole record, so there is nothing to merge
        // with: the previous value is simply replaced.
        let cookie = update.cookie;
        self.seal(cookie.name, update.record, Some(cookie.value))
            .map(Written::Cookie)
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        // Nothing is kept on the server to move or check: the old cookie is
        // only forgotten by the cache, and a client that kept it can still
        // use it until its deadline.
        let cookie = regenerate.cookie;
        self.seal(cookie.name, regenerate.record, Some(cookie.value))
            .map(Written::Cookie)
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        // Nothing is kept on the server but the cache. Forgetting the cookie
        // there does not revoke it: a client that kept it can still use it
        // until its deadline.
        self.opened.remove(cookie.name, cookie.value);
        Ok(false)
    }

    fn needs_reissue(&self, cookie: SessionCookie<'_>) -> bool {
        // Only a cookie that loaded is asked about: with no old key in the
        // ring, it was sealed under the primary.
        if self.old.is_empty() {
            return false;
        }
        let primary = self.ring.primary_id();
        let old_key = format::key_id_of(cookie.value).is_some_and(|id| id != primary);
        if old_key {
            tracing::debug!(
                cookie = cookie.name,
                "session cookie under an old key; re-sealing it under the primary key"
            );
        }
        old_key
    }
}
