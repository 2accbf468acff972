//! The AEAD ciphers a store can seal cookies with.

use std::fmt;
use std::str::FromStr;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{self, AeadInOut, KeyInit};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::{ConfigError, Key};

/// The authenticated cipher that seals cookies.
///
/// Both take a 256-bit key and a fresh random nonce for every cookie, and
/// add a 16-byte tag that detects any change to the cookie.
///
/// | cipher | nonce | safe number of cookies per key |
/// |---|---|---|
/// | [`XChaCha20Poly1305`](Cipher::XChaCha20Poly1305) (default) | 192 bits | practically unlimited |
/// | [`Aes256Gcm`](Cipher::Aes256Gcm) | 96 bits | about 2<sup>32</sup> |
///
/// AES-GCM's 96-bit random nonces make a repeated nonce likely enough after
/// about 2<sup>32</sup> cookies sealed under one key (NIST SP 800-38D's bound
/// for random nonces), and a repeated nonce lets an attacker forge cookies.
/// An application sealing a million cookies a day stays far below that for
/// ten years, but one that seals many more should rotate its key well before
/// (see the crate docs), or keep the default XChaCha20-Poly1305, whose
/// 192-bit nonces never repeat in practice. AES-256-GCM is there for
/// platforms that require AES, and is fast on CPUs with AES instructions.
///
/// Parses from its name:
///
/// ```
/// use session_encrypted_cookie::Cipher;
///
/// assert_eq!("aes256gcm".parse::<Cipher>()?, Cipher::Aes256Gcm);
/// assert_eq!(Cipher::default().to_string(), "xchacha20poly1305");
/// assert!("rot13".parse::<Cipher>().is_err());
/// # Ok::<(), session_encrypted_cookie::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cipher {
    /// XChaCha20-Poly1305 with a random 192-bit nonce. The default.
    #[default]
    XChaCha20Poly1305,
    /// AES-256-GCM with a random 96-bit nonce: at most about 2<sup>32</sup>
    /// cookies per key.
    Aes256Gcm,
}

impl Cipher {
    /// Every cipher, the default first.
    pub const ALL: [Cipher; 2] = [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm];

    /// The name it parses from: `xchacha20poly1305` or `aes256gcm`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Cipher::XChaCha20Poly1305 => "xchacha20poly1305",
            Cipher::Aes256Gcm => "aes256gcm",
        }
    }

    /// The nonce length in bytes.
    pub(crate) const fn nonce_len(self) -> usize {
        match self {
            Cipher::XChaCha20Poly1305 => 24,
            Cipher::Aes256Gcm => 12,
        }
    }

    /// The HKDF purpose under which this cipher's key is derived from a
    /// [`Key`].
    const fn key_info(self) -> &'static [u8] {
        match self {
            Cipher::XChaCha20Poly1305 => b"aead key v1 xchacha20poly1305",
            Cipher::Aes256Gcm => b"aead key v1 aes256gcm",
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cipher {
    type Err = ConfigError;

    /// Parses `xchacha20poly1305` or `aes256gcm`, in any letter case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Cipher::ALL
            .into_iter()
            .find(|cipher| cipher.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ConfigError::UnknownCipher {
                name: name.to_owned(),
            })
    }
}

/// The length of the authentication tag, the same for both ciphers.
pub(crate) const TAG_LEN: usize = 16;

/// One key ready to seal and open with one cipher.
#[derive(Clone)]
pub(crate) enum Sealer {
    /// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), computed as HChaCha20
    /// (RustCrypto's `chacha20`) for the subkey, then ring's IETF
    /// ChaCha20-Poly1305 under that subkey with the nonce's last 8 bytes:
    /// byte for byte what `chacha20poly1305::XChaCha20Poly1305` produces (a
    /// test checks it), at a quarter of the cost for a small cookie. The
    /// RustCrypto crate picks its AVX2 backends at run time, and without
    /// AVX2 enabled at compile time their intrinsics are not inlined: every
    /// vector operation became a function call, and a 100-byte cookie took
    /// 1.9 µs to open instead of 0.45 µs.
    XChaCha20Poly1305(XChaCha),
    // AES keeps its expanded key schedule and GHASH tables: over 1 KiB.
    Aes256Gcm(Box<Aes256Gcm>),
}

