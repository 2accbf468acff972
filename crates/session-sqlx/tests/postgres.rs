//! `PostgresStore` against a real Postgres server.

#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use session_conformance::{self as conformance, StoreKind};
use session_core::{Error, SessionCookie, SessionStore};
use session_sqlx::PostgresStore;
use session_testing::PostgresServer;

use common::*;

/// A migrated store on a table of its own on the shared server.
async fn store(server: &PostgresServer) -> PostgresStore {
    store_on(server, &unique_table("sessions")).await
}

/// A migrated store on `table`.
async fn store_on(server: &PostgresServer, table: &str) -> PostgresStore {
    let store = PostgresStore::connect(&server.url())
        .await
        .expect("connect")
        .with_table_name(table)
        .expect("a valid name");
    store.migrate().await.expect("migrate");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let server = PostgresServer::shared();
    let report = conformance::run(store(&server).await, StoreKind::ServerSide).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(report.passed().len() >= 24, "{:?}", report.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_a_schema_of_its_own() {
    let server = PostgresServer::shared();
    let store = PostgresStore::connect(&server.url())
        .await
        .unwrap()
        .with_table_name(&format!("{}.sessions", unique_table("app")))
        .unwrap();
    store.migrate().await.expect("migrate creates the schema");
    let report = conformance::run(store, StoreKind::ServerSide).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_distinct_key_writes_are_all_kept() {
    let server = PostgresServer::shared();
    concurrent_distinct_keys_all_survive(Arc::new(store(&server).await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_refresh_rewrites_only_the_deadline() {
    let server = PostgresServer::shared();
    a_refresh_rewrites_only_the_deadline(&store(&server).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rows_are_cleaned_up() {
    let server = PostgresServer::shared();
    let store = store(&server).await;
    expired_rows_do_not_load_and_are_cleaned_up(&store, async || {
        store.delete_expired().await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_runs_on_its_own() {
    let server = PostgresServer::shared();
    let store = store(&server).await;
    let task = store.spawn_cleanup(Duration::from_millis(50));
    expired_rows_do_not_load_and_are_cleaned_up(&store, async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        1
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_even_when_called_concurrently() {
    let server = PostgresServer::shared();
    let table = unique_table("migrated");
    let store = PostgresStore::connect(&server.url())
        .await
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().expect("migrate");
    }
    store.migrate().await.expect("and again");
    let versions = server
        .execute(&format!("SELECT count(*) FROM \"{table}_migrations\""))
        .unwrap();
    assert_eq!(versions, "2");
    let index = server
        .execute(&format!(
            "SELECT indexdef FROM pg_indexes WHERE indexname = '{table}_expires_at'"
        ))
        .unwrap();
    assert!(index.contains("(expires_at)"), "{index}");
    let index = server
        .execute(&format!(
            "SELECT indexdef FROM pg_indexes WHERE indexname = '{table}_user_id'"
        ))
        .unwrap();
    assert!(
        index.contains("(user_id, expires_at) WHERE (user_id IS NOT NULL)"),
        "{index}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_first_release_is_upgraded_and_keeps_its_sessions() {
    let server = PostgresServer::shared();
    let table = unique_table("first_release");
    let id = session_core::SessionId::generate().into_string();
    for statement in first_release_schema(&table, &id, "BIGINT", "JSONB") {
        server.execute(&statement).unwrap();
    }
    let store = store_on(&server, &table).await;
    an_upgraded_table_keeps_its_sessions(store, &id).await;
    let versions = server
        .execute(&format!("SELECT count(*) FROM \"{table}_migrations\""))
        .unwrap();
    assert_eq!(versions, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_users_sessions_uses_the_index() {
    let server = PostgresServer::shared();
    let table = unique_table("listed");
    let _store = store_on(&server, &table).await;
    // Without statistics or rows the planner could scan anyway: forbid it.
    let plan = server
        .execute(&format!(
            "SET enable_seqscan = off; EXPLAIN SELECT id FROM \"{table}\" \
             WHERE user_id = '42' AND (expires_at IS NULL OR expires_at > 0)"
        ))
        .unwrap();
    assert!(plan.contains(&format!("{table}_user_id")), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_created_before_migrate() {
    let server = PostgresServer::shared();
    let table = unique_table("unmigrated");
    let store = PostgresStore::connect(&server.url())
        .await
        .unwrap()
        .with_table_name(&table)
        .unwrap();
    let load = store
        .load(SessionCookie::new(COOKIE, &"A".repeat(32)))
        .await;
    assert!(matches!(load, Err(Error::Store(_))), "{load:?}");
    let exists = server
        .execute(&format!("SELECT to_regclass('\"{table}\"') IS NULL"))
        .unwrap();
    assert_eq!(exists, "t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_readable_in_sql() {
    let server = PostgresServer::shared();
    let table = unique_table("readable");
    let store = store_on(&server, &table).await;
    let id = create(&store, json!({"user": "ada", "n": 0.1, "s": "\u{0}"})).await;
    let user = server
        .execute(&format!(
            "SELECT (data->>'user')::jsonb #>> '{{}}' FROM \"{table}\" WHERE id = '{id}'"
        ))
        .unwrap();
    assert_eq!(user, "ada");
    assert_eq!(
        data(&store, &id).await,
        Some(json!({"user": "ada", "n": 0.1, "s": "\u{0}"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shows_neither_password_nor_ids() {
    let store = PostgresStore::connect("postgres://app:hunter2@127.0.0.1:1/app")
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("sessions"), "{debug}");
}

/// With the server down, or frozen, operations fail within the timeout;
/// once it is back, the same store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_fast_and_recovers() {
    let mut server = PostgresServer::start();
    let store = store(&server)
        .await
        .with_timeout(Duration::from_millis(1500));
    let id = create(&store, json!({"a": 1})).await;

    server.pause();
    let started = Instant::now();
    let load = store.load(SessionCookie::new(COOKIE, &id)).await;
    assert!(matches!(load, Err(Error::Store(_))), "{load:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.resume();
    assert_eq!(data(&store, &id).await, Some(json!({"a": 1})));

    server.stop();
    let started = Instant::now();
    let load = store.load(SessionCookie::new(COOKIE, &id)).await;
    assert!(matches!(load, Err(Error::Store(_))), "{load:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.restart();
    let mut recovered = None;
    for _ in 0..20 {
        match store.load(SessionCookie::new(COOKIE, &id)).await {
            Ok(record) => {
                recovered = record;
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let recovered = recovered.expect("the store recovers without a restart");
    assert_eq!(recovered.data["a"], json!(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_round_trips() {
    let server = PostgresServer::shared();
    a_manager_round_trip(store(&server).await).await;
}

/// Many loads at once (which the store sends together): each gets its own
/// session, the same id twice gets it twice, and unknown or expired ids get
/// none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_each_get_their_own_session() {
    let server = PostgresServer::shared();
    let store = Arc::new(store(&server).await);
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push((
            create(&*store, json!({ "i": i })).await,
            Some(json!({ "i": i })),
        ));
    }
    ids.push(("A".repeat(32), None));
    ids.push((ids[0].0.clone(), ids[0].1.clone()));
    let mut tasks = Vec::new();
    for (id, expected) in ids.clone().into_iter().chain(ids) {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            assert_eq!(data(&*store, &id).await, expected);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Two processes' stores (each batching its own updates) write distinct
/// keys of the same sessions at once, in opposite orders: every key is
/// kept, and their batches, which lock the same rows, never deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_updates_from_two_processes_all_survive() {
    const SESSIONS: usize = 20;
    const KEYS: usize = 6;
    let server = PostgresServer::shared();
    let table = unique_table("two_processes");
    let first = Arc::new(store_on(&server, &table).await);
    let second = Arc::new(store_on(&server, &table).await);
    let mut ids = Vec::new();
    for _ in 0..SESSIONS {
        ids.push(create(&*first, json!({})).await);
    }
    let mut tasks = Vec::new();
    for key in 0..KEYS {
        for n in 0..SESSIONS {
            let (store, id) = if key % 2 == 0 {
                (first.clone(), ids[n].clone())
            } else {
                (second.clone(), ids[SESSIONS - 1 - n].clone())
            };
            tasks.push(tokio::spawn(async move {
                write_key(&*store, &id, &format!("k{key}"), json!(key)).await
            }));
        }
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            session_core::Written::Cookie(_)
        ));
    }
    for id in &ids {
        let Some(serde_json::Value::Object(map)) = data(&*first, id).await else {
            panic!("a session is gone")
        };
        assert_eq!(map.len(), KEYS, "{map:?}");
    }
}

/// A key Postgres refuses (U+0000) fails its own write only, not the
/// writes batched with it; a value may hold U+0000.
/// A key, a user or a label holding U+0000, which Postgres refuses, fails
/// its own update and none of the other sessions' updates batched with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_user_or_label_postgres_refuses_fails_alone() {
    const REFUSED: [usize; 3] = [7, 11, 13];
    let server = PostgresServer::shared();
    let store = Arc::new(store(&server).await);
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(create(&*store, json!({})).await);
    }
    // Started together, so that they queue behind one another and go to
    // Postgres in batches.
    let start = Arc::new(tokio::sync::Barrier::new(ids.len()));
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (store, id, start) = (store.clone(), id.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let mut record = session_core::Record::clone(&record(json!({})));
            let key = if i == 7 { "bad\u{0}key" } else { "k" };
            record.data.insert(key.to_owned(), json!("v\u{0}"));
            match i {
                11 => record.user = Some("bad\u{0}user".to_owned()),
                13 => record.label = Some("bad\u{0}label".to_owned()),
                _ => {}
            }
            let record = Arc::new(record);
            let mut changes = session_core::Changes::default();
            changes.record_write(key);
            start.wait().await;
            store
                .update(session_core::Update::new(
                    SessionCookie::new(COOKIE, &id),
                    &record,
                    &changes,
                    std::time::SystemTime::now(),
                ))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let written = task.await.unwrap();
        if REFUSED.contains(&i) {
            assert!(matches!(written, Err(Error::Store(_))), "{i}: {written:?}");
        } else {
            assert!(
                matches!(written, Ok(session_core::Written::Cookie(_))),
                "{i}: {written:?}"
            );
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let expected = if REFUSED.contains(&i) {
            json!({})
        } else {
            json!({"k": "v\u{0}"})
        };
        assert_eq!(data(&*store, id).await, Some(expected), "{i}");
    }
}

/// A row whose data is not an object (written by hand) does not fail the
/// writes batched with it: a write replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_by_hand_is_replaced_by_a_write() {
    let server = PostgresServer::shared();
    let table = unique_table("by_hand");
    let store = store_on(&server, &table).await;
    let id = create(&store, json!({"a": 1})).await;
    server
        .execute(&format!(
            "UPDATE \"{table}\" SET data = '[1, 2]'::jsonb WHERE id = '{id}'"
        ))
        .unwrap();
    assert_eq!(
        data(&store, &id).await,
        None,
        "a malformed row does not load"
    );
    assert!(matches!(
        write_key(&store, &id, "b", json!(2)).await,
        session_core::Written::Cookie(_)
    ));
    assert_eq!(data(&store, &id).await, Some(json!({"b": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_keys_are_written_and_removed_as_plain_keys() {
    let server = PostgresServer::shared();
    odd_keys_are_plain_keys(&store(&server).await).await;
}

/// One store used from several runtimes (a `static` shared by a test
/// suite's tests, say): a runtime that shuts down with a call of the store
/// queued, before the task that would send it first ran, leaves the store
/// serving the others.
#[test]
fn a_runtime_that_shut_down_with_a_call_queued_leaves_the_store_serving() {
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let server = PostgresServer::shared();
    let store = main.block_on(store(&server));
    let id = session_core::SessionId::generate();
    let cookie = SessionCookie::new(COOKIE, id.as_str());

    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    other.block_on(async {
        // One poll queues the load and spawns the task that would send it,
        // which this runtime never runs: it is dropped with the runtime.
        let mut load = store.load(cookie);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(load.as_mut().poll(&mut context).is_pending());
    });
    drop(other);

    let loaded = main.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), store.load(cookie)).await
    });
    assert!(matches!(loaded, Ok(Ok(None))), "{loaded:?}");
}
