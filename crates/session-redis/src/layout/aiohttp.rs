//! aiohttp_session's `RedisStorage` format, so that a Python aiohttp service
//! and a Rust service can share sessions. See [`crate::aiohttp`] for what it
//! means for applications; this module is the mechanics:
//!
//! * key: `{cookie_name}_{id}`, where `id` is the cookie value: uuid4 in
//!   hex, 32 lowercase hex digits (aiohttp_session's default key factory);
//! * value: `json.dumps({"created": <unix seconds>, "session": {...}})`,
//!   byte for byte (the codec of [`session_core::aiohttp`], which the
//!   aiohttp cookie formats share);
//! * expiry: `EX max_age` on every write, none without a `max_age`;
//! * `{}` (what aiohttp_session writes on logout, and for a session whose
//!   keys were all removed) loads as no session and is never written over;
//!   an update that empties a session writes it too, and removes the
//!   cookie ([`Written::Emptied`]), as aiohttp_session does.

use std::time::{Duration, SystemTime};

use fred::types::Value as RedisValue;
use session_core::aiohttp::{self as codec, whole_seconds};
use session_core::{Create, Error, Record, Refresh, Regenerate, SessionCookie, Update, Written};

use super::MAX_ID_ATTEMPTS;
use crate::Durability;
use crate::connection::{Redis, Script, Shortfall};

/// The length of a uuid4 in hex.
const ID_LEN: usize = 32;

/// What aiohttp_session writes for a logged-out (emptied) session.
const LOGGED_OUT: &[u8] = b"{}";

/// Rewrites an existing session, in one atomic round trip.
///
/// ARGV: the new value, and the expiry in seconds (empty: none). Answers
/// `gone` without writing when the key is missing (expired, or deleted by
/// our logout) or holds `{}` (aiohttp_session's logout): a slow request that
/// finishes after a logout on either side never brings the session back.
const UPDATE_LUA: &str = r"
local current = redis.call('GET', KEYS[1])
if not current or current == '{}' then
  return 'gone'
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 'saved'
";

/// Moves a session to a new key, only if it still exists: `KEYS` are the
/// old key, the new one and the login's mark (a key Python never reads),
/// `ARGV` the value, `max_age` in seconds (empty: none) and the mark's
/// lifetime in ms. Answers `gone` (the old key is missing or logged out),
/// `taken` (the new key exists) or `saved`, having left the mark holding
/// the new key. Sent again after its answer was lost, it finds its own
/// mark and answers `saved` again.
const REGENERATE_LUA: &str = r"
if redis.call('GET', KEYS[3]) == KEYS[2] then
  return 'saved'
end
local current = redis.call('GET', KEYS[1])
if not current or current == '{}' then
  return 'gone'
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'taken'
end
if ARGV[2] == '' then
  redis.call('SET', KEYS[2], ARGV[1])
else
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], KEYS[2], 'PX', ARGV[3])
return 'saved'
";

/// A login's delete of the session it moved (`KEYS[1]`) to the new id
/// `ARGV[1]`: answers 1 when it deleted a session (not aiohttp_session's
/// logged-out `{}`), and then leaves the mark `KEYS[2]` (in the same
/// slot; Python never reads it), holding the new id, for `ARGV[2]` ms.
/// Run again by the same login after its answer was lost, it finds its
/// own mark and answers 1 again: the session was moved, not taken by a
/// logout.
const MOVE_OUT_LUA: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  return 1
end
local current = redis.call('GETDEL', KEYS[1])
if not current or current == '{}' then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

/// aiohttp_session's `RedisStorage` layout.
pub(crate) struct AiohttpLayout {
    /// `max_age` in whole seconds (at least one), or `None` for sessions
    /// that only end when they are logged out.
    max_age_secs: Option<u64>,
    update: Script,
    regenerate: Script,
    move_out: Script,
}

impl std::fmt::Debug for AiohttpLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AiohttpLayout")
            .field("max_age_secs", &self.max_age_secs)
            .finish_non_exhaustive()
    }
}

impl AiohttpLayout {
    pub(crate) fn new(max_age: Option<Duration>) -> Self {
        AiohttpLayout {
            max_age_secs: max_age.map(whole_seconds),
            update: Script::new(UPDATE_LUA),
            regenerate: Script::new(REGENERATE_LUA),
            move_out: Script::new(MOVE_OUT_LUA),
        }
    }

