//! The default layout, [`RedisLayout::Hash`]: one Redis hash per session,
//! with saves that merge concurrent requests.
//!
//! # Keys and fields
//!
//! | what | where |
//! |---|---|
//! | key | `{prefix}{id}`, `id` being the cookie value: 32 base64url characters (192 random bits) |
//! | field `m` | metadata: JSON `{"e": deadline, "c": created, "x": expiry override}`, times in Unix milliseconds; `e` always first, `null` for a session without a deadline; `x` absent without an override; for a session bound to a user, also `u` (the user), `l` (its label) and `s` (last seen) |
//! | field `d:{name}` | the JSON value of session key `name` |
//! | key expiry | the same deadline (`PEXPIREAT`), always set together with `e`; none for a session without one |
//! | key `{prefix}user:{user}` | the user's sessions: a sorted set of ids scored by deadline (see [user-bound sessions](#user-bound-sessions)) |
//! | key `{{prefix}{id}}:moved` | where a login moved the session from: the new id, for four command timeouts and at least a minute (a prefix with a hash tag keeps it: `{prefix}{id}:moved`) |
//!
//! Data fields carry the `d:` prefix so that no session key (not `""`, not
//! `"m"`) can collide with the metadata. A hash keeps one field per session
//! key, which is what lets a save change some keys and leave the others.
//!
//! # Atomicity and merging
//!
//! * A **load** is one command, `HGETALL`: the deadline is in the metadata,
//!   so nothing else needs asking, and it shares the metadata's field so
//!   that the reply is as short as it can be.
//! * A **create** or an **update** is one round trip: a Lua script (sent
//!   by `EVALSHA`, falling back to `EVAL` when a server does not have it
//!   cached) applies the request's delta: drop every data field if the
//!   session was cleared, `HDEL` the removed keys, `HSET` the written ones
//!   and the metadata with its deadline, and set the key's expiry to that
//!   deadline. Keys the request did not touch keep whatever concurrent
//!   requests wrote to them.
//! * An update of **data keys alone** ([`Update::data_only`]: the request
//!   wrote within the rolling step and changed nothing but data, the
//!   common write) applies the delta to the data fields and leaves the
//!   metadata and the key's expiry as stored (concurrent requests' changes
//!   to them included): no metadata to encode, no `PEXPIREAT`. While the
//!   deadline the request loaded is ahead:
//!   * one that only writes keys (a counter, a cart) is a plain `HSET`, no
//!     script, which costs Redis what a `SET` does. The `HSET` is its own
//!     liveness check: a field that was there already means the key was.
//!     When every field is new (keys the request added, or a session that
//!     is gone, which the `HSET` recreates), the store asks for the
//!     metadata (`HEXISTS`); a hash without it is deleted (`DEL`) and the
//!     request answered gone. A request that added keys sends the
//!     `HEXISTS` with the `HSET`, in one round trip.
//!   * one that also removes keys runs a short script of its own, with the
//!     same check done in the script, and the `HDEL` after it.
//!
//!   Removals alone, and a loaded deadline that has passed (a concurrent
//!   refresh may have moved the stored one), run the save script in its
//!   `data` mode, which asks Redis for the stored deadline first. Each is
//!   answered and kept final as an update is.
//! * **A hash without metadata is no session.** Between the `HSET` that
//!   recreated a gone session's key and that write's `DEL`, the key is a
//!   hash of data fields alone, without an expiry. Everything that checks
//!   that a session is there checks for the metadata: a load finds no
//!   session (and deletes the hash, should its write have failed to), and
//!   the scripts' saves, refreshes, logins and logouts, and the user
//!   index, treat it as gone (and delete it). A data write racing the same
//!   logout that finds its field in that hash is answered saved, as having
//!   come before the logout, which its request overlapped: its data goes
//!   with the session, and it sends no cookie.
//! * A **create** never overwrites an existing key: the script refuses,
//!   and the store draws another id.
//! * An **update** of a session whose key is gone (logged out, expired)
//!   answers [`Written::Gone`] and leaves nothing, so a slow request that
//!   finishes after a logout cannot bring the session back; its response
//!   sets no cookie (but see above for data writes that race one another
//!   and a logout).
//! * A **rolling refresh** runs the same script with no delta: it moves the
//!   deadline (the metadata's `e`, rewritten in place so that the rest of
//!   the metadata stays as the last save left it, and the key's expiry) of
//!   a session that still exists, and answers gone for one that is not.
//! * A **regenerate** (login) is one script on one server or behind
//!   Sentinel: if the old key still exists, `RENAME` it to a fresh id's key
//!   (so keys concurrent requests wrote come along), apply the delta and
//!   leave the login's mark (the new id, under the old key's mark key);
//!   if a logout deleted it first, answer gone and write nothing. A login
//!   whose answer was lost is sent again with the same id, and finds its
//!   mark. On a
//!   cluster the two keys live in different slots, which one script may
//!   not touch (and with [durability](crate::RedisStoreBuilder::durability)
//!   on, where a login must not move the session before its replicas have
//!   it): the session is created under the new id, then the old key is
//!   deleted, and if that deletes nothing (a logout came first) the new key
//!   is deleted again and the answer is gone. There, a key a concurrent
//!   request wrote to the old id during the regenerate is not carried over.
//!   The delete leaves a mark holding the new id, so that a delete whose
//!   answer was lost can be sent again and tell its own work from a
//!   logout's (see the table above).
//! * A **delete** is `DEL` (in a script that answers the metadata, for the
//!   user index), and tells whether a session was there: a hash with its
//!   metadata. A request that changes nothing sends nothing.
//! * **Saves that wait at the same time go together.** A data write that
//!   is one `HSET` needs nothing of ours for that: fred writes its own
//!   commands to the socket many at a time. For the scripts: on one server
//!   or behind Sentinel, the saves of concurrent requests that queue while an
//!   earlier call is with Redis go as one call of the script, which applies
//!   each atomically and answers each on its own (one that fails, say on a
//!   key that is no longer a hash, does not fail the others). fred writes
//!   every script call to the socket at once, so under load this turns a
//!   system call and a round trip per save into one per batch; a save on an
//!   idle store goes at once. On a cluster, where one call may only touch
//!   one slot, every save is a call of its own.
//!
//! Every key a script touches is in its `KEYS`, so everything works on any
//! cluster slot. How each of these keeps a logout final is in the
//! repository's SECURITY.md.
//!
//! # Time
//!
//! The deadline is the absolute instant in the record (`expires_at`), kept
//! in the metadata's `e` and set as the key's expiry with `PEXPIREAT`, so
//! Redis drops a session when it expires and the core still enforces idle
//! and absolute timeouts from the record itself. An absolute timeout is
//! never extended: the deadline the core computes never passes it. A save
//! that finds the stored deadline already past by the application's clock
//! treats the session as gone (a write of data keys alone asks Redis for
//! the stored deadline only once the one it loaded has passed: before,
//! Redis's own expiry is what can have ended the session).
//!
//! # User-bound sessions
//!
//! The index of each user's sessions in the hash layout: one sorted set per
//! user, `{prefix}user:{user}`, whose members are the ids of the user's
//! sessions, each scored by its deadline (Unix ms, `+inf` for none).
//!
//! * Every write of a session bound to a user that moves its deadline adds
//!   its id, with the new deadline, after the write succeeded; on one
//!   server or behind Sentinel the same script checks that the session key
//!   still exists, so that a write racing a revocation cannot put a revoked
//!   id back. A write of data keys alone leaves the index as it is (the
//!   score did not move).
//! * A login (regenerate) on one server or behind Sentinel replaces the old
//!   id with the new one in the index within its own script, having checked
//!   that the index can be written before moving anything: were the index
//!   a second call, a failure between the two would answer the login with
//!   an error while the session lived on under an id the client never
//!   received.
//! * Every change of the index drops the members whose deadline has passed,
//!   and sets the index's own expiry to its last member's deadline, so
//!   that it never grows with sessions that ended and vanishes with the
//!   last of them.
//! * A delete answers the session's metadata with the delete, in one script,
//!   so that the id leaves its user's index too.
//! * A listing loads each member's session, and drops from the index the
//!   ids whose session is gone (on a cluster, where the index and the
//!   session live in different slots, a write racing a revocation can put
//!   an id back: the next listing drops it).
//!
//! [`RedisLayout::Hash`]: crate::RedisLayout::Hash
//! [`Written::Gone`]: session_core::Written::Gone
//! [`Update::data_only`]: session_core::Update::data_only

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use fred::types::{Map, Value};
use serde::{Deserialize, Serialize};
use session_core::{
    Changes, Create, Error, Expiry, Record, Refresh, Regenerate, SessionCookie, SessionId, Update,
    Written,
};
use session_core::{from_unix_millis, unix_millis};

