//! Between records and rows: the columns of a session's row, and a
//! request's delta as the update statements take it.
//!
//! The `data` column holds a JSON object that maps each session key to the
//! JSON *text* of its value, as a string: `{"user": "\"ada\"", "cart":
//! "[1,2]"}`. Keeping each value as text makes every value round-trip
//! exactly as serde_json wrote it (Postgres's `jsonb` would turn numbers
//! into `numeric`, dropping `-0.0`'s sign, and refuses `\u0000` inside a
//! string; SQLite's JSON functions turn numbers into doubles), and it makes
//! the delta a plain key-by-key replacement on both databases: no value is
//! ever `null` or an object, so SQLite's `json_patch` (RFC 7396, where
//! `null` deletes and objects merge) replaces whole values and deletes
//! exactly the keys the patch maps to `null`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value};
use session_core::{Changes, Error, Expiry, Record};
use session_core::{from_unix_millis, unix_millis};

/// Unix milliseconds as a SQL `BIGINT`.
pub(crate) fn millis(t: SystemTime) -> i64 {
    i64::try_from(unix_millis(t)).unwrap_or(i64::MAX)
}

/// The columns every write sets besides `data`: `created`, `expires_at`,
/// `expiry`, and the user binding (`user_id`, `label`, `last_seen`).
pub(crate) struct Meta<'a> {
    pub(crate) created: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) expiry: Option<String>,
    pub(crate) user: Option<&'a str>,
    pub(crate) label: Option<&'a str>,
    pub(crate) last_seen: Option<i64>,
}

impl<'a> Meta<'a> {
    pub(crate) fn of(record: &'a Record) -> Result<Meta<'a>, Error> {
        Ok(Meta {
            created: millis(record.created),
            expires_at: record.expires_at.map(millis),
            expiry: record
                .expiry
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(Error::Value)?,
            user: record.user.as_deref(),
            label: record.label.as_deref(),
            last_seen: record.last_seen.map(millis),
        })
    }
}

/// A row's columns but the id, in the order [`COLUMNS`] selects them:
/// `data` as text, `created`, `expires_at`, `expiry`, `user_id`, `label`,
/// `last_seen`.
pub(crate) type Row = (
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A row with its id first, as a statement over many ids selects it.
pub(crate) type IdAndRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// The id and the rest of the row.
pub(crate) fn split_id(row: IdAndRow) -> (String, Row) {
    let (id, data, created, expires_at, expiry, user, label, last_seen) = row;
    (
        id,
        (data, created, expires_at, expiry, user, label, last_seen),
    )
}

/// What a load selects after `data`, in [`Row`]'s order.
pub(crate) const COLUMNS: &str = "created, expires_at, expiry, user_id, label, last_seen";

/// The JSON text of `value`.
fn text(value: &Value) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::Value)
}

/// The whole of `record`'s data, for a new row.
pub(crate) fn encode_all(record: &Record) -> Result<String, Error> {
    let encoded = record
        .data
        .iter()
        .map(|(key, value)| Ok((key.as_str(), text(value)?)))
        .collect::<Result<BTreeMap<&str, String>, Error>>()?;
    serde_json::to_string(&encoded).map_err(Error::Value)
}

/// A request's delta: the keys to delete and the keys to write with their
/// values from the record (a key written but no longer in the record is
/// deleted, as [`Changes`] asks).
pub(crate) struct Delta<'a> {
    pub(crate) cleared: bool,
    pub(crate) removed: Vec<&'a str>,
    pub(crate) written: BTreeMap<&'a str, String>,
}

impl<'a> Delta<'a> {
    pub(crate) fn of(record: &'a Record, changes: &'a Changes) -> Result<Delta<'a>, Error> {
        let mut removed: Vec<&str> = changes.removed().collect();
        let mut written = BTreeMap::new();
        for key in changes.written() {
            match record.data.get(key) {
                Some(value) => {
                    written.insert(key, text(value)?);
                }
                None => removed.push(key),
            }
        }
        Ok(Delta {
            cleared: changes.cleared(),
            removed,
            written,
        })
    }

    /// The written keys, as the `data` column holds them.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn written_json(&self) -> Result<String, Error> {
        serde_json::to_string(&self.written).map_err(Error::Value)
    }

    /// The whole delta as one RFC 7396 merge patch: written keys map to
    /// their text, removed keys to `null` (which `json_patch` deletes).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn merge_patch(&self) -> Result<String, Error> {
        let patch: BTreeMap<&str, Option<&str>> = self
            .removed
            .iter()
            .map(|key| (*key, None))
            .chain(
                self.written
                    .iter()
                    .map(|(key, value)| (*key, Some(value.as_str()))),
            )
            .collect();
        serde_json::to_string(&patch).map_err(Error::Value)
    }
}