    pub(crate) async fn load(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
    ) -> Result<Option<Record>, Error> {
        let Some(key) = key(cookie.name, cookie.value) else {
            return Ok(None);
        };
        let Some(value) = redis.get(&key).await? else {
            return Ok(None);
        };
        if value == LOGGED_OUT {
            tracing::debug!(cookie = cookie.name, "session was logged out by aiohttp");
            return Ok(None);
        }
        let record = decode(&value, self.max_age_secs);
        if record.is_none() {
            tracing::debug!(
                cookie = cookie.name,
                "malformed aiohttp session value in Redis; ignored"
            );
        }
        Ok(record)
    }

    /// The stored value for `record` written at `now`, as aiohttp_session
    /// writes it: `created` is the time of every write.
    fn value(&self, cookie_name: &str, record: &Record, now: SystemTime) -> Result<String, Error> {
        if record.expiry.is_some() {
            tracing::debug!(
                cookie = cookie_name,
                "the aiohttp layout does not store a per-session expiry; max_age applies"
            );
        }
        codec::encode(&record.data, now)
    }

    /// `max_age` as the scripts take it: seconds, or empty for none.
    fn expiry_arg(&self) -> RedisValue {
        self.max_age_secs.map_or_else(
            || RedisValue::from_static_str(""),
            |secs| RedisValue::from(secs.to_string()),
        )
    }

    pub(crate) async fn create(&self, redis: &Redis, create: Create<'_>) -> Result<String, Error> {
        let value = self.value(create.cookie_name, create.record, create.now)?;
        let expiry = self
            .max_age_secs
            .map(|secs| i64::try_from(secs).unwrap_or(i64::MAX));
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = new_id();
            let key = format!("{}_{id}", create.cookie_name);
            if redis.set_new(&key, value.clone(), expiry).await? {
                return Ok(id);
            }
            super::id_taken();
        }
        Err(super::no_free_id())
    }

    pub(crate) async fn update(&self, redis: &Redis, update: Update<'_>) -> Result<Written, Error> {
        let cookie = update.cookie;
        let Some(key) = key(cookie.name, cookie.value) else {
            return Ok(Written::Gone);
        };
        // As aiohttp_session saves an emptied session: `{}`, its mark of a
        // logged-out session, and the cookie removed.
        let emptied = update.record.data.is_empty();
        let value = if emptied {
            RedisValue::from_static(LOGGED_OUT)
        } else {
            RedisValue::from(self.value(cookie.name, update.record, update.now)?)
        };
        let expiry = self.expiry_arg();
        let reply = redis
            .eval(&self.update, 1, redis.timeout(), |args| {
                // Clones of these share their bytes.
                args.push(key.as_str().into());
                args.push(value.clone());
                args.push(expiry.clone());
            })
            .await
            .map_err(Error::store)?;
        match reply.as_str().as_deref() {
            Some("saved") if emptied => Ok(Written::Emptied),
            Some("saved") => Ok(Written::Cookie(cookie.value.to_owned())),
            Some("gone") => Ok(Written::Gone),
            _ => Err(Error::store(format!(
                "unexpected reply from the update script: {reply:?}"
            ))),
        }
    }

    /// aiohttp_session's `max_age` counts from the last write, so a read
    /// moves nothing: only whether the session is still there is told.
    pub(crate) async fn refresh(
        &self,
        redis: &Redis,
        refresh: Refresh<'_>,
    ) -> Result<Written, Error> {
        let cookie = refresh.cookie;
        let Some(key) = key(cookie.name, cookie.value) else {
            return Ok(Written::Gone);
        };
        Ok(match redis.get(&key).await? {
            Some(value) if value != LOGGED_OUT => Written::Cookie(cookie.value.to_owned()),
            _ => Written::Gone,
        })
    }

    /// One script that writes the session under a new key and deletes the
    /// old one, if the old one is still there; on a cluster, whose slots
    /// keep the two keys apart, a create and a checked delete.
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
        // own WAIT falls short, as the hash layout's does.
        let cookie = regenerate.cookie;
        let Some(old) = key(cookie.name, cookie.value) else {
            return Ok(Written::Gone);
        };
        if redis.is_clustered() || redis.durability() != Durability::Master {
            // A create under a new id, then the old key moved out (see
            // `send_until_answered`).
            let create = Create::new(cookie.name, regenerate.record, regenerate.now);
            let new_id = self.create(redis, create).await?;
            if super::send_until_answered(|| self.move_out(redis, &old, cookie, &new_id)).await? {
                return Ok(Written::Cookie(new_id));
            }
            let new_cookie = SessionCookie::new(cookie.name, &new_id);
            self.delete(redis, new_cookie, Shortfall::Fails).await?;
            return Ok(Written::Gone);
        }
        let value = RedisValue::from(self.value(cookie.name, regenerate.record, regenerate.now)?);
        let expiry = self.expiry_arg();
        let mark = super::one_server_mark_key(&old);
        let lifetime = RedisValue::Integer(super::mark_lifetime_ms(redis));
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = new_id();
            let new = format!("{}_{id}", cookie.name);
            // Sent again with the same id while its answer is an error.
            let reply = super::send_until_answered(|| async {
                redis
                    .eval(&self.regenerate, 3, redis.timeout(), |args| {
                        args.push(old.as_str().into());
                        args.push(new.as_str().into());
                        args.push(mark.as_str().into());
                        args.push(value.clone());
                        args.push(expiry.clone());
                        args.push(lifetime.clone());
                    })
                    .await
                    .map_err(Error::store)
            })
            .await?;
            match reply.as_str().as_deref() {
                Some("saved") => return Ok(Written::Cookie(id)),
                Some("gone") => return Ok(Written::Gone),
                Some("taken") => super::id_taken(),
                _ => {
                    return Err(Error::store(format!(
                        "unexpected reply from the regenerate script: {reply:?}"
                    )));
                }
            }
        }
        Err(Error::store(
            "could not find an unused session id: the random source looks broken",
        ))
    }

    /// One run of [`MOVE_OUT_LUA`]: deletes the session at `old`, which a
    /// login moved to `new_id`, and answers whether it (or an earlier run
    /// for the same login) did. Where the cookie's name keeps the mark
    /// from sharing the session's slot, a plain delete.
    async fn move_out(
        &self,
        redis: &Redis,
        old: &str,
        cookie: SessionCookie<'_>,
        new_id: &str,
    ) -> Result<bool, Error> {
        let Some(mark) = super::moved_mark_key(old) else {
            return self.delete(redis, cookie, Shortfall::Answers).await;
        };
        let reply = super::run_move_out(redis, &self.move_out, old, &mark, new_id).await?;
        match reply.as_i64() {
            Some(moved) => Ok(moved == 1),
            None => Err(Error::store(format!(
                "unexpected reply from the login's delete script: {reply:?}"
            ))),
        }
    }

    /// `GETDEL`, so that a value aiohttp_session left as logged out (`{}`)
    /// does not count as a session deleted; `shortfall` as for the hash
    /// layout's delete.
    pub(crate) async fn delete(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
        shortfall: Shortfall,
    ) -> Result<bool, Error> {
        match key(cookie.name, cookie.value) {
            Some(key) => Ok(redis
                .getdel(&key, shortfall)
                .await?
                .is_some_and(|value| value != LOGGED_OUT)),
            None => Ok(false),
        }
    }
}

