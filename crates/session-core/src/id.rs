//! Session ids: unguessable tokens for server-side stores.

use std::fmt;
use std::str::FromStr;

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
///
/// // A cookie value parses back only if it has the shape of an issued id,
/// // so stores check it once, here, before building keys from it.
/// let parsed: SessionId = a.as_str().parse().unwrap();
/// assert_eq!(parsed, a);
/// assert!("not-an-id".parse::<SessionId>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// The length of an id's text, in bytes: its 24 random bytes in
    /// unpadded base64url. Every issued id, and every value
    /// [`is_well_formed`](Self::is_well_formed) accepts, is this long.
    ///
    /// ```
    /// use session_core::SessionId;
    /// assert_eq!(SessionId::generate().as_str().len(), SessionId::LEN);
    /// ```
    pub const LEN: usize = 32;

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

    /// Whether `value` has the shape of an issued id (what `FromStr`
    /// checks), without copying it: for a store that builds a key from a
    /// cookie value on every load.
    ///
    /// ```
    /// use session_core::SessionId;
    /// assert!(SessionId::is_well_formed(SessionId::generate().as_str()));
    /// assert!(!SessionId::is_well_formed("../../etc/passwd"));
    /// ```
    #[must_use]
    pub fn is_well_formed(value: &str) -> bool {
        is_base64url_of_len::<{ Self::LEN }>(value)
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

/// Whether `value` is `LEN` characters of the base64url alphabet: the
/// shape of the random tokens this crate issues (session ids, handles).
///
/// Every byte is tested, without an early exit, over a fixed length: the
/// compiler turns that into a few vector compares, where a byte-by-byte
/// `all` cost a Redis load some 400 instructions.
pub(crate) fn is_base64url_of_len<const LEN: usize>(value: &str) -> bool {
    let Ok(bytes) = <&[u8; LEN]>::try_from(value.as_bytes()) else {
        return false;
    };
    bytes.iter().fold(true, |ok, &b| ok & is_base64url(b))
}

/// A character of the base64url alphabet, tested without branches.
fn is_base64url(b: u8) -> bool {
    b.is_ascii_lowercase() | b.is_ascii_uppercase() | b.is_ascii_digit() | (b == b'-') | (b == b'_')
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    /// Accepts exactly the shape [`generate`](SessionId::generate) issues:
    /// 32 characters of the base64url alphabet (which always decode to 24
    /// bytes). Whether the id was really issued is the store's to say.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if SessionId::is_well_formed(value) {
            Ok(SessionId(value.to_owned()))
        } else {
            Err(InvalidSessionId)
        }
    }
}

/// A value that cannot be a [`SessionId`]: from [`SessionId`]'s `FromStr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidSessionId;

impl fmt::Display for InvalidSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a session id: 32 base64url characters were expected")
    }
}

impl std::error::Error for InvalidSessionId {}

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
            assert_eq!(
                id.parse::<SessionId>().map(SessionId::into_string),
                Ok(id.clone())
            );
        }
    }

    #[test]
    fn only_the_shape_of_an_issued_id_parses() {
        let id = SessionId::generate().into_string();
        for bad in [
            "",
            "short",
            &format!("{id}x"),
            &id[1..],
            &format!("{}*", &id[1..]),
            &format!("{}=", &id[1..]),
            "../../etc/passwd/aaaaaaaaaaaaaaa",
            "ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ",
        ] {
            assert_eq!(bad.parse::<SessionId>(), Err(InvalidSessionId), "{bad}");
        }
    }

    #[test]
    fn every_ascii_character_in_every_place_is_judged_by_the_alphabet() {
        let id = SessionId::generate().into_string();
        for place in 0..SessionId::LEN {
            for c in (0u8..128).map(char::from) {
                let mut candidate = id.clone();
                candidate.replace_range(place..=place, c.encode_utf8(&mut [0; 4]));
                let in_alphabet = c.is_ascii_alphanumeric() || c == '-' || c == '_';
                assert_eq!(
                    SessionId::is_well_formed(&candidate),
                    in_alphabet,
                    "{c:?} at {place}"
                );
            }
        }
    }
}
