//! How sessions are laid out in Redis. Each layout is a module that turns
//! the store's four operations into commands; [`RedisStore`](crate::RedisStore)
//! dispatches to the one it was built with.

pub(crate) mod hash;

use session_core::{Delete, Error, Load, Record, Save, Saved, Touch};

use crate::connection::Redis;

/// The layouts a store can use.
#[derive(Debug)]
pub(crate) enum Layout {
    /// One hash per session, with delta saves: see [`hash`].
    Hash(hash::HashLayout),
}

impl Layout {
    pub(crate) async fn load(
        &self,
        redis: &Redis,
        load: Load<'_>,
    ) -> Result<Option<Record>, Error> {
        match self {
            Layout::Hash(layout) => layout.load(redis, load).await,
        }
    }

    pub(crate) async fn save(&self, redis: &Redis, save: Save<'_>) -> Result<Saved, Error> {
        match self {
            Layout::Hash(layout) => layout.save(redis, save).await,
        }
    }

    pub(crate) async fn touch(&self, redis: &Redis, touch: Touch<'_>) -> Result<(), Error> {
        match self {
            Layout::Hash(layout) => layout.touch(redis, touch).await,
        }
    }

    pub(crate) async fn delete(&self, redis: &Redis, delete: Delete<'_>) -> Result<(), Error> {
        match self {
            Layout::Hash(layout) => layout.delete(redis, delete).await,
        }
    }
}
