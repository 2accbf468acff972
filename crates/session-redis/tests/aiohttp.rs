//! The aiohttp_session layout, checked in Redis itself: the exact value and
//! TTL aiohttp_session writes, values written by it, its logout marker, and
//! the writes that must never happen. The interop test against the real
//! Python package is `examples/tests/aiohttp_interop.rs`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use session_core::{Clock, ManualClock, RequestSession, Session, SessionManager};
use session_redis::{RedisLayout, RedisStore, aiohttp};
use session_testing::{RedisServer, Reply};

use common::{cookie_pair, cookie_value, integer, peek, visit};

const MAX_AGE: Duration = Duration::from_secs(3600);

/// A manager on the aiohttp layout with `max_age`, its matching config, and
/// a manual clock at a whole second.
async fn manager(server: &RedisServer, max_age: Option<Duration>) -> (SessionManager, ManualClock) {
    let store = RedisStore::builder()
        .layout(RedisLayout::Aiohttp { max_age })
        .connect(&server.url())
        .await
        .expect("connect");
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(now_secs()));
    let config = aiohttp::session_config(max_age).with_clock(Clock::from(clock.clone()));
    (SessionManager::new(store, config), clock)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The Redis key of the session behind a `name=value` cookie pair.
fn key(pair: &str) -> String {
    format!("{}_{}", aiohttp::COOKIE_NAME, cookie_value(pair))
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    match server.command(&["GET", key]).expect("GET") {
        Reply::Nil => None,
        reply => Some(reply.text().expect("a string")),
    }
}

fn ttl(server: &RedisServer, key: &str) -> i64 {
    integer(server.command(&["TTL", key]))
}

fn set(server: &RedisServer, key: &str, value: &str) {
    let reply = server.command(&["SET", key, value]).expect("SET");
    assert_eq!(reply.text().as_deref(), Some("OK"));
}

/// A key as aiohttp_session would name a session it created.
fn python_key() -> (String, String) {
    let id = "0123456789abcdef4123456789abcdef".to_owned();
    (
        format!("AIOHTTP_SESSION_{id}"),
        format!("AIOHTTP_SESSION={id}"),
    )
}

#[tokio::test]
async fn writes_the_value_and_ttl_aiohttp_session_writes() {
    let server = RedisServer::start();
    let (manager, clock) = manager(&server, Some(MAX_AGE)).await;
    let set_cookie = visit(&manager, None, |s| {
        s.insert("user", "ada").expect("insert");
        s.insert(
            "n",
            &json!([1, 2.5, -3, 1e16, "é🦀", {"t": true, "f": null}]),
        )
        .expect("insert");
    })
    .await;
    let pair = cookie_pair(&set_cookie);
    assert!(pair.starts_with("AIOHTTP_SESSION="), "{pair}");
    let id = cookie_value(&pair);
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "a uuid4 in hex"
    );
    // Python's json.dumps layout, `created` in whole seconds.
    assert_eq!(
        get(&server, &key(&pair)).expect("stored"),
        format!(
            r#"{{"created": {}, "session": {{"n": [1, 2.5, -3, 1e+16, "\u00e9\ud83e\udd80", {{"f": null, "t": true}}], "user": "ada"}}}}"#,
            secs(clock.now())
        )
    );
    // SET ... EX max_age, and the cookie lives as long (Max-Age, as Python sets).
    assert!((3599..=3600).contains(&ttl(&server, &key(&pair))));
    assert!(
        set_cookie[0].contains("; Max-Age=3600"),
        "{}",
        set_cookie[0]
    );
}

#[tokio::test]
async fn without_max_age_nothing_expires() {
    let server = RedisServer::start();
    let (manager, clock) = manager(&server, None).await;
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    assert_eq!(ttl(&server, &key(&pair)), -1);
    assert!(!pair.contains("Max-Age"));
    clock.advance(Duration::from_secs(10 * 365 * 24 * 3600));
    assert!(!peek(&manager, &pair).await.is_new());
}

