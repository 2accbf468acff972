//! Property tests of the encrypted cookie decoder (issue 7): arbitrary
//! input never panics and never opens, no change to an issued cookie
//! opens, a cookie opens only under the key ring and the cookie name it was
//! sealed for, and any record round-trips while it fits in a cookie. The
//! cache of opened cookies changes none of that: a store with one answers
//! every load as a store without one does.

use std::sync::Arc;

use proptest::prelude::*;
use session_conformance::arbitrary;
use session_core::from_unix_millis;
use session_core::{Create, Record, SessionCookie, SessionStore};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};

/// No cookie value longer than this is ever opened: no cookie over 4096
/// bytes is sent.
const MAX_VALUE_LEN: usize = 4096;

fn store(cipher: Cipher, key: &Key) -> EncryptedCookieStore {
    EncryptedCookieStore::new(KeyRing::builder(key.clone()).build().unwrap()).with_cipher(cipher)
}

fn cipher() -> impl Strategy<Value = Cipher> {
    prop_oneof![Just(Cipher::XChaCha20Poly1305), Just(Cipher::Aes256Gcm)]
}

/// Runs `future` to completion: the store's methods are async but do no I/O.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn seal(store: &EncryptedCookieStore, cookie_name: &str, record: &Record) -> String {
    let record = Arc::new(record.clone());
    block_on(store.create(Create::new(cookie_name, &record, record.created))).unwrap()
}

fn open(store: &EncryptedCookieStore, cookie_name: &str, value: &str) -> Option<Record> {
    block_on(store.load(SessionCookie::new(cookie_name, value)))
        .expect("a bad cookie is not an error")
        .map(Arc::unwrap_or_clone)
}

/// A change to a cookie value: what an attacker can do to one they hold.
#[derive(Clone, Debug)]
enum Tamper {
    /// Replace the character at an index with another base64url character.
    Replace(prop::sample::Index, char),
    /// Cut the value at an index.
    Truncate(prop::sample::Index),
    /// Insert text at an index.
    Insert(prop::sample::Index, String),
    /// Remove the character at an index.
    Remove(prop::sample::Index),
}

impl Tamper {
    fn apply(&self, value: &str) -> String {
        let mut chars: Vec<char> = value.chars().collect();
        match self {
            Tamper::Replace(at, c) => {
                let at = at.index(chars.len());
                chars[at] = *c;
            }
            Tamper::Truncate(at) => chars.truncate(at.index(chars.len())),
            Tamper::Insert(at, text) => {
                let at = at.index(chars.len() + 1);
                chars.splice(at..at, text.chars());
            }
            Tamper::Remove(at) => {
                chars.remove(at.index(chars.len()));
            }
        }
        chars.into_iter().collect()
    }
}

fn tamper() -> impl Strategy<Value = Tamper> {
    let base64_char = proptest::sample::select(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        (any::<prop::sample::Index>(), base64_char).prop_map(|(i, c)| Tamper::Replace(i, c)),
        any::<prop::sample::Index>().prop_map(Tamper::Truncate),
        (any::<prop::sample::Index>(), arbitrary::cookie_value(8))
            .prop_map(|(i, t)| Tamper::Insert(i, t)),
        any::<prop::sample::Index>().prop_map(Tamper::Remove),
    ]
}

proptest! {
    #[test]
    fn arbitrary_values_never_open(
        cipher in cipher(),
        value in arbitrary::cookie_value(400),
    ) {
        let store = store(cipher, &Key::generate());
        prop_assert_eq!(open(&store, "session", &value), None);
        // Reading the key id for a re-issue must not panic either.
        let _ = store.needs_reissue(SessionCookie::new("session", &value));
    }

    #[test]
    fn no_change_to_an_issued_cookie_opens(
        cipher in cipher(),
        data in arbitrary::session_data(),
        tamper in tamper(),
    ) {
        let store = store(cipher, &Key::generate());
        let mut record = Record::new(from_unix_millis(1_700_000_000_000).unwrap());
        record.data = data;
        let value = seal(&store, "session", &record);
        let tampered = tamper.apply(&value);
        prop_assume!(tampered != value);
        prop_assert_eq!(open(&store, "session", &tampered), None);
    }

    #[test]
    fn a_cookie_opens_only_under_its_keys_and_its_name(
        cipher in cipher(),
        other_cipher in cipher(),
        data in arbitrary::session_data(),
        other_name in "[a-z]{1,8}",
    ) {
        let key = Key::generate();
        let issuing = store(cipher, &key);
        let mut record = Record::new(from_unix_millis(1_700_000_000_000).unwrap());
        record.data = data;
        let value = seal(&issuing, "session", &record);
        // Another deployment: another key, same name and cipher.
        let other_deployment = store(cipher, &Key::generate());
        prop_assert_eq!(open(&other_deployment, "session", &value), None);
        // The same key under the other cipher opens nothing.
        if other_cipher != cipher {
            prop_assert_eq!(open(&store(other_cipher, &key), "session", &value), None);
        }
        // Moved to another cookie name, it does not open either.
        prop_assume!(other_name != "session");
        prop_assert_eq!(open(&issuing, &other_name, &value), None);
    }

    #[test]
    fn records_round_trip_while_they_fit_in_a_cookie(
        cipher in cipher(),
        record in arbitrary::record(),
    ) {
        let store = store(cipher, &Key::generate());
        let value = seal(&store, "session", &record);
        let opened = open(&store, "session", &value);
        if value.len() <= MAX_VALUE_LEN {
            prop_assert_eq!(opened, Some(record));
        } else {
            prop_assert_eq!(opened, None);
        }
    }

    #[test]
    fn the_cache_answers_every_load_as_opening_the_cookie_would(
        cipher in cipher(),
        records in prop::collection::vec(arbitrary::record(), 1..4),
        tampers in prop::collection::vec(tamper(), 4),
        other_name in "[a-z]{1,8}",
    ) {
        let key = Key::generate();
        let cached = store(cipher, &key);
        let uncached = store(cipher, &key).with_cache_size(0);
        let mut values: Vec<String> = records.iter().map(|r| seal(&cached, "session", r)).collect();
        let tampered: Vec<String> = tampers.iter().map(|t| t.apply(&values[0])).collect();
        values.extend(tampered);
        // Each value twice: the first load may fill the cache, the second
        // may be served from it.
        for value in values.iter().chain(&values) {
            for name in ["session", other_name.as_str()] {
                prop_assert_eq!(open(&cached, name, value), open(&uncached, name, value));
            }
        }
    }
}
