//! The default layout: one Redis hash per session.
//!
//! * key: `{prefix}{id}`, where `id` is the 32-character base64url
//!   [`SessionId`] that is also the cookie value;
//! * field `m`: metadata, JSON `{"e": deadline, "c": created, "x": expiry}`
//!   (Unix milliseconds; `e` is the record's `expires_at`, `null` when the
//!   session has no deadline, and always comes first; `x` is the
//!   per-session expiry override, absent when none);
//! * field `d:{name}` for each session key `name`: its JSON value;
//! * the key's expiry: the same deadline as `e`, set with `PEXPIREAT` in the
//!   same script call, so that Redis drops the session when it ends.
//!
//! The `d:` prefix keeps every user key (including `""` and `"m"`) apart
//! from the metadata. A load is one `HGETALL`: the deadline is in the
//! metadata rather than read back with `PEXPIRETIME`, so that a load is one
//! command, and it shares the metadata's field, so that the reply is as
//! short as it can be (fred turns each field of the reply into a map entry,
//! and each costs the application's client CPU on every load). Saves and
//! rolling refreshes are one Lua script, so that each is one atomic round
//! trip that applies the request's delta and moves the deadline and the
//! key's expiry together; saves waiting at the same time share one call of
//! the script (see [`batch`](crate::batch)).

use std::sync::Arc;
use std::time::SystemTime;

use fred::types::Value;
use serde::{Deserialize, Serialize};
use session_core::expiry::{from_unix_millis, unix_millis};
use session_core::{Delete, Error, Expiry, Load, Record, Save, Saved, SessionId, Touch};

use crate::batch::Batcher;
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

/// Applies saves and rolling refreshes, each atomically: one per key of
/// `KEYS`, in order (the [batcher](crate::batch) sends the saves that wait
/// together as one call).
///
/// `ARGV` holds, for each key in turn, the number of its arguments and then
/// these: mode (`create`, `update` or `touch`), deadline in Unix ms (empty:
/// none), the application's now in Unix ms; then, for `create` and
/// `update`, `1` to drop every data field first, the number N of fields to
/// delete, the N fields, then field/value pairs to write, the last pair
/// being the metadata (`m` and its JSON). A `touch` has nothing more: it
/// only moves the deadline, in the stored metadata and in the key's expiry.
///
/// The reply has one entry per key: `saved`, `taken`, `gone`, or `error: `
/// and the message of a command that failed for that key (the other keys
/// are still saved).
///
/// `create` never overwrites an existing key (answers `taken`); `update` and
/// `touch` never recreate a missing or expired one (answer `gone`), so a
/// save that races a logout cannot bring the session back. A `touch`
/// rewrites only the value of `e`, which the metadata's JSON always starts
/// with, so that it keeps whatever a concurrent save wrote to the rest.
const SAVE_LUA: &str = r#"
local function save(key, first, last)
  local mode = ARGV[first]
  if mode == 'create' then
    if redis.call('EXISTS', key) == 1 then
      return 'taken'
    end
  else
    local deadline = redis.call('PEXPIRETIME', key)
    if deadline == -2 then
      return 'gone'
    end
    -- Expired by the application's clock, which may run ahead of Redis's.
    if deadline >= 0 and deadline <= tonumber(ARGV[first + 2]) then
      redis.call('DEL', key)
      return 'gone'
    end
  end
  local deadline = ARGV[first + 1]
  if mode == 'touch' then
    local meta = redis.call('HGET', key, 'm')
    if not meta then
      return 'gone'
    end
    local e = deadline == '' and 'null' or deadline
    local head = '{"e":'
    if string.sub(meta, 1, #head) == head then
      local comma = string.find(meta, ',', #head + 1, true)
      meta = head .. e .. (comma and string.sub(meta, comma) or '}')
    else
      -- Metadata not written by this store: the deadline goes in front.
      meta = head .. e .. ',' .. string.sub(meta, 2)
    end
    redis.call('HSET', key, 'm', meta)
  else
    if ARGV[first + 3] == '1' then
      redis.call('DEL', key)
    end
    -- unpack() is limited by Lua's stack, so large deltas go in chunks.
    local first_write = first + 5 + tonumber(ARGV[first + 4])
    for i = first + 5, first_write - 1, 256 do
      redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 255, first_write - 1)))
    end
    for i = first_write, last, 256 do
      redis.call('HSET', key, unpack(ARGV, i, math.min(i + 255, last)))
    end
  end
  if deadline == '' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIREAT', key, deadline)
  end
  return 'saved'
