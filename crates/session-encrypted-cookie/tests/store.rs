//! The encrypted cookie store through the real request lifecycle.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use session_conformance::{self as conformance, SetCookie, StoreKind};
use session_core::{
    Clock, Create, Error, Expiry, ManualClock, Record, Rolling, Session, SessionConfig,
    SessionCookie, SessionManager, SessionStore,
};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};

/// `; HttpOnly; SameSite=Lax; Secure; Path=/`: the default attributes.
const DEFAULT_ATTRIBUTES_LEN: usize = 40;

fn ring(primary: &Key, old: &[&Key]) -> KeyRing {
    old.iter()
        .fold(KeyRing::builder(primary.clone()), |ring, key| {
            ring.old_key((*key).clone())
        })
        .build()
        .unwrap()
}

fn store(cipher: Cipher, primary: &Key, old: &[&Key]) -> Arc<dyn SessionStore> {
    Arc::new(EncryptedCookieStore::new(ring(primary, old)).with_cipher(cipher))
}

/// A manager on `store` whose clock the test moves.
struct App {
    manager: SessionManager,
    clock: ManualClock,
}

impl App {
    fn new(store: Arc<dyn SessionStore>, config: SessionConfig) -> Self {
        Self::with_clock(store, config, ManualClock::starting_now())
    }

    fn with_clock(store: Arc<dyn SessionStore>, config: SessionConfig, clock: ManualClock) -> Self {
        let config = config.with_clock(Clock::from(clock.clone()));
        App {
            manager: SessionManager::with_shared_store(store, config),
            clock,
        }
    }

    /// A request carrying `cookie` (a `name=value` pair) that writes
    /// `key: value`; returns the `name=value` it sets.
    async fn write(&self, cookie: Option<&str>, key: &str, value: serde_json::Value) -> String {
        let request = self.manager.request();
        request
            .session(cookie.map(str::as_bytes))
            .await
            .unwrap()
            .insert(key, &value)
            .unwrap();
        let set = request.save_changes().await.unwrap();
        assert_eq!(set.len(), 1, "a write sets one cookie");
        pair(&set[0]).to_owned()
    }

    /// The session a request with this raw `Cookie` header sees.
    async fn load(&self, header: &[u8]) -> Session {
        self.manager.request().session([header]).await.unwrap()
    }

    /// Whether a request with this raw `Cookie` header gets a new, empty
    /// session.
    async fn starts_new_session(&self, header: &[u8]) -> bool {
        let session = self.load(header).await;
        session.is_new() && session.is_empty()
    }
}

/// `name=value` of a `Set-Cookie` value.
fn pair(set_cookie: &str) -> String {
    SetCookie::parse(set_cookie).pair()
}

/// The value of a `name=value` pair (or of a `Set-Cookie` value).
fn value(pair: &str) -> String {
    SetCookie::parse(pair).value().to_owned()
}

async fn load(store: &dyn SessionStore, name: &str, value: &str) -> Option<Record> {
    store
        .load(SessionCookie::new(name, value))
        .await
        .unwrap()
        .map(Arc::unwrap_or_clone)
}

fn a_record(clock: &ManualClock) -> Record {
    let mut record = Record::new(clock.now());
    record.expires_at = Some(clock.now() + Duration::from_secs(3600));
    record.data.insert("user".into(), json!("ada"));
    record
        .data
        .insert("roles".into(), json!(["reader", "writer"]));
    record
}