use super::MAX_ID_ATTEMPTS;
use crate::connection::pairs;

/// The Lua function that changes a user's index, which the index script
/// and the regenerate script share.
///
/// `change_index(index, add, score, now, first, last)`: removes the ids in
/// `ARGV[first..=last]`, adds `add` (empty: none) with `score` (Unix ms,
/// or `+inf`), drops the members whose deadline is not after `now`, and
/// sets the index's expiry to its last member's deadline (deleting it when
/// empty).
macro_rules! index_lua {
    () => {
        r#"
local function change_index(index, add, score, now, first, last)
  for i = first, last do
    redis.call('ZREM', index, ARGV[i])
  end
  if add ~= '' then
    redis.call('ZADD', index, score, add)
  end
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', index)
  elseif top[2] == 'inf' then
    redis.call('PERSIST', index)
  else
    redis.call('PEXPIREAT', index, top[2])
  end
end
"#
    };
}

mod users;

use session_core::user::BoundSession;
use users::{IndexChange, UserScripts, index_score};

use crate::Durability;
use crate::batch::Batcher;
use crate::connection::{Redis, Script, Shortfall};

/// The metadata field.
const META_FIELD: &str = "m";

/// What every data field's name starts with.
const DATA_PREFIX: &str = "d:";

/// The Lua functions the save and regenerate scripts share.
///
/// * `live(key, now)`: whether `key` holds a session that has not expired
///   at `now` (Unix ms, the application's clock, which may run ahead of
///   Redis's); an expired one is deleted.
/// * `write_delta(key, first, last)`: applies the delta in
///   `ARGV[first..=last]`: `1` to drop every data field first, the number N
///   of fields to delete, the N fields, then field/value pairs to write,
///   the last pair being the metadata (`m` and its JSON); built on
///   `writes_at` (where the pairs begin), `delete_fields` and `set_fields`
///   (which answers how many fields were new).
/// * `set_deadline(key, deadline)`: the key's expiry, in Unix ms (empty:
///   none).
macro_rules! shared_lua {
    () => {
        r#"
local function live(key, now)
  local deadline = redis.call('PEXPIRETIME', key)
  if deadline == -2 then
    return false
  end
  -- A hash without an expiry may be what a data write's HSET made of a
  -- session that was gone: a session has its metadata.
  if (deadline >= 0 and deadline <= tonumber(now))
    or (deadline == -1 and redis.call('HEXISTS', key, 'm') == 0) then
    redis.call('DEL', key)
    return false
  end
  return true
end

-- Where the field/value pairs begin in the delta at ARGV[first].
local function writes_at(first)
  return first + 2 + tonumber(ARGV[first + 1])
end

-- unpack() is limited by Lua's stack, so many fields go in chunks.
local function delete_fields(key, first, last)
  for i = first, last, 256 do
    redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 255, last)))
  end
