//! Sessions kept in an encrypted cookie, for [`session_core`].
//!
//! [`EncryptedCookieStore`] puts the whole session record in the cookie,
//! sealed with an AEAD cipher: the client can neither read nor change it,
//! and the server needs to keep nothing (it caches recent records, within a
//! memory budget, only to skip decrypting the same cookie twice). It is the
//! store most applications start with; move to a server-side store
//! (`session-redis`) when sessions outgrow a cookie or must be revocable.
//!
//! # Example
//!
//! ```
//! use session_core::{SessionConfig, SessionManager};
//! use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // In production the key comes from configuration: `Key::from_base64(..)`
//! // of a key printed once with `Key::generate().to_base64()`.
//! let ring = KeyRing::builder(Key::generate()).build()?;
//! let manager = SessionManager::new(EncryptedCookieStore::new(ring), SessionConfig::default());
//!
//! // First request: no cookie; the handler writes to the session.
//! let request = manager.request();
//! request.session([]).await?.insert("user", &"ada")?;
//! let set_cookie = request.save_changes().await?;
//! let cookie = set_cookie[0].split(';').next().unwrap(); // `session=<sealed record>`
//! assert!(!cookie.contains("ada"));
//!
//! // Next request: the browser sends the cookie back.
//! let request = manager.request();
//! let user = request.session([cookie.as_bytes()]).await?.get::<String>("user")?;
//! assert_eq!(user.as_deref(), Some("ada"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! With the feature `aiohttp`, the [`aiohttp`] module reads and writes
//! aiohttp_session's `EncryptedCookieStorage` (Fernet) and
//! `NaClCookieStorage` (SecretBox) cookies instead, so that a Python
//! aiohttp service and a Rust service given the same secret share sessions.
//!
//! # Format
//!
//! A cookie value is `base64url(format | key id | nonce | ciphertext | tag)`,
//! without padding:
//!
//! | part | bytes | content |
//! |---|---|---|
//! | format | 1 | `0x11`: version 1, XChaCha20-Poly1305; `0x12`: version 1, AES-256-GCM |
//! | key id | 4 | the [`KeyId`] of the key that sealed it |
//! | nonce | 24 or 12 | random, from the operating system, fresh for every cookie |
//! | ciphertext | as the plaintext | the [`Record`](session_core::Record)'s compact JSON |
//! | tag | 16 | the AEAD tag |
//!
//! The associated data is the format byte, the key id and the cookie's name,
//! so a value cannot be replayed under another cookie name, nor opened as
//! the other cipher or under another key. Anything that does not open
//! (changed, truncated, forged, under an unknown key, another cipher or
//! another name) gives a new, empty session, never an error.
//!
//! The record inside holds the creation time and the deadline, and the core
//! enforces the idle and absolute timeouts from them on every load, so a
//! client that ignores `Max-Age` and replays an old cookie still gets a new
//! session. What a cookie store cannot do is revoke a cookie: after
//! [`invalidate`](session_core::Session::invalidate) a client that kept a
//! copy can still use it until its deadline, so keep the timeouts short, or
//! use a server-side store where logout must be final.
//!
//! # Ciphers
//!
//! [`Cipher::XChaCha20Poly1305`] (the default) takes a random 192-bit nonce,
//! which never repeats in practice. [`Cipher::Aes256Gcm`] takes a random
//! 96-bit nonce, and **a key must seal at most about 2<sup>32</sup> cookies**
//! before the chance of a repeated nonce (which would let an attacker forge
//! cookies) stops being negligible: count every response that sets the
//! cookie, and rotate the key well before that. Both ciphers use keys
//! derived from the configured [`Key`] with HKDF-SHA256, one per cipher.
//!
//! # Keys and rotation
//!
//! A [`Key`] is 32 random bytes: [`Key::generate`] makes one and
//! [`Key::to_base64`] prints it for the configuration, where
//! [`Key::from_base64`] reads it back. A [`KeyRing`] holds the primary key,
//! which seals every new cookie, and older keys that still open theirs. Each
//! cookie names its key by a [`KeyId`] derived from the key, so opening a
//! cookie tries exactly one key.
//!
//! To rotate a key without logging anyone out:
//!
//! 1. generate a new key and deploy it as the primary, with the current key
//!    as an old key (`KeyRing::builder(new).old_key(current)`);
//! 2. every response to a client whose cookie was sealed under the old key
//!    carries a cookie re-sealed under the new one, even when the session
//!    did not change (through
//!    [`SessionStore::needs_reissue`](session_core::SessionStore::needs_reissue));
//! 3. once the longest session lifetime (the absolute timeout) has passed,
//!    every live cookie is under the new key: remove the old key. Cookies
//!    still under it then give new sessions.
//!
//! If a key leaked, skip the wait: drop it from the ring at once (its users
//! start new sessions).
//!
//! # Size
//!
//! Browsers drop cookies over 4096 bytes (name, value and attributes), so a
//! save whose cookie would be larger fails with
//! [`session_core::Error::CookieTooLarge`], which names the size, rather than
//! losing the session silently. The plaintext is the record's JSON: the
//! session data plus 44 bytes around it with the timestamps
//! (`{"c":1764072000000,"e":1764158400000,"d":{...}}`), and the per-session
//! expiry if one is set. With a cookie named `session` and the default
//! attributes (`; HttpOnly; SameSite=Lax; Secure; Path=/`), the value may be
//! 4048 characters long, which holds:
//!
//! | cipher | overhead | record JSON that fits |
//! |---|---|---|
//! | XChaCha20-Poly1305 | 45 bytes | 2991 bytes |
//! | AES-256-GCM | 33 bytes | 3003 bytes |
//!
//! Each byte of cookie name, path or domain, and a `; Max-Age=...` for a
//! persistent cookie (up to 18 bytes) leave ¾ of a byte less.
//! [`Cipher::max_plaintext_len`] computes the budget for another value length
//! and [`Cipher::sealed_len`] the value length of a given plaintext. Large
//! sessions belong in a server-side store.
//!
//! # Cache
//!
//! A browser sends the same cookie on every request until the session
//! changes, and opening it (base64, the AEAD, the record's JSON) is most of
//! what a read costs. The store therefore remembers the record of every
//! cookie it seals (the client's next request brings it back) or opens, and
//! serves a cookie from that cache when it is one it sealed or opened under
//! the same cookie name. The cache keeps a 128-bit digest of each cookie
//! under a secret key of its own (SipHash-1-3), not the cookie, and a
//! cookie matches when its digest does: another cookie matches with a
//! chance of 2⁻¹²⁸ per cached one, which no knowledge of cookies raises.
//! A match gives exactly the record opening the cookie again would give, so
//! nothing above changes: tampered, forged, moved or unknown-key cookies
//! never match, and the timeouts are checked on the record on every load.
//! A hit hands out the cached record itself, which the session shares
//! until the request writes to it (a write goes to a copy of its own), so a
//! read copies nothing. The cache is per store (per process), bounded by
//! [`EncryptedCookieStore::with_cache_size`] (8 MiB by default, as the
//! allocator counts it; `0` turns it off). When it is full it keeps the
//! cookies sent most often, so that a part of a rotation over more sessions
//! than it holds still hits, and a burst of cookies seen once does not push
//! out those in use; servers behind a load balancer each keep their own,
//! and need no coordination.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "aiohttp")]
#[cfg_attr(docsrs, doc(cfg(feature = "aiohttp")))]
pub mod aiohttp;
mod cache;
mod cipher;
mod error;
mod format;
mod key;
mod store;

pub use cipher::Cipher;
pub use error::ConfigError;
pub use key::{Key, KeyId, KeyRing, KeyRingBuilder};
pub use store::EncryptedCookieStore;