#[tokio::test]
async fn a_write_refreshes_created_and_the_ttl_and_a_read_writes_nothing() {
    let server = RedisServer::start();
    let (manager, clock) = manager(&server, Some(MAX_AGE)).await;
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let key = key(&pair);
    let first = get(&server, &key).expect("stored");

    server.command(&["EXPIRE", &key, "100"]).expect("EXPIRE");
    clock.advance(Duration::from_secs(60));
    let set_cookie = visit(&manager, Some(&pair), |s| {
        assert_eq!(s.get::<i64>("k").expect("get"), Some(1));
    })
    .await;
    assert!(set_cookie.is_empty(), "a read sets no cookie");
    assert_eq!(
        get(&server, &key).as_ref(),
        Some(&first),
        "a read writes nothing"
    );
    assert!(
        ttl(&server, &key) <= 100,
        "a read does not extend the session"
    );

    let set_cookie = visit(&manager, Some(&pair), |s| {
        s.insert("k", &2).expect("insert")
    })
    .await;
    assert_eq!(cookie_pair(&set_cookie), pair, "the id stays");
    assert_eq!(
        get(&server, &key).expect("stored"),
        format!(
            r#"{{"created": {}, "session": {{"k": 2}}}}"#,
            secs(clock.now())
        )
    );
    assert!(ttl(&server, &key) > 3500, "a write restarts max_age");
    assert_eq!(peek(&manager, &pair).await.created(), clock.now());
}

#[tokio::test]
async fn a_session_aiohttp_session_wrote_loads_until_created_plus_max_age() {
    let server = RedisServer::start();
    let (manager, clock) = manager(&server, Some(MAX_AGE)).await;
    let (key, pair) = python_key();
    let created = secs(clock.now()) - 100;
    set(
        &server,
        &key,
        &format!(
            r#"{{"created": {created}, "session": {{"user": "ada", "big": 9007199254740993, "x": -0.5, "s": "\u00e9\ud83e\udd80"}}}}"#
        ),
    );
    let session = peek(&manager, &pair).await;
    assert!(!session.is_new());
    assert_eq!(
        serde_json::Value::Object(session.data()),
        json!({"user": "ada", "big": 9_007_199_254_740_993_i64, "x": -0.5, "s": "é🦀"})
    );
    assert_eq!(secs(session.created()), created);
    assert_eq!(
        session.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(created) + MAX_AGE)
    );
    // aiohttp_session's rule: past created + max_age, the data is gone, even
    // while Redis still holds the key.
    clock.advance(MAX_AGE - Duration::from_secs(100));
    assert!(peek(&manager, &pair).await.is_new());
}

#[tokio::test]
async fn a_logout_by_aiohttp_session_is_never_undone() {
    let server = RedisServer::start();
    let (manager, _clock) = manager(&server, Some(MAX_AGE)).await;
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    let key = key(&pair);

    // A request that loaded the session before Python logged it out...
    let slow = manager.request();
    let session = slow.session([pair.as_bytes()]).await.expect("load");
    // ...Python's invalidate() writes `{}` under the key...
    set(&server, &key, "{}");
    // ...and the slow request's write comes after: refused, and no cookie
    // set (Python's response removed it).
    session.insert("late", "write").expect("insert");
    let set_cookie = slow.save_changes().await.expect("save_changes");
    assert!(set_cookie.is_empty(), "{set_cookie:?}");
    assert_eq!(get(&server, &key).as_deref(), Some("{}"));
    // And `{}` reads as a new session, whose first write gets a new id.
    assert!(peek(&manager, &pair).await.is_new());
    let fresh = visit(&manager, Some(&pair), |s| {
        s.insert("k", &1).expect("insert")
    })
    .await;
    assert_ne!(cookie_pair(&fresh), pair);
    assert_eq!(get(&server, &key).as_deref(), Some("{}"));
}

/// A manager with `MAX_AGE`, the cookie pair of a session holding `user =
/// "ada"`, and a request that loaded it and has not saved yet.
async fn a_session_and_a_slow_request(
    server: &RedisServer,
) -> (SessionManager, String, RequestSession, Session) {
    let (manager, _clock) = manager(server, Some(MAX_AGE)).await;
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    let slow = manager.request();
    let session = slow.session([pair.as_bytes()]).await.expect("load");
    (manager, pair, slow, session)
}

