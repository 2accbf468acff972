//! Session ids: unguessable tokens for server-side stores.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How many random bytes an id carries: 192 bits, well above OWASP's 64-bit
/// floor and the 128 bits that this workspace promises.
const ID_BYTES: usize = 24;

/// A session id drawn from the operating system's CSPRNG.
///
/// Rendered as unpadded base64url (32 characters), which is a valid cookie
/// value and a valid Redis key suffix. `Debug` never shows the id, so it
/// cannot leak through logs.
///
/// ```
/// use session_core::SessionId;
/// let a = SessionId::generate();
/// let b = SessionId::generate();
/// assert_ne!(a.as_str(), b.as_str());
/// assert_eq!(a.as_str().len(), 32);
/// assert_eq!(format!("{a:?}"), "SessionId(..)");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Draws a fresh id from the OS CSPRNG.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot provide random bytes, as every
    /// CSPRNG-backed API does: continuing with predictable ids would be worse.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned `String`.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_and_cookie_safe() {
        let ids: HashSet<String> = (0..1000)
            .map(|_| SessionId::generate().into_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            // 24 bytes decode back: 192 bits of entropy.
            assert_eq!(URL_SAFE_NO_PAD.decode(id).map(|b| b.len()).ok(), Some(24));
        }
    }
}
