//! The index of each user's sessions; its format and guarantees are in
//! the [layout's documentation](super#user-bound-sessions).

use fred::types::Value;
use session_core::Error;

use super::{HashLayout, deadline_millis};
use crate::connection::{Redis, Script};

/// Changes one user's index. `KEYS[1]` is the index, `KEYS[2]` (absent on
/// a cluster) the session to add; `ARGV[1]` the id to add (empty: none),
/// `ARGV[2]` its score, `ARGV[3]` the application's now in Unix ms, and the
/// rest ids to remove.
const INDEX_LUA: &str = concat!(
    index_lua!(),
    r"
local add = ARGV[1]
if add ~= '' and #KEYS == 2 and redis.call('HEXISTS', KEYS[2], 'm') == 0 then
  add = ''
end
change_index(KEYS[1], add, ARGV[2], ARGV[3], 4, #ARGV)
return 'ok'
"
);

/// The ids in a user's index (`KEYS[1]`) whose deadline is after `ARGV[1]`,
/// having dropped the others.
const LIST_LUA: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
";

/// Deletes a session (`KEYS[1]`), answering whether it was there and its
/// metadata (empty when none). A hash without metadata is no session (what
/// a data write's `HSET` made of one that was gone): deleted, and answered
/// as none.
const DELETE_LUA: &str = r"
local meta = redis.call('HGET', KEYS[1], 'm')
redis.call('DEL', KEYS[1])
if not meta then
  return {0, ''}
end
return {1, meta}
";

/// A login's delete of the session it moved (`KEYS[1]`) to the new id
/// `ARGV[1]`: as [`DELETE_LUA`], and where it deletes the session it
/// leaves the mark `KEYS[2]` (in the same slot), holding the new id, for
/// `ARGV[2]` ms. Run again by the same login after its answer was lost, it
/// finds its own mark and answers as the first run did, without the
/// metadata (the old id then stays in its user's index until a listing
/// drops it): the session was moved, not taken by a logout.
const MOVE_OUT_LUA: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  return {1, ''}
end
local meta = redis.call('HGET', KEYS[1], 'm')
redis.call('DEL', KEYS[1])
if not meta then
  return {0, ''}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, meta}
";

/// The scripts of the user index.
pub(super) struct UserScripts {
    index: Script,
    list: Script,
    pub(super) delete: Script,
    pub(super) move_out: Script,
}

impl UserScripts {
    pub(super) fn new() -> Self {
        UserScripts {
            index: Script::new(INDEX_LUA),
            list: Script::new(LIST_LUA),
            delete: Script::new(DELETE_LUA),
            move_out: Script::new(MOVE_OUT_LUA),
        }
    }
}

/// A change of one user's index.
pub(super) struct IndexChange<'a> {
    pub(super) user: &'a str,
    /// The id to add, with its deadline (`None`: none).
    pub(super) add: Option<(&'a str, Option<std::time::SystemTime>)>,
    pub(super) remove: &'a [&'a str],
    pub(super) now: std::time::SystemTime,
}

impl HashLayout {
    /// The key of `user`'s index. A `:` never appears in an id, so it
    /// cannot collide with a session's key.
    pub(super) fn user_key(&self, user: &str) -> String {
        format!("{}user:{user}", self.prefix)
    }

    /// Applies `change` to its user's index.
    pub(super) async fn change_index(
        &self,
        redis: &Redis,
        change: IndexChange<'_>,
    ) -> Result<(), Error> {
        let mut keys: Vec<Value> = vec![self.user_key(change.user).into()];
        let (id, score) = match change.add {
            Some((id, deadline)) => {
                // One script may touch one slot only: on a cluster, the
                // session's existence is not checked (a listing cleans up).
                if !redis.is_clustered() {
                    keys.push(self.key_of(id).into());
                }
                (Value::from(id), index_score(deadline))
            }
            None => (Value::from_static_str(""), Value::Integer(0)),
        };
        let key_count = keys.len();
        let mut args = keys;
        args.push(id);
        args.push(score);
        args.push(Value::Integer(deadline_millis(change.now)));
        args.extend(change.remove.iter().map(|id| Value::from(*id)));
        redis
            .eval(&self.users.index, key_count, redis.timeout(), |full| {
                full.extend(args.iter().cloned());
            })
            .await
            .map_err(Error::store)?;
        Ok(())
    }

    /// The ids in `user`'s index whose deadline is after `now`, having
    /// dropped the others from it.
    pub(super) async fn indexed(
        &self,
        redis: &Redis,
        user: &str,
        now: std::time::SystemTime,
    ) -> Result<Vec<String>, Error> {
        let key = Value::from(self.user_key(user));
        let reply = redis
            .eval(&self.users.list, 1, redis.timeout(), |full| {
                full.push(key.clone());
                full.push(Value::Integer(deadline_millis(now)));
            })
            .await
            .map_err(Error::store)?;
        match reply {
            Value::Array(ids) => Ok(ids
                .iter()
                .filter_map(|id| id.as_str().map(|id| id.into_owned()))
                .collect()),
            Value::Null => Ok(Vec::new()),
            other => Err(Error::store(format!(
                "unexpected reply from the user index: {other:?}"
            ))),
        }
    }
}

/// An id's score in its user's index: its deadline in Unix ms, or `+inf`
/// for a session without one.
pub(super) fn index_score(deadline: Option<std::time::SystemTime>) -> Value {
    deadline.map_or_else(
        || Value::from_static_str("+inf"),
        |deadline| Value::Integer(deadline_millis(deadline)),
    )
}