#[tokio::test]
async fn our_logout_deletes_the_key_and_a_late_write_does_not_recreate_it() {
    let server = RedisServer::start();
    let (manager, pair, slow, session) = a_session_and_a_slow_request(&server).await;
    let key = key(&pair);
    let set_cookie = visit(&manager, Some(&pair), Session::invalidate).await;
    assert!(set_cookie[0].contains("Max-Age=0"));
    assert_eq!(get(&server, &key), None, "logout deletes the key");
    session.insert("late", "write").expect("insert");
    let set_cookie = slow.save_changes().await.expect("save_changes");
    assert!(set_cookie.is_empty(), "{set_cookie:?}");
    assert_eq!(get(&server, &key), None, "the late write created nothing");
}

#[tokio::test]
async fn malformed_values_load_as_new_sessions_and_are_left_alone() {
    let server = RedisServer::start();
    let (manager, _clock) = manager(&server, Some(MAX_AGE)).await;
    let (key, pair) = python_key();
    for bad in [
        "",
        "not json",
        "[]",
        "null",
        r#"{"created": "yesterday", "session": {}}"#,
        r#"{"created": 1, "session": [1]}"#,
        r#"{"created": 1700000000, "session": {"x": NaN}}"#,
        r#"{"created": 1e400}"#,
    ] {
        set(&server, &key, bad);
        let set_cookie = visit(&manager, Some(&pair), |s| {
            assert!(s.is_new() && s.is_empty(), "{bad:?} loaded");
            s.insert("k", &1).expect("insert");
        })
        .await;
        assert_ne!(cookie_pair(&set_cookie), pair, "{bad:?}: a new id");
        assert_eq!(
            get(&server, &key).as_deref(),
            Some(bad),
            "{bad:?} overwritten"
        );
    }
    // A key that is not a string is a store error, not a panic.
    server.command(&["DEL", &key]).expect("DEL");
    server.command(&["HSET", &key, "f", "v"]).expect("HSET");
    assert!(manager.request().session([pair.as_bytes()]).await.is_err());
}

#[tokio::test]
async fn cookie_values_that_are_not_uuid_hex_never_reach_redis() {
    let server = RedisServer::start();
    let (manager, _clock) = manager(&server, Some(MAX_AGE)).await;
    // A key that a crafted cookie would name if it were used as is.
    set(
        &server,
        "AIOHTTP_SESSION_*",
        r#"{"created": 1, "session": {"user": "root"}}"#,
    );
    for value in ["*", "../x", "0123456789ABCDEF0123456789ABCDEF", "{}"] {
        let pair = format!("AIOHTTP_SESSION={value}");
        assert!(peek(&manager, &pair).await.is_new(), "{value}");
    }
    let calls = common::info(&server, "commandstats");
    assert!(!calls.contains("cmdstat_get:"), "no GET was sent: {calls}");
}

#[tokio::test]
async fn the_cookie_name_names_the_keys() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .layout(RedisLayout::Aiohttp {
            max_age: Some(MAX_AGE),
        })
        .key_prefix("ignored:")
        .connect(&server.url())
        .await
        .expect("connect");
    let config = aiohttp::session_config(Some(MAX_AGE)).with_cookie_name("SID");
    let manager = SessionManager::new(store, config);
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let id = cookie_value(&pair);
    assert!(get(&server, &format!("SID_{id}")).is_some());
}

/// A session whose keys were all removed is saved as aiohttp_session saves
/// it: `{}` under its key, with `max_age`, and its cookie removed. Python
/// then reads a new session there, and a racing write of ours is refused,
/// as after a logout.
#[tokio::test]
async fn an_emptied_session_is_stored_as_aiohttp_stores_it() {
    let server = RedisServer::start();
    let (manager, pair, slow, late) = a_session_and_a_slow_request(&server).await;
    let key = key(&pair);

    let set_cookie = visit(&manager, Some(&pair), Session::clear).await;
    assert!(
        set_cookie.len() == 1 && set_cookie[0].contains("Max-Age=0"),
        "the cookie is removed: {set_cookie:?}"
    );
    assert_eq!(get(&server, &key).as_deref(), Some("{}"));
    assert!(ttl(&server, &key) > 0, "with max_age");

    late.insert("late", "write").expect("insert");
    let set_cookie = slow.save_changes().await.expect("save_changes");
    assert!(set_cookie.is_empty(), "{set_cookie:?}");
    assert_eq!(get(&server, &key).as_deref(), Some("{}"), "not revived");
    assert!(peek(&manager, &pair).await.is_new());
}
