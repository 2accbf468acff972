//! What can be wrong with the store's configuration.

use crate::KeyId;

/// A key, key ring or cipher setting that cannot be used.
///
/// Raised when the store is configured, never while serving requests: a bad
/// or forged cookie is not an error, it just starts a new session. Messages
/// never contain key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key was not 32 bytes long.
    #[error("a session key must be {expected} bytes, not {actual}", expected = crate::Key::LEN)]
    KeyLength {
        /// The length that was given.
        actual: usize,
    },

    /// A key's text was not base64 (standard or URL-safe, padded or not).
    #[error("a session key in text form must be base64 (standard or URL-safe) of 32 bytes")]
    KeyEncoding,

    /// A cipher name that is not one of [`Cipher`](crate::Cipher)'s.
    #[error("unknown cipher `{name}`: expected `xchacha20poly1305` or `aes256gcm`")]
    UnknownCipher {
        /// The name that was given.
        name: String,
    },

    /// Two keys of a key ring have the same key id, so cookies could not say
    /// which of them sealed them. In practice: the same key was given twice.
    #[error("two keys of the session key ring have the key id {id}; was one key given twice?")]
    DuplicateKeyId {
        /// The id the two keys share.
        id: KeyId,
    },
}
