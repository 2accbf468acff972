//! `SqliteStore` against real SQLite files.

#![cfg(feature = "sqlite")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use session_conformance::{self as conformance, StoreKind};
use session_core::{Error, SessionCookie, SessionStore};
use session_sqlx::SqliteStore;
use tempfile::TempDir;

use common::*;

/// A migrated store on a file of its own, and the directory that holds it.
async fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = SqliteStore::connect(&url).await.expect("open");
    store.migrate().await.expect("migrate");
    (store, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let (store, _dir) = store().await;
    let report = conformance::run(store, StoreKind::ServerSide).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert!(skipped.is_empty(), "{skipped:?}");
    assert!(report.passed().len() >= 24, "{:?}", report.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_in_memory_with_a_table_name() {
    let store = SqliteStore::connect("sqlite::memory:")
        .await
        .unwrap()
        .with_table_name("app_sessions")
        .unwrap();
    store.migrate().await.unwrap();
    let report = conformance::run(store, StoreKind::ServerSide).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_distinct_key_writes_are_all_kept() {
    let (store, _dir) = store().await;
    concurrent_distinct_keys_all_survive(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_refresh_rewrites_only_the_deadline() {
    let (store, _dir) = store().await;
    a_refresh_rewrites_only_the_deadline(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rows_are_cleaned_up() {
    let (store, _dir) = store().await;
    expired_rows_do_not_load_and_are_cleaned_up(&store, async || {
        store.delete_expired().await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_task_runs_on_its_own() {
    let (store, _dir) = store().await;
    let task = store.spawn_cleanup(Duration::from_millis(50));
    expired_rows_do_not_load_and_are_cleaned_up(&store, async || {
        tokio::time::sleep(Duration::from_millis(300)).await;
        1
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_sessions_survive_a_reopen() {
    let (store, dir) = store().await;
    store.migrate().await.expect("again");
    let id = create(&store, json!({"kept": true})).await;
    store.pool().close().await;
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let reopened = SqliteStore::connect(&url).await.unwrap();
    reopened.migrate().await.unwrap();
    let (versions,): (i64,) = sqlx::query_as("SELECT count(*) FROM sessions_migrations")
        .fetch_one(reopened.pool())
        .await
        .unwrap();
    assert_eq!(versions, 2, "the two migrations, each once");
    assert_eq!(data(&reopened, &id).await, Some(json!({"kept": true})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_created_before_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let load = store
        .load(SessionCookie::new(COOKIE, &"A".repeat(32)))
        .await;
    assert!(matches!(load, Err(Error::Store(_))), "{load:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_are_readable_in_sql() {
    let (store, _dir) = store().await;
    let id = create(
        &store,
        json!({"user": "ada", "n": 0.1, "big": 9_007_199_254_740_993_i64}),
    )
    .await;
    let (user,): (String,) =
        sqlx::query_as("SELECT json(data->>'user') ->> '$' FROM sessions WHERE id = ?1")
            .bind(&id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(user, "ada");
    assert_eq!(
        data(&store, &id).await,
        Some(json!({"user": "ada", "n": 0.1, "big": 9_007_199_254_740_993_i64}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_round_trips() {
    let (store, _dir) = store().await;
    a_manager_round_trip(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_keys_are_written_and_removed_as_plain_keys() {
    let (store, _dir) = store().await;
    odd_keys_are_plain_keys(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_of_the_first_release_is_upgraded_and_keeps_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let id = session_core::SessionId::generate().into_string();
    for statement in first_release_schema("sessions", &id, "INTEGER", "TEXT") {
        sqlx::query(&statement).execute(store.pool()).await.unwrap();
    }
    store.migrate().await.expect("migrate");
    let (versions,): (i64,) = sqlx::query_as("SELECT count(*) FROM sessions_migrations")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(versions, 2);
    an_upgraded_table_keeps_its_sessions(store, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_users_sessions_uses_the_index() {
    let (store, _dir) = store().await;
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT id FROM sessions \
         WHERE user_id = '42' AND (expires_at IS NULL OR expires_at > 0)",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let plan: Vec<&str> = plan
        .iter()
        .map(|(_, _, _, detail)| detail.as_str())
        .collect();
    assert!(
        plan.iter()
            .any(|detail| detail.contains("sessions_user_id")),
        "{plan:?}"
    );
}

/// A row edited by hand so that a column holds another type than the store
/// writes there (SQLite keeps any type) loads as no session rather than
/// failing every request with its cookie, is left out of its user's
/// listing without failing it, and goes at the next cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_of_another_type_is_a_malformed_row() {
    let (store, _dir) = store().await;
    let edited = create(&store, json!({"k": 1})).await;
    let kept = create(&store, json!({"k": 2})).await;
    sqlx::query("UPDATE sessions SET user_id = 'ada'")
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET expires_at = 'never' WHERE id = ?1")
        .bind(&edited)
        .execute(store.pool())
        .await
        .unwrap();

    let loaded = store.load(SessionCookie::new(COOKIE, &edited)).await;
    assert!(matches!(loaded, Ok(None)), "{loaded:?}");
    assert_eq!(data(&store, &kept).await, Some(json!({"k": 2})));
    let index = store.user_index().expect("a user index");
    let listed = index
        .sessions_of("ada", std::time::SystemTime::now())
        .await
        .expect("the listing");
    let listed: Vec<&str> = listed.iter().map(|s| s.cookie_value.as_str()).collect();
    assert_eq!(listed, [kept.as_str()]);
    assert_eq!(store.delete_expired().await.expect("cleanup"), 1);
    assert_eq!(data(&store, &kept).await, Some(json!({"k": 2})));
}