async fn seal(store: &dyn SessionStore, name: &str, record: &Record) -> String {
    let record = Arc::new(record.clone());
    store
        .create(Create::new(name, &record, record.created))
        .await
        .unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite_with_both_ciphers() {
    for cipher in Cipher::ALL {
        let store = EncryptedCookieStore::new(ring(&Key::generate(), &[])).with_cipher(cipher);
        let report = conformance::run(store, StoreKind::CookieAuthenticated).await;
        assert!(
            report
                .passed()
                .contains(&"tampered_cookies_start_new_sessions"),
            "{cipher}: {:?}",
            report.passed()
        );
        // Only what no cookie store can do is skipped.
        for (check, _) in report.skipped() {
            assert!(
                [
                    "concurrent_deltas_merge",
                    "data_writes_keep_concurrent_metadata",
                    "regenerate (old cookie no longer loads)",
                    "invalidate (old cookie no longer loads)",
                    "logout_beats_a_racing_write",
                    "logout_beats_a_racing_regenerate",
                    "logout_beats_a_racing_refresh",
                    "a_request_racing_a_login_keeps_the_login_cookie",
                    "expired_sessions_are_not_written",
                    "strict_mode",
                    "user_sessions",
                    "revocation_beats_a_racing_login",
                ]
                .contains(check),
                "{cipher}: unexpected skip {check}"
            );
        }
    }
}

#[tokio::test]
async fn a_record_round_trips_exactly_with_both_ciphers() {
    let clock = ManualClock::starting_now();
    let key = Key::generate();
    for cipher in Cipher::ALL {
        let store = store(cipher, &key, &[]);
        let mut record = a_record(&clock);
        record.expiry = Some(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(5))));
        let sealed = seal(&*store, "session", &record).await;
        assert!(!sealed.contains("ada") && !sealed.contains("reader"));
        assert_eq!(load(&*store, "session", &sealed).await, Some(record));

        let app = App::new(store, SessionConfig::default());
        let cookie = app.write(None, "cart", json!({"items": [1, 2, 3]})).await;
        let session = app.load(cookie.as_bytes()).await;
        assert!(!session.is_new());
        assert_eq!(session.get_value("cart"), Some(json!({"items": [1, 2, 3]})));
    }
}

#[tokio::test]
async fn the_two_ciphers_do_not_open_each_other_s_cookies() {
    let clock = ManualClock::starting_now();
    let key = Key::generate();
    let xchacha = store(Cipher::XChaCha20Poly1305, &key, &[]);
    let aes = store(Cipher::Aes256Gcm, &key, &[]);
    let record = a_record(&clock);
    let from_xchacha = seal(&*xchacha, "session", &record).await;
    let from_aes = seal(&*aes, "session", &record).await;
    assert_eq!(load(&*aes, "session", &from_xchacha).await, None);
    assert_eq!(load(&*xchacha, "session", &from_aes).await, None);
}

#[tokio::test]
async fn two_seals_of_one_record_differ() {
    let clock = ManualClock::starting_now();
    for cipher in Cipher::ALL {
        let store = store(cipher, &Key::generate(), &[]);
        let record = a_record(&clock);
        let first = seal(&*store, "session", &record).await;
        let second = seal(&*store, "session", &record).await;
        assert_ne!(first, second, "{cipher}: a fresh nonce every time");
        assert_eq!(load(&*store, "session", &first).await, Some(record.clone()));
        assert_eq!(load(&*store, "session", &second).await, Some(record));
    }
}

/// Every single-bit change and every truncation of a valid cookie, of its
/// raw bytes and of its base64 text, starts a new session and never panics.
#[tokio::test]
async fn every_bit_flip_and_truncation_gives_a_new_session() {
    for cipher in Cipher::ALL {
        let store = store(cipher, &Key::generate(), &[]);
        let app = App::new(store.clone(), SessionConfig::default());
        let cookie = app.write(None, "role", json!("user")).await;
        let sealed = value(&cookie).to_owned();
        assert!(load(&*store, "session", &sealed).await.is_some());

        let raw = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for bit in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let flipped = URL_SAFE_NO_PAD.encode(&flipped);
            assert_eq!(
                load(&*store, "session", &flipped).await,
                None,
                "{cipher}: raw bit {bit} flipped still opened"
            );
        }
        for len in 0..raw.len() {
            let truncated = URL_SAFE_NO_PAD.encode(&raw[..len]);
            assert_eq!(
                load(&*store, "session", &truncated).await,
                None,
                "{cipher}: raw bytes truncated to {len} still opened"
            );
        }

        // The text, as a browser would send it: through the cookie parser,
        // including flips that make it invalid UTF-8 or split the header.
        let text = cookie.as_bytes();
        let value_start = "session=".len();
        for bit in value_start * 8..text.len() * 8 {
            let mut flipped = text.to_vec();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                app.starts_new_session(&flipped).await,
                "{cipher}: text bit {bit} flipped still loaded"
            );
        }
        for len in value_start..text.len() {
            assert!(
                app.starts_new_session(&text[..len]).await,
                "{cipher}: text truncated to {len} still loaded"
            );
        }
        assert!(!app.starts_new_session(text).await, "the original loads");
    }
}

#[tokio::test]
async fn a_cookie_under_a_key_not_in_the_ring_gives_a_new_session() {
    let config = SessionConfig::default;
    let clock = ManualClock::starting_now();
    for cipher in Cipher::ALL {
        let ours = App::with_clock(
            store(cipher, &Key::generate(), &[]),
            config(),
            clock.clone(),
        );
        let theirs = App::with_clock(
            store(cipher, &Key::generate(), &[]),
            config(),
            clock.clone(),
        );
        let cookie = theirs.write(None, "admin", json!(true)).await;
        assert!(!theirs.starts_new_session(cookie.as_bytes()).await);
        assert!(ours.starts_new_session(cookie.as_bytes()).await, "{cipher}");
    }
}

