//! A Redis session store for [`session_core`], on the [fred] client:
//! standalone Redis, Redis Cluster and Redis behind Sentinel.
//!
//! The cookie holds a random session id; the session lives in Redis, so every
//! process of an application sees the same sessions. Saves write only what a
//! request changed, atomically, so concurrent requests on one session keep
//! each other's changes, and a logout is never undone by a request that was
//! still running.
//!
//! Requires **Redis 7.0 or later** (the save script uses `PEXPIRETIME`).
//!
//! To share sessions with a Python service on aiohttp_session's
//! `RedisStorage` during a migration, use the [`aiohttp`] layout instead
//! of the default one described here.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use session_core::{SessionConfig, SessionManager};
//! use session_redis::RedisStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), session_core::Error> {
//! # let server = session_testing::RedisServer::start();
//! # let url = server.url();
//! // let url = "redis://127.0.0.1:6379";
//! let store = RedisStore::builder()
//!     .key_prefix("myapp:session:")
//!     .command_timeout(Duration::from_secs(1))
//!     .connect(&url)
//!     .await?;
//! let manager = SessionManager::new(store, SessionConfig::default());
//!
//! // The axum or actix-web adapter drives the manager; by hand:
//! let request = manager.request();
//! request.session([]).await?.insert("user", "ada")?;
//! let set_cookie = request.save_changes().await?;
//! let cookie = set_cookie[0].split(';').next().unwrap(); // "session=<id>"
//!
//! let next = manager.request();
//! let user: Option<String> = next.session([cookie.as_bytes()]).await?.get("user")?;
//! assert_eq!(user.as_deref(), Some("ada"));
//! # Ok(())
//! # }
//! ```
//!
//! # Construction
//!
//! * [`RedisStore::from_url`] (or [`RedisStoreBuilder::connect`]) connects
//!   to a URL with a reconnect policy that retries forever, so the store
//!   recovers by itself when Redis comes back:
//!   * `redis://[[user:]password@]host[:port][/db]`
//!   * `rediss://...`: TLS, with the `tls` feature: rustls and the system's
//!     root certificates. Connecting installs ring as rustls' process-wide
//!     crypto provider unless the application installed one first. For
//!     client certificates or a private CA, build the fred client yourself
//!     with a rustls `ClientConfig` (this crate's `tests/tls.rs` does so for
//!     a private CA, against a real TLS redis-server);
//!   * `redis-cluster://host:port?node=host2:port2&node=host3:port3`: any
//!     known nodes; the rest are discovered;
//!   * `redis-sentinel://host:port?sentinelServiceName=NAME&node=host2:port2`:
//!     the sentinels, and the name of the master they watch;
//!   * `rediss-cluster://`, `rediss-sentinel://`: the same over TLS.
//! * [`RedisStore::new`] (or [`RedisStoreBuilder::build`]) takes a fred
//!   [`Client`](fred::clients::Client) or [`Pool`](fred::clients::Pool)
//!   that you configured and connected yourself. Give it a
//!   [`ReconnectPolicy`](fred::types::config::ReconnectPolicy), or it will
//!   not recover after a connection loss.
//!
//! Options: the key prefix (default `session:`), the command timeout
//! (default 2 seconds), the [layout](RedisLayout), and the
//! [durability](RedisStoreBuilder::durability) of writes (by default
//! answered once the master applied them; optionally only once replicas
//! acknowledged them, with `WAIT`, so that a failover loses none).
//!
//! # How sessions are stored
//!
//! By default, one Redis hash per session, with saves that apply only what
//! a request changed, in one atomic script: the [`hash`] module describes
//! the keys, the fields, what each operation sends and what it guarantees.
//! What happens when Redis is slow or down is under [`RedisStore`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod aiohttp;
mod batch;
mod client_cache;
mod connection;
mod layout;
mod watchdog;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use session_core::user::{BoundSession, UserIndex};
use session_core::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionId, SessionStore, Update,
    Written, async_trait,
};

pub use connection::{Durability, RedisConnection};
/// The fred crate this store is built on, for building clients and pools.
pub use fred;
pub use layout::RedisLayout;
pub use layout::hash;