end

local function set_fields(key, first, last)
  local added = 0
  for i = first, last, 256 do
    added = added + redis.call('HSET', key, unpack(ARGV, i, math.min(i + 255, last)))
  end
  return added
end

local function write_delta(key, first, last)
  if ARGV[first] == '1' then
    redis.call('DEL', key)
  end
  local first_write = writes_at(first)
  delete_fields(key, first + 2, first_write - 1)
  set_fields(key, first_write, last)
end

local function set_deadline(key, deadline)
  if deadline == '' then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIREAT', key, deadline)
  end
end
"#
    };
}

/// Applies creates, updates and rolling refreshes, each atomically: one
/// per key of `KEYS`, in order (the [batcher](crate::batch) sends the
/// writes that wait together as one call).
///
/// `ARGV` holds, for each key in turn, the number of its arguments and then
/// these: mode (`create`, `update`, `data` or `touch`), deadline in Unix ms
/// (empty: none), the application's now in Unix ms; then, for `create`,
/// `update` and `data`, the delta (see [`shared_lua`]), which for `data`
/// has no metadata: a `data` save writes the data fields alone, leaving the
/// metadata and the key's expiry as they are stored (its deadline argument
/// is not used). Most writes of data keys alone come not here but are an
/// `HSET` (`HashLayout::set_data`) or, with removals, [`DATA_LUA`]; the
/// `data` mode takes those that cannot tell from their own `HSET` whether
/// the session is there. A `touch` has nothing more: it
/// only moves the deadline, in the stored metadata and in the key's
/// expiry.
///
/// The reply has one entry per key: `saved`, `taken`, `gone`, or `error: `
/// and the message of a command that failed for that key (the other keys
/// are still saved).
///
/// `create` never overwrites an existing key (answers `taken`); `update`,
/// `data` and `touch` never recreate a missing or expired one (answer
/// `gone`), so a save that races a logout cannot bring the session back.
/// A `touch` rewrites only the value of `e`, which the metadata's JSON
/// always starts with, so that it keeps whatever a concurrent save wrote
/// to the rest.
const SAVE_LUA: &str = concat!(
    shared_lua!(),
    r#"
local function save(key, first, last)
  local mode = ARGV[first]
  if mode == 'create' then
    if redis.call('EXISTS', key) == 1 then
      return 'taken'
    end
  elseif not live(key, ARGV[first + 2]) then
    return 'gone'
  end
  if mode == 'data' then
    write_delta(key, first + 3, last)
    return 'saved'
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
    write_delta(key, first + 3, last)
  end
  set_deadline(key, deadline)
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
"#
);

/// Writes of data keys alone that write at least one key and remove
/// others, while the deadline each request loaded is ahead by the
/// application's clock, each atomically: one per key of `KEYS`, in order,
/// sent in batches as the save script is. (Those that remove nothing are
/// one `HSET` without a script, `HashLayout::set_data`, which checks the
/// same way.)
///
/// `ARGV` holds, for each key in turn, the number of its arguments and then
/// its delta without metadata (see [`shared_lua`]; never a clear). The
/// `HSET` is the liveness check: it adds no field to a live session whose
/// keys it only changes, and a field to a key that is gone, which it
/// creates. Only then is the metadata looked for, and a key without it
/// (the one just created) is deleted at once, in the same script: a
/// logged-out session is never brought back, not even for a moment. Then
/// the removed keys are deleted. Answers as the save script does: `saved`,
/// `gone`, or `error: ` and the message.
///
/// A script of its own rather than a mode of the save script: Redis runs
/// it in less than half the time (a few lines of Lua against the save
/// script's functions and dispatch, and three arguments per key besides
/// the fields instead of six).
const DATA_LUA: &str = r#"
local replies = {}
local at = 1
for k = 1, #KEYS do
  local key, last = KEYS[k], at + tonumber(ARGV[at])
  local first_write = at + 3 + tonumber(ARGV[at + 2])
  local reply = 'saved'
  local added = 0
  -- unpack() is limited by Lua's stack, so many fields go in chunks.
  for i = first_write, last, 256 do
    local written = redis.pcall('HSET', key, unpack(ARGV, i, math.min(i + 255, last)))
    if type(written) == 'table' then
      reply = 'error: ' .. tostring(written.err)
      break
    end
    added = added + written
  end
  if reply == 'saved' and added > 0 and redis.call('HEXISTS', key, 'm') == 0 then
    redis.call('DEL', key)
    reply = 'gone'
  end
  if reply == 'saved' then
    for i = at + 3, first_write - 1, 256 do
      redis.call('HDEL', key, unpack(ARGV, i, math.min(i + 255, first_write - 1)))
    end
  end
  replies[k] = reply
  at = last + 1