#[tokio::test]
async fn a_cookie_moved_to_another_name_gives_a_new_session() {
    for cipher in Cipher::ALL {
        let store = store(cipher, &Key::generate(), &[]);
        let session_app = App::new(store.clone(), SessionConfig::default());
        let other_app = App::new(
            store.clone(),
            SessionConfig::default().with_cookie_name("other"),
        );
        let cookie = session_app.write(None, "user", json!("ada")).await;
        let moved = format!("other={}", value(&cookie));
        assert!(!session_app.starts_new_session(cookie.as_bytes()).await);
        assert!(
            other_app.starts_new_session(moved.as_bytes()).await,
            "{cipher}"
        );
        assert_eq!(load(&*store, "other", &value(&cookie)).await, None);
    }
}

#[tokio::test]
async fn rotation_reseals_old_cookies_under_the_primary_until_the_old_key_goes() {
    // Reads never refresh, so only the rotation can make a response set a
    // cookie here.
    let config = || SessionConfig::default().with_rolling(Rolling::Disabled);
    let clock = ManualClock::starting_now();
    let (old, new) = (Key::generate(), Key::generate());
    for cipher in Cipher::ALL {
        let before = App::with_clock(store(cipher, &old, &[]), config(), clock.clone());
        let during = App::with_clock(store(cipher, &new, &[&old]), config(), clock.clone());
        let after = App::with_clock(store(cipher, &new, &[]), config(), clock.clone());

        let old_cookie = before.write(None, "user", json!("ada")).await;
        let request = before.manager.request();
        let deadline = request
            .session([old_cookie.as_bytes()])
            .await
            .unwrap()
            .expires_at();
        assert!(
            request.save_changes().await.unwrap().is_empty(),
            "a cookie under the primary key is not resent"
        );

        clock.advance(Duration::from_secs(10));
        let request = during.manager.request();
        let session = request.session([old_cookie.as_bytes()]).await.unwrap();
        assert!(
            !session.is_new(),
            "{cipher}: the old key still opens its cookies"
        );
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some("ada")
        );
        let resealed = request.save_changes().await.unwrap();
        assert_eq!(
            resealed.len(),
            1,
            "{cipher}: an unchanged session is resealed"
        );
        let new_cookie = pair(&resealed[0]);

        // Only the new key opens the resealed cookie, with the data and the
        // deadline unchanged.
        assert!(before.starts_new_session(new_cookie.as_bytes()).await);
        let request = after.manager.request();
        let session = request.session([new_cookie.as_bytes()]).await.unwrap();
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some("ada")
        );
        assert_eq!(session.expires_at(), deadline);
        assert!(request.save_changes().await.unwrap().is_empty());

        // Once the old key leaves the ring, its cookies no longer open.
        assert!(
            after.starts_new_session(old_cookie.as_bytes()).await,
            "{cipher}: a removed key's cookie still loaded"
        );
    }
}

#[tokio::test]
async fn a_replayed_cookie_gives_the_data_it_was_sealed_with() {
    // The cache hands the same record to every request that sends the same
    // cookie: one request's writes must never show through another's.
    for cipher in Cipher::ALL {
        let app = App::new(
            store(cipher, &Key::generate(), &[]),
            SessionConfig::default(),
        );
        let first = app.write(None, "n", json!(1)).await;

        let request = app.manager.request();
        let session = request.session([first.as_bytes()]).await.unwrap();
        let replay = app.manager.request();
        let replayed = replay.session([first.as_bytes()]).await.unwrap();
        session.insert("n", &2).unwrap();
        session.insert("extra", &true).unwrap();
        assert_eq!(replayed.get::<u32>("n").unwrap(), Some(1));
        let second = pair(&request.save_changes().await.unwrap()[0]).to_owned();
        session.insert("n", &3).unwrap();

        for (cookie, n) in [(&first, 1), (&second, 2), (&first, 1)] {
            let loaded = app.load(cookie.as_bytes()).await;
            assert_eq!(loaded.get::<u32>("n").unwrap(), Some(n), "{cipher:?}");
            assert_eq!(loaded.contains_key("extra"), n == 2, "{cipher:?}");
        }
    }
}

