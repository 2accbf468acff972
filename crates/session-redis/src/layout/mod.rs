//! How sessions are laid out in Redis. Each layout is a module that turns
//! the store's operations into commands; [`RedisStore`](crate::RedisStore)
//! dispatches to the one it was built with.

pub(crate) mod aiohttp;
pub mod hash;

use std::time::{Duration, SystemTime};

use session_core::{Create, Error, Record, Refresh, Regenerate, SessionCookie, Update, Written};

use crate::connection::{Redis, Shortfall};

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
        store: &crate::RedisStore,
        regenerate: Regenerate<'_>,
    ) -> Result<Written, Error> {
        match self {
            Layout::Hash(layout) => Box::pin(layout.regenerate(redis, regenerate)).await,
            Layout::Aiohttp(layout) => Box::pin(layout.regenerate(redis, store, regenerate)).await,
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