end

local replies = {}
local at = 1
for k = 1, #KEYS do
  local count = tonumber(ARGV[at])
  local ok, reply = pcall(save, KEYS[k], at + 1, at + count)
  if ok then
    replies[k] = reply
  elseif type(reply) == 'table' and reply.err then
    replies[k] = 'error: ' .. reply.err
  else
    replies[k] = 'error: ' .. tostring(reply)
  end
  at = at + 1 + count
end
return replies
"#;

/// The metadata kept in the `m` field. `deadline` is declared first so that
/// it is written first, where the save script's `touch` finds it.
#[derive(Serialize, Deserialize)]
struct Metadata {
    /// Serialized as `null` when absent, never skipped: the script rewrites
    /// its value in place.
    #[serde(rename = "e", default)]
    deadline: Option<u64>,
    #[serde(rename = "c")]
    created: u64,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    expiry: Option<Expiry>,
}

/// One hash per session under `{prefix}{id}`.
pub(crate) struct HashLayout {
    prefix: String,
    saves: Arc<Batcher>,
}

impl std::fmt::Debug for HashLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashLayout")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Create,
    Update,
    /// A rolling refresh: only the deadline moves.
    Touch,
}

impl Mode {
    fn arg(self) -> Value {
        Value::from_static_str(match self {
            Mode::Create => "create",
            Mode::Update => "update",
            Mode::Touch => "touch",
        })
    }
}

