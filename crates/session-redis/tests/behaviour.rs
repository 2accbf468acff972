//! What the Redis store promises beyond the conformance suite, checked in
//! Redis itself: the layout, TTLs, writes that merge, logouts that stick,
//! and reads that write nothing.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use session_core::unix_millis;
use session_core::{
    Changes, Clock, Expiry, ManualClock, Record, Refresh, Regenerate, Rolling, Session,
    SessionConfig, SessionCookie, SessionManager, SessionStore, Update, Written,
};
use session_redis::RedisStore;
use session_testing::{RedisServer, Reply, info_fields};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

use common::{
    Stopped, calls_where, command_calls, cookie_pair, info, integer, peek, redis_key, visit,
};

const IDLE: Duration = Duration::from_secs(30 * 60);

async fn store(server: &RedisServer) -> RedisStore {
    RedisStore::from_url(&server.url()).await.expect("connect")
}

/// The session's deadline in Redis: the key's expiry, which the metadata's
/// `e` must always match.
fn deadline(server: &RedisServer, key: &str) -> i64 {
    let expiry = integer(server.command(&["PEXPIRETIME", key]));
    let metadata = server.command(&["HGET", key, "m"]).expect("HGET");
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata.text().expect("metadata")).expect("JSON");
    // -1: the key has no expiry, and then `e` is null.
    let expected = if expiry == -1 {
        json!(null)
    } else {
        json!(expiry)
    };
    assert_eq!(metadata["e"], expected, "e and the key's expiry differ");
    expiry
}

