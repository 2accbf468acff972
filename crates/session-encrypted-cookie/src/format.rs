//! The cookie format: `base64url(format | key id | nonce | ciphertext | tag)`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use session_core::{Error, Record};

use crate::cipher::{Sealer, TAG_LEN};
use crate::{Cipher, KeyId};

/// Format version 1 in the high nibble, the cipher in the low one, so that
/// a cookie of one cipher is never even tried with the other.
const fn format_byte(cipher: Cipher) -> u8 {
    match cipher {
        Cipher::XChaCha20Poly1305 => 0x11,
        Cipher::Aes256Gcm => 0x12,
    }
}

/// The format byte and the key id, in front of the nonce; also the start of
/// the associated data.
const HEADER_LEN: usize = 1 + KeyId::LEN;

/// The longest cookie value worth decoding: no cookie over 4096 bytes is
/// ever sent, so no longer value can be one of ours.
const MAX_VALUE_LEN: usize = 4096;

/// Cookies that decode to at most this many bytes are opened in a buffer on
/// the stack; larger ones in one on the heap. Zeroing a buffer for the
/// longest value on every request cost more than decrypting a small session.
const STACK_RAW_LEN: usize = 512;

impl Cipher {
    /// The bytes a sealed cookie adds to its plaintext before base64: the
    /// format byte, the key id, the nonce and the tag (45 for
    /// XChaCha20-Poly1305, 33 for AES-256-GCM).
    #[must_use]
    pub const fn overhead(self) -> usize {
        HEADER_LEN + self.nonce_len() + TAG_LEN
    }

    /// The length of the cookie value that seals `plaintext_len` bytes.
    ///
    /// ```
    /// use session_encrypted_cookie::Cipher;
    /// assert_eq!(Cipher::XChaCha20Poly1305.sealed_len(0), 60);
    /// assert_eq!(Cipher::Aes256Gcm.sealed_len(3003), 4048);
    /// ```
    #[must_use]
    pub const fn sealed_len(self, plaintext_len: usize) -> usize {
        // Unpadded base64: four characters for every three bytes, rounded up.
        (plaintext_len.saturating_add(self.overhead()))
            .saturating_mul(4)
            .div_ceil(3)
    }

    /// The most plaintext (the record's JSON) that fits in a cookie value of
    /// at most `max_value_len` characters: the inverse of
    /// [`sealed_len`](Cipher::sealed_len).
    ///
    /// ```
    /// use session_encrypted_cookie::Cipher;
    /// // A cookie named `session` with the default attributes leaves 4048
    /// // characters for the value within the 4096-byte limit.
    /// assert_eq!(Cipher::XChaCha20Poly1305.max_plaintext_len(4048), 2991);
    /// assert_eq!(Cipher::Aes256Gcm.max_plaintext_len(4048), 3003);
    /// ```
    #[must_use]
    pub const fn max_plaintext_len(self, max_value_len: usize) -> usize {
        (max_value_len / 4 * 3 + max_value_len % 4 * 3 / 4).saturating_sub(self.overhead())
    }
}

/// Calls `f` with the associated data: the header (format and key id) and
/// the cookie name, so that a value opens only under the name it was sealed
/// for. Built on the stack for names of usual length: it is needed on every
/// seal and open.
fn with_associated_data<R>(header: &[u8], cookie_name: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    const INLINE: usize = 64;
    let len = header.len() + cookie_name.len();
    let mut inline = [0; INLINE];
    let mut heap = Vec::new();
    let data = if len <= INLINE {
        &mut inline[..len]
    } else {
        heap.resize(len, 0);
        &mut heap[..]
    };
    let (front, name) = data.split_at_mut(header.len());
    front.copy_from_slice(header);
    name.copy_from_slice(cookie_name.as_bytes());
    f(data)
}

/// Seals `record` for the cookie `cookie_name` under `sealer`, whose key has
/// the id `key_id`.
pub(crate) fn seal(
    cipher: Cipher,
    key_id: KeyId,
    sealer: &Sealer,
    cookie_name: &str,
    record: &Record,
) -> Result<String, Error> {
    let nonce_end = HEADER_LEN + cipher.nonce_len();
    let mut raw = Vec::with_capacity(nonce_end + 256 + TAG_LEN);
    raw.push(format_byte(cipher));
    raw.extend_from_slice(key_id.as_bytes());
    raw.resize(nonce_end, 0);
    getrandom::fill(&mut raw[HEADER_LEN..])
        .map_err(|e| Error::store(format!("the OS random number generator failed: {e}")))?;
    serde_json::to_writer(&mut raw, record).map_err(Error::Value)?;
    let (front, plaintext) = raw.split_at_mut(nonce_end);
    let (header, nonce) = front.split_at(HEADER_LEN);
    let tag = with_associated_data(header, cookie_name, |data| {
        sealer.seal(nonce, data, plaintext)
    })
    .map_err(|_| Error::store("the session is too large to encrypt"))?;
    raw.extend_from_slice(&tag);
    Ok(URL_SAFE_NO_PAD.encode(&raw))
}

/// Why a cookie value did not open. Logged, never shown to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Not base64url, too short or too long to be a sealed cookie.
    Malformed,
    /// Sealed with another cipher or format version.
    OtherFormat,
    /// Sealed under a key that is not in the ring (any more).
    UnknownKey(KeyId),
    /// Changed, forged, or sealed for another cookie name.
    Unauthentic,
    /// Authentic, but not a record this version understands.
    NotARecord,
}

