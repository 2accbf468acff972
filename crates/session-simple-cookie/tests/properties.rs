//! Property tests of the simple cookie decoder (issue 7): arbitrary input
//! never panics, and any record round-trips while it fits in a cookie.
//!
//! The simple cookie is unauthenticated by design, so "never loads a
//! session that was not issued" does not apply: a client can forge any
//! record. What must hold is that decoding is total and bounded.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};
use session_conformance::arbitrary;
use session_core::CookieConfig;
use session_core::{CookieLifetime, Rolling, SessionConfig, SessionManager};
use session_simple_cookie::SimpleCookieStore;

proptest! {
    #[test]
    fn arbitrary_values_decode_without_panicking(value in arbitrary::cookie_value(6000)) {
        let decoded = SimpleCookieStore::decode(&value);
        if value.len() > CookieConfig::MAX_SIZE {
            prop_assert!(decoded.is_none());
        }
    }

    #[test]
    fn arbitrary_json_in_the_cookie_decodes_without_panicking(
        fields in proptest::collection::vec(
            (prop_oneof![Just("c"), Just("e"), Just("x"), Just("d")], arbitrary::json_value()),
            0..5,
        ),
    ) {
        let object: serde_json::Map<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let value = URL_SAFE_NO_PAD.encode(Value::Object(object).to_string());
        if let Some(record) = SimpleCookieStore::decode(&value) {
            // Whatever loads is a well-formed record.
            prop_assert!(serde_json::to_value(&record).is_ok());
        }
    }

    #[test]
    fn records_round_trip_while_they_fit_in_a_cookie(record in arbitrary::record()) {
        let value = SimpleCookieStore::encode(&record).unwrap();
        let decoded = SimpleCookieStore::decode(&value);
        if value.len() <= CookieConfig::MAX_SIZE {
            prop_assert_eq!(decoded, Some(record));
        } else {
            prop_assert_eq!(decoded, None);
        }
    }
}

/// A forged cookie: any `u64` for every timestamp and timeout, the
/// extremes included, which a client of the (unauthenticated) simple store
/// can send.
fn forged_cookie() -> impl Strategy<Value = String> {
    let millis = prop_oneof![Just(0), Just(u64::MAX), Just(u64::MAX / 1000), any::<u64>()];
    (
        millis.clone(),
        proptest::option::of(millis.clone()),
        proptest::option::of(millis.clone()),
        proptest::option::of(millis),
    )
        .prop_map(|(created, expires_at, idle, absolute)| {
            let record = json!({
                "c": created,
                "e": expires_at,
                "x": {"i": idle, "a": absolute},
                "d": {"k": 1},
            });
            URL_SAFE_NO_PAD.encode(record.to_string())
        })
}

proptest! {
    #[test]
    fn forged_timestamps_go_through_the_lifecycle_without_panicking(
        cookie in forged_cookie(),
        persistent in any::<bool>(),
        write in any::<bool>(),
    ) {
        let lifetime = if persistent {
            CookieLifetime::Persistent
        } else {
            CookieLifetime::BrowserSession
        };
        let config = SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(60)))
            .with_cookie_lifetime(lifetime)
            .with_rolling(Rolling::Throttled(Duration::from_secs(1)));
        let manager = SessionManager::new(SimpleCookieStore::new(), config);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let header = format!("session={cookie}");
            let request = manager.request();
            let session = request.session([header.as_bytes()]).await.unwrap();
            if write {
                session.insert("written", &true).unwrap();
            }
            // A cookie too large is the only acceptable error, and these are small.
            request.save_changes().await.unwrap();
        });
    }
}