use client_cache::ClientCache;
use connection::Redis;
use layout::Layout;
use layout::aiohttp::AiohttpLayout;
use layout::hash::HashLayout;

/// The key prefix unless configured otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "session:";

/// The command timeout unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// How many commands a connection made from a URL queues while Redis is
/// slow or unreachable; past that, an operation fails at once with
/// [`Error::Store`] instead of waiting in a queue that grows without end
/// (reads that timed out stay queued until they are sent).
pub const MAX_QUEUED_COMMANDS: usize = 4096;

/// Sessions in Redis, laid out as the [`RedisLayout`] it was built with
/// says (by default the [`hash`] layout, whose module describes what each
/// operation sends and guarantees). Cheap to clone: clones share the
/// connection.
///
/// # Timeouts and failures
///
/// Every operation must finish within the command timeout (a write that has
/// to re-send its script shares the same budget). When Redis is down or
/// unresponsive, operations fail with [`Error::Store`] within that time (a
/// 500 through the adapters; loads up to 20 ms later).
///
/// * A write (save, refresh, delete) that timed out while waiting for a
///   connection, or in the store's queue of saves, is dropped, so it is
///   not sent behind the caller's back once Redis is back; one that was
///   already written to the socket may still have been applied (as with
///   any timeout).
/// * Loads are timed by one watchdog thread shared by the process instead
///   of a timer per command: a load that timed out may still be sent once
///   Redis is back, which changes nothing. If the watchdog's thread cannot
///   be started, a load fails at once rather than wait without a limit,
///   and the next load tries to start it again.
/// * While Redis cannot be reached, a connection made from a URL queues at
///   most [`MAX_QUEUED_COMMANDS`] commands for when it is back; an
///   operation past that fails at once (a client you build yourself: set
///   fred's `max_command_buffer_len`).
/// * A key under the prefix that is not a hash is a store error too.
///
/// Nothing here panics on what Redis or a client sends: an id that is not
/// one this store could have issued is refused without a round trip, and a
/// malformed hash (bad JSON, no metadata) loads as no session, logged at
/// debug level. Session ids never appear in logs or `Debug` output.
#[derive(Clone)]
pub struct RedisStore {
    redis: Redis,
    layout: std::sync::Arc<Layout>,
    cache: Option<ClientCache>,
}

impl RedisStore {
    /// A store with the default options on a fred client or pool.
    ///
    /// ```no_run
    /// use session_redis::RedisStore;
    /// use session_redis::fred::prelude::*;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Config::from_url("redis://127.0.0.1:6379")?;
    /// let pool = Builder::from_config(config)
    ///     .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
    ///     .build_pool(4)?;
    /// pool.init().await?;
    /// let store = RedisStore::new(pool);
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(connection: impl Into<RedisConnection>) -> Self {
        Self::builder().build(connection)
    }

    /// Connects to `url` with the default options; see the [crate
    /// documentation](crate#construction) for the URL forms.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the URL is invalid or Redis cannot be reached.
    pub async fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder().connect(url).await
    }

    /// Options for a store.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The client or pool the store sends its commands through.
    #[must_use]
    pub fn connection(&self) -> &RedisConnection {
        self.redis.connection()
    }

    /// Tells the client cache, if any, that this process creates, writes
    /// or deletes session `id`: the next load reads it untracked. Told
    /// before the write, the cache may still keep a read that overlaps it,
    /// as it may keep a read that overlaps another process's write: the
    /// write's invalidation reaches the cache before the barrier of any
    /// load that begins after the write was answered.
    fn wrote(&self, id: &str) {
        if let Some(cache) = &self.cache {
            if SessionId::is_well_formed(id) {
                cache.written(id);
            }
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("layout", &self.layout)
            .field("command_timeout", &self.redis.timeout())
            .field("durability", &self.redis.durability())
            .field("client_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        match &self.cache {
            // Only for ids we could have issued: a request never makes us
            // keep anything under arbitrary input.
            Some(cache) if SessionId::is_well_formed(cookie.value) => {
                cache
                    .load(cookie.value, &self.redis, async |redis| {
                        self.layout.load(redis, cookie).await
                    })
                    .await
            }
            _ => Ok(self.layout.load(&self.redis, cookie).await?.map(Arc::new)),
        }
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        let id = self.layout.create(&self.redis, create).await?;
        self.wrote(&id);
        Ok(id)
    }

    // The client cache hears of a write before it is sent: a save's future
    // then holds nothing more across it (see `wrote`).
    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        self.wrote(update.cookie.value);
        self.layout.update(&self.redis, update).await
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        self.wrote(refresh.cookie.value);
        self.layout.refresh(&self.redis, refresh).await
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        self.wrote(regenerate.cookie.value);
        self.layout.regenerate(&self.redis, regenerate).await
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        self.wrote(cookie.value);
        self.layout.delete(&self.redis, cookie).await
    }

    /// The hash layout keeps an index of each user's sessions; aiohttp_session's
    /// format has nowhere to keep one.
    fn user_index(&self) -> Option<&dyn UserIndex> {
        match &*self.layout {
            Layout::Hash(_) => Some(self),
            Layout::Aiohttp(_) => None,
        }
    }
}