end
return replies
"#;

/// Moves a session to a new key, only if it still exists: `KEYS` are the
/// old key, the new one, the login's mark (see below) and, for a session
/// bound to a user, the user's index; `ARGV` the deadline in Unix ms
/// (empty: none), the application's now in Unix ms, the new id, the old
/// id, the new id's score in the index (its deadline, or `+inf`), the
/// mark's lifetime in ms, then the delta (see [`shared_lua`]).
///
/// Answers `gone` when the old session is no longer there (a logout came
/// first: nothing is written), `taken` when the new key exists (another id
/// is drawn), else renames the old key to the new one, which keeps every
/// field concurrent requests wrote, applies the delta, sets the deadline,
/// puts the new id in the user's index in place of the old, and leaves the
/// mark holding the new id: `saved`. Sent again with the same new id after
/// its answer was lost, it finds its own mark and answers `saved` again,
/// where it would otherwise have found the old session gone.
///
/// The index is changed in the same script, and checked before anything is
/// written: a login whose index write failed after the move (Redis dying
/// or timing out between two calls) would answer an error while the
/// session, with the writes the client had been answered for, lived on
/// under an id the client never received. Both keys must be in one slot,
/// so on a cluster the store regenerates with a create and a checked
/// delete instead.
const REGENERATE_LUA: &str = concat!(
    shared_lua!(),
    index_lua!(),
    r#"
local index = KEYS[4]
if index then
  local kind = redis.call('TYPE', index)['ok']
  if kind ~= 'zset' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE the user index ' .. index .. ' is not a sorted set')
  end
end
if redis.call('GET', KEYS[3]) == ARGV[3] then
  return 'saved'
end
if not live(KEYS[1], ARGV[2]) then
  return 'gone'
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'taken'
end
redis.call('RENAME', KEYS[1], KEYS[2])
write_delta(KEYS[2], 7, #ARGV)
set_deadline(KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[6])
if index then
  change_index(index, ARGV[3], ARGV[5], ARGV[2], 4, 4)
end
return 'saved'
"#
);

/// The metadata kept in the `m` field. `deadline` is declared first so that
/// it is written first, where the save script's `touch` finds it.
#[derive(Serialize, Deserialize)]
struct Metadata<'a> {
    /// Serialized as `null` when absent, never skipped: the script rewrites
    /// its value in place.
    #[serde(rename = "e", default)]
    deadline: Option<u64>,
    #[serde(rename = "c")]
    created: u64,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    expiry: Option<Expiry>,
    /// The user the session is bound to, its label, and when it was last
    /// seen: only for a session bound to a user.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    user: Option<Cow<'a, str>>,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    label: Option<Cow<'a, str>>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<u64>,
}

/// One hash per session under `{prefix}{id}`.
pub(crate) struct HashLayout {
    prefix: String,
    saves: Arc<Batcher>,
    data_writes: Arc<Batcher>,
    regenerate: Script,
    // Boxed: only sessions bound to a user use them.
    users: Box<UserScripts>,
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
    /// An update of data keys only: the metadata and the key's expiry are
    /// left as stored.
    Data,
    /// A rolling refresh: only the deadline moves.
    Touch,
}

impl Mode {
    fn arg(self) -> Value {
        Value::from_static_str(match self {
            Mode::Create => "create",
            Mode::Update => "update",
            Mode::Data => "data",
            Mode::Touch => "touch",
        })
    }
}

/// What a script said of one key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Applied {
    Saved,
    /// A create found the key taken.
    Taken,
    /// An update, a touch or a regenerate found the session gone.
    Gone,
}

impl Applied {
    fn written(self, value: &str) -> Written {
        match self {
            Applied::Saved => Written::Cookie(value.to_owned()),
            Applied::Taken | Applied::Gone => Written::Gone,
        }
    }
}

impl HashLayout {
    pub(crate) fn new(prefix: String) -> Self {
        HashLayout {
            prefix,
            saves: Arc::new(Batcher::new(Script::new(SAVE_LUA))),
            data_writes: Arc::new(Batcher::new(Script::new(DATA_LUA))),
            regenerate: Script::new(REGENERATE_LUA),
            users: Box::new(UserScripts::new()),
        }
    }

    /// The key for `cookie_value`, or `None` when it is not an id we could
    /// have issued: a request never makes us build keys from arbitrary
    /// input.
    fn key(&self, cookie_value: &str) -> Option<String> {
        SessionId::is_well_formed(cookie_value).then(|| self.key_of(cookie_value))
    }