#[tokio::test]
async fn the_hash_layout_is_as_documented() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let set = visit(&manager, None, |s| {
        s.insert("user", "ada").expect("insert");
        s.insert("m", &json!({"nested": [1, null]}))
            .expect("insert");
    })
    .await;
    let pair = cookie_pair(&set);
    let key = redis_key(&pair);
    let Reply::Array(fields) = server.command(&["HGETALL", &key]).expect("HGETALL") else {
        panic!("no hash under {key}");
    };
    let mut fields: Vec<(String, String)> = fields
        .chunks(2)
        .map(|kv| (kv[0].text().expect("field"), kv[1].text().expect("value")))
        .collect();
    fields.sort();
    let created = unix_millis(peek(&manager, &pair).await.created());
    assert_eq!(
        fields,
        [
            ("d:m".to_owned(), r#"{"nested":[1,null]}"#.to_owned()),
            ("d:user".to_owned(), r#""ada""#.to_owned()),
            (
                "m".to_owned(),
                format!(r#"{{"e":{},"c":{created}}}"#, deadline(&server, &key))
            ),
        ]
    );
}

#[tokio::test]
async fn the_ttl_in_redis_is_the_idle_timeout() {
    let server = RedisServer::start();
    let config = SessionConfig::default().with_expiry(Expiry::NEVER.with_idle_timeout(Some(IDLE)));
    let manager = SessionManager::new(store(&server).await, config);
    let set = visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await;
    let ttl = integer(server.command(&["PTTL", &redis_key(&cookie_pair(&set))]));
    let idle = i64::try_from(IDLE.as_millis()).expect("fits");
    assert!(
        (idle - 1_000..=idle).contains(&ttl),
        "PTTL {ttl}, idle {idle}"
    );
}

#[tokio::test]
async fn a_session_without_a_deadline_has_no_ttl() {
    let server = RedisServer::start();
    let config = SessionConfig::default().with_expiry(Expiry::NEVER);
    let manager = SessionManager::new(store(&server).await, config);
    let set = visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await;
    assert_eq!(
        integer(server.command(&["PTTL", &redis_key(&cookie_pair(&set))])),
        -1
    );
}

#[tokio::test]
async fn a_session_that_stops_expiring_loses_its_deadline() {
    let server = RedisServer::start();
    let config = SessionConfig::default().with_expiry(Expiry::NEVER.with_idle_timeout(Some(IDLE)));
    let manager = SessionManager::new(store(&server).await, config);
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let key = redis_key(&pair);
    assert!(deadline(&server, &key) > 0);

    visit(&manager, Some(&pair), |s| s.set_expiry(Some(Expiry::NEVER))).await;
    assert_eq!(deadline(&server, &key), -1);
    let session = peek(&manager, &pair).await;
    assert_eq!(session.expires_at(), None);
    assert_eq!(session.get::<i32>("k").expect("get"), Some(1));

    visit(&manager, Some(&pair), |s| s.set_expiry(None)).await;
    assert!(deadline(&server, &key) > 0);
    assert!(peek(&manager, &pair).await.expires_at().is_some());
}

#[tokio::test]
async fn a_rolling_refresh_moves_the_deadline_and_an_absolute_timeout_caps_it() {
    let server = RedisServer::start();
    let clock = ManualClock::starting_now();
    let config = SessionConfig::default()
        .with_expiry(
            Expiry::NEVER
                .with_idle_timeout(Some(IDLE))
                .with_absolute_timeout(Some(Duration::from_secs(3600))),
        )
        .with_rolling(Rolling::Throttled(Duration::from_secs(60)))
        .with_clock(Clock::from(clock.clone()));
    let manager = SessionManager::new(store(&server).await, config);
    let created = clock.now();
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let key = redis_key(&pair);
    let ms = |t: SystemTime| i64::try_from(unix_millis(t)).expect("fits");
    assert_eq!(deadline(&server, &key), ms(created + IDLE));

    // A read 20 minutes later rolls the idle deadline forward.
    clock.advance(Duration::from_secs(20 * 60));
    assert!(visit(&manager, Some(&pair), |_| {}).await.is_empty());
    assert_eq!(deadline(&server, &key), ms(clock.now() + IDLE));

    // Reads and writes after that never push it past created + 1 h.
    let absolute = ms(created + Duration::from_secs(3600));
    clock.advance(Duration::from_secs(20 * 60));
    visit(&manager, Some(&pair), |_| {}).await;
    assert_eq!(deadline(&server, &key), absolute);
    clock.advance(Duration::from_secs(15 * 60));
    visit(&manager, Some(&pair), |s| {
        s.insert("k", &2).expect("insert")
    })
    .await;
    assert_eq!(deadline(&server, &key), absolute);

    clock.advance(Duration::from_secs(6 * 60)); // 61 minutes after creation
    assert!(peek(&manager, &pair).await.is_new());
}

/// A write of data keys alone changes the data fields and nothing else:
/// the metadata and the expiry stay as stored, even when concurrent saves
/// changed them after the request loaded the session; and it creates
/// nothing for a session that is gone.
#[tokio::test]
async fn a_data_only_update_leaves_the_metadata_and_the_expiry_as_stored() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let id = "D".repeat(32);
    let key = format!("session:{id}");
    let cookie = SessionCookie::new("session", &id);
    // As stored: a deadline and an override that concurrent saves set,
    // which the request below never saw.
    let stored_deadline = unix_millis(now + IDLE);
    let metadata = format!(r#"{{"e":{stored_deadline},"c":5,"x":{{"i":60000,"a":null}}}}"#);
    store_by_hand(
        &server,
        &key,
        &["m", &metadata, "d:k", "1", "d:gone", "2"],
        stored_deadline,
    );

    let mut record = Record::new(now);
    record.expires_at = Some(now + Duration::from_secs(60));
    record.data.insert("k".into(), json!(2));
    let record = Arc::new(record);
    let mut changes = Changes::default();
    changes.record_write("k");
    changes.record_remove("gone");
    let before = command_calls(&server);
    let written = store
        .update(Update::new(cookie, &record, &changes, now).with_data_only(true))
        .await
        .expect("update");
    let ran = ran_since(
        &server,
        &before,
        &["pexpiretime", "hexists", "hdel", "hset", "pexpireat"],
    );
    assert_eq!(written, Written::Cookie(id.clone()));
    assert_eq!(
        server.command(&["HGET", &key, "m"]).expect("HGET").text(),
        Some(metadata.clone()),
        "the metadata is left as stored"
    );
    assert_eq!(
        deadline(&server, &key),
        i64::try_from(stored_deadline).expect("fits")
    );
    let loaded = store.load(cookie).await.expect("load").expect("stored");
    assert_eq!(
        Value::Object(loaded.data.clone().into_iter().collect()),
        json!({"k": 2}),
        "the delta is applied"
    );
    // The script's commands: the writes, and nothing else (the HSET
    // changed a field the session had: it was there).
    assert_eq!(ran, [0, 0, 1, 1, 0]);

    // The same update, not data only, writes the record's metadata and
    // deadline.
    let written = store
        .update(Update::new(cookie, &record, &changes, now))
        .await
        .expect("update");
    assert_eq!(written, Written::Cookie(id.clone()));
    assert_eq!(
        deadline(&server, &key),
        i64::try_from(unix_millis(now + Duration::from_secs(60))).expect("fits")
    );
}

/// Stores `fields` (names and values) under `key` by hand, as the store
/// writes a session, with the key's expiry at `deadline` (Unix ms).
fn store_by_hand(server: &RedisServer, key: &str, fields: &[&str], deadline: u64) {
    let mut hset = vec!["HSET", key];
    hset.extend_from_slice(fields);
    server.command(&hset).expect("HSET");
    server
        .command(&["PEXPIREAT", key, &deadline.to_string()])
        .expect("PEXPIREAT");
}

/// How many times each of `commands` ran since `before`.
fn ran_since(server: &RedisServer, before: &[(String, u64)], commands: &[&str]) -> Vec<u64> {
    let after = command_calls(server);
    commands
        .iter()
        .map(|command| {
            let calls = |calls| calls_where(calls, |name| name == *command);
            calls(&after) - calls(before)
        })
        .collect()
}

/// A write of data keys alone checks that the session is there with the
/// `HSET` itself while the deadline it loaded is ahead: a field that is new
/// to the hash sends it looking for the metadata, and a key the `HSET`
/// recreated is deleted again in the same script. Removals alone, and a
/// loaded deadline that has passed, ask Redis for the stored deadline.
#[tokio::test]
async fn a_data_only_write_is_its_own_liveness_check() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let id = "L".repeat(32);
    let key = format!("session:{id}");
    let cookie = SessionCookie::new("session", &id);
    let stored_deadline = unix_millis(now + IDLE);
    let store_session = || {
        server.command(&["DEL", &key]).expect("DEL");
        let metadata = format!(r#"{{"e":{stored_deadline},"c":5}}"#);
        store_by_hand(
            &server,
            &key,
            &["m", &metadata, "d:k", "1"],
            stored_deadline,
        );
    };
    let mut record = Record::new(now);
    record.expires_at = Some(now + Duration::from_secs(60));
    record.data.insert("k".into(), json!(2));
    record.data.insert("new".into(), json!(3));
    let record = Arc::new(record);
    let writing = |keys: &[&str]| {
        let mut changes = Changes::default();
        for key in keys {
            changes.record_write(key);
        }
        changes
    };
    // As a request that added the keys to its session writes them: the
    // metadata is asked for in the HSET's round trip.
    let adding = |keys: &[&str]| {
        let mut changes = Changes::default();
        for key in keys {
            changes.record_addition(key);
        }
        changes
    };
    let commands = ["hset", "hexists", "pexpiretime", "del", "hdel"];
    let data_only = async |changes: &Changes, now: SystemTime| {
        let update = Update::new(cookie, &record, changes, now).with_data_only(true);
        store.update(update).await.expect("update")
    };

    // A key the session has: one HSET.
    store_session();
    let before = command_calls(&server);
    let written = data_only(&writing(&["k"]), now).await;
    assert_eq!(written, Written::Cookie(id.clone()));
    assert_eq!(ran_since(&server, &before, &commands), [1, 0, 0, 0, 0]);

    // A key new to the session: the metadata is looked for, and found. A
    // request that added its keys asks with the HSET, whether or not the
    // HSET finds a field there.
    for changes in [writing(&["new"]), adding(&["new"]), adding(&["k", "new"])] {
        let before = command_calls(&server);
        let written = data_only(&changes, now).await;
        assert_eq!(written, Written::Cookie(id.clone()));
        assert_eq!(ran_since(&server, &before, &commands), [1, 1, 0, 0, 0]);
    }
    let loaded = store.load(cookie).await.expect("load").expect("stored");
    assert_eq!(
        Value::Object(loaded.data.clone().into_iter().collect()),
        json!({"k": 2, "new": 3})
    );

    // A session that is gone: the key the HSET made is deleted at once.
    for changes in [writing(&["k"]), adding(&["new"])] {
        server.command(&["DEL", &key]).expect("DEL");
        let before = command_calls(&server);
        let written = data_only(&changes, now).await;
        assert_eq!(written, Written::Gone);
        assert_eq!(ran_since(&server, &before, &commands), [1, 1, 0, 1, 0]);
        assert_eq!(integer(server.command(&["DBSIZE"])), 0);
    }

    // Removals alone cannot tell: the stored deadline is asked for.
    let mut removal = Changes::default();
    removal.record_remove("k");
    let before = command_calls(&server);
    assert_eq!(data_only(&removal, now).await, Written::Gone);
    assert_eq!(ran_since(&server, &before, &commands), [0, 0, 1, 0, 0]);
    store_session();
    assert_eq!(data_only(&removal, now).await, Written::Cookie(id.clone()));
    assert_eq!(integer(server.command(&["HEXISTS", &key, "d:k"])), 0);

    // The loaded deadline has passed by the application's clock, but a
    // concurrent refresh moved the stored one: saved, having asked.
    store_session();
    let later = now + Duration::from_secs(120);
    let before = command_calls(&server);
    let written = data_only(&writing(&["k"]), later).await;
    assert_eq!(written, Written::Cookie(id.clone()));
    assert_eq!(ran_since(&server, &before, &commands), [1, 0, 1, 0, 0]);
    // And once the stored one has passed too, gone, and deleted.
    let long_after = now + IDLE + Duration::from_secs(1);
    assert_eq!(data_only(&writing(&["k"]), long_after).await, Written::Gone);
    assert_eq!(integer(server.command(&["EXISTS", &key])), 0);
}

/// A data write's plain `HSET` on a key that is not a hash (written by
/// something else under the store's prefix) fails with Redis's error and
/// leaves the key as it was.
#[tokio::test]
async fn a_data_write_to_a_key_that_is_not_a_hash_fails_and_changes_nothing() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let id = "W".repeat(32);
    let key = format!("session:{id}");
    server.command(&["SET", &key, "not a hash"]).expect("SET");
    let mut record = Record::new(now);
    record.expires_at = Some(now + IDLE);
    record.data.insert("k".into(), json!(1));
    let record = Arc::new(record);
    let mut changes = Changes::default();
    changes.record_write("k");
    let cookie = SessionCookie::new("session", &id);
    let update = Update::new(cookie, &record, &changes, now).with_data_only(true);
    let error = store.update(update).await.expect_err("not a hash");
    assert!(error.to_string().contains("WRONGTYPE"), "{error}");
    assert_eq!(
        server.command(&["GET", &key]).expect("GET").text(),
        Some("not a hash".to_owned())
    );
}

/// What a data write's `HSET` makes of a session that is gone, a hash
/// without metadata or expiry (until that write deletes it again, or, when
/// it could not, until a load does), is no session to anything: a load, a
/// save, a refresh, a login, a logout and the user index all find none,
/// and delete it. A data write that finds its field there (one racing the
/// same logout as the write that made the hash) is answered saved, as
/// having come before the logout; its data is never seen.
#[tokio::test]
async fn a_hash_a_data_write_made_of_a_gone_session_is_no_session() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let id = "G".repeat(32);
    let key = format!("session:{id}");
    let cookie = SessionCookie::new("session", &id);
    let leave_a_leftover = || {
        server.command(&["HSET", &key, "d:k", "1"]).expect("HSET");
    };
    let gone = || integer(server.command(&["EXISTS", &key])) == 0;
    let mut record = Record::new(now);
    record.expires_at = Some(now + IDLE);
    record.data.insert("k".into(), json!(2));
    record.user = Some("ada".into());
    let record = Arc::new(record);
    let mut writing_k = Changes::default();
    writing_k.record_write("k");

    // A write of the field it has: saved, and gone at the next load.
    leave_a_leftover();
    let update = Update::new(cookie, &record, &writing_k, now).with_data_only(true);
    let written = store.update(update).await.expect("update");
    assert_eq!(written, Written::Cookie(id.clone()));
    assert!(store.load(cookie).await.expect("load").is_none());
    assert!(gone(), "the load deleted it");

    // A full save (with metadata, and bound to a user): gone.
    leave_a_leftover();
    let update = Update::new(cookie, &record, &writing_k, now);
    assert_eq!(store.update(update).await.expect("update"), Written::Gone);
    assert!(gone());
    assert_eq!(integer(server.command(&["EXISTS", "session:user:ada"])), 0);

    // A rolling refresh: gone.
    leave_a_leftover();
    let refresh = Refresh::new(cookie, &record, now);
    assert_eq!(
        store.refresh(refresh).await.expect("refresh"),
        Written::Gone
    );
    assert!(gone());

    // A login: gone, and nothing written under a new id.
    leave_a_leftover();
    let login = Regenerate::new(cookie, &record, &writing_k, now);
    assert_eq!(store.regenerate(login).await.expect("login"), Written::Gone);
    assert!(gone());
    assert_eq!(integer(server.command(&["DBSIZE"])), 0);

    // A logout: nothing to log out.
    leave_a_leftover();
    assert!(!store.delete(cookie).await.expect("delete"));
    assert!(gone());
}