#[async_trait]
impl UserIndex for RedisStore {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        match &*self.layout {
            Layout::Hash(layout) => layout.sessions_of(&self.redis, user, now).await,
            Layout::Aiohttp(_) => Err(Error::Unsupported(
                "listing a user's sessions in aiohttp_session's format",
            )),
        }
    }
}

/// Options for a [`RedisStore`]; from [`RedisStore::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    key_prefix: String,
    command_timeout: Duration,
    layout: RedisLayout,
    durability: Durability,
    client_cache: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            layout: RedisLayout::Hash,
            durability: Durability::Master,
            client_cache: 0,
        }
    }
}

impl RedisStoreBuilder {
    /// What every session key starts with (default `session:`), e.g. to
    /// keep applications that share a Redis apart. Not used by the
    /// [aiohttp layout](crate::aiohttp), whose keys are named as
    /// aiohttp_session names them, after the cookie.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one store operation may take before it fails with
    /// [`Error::Store`] (default 2 seconds). Zero means no limit, as in
    /// fred: an operation then waits as long as Redis takes. A script call
    /// that Redis refuses because it does not have the script cached (a
    /// server just started, or a replica just promoted: Redis does not
    /// replicate its script cache) wrote nothing, and goes again whole
    /// with a limit of its own, so such an operation may take up to twice
    /// as long.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How sessions are laid out in Redis (default [`RedisLayout::Hash`]).
    pub fn layout(mut self, layout: RedisLayout) -> Self {
        self.layout = layout;
        self
    }

