//! The cache of opened cookies keeps within its memory budget as the
//! allocator counts it, for sessions of every shape, and uses most of it.
//!
//! A test binary of its own: the allocator's counts are global, and no
//! other test may allocate while one is measured.

use std::alloc::System;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use session_core::{Create, Record, SessionStore};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const BUDGET: usize = 2 << 20;

/// What the allocator keeps for each live allocation beyond the bytes
/// asked for, on average: a header word, and half of the rounding to 16.
const PER_ALLOCATION: usize = 16;

fn record(data: Value, user: Option<&str>) -> Record {
    let mut record = Record::new(SystemTime::now());
    record.expires_at = Some(SystemTime::now() + std::time::Duration::from_secs(3600));
    record.user = user.map(str::to_owned);
    let Value::Object(data) = data else {
        unreachable!("an object")
    };
    record.data = data;
    // Built as the store builds what it opens: parsed from JSON, each map
    // by insertion (a map collected at once packs its nodes fuller).
    serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap()
}

/// Sessions of the shapes the cache meets: the benchmark's small one, a
/// 1 KB string, many keys (a map of several nodes), nested objects and
/// arrays, and one bound to a user.
fn shapes() -> Vec<(&'static str, Record)> {
    let many_keys: serde_json::Map<String, Value> =
        (0..60).map(|i| (format!("key{i}"), json!(i))).collect();
    let items: Vec<Value> = (0..20)
        .map(|i| json!({ "sku": format!("sku-{i}"), "qty": i, "gift": false }))
        .collect();
    vec![
        (
            "one short string",
            record(json!({ "user": "ada@example.com" }), None),
        ),
        (
            "a 1 KB string",
            record(json!({ "user": "ada", "payload": "p".repeat(1000) }), None),
        ),
        ("sixty keys", record(Value::Object(many_keys), None)),
        (
            "a cart of twenty items",
            record(
                json!({ "cart": { "items": items, "currency": "EUR" } }),
                None,
            ),
        ),
        (
            "bound to a user",
            record(json!({ "theme": "dark" }), Some("user-4417")),
        ),
    ]
}

#[test]
fn the_cache_keeps_within_its_budget_as_the_allocator_counts_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (shape, template) in shapes() {
        let store = EncryptedCookieStore::new(KeyRing::builder(Key::generate()).build().unwrap())
            .with_cache_size(BUDGET);
        let region = Region::new(GLOBAL);
        // Far more sessions than fit: every one is sealed and offered to
        // the cache, which must evict or turn away to stay in budget.
        let mut cookie_len = 0;
        for _ in 0..20_000 {
            let record = Arc::new(template.clone());
            let create = Create::new("session", &record, SystemTime::now());
            let cookie = runtime.block_on(store.create(create)).unwrap();
            cookie_len = cookie.len();
        }
        let change = region.change();
        // A reallocation's growth or shrinkage is in these byte counts
        // already, and leaves the number of allocations as it was.
        let bytes = change.bytes_allocated - change.bytes_deallocated;
        let allocations = change.allocations - change.deallocations;
        let held = bytes + allocations * PER_ALLOCATION;
        let ratio = held as f64 / BUDGET as f64;
        println!("{shape}: cookie {cookie_len} B, held {held} B, {ratio:.2} of the budget");
        assert!(
            ratio <= 1.0,
            "{shape}: the cache holds {held} bytes for a budget of {BUDGET}"
        );
        // The estimate is not so generous that the budget goes unused.
        assert!(
            ratio >= 0.75,
            "{shape}: the cache holds only {held} bytes of a budget of {BUDGET}"
        );
        drop(store);
    }
}
