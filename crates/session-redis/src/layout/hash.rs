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
//! the metadata. Writes are Lua scripts, so that each save is one atomic round
//! trip that applies the request's delta.

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

/// Returns the deadline and every field, in one atomic round trip; nil when
/// the key does not exist.
const LOAD_LUA: &str = r"#!lua flags=no-writes
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return false
end
return {redis.call('PEXPIRETIME', KEYS[1]), fields}
";

/// Applies a save atomically.
///
/// ARGV: mode (`create` or `update`), metadata JSON, deadline in Unix ms
/// (empty: none), the application's now in Unix ms, `1` to drop every data
/// field first, the number N of fields to delete, the N fields, then
/// field/value pairs to write.
///
/// `create` never overwrites an existing key (answers `taken`); `update`
/// never recreates a missing or expired one (answers `gone`), so a save that
/// races a logout cannot bring the session back.
const SAVE_LUA: &str = r"
local key = KEYS[1]
if ARGV[1] == 'create' then
  if redis.call('EXISTS', key) == 1 then
    return 'taken'
  end
else
  local deadline = redis.call('PEXPIRETIME', key)
  if deadline == -2 then
    return 'gone'
  end
  -- Expired by the application's clock, which may run ahead of Redis's.
  if deadline >= 0 and deadline <= tonumber(ARGV[4]) then
    redis.call('DEL', key)
    return 'gone'
  end
end
if ARGV[5] == '1' then
  redis.call('DEL', key)
end
-- unpack() is limited by Lua's stack, so large batches go in chunks.
local first_write = 7 + tonumber(ARGV[6])
for i = 7, first_write - 1, 256 do
  redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 255, first_write - 1)))
end
for i = first_write, #ARGV, 256 do
  redis.call('HSET', key, unpack(ARGV, i, math.min(i + 255, #ARGV)))
end
redis.call('HSET', key, 'm', ARGV[2])
if ARGV[3] == '' then
  redis.call('PERSIST', key)
else
  redis.call('PEXPIREAT', key, ARGV[3])
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
    load: Script,
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
            load: Script::new(LOAD_LUA),
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
        well_formed.then(|| format!("{}{cookie_value}", self.prefix))
    }

    pub(crate) async fn load(
        &self,
        redis: &Redis,
        load: Load<'_>,
    ) -> Result<Option<Record>, Error> {
        let Some(key) = self.key(load.value) else {
            return Ok(None);
        };
        let reply = redis.eval(&self.load, &key, Vec::new()).await?;
        if matches!(reply, Value::Null) {
            return Ok(None);
        }
        let record = decode(reply);
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
        let metadata = serde_json::to_string(&metadata).map_err(Error::Value)?;
        let removed: Vec<&str> = changes
            .removed()
            .chain(changes.written().filter(|k| !record.data.contains_key(*k)))
            .collect();
        let mut args: Vec<Value> =
            Vec::with_capacity(6 + removed.len() + 2 * changes.written().len());
        args.push(match mode {
            Mode::Create => "create".into(),
            Mode::Update => "update".into(),
        });
        args.push(metadata.into());
        args.push(match record.expires_at {
            Some(deadline) => deadline_millis(deadline).to_string().into(),
            None => "".into(),
        });
        args.push(deadline_millis(save.now).to_string().into());
        args.push(if changes.cleared() { "1" } else { "0" }.into());
        args.push(removed.len().to_string().into());
        args.extend(removed.iter().map(|k| data_field(k).into()));
        for key in changes.written() {
            if let Some(value) = record.data.get(key) {
                args.push(data_field(key).into());
                args.push(serde_json::to_string(value).map_err(Error::Value)?.into());
            }
        }
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
    format!("{DATA_PREFIX}{key}")
}

/// Unix milliseconds as Redis takes them.
fn deadline_millis(t: SystemTime) -> i64 {
    i64::try_from(unix_millis(t)).unwrap_or(i64::MAX)
}

/// The record in a load script's reply, or `None` when anything about it is
/// off: values from Redis are untrusted too.
pub(crate) fn decode(reply: Value) -> Option<Record> {
    let Value::Array(mut parts) = reply else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let Value::Array(fields) = parts.pop()? else {
        return None;
    };
    let deadline = parts.pop()?.as_i64()?;
    let mut metadata = None;
    let mut data = serde_json::Map::new();
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        let name = std::str::from_utf8(name.as_bytes()?).ok()?;
        let value = value.as_bytes()?;
        if name == META_FIELD {
            metadata = Some(serde_json::from_slice::<Metadata>(value).ok()?);
        } else if let Some(key) = name.strip_prefix(DATA_PREFIX) {
            data.insert(key.to_owned(), serde_json::from_slice(value).ok()?);
        }
        // Other fields are not ours to interpret: ignored.
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
