//! What each fuzz target checks, one function per target, each taking the
//! fuzzer's bytes. Shared by the fuzz targets (the `fuzz/` crate, its own
//! workspace, depends on this one by path) and by this crate's test
//! (`tests/replay.rs`), which replays the committed inputs in every `cargo
//! test` run, so that a crash the fuzzer found stays fixed. The Redis
//! targets' checks live in session-redis (module `fuzzing`, compiled under
//! cargo-fuzz's `--cfg fuzzing`), whose own unit tests replay their inputs.
//!
//! Every check panics when a property fails; a decoder that panics by
//! itself is a failure too.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use session_core::{
    Create, MemoryStore, Record, SessionConfig, SessionCookie, SessionManager, SessionStore,
};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};
use session_simple_cookie::SimpleCookieStore;

/// A fuzz target: its name (the file under `fuzz_targets/` and the
/// directory of its inputs) and its check.
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input.
    pub check: fn(&[u8]),
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "cookie_header",
        check: cookie_header,
    },
    Target {
        name: "encrypted_cookie",
        check: encrypted_cookie,
    },
    Target {
        name: "simple_cookie",
        check: simple_cookie,
    },
    // session-redis exposes its decoders only under cargo-fuzz's
    // `--cfg fuzzing`; its own tests replay these two targets' inputs.
    #[cfg(fuzzing)]
    Target {
        name: "redis_hash_reply",
        check: redis_hash_reply,
    },
    #[cfg(fuzzing)]
    Target {
        name: "redis_aiohttp_value",
        check: redis_aiohttp_value,
    },
    Target {
        name: "aiohttp_cookies",
        check: aiohttp_cookies,
    },
];

/// The stores' methods are async; they do no I/O here, so one
/// current-thread runtime runs them all.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime")
        })
        .block_on(future)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `Cookie` header parsing and the request lifecycle, on the memory
/// store holding one issued session: the input, split on `\n` into several
/// `Cookie` headers, never makes loading or saving fail, loads only the
/// issued session and only when its id is in the input, and a write gets a
/// fresh id that the input did not contain.
pub fn cookie_header(data: &[u8]) {
    static APP: OnceLock<(SessionManager, String)> = OnceLock::new();
    let (manager, issued) = APP.get_or_init(|| {
        let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
        let issued = block_on(async {
            let request = manager.request();
            let session = request.session([]).await.expect("a new session");
            session.insert("issued", &true).expect("insert");
            let set_cookie = request.save_changes().await.expect("saved");
            let pair = set_cookie[0].split(';').next().expect("a pair");
            pair.trim_start_matches("session=").to_owned()
        });
        (manager, issued)
    });
    let headers = data.split(|&b| b == b'\n').take(8);
    block_on(async {
        let request = manager.request();
        let session = request
            .session(headers)
            .await
            .expect("bad cookies are not errors");
        if !session.is_new() {
            assert_eq!(session.get_value("issued"), Some(true.into()));
            assert!(contains(data, issued.as_bytes()), "loaded without its id");
        }
        session.insert("written", &true).expect("insert");
        let set_cookie = request.save_changes().await.expect("saving works");
        if session.is_new() {
            let pair = set_cookie[0].split(';').next().expect("a pair");
            let id = pair.trim_start_matches("session=");
            assert!(
                !contains(data, id.as_bytes()),
                "a client-sent id was adopted"
            );
            // Forget it again, so that the store does not grow with the run.
            let deleted = manager
                .store()
                .delete(session_core::SessionCookie::new("session", id))
                .await
                .expect("delete");
            assert!(deleted, "the new session was stored");
        }
    });
}

