//! [`proptest`](mod@proptest) strategies shared by the property tests of
//! every crate: one definition of "arbitrary session data" and of "hostile
//! cookie bytes", so that each decoder is exercised with the same inputs.
//!
//! * [`json_value`] and [`session_data`]: arbitrary JSON, as handlers store
//!   it in a session (any Unicode in keys and strings, the full integer
//!   ranges, nested arrays and objects), kept small enough that most of it
//!   fits in a 4 KiB cookie;
//! * [`unix_millis`] and [`timeout_millis`]: a record's timestamps and
//!   timeouts, and [`record`]: a whole `session_core::Record` built from
//!   them and [`session_data`];
//! * [`cookie_value`]: strings that look like cookie values, base64url text
//!   most of the time, to get past the cheap checks of a decoder;
//! * [`cookie_header`]: raw `Cookie` header bytes: pairs, separators, quotes,
//!   whitespace, the session cookie's name and arbitrary non-UTF-8 bytes.
//!
//! Case counts are proptest's default (256), which `PROPTEST_CASES` raises
//! for a longer run.
//!
//! ```
//! use proptest::prelude::*;
//! use proptest::test_runner::TestRunner;
//! use session_conformance::arbitrary;
//!
//! let mut runner = TestRunner::default();
//! runner
//!     .run(&arbitrary::session_data(), |data| {
//!         let json = serde_json::to_string(&data).unwrap();
//!         let back: serde_json::Map<String, serde_json::Value> =
//!             serde_json::from_str(&json).unwrap();
//!         prop_assert_eq!(back, data);
//!         Ok(())
//!     })
//!     .unwrap();
//! ```

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// How deep [`json_value`] nests arrays and objects.
const MAX_DEPTH: u32 = 3;

/// At most this many elements in one generated array or object.
const MAX_ITEMS: usize = 6;

/// Arbitrary text: any Unicode scalar values (quotes, backslashes, control
/// characters and non-ASCII included), at most `max_chars` of them.
pub fn text(max_chars: usize) -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..=max_chars).prop_map(String::from_iter)
}

/// A JSON number: any `i64`, any `u64`, or a float.
///
/// Floats are drawn as `n / 2^k` for a 16-bit `n` and `k < 10`: exactly
/// representable, with at most 11 significant decimal digits, so that they
/// survive a JSON round trip exactly. serde_json without its
/// `float_roundtrip` feature parses longer decimal forms up to one unit in
/// the last place off (`946463.7802734375` comes back as
/// `946463.7802734376`): serde_json's documented trade-off, not a session
/// bug, so the strategy stays clear of it.
pub fn json_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        (any::<i16>(), 0u32..10).prop_map(|(n, k)| {
            let float = f64::from(n) / f64::from(1u32 << k);
            Number::from_f64(float).unwrap_or_else(|| Number::from(n))
        }),
    ]
}

/// Any JSON value, nested up to three levels deep, up to six elements per
/// array or object.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number().prop_map(Value::Number),
        text(12).prop_map(Value::String),
    ];
    leaf.prop_recursive(MAX_DEPTH, 48, MAX_ITEMS as u32, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..=MAX_ITEMS).prop_map(Value::Array),
            btree_map(text(8), inner, 0..=MAX_ITEMS)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A session's data as handlers leave it: an object of up to six keys
/// (any text, the empty key included) with arbitrary JSON values.
pub fn session_data() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(text(8), json_value(), 0..=MAX_ITEMS).prop_map(|map| map.into_iter().collect())
}

/// A timestamp in Unix milliseconds, from the epoch to the year 3000, as
/// records keep them.
pub fn unix_millis() -> impl Strategy<Value = u64> {
    0u64..=32_503_680_000_000
}

/// A timeout in milliseconds, up to a year, or none.
pub fn timeout_millis() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1u64..=31_536_000_000)
}

/// A record with arbitrary timestamps, per-session expiry and data, as a
/// store must round-trip it.
pub fn record() -> impl Strategy<Value = session_core::Record> {
    use session_core::from_unix_millis;
    use std::time::{Duration, UNIX_EPOCH};
    (
        unix_millis(),
        proptest::option::of(unix_millis()),
        proptest::option::of((timeout_millis(), timeout_millis())),
        session_data(),
    )
        .prop_map(|(created, expires_at, expiry, data)| {
            // `unix_millis` stays far below the end of `SystemTime`.
            let mut record =
                session_core::Record::new(from_unix_millis(created).unwrap_or(UNIX_EPOCH));
            record.expires_at = expires_at.and_then(from_unix_millis);
            record.expiry = expiry.map(|(idle, absolute)| {
                session_core::Expiry::NEVER
                    .with_idle_timeout(idle.map(Duration::from_millis))
                    .with_absolute_timeout(absolute.map(Duration::from_millis))
            });
            record.data = data;
            record
        })
}

/// The characters of unpadded base64url.
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A cookie value an attacker might send: mostly base64url text of any
/// length up to `max_len` (so that it gets past the alphabet check into the
/// real decoding), sometimes arbitrary text.
pub fn cookie_value(max_len: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => vec(proptest::sample::select(BASE64URL), 0..=max_len)
            .prop_map(|bytes| bytes.into_iter().map(char::from).collect()),
        1 => text(max_len),
    ]
}

/// Raw `Cookie` header bytes, built from pieces that matter to a cookie
/// parser: `name=value` pairs (with `session_name` often), `;`, `=`,
/// quotes, spaces and tabs, empty pairs, and arbitrary bytes that are not
/// UTF-8.
pub fn cookie_header(session_name: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        3 => Just(session_name.as_bytes().to_vec()),
        1 => text(6).prop_map(String::into_bytes),
        1 => vec(any::<u8>(), 0..6),
    ];
    let value = prop_oneof![
        3 => cookie_value(48).prop_map(String::into_bytes),
        1 => cookie_value(16).prop_map(|v| format!("\"{v}\"").into_bytes()),
        1 => vec(any::<u8>(), 0..24),
    ];
    let piece = prop_oneof![
        6 => (name, value).prop_map(|(mut name, value)| {
            name.push(b'=');
            name.extend(value);
            name
        }),
        1 => proptest::sample::select(vec![
            b";".to_vec(),
            b"; ".to_vec(),
            b"=".to_vec(),
            b"\"".to_vec(),
            b" \t ".to_vec(),
            Vec::new(),
        ]),
        1 => vec(any::<u8>(), 0..12),
    ];
    vec(piece, 0..12).prop_map(|pieces| pieces.join(&b';'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_json_round_trips_exactly() {
        let mut runner = TestRunner::default();
        runner
            .run(&json_value(), |value| {
                let text = serde_json::to_string(&value).unwrap();
                prop_assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn cookie_headers_name_the_session_cookie_often_and_are_not_all_utf8() {
        let mut runner = TestRunner::deterministic();
        let headers: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                cookie_header("session")
                    .new_tree(&mut runner)
                    .unwrap()
                    .current()
            })
            .collect();
        let naming = headers
            .iter()
            .filter(|h| h.windows(8).any(|w| w == b"session="))
            .count();
        let not_utf8 = headers
            .iter()
            .filter(|h| std::str::from_utf8(h).is_err())
            .count();
        assert!(naming > 50, "{naming} of 200 name the session cookie");
        assert!(not_utf8 > 10, "{not_utf8} of 200 are not UTF-8");
    }
}