fn key(cookie_name: &str, cookie_value: &str) -> Option<String> {
    let well_formed = cookie_value.len() == ID_LEN
        && cookie_value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then(|| format!("{cookie_name}_{cookie_value}"))
}

/// A new id as `uuid.uuid4().hex` makes it: a version 4 UUID (122 random
/// bits from the OS CSPRNG) in lowercase hex without dashes.
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The record in a stored value, or `None` when it is not one that
/// aiohttp_session could have written: values from Redis are untrusted.
/// The deadline is `created + max_age`, aiohttp_session's rule.
pub(crate) fn decode(value: &[u8], max_age_secs: Option<u64>) -> Option<Record> {
    codec::decode(value, max_age_secs)
}

/// Unit tests; the codec's own (and its byte-for-byte comparison with
/// Python's `json`) are in `session_core::aiohttp`, the behaviour against
/// real Redis and the real Python package in the integration tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid4_hex_and_have_the_shape_keys_accept() {
        let id = new_id();
        assert_eq!(id.len(), 32);
        assert_eq!(&id[12..13], "4", "version 4: {id}");
        assert!("89ab".contains(&id[16..17]), "RFC 4122 variant: {id}");
        assert_eq!(
            key("AIOHTTP_SESSION", &id),
            Some(format!("AIOHTTP_SESSION_{id}"))
        );
        assert_ne!(new_id(), id);
        for bad in [
            "",
            "{}",
            &id[1..],
            &format!("{id}0"),
            &id.to_uppercase(),
            "0123456789abcdef0123456789abcdeg",
            "../../../../../../../../../../aa",
        ] {
            assert_eq!(key("AIOHTTP_SESSION", bad), None, "{bad}");
        }
    }
}
