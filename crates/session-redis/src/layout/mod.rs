//! How sessions are laid out in Redis. Each layout is a module that turns
//! the store's operations into commands; [`RedisStore`](crate::RedisStore)
//! dispatches to the one it was built with.

pub(crate) mod aiohttp;
pub mod hash;

use std::time::{Duration, SystemTime};

use session_core::{Create, Error, Record, Refresh, Regenerate, SessionCookie, Update, Written};

use crate::connection::{Redis, Script, Shortfall};

/// How a [`RedisStore`](crate::RedisStore) lays sessions out in Redis:
/// chosen with [`RedisStoreBuilder::layout`](crate::RedisStoreBuilder::layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisLayout {
    /// One hash per session under the key prefix, with atomic delta saves
    /// that merge concurrent requests (the default): see
    /// [`hash`](crate::hash).
    #[default]
    Hash,
    /// aiohttp_session's `RedisStorage` format, byte for byte, so that a
    /// Python aiohttp service and this store share sessions: see
    /// [`aiohttp`](crate::aiohttp) for the format, how to configure both
    /// sides, and where the behaviour differs from the hash layout.
    Aiohttp {
        /// aiohttp_session's `max_age`: a session ends this long after its
        /// last write (whole seconds, a fraction rounding up); `None`: it
        /// only ends when logged out. Give both sides the same value.
        max_age: Option<Duration>,
    },
}

/// A new id that collides with an existing key is replaced by another; a
/// few collisions in a row mean the random source is broken.
const MAX_ID_ATTEMPTS: usize = 3;

/// Notes a fresh id that was already taken (and is drawn again).
fn id_taken() {
    tracing::warn!("a freshly generated session id already existed in Redis");
}

/// The error after [`MAX_ID_ATTEMPTS`] taken ids in a row.
fn no_free_id() -> Error {
    Error::store("could not find an unused session id: the random source looks broken")
}

/// How many times a login in two steps sends its delete of the old
/// session, the first included, while the answer is an error. Each waits
/// for the command timeout at most: three cover the seconds a cluster
/// takes to promote a replica (fred answers nothing meanwhile;
/// OPERATIONS.md).
const MOVE_OUT_ATTEMPTS: u32 = 3;

/// The shortest time a login's mark stays: longer than its retries.
const MIN_MARK_LIFETIME: Duration = Duration::from_secs(60);

/// How long a login's mark stays, in ms: four command timeouts, and at
/// least [`MIN_MARK_LIFETIME`].
fn mark_lifetime_ms(redis: &Redis) -> i64 {
    let lifetime = redis.timeout().saturating_mul(MOVE_OUT_ATTEMPTS + 1);
    i64::try_from(lifetime.max(MIN_MARK_LIFETIME).as_millis()).unwrap_or(i64::MAX)
}

/// The key of the mark a login leaves where it deleted the session at
/// `key`: in the same cluster slot, so that one script writes both. A key
/// with a hash tag keeps it (`:moved` is added after); otherwise the whole
/// key becomes the tag, which hashes as the key does. `None` for a key
/// whose braces neither form a tag nor can be wrapped in one (from the
/// application's prefix: ids have none).
fn moved_mark_key(key: &str) -> Option<String> {
    let tagged = key
        .find('{')
        .and_then(|open| key[open + 1..].find('}'))
        .is_some_and(|len| len > 0);
    if tagged {
        Some(format!("{key}:moved"))
    } else if key.contains('{') || key.contains('}') {
        None
    } else {
        Some(format!("{{{key}}}:moved"))
    }
}

/// The mark's key for a login on one server, where no slot constrains it:
/// the same as on a cluster where [`moved_mark_key`] has one.
fn one_server_mark_key(key: &str) -> String {
    moved_mark_key(key).unwrap_or_else(|| format!("{key}:moved"))
}

/// Runs a layout's login delete `script` (`KEYS`: the old key `old` and its
/// `mark`; `ARGV`: `new_id` and the mark's lifetime in ms) and answers its
/// reply.
async fn run_move_out(
    redis: &Redis,
    script: &Script,
    old: &str,
    mark: &str,
    new_id: &str,
) -> Result<fred::types::Value, Error> {
    let lifetime = mark_lifetime_ms(redis);
    redis
        .eval_with(script, 2, redis.timeout(), Shortfall::Answers, |args| {
            args.push(old.into());
            args.push(mark.into());
            args.push(new_id.into());
            args.push(fred::types::Value::Integer(lifetime));
        })
        .await
        .map_err(Error::store)
}