/// Opens a cookie value sealed by [`seal`], finding its key with `sealer_for`.
pub(crate) fn open<'s>(
    cipher: Cipher,
    sealer_for: impl FnOnce(KeyId) -> Option<&'s Sealer>,
    cookie_name: &str,
    value: &str,
) -> Result<Record, Rejection> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Rejection::Malformed);
    }
    let decoded_len = base64::decoded_len_estimate(value.len());
    if decoded_len <= STACK_RAW_LEN {
        open_raw(
            cipher,
            sealer_for,
            cookie_name,
            value,
            &mut [0; STACK_RAW_LEN],
        )
    } else {
        let mut buffer = vec![0; decoded_len];
        open_raw(cipher, sealer_for, cookie_name, value, &mut buffer)
    }
}

/// [`open`], decoding `value` into `buffer`, which is long enough for it.
fn open_raw<'s>(
    cipher: Cipher,
    sealer_for: impl FnOnce(KeyId) -> Option<&'s Sealer>,
    cookie_name: &str,
    value: &str,
    buffer: &mut [u8],
) -> Result<Record, Rejection> {
    let nonce_end = HEADER_LEN + cipher.nonce_len();
    let raw_len = URL_SAFE_NO_PAD
        .decode_slice(value, buffer)
        .map_err(|_| Rejection::Malformed)?;
    let raw = &mut buffer[..raw_len];
    if raw.len() < nonce_end + TAG_LEN {
        return Err(Rejection::Malformed);
    }
    let (front, rest) = raw.split_at_mut(nonce_end);
    let (header, nonce) = front.split_at(HEADER_LEN);
    if header[0] != format_byte(cipher) {
        return Err(Rejection::OtherFormat);
    }
    let key_id = read_key_id(header).ok_or(Rejection::Malformed)?;
    let sealer = sealer_for(key_id).ok_or(Rejection::UnknownKey(key_id))?;
    let (ciphertext, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
    with_associated_data(header, cookie_name, |data| {
        sealer.open(nonce, data, ciphertext, tag)
    })
    .map_err(|_| Rejection::Unauthentic)?;
    serde_json::from_slice(ciphertext).map_err(|_| Rejection::NotARecord)
}

/// The key id of a cookie value that [`open`] accepted, read from its first
/// characters without decoding the rest.
pub(crate) fn key_id_of(value: &str) -> Option<KeyId> {
    // Eight base64 characters decode to six bytes, which cover the header.
    let start = value.get(..8)?;
    let mut bytes = [0; 6];
    let len = URL_SAFE_NO_PAD.decode_slice(start, &mut bytes).ok()?;
    read_key_id(bytes.get(..len)?.get(..HEADER_LEN)?)
}

fn read_key_id(header: &[u8]) -> Option<KeyId> {
    Some(KeyId::from_bytes(
        header.get(1..HEADER_LEN)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_values_on_both_sides_of_the_stack_buffer() {
        for cipher in Cipher::ALL {
            let key = crate::Key::generate();
            let sealer = Sealer::new(cipher, &key);
            let mut decoded_lens = Vec::new();
            for blob_len in STACK_RAW_LEN - 120..STACK_RAW_LEN + 20 {
                let mut record = Record::new(std::time::SystemTime::UNIX_EPOCH);
                record.data.insert("b".into(), "x".repeat(blob_len).into());
                let value = seal(cipher, key.id(), &sealer, "session", &record).unwrap();
                decoded_lens.push(base64::decoded_len_estimate(value.len()));
                let opened = open(cipher, |_| Some(&sealer), "session", &value);
                assert_eq!(opened, Ok(record), "{cipher} {blob_len}");
            }
            assert!(decoded_lens.iter().any(|len| *len <= STACK_RAW_LEN));
            assert!(decoded_lens.iter().any(|len| *len > STACK_RAW_LEN));
        }
    }

    #[test]
    fn sealed_len_matches_base64() {
        for cipher in Cipher::ALL {
            for len in 0..200 {
                let encoded = URL_SAFE_NO_PAD.encode(vec![0; len + cipher.overhead()]);
                assert_eq!(cipher.sealed_len(len), encoded.len(), "{cipher} {len}");
            }
        }
    }

    #[test]
    fn max_plaintext_len_is_the_largest_that_fits() {
        for cipher in Cipher::ALL {
            for max_value_len in 60..400 {
                let max = cipher.max_plaintext_len(max_value_len);
                assert!(
                    cipher.sealed_len(max) <= max_value_len,
                    "{cipher} {max_value_len}"
                );
                assert!(
                    cipher.sealed_len(max + 1) > max_value_len,
                    "{cipher} {max_value_len}"
                );
            }
            assert_eq!(cipher.max_plaintext_len(10), 0);
        }
    }

    #[test]
    fn names_longer_than_the_inline_associated_data_still_bind() {
        let key = crate::Key::generate();
        let record = Record::new(std::time::SystemTime::UNIX_EPOCH);
        for cipher in Cipher::ALL {
            let sealer = Sealer::new(cipher, &key);
            for len in [1, 64 - HEADER_LEN, 64 - HEADER_LEN + 1, 300] {
                let name = "n".repeat(len);
                let value = seal(cipher, key.id(), &sealer, &name, &record).unwrap();
                let opened = open(cipher, |_| Some(&sealer), &name, &value);
                assert_eq!(opened, Ok(record.clone()), "{cipher} {len}");
                let other = format!("{name}x");
                let opened = open(cipher, |_| Some(&sealer), &other, &value);
                assert_eq!(opened, Err(Rejection::Unauthentic), "{cipher} {len}");
            }
        }
    }

    #[test]
    fn the_format_bytes_differ() {
        assert_ne!(
            format_byte(Cipher::XChaCha20Poly1305),
            format_byte(Cipher::Aes256Gcm)
        );
    }
}