/// A nonce or tag of the wrong length, or a tag that does not match.
#[derive(Debug)]
pub(crate) struct Unauthentic;

impl Sealer {
    /// `key`'s sealer for `cipher`, under a key derived for that cipher alone.
    pub(crate) fn new(cipher: Cipher, key: &Key) -> Self {
        let derived = key.derive::<{ Key::LEN }>(cipher.key_info());
        // Borrowed, not copied: the derived bytes live only in `Zeroizing`.
        let derived: &aead::Key<Aes256Gcm> = (&*derived).into();
        match cipher {
            Cipher::XChaCha20Poly1305 => Sealer::XChaCha20Poly1305(XChaCha {
                key: Zeroizing::new((*derived).into()),
            }),
            Cipher::Aes256Gcm => Sealer::Aes256Gcm(Box::new(Aes256Gcm::new(derived))),
        }
    }

    /// Encrypts `buffer` in place and returns the tag.
    pub(crate) fn seal(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Unauthentic> {
        fn seal_with<A: AeadInOut>(
            aead: &A,
            nonce: &[u8],
            associated_data: &[u8],
            buffer: &mut [u8],
        ) -> Result<[u8; TAG_LEN], Unauthentic> {
            let nonce = aead::Nonce::<A>::try_from(nonce).map_err(|_| Unauthentic)?;
            let tag = aead
                .encrypt_inout_detached(&nonce, associated_data, buffer.into())
                .map_err(|_| Unauthentic)?;
            tag.as_slice().try_into().map_err(|_| Unauthentic)
        }
        match self {
            Sealer::XChaCha20Poly1305(xchacha) => xchacha.seal(nonce, associated_data, buffer),
            Sealer::Aes256Gcm(aead) => seal_with(&**aead, nonce, associated_data, buffer),
        }
    }

    /// Checks `tag` and decrypts `buffer` in place.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        fn open_with<A: AeadInOut>(
            aead: &A,
            nonce: &[u8],
            associated_data: &[u8],
            buffer: &mut [u8],
            tag: &[u8],
        ) -> Result<(), Unauthentic> {
            let nonce = aead::Nonce::<A>::try_from(nonce).map_err(|_| Unauthentic)?;
            let tag = aead::Tag::<A>::try_from(tag).map_err(|_| Unauthentic)?;
            aead.decrypt_inout_detached(&nonce, associated_data, buffer.into(), &tag)
                .map_err(|_| Unauthentic)
        }
        match self {
            Sealer::XChaCha20Poly1305(xchacha) => xchacha.open(nonce, associated_data, buffer, tag),
            Sealer::Aes256Gcm(aead) => open_with(&**aead, nonce, associated_data, buffer, tag),
        }
    }
}

/// An XChaCha20-Poly1305 key (see [`Sealer::XChaCha20Poly1305`]).
#[derive(Clone)]
pub(crate) struct XChaCha {
    key: Zeroizing<[u8; Key::LEN]>,
}

impl XChaCha {
    /// The nonce length: 16 bytes for HChaCha20, then 8 for ChaCha20.
    const NONCE_LEN: usize = 24;

    /// The ChaCha20-Poly1305 key and 96-bit nonce for a 192-bit `nonce`.
    fn subkey(&self, nonce: &[u8]) -> Result<(LessSafeKey, Nonce), Unauthentic> {
        if nonce.len() != Self::NONCE_LEN {
            return Err(Unauthentic);
        }
        let (head, tail) = nonce.split_at(16);
        let head: &[u8; 16] = head.try_into().map_err(|_| Unauthentic)?;
        let key: &[u8; Key::LEN] = &self.key;
        let mut subkey = chacha20::hchacha::<chacha20::R20>(key.into(), head.into());
        let prepared = UnboundKey::new(&CHACHA20_POLY1305, &subkey).map(LessSafeKey::new);
        // ring keeps its own copy of the subkey, which it does not zeroize.
        subkey.as_mut_slice().zeroize();
        let prepared = prepared.map_err(|_| Unauthentic)?;
        let mut ietf_nonce = [0; 12];
        ietf_nonce[4..].copy_from_slice(tail);
        Ok((prepared, Nonce::assume_unique_for_key(ietf_nonce)))
    }

