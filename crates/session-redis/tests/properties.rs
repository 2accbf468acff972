//! Property tests of the Redis store's decoders (issue 7), against a real
//! `redis-server`: arbitrary cookie values never load a session that was
//! not issued, arbitrary contents of a session hash (written behind the
//! store's back, as a compromised or buggy writer could) load without an
//! error or a panic, and arbitrary session data round-trips.
//!
//! Each test starts one server and runs all its cases against it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use fred::prelude::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value as Json, json};
use session_conformance::arbitrary;
use session_core::unix_millis;
use session_core::{SessionConfig, SessionCookie, SessionManager, SessionStore};
use session_redis::RedisStore;
use session_testing::RedisServer;

use common::{cookie_pair, cookie_value, visit};

/// proptest's configuration (`PROPTEST_CASES` still applies), without the
/// regression file that a runner outside the `proptest!` macro cannot
/// place.
fn runner() -> TestRunner {
    TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Sends a raw command with binary arguments through the store's client.
async fn raw(store: &RedisStore, command: &'static str, args: Vec<Vec<u8>>) -> Value {
    let args: Vec<Value> = args.into_iter().map(|a| Value::Bytes(a.into())).collect();
    store
        .connection()
        .client()
        .custom(
            CustomCommand::new_static(command, ClusterHash::FirstKey, false),
            args,
        )
        .await
        .expect("a raw command")
}

#[test]
fn arbitrary_cookie_values_never_load_a_session_that_was_not_issued() {
    let server = RedisServer::start();
    let runtime = runtime();
    let (store, issued) = runtime.block_on(async {
        let store = RedisStore::from_url(&server.url()).await.expect("connect");
        let manager = SessionManager::new(store.clone(), SessionConfig::default());
        let mut issued = Vec::new();
        for n in 0..3 {
            let set = visit(&manager, None, |s| s.insert("n", &n).expect("insert")).await;
            issued.push(cookie_value(&cookie_pair(&set)).to_owned());
        }
        (store, issued)
    });
    // Mostly 32-character base64url values: the shape of an id, so that
    // they get past the shape check and are looked up in Redis.
    let value = prop_oneof![
        3 => proptest::collection::vec(
            proptest::sample::select(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec(),
            ),
            32,
        )
        .prop_map(|bytes| String::from_utf8(bytes).expect("ASCII")),
        1 => arbitrary::cookie_value(64),
    ];
    runner()
        .run(&value, |value| {
            let loaded = runtime
                .block_on(store.load(SessionCookie::new("session", &value)))
                .expect("an unknown cookie is not an error");
            prop_assert_eq!(loaded.is_some(), issued.contains(&value));
            Ok(())
        })
        .unwrap();
}

/// The metadata field `m`: mostly well-formed (`{"c": ms}` with an
/// optional deadline and expiry), sometimes a hostile variant.
fn metadata_field() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let well_formed = (
        arbitrary::unix_millis(),
        proptest::option::of((arbitrary::timeout_millis(), arbitrary::timeout_millis())),
        // The deadline: absent (written by hand), null, or a time.
        prop_oneof![
            Just(None),
            Just(Some(Json::Null)),
            arbitrary::unix_millis().prop_map(|ms| Some(json!(ms))),
        ],
    )
        .prop_map(|(created, expiry, deadline)| {
            let mut metadata = match expiry {
                Some((idle, absolute)) => json!({"c": created, "x": {"i": idle, "a": absolute}}),
                None => json!({"c": created}),
            };
            if let Some(deadline) = deadline {
                metadata["e"] = deadline;
            }
            metadata
        });
    let hostile = (
        prop_oneof![
            any::<u64>().prop_map(Json::from),
            Just(json!(-1)),
            Just(json!("x")),
        ],
        arbitrary::json_value(),
    )
        .prop_map(|(created, expiry)| json!({"c": created, "x": expiry}));
    prop_oneof![4 => well_formed, 1 => hostile, 1 => arbitrary::json_value()]
        .prop_map(|metadata| (b"m".to_vec(), metadata.to_string().into_bytes()))
}

/// Any other field: mostly a data field `d:{key}` holding JSON, sometimes
/// a name the layout does not read or a value that is not JSON.
fn other_field() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let name = prop_oneof![
        4 => arbitrary::text(6).prop_map(|key| format!("d:{key}").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    let value = prop_oneof![
        6 => arbitrary::json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ];
    (name, value)
}

/// The fields of a session hash, the metadata (when present) first.
fn hash_fields() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    (
        proptest::option::weighted(0.9, metadata_field()),
        proptest::collection::vec(other_field(), 0..6),
    )
        .prop_map(|(metadata, others)| metadata.into_iter().chain(others).collect::<Vec<_>>())
        .prop_filter("HSET needs a field", |fields: &Vec<_>| !fields.is_empty())
}