    fn key_of(&self, id: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + id.len());
        key.push_str(&self.prefix);
        key.push_str(id);
        key
    }

    pub(crate) async fn load(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
    ) -> Result<Option<Record>, Error> {
        let Some(key) = self.key(cookie.value) else {
            return Ok(None);
        };
        let fields = redis.hgetall(&key).await?;
        // No fields: no such key.
        if is_empty(&fields) {
            return Ok(None);
        }
        let record = decode(&fields);
        if record.is_none() {
            if has_field(&fields, META_FIELD) {
                tracing::debug!(
                    cookie = cookie.name,
                    "malformed session hash in Redis; ignored"
                );
            } else if let Err(error) = redis.del(&key).await {
                // What a data write made of a session that was gone, left
                // when it could not delete it itself (see `set_data`):
                // never a session again.
                tracing::debug!(%error, "a gone session's leftover hash could not be deleted");
            }
        }
        Ok(record)
    }

    pub(crate) async fn create(&self, redis: &Redis, create: Create<'_>) -> Result<String, Error> {
        let changes = Changes::replace_all(create.record);
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = SessionId::generate().into_string();
            let mut args = self.args(Mode::Create, create.record, create.now);
            push_delta(&mut args, create.record, &changes, true)?;
            match self.run(&self.saves, redis, self.key_of(&id), args).await? {
                Applied::Saved => {
                    Box::pin(self.indexed_write(redis, &id, create.record, create.now)).await?;
                    return Ok(id);
                }
                Applied::Taken => super::id_taken(),
                Applied::Gone => {
                    return Err(Error::store(
                        "the save script reported a new session as gone",
                    ));
                }
            }
        }
        Err(super::no_free_id())
    }

    pub(crate) async fn update(&self, redis: &Redis, update: Update<'_>) -> Result<Written, Error> {
        let Some(key) = self.key(update.cookie.value) else {
            return Ok(Written::Gone);
        };
        // A write of data keys alone (the common one: within the rolling
        // step, nothing but data changed) leaves the metadata, the key's
        // expiry and the user's index as they are: no metadata to encode,
        // and, when it writes a key, an `HSET` that is also the liveness
        // check (in the data writes' own script when it removes keys too).
        // Clearing drops the whole hash, metadata included: a full update.
        let data_only = update.data_only && !update.changes.cleared();
        if data_only && writes_while_live(update.record, update.changes, update.now) {
            if let Some(fields) = fields_set(update.record, update.changes)? {
                let adds_keys = update.changes.adds_keys();
                let applied = self.set_data(redis, &key, fields, adds_keys).await?;
                return Ok(applied.written(update.cookie.value));
            }
            let mut args = Vec::new();
            push_delta(&mut args, update.record, update.changes, false)?;
            let applied = self.run(&self.data_writes, redis, key, args).await?;
            return Ok(applied.written(update.cookie.value));
        }
        let mode = if data_only { Mode::Data } else { Mode::Update };
        let mut args = self.args(mode, update.record, update.now);
        push_delta(&mut args, update.record, update.changes, !data_only)?;
        let applied = self.run(&self.saves, redis, key, args).await?;
        if applied == Applied::Saved && !data_only {
            let id = update.cookie.value;
            Box::pin(self.indexed_write(redis, id, update.record, update.now)).await?;
        }
        Ok(applied.written(update.cookie.value))
    }

    /// A write of data keys that only sets fields (it removes none), while
    /// the deadline the request loaded is ahead: one `HSET`, no script.
    ///
    /// The `HSET` is the liveness check. When one of its fields was there
    /// already, so was the key: the session, or the hash another write
    /// racing the same logout made of it (see [a hash without metadata is
    /// no session](self#atomicity-and-merging)), and this request, which
    /// loaded the session before that logout, is answered as having come
    /// before it. When every field was new (keys the request added, or a
    /// session that is gone), the metadata is asked for: a hash without it
    /// is what the `HSET` made of a session that is gone, which is deleted,
    /// and the request answered gone. A request that added keys
    /// ([`Changes::adds_keys`]) sends that question with the `HSET`, in the
    /// same round trip, rather than after its answer: all of its fields
    /// may well be new.
    ///
    /// Not batched as the scripts are: fred pipelines plain commands by
    /// itself.
    async fn set_data(
        &self,
        redis: &Redis,
        key: &str,
        fields: Map,
        adds_keys: bool,
    ) -> Result<Applied, Error> {
        let field_count = i64::try_from(fields.len()).unwrap_or(i64::MAX);
        let live = if adds_keys {
            // Boxed: inline, its future grew every save's (which the
            // behaviour tests bound) past a kilobyte.
            let check = Box::pin(redis.hset_then_hexists(key, fields, META_FIELD));
            let (added, has_meta) = check.await?;
            added < field_count || has_meta
        } else {
            let added = redis.hset(key, fields).await?;
            added < field_count || redis.hexists(key, META_FIELD).await?
        };
        if live {
            return Ok(Applied::Saved);
        }
        redis.del(key).await?;
        Ok(Applied::Gone)
    }

    pub(crate) async fn refresh(
        &self,
        redis: &Redis,
        refresh: Refresh<'_>,
    ) -> Result<Written, Error> {
        let Some(key) = self.key(refresh.cookie.value) else {
            return Ok(Written::Gone);
        };
        // Through the save script, so that the metadata's deadline and the
        // key's expiry move together, and a session that is gone stays gone.
        // A session bound to a user rewrites its metadata whole, which holds
        // when it was last seen.
        let record = refresh.record;
        let applied = if record.user.is_some() {
            let mut args = self.args(Mode::Update, record, refresh.now);
            push_delta(&mut args, record, &Changes::default(), true)?;
            let applied = self.run(&self.saves, redis, key, args).await?;
            if applied == Applied::Saved {
                let id = refresh.cookie.value;
                Box::pin(self.indexed_write(redis, id, record, refresh.now)).await?;
            }
            applied
        } else {
            let args = self.args(Mode::Touch, record, refresh.now);
            self.run(&self.saves, redis, key, args).await?
        };
        Ok(applied.written(refresh.cookie.value))
    }

    /// One script that renames the old key to a fresh one and applies the
    /// delta, if the old key is still there. A cluster puts the two keys
    /// in different slots, which one script may not touch: there the
    /// session is created anew and the old id deleted, checked.
    pub(crate) async fn regenerate(
        &self,
        redis: &Redis,
        regenerate: Regenerate<'_>,
    ) -> Result<Written, Error> {
        // With durability on, too: one script would move the session
        // before its WAIT, so a login whose replicas did not acknowledge
        // it (a 500: the client keeps its old cookie) would leave the
        // session under an id the client never got. A create that fails
        // leaves the old session as it was. Once the old session is
        // deleted, the login answers its new cookie even if the delete's
        // own WAIT falls short (a master just promoted, without its
        // replica yet): an error then left the client the cookie of a
        // deleted session, and the session under an id it never got.
        let Some(old) = self.key(regenerate.cookie.value) else {
            return Ok(Written::Gone);
        };
        if redis.is_clustered() || redis.durability() != Durability::Master {
            return self.create_then_move_out(redis, regenerate, &old).await;
        }
        let mark = Value::from(super::one_server_mark_key(&old));
        let old = Value::from(old);
        let lifetime = Value::Integer(super::mark_lifetime_ms(redis));
        let index = regenerate
            .record
            .user
            .as_deref()
            .map(|user| self.user_key(user));
        let key_count = if index.is_some() { 4 } else { 3 };
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = SessionId::generate().into_string();
            let mut args = vec![old.clone(), self.key_of(&id).into(), mark.clone()];
            args.extend(index.iter().map(|index| Value::from(index.as_str())));
            args.extend(deadline_args(regenerate.record, regenerate.now));
            args.push(id.as_str().into());
            args.push(regenerate.cookie.value.into());
            args.push(index_score(regenerate.record.expires_at));
            args.push(lifetime.clone());
            push_delta(&mut args, regenerate.record, regenerate.changes, true)?;
            // Sent again with the same id while its answer is an error.
            let reply = super::send_until_answered(|| async {
                redis
                    .eval(&self.regenerate, key_count, redis.timeout(), |full| {
                        full.extend(args.iter().cloned());
                    })
                    .await
                    .map_err(Error::store)
            })
            .await?;
            match applied(&reply)? {
                // The user's index was changed by the same script.
                Applied::Saved => return Ok(Written::Cookie(id)),
                Applied::Gone => return Ok(Written::Gone),
                Applied::Taken => super::id_taken(),
            }
        }
        Err(super::no_free_id())
    }

    /// A login in two steps: a create under a new id, then
    /// [`move_out`](Self::move_out) of the old key (see
    /// [`send_until_answered`]).
    ///
    /// [`send_until_answered`]: super::send_until_answered
    async fn create_then_move_out(
        &self,
        redis: &Redis,
        regenerate: Regenerate<'_>,
        old: &str,
    ) -> Result<Written, Error> {
        let (cookie, now) = (regenerate.cookie, regenerate.now);
        let create = Create::new(cookie.name, regenerate.record, now);
        let new_id = self.create(redis, create).await?;
        if super::send_until_answered(|| self.move_out(redis, old, cookie, &new_id, now)).await? {
            return Ok(Written::Cookie(new_id));
        }
        let new_cookie = SessionCookie::new(cookie.name, &new_id);
        self.delete(redis, new_cookie, now, Shortfall::Fails)
            .await?;
        Ok(Written::Gone)
    }

    /// One run of the login's delete script (`MOVE_OUT_LUA`): deletes the
    /// session at `old`, which a login moved to `new_id`, and answers
    /// whether it (or an earlier run for the same login) did. Where the
    /// layout's prefix keeps the mark from sharing the session's slot, a
    /// plain delete, whose answer cannot be asked for again.
    async fn move_out(
        &self,
        redis: &Redis,
        old: &str,
        cookie: SessionCookie<'_>,
        new_id: &str,
        now: SystemTime,
    ) -> Result<bool, Error> {
        let Some(mark) = super::moved_mark_key(old) else {
            return self.delete(redis, cookie, now, Shortfall::Answers).await;
        };
        let reply = super::run_move_out(redis, &self.users.move_out, old, &mark, new_id).await?;
        self.deleted(redis, cookie, now, &reply).await
    }

    /// One script deletes the session and answers its metadata, so that a
    /// session bound to a user leaves its user's index too.
    pub(crate) async fn delete(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
        now: SystemTime,
        shortfall: Shortfall,
    ) -> Result<bool, Error> {
        let Some(key) = self.key(cookie.value) else {
            return Ok(false);
        };
        let key = Value::from(key);
        let reply = redis
            .eval_with(&self.users.delete, 1, redis.timeout(), shortfall, |full| {
                full.push(key.clone());
            })
            .await
            .map_err(Error::store)?;
        self.deleted(redis, cookie, now, &reply).await
    }

    /// Reads the reply of a delete script (whether it deleted the session
    /// of `cookie`, and its metadata) and takes the session's id out of its
    /// user's index.
    async fn deleted(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
        now: SystemTime,
        reply: &Value,
    ) -> Result<bool, Error> {
        let (deleted, metadata) = match reply {
            Value::Array(reply) if reply.len() == 2 => (
                reply[0].as_i64().is_some_and(|deleted| deleted > 0),
                json::<Metadata<'static>>(&reply[1]),
            ),
            _ => {
                return Err(Error::store(format!(
                    "unexpected reply from the delete script: {reply:?}"
                )));
            }
        };
        if let Some(user) = metadata.and_then(|metadata| metadata.user) {
            let change = IndexChange {
                user: &user,
                add: None,
                remove: &[cookie.value],
                now,
            };
            // The session is gone whatever happens next. An index that
            // cannot be written (its shard failing over, say) keeps the
            // id, which the next listing drops with the other ids whose
            // session is gone. An error here would answer a logout that
            // was done, or a login (create, then this delete) whose
            // session had already moved: its client would keep the
            // cookie of a deleted session, and lose the data moved under
            // an id it never got.
            if let Err(error) = self.change_index(redis, change).await {
                tracing::warn!(
                    %error,
                    "a deleted session's id is left in its user's index, which the next listing \
                     of the user's sessions drops"
                );
            }
        }
        Ok(deleted)
    }

    /// After a write of `record` under `id` that succeeded: adds a session
    /// bound to a user to its user's index (a regenerate does so in its own
    /// script). Callers box it: a script call's future is several
    /// kilobytes, which would otherwise grow every write's future, bound to
    /// a user or not.
    async fn indexed_write(
        &self,
        redis: &Redis,
        id: &str,
        record: &Record,
        now: SystemTime,
    ) -> Result<(), Error> {
        let Some(user) = record.user.as_deref() else {
            return Ok(());
        };
        let change = IndexChange {
            user,
            add: Some((id, record.expires_at)),
            remove: &[],
            now,
        };
        self.change_index(redis, change).await
    }

    /// The sessions in `user`'s index that are live at `now`; drops from
    /// the index the ids whose session is gone or bound to someone else.
    pub(crate) async fn sessions_of(
        &self,
        redis: &Redis,
        user: &str,
        now: SystemTime,
    ) -> Result<Vec<BoundSession>, Error> {
        let mut sessions = Vec::new();
        let mut stale = Vec::new();
        for id in self.indexed(redis, user, now).await? {
            let key = self.key_of(&id);
            let fields = redis.hgetall(&key).await?;
            match decode(&fields) {
                Some(record) if record.user.as_deref() == Some(user) => {
                    sessions.push(BoundSession::new(id, Arc::new(record)));
                }
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let stale: Vec<&str> = stale.iter().map(String::as_str).collect();
            let change = IndexChange {
                user,
                add: None,
                remove: &stale,
                now,
            };
            self.change_index(redis, change).await?;
        }
        Ok(sessions)
    }

    /// The save script's first arguments for one key: the mode, the
    /// deadline and the time; a delta may follow.
    fn args(&self, mode: Mode, record: &Record, now: SystemTime) -> Vec<Value> {
        let mut args = Vec::with_capacity(8);
        args.push(mode.arg());
        args.extend(deadline_args(record, now));
        args
    }

    /// Runs the script of `batcher` (the save script or [`DATA_LUA`]) with
    /// `args` for `key`.
    async fn run(
        &self,
        batcher: &Arc<Batcher>,
        redis: &Redis,
        key: String,
        args: Vec<Value>,
    ) -> Result<Applied, Error> {
        let reply = batcher.call(redis, key, args).await.map_err(Error::store)?;
        applied(&reply)
    }
}