/// The record in a row, or `None` when anything about it is off (a row
/// written by hand, say): values from the database are untrusted too.
pub(crate) fn decode(row: Row) -> Option<Record> {
    let (data, created, expires_at, expiry, user, label, last_seen) = row;
    let at = |ms: i64| from_unix_millis(u64::try_from(ms).ok()?);
    let encoded: BTreeMap<String, String> = serde_json::from_str(&data).ok()?;
    let mut values = Map::new();
    for (key, text) in encoded {
        values.insert(key, serde_json::from_str(&text).ok()?);
    }
    let mut record = Record::new(at(created)?);
    record.expires_at = match expires_at {
        Some(ms) => Some(at(ms)?),
        None => None,
    };
    record.expiry = match expiry {
        Some(text) => Some(serde_json::from_str::<Expiry>(&text).ok()?),
        None => None,
    };
    record.last_seen = match last_seen {
        Some(ms) => Some(at(ms)?),
        None => None,
    };
    record.user = user;
    record.label = label;
    record.data = values;
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_round_trips() {
        let now = SystemTime::now();
        let mut record = Record::new(from_unix_millis(unix_millis(now)).unwrap());
        record.expires_at = from_unix_millis(unix_millis(now) + 60_000);
        record.expiry = Some(Expiry::NEVER);
        let Value::Object(data) = json!({"": null, "a": {"b": [1, 0.1, -0.0]}, "s": "\u{0}\""})
        else {
            unreachable!()
        };
        record.data = data;
        record.user = Some("42".into());
        record.label = Some("laptop".into());
        record.last_seen = record.expires_at;
        let meta = Meta::of(&record).unwrap();
        let back = decode((
            encode_all(&record).unwrap(),
            meta.created,
            meta.expires_at,
            meta.expiry.clone(),
            meta.user.map(str::to_owned),
            meta.label.map(str::to_owned),
            meta.last_seen,
        ))
        .unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn deltas_name_what_to_write_and_delete() {
        let mut record = Record::new(SystemTime::UNIX_EPOCH);
        record.data.insert("w".into(), json!(null));
        let mut changes = Changes::default();
        changes.record_write("w");
        changes.record_write("gone");
        changes.record_remove("r");
        // A key written then dropped from the record by other means.
        let delta = Delta::of(&record, &changes).unwrap();
        assert_eq!(delta.removed, ["r", "gone"]);
        assert_eq!(delta.written_json().unwrap(), r#"{"w":"null"}"#);
        assert_eq!(
            delta.merge_patch().unwrap(),
            r#"{"gone":null,"r":null,"w":"null"}"#
        );
    }

    #[test]
    fn malformed_rows_do_not_load() {
        let row = |data: &str, created, expires_at, expiry: Option<&str>, last_seen| -> Row {
            let expiry = expiry.map(str::to_owned);
            (
                data.to_owned(),
                created,
                expires_at,
                expiry,
                None,
                None,
                last_seen,
            )
        };
        for bad in [
            row("{not json", 0, None, None, None),
            row("[]", 0, None, None, None),
            row(r#"{"k": 1}"#, 0, None, None, None),
            row(r#"{"k": "{bad"}"#, 0, None, None, None),
            row("{}", -1, None, None, None),
            row("{}", 0, Some(-5), None, None),
            row("{}", 0, None, Some("\"never\""), None),
            row("{}", 0, None, None, Some(-1)),
        ] {
            assert!(decode(bad.clone()).is_none(), "{bad:?}");
        }
        assert!(decode(row("{}", 0, None, None, None)).is_some());
    }
}
