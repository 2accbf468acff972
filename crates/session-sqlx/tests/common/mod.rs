//! What the Postgres and SQLite tests share: checks that go through the
//! public trait only, against any store.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use session_core::{
    Changes, Create, Record, Refresh, SessionConfig, SessionCookie, SessionManager, SessionStore,
    Update, Written,
};

/// A table name no other test of this process uses.
pub fn unique_table(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub const COOKIE: &str = "session";

/// A record created now, expiring in an hour.
pub fn record(data: Value) -> Arc<Record> {
    let now = SystemTime::now();
    let mut record = Record::new(now);
    record.expires_at = Some(now + Duration::from_secs(3600));
    let Value::Object(map) = data else {
        panic!("data must be an object")
    };
    record.data = map;
    Arc::new(record)
}

pub async fn create(store: &dyn SessionStore, data: Value) -> String {
    let record = record(data);
    store
        .create(Create::new(COOKIE, &record, SystemTime::now()))
        .await
        .expect("create")
}

pub async fn data(store: &dyn SessionStore, id: &str) -> Option<Value> {
    store
        .load(SessionCookie::new(COOKIE, id))
        .await
        .expect("load")
        .map(|record| Value::Object(record.data.clone()))
}

/// Writes `key` = `value` to the session `id` as a request that loaded it
/// would: a delta of one key.
pub async fn write_key(store: &dyn SessionStore, id: &str, key: &str, value: Value) -> Written {
    let mut record = Record::clone(&record(json!({})));
    record.data.insert(key.to_owned(), value);
    let record = Arc::new(record);
    let mut changes = Changes::default();
    changes.record_write(key);
    store
        .update(Update::new(
            SessionCookie::new(COOKIE, id),
            &record,
            &changes,
            SystemTime::now(),
        ))
        .await
        .expect("update")
}

/// Many requests write distinct keys of one session at the same time:
/// every key is kept (a store that saves whole records keeps only the last).
pub async fn concurrent_distinct_keys_all_survive(store: Arc<dyn SessionStore>) {
    const WRITERS: usize = 32;
    let id = create(&*store, json!({"base": 0})).await;
    let mut tasks = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            write_key(&*store, &id, &format!("k{i}"), json!(i)).await
        }));
    }
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Written::Cookie(_)));
    }
    let Some(Value::Object(map)) = data(&*store, &id).await else {
        panic!("the session is gone")
    };
    assert_eq!(map.len(), WRITERS + 1, "{map:?}");
    for i in 0..WRITERS {
        assert_eq!(map[&format!("k{i}")], json!(i));
    }
}