#[test]
fn arbitrary_hash_contents_load_without_error_or_panic() {
    let server = RedisServer::start();
    let runtime = runtime();
    let store =
        runtime.block_on(async { RedisStore::from_url(&server.url()).await.expect("connect") });
    let id = "A".repeat(32);
    let key = format!("session:{id}").into_bytes();
    let deadline = prop_oneof![
        Just(None),
        // Far enough ahead that the key does not vanish during the case.
        (4_102_444_800_000_u64..=32_503_680_000_000).prop_map(Some),
    ];
    let contents = (hash_fields(), deadline);
    runner()
        .run(&contents, |(fields, deadline)| {
            let loaded = runtime.block_on(async {
                raw(&store, "DEL", vec![key.clone()]).await;
                let mut args = vec![key.clone()];
                for (name, value) in &fields {
                    args.push(name.clone());
                    args.push(value.clone());
                }
                raw(&store, "HSET", args).await;
                if let Some(deadline) = deadline {
                    raw(
                        &store,
                        "PEXPIREAT",
                        vec![key.clone(), deadline.to_string().into_bytes()],
                    )
                    .await;
                }
                store.load(SessionCookie::new("session", &id)).await
            });
            let loaded = loaded.expect("a malformed hash is not an error");
            // HSET keeps the last value written to a field.
            let stored: BTreeMap<&[u8], &[u8]> = fields
                .iter()
                .map(|(name, value)| (name.as_slice(), value.as_slice()))
                .collect();
            if let Some(record) = loaded {
                prop_assert!(
                    stored.contains_key(&b"m"[..]),
                    "a hash without metadata loaded"
                );
                // Every data key is a `d:` field, holding that JSON value.
                for (key, value) in &record.data {
                    let field = format!("d:{key}");
                    let stored = stored.get(field.as_bytes()).expect("a d: field");
                    prop_assert_eq!(&serde_json::from_slice::<Json>(stored).unwrap(), value);
                }
                let data_fields = stored.keys().filter(|name| name.starts_with(b"d:")).count();
                prop_assert_eq!(record.data.len(), data_fields);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn hashes_written_in_the_documented_layout_load() {
    let server = RedisServer::start();
    let runtime = runtime();
    let store =
        runtime.block_on(async { RedisStore::from_url(&server.url()).await.expect("connect") });
    let id = "B".repeat(32);
    let key = format!("session:{id}").into_bytes();
    let contents = (
        arbitrary::unix_millis(),
        arbitrary::timeout_millis(),
        arbitrary::session_data(),
    );
    runner()
        .run(&contents, |(created, idle, data)| {
            let loaded = runtime.block_on(async {
                raw(&store, "DEL", vec![key.clone()]).await;
                let expiry = match idle {
                    Some(idle) => format!(r#","x":{{"i":{idle},"a":null}}"#),
                    None => String::new(),
                };
                let metadata = format!(r#"{{"e":null,"c":{created}{expiry}}}"#);
                let mut args = vec![key.clone(), b"m".to_vec(), metadata.into_bytes()];
                for (name, value) in &data {
                    args.push(format!("d:{name}").into_bytes());
                    args.push(value.to_string().into_bytes());
                }
                raw(&store, "HSET", args).await;
                store.load(SessionCookie::new("session", &id)).await
            });
            let record = loaded.expect("no error").expect("a well-formed hash loads");
            prop_assert_eq!(unix_millis(record.created), created);
            prop_assert_eq!(record.expires_at, None);
            let expiry = record.expiry.map(|e| e.idle_timeout());
            prop_assert_eq!(expiry, idle.map(|ms| Some(Duration::from_millis(ms))));
            prop_assert_eq!(&record.data, &data);
            Ok(())
        })
        .unwrap();
}

#[test]
fn arbitrary_session_data_round_trips() {
    let server = RedisServer::start();
    let runtime = runtime();
    let manager = runtime.block_on(async {
        let store = RedisStore::from_url(&server.url()).await.expect("connect");
        SessionManager::new(store, SessionConfig::default())
    });
    runner()
        .run(&arbitrary::session_data(), |data| {
            runtime.block_on(async {
                let set = visit(&manager, None, |session| {
                    for (key, value) in &data {
                        session.insert_value(key, value.clone());
                    }
                    session.mark_changed();
                })
                .await;
                let pair = cookie_pair(&set);
                let loaded = common::peek(&manager, &pair).await;
                prop_assert!(!loaded.is_new());
                prop_assert_eq!(loaded.data(), data);
                Ok(())
            })
        })
        .unwrap();
}