impl HashLayout {
    pub(crate) fn new(prefix: String) -> Self {
        HashLayout {
            prefix,
            saves: Arc::new(Batcher::new(Script::new(SAVE_LUA))),
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
        let fields = redis.hgetall(&key).await?;
        // No fields: no such key.
        if is_empty(&fields) {
            return Ok(None);
        }
        let record = decode(fields);
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
                if self.apply(redis, key, Mode::Create, &save).await? {
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
        Ok(if self.apply(redis, key, Mode::Update, &save).await? {
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
        key: String,
        mode: Mode,
        save: &Save<'_>,
    ) -> Result<bool, Error> {
        let record = save.record;
        let changes = save.changes;
        let metadata = Metadata {
            deadline: record.expires_at.map(unix_millis),
            created: unix_millis(record.created),
            expiry: record.expiry,
        };
        let metadata: Value = serde_json::to_string(&metadata)
            .map_err(Error::Value)?
            .into();
        self.run(redis, key, mode, record, save.now, |args| {
            let written = changes.written().filter(|k| record.data.contains_key(*k));
            let removed = || {
                changes
                    .removed()
                    .chain(changes.written().filter(|k| !record.data.contains_key(*k)))
            };
            let removed_count = removed().count();
            args.reserve(2 + removed_count + 2 * changes.written().len());
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
        })
        .await
    }

    /// Runs the save script in `mode` for `record`'s deadline; `delta`
    /// pushes what follows the first three arguments. Whether it applied.
    async fn run(
        &self,
        redis: &Redis,
        key: String,
        mode: Mode,
        record: &Record,
        now: SystemTime,
        delta: impl FnOnce(&mut Vec<Value>) -> Result<(), Error>,
    ) -> Result<bool, Error> {
        let mut args = Vec::with_capacity(8);
        args.push(mode.arg());
        args.push(match record.expires_at {
            Some(deadline) => Value::Integer(deadline_millis(deadline)),
            None => Value::from_static_str(""),
        });
        args.push(Value::Integer(deadline_millis(now)));
        delta(&mut args)?;
        let reply = self
            .saves
            .call(redis, key, args)
            .await
            .map_err(Error::store)?;
        let text = reply.as_str();
        match text.as_deref() {
            Some("saved") => Ok(true),
            Some("taken" | "gone") => Ok(false),
            other => match other.and_then(|text| text.strip_prefix("error: ")) {
                Some(message) => Err(Error::store(format!("the save script failed: {message}"))),
                None => Err(Error::store(format!(
                    "unexpected reply from the save script: {reply:?}"
                ))),
            },
        }
    }

    pub(crate) async fn touch(&self, redis: &Redis, touch: Touch<'_>) -> Result<(), Error> {
        let Some(key) = self.key(touch.value) else {
            return Ok(());
        };
        // Through the save script, so that the metadata's deadline and the
        // key's expiry move together, and a session that is gone stays gone.
        self.run(redis, key, Mode::Touch, touch.record, touch.now, |_| Ok(()))
            .await
            .map(drop)
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

/// The record in the reply to `HGETALL` (an array of fields and values, or
/// a map under RESP3), or `None` when anything about it is off: values from
/// Redis are untrusted too.
pub(crate) fn decode(fields: Value) -> Option<Record> {
    let mut metadata = None;
    let mut data = serde_json::Map::new();
    let mut field = |name: Option<&[u8]>, value: &Value| -> Option<()> {
        let name = std::str::from_utf8(name?).ok()?;
        if name == META_FIELD {
            metadata = Some(json::<Metadata>(value)?);
        } else if let Some(key) = name.strip_prefix(DATA_PREFIX) {
            data.insert(key.to_owned(), json(value)?);
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
    record.expires_at = match metadata.deadline {
        Some(ms) => Some(from_unix_millis(ms)?),
        None => None,
    };
    record.data = data;
    Some(record)
}

/// The JSON in a field's value. fred hands over text it has checked to be
/// UTF-8 as a string: parsed as such, its strings are not checked again.
fn json<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    match value {
        Value::String(text) => serde_json::from_str(text).ok(),
        other => serde_json::from_slice(other.as_bytes()?).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec().into())
    }

    fn reply(fields: &[&str]) -> Value {
        Value::Array(fields.iter().map(|f| bulk(f)).collect())
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
        let record = decode(reply(&[
            "m",
            r#"{"e":1700000060000,"c":1700000000000}"#,
            "d:",
            "1",
            "d:d:x",
            r#"{"a":[1]}"#,
            "d:m",
            "2",
            "other",
            "ignored",
        ]))
        .expect("decodes");
        assert_eq!(unix_millis(record.created), 1_700_000_000_000);
        assert_eq!(record.expires_at.map(unix_millis), Some(1_700_000_060_000));
        assert_eq!(
            serde_json::Value::Object(record.data),
            serde_json::json!({"": 1, "d:x": {"a": [1]}, "m": 2})
        );
        // No deadline: `null`, or absent (metadata written by hand).
        for meta in [r#"{"e":null,"c":5}"#, r#"{"c":5}"#] {
            let persistent = decode(reply(&["m", meta])).expect("decodes");
            assert_eq!(persistent.expires_at, None, "{meta}");
        }
        // RESP3 answers HGETALL with a map; fred gives text as strings.
        let mut map = fred::types::Map::new();
        let _ = map.insert("m".into(), Value::String(r#"{"e":0,"c":5}"#.into()));
        let _ = map.insert("d:k".into(), Value::String("2".into()));
        let record = decode(Value::Map(map)).expect("decodes");
        assert_eq!(record.expires_at.map(unix_millis), Some(0));
        assert_eq!(
            serde_json::Value::Object(record.data),
            serde_json::json!({"k": 2})
        );
    }

    #[test]
    fn metadata_starts_with_the_deadline() {
        let metadata = |deadline, expiry| {
            serde_json::to_string(&Metadata {
                deadline,
                created: 5,
                expiry,
            })
            .expect("serializes")
        };
        assert_eq!(metadata(Some(9), None), r#"{"e":9,"c":5}"#);
        assert_eq!(metadata(None, None), r#"{"e":null,"c":5}"#);
        assert!(metadata(None, Some(Expiry::NEVER)).starts_with(r#"{"e":null,"c":5,"x":"#));
    }

    #[test]
    fn malformed_hashes_do_not_load() {
        let meta = r#"{"c":1}"#;
        for bad in [
            Value::Null,
            Value::Integer(3),
            Value::Array(vec![]),
            Value::Array(vec![Value::Integer(1), Value::Integer(2)]),
            reply(&["d:k", "1"]),
            reply(&["m", "{not json"]),
            reply(&["m", r#"{"c":-4}"#]),
            reply(&["m", r#"{"c":1,"x":"never"}"#]),
            reply(&["m", meta, "d:k", "{bad json"]),
            reply(&["m", r#"{"e":"","c":1}"#]),
            reply(&["m", r#"{"e":-2,"c":1}"#]),
            reply(&["m", r#"{"e":1.5,"c":1}"#]),
            reply(&["m", r#"{"e":99999999999999999999999,"c":1}"#]),
            reply(&["m", r#"{"e":1,"c":1,"e":2}"#]),
        ] {
            assert!(decode(bad.clone()).is_none(), "{bad:?}");
        }
    }
}
