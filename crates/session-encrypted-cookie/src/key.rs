//! Keys and the key ring: which key seals new cookies, and which still open
//! old ones.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::ConfigError;

/// Domain separation for everything this crate derives from a key.
const HKDF_SALT: &[u8] = b"session-encrypted-cookie";
const KEY_ID_INFO: &[u8] = b"key id";

/// A 32-byte secret that seals session cookies.
///
/// Its bytes are never used directly: the [`KeyId`] and a separate AEAD key
/// for each [`Cipher`](crate::Cipher) are derived from it with HKDF-SHA256,
/// so one key used with both ciphers still gives independent cipher keys.
/// The bytes are wiped from memory when the key is dropped, and `Debug`
/// shows only the key id.
///
/// ```
/// use session_encrypted_cookie::Key;
///
/// // Print one for your configuration (keep it secret):
/// let key = Key::generate();
/// let text = key.to_base64();
/// assert_eq!(text.len(), 43);
///
/// // ...and read it back when the application starts.
/// let loaded = Key::from_base64(&text)?;
/// assert_eq!(loaded.id(), key.id());
/// assert!(Key::from_bytes(&[0; 16]).is_err());
/// # Ok::<(), session_encrypted_cookie::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Key {
    bytes: [u8; Key::LEN],
    id: KeyId,
}

impl Key {
    /// The length of a key in bytes.
    pub const LEN: usize = 32;

    /// A key from its 32 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyLength`] when `bytes` is not 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ConfigError> {
        let bytes: [u8; Key::LEN] = bytes.try_into().map_err(|_| ConfigError::KeyLength {
            actual: bytes.len(),
        })?;
        Ok(Self::from_array(bytes))
    }

    /// A key from base64 text: standard (`+/`) or URL-safe (`-_`) alphabet,
    /// with or without `=` padding, surrounding whitespace ignored. Both
    /// [`to_base64`](Key::to_base64) and `openssl rand -base64 32` produce
    /// such text.
    ///
    /// # Errors
    ///
    /// [`ConfigError::KeyEncoding`] when the text is not base64,
    /// [`ConfigError::KeyLength`] when it does not decode to 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, ConfigError> {
        const LENIENT: GeneralPurposeConfig =
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
        const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .map(Zeroizing::new)
            .map_err(|_| ConfigError::KeyEncoding)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random key from the operating system's secure random number
    /// generator.
    ///
    /// # Panics
    ///
    /// When the operating system cannot provide random bytes, as
    /// [`SessionId::generate`](session_core::SessionId::generate) does.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0; Key::LEN];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        let key = Self::from_array(bytes);
        bytes.zeroize();
        key
    }

    /// The key as URL-safe base64 without padding (43 characters), for
    /// configuration files and command lines; read it back with
    /// [`from_base64`](Key::from_base64). This is the secret itself: print it
    /// only to give it to the application's configuration.
    #[must_use]
    pub fn to_base64(&self) -> String {
        general_purpose::URL_SAFE_NO_PAD.encode(self.bytes)
    }

    /// The key's id, which cookies carry to say which key sealed them.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Derives `N` bytes for the purpose named by `info`.
    pub(crate) fn derive<const N: usize>(&self, info: &[u8]) -> Zeroizing<[u8; N]> {
        derive(&self.bytes, info)
    }

    /// The secret itself, which aiohttp_session's formats use as it is
    /// (feature `aiohttp`).
    #[cfg(feature = "aiohttp")]
    pub(crate) fn secret(&self) -> &[u8; Key::LEN] {
        &self.bytes
    }

    #[cfg(test)]
    pub(crate) fn bytes_for_test(&self) -> &[u8; Key::LEN] {
        &self.bytes
    }

    fn from_array(bytes: [u8; Key::LEN]) -> Self {
        let id = KeyId(*derive::<{ KeyId::LEN }>(&bytes, KEY_ID_INFO));
        Key { bytes, id }
    }
}

fn derive<const N: usize>(key: &[u8; Key::LEN], info: &[u8]) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0; N]);
    Hkdf::<Sha256>::new(Some(HKDF_SALT), key)
        .expand(info, out.as_mut())
        // HKDF-SHA256 expands up to 8160 bytes; we ask for 32 at most.
        .expect("HKDF output length within bounds");
    out
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A short public name of a [`Key`], carried in every cookie so that the
/// key that opens it is found without trying each key of the ring.
///
/// It is derived from the key (HKDF-SHA256, 4 bytes) rather than chosen by
/// the operator, so configuring a key ring is just listing keys, and the id
/// of a key is the same in every process that has it. Four bytes reveal
/// nothing useful about a 32-byte key and keep cookies short; two keys of
/// one ring with the same id are refused when the ring is built. It is safe
/// to log: `Display` prints it as 8 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KeyId::LEN]);

impl KeyId {
    /// The length of a key id in bytes.
    pub(crate) const LEN: usize = 4;

    pub(crate) fn from_bytes(bytes: [u8; KeyId::LEN]) -> Self {
        KeyId(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KeyId::LEN] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The keys a store uses: one primary key that seals every new cookie, and
/// older keys that still open the cookies they sealed.
///
/// Built with [`KeyRing::builder`]:
///
/// ```
/// use session_encrypted_cookie::{Key, KeyRing};
///
/// let (new, old) = (Key::generate(), Key::generate());
/// let ring = KeyRing::builder(new.clone()).old_key(old.clone()).build()?;
/// assert_eq!(ring.primary_id(), new.id());
/// assert_eq!(ring.ids().collect::<Vec<_>>(), [new.id(), old.id()]);
///
/// // The same key twice is refused.
/// assert!(KeyRing::builder(new.clone()).old_key(new).build().is_err());
/// # Ok::<(), session_encrypted_cookie::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KeyRing {
    primary: Key,
    /// In the order given.
    old: Vec<Key>,
}

impl KeyRing {
    /// Starts a ring whose primary key is `primary`.
    pub fn builder(primary: Key) -> KeyRingBuilder {
        KeyRingBuilder {
            ring: KeyRing {
                primary,
                old: Vec::new(),
            },
        }
    }