/// What a script's reply for one key says.
fn applied(reply: &Value) -> Result<Applied, Error> {
    let text = reply.as_str();
    match text.as_deref() {
        Some("saved") => Ok(Applied::Saved),
        Some("taken") => Ok(Applied::Taken),
        Some("gone") => Ok(Applied::Gone),
        other => match other.and_then(|text| text.strip_prefix("error: ")) {
            Some(message) => Err(Error::store(format!("the save script failed: {message}"))),
            None => Err(Error::store(format!(
                "unexpected reply from the save script: {reply:?}"
            ))),
        },
    }
}

/// The deadline (empty: none) and the application's now, in Unix ms.
fn deadline_args(record: &Record, now: SystemTime) -> [Value; 2] {
    [
        match record.expires_at {
            Some(deadline) => Value::Integer(deadline_millis(deadline)),
            None => Value::from_static_str(""),
        },
        Value::Integer(deadline_millis(now)),
    ]
}

/// Appends a request's delta to a script's arguments, as the scripts take
/// it: whether to clear, the fields to delete, the fields to write with
/// their values, the metadata last (when `with_metadata`).
fn push_delta(
    args: &mut Vec<Value>,
    record: &Record,
    changes: &Changes,
    with_metadata: bool,
) -> Result<(), Error> {
    let removed = || {
        changes
            .removed()
            .chain(changes.written().filter(|k| !record.data.contains_key(*k)))
    };
    let removed_count = removed().count();
    args.reserve(4 + removed_count + 2 * changes.written().len());
    args.push(Value::Integer(changes.cleared().into()));
    args.push(Value::Integer(
        i64::try_from(removed_count).unwrap_or(i64::MAX),
    ));
    args.extend(removed().map(|k| data_field(k).into()));
    for key in changes.written() {
        if let Some(value) = record.data.get(key) {
            args.push(data_field(key).into());
            args.push(serde_json::to_string(value).map_err(Error::Value)?.into());
        }
    }
    if !with_metadata {
        return Ok(());
    }
    let metadata = Metadata {
        deadline: record.expires_at.map(unix_millis),
        created: unix_millis(record.created),
        expiry: record.expiry,
        user: record.user.as_deref().map(Cow::Borrowed),
        label: record.label.as_deref().map(Cow::Borrowed),
        last_seen: record.last_seen.map(unix_millis),
    };
    args.push(Value::from_static_str(META_FIELD));
    args.push(
        serde_json::to_string(&metadata)
            .map_err(Error::Value)?
            .into(),
    );
    Ok(())
}