    /// When a write is answered (default [`Durability::Master`], as soon
    /// as the master applied it).
    ///
    /// Redis replicates asynchronously: a master that dies (and whose
    /// replica is promoted, by Sentinel or the cluster) may take the
    /// writes of its last moments with it, so a save answered 200 can be
    /// lost, and a logout undone. With [`Durability::Replicas`], every
    /// write the store makes (saves, rolling refreshes, logins, logouts,
    /// the user index) is followed on the same connection by `WAIT count
    /// timeout`, and answered only once `count` replicas acknowledged it;
    /// with fewer, it fails with [`Error::Store`] (a 500 through the
    /// adapters), never a 200. Such a failed write **may still have been
    /// applied on the master** (and reach the replicas later): the client
    /// was told it failed, not that nothing happened. A login
    /// (regenerate) then creates the session under its new id and deletes
    /// the old one as two writes, as on a cluster, rather than moving it
    /// in one script: a login whose new id was not acknowledged leaves the
    /// session where the client's cookie finds it. Once the new id is
    /// acknowledged and the old session deleted on the master, the login
    /// answers its new cookie even if the delete itself was not
    /// acknowledged (a warning is logged): the old id, holding the session
    /// as it was before the login, may then come back with a failover
    /// until its deadline, but the client holds the new one. The saves
    /// that the store sends together in one script call share one `WAIT`.
    ///
    /// **Which replicas.** Sentinel and the cluster promote the replica they
    /// judge most up to date, from replication offsets they learnt up to a
    /// second earlier: not necessarily one that acknowledged the last
    /// writes. For the guarantee, `count` must be every replica that can
    /// be promoted (a master's replicas on a cluster, all the replicas
    /// behind Sentinel); a smaller `count` narrows the loss, it does not
    /// close it (the repository's soak shows writes acknowledged by one of
    /// two replicas lost when Sentinel promoted the other).
    ///
    /// What it costs: a write takes a round trip from the master to its
    /// replicas longer, and while `WAIT` blocks, the commands queued
    /// behind it on the same connection wait too; the repository's
    /// OPERATIONS.md measures it. When fewer than `count` replicas are
    /// connected (one is down, or being resynchronised after a failover,
    /// or the promoted master has not got its replicas back yet), every
    /// write fails after `timeout`: availability is what this setting
    /// trades for durability. Keep `timeout` below the command timeout.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use session_redis::{Durability, RedisStore};
    ///
    /// # async fn run() -> Result<(), session_core::Error> {
    /// let store = RedisStore::builder()
    ///     .durability(Durability::Replicas { count: 1, timeout: Duration::from_millis(500) })
    ///     .connect("redis-sentinel://127.0.0.1:26379?sentinelServiceName=mymaster")
    ///     .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Keep up to `max_sessions` sessions this process read in memory,
    /// and answer loads of one that Redis has not changed since without
    /// reading it again (default 0: off). Redis itself says what changed
    /// ([client tracking](https://redis.io/docs/latest/develop/reference/client-side-caching/)),
    /// so a load still answers the session as Redis holds it when the load
    /// begins: a logout or a write by any process, answered before, is
    /// seen, as without the cache.
    ///
    /// What it costs and saves: a load of a cached session still makes a
    /// round trip, a barrier (`CLIENT TRACKINGINFO` and a `GET`) on a
    /// connection of the cache's own, but one barrier is out at a time and
    /// the loads that begin while it is share the next (sent once the
    /// loads it released have had a turn of the runtime, so that those
    /// tasks' next loads join it too), so under load one round trip serves
    /// many requests, and neither Redis nor this process encodes or
    /// decodes the session. A load of one that is not cached reads it at
    /// once, as without the cache; one that was cached but changed since
    /// makes two round trips (the barrier, then the read). A session this
    /// process created or wrote is read untracked next time, as without
    /// the cache, so sessions written on every request (a counter) cost
    /// about what they cost without it (the repository's BENCHMARKS.md
    /// measures both). Redis keeps, per cached session, a few dozen bytes
    /// in its tracking table (bounded by its `tracking-table-max-keys`);
    /// this process keeps the sessions themselves, at most `max_sessions`
    /// of them (and as many marks of sessions it wrote). The cache's
    /// connection is one more per store (per actix-web worker, with
    /// [`connect_lazy`](Self::connect_lazy) in the factory), and needs the
    /// `CLIENT` commands if an ACL restricts the store's user: without
    /// them, loads go uncached. While the cache's connection is not up,
    /// loads go uncached too; a barrier that Redis does not answer fails
    /// its loads within the command timeout, as a load without the cache
    /// would (a quarter more for those that began while another barrier
    /// was out: that long, it holds theirs back).
    /// [`connect`](Self::connect) waits for the cache's connection as for
    /// the store's (within the command timeout).
    ///
    /// For the [hash layout](crate::hash) on one server or behind
    /// Sentinel; ignored (with a warning in the log) for the aiohttp layout
    /// and on a cluster, where one barrier cannot vouch for every node.
    /// The cache's connection speaks RESP3, whatever the store's own does.
    /// How the cache stays exact is in SECURITY.md.
    ///
    /// ```no_run
    /// use session_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), session_core::Error> {
    /// let store = RedisStore::builder()
    ///     .client_cache(10_000)
    ///     .connect("redis://127.0.0.1:6379")
    ///     .await?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn client_cache(mut self, max_sessions: usize) -> Self {
        self.client_cache = max_sessions;
        self
    }

    /// The store on a fred client or pool you connected yourself.
    ///
    /// With a [client cache](Self::client_cache), the cache's connection is
    /// made like the first of `connection`'s clients (its configuration,
    /// reconnect policy and timeouts, in RESP3), on the runtime of the
    /// first load.
    pub fn build(self, connection: impl Into<RedisConnection>) -> RedisStore {
        let connection = connection.into();
        let cache = self.cache_for(&connection);
        let layout = match self.layout {
            RedisLayout::Hash => Layout::Hash(HashLayout::new(self.key_prefix)),
            RedisLayout::Aiohttp { max_age } => Layout::Aiohttp(AiohttpLayout::new(max_age)),
        };
        RedisStore {
            redis: Redis::new(connection, self.command_timeout, self.durability),
            layout: std::sync::Arc::new(layout),
            cache,
        }
    }

    /// The client cache this builder asks for, if it can have one.
    fn cache_for(&self, connection: &RedisConnection) -> Option<ClientCache> {
        if self.client_cache == 0 {
            return None;
        }
        if !matches!(self.layout, RedisLayout::Hash) {
            tracing::warn!("the Redis client cache is for the hash layout; not used");
            return None;
        }
        match ClientCache::new(
            connection,
            self.command_timeout,
            &self.key_prefix,
            self.client_cache,
        ) {
            Ok(Some(cache)) => Some(cache),
            Ok(None) => {
                tracing::warn!("the Redis client cache does not work on a cluster; not used");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "the Redis client cache's connection could not be made; not used");
                None
            }
        }
    }

    /// Connects to `url` (see the [crate documentation](crate#construction)
    /// for its forms) and builds the store. The connection is made with the
    /// command timeout as its connect timeout, and reconnects forever after
    /// a loss.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the URL is invalid, names TLS without the `tls`
    /// feature, or Redis cannot be reached.
    pub async fn connect(self, url: &str) -> Result<RedisStore, Error> {
        let timeout = self.command_timeout;
        let connection = RedisConnection::connect(url, timeout).await?;
        let store = self.build(connection);
        if let Some(cache) = &store.cache {
            // Up from the first load on, if it comes up within the command
            // timeout; loads read uncached until it does.
            cache.connect(timeout).await;
        }
        Ok(store)
    }

    /// As [`connect`](Self::connect), but without waiting for the connection:
    /// it is made in the background on the current Tokio runtime, and the
    /// first operations wait for it (each within the command timeout, so a
    /// Redis that cannot be reached gives [`Error::Store`], not a hang).
    ///
    /// Not being `async`, it fits where an `await` cannot go, above all
    /// actix-web's `HttpServer::new` factory, which runs once on each worker
    /// thread: a store made there has its own connection, driven by that
    /// worker's runtime, so that no command crosses threads. (A store made
    /// once in `main` is driven by the main thread, and each command then
    /// wakes two threads.)
    ///
    /// With actix-web (`session_actix::SessionMiddleware`), one store per
    /// worker:
    ///
    /// ```text
    /// HttpServer::new(move || {
    ///     let store = RedisStore::builder().connect_lazy(&url).expect("a valid Redis URL");
    ///     App::new().wrap(SessionMiddleware::new(SessionManager::new(store, config.clone())))
    /// })
    /// ```
    ///
    /// (the benchmark's actix-web servers do this: `bench/src/servers/actix.rs`).
    ///
    /// ```no_run
    /// use session_core::{SessionConfig, SessionManager};
    /// use session_redis::RedisStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), session_core::Error> {
    /// let store = RedisStore::builder().connect_lazy("redis://127.0.0.1:6379")?;
    /// let sessions = SessionManager::new(store, SessionConfig::default());
    /// // The first request that loads a session waits for the connection.
    /// let request = sessions.request();
    /// request.session([]).await?.insert("user", "ada")?;
    /// let set_cookie = request.save_changes().await?;
    /// # drop(set_cookie);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the URL is invalid, names TLS without the `tls`
    /// feature, or there is no Tokio runtime to run the connection on.
    pub fn connect_lazy(self, url: &str) -> Result<RedisStore, Error> {
        let connection = RedisConnection::connect_lazy(url, self.command_timeout)?;
        Ok(self.build(connection))
    }
}