    fn seal(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Unauthentic> {
        let (key, nonce) = self.subkey(nonce)?;
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(associated_data), buffer)
            .map_err(|_| Unauthentic)?;
        tag.as_ref().try_into().map_err(|_| Unauthentic)
    }

    fn open(
        &self,
        nonce: &[u8],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        let (key, nonce) = self.subkey(nonce)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Unauthentic)?;
        key.open_in_place_separate_tag(nonce, Aad::from(associated_data), tag.into(), buffer, 0..)
            .map(|_| ())
            .map_err(|_| Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_names_and_explains_unknown_ones() {
        for cipher in Cipher::ALL {
            assert_eq!(cipher.name().parse::<Cipher>().unwrap(), cipher);
            assert_eq!(
                cipher.to_string().to_uppercase().parse::<Cipher>().unwrap(),
                cipher
            );
        }
        let err = "aes-128-cbc".parse::<Cipher>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown cipher `aes-128-cbc`: expected `xchacha20poly1305` or `aes256gcm`"
        );
        assert_eq!(Cipher::default(), Cipher::XChaCha20Poly1305);
    }

    #[test]
    fn each_cipher_gets_its_own_key_from_one_configured_key() {
        let key = Key::generate();
        let nonce = [0; 12];
        let mut sealed = *b"same plaintext";
        let tag = Sealer::new(Cipher::Aes256Gcm, &key)
            .seal(&nonce, b"", &mut sealed)
            .unwrap();
        let mut opened = sealed;
        Sealer::new(Cipher::Aes256Gcm, &key)
            .open(&nonce, b"", &mut opened, &tag)
            .unwrap();
        assert_eq!(&opened, b"same plaintext");
        // The raw key, used directly, does not open it: the cipher key is
        // derived.
        let raw = Aes256Gcm::new(key.bytes_for_test().into());
        let mut tried = sealed;
        let tag = aead::Tag::<Aes256Gcm>::from(tag);
        let nonce = aead::Nonce::<Aes256Gcm>::from(nonce);
        assert!(
            raw.decrypt_inout_detached(&nonce, b"", (&mut tried[..]).into(), &tag)
                .is_err()
        );
    }

    #[test]
    fn wrong_nonce_or_tag_lengths_are_refused_not_panics() {
        let sealer = Sealer::new(Cipher::XChaCha20Poly1305, &Key::generate());
        let mut buffer = [1, 2, 3];
        assert!(sealer.seal(&[0; 12], b"", &mut buffer).is_err());
        assert!(sealer.open(&[0; 24], b"", &mut buffer, &[0; 15]).is_err());
        assert!(sealer.open(&[0; 23], b"", &mut buffer, &[0; 16]).is_err());
    }

    #[test]
    fn xchacha_matches_the_rustcrypto_implementation() {
        use chacha20poly1305::XChaCha20Poly1305;
        use chacha20poly1305::aead::{AeadInOut as _, KeyInit as _};

        let key = Key::generate();
        let sealer = Sealer::new(Cipher::XChaCha20Poly1305, &key);
        let derived = key.derive::<{ Key::LEN }>(Cipher::XChaCha20Poly1305.key_info());
        let reference = XChaCha20Poly1305::new((&*derived).into());
        for len in [0, 1, 63, 64, 65, 100, 1000, 2991] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let nonce: [u8; 24] = std::array::from_fn(|i| (i * 13 + len) as u8);
            let mut ours = plaintext.clone();
            let tag = sealer.seal(&nonce, b"ad", &mut ours).unwrap();
            let mut theirs = plaintext.clone();
            let their_tag = reference
                .encrypt_inout_detached(&nonce.into(), b"ad", theirs.as_mut_slice().into())
                .unwrap();
            assert_eq!(ours, theirs, "{len}");
            assert_eq!(tag.as_slice(), their_tag.as_slice(), "{len}");
            sealer.open(&nonce, b"ad", &mut ours, &tag).unwrap();
            assert_eq!(ours, plaintext);
            let mut forged = theirs.clone();
            assert!(sealer.open(&nonce, b"ad!", &mut forged, &tag).is_err());
        }
    }
}