/// Sends a login's move of its session (`send`) until it is answered, up to
/// [`MOVE_OUT_ATTEMPTS`] times while the answer is an error.
///
/// Both layouts' logins leave a short-lived mark holding the new id where
/// they move a session from, so that a move whose answer was lost (a
/// timeout, a connection that closed, a master that died after
/// replicating it) can be sent again: a run that finds its own mark knows
/// the session was moved, where "the old session is gone" would have been
/// read as a logout, and the client would have lost the session with the
/// login. In one script on one server; on a cluster, or with durability,
/// a create under the new id and then a delete of the old key, which is
/// what is sent again.
async fn send_until_answered<T, F>(mut send: impl FnMut() -> F) -> Result<T, Error>
where
    F: Future<Output = Result<T, Error>>,
{
    let mut attempt = 1;
    loop {
        match send().await {
            Err(error) if attempt < MOVE_OUT_ATTEMPTS => {
                tracing::warn!(
                    %error,
                    attempt,
                    "a login's move of the session failed; sending it again"
                );
                attempt += 1;
            }
            answer => return answer,
        }
    }
}

/// The layouts a store can use.
#[derive(Debug)]
pub(crate) enum Layout {
    /// One hash per session, with delta saves: see [`hash`].
    Hash(hash::HashLayout),
    /// aiohttp_session's format: see [`aiohttp`].
    Aiohttp(aiohttp::AiohttpLayout),
}

/// The aiohttp layout's operations are boxed. A future holds the largest of
/// the futures it may await, and a fred command's future is several
/// kilobytes; inline, the aiohttp layout's would grow every operation of
/// the default layout, whose writes hand their command to the
/// [batcher](crate::batch) and are otherwise small, and the store boxes and
/// copies every operation's future (`async_trait`).
impl Layout {
    pub(crate) async fn load(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
    ) -> Result<Option<Record>, Error> {
        match self {
            Layout::Hash(layout) => layout.load(redis, cookie).await,
            Layout::Aiohttp(layout) => Box::pin(layout.load(redis, cookie)).await,
        }
    }

    pub(crate) async fn create(&self, redis: &Redis, create: Create<'_>) -> Result<String, Error> {
        match self {
            Layout::Hash(layout) => layout.create(redis, create).await,
            Layout::Aiohttp(layout) => Box::pin(layout.create(redis, create)).await,
        }
    }

    pub(crate) async fn update(&self, redis: &Redis, update: Update<'_>) -> Result<Written, Error> {
        match self {
            Layout::Hash(layout) => layout.update(redis, update).await,
            Layout::Aiohttp(layout) => Box::pin(layout.update(redis, update)).await,
        }
    }

    pub(crate) async fn refresh(
        &self,
        redis: &Redis,
        refresh: Refresh<'_>,
    ) -> Result<Written, Error> {
        match self {
            Layout::Hash(layout) => layout.refresh(redis, refresh).await,
            Layout::Aiohttp(layout) => Box::pin(layout.refresh(redis, refresh)).await,
        }
    }

    /// Boxed on both layouts: a regenerate is rare (a login), and its
    /// script call would otherwise grow the future of every other write.
    pub(crate) async fn regenerate(
        &self,
        redis: &Redis,
        regenerate: Regenerate<'_>,
    ) -> Result<Written, Error> {
        match self {
            Layout::Hash(layout) => Box::pin(layout.regenerate(redis, regenerate)).await,
            Layout::Aiohttp(layout) => Box::pin(layout.regenerate(redis, regenerate)).await,
        }
    }

    pub(crate) async fn delete(
        &self,
        redis: &Redis,
        cookie: SessionCookie<'_>,
    ) -> Result<bool, Error> {
        match self {
            Layout::Hash(layout) => {
                layout
                    .delete(redis, cookie, SystemTime::now(), Shortfall::Fails)
                    .await
            }
            Layout::Aiohttp(layout) => {
                Box::pin(layout.delete(redis, cookie, Shortfall::Fails)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logins_mark_hashes_to_its_sessions_slot() {
        // No tag: the whole key becomes one, which Redis hashes as the key.
        assert_eq!(
            moved_mark_key("session:abc").as_deref(),
            Some("{session:abc}:moved")
        );
        // A tag in the prefix is kept: the first `{...}` decides the slot.
        assert_eq!(
            moved_mark_key("{app}session:abc").as_deref(),
            Some("{app}session:abc:moved")
        );
        // Braces that form no tag cannot be wrapped in one.
        for key in ["a}b:abc", "x{}y:abc", "x{y:abc"] {
            assert_eq!(moved_mark_key(key), None, "{key}");
        }
    }
}