/// Whether a write of data keys alone goes to [`DATA_LUA`]: it writes at
/// least one key (whose `HSET` tells whether the session is there), and
/// the deadline the request loaded is ahead by the application's clock
/// (once it has passed, a concurrent refresh may have moved the stored
/// one: the save script asks Redis for it).
fn writes_while_live(record: &Record, changes: &Changes, now: SystemTime) -> bool {
    let writes = changes.written().any(|key| record.data.contains_key(key));
    writes && record.expires_at.is_none_or(|deadline| deadline > now)
}

/// The field/value pairs of a delta that only writes keys, or `None` when
/// it also removes some.
fn fields_set(record: &Record, changes: &Changes) -> Result<Option<Map>, Error> {
    if changes.removed().next().is_some() {
        return Ok(None);
    }
    let mut fields = Map::new();
    for key in changes.written() {
        // A key written, then removed, is a removal.
        let Some(value) = record.data.get(key) else {
            return Ok(None);
        };
        let value = serde_json::to_string(value).map_err(Error::Value)?;
        fields.insert(data_field(key).into(), value.into());
    }
    Ok(Some(fields))
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

/// Whether the reply to `HGETALL` has the field `name`.
fn has_field(fields: &Value, name: &str) -> bool {
    pairs(fields).is_some_and(|mut pairs| pairs.any(|(field, _)| field == Some(name.as_bytes())))
}

/// Unix milliseconds as Redis takes them.
fn deadline_millis(t: SystemTime) -> i64 {
    i64::try_from(unix_millis(t)).unwrap_or(i64::MAX)
}

/// The record in the reply to `HGETALL` (an array of fields and values, or
/// a map under RESP3), or `None` when anything about it is off: values from
/// Redis are untrusted too.
pub(crate) fn decode(fields: &Value) -> Option<Record> {
    let mut metadata = None;
    let mut data = serde_json::Map::new();
    for (name, value) in pairs(fields)? {
        let name = std::str::from_utf8(name?).ok()?;
        if name == META_FIELD {
            metadata = Some(json::<Metadata<'static>>(value)?);
        } else if let Some(key) = name.strip_prefix(DATA_PREFIX) {
            data.insert(key.to_owned(), json(value)?);
        }
        // Other fields are not ours to interpret: ignored.
    }
    let metadata: Metadata<'_> = metadata?;
    let mut record = Record::new(from_unix_millis(metadata.created)?);
    record.expiry = metadata.expiry;
    record.user = metadata.user.map(Cow::into_owned);
    record.label = metadata.label.map(Cow::into_owned);
    record.last_seen = match metadata.last_seen {
        Some(ms) => Some(from_unix_millis(ms)?),
        None => None,
    };
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
        let record = decode(&reply(&[
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
            let persistent = decode(&reply(&["m", meta])).expect("decodes");
            assert_eq!(persistent.expires_at, None, "{meta}");
        }
        // RESP3 answers HGETALL with a map; fred gives text as strings.
        let mut map = fred::types::Map::new();
        let _ = map.insert("m".into(), Value::String(r#"{"e":0,"c":5}"#.into()));
        let _ = map.insert("d:k".into(), Value::String("2".into()));
        let record = decode(&Value::Map(map)).expect("decodes");
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
                user: None,
                label: None,
                last_seen: None,
            })
            .expect("serializes")
        };
        assert_eq!(metadata(Some(9), None), r#"{"e":9,"c":5}"#);
        let bound = Metadata {
            deadline: Some(9),
            created: 5,
            expiry: None,
            user: Some("ada".into()),
            label: Some("laptop".into()),
            last_seen: Some(7),
        };
        let bound = serde_json::to_string(&bound).expect("serializes");
        assert_eq!(bound, r#"{"e":9,"c":5,"u":"ada","l":"laptop","s":7}"#);
        let record = decode(&reply(&["m", &bound])).expect("decodes");
        assert_eq!(record.user.as_deref(), Some("ada"));
        assert_eq!(record.label.as_deref(), Some("laptop"));
        assert_eq!(record.last_seen.map(unix_millis), Some(7));
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
            assert!(decode(&bad).is_none(), "{bad:?}");
        }
    }
}