/// The decoders of values read from Redis and the properties the fuzz
/// targets in `fuzz/` check of them. Compiled under `--cfg fuzzing`, which
/// cargo-fuzz sets, and in this crate's unit tests, which replay the fuzz
/// inputs kept in the repository through the same checks
/// (`src/fuzz_regressions.rs`). Not part of the API: no stability promise.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing {
    use fred::types::Value;
    use session_core::Record;

    /// The hash layout's decoder of a load's reply (to `HGETALL`).
    #[must_use]
    pub fn hash_reply(reply: Value) -> Option<Record> {
        crate::layout::hash::decode(&reply)
    }

    /// The aiohttp layout's decoder of a stored value, with aiohttp's
    /// `max_age` in seconds.
    #[must_use]
    pub fn aiohttp_value(value: &[u8], max_age_secs: Option<u64>) -> Option<Record> {
        crate::layout::aiohttp::decode(value, max_age_secs)
    }

    /// Reads an `i64` from the front of `bytes` (zero-padded).
    fn take_i64(bytes: &mut &[u8]) -> i64 {
        let mut buf = [0u8; 8];
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        *bytes = &bytes[n..];
        i64::from_le_bytes(buf)
    }

    /// The fuzz target `redis_hash_reply`: the hash layout's decoder of its
    /// load's reply (to `HGETALL`). The first byte picks the reply's shape
    /// (nil, an integer, arrays of the wrong shape, or the right shape); for
    /// the right shape the rest, split on `\n`, is the field/value list (an
    /// element starting with `0xFF` is an integer instead of a bulk string).
    /// What loads has metadata, and only `d:` fields as data.
    ///
    /// # Panics
    ///
    /// When a property fails, or when the decoder panics by itself.
    pub fn check_hash_reply(data: &[u8]) {
        let Some((&shape, mut rest)) = data.split_first() else {
            return;
        };
        let bulk = |b: &[u8]| Value::Bytes(b.to_vec().into());
        let mut names: Vec<&[u8]> = Vec::new();
        let reply = match shape % 8 {
            0 => Value::Null,
            1 => Value::Integer(take_i64(&mut rest)),
            2 => Value::Array(Vec::new()),
            3 => Value::Array(vec![bulk(rest)]),
            _ => {
                let elements: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
                names = elements.iter().step_by(2).copied().collect();
                Value::Array(
                    elements
                        .iter()
                        .map(|element| match element.split_first() {
                            Some((0xFF, tail)) => {
                                Value::Integer(i64::try_from(tail.len()).unwrap_or(0))
                            }
                            _ => bulk(element),
                        })
                        .collect(),
                )
            }
        };
        if let Some(record) = hash_reply(reply) {
            assert!(
                names.contains(&&b"m"[..]),
                "loaded without a metadata field"
            );
            for key in record.data.keys() {
                let field = format!("d:{key}");
                assert!(
                    names.contains(&field.as_bytes()),
                    "data not from a d: field"
                );
            }
        }
    }

    /// The fuzz target `redis_aiohttp_value`: the aiohttp layout's decoder
    /// of a stored value. The first byte picks `max_age` (none, 0, an hour,
    /// `u64::MAX`); the rest is the value. What loads was created at a
    /// representable time and expires, if it does, no earlier than it was
    /// created.
    ///
    /// # Panics
    ///
    /// When a property fails, or when the decoder panics by itself.
    pub fn check_aiohttp_value(data: &[u8]) {
        let Some((&pick, value)) = data.split_first() else {
            return;
        };
        let max_age = match pick % 4 {
            0 => None,
            1 => Some(0),
            2 => Some(3600),
            _ => Some(u64::MAX),
        };
        if let Some(record) = aiohttp_value(value, max_age) {
            if let Some(deadline) = record.expires_at {
                assert!(deadline >= record.created, "expires before it was created");
            }
        }
    }
}

#[cfg(test)]
mod fuzz_regressions;
