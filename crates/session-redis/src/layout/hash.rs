//! The default layout: one Redis hash per session.
//!
//! * key: `{prefix}{id}`, where `id` is the 32-character base64url
//!   [`SessionId`] that is also the cookie value;
//! * field `m`: metadata, JSON `{"c": created, "x": expiry}` (Unix
//!   milliseconds; `x` is the per-session expiry override, absent when
//!   none);
//! * field `d:{name}` for each session key `name`: its JSON value;
//! * the key's expiry: the record's `expires_at`, set with `PEXPIREAT` and
//!   read back with `PEXPIRETIME`; no expiry when the session has none.
//!
//! The `d:` prefix keeps every user key (including `""` and `"m"`) apart from
//! the metadata. A load is `HGETALL` and `PEXPIRETIME` in one round trip.
//! Saves are a Lua script, so that each is one atomic round trip that applies
//! the request's delta.

use std::time::SystemTime;

use fred::types::Value;
use serde::{Deserialize, Serialize};
use session_core::expiry::{from_unix_millis, unix_millis};
use session_core::{Delete, Error, Expiry, Load, Record, Save, Saved, SessionId, Touch};

use crate::connection::{Redis, Script};

/// The metadata field.
const META_FIELD: &str = "m";

/// What every data field's name starts with.
const DATA_PREFIX: &str = "d:";

/// The length of the ids [`SessionId::generate`] issues; anything else is
/// not ours and is refused without asking Redis.
const ID_LEN: usize = 32;

/// A new id that collides with an existing key is replaced by another; a
/// few collisions in a row mean the random source is broken.
const MAX_ID_ATTEMPTS: usize = 3;

/// Applies a save atomically.
///
/// ARGV: mode (`create` or `update`), deadline in Unix ms (empty: none), the
/// application's now in Unix ms, `1` to drop every data field first, the
/// number N of fields to delete, the N fields, then field/value pairs to
/// write, the last pair being the metadata (`m` and its JSON).
///
/// `create` never overwrites an existing key (answers `taken`); `update`
/// never recreates a missing or expired one (answers `gone`), so a save that
/// races a logout cannot bring the session back. An update leaves the
/// metadata field alone when it already holds the same value (the usual
/// case: only the data changed).
const SAVE_LUA: &str = r"
local key = KEYS[1]
local create = ARGV[1] == 'create'
if create then
  if redis.call('EXISTS', key) == 1 then
    return 'taken'
  end
else
  local deadline = redis.call('PEXPIRETIME', key)
  if deadline == -2 then
    return 'gone'
  end
  -- Expired by the application's clock, which may run ahead of Redis's.
  if deadline >= 0 and deadline <= tonumber(ARGV[3]) then
    redis.call('DEL', key)
    return 'gone'
  end
end
local cleared = ARGV[4] == '1'
if cleared then
  redis.call('DEL', key)
end
-- unpack() is limited by Lua's stack, so large batches go in chunks.
local first_write = 6 + tonumber(ARGV[5])
for i = 6, first_write - 1, 256 do
  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 255, first_write - 1)))
end
local last = #ARGV
if not create and not cleared and redis.call('HGET', key, 'm') == ARGV[last] then
  last = last - 2
end
for i = first_write, last, 256 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 255, last)))
end
if ARGV[2] == '' then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIREAT', key, ARGV[2])
end
return 'saved'
";

/// The metadata kept in the `m` field.
#[derive(Serialize, Deserialize)]
struct Metadata {
    #[serde(rename = "c")]
    created: u64,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    expiry: Option<Expiry>,
}

/// One hash per session under `{prefix}{id}`.
pub(crate) struct HashLayout {
    prefix: String,
    save: Script,
}

impl std::fmt::Debug for HashLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashLayout")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

enum Mode {
    Create,
    Update,
}

impl HashLayout {
    pub(crate) fn new(prefix: String) -> Self {
        HashLayout {
            prefix,
            save: Script::new(SAVE_LUA),
        }
    }

