//! The cost of sealing and opening session cookies, beside the bare AEAD
//! encryption of the same number of bytes, so that the overhead of the
//! record's JSON, the framing and base64 shows as a ratio; the cost of a
//! load served by the store's cache of opened cookies; and of loads that
//! cycle over 5,000 distinct cookies with the default cache (`open_cycle`),
//! which, for the larger records, hold more than it can keep.
//!
//! `cargo bench -p session-encrypted-cookie`; results in BENCHMARKS.md.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use serde_json::json;
use session_core::{Create, Record, SessionCookie, SessionStore};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};

const COOKIE_NAME: &str = "session";

/// Record JSON sizes: a login, a small cart, and close to the most a cookie
/// holds (2991 bytes with XChaCha20-Poly1305).
const SIZES: [usize; 3] = [100, 1000, 2900];

/// The store's futures never wait, so one poll completes them.
fn ready<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the encrypted cookie store never waits"),
    }
}

/// A session record whose compact JSON is exactly `size` bytes.
fn record(size: usize) -> Record {
    let created = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_072_000_000);
    let mut record = Record::new(created);
    record.expires_at = Some(created + Duration::from_secs(86_400));
    record.data.insert("user".into(), json!("ada"));
    record.data.insert("pad".into(), json!(""));
    let base = serde_json::to_vec(&record).map_or(0, |json| json.len());
    let pad = "x".repeat(size.saturating_sub(base));
    record.data.insert("pad".into(), json!(pad));
    let len = serde_json::to_vec(&record).map_or(0, |json| json.len());
    assert_eq!(len, size, "the benchmark record has the intended size");
    record
}

fn seal(store: &EncryptedCookieStore, record: &Arc<Record>) -> String {
    let create = Create::new(COOKIE_NAME, record, record.created);
    match ready(store.create(create)) {
        Ok(value) => value,
        Err(error) => panic!("sealing failed: {error}"),
    }
}

/// The bare AEAD, with the same key size, nonce size and associated data
/// length as a cookie.
enum Bare {
    XChaCha20Poly1305(XChaCha20Poly1305),
    Aes256Gcm(Box<Aes256Gcm>),
}

impl Bare {
    fn new(cipher: Cipher) -> Self {
        let key = [7; 32];
        match cipher {
            Cipher::Aes256Gcm => Bare::Aes256Gcm(Box::new(Aes256Gcm::new(&key.into()))),
            _ => Bare::XChaCha20Poly1305(XChaCha20Poly1305::new(&key.into())),
        }
    }

    fn encrypt(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let payload = Payload { msg, aad };
        let sealed = match self {
            Bare::XChaCha20Poly1305(aead) => aead.encrypt(&[1; 24].into(), payload),
            Bare::Aes256Gcm(aead) => aead.encrypt(&[1; 12].into(), payload),
        };
        sealed.unwrap_or_else(|_| panic!("encrypt failed"))
    }

    fn decrypt(&self, msg: &[u8], aad: &[u8]) -> Vec<u8> {
        let payload = Payload { msg, aad };
        let opened = match self {
            Bare::XChaCha20Poly1305(aead) => aead.decrypt(&[1; 24].into(), payload),
            Bare::Aes256Gcm(aead) => aead.decrypt(&[1; 12].into(), payload),
        };
        opened.unwrap_or_else(|_| panic!("decrypt failed"))
    }
}

fn codec(c: &mut Criterion) {
    let ring = KeyRing::builder(Key::generate())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    for cipher in Cipher::ALL {
        // Without its cache, so that every load opens its cookie.
        let store = EncryptedCookieStore::new(ring.clone())
            .with_cipher(cipher)
            .with_cache_size(0);
        let cached = EncryptedCookieStore::new(ring.clone()).with_cipher(cipher);
        let bare = Bare::new(cipher);
        // Format byte, key id and cookie name, as in a cookie.
        let aad = format!("\x11abcd{COOKIE_NAME}").into_bytes();
        for size in SIZES {
            let record = Arc::new(record(size));
            let cookie = seal(&store, &record);
            let plaintext = serde_json::to_vec(&*record).unwrap_or_default();
            let ciphertext = bare.encrypt(&plaintext, &aad);

            let mut group = c.benchmark_group(format!("{cipher}/{size}B"));
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::from_parameter("seal"), |b| {
                b.iter(|| seal(&store, black_box(&record)));
            });
            group.bench_function(BenchmarkId::from_parameter("bare_encrypt"), |b| {
                b.iter(|| bare.encrypt(black_box(&plaintext), &aad));
            });
            group.bench_function(BenchmarkId::from_parameter("open"), |b| {
                b.iter(|| {
                    let loaded =
                        ready(store.load(SessionCookie::new(COOKIE_NAME, black_box(&cookie))));
                    assert!(matches!(loaded, Ok(Some(_))));
                    loaded
                });
            });
            group.bench_function(BenchmarkId::from_parameter("bare_decrypt"), |b| {
                b.iter(|| bare.decrypt(black_box(&ciphertext), &aad));
            });
            // A cookie this store sealed, as a client sends it back.
            let cached_cookie = seal(&cached, &record);
            group.bench_function(BenchmarkId::from_parameter("open_cached"), |b| {
                b.iter(|| {
                    let loaded = ready(
                        cached.load(SessionCookie::new(COOKIE_NAME, black_box(&cached_cookie))),
                    );
                    assert!(matches!(loaded, Ok(Some(_))));
                    loaded
                });
            });
            // Loads cycling over distinct cookies, more than the default
            // cache holds of the larger sizes: what a server with many
            // active clients sees. The cookies are sealed by another store
            // with the same keys, so that this one's cache starts empty.
            let cycled = EncryptedCookieStore::new(ring.clone()).with_cipher(cipher);
            let cookies: Vec<String> = (0..CYCLE).map(|_| seal(&store, &record)).collect();
            let mut next = 0;
            group.bench_function(BenchmarkId::new("open_cycle", CYCLE), |b| {
                b.iter(|| {
                    let cookie = &cookies[next];
                    next = (next + 1) % CYCLE;
                    let loaded = ready(cycled.load(SessionCookie::new(COOKIE_NAME, cookie)));
                    assert!(matches!(loaded, Ok(Some(_))));
                    loaded
                });
            });
            group.finish();
        }
    }
}

/// Distinct cookies in the `open_cycle` benchmarks.
const CYCLE: usize = 5_000;

mod harness {
    #![allow(
        missing_docs,
        reason = "criterion_group! defines an undocumented function"
    )]
    criterion::criterion_group!(benches, super::codec);
}

criterion_main!(harness::benches);