#[tokio::test]
async fn a_cookie_replayed_after_its_idle_timeout_gives_a_new_session() {
    for cipher in Cipher::ALL {
        let app = App::new(
            store(cipher, &Key::generate(), &[]),
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(60))))
                .with_rolling(Rolling::Disabled),
        );
        let cookie = app.write(None, "user", json!("ada")).await;
        app.clock.advance(Duration::from_secs(59));
        assert!(!app.starts_new_session(cookie.as_bytes()).await);
        // The browser-session cookie carries no Max-Age: only the deadline
        // sealed inside the cookie ends it.
        app.clock.advance(Duration::from_secs(2));
        assert!(app.starts_new_session(cookie.as_bytes()).await, "{cipher}");
    }
}

#[tokio::test]
async fn a_cookie_replayed_after_its_absolute_timeout_gives_a_new_session() {
    for cipher in Cipher::ALL {
        let app = App::new(
            store(cipher, &Key::generate(), &[]),
            SessionConfig::default()
                .with_expiry(
                    Expiry::NEVER
                        .with_idle_timeout(Some(Duration::from_secs(60)))
                        .with_absolute_timeout(Some(Duration::from_secs(150))),
                )
                .with_rolling(Rolling::Disabled),
        );
        let first = app.write(None, "n", json!(0)).await;
        // Active every 50 s, each write pushing the idle deadline.
        let mut cookie = first.clone();
        for n in 1..=2 {
            app.clock.advance(Duration::from_secs(50));
            cookie = app.write(Some(&cookie), "n", json!(n)).await;
        }
        app.clock.advance(Duration::from_secs(45)); // 145 s
        assert!(!app.starts_new_session(cookie.as_bytes()).await);
        app.clock.advance(Duration::from_secs(6)); // 151 s
        assert!(app.starts_new_session(cookie.as_bytes()).await, "{cipher}");
        assert!(app.starts_new_session(first.as_bytes()).await, "{cipher}");
    }
}

/// The JSON length of the record a brand-new session holding `blob` saves,
/// under the default expiry.
fn record_json_len(clock: &ManualClock, blob: &str) -> usize {
    let now = clock.now();
    let mut record = Record::new(now);
    record.expires_at = Expiry::default().deadline(now, now);
    record.data.insert("blob".into(), json!(blob));
    serde_json::to_vec(&record).unwrap().len()
}

#[tokio::test]
async fn the_documented_budget_fits_and_one_byte_more_is_refused_with_its_size() {
    let max_value_len = 4096 - "session=".len() - DEFAULT_ATTRIBUTES_LEN;
    for cipher in Cipher::ALL {
        let app = App::new(
            store(cipher, &Key::generate(), &[]),
            SessionConfig::default(),
        );
        let budget = cipher.max_plaintext_len(max_value_len);
        let blob_len = budget - record_json_len(&app.clock, "");
        let blob = "x".repeat(blob_len);
        assert_eq!(record_json_len(&app.clock, &blob), budget);

        let request = app.manager.request();
        request
            .session([])
            .await
            .unwrap()
            .insert("blob", &blob)
            .unwrap();
        let set = request.save_changes().await.unwrap();
        assert!(set[0].len() <= 4096, "{cipher}: {}", set[0].len());
        let session = app.load(pair(&set[0]).as_bytes()).await;
        assert_eq!(session.get::<String>("blob").unwrap(), Some(blob.clone()));

        let request = app.manager.request();
        request
            .session([])
            .await
            .unwrap()
            .insert("blob", &format!("{blob}x"))
            .unwrap();
        match request.save_changes().await {
            Err(Error::CookieTooLarge { name, size, limit }) => {
                let expected =
                    "session=".len() + cipher.sealed_len(budget + 1) + DEFAULT_ATTRIBUTES_LEN;
                assert_eq!((name.as_str(), size, limit), ("session", expected, 4096));
                assert!(size > 4096);
            }
            other => panic!("{cipher}: expected CookieTooLarge, got {other:?}"),
        }
    }
}

#[test]
fn debug_shows_the_cipher_and_key_ids_but_no_key() {
    let (primary, old) = (Key::generate(), Key::generate());
    let store = EncryptedCookieStore::new(ring(&primary, &[&old])).with_cipher(Cipher::Aes256Gcm);
    let debug = format!("{store:?}");
    assert!(debug.contains("Aes256Gcm"), "{debug}");
    assert!(debug.contains(&primary.id().to_string()), "{debug}");
    assert!(debug.contains(&old.id().to_string()), "{debug}");
    assert!(!debug.contains(&primary.to_base64()) && !debug.contains(&old.to_base64()));
}