    /// The key for `cookie_value`, or `None` when it is not an id we could
    /// have issued: a request never makes us build keys from arbitrary
    /// input.
    fn key(&self, cookie_value: &str) -> Option<String> {
        let well_formed = cookie_value.len() == ID_LEN
            && cookie_value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| {
            let mut key = String::with_capacity(self.prefix.len() + ID_LEN);
            key.push_str(&self.prefix);
            key.push_str(cookie_value);
            key
        })
    }

    pub(crate) async fn load(
        &self,
        redis: &Redis,
        load: Load<'_>,
    ) -> Result<Option<Record>, Error> {
        let Some(key) = self.key(load.value) else {
            return Ok(None);
        };
        let (fields, deadline) = redis.hgetall_pexpiretime(&key).await?;
        // No fields: no such key. A deadline of -2: the key went away between
        // the two commands (a concurrent logout).
        if is_empty(&fields) || matches!(deadline, Value::Integer(-2)) {
            return Ok(None);
        }
        let record = decode_parts(fields, &deadline);
        if record.is_none() {
            tracing::debug!(
                cookie = load.cookie_name,
                "malformed session hash in Redis; ignored"
            );
        }
        Ok(record)
    }

    pub(crate) async fn save(&self, redis: &Redis, save: Save<'_>) -> Result<Saved, Error> {
        let Some(previous) = save.previous else {
            for _ in 0..MAX_ID_ATTEMPTS {
                let id = SessionId::generate().into_string();
                let Some(key) = self.key(&id) else {
                    break;
                };
                if self.apply(redis, &key, Mode::Create, &save).await? {
                    return Ok(Saved::Cookie(id));
                }
                tracing::warn!("a freshly generated session id already existed in Redis");
            }
            return Err(Error::store(
                "could not find an unused session id: the random source looks broken",
            ));
        };
        let Some(key) = self.key(previous) else {
            return Ok(Saved::Gone);
        };
        Ok(if self.apply(redis, &key, Mode::Update, &save).await? {
            Saved::Cookie(previous.to_owned())
        } else {
            Saved::Gone
        })
    }

    /// Runs the save script; whether it saved (`false`: the key was taken
    /// for a create, gone for an update).
    async fn apply(
        &self,
        redis: &Redis,
        key: &str,
        mode: Mode,
        save: &Save<'_>,
    ) -> Result<bool, Error> {
        let record = save.record;
        let changes = save.changes;
        let metadata = Metadata {
            created: unix_millis(record.created),
            expiry: record.expiry,
        };
        let metadata: Value = serde_json::to_string(&metadata)
            .map_err(Error::Value)?
            .into();
        let deadline = match record.expires_at {
            Some(deadline) => Value::Integer(deadline_millis(deadline)),
            None => Value::from_static_str(""),
        };
        let now = Value::Integer(deadline_millis(save.now));
        let args = |args: &mut Vec<Value>| -> Result<(), Error> {
            let written = changes.written().filter(|k| record.data.contains_key(*k));
            let removed = || {
                changes
                    .removed()
                    .chain(changes.written().filter(|k| !record.data.contains_key(*k)))
            };
            let removed_count = removed().count();
            args.reserve(7 + removed_count + 2 * changes.written().len());
            args.push(Value::from_static_str(match mode {
                Mode::Create => "create",
                Mode::Update => "update",
            }));
            args.push(deadline.clone());
            args.push(now.clone());
            args.push(Value::Integer(changes.cleared().into()));
            args.push(Value::Integer(
                i64::try_from(removed_count).unwrap_or(i64::MAX),
            ));
            args.extend(removed().map(|k| data_field(k).into()));
            for key in written {
                if let Some(value) = record.data.get(key) {
                    args.push(data_field(key).into());
                    args.push(serde_json::to_string(value).map_err(Error::Value)?.into());
                }
            }
            args.push(Value::from_static_str(META_FIELD));
            args.push(metadata.clone());
            Ok(())
        };
        let reply = redis.eval(&self.save, key, args).await?;
        match reply.as_str().as_deref() {
            Some("saved") => Ok(true),
            Some("taken" | "gone") => Ok(false),
            _ => Err(Error::store(format!(
                "unexpected reply from the save script: {reply:?}"
            ))),
        }
    }

    pub(crate) async fn touch(&self, redis: &Redis, touch: Touch<'_>) -> Result<(), Error> {
        let Some(key) = self.key(touch.value) else {
            return Ok(());
        };
        match touch.record.expires_at {
            // A bare PEXPIREAT: on a key that is gone it does nothing, so a
            // refresh never recreates a session.
            Some(deadline) => redis
                .pexpire_at(&key, deadline_millis(deadline))
                .await
                .map(drop),
            None => redis.persist(&key).await,
        }
    }

    pub(crate) async fn delete(&self, redis: &Redis, delete: Delete<'_>) -> Result<(), Error> {
        match self.key(delete.value) {
            Some(key) => redis.del(&key).await,
            None => Ok(()),
        }
    }
}

fn data_field(key: &str) -> String {
    let mut field = String::with_capacity(DATA_PREFIX.len() + key.len());
    field.push_str(DATA_PREFIX);
    field.push_str(key);
    field
}