/// A save of more fields than Lua's `unpack` takes at once (some 8,000
/// values) goes in chunks, in both scripts: a write of data keys alone and
/// a full update, each writing and removing thousands of keys.
#[tokio::test]
async fn saves_of_thousands_of_keys_go_in_chunks() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let mut record = Record::new(now);
    record.expires_at = Some(now + IDLE);
    for i in 0..4000 {
        record.data.insert(format!("k{i}"), json!(i));
    }
    let record = Arc::new(record);
    let created = store
        .create(session_core::Create::new("session", &record, now))
        .await
        .expect("create");
    let cookie = SessionCookie::new("session", &created);
    for data_only in [true, false] {
        let mut changed = (*record).clone();
        let mut changes = Changes::default();
        // 3,000 kept keys rewritten, 2,000 new ones, the other 1,000
        // removed.
        for i in 0..5000 {
            changed.data.insert(format!("k{i}"), json!(-i));
            changes.record_write(&format!("k{i}"));
        }
        for i in 3000..4000 {
            changed.data.remove(&format!("k{i}"));
            changes.record_remove(&format!("k{i}"));
        }
        let changed = Arc::new(changed);
        let update = Update::new(cookie, &changed, &changes, now).with_data_only(data_only);
        let written = store.update(update).await.expect("update");
        assert_eq!(
            written,
            Written::Cookie(created.clone()),
            "data only: {data_only}"
        );
        let loaded = store.load(cookie).await.expect("load").expect("stored");
        assert_eq!(loaded.data, changed.data, "data only: {data_only}");
        // Back as it was, for the next round.
        let everything = Changes::replace_all(&record);
        let restore = Update::new(cookie, &record, &everything, now);
        let restored = store.update(restore).await.expect("restore");
        assert_eq!(restored, Written::Cookie(created.clone()));
    }
}

