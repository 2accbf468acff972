//! How sessions are laid out in Redis. Each layout is a module that turns
//! the store's four operations into commands; [`RedisStore`](crate::RedisStore)
//! dispatches to the one it was built with.

pub(crate) mod aiohttp;
pub(crate) mod hash;

use std::time::Duration;

use session_core::{Delete, Error, Load, Record, Save, Saved, Touch};

use crate::connection::Redis;

/// How a [`RedisStore`](crate::RedisStore) lays sessions out in Redis:
/// chosen with [`RedisStoreBuilder::layout`](crate::RedisStoreBuilder::layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisLayout {
    /// One hash per session under the key prefix, with atomic delta saves
    /// that merge concurrent requests (the default): see the [crate
    /// documentation](crate#layout).
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
/// the default layout, whose save hands its command to the
/// [batcher](crate::batch) and is otherwise small, and the store boxes and
/// copies every operation's future (`async_trait`).
impl Layout {
    pub(crate) async fn load(
        &self,
        redis: &Redis,
        load: Load<'_>,
    ) -> Result<Option<Record>, Error> {
        match self {
            Layout::Hash(layout) => layout.load(redis, load).await,
            Layout::Aiohttp(layout) => Box::pin(layout.load(redis, load)).await,
        }
    }

    pub(crate) async fn save(&self, redis: &Redis, save: Save<'_>) -> Result<Saved, Error> {
        match self {
            Layout::Hash(layout) => layout.save(redis, save).await,
            Layout::Aiohttp(layout) => Box::pin(layout.save(redis, save)).await,
        }
    }

    pub(crate) async fn touch(&self, redis: &Redis, touch: Touch<'_>) -> Result<(), Error> {
        match self {
            Layout::Hash(layout) => layout.touch(redis, touch).await,
            Layout::Aiohttp(layout) => Box::pin(layout.touch(redis, touch)).await,
        }
    }

    pub(crate) async fn delete(&self, redis: &Redis, delete: Delete<'_>) -> Result<(), Error> {
        match self {
            Layout::Hash(layout) => layout.delete(redis, delete).await,
            Layout::Aiohttp(layout) => Box::pin(layout.delete(redis, delete)).await,
        }
    }
}