/// Whether an `HGETALL` reply holds no field (the key does not exist).
fn is_empty(fields: &Value) -> bool {
    match fields {
        Value::Array(fields) => fields.is_empty(),
        Value::Map(fields) => fields.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// Unix milliseconds as Redis takes them.
fn deadline_millis(t: SystemTime) -> i64 {
    i64::try_from(unix_millis(t)).unwrap_or(i64::MAX)
}

/// The record in a `[deadline, [field, value, ...]]` pair (the fuzz target's
/// and the tests' form of a load's two replies); `None` when anything about
/// it is off.
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) fn decode(reply: Value) -> Option<Record> {
    let Value::Array(mut parts) = reply else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    if !matches!(fields, Value::Array(_)) {
        return None;
    }
    let deadline = parts.pop()?;
    decode_parts(fields, &deadline)
}

/// The record in the replies to `HGETALL` (an array of fields and values,
/// or a map under RESP3) and `PEXPIRETIME`, or `None` when anything about
/// them is off: values from Redis are untrusted too.
pub(crate) fn decode_parts(fields: Value, deadline: &Value) -> Option<Record> {
    let deadline = deadline.as_i64()?;
    let mut metadata = None;
    let mut data = serde_json::Map::new();
    let mut field = |name: Option<&[u8]>, value: &Value| -> Option<()> {
        let name = std::str::from_utf8(name?).ok()?;
        let value = value.as_bytes()?;
        if name == META_FIELD {
            metadata = Some(serde_json::from_slice::<Metadata>(value).ok()?);
        } else if let Some(key) = name.strip_prefix(DATA_PREFIX) {
            data.insert(key.to_owned(), serde_json::from_slice(value).ok()?);
        }
        // Other fields are not ours to interpret: ignored.
        Some(())
    };
    match fields {
        Value::Array(fields) => {
            for pair in fields.chunks_exact(2) {
                field(pair[0].as_bytes(), &pair[1])?;
            }
        }
        Value::Map(fields) => {
            for (name, value) in fields.inner() {
                field(Some(name.as_bytes()), &value)?;
            }
        }
        _ => return None,
    }
    let metadata = metadata?;
    let mut record = Record::new(from_unix_millis(metadata.created)?);
    record.expiry = metadata.expiry;
    record.expires_at = match u64::try_from(deadline) {
        Ok(ms) => Some(from_unix_millis(ms)?),
        // -1: the key has no expiry.
        Err(_) if deadline == -1 => None,
        Err(_) => return None,
    };
    record.data = data;
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec().into())
    }

    fn reply(deadline: i64, fields: &[&str]) -> Value {
        Value::Array(vec![
            Value::Integer(deadline),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn issued_ids_have_the_shape_keys_accept() {
        let layout = HashLayout::new("session:".into());
        let id = SessionId::generate().into_string();
        assert_eq!(layout.key(&id), Some(format!("session:{id}")));
        for bad in [
            "",
            "short",
            &format!("{id}x"),
            &format!("{}*", &id[1..]),
            "../../etc/passwd/aaaaaaaaaaaaaaa",
        ] {
            assert_eq!(layout.key(bad), None, "{bad}");
        }
    }

    #[test]
    fn decodes_a_well_formed_hash() {
        let record = decode(reply(
            1_700_000_060_000,
            &[
                "m",
                r#"{"c":1700000000000}"#,
                "d:",
                "1",
                "d:d:x",
                r#"{"a":[1]}"#,
                "other",
                "ignored",
            ],
        ))
        .expect("decodes");
        assert_eq!(unix_millis(record.created), 1_700_000_000_000);
        assert_eq!(record.expires_at.map(unix_millis), Some(1_700_000_060_000));
        assert_eq!(
            serde_json::Value::Object(record.data),
            serde_json::json!({"": 1, "d:x": {"a": [1]}})
        );
        let persistent = decode(reply(-1, &["m", r#"{"c":5}"#])).expect("decodes");
        assert_eq!(persistent.expires_at, None);
        // RESP3 answers HGETALL with a map.
        let mut map = fred::types::Map::new();
        let _ = map.insert("m".into(), bulk(r#"{"c":5}"#));
        let _ = map.insert("d:k".into(), bulk("2"));
        let record = decode_parts(Value::Map(map), &Value::Integer(-1)).expect("decodes");
        assert_eq!(
            serde_json::Value::Object(record.data),
            serde_json::json!({"k": 2})
        );
    }

    #[test]
    fn malformed_hashes_do_not_load() {
        let meta = r#"{"c":1}"#;
        for bad in [
            Value::Null,
            Value::Integer(3),
            Value::Array(vec![]),
            Value::Array(vec![Value::Integer(1), Value::Integer(2)]),
            reply(10, &["d:k", "1"]),
            reply(10, &["m", "{not json"]),
            reply(10, &["m", r#"{"c":-4}"#]),
            reply(10, &["m", r#"{"c":1,"x":"never"}"#]),
            reply(10, &["m", meta, "d:k", "{bad json"]),
            reply(-2, &["m", meta]),
            reply(i64::MIN, &["m", meta]),
        ] {
            assert!(decode(bad.clone()).is_none(), "{bad:?}");
        }
    }
}