/// The characters of unpadded base64url.
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `bytes` in unpadded base64url, so that the fuzzer controls the bytes a
/// decoder sees after its base64 step.
fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(BASE64URL[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// One store per cipher under a fixed key, and a cookie each sealed for a
/// fixed record.
struct Sealed {
    store: EncryptedCookieStore,
    cookie: String,
    record: Arc<Record>,
}

fn sealed() -> &'static [Sealed; 2] {
    static SEALED: OnceLock<[Sealed; 2]> = OnceLock::new();
    SEALED.get_or_init(|| {
        Cipher::ALL.map(|cipher| {
            let key = Key::from_bytes(&[7; 32]).expect("a 32-byte key");
            let ring = KeyRing::builder(key).build().expect("a ring");
            let store = EncryptedCookieStore::new(ring).with_cipher(cipher);
            let mut record = Record::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
            record.data.insert("user".into(), "ada".into());
            let record = Arc::new(record);
            let create = Create::new("session", &record, record.created);
            let cookie = block_on(store.create(create)).expect("sealed");
            Sealed {
                store,
                cookie,
                record,
            }
        })
    })
}

/// The encrypted cookie decoder, for both ciphers. The first byte picks
/// the input's form: the rest as the cookie text, as the bytes under the
/// base64, or as edits (position, base64 character) to a cookie that was
/// issued. Nothing opens but the issued cookie itself, unchanged.
pub fn encrypted_cookie(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    for sealed in sealed() {
        let value = match mode % 3 {
            0 => String::from_utf8_lossy(rest).into_owned(),
            1 => base64url(rest),
            _ => {
                let mut chars: Vec<u8> = sealed.cookie.clone().into_bytes();
                for edit in rest.chunks_exact(2) {
                    let at = usize::from(edit[0]) % chars.len();
                    chars[at] = BASE64URL[usize::from(edit[1]) % 64];
                }
                String::from_utf8(chars).expect("base64url is ASCII")
            }
        };
        let opened = block_on(sealed.store.load(SessionCookie::new("session", &value)))
            .expect("a bad cookie is not an error");
        let _ = sealed
            .store
            .needs_reissue(SessionCookie::new("session", &value));
        if value == sealed.cookie {
            assert_eq!(opened.as_ref(), Some(&sealed.record));
        } else {
            assert_eq!(opened, None, "a changed or forged cookie opened");
        }
    }
}

/// The simple cookie decoder, on the input as text and as the bytes under
/// the base64. Whatever decodes encodes again to a value that decodes to
/// the same record.
pub fn simple_cookie(data: &[u8]) {
    for value in [String::from_utf8_lossy(data).into_owned(), base64url(data)] {
        if let Some(record) = SimpleCookieStore::decode(&value) {
            let again = SimpleCookieStore::encode(&record).expect("a decoded record encodes");
            if again.len() <= session_core::CookieConfig::MAX_SIZE {
                assert_eq!(SimpleCookieStore::decode(&again), Some(record));
            }
        }
    }
}

/// The Redis hash layout's decoder of its load's reply: the check lives
/// in session-redis, whose own tests replay this target's inputs.
#[cfg(fuzzing)]
pub fn redis_hash_reply(data: &[u8]) {
    session_redis::fuzzing::check_hash_reply(data);
}

/// The Redis aiohttp layout's decoder of a stored value: the check lives
/// in session-redis, whose own tests replay this target's inputs.
#[cfg(fuzzing)]
pub fn redis_aiohttp_value(data: &[u8]) {
    session_redis::fuzzing::check_aiohttp_value(data);
}

/// aiohttp_session's cookie formats (issue 19): any text as a cookie value,
/// and the input's bytes as the base64 of a Fernet token or a SecretBox,
/// never panic; nothing opens under a secret nobody else has; what the
/// `SimpleCookieStorage` format decodes (anything can be forged there)
/// re-encodes to the same data.
pub fn aiohttp_cookies(data: &[u8]) {
    use session_encrypted_cookie::aiohttp::{FernetCookieStore, NaclCookieStore};
    use session_simple_cookie::aiohttp::SimpleCookieStore as AiohttpSimpleStore;

    static STORES: OnceLock<(FernetCookieStore, NaclCookieStore)> = OnceLock::new();
    let (fernet, nacl) = STORES.get_or_init(|| {
        let ring = || KeyRing::builder(Key::generate()).build().expect("a ring");
        let max_age = Some(Duration::from_secs(3600));
        (
            FernetCookieStore::new(ring(), max_age),
            NaclCookieStore::new(ring(), max_age),
        )
    });
    let text = String::from_utf8_lossy(data).into_owned();
    // A token's bytes: Fernet's version byte first.
    let mut token = data.to_vec();
    if let Some(first) = token.first_mut() {
        *first = 0x80;
    }
    let standard = base64url(data).replace('-', "+").replace('_', "/");
    for value in [&text, &base64url(&token), &standard, &base64url(data)] {
        assert!(fernet.open(value).is_none(), "a forged Fernet token opened");
        assert!(nacl.open(value).is_none(), "a forged SecretBox opened");
    }

    let simple = AiohttpSimpleStore::new(Some(Duration::from_secs(3600)));
    if let Some(record) = simple.decode(&text) {
        let again = AiohttpSimpleStore::encode(&record).expect("a decoded record encodes");
        assert_eq!(simple.decode(&again).map(|r| r.data), Some(record.data));
    }
}