    /// The id of the key that seals new cookies.
    #[must_use]
    pub fn primary_id(&self) -> KeyId {
        self.primary.id
    }

    /// The ids of every key, the primary first.
    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        std::iter::once(&self.primary).chain(&self.old).map(Key::id)
    }

    pub(crate) fn primary(&self) -> &Key {
        &self.primary
    }

    pub(crate) fn old(&self) -> &[Key] {
        &self.old
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("primary", &self.primary_id())
            .field("old", &self.old.iter().map(Key::id).collect::<Vec<_>>())
            .finish()
    }
}

/// Collects the keys of a [`KeyRing`].
#[derive(Debug)]
#[must_use]
pub struct KeyRingBuilder {
    ring: KeyRing,
}

impl KeyRingBuilder {
    /// Adds an older key: cookies it sealed still open (and are re-sealed
    /// under the primary key on their next response), but it seals nothing
    /// new.
    pub fn old_key(mut self, key: Key) -> Self {
        self.ring.old.push(key);
        self
    }

    /// The ring.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DuplicateKeyId`] when two keys share an id (the same
    /// key given twice), since a cookie could then not name its key.
    pub fn build(self) -> Result<KeyRing, ConfigError> {
        let ids: Vec<KeyId> = self.ring.ids().collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) {
                return Err(ConfigError::DuplicateKeyId { id: *id });
            }
        }
        Ok(self.ring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};

    /// Bytes whose base64 forms use `+`, `/`, `-` and `_` and need padding.
    fn bytes() -> [u8; Key::LEN] {
        let mut bytes = [0xfb; Key::LEN];
        bytes[..4].copy_from_slice(&[0x00, 0x01, 0xfe, 0xff]);
        bytes
    }

    #[test]
    fn base64_in_every_common_form_reads_the_same_key() {
        let expected = Key::from_bytes(&bytes()).unwrap().id();
        let forms = [
            STANDARD.encode(bytes()),
            STANDARD_NO_PAD.encode(bytes()),
            URL_SAFE.encode(bytes()),
            general_purpose::URL_SAFE_NO_PAD.encode(bytes()),
            format!("  {}\n", STANDARD.encode(bytes())),
        ];
        assert!(forms[0].contains('+') && forms[0].contains('/') && forms[0].ends_with('='));
        assert!(forms[2].contains('-') && forms[2].contains('_'));
        for form in &forms {
            assert_eq!(Key::from_base64(form).unwrap().id(), expected, "{form}");
        }
        let key = Key::from_bytes(&bytes()).unwrap();
        assert_eq!(Key::from_base64(&key.to_base64()).unwrap().id(), key.id());
    }

    #[test]
    fn wrong_lengths_and_bad_text_are_clear_errors() {
        assert!(matches!(
            Key::from_bytes(&[7; 31]),
            Err(ConfigError::KeyLength { actual: 31 })
        ));
        assert!(matches!(
            Key::from_base64(&STANDARD.encode([7; 16])),
            Err(ConfigError::KeyLength { actual: 16 })
        ));
        let err = Key::from_bytes(&[7; 33]).unwrap_err();
        assert_eq!(err.to_string(), "a session key must be 32 bytes, not 33");
        for bad in ["", "not base64!", "+-mixed/_alphabets", "===="] {
            assert!(Key::from_base64(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            Key::from_base64("not base64!"),
            Err(ConfigError::KeyEncoding)
        ));
    }

    #[test]
    fn generated_keys_differ() {
        let (a, b) = (Key::generate(), Key::generate());
        assert_ne!(a.to_base64(), b.to_base64());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn debug_shows_ids_and_no_key_material() {
        let key = Key::from_bytes(&bytes()).unwrap();
        let old = Key::generate();
        let ring = KeyRing::builder(key.clone())
            .old_key(old.clone())
            .build()
            .unwrap();
        let secrets = [key.to_base64(), old.to_base64(), "fbfbfbfb".to_owned()];
        for debug in [
            format!("{key:?}"),
            format!("{ring:?}"),
            format!("{:?}", KeyRing::builder(key.clone())),
        ] {
            assert!(debug.contains(&key.id().to_string()), "{debug}");
            for secret in &secrets {
                assert!(!debug.contains(secret.as_str()), "{debug}");
            }
            assert!(!debug.contains("251, 251"), "{debug}"); // bytes as decimals
        }
    }

    #[test]
    fn key_ids_are_stable_and_printable() {
        let id = Key::from_bytes(&bytes()).unwrap().id();
        assert_eq!(id, Key::from_bytes(&bytes()).unwrap().id());
        let shown = id.to_string();
        assert_eq!(shown.len(), 8);
        assert!(shown.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(format!("{id:?}"), format!("KeyId({shown})"));
    }

    #[test]
    fn a_ring_refuses_the_same_key_twice() {
        let (a, b) = (Key::generate(), Key::generate());
        let err = KeyRing::builder(a.clone())
            .old_key(b.clone())
            .old_key(a.clone())
            .build()
            .unwrap_err();
        assert!(matches!(err, ConfigError::DuplicateKeyId { id } if id == a.id()));
        assert!(err.to_string().contains(&a.id().to_string()));
        assert!(
            KeyRing::builder(a)
                .old_key(b.clone())
                .old_key(b)
                .build()
                .is_err()
        );
    }
}