/// A rolling refresh moves only the deadline: the rest of the metadata is
/// whatever the last save wrote, even one that raced the refresh, and
/// metadata written by hand without a deadline gets one.
#[tokio::test]
async fn a_rolling_refresh_rewrites_only_the_deadline() {
    let server = RedisServer::start();
    let store = store(&server).await;
    let now = SystemTime::now();
    let ms = |t: SystemTime| unix_millis(t);
    let id = "R".repeat(32);
    let key = format!("session:{id}");
    let later = now + Duration::from_secs(600);
    let mut record = Record::new(now);
    record.expires_at = Some(later);
    let record = Arc::new(record);
    for (stored, refreshed) in [
        // As this store writes it, with an override a concurrent save set.
        (
            format!(
                r#"{{"e":{},"c":5,"x":{{"i":60000,"a":null}}}}"#,
                ms(now + IDLE)
            ),
            format!(r#"{{"e":{},"c":5,"x":{{"i":60000,"a":null}}}}"#, ms(later)),
        ),
        (
            r#"{"e":null,"c":5}"#.to_owned(),
            format!(r#"{{"e":{},"c":5}}"#, ms(later)),
        ),
        // By hand, without a deadline.
        (
            r#"{"c":5}"#.to_owned(),
            format!(r#"{{"e":{},"c":5}}"#, ms(later)),
        ),
    ] {
        server.command(&["DEL", &key]).expect("DEL");
        server
            .command(&["HSET", &key, "m", &stored, "d:k", "1"])
            .expect("HSET");
        let written = store
            .refresh(Refresh::new(
                SessionCookie::new("session", &id),
                &record,
                now,
            ))
            .await
            .expect("refresh");
        assert_eq!(written, Written::Cookie(id.clone()));
        let metadata = server.command(&["HGET", &key, "m"]).expect("HGET");
        assert_eq!(
            metadata.text().as_deref(),
            Some(refreshed.as_str()),
            "{stored}"
        );
        let deadline = i64::try_from(ms(later)).expect("fits");
        assert_eq!(integer(server.command(&["PEXPIRETIME", &key])), deadline);
        let loaded = store
            .load(SessionCookie::new("session", &id))
            .await
            .expect("load")
            .expect("still there");
        assert_eq!(loaded.expires_at.map(unix_millis), Some(ms(later)));
        assert_eq!(loaded.data.get("k"), Some(&json!(1)));
    }
    // A refresh of a session that is gone creates nothing.
    server.command(&["DEL", &key]).expect("DEL");
    let written = store
        .refresh(Refresh::new(
            SessionCookie::new("session", &id),
            &record,
            now,
        ))
        .await
        .expect("refresh");
    assert_eq!(
        written,
        Written::Gone,
        "a refresh tells that the session is gone"
    );
    assert_eq!(integer(server.command(&["EXISTS", &key])), 0);
}

fn dirty(server: &RedisServer) -> String {
    info_fields(&info(server, "persistence"))
        .find(|(name, _)| *name == "rdb_changes_since_last_save")
        .map(|(_, value)| value.to_owned())
        .expect("rdb_changes_since_last_save")
}

#[tokio::test]
async fn a_request_that_only_reads_writes_nothing() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);

    assert_eq!(
        server.command(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT"),
        Reply::Status("OK".into())
    );
    let dirty_before = dirty(&server);
    let set = visit(&manager, Some(&pair), |s| {
        assert_eq!(s.get::<i32>("k").expect("get"), Some(1));
        s.insert("k", &1).expect("an equal value is no change");
    })
    .await;
    assert!(set.is_empty());

    let calls = command_calls(&server);
    // The load is one command: the deadline is a field of the hash.
    assert!(
        calls.contains(&("hgetall".to_owned(), 1)),
        "the load ran once: {calls:?}"
    );
    let reads = ["hgetall", "config|resetstat", "info"];
    for (name, count) in &calls {
        assert!(
            reads.contains(&name.as_str()),
            "{name} was called {count} time(s): {calls:?}"
        );
    }
    assert_eq!(dirty(&server), dirty_before, "Redis counted a change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_keep_all_their_keys() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("base", &0).expect("insert")).await);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (manager, pair) = (manager.clone(), pair.clone());
            tokio::spawn(async move {
                let request = manager.request();
                let session = request.session([pair.as_bytes()]).await.expect("load");
                session.insert(&format!("key{i}"), &i).expect("insert");
                request.save_changes().await.expect("save_changes")
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let data = peek(&manager, &pair).await.data();
    assert_eq!(data.len(), 201);
    for i in 0..200 {
        assert_eq!(data.get(&format!("key{i}")), Some(&json!(i)), "key{i}");
    }
}

/// A request on the session of `pair` that loads it, changes it with
/// `change`, waits at each of `barriers` in turn, then finishes.
fn paused_request(
    manager: &SessionManager,
    pair: &str,
    barriers: [&Arc<Barrier>; 2],
    change: impl FnOnce(&Session) + Send + 'static,
) -> JoinHandle<Result<Vec<String>, session_core::Error>> {
    let (manager, pair) = (manager.clone(), pair.to_owned());
    let barriers = barriers.map(Arc::clone);
    tokio::spawn(async move {
        let request = manager.request();
        change(&request.session([pair.as_bytes()]).await.expect("load"));
        for barrier in barriers {
            barrier.wait().await;
        }
        request.save_changes().await
    })
}

/// With Redis stopped, one save is on its way and others wait behind it;
/// once Redis runs again, the waiting saves go in one call of their script
/// (the data writes' here, as every save writes a data key and removes
/// another), each gets its own answer, and one that fails leaves the
/// others saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saves_that_wait_together_go_in_one_script_call_and_fail_alone() {
    const SESSIONS: usize = 20;
    const BROKEN: usize = 7;
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let mut pairs = Vec::new();
    let two_keys = |s: &Session| {
        s.insert("n", &0).expect("insert");
        s.insert("x", &0).expect("insert");
    };
    for _ in 0..SESSIONS {
        pairs.push(cookie_pair(&visit(&manager, None, two_keys).await));
    }
    // One more session, whose write goes first; written once already, so
    // that Redis has the data write's script cached before calls count.
    let first_pair = cookie_pair(&visit(&manager, None, two_keys).await);
    visit(&manager, Some(&first_pair), |s| {
        s.insert("n", &1).expect("insert");
        s.remove("x");
        s.insert("y", &0).expect("insert");
    })
    .await;
    let loaded = Arc::new(Barrier::new(SESSIONS + 2));
    let first_goes = Arc::new(Barrier::new(2));
    let stopped = Arc::new(Barrier::new(SESSIONS + 1));
    let first = paused_request(&manager, &first_pair, [&loaded, &first_goes], |s| {
        s.insert("n", &2).expect("insert");
        s.remove("y");
    });
    let requests: Vec<_> = pairs
        .iter()
        .map(|pair| {
            paused_request(&manager, pair, [&loaded, &stopped], |s| {
                s.insert("n", &1).expect("insert");
                s.remove("x");
            })
        })
        .collect();
    loaded.wait().await;
    // The script refuses a key that is no longer a hash.
    assert_eq!(
        server
            .command(&["SET", &redis_key(&pairs[BROKEN]), "not a hash"])
            .expect("SET"),
        Reply::Status("OK".into())
    );
    assert_eq!(
        server.command(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT"),
        Reply::Status("OK".into())
    );
    let paused = Stopped::new(&server);
    // A save that goes out at once and waits for Redis...
    first_goes.wait().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... while the others queue behind it.
    stopped.wait().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(paused);
    first.await.expect("request").expect("the first save");

    for (i, request) in requests.into_iter().enumerate() {
        let finished = request.await.expect("request");
        if i == BROKEN {
            let error = finished.expect_err("the broken session fails to save");
            assert!(error.to_string().contains("WRONGTYPE"), "{error}");
        } else {
            finished.expect("saved");
            let session = peek(&manager, &pairs[i]).await;
            assert_eq!(
                session.get::<i32>("n").expect("get"),
                Some(1),
                "session {i}"
            );
            assert_eq!(session.get::<i32>("x").expect("get"), None, "session {i}");
        }
    }
    let calls = command_calls(&server);
    let script_calls = calls_where(&calls, |name| name.starts_with("eval"));
    assert_eq!(
        script_calls, 2,
        "the first save, then the {SESSIONS} others together: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_beats_fifty_slow_writes() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    let loaded = Arc::new(Barrier::new(51));
    let logged_out = Arc::new(Barrier::new(51));
    let writers: Vec<_> = (0..50)
        .map(|i| {
            paused_request(&manager, &pair, [&loaded, &logged_out], move |s| {
                s.insert(&format!("late{i}"), &i).expect("insert");
            })
        })
        .collect();
    loaded.wait().await;
    let logout = visit(&manager, Some(&pair), |s| s.invalidate()).await;
    assert!(
        cookie_pair(&logout).ends_with('='),
        "a removal cookie: {logout:?}"
    );
    logged_out.wait().await;
    for writer in writers {
        let set = writer.await.expect("writer").expect("save_changes");
        assert!(
            set.is_empty(),
            "a write after the logout sets no cookie: {set:?}"
        );
    }
    let replayed = peek(&manager, &pair).await;
    assert!(replayed.is_new() && replayed.is_empty());
    assert_eq!(integer(server.command(&["EXISTS", &redis_key(&pair)])), 0);
}

/// Fifty writes of the same key, which the session has, race a logout:
/// the first `HSET` after the logout makes a hash of the gone session that
/// the others may find (and be answered as having come before the
/// logout), but none brings the session back or leaves anything behind,
/// and none sends the client its cookie again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_beats_fifty_slow_writes_of_one_key() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("n", &0).expect("insert")).await);
    let loaded = Arc::new(Barrier::new(51));
    let logged_out = Arc::new(Barrier::new(51));
    let writers: Vec<_> = (0..50)
        .map(|i| {
            paused_request(&manager, &pair, [&loaded, &logged_out], move |s| {
                s.insert("n", &i).expect("insert");
            })
        })
        .collect();
    loaded.wait().await;
    let logout = visit(&manager, Some(&pair), |s| s.invalidate()).await;
    assert!(cookie_pair(&logout).ends_with('='), "{logout:?}");
    logged_out.wait().await;
    for writer in writers {
        let set = writer.await.expect("writer").expect("save_changes");
        assert!(
            set.is_empty(),
            "a write racing the logout never sets the cookie again: {set:?}"
        );
    }
    let replayed = peek(&manager, &pair).await;
    assert!(replayed.is_new() && replayed.is_empty());
    assert_eq!(integer(server.command(&["DBSIZE"])), 0);
}

#[tokio::test]
async fn malformed_hashes_load_as_new_sessions() {
    let server = RedisServer::start();
    let manager = SessionManager::new(store(&server).await, SessionConfig::default());
    let id = "A".repeat(32);
    let key = format!("session:{id}");
    let pair = format!("session={id}");
    let bad_hashes: [&[&str]; 4] = [
        &["d:k", "1"],
        &["m", "not json"],
        &["m", r#"{"c":1}"#, "d:k", "{not json"],
        &["m", r#"{"c":"yesterday"}"#],
    ];
    for fields in bad_hashes {
        server.command(&["DEL", &key]).expect("DEL");
        let mut args = vec!["HSET", key.as_str()];
        args.extend(fields);
        server.command(&args).expect("HSET");
        let session = peek(&manager, &pair).await;
        assert!(session.is_new() && session.is_empty(), "{fields:?} loaded");
    }
    // A key of another type is not a session either.
    server.command(&["DEL", &key]).expect("DEL");
    server.command(&["SET", &key, "a string"]).expect("SET");
    let error = manager.request().session([pair.as_bytes()]).await;
    assert!(
        matches!(&error, Err(session_core::Error::Store(_))),
        "a WRONGTYPE key is a store error, not a session: {error:?}"
    );
}

#[tokio::test]
async fn the_key_prefix_is_configurable() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .key_prefix("app1:")
        .connect(&server.url())
        .await
        .expect("connect");
    let manager = SessionManager::new(store, SessionConfig::default());
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let value = common::cookie_value(&pair);
    assert_eq!(
        integer(server.command(&["EXISTS", &format!("app1:{value}")])),
        1
    );
    assert_eq!(
        integer(server.command(&["EXISTS", &format!("session:{value}")])),
        0
    );
}

/// A store boxes the future of every load and save, and so copies it whole,
/// once per request. A fred command's future is several kilobytes: a load
/// may hold one, once (an `async fn` that awaits a future it was given
/// holds it twice), and a save, which hands its command to the batcher,
/// none.
#[tokio::test]
async fn the_futures_of_loads_and_saves_stay_small() {
    use fred::interfaces::HashesInterface;
    use std::mem::size_of_val;

    let server = RedisServer::start();
    let store = store(&server).await;
    let client = store.connection().client().clone();
    let command = size_of_val(&client.hgetall::<fred::types::Value, _>("k"));
    let id = "abcdefghijklmnopqrstuvwxyz012345";
    let load = size_of_val(&*store.load(SessionCookie::new("session", id)));
    assert!(
        load <= command + 1024,
        "a load's future is {load} bytes, a command's {command}"
    );
    let now = SystemTime::now();
    let (record, changes) = (Arc::new(Record::new(now)), Changes::default());
    let cookie = SessionCookie::new("session", id);
    let save = size_of_val(&*store.update(Update::new(cookie, &record, &changes, now)));
    assert!(save <= 1024, "a save's future is {save} bytes");
}