/// A rolling refresh rewrites only the deadline: a key written meanwhile by
/// another request stays.
pub async fn a_refresh_rewrites_only_the_deadline(store: &dyn SessionStore) {
    let id = create(store, json!({"a": 1})).await;
    // The refreshing request loaded the session before this write.
    let stale = record(json!({"a": 1}));
    assert!(matches!(
        write_key(store, &id, "b", json!(2)).await,
        Written::Cookie(_)
    ));
    let mut refreshed = Record::clone(&stale);
    let deadline = SystemTime::now() + Duration::from_secs(7200);
    refreshed.expires_at = Some(deadline);
    let refreshed = Arc::new(refreshed);
    let written = store
        .refresh(Refresh::new(
            SessionCookie::new(COOKIE, &id),
            &refreshed,
            SystemTime::now(),
        ))
        .await
        .expect("refresh");
    assert!(matches!(written, Written::Cookie(_)));
    let loaded = store
        .load(SessionCookie::new(COOKIE, &id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Value::Object(loaded.data.clone()), json!({"a": 1, "b": 2}));
    assert_eq!(
        loaded.expires_at.map(session_core::unix_millis),
        Some(session_core::unix_millis(deadline))
    );
}

/// A session whose deadline passed does not load, and the cleanup deletes
/// it (and only it).
pub async fn expired_rows_do_not_load_and_are_cleaned_up(
    store: &dyn SessionStore,
    delete_expired: impl AsyncFnOnce() -> u64,
) {
    let live = create(store, json!({"live": true})).await;
    let mut expired = Record::clone(&record(json!({"old": true})));
    expired.expires_at = Some(SystemTime::now() - Duration::from_secs(1));
    let expired = Arc::new(expired);
    let old = store
        .create(Create::new(COOKIE, &expired, SystemTime::now()))
        .await
        .unwrap();
    assert_eq!(data(store, &old).await, None, "an expired row never loads");
    assert_eq!(
        write_key(store, &old, "k", json!(1)).await,
        Written::Gone,
        "nor is written"
    );
    assert!(delete_expired().await >= 1);
    assert!(
        !store
            .delete(SessionCookie::new(COOKIE, &old))
            .await
            .unwrap(),
        "the expired row was deleted"
    );
    assert_eq!(data(store, &live).await, Some(json!({"live": true})));
}

/// The demo's whole request cycle through a manager, as an application
/// would use the store.
pub async fn a_manager_round_trip(store: impl SessionStore) {
    let manager = SessionManager::new(store, SessionConfig::default());
    let request = manager.request();
    request
        .session([])
        .await
        .unwrap()
        .insert("user", "ada")
        .unwrap();
    let set_cookie = request.save_changes().await.unwrap();
    let cookie = session_conformance::SetCookie::parse(&set_cookie[0]).pair();
    let next = manager.request();
    let user: Option<String> = next
        .session([cookie.as_bytes()])
        .await
        .unwrap()
        .get("user")
        .unwrap();
    assert_eq!(user.as_deref(), Some("ada"));
}

/// Keys that look like JSON paths, quotes and escapes are written and
/// removed as plain keys.
pub async fn odd_keys_are_plain_keys(store: &dyn SessionStore) {
    const KEYS: [&str; 9] = [
        "a.b",
        "$.x",
        "$",
        "q\"uote",
        "back\\slash",
        "[0]",
        "  ",
        "ключ",
        "null",
    ];
    let id = create(store, json!({"keep": true})).await;
    for (i, key) in KEYS.iter().enumerate() {
        assert!(matches!(
            write_key(store, &id, key, json!({ "i": i, "nested": {"k": null} })).await,
            Written::Cookie(_)
        ));
    }
    let Some(Value::Object(map)) = data(store, &id).await else {
        panic!("the session is gone")
    };
    assert_eq!(map.len(), KEYS.len() + 1, "{map:?}");
    assert_eq!(map["q\"uote"], json!({ "i": 3, "nested": {"k": null} }));
    // Remove every odd key in one delta.
    let record = record(json!({}));
    let mut changes = Changes::default();
    for key in KEYS {
        changes.record_remove(key);
    }
    let written = store
        .update(Update::new(
            SessionCookie::new(COOKIE, &id),
            &record,
            &changes,
            SystemTime::now(),
        ))
        .await
        .expect("update");
    assert!(matches!(written, Written::Cookie(_)));
    assert_eq!(data(store, &id).await, Some(json!({"keep": true})));
}

/// The statements that made a table of the first release (migration 1
/// only), and its one session, `{"user": "ada"}` under `id`: what an
/// application upgrading this crate has in its database. `bigint` and
/// `json` are the dialect's types for the integer and `data` columns.
pub fn first_release_schema(table: &str, id: &str, bigint: &str, json: &str) -> Vec<String> {
    let now = session_core::unix_millis(SystemTime::now());
    let deadline = now + 3_600_000;
    vec![
        format!(
            "CREATE TABLE \"{table}\" (id TEXT PRIMARY KEY NOT NULL, data {json} NOT NULL, \
             created {bigint} NOT NULL, expires_at {bigint}, expiry TEXT)"
        ),
        format!("CREATE INDEX \"{table}_expires_at\" ON \"{table}\" (expires_at)"),
        format!(
            "CREATE TABLE \"{table}_migrations\" (version BIGINT PRIMARY KEY NOT NULL, \
             description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
        ),
        format!(
            "INSERT INTO \"{table}_migrations\" VALUES \
             (1, 'sessions table, with an index on the deadline', {now})"
        ),
        format!(
            "INSERT INTO \"{table}\" (id, data, created, expires_at) VALUES \
             ('{id}', '{{\"user\":\"\\\"ada\\\"\"}}', {now}, {deadline})"
        ),
    ]
}

/// After the migrations ran on a table of the first release: its session
/// (`id`) still loads, can be bound to a user, listed and revoked.
pub async fn an_upgraded_table_keeps_its_sessions(store: impl SessionStore, id: &str) {
    let manager = SessionManager::new(store, SessionConfig::default());
    let cookie = format!("{COOKIE}={id}");
    let request = manager.request();
    let session = request.session([cookie.as_bytes()]).await.unwrap();
    assert!(!session.is_new(), "the session of the first release loads");
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("ada")
    );
    session.bind_user("42");
    session.set_label("laptop");
    request.save_changes().await.unwrap();

    let listed = manager.sessions_of("42").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label(), Some("laptop"));
    assert_eq!(manager.revoke_all_except("42", None).await.unwrap(), 1);
    let request = manager.request();
    let session = request.session([cookie.as_bytes()]).await.unwrap();
    assert!(session.is_new(), "revoked");
    assert!(manager.sessions_of("42").await.unwrap().is_empty());
}
