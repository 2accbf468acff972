//! The fred client a store talks through, and every command it sends, each
//! bounded by the store's command timeout.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use fred::clients::WithOptions;
use fred::error::ErrorKind;
use fred::prelude::{
    Blocking, Builder, Client, ClientInterface, ClientLike, Config, Error as FredError,
    HashesInterface, KeysInterface, Options, Pool, ReconnectPolicy,
};
use fred::types::{ClusterHash, CustomCommand, Expiration, Map, SetOptions, Value};
use fred::util::redis_keyslot;
use session_core::Error;

use crate::watchdog;

/// The fred client or pool a [`RedisStore`](crate::RedisStore) sends its
/// commands through. Made from either with `From`/`into()`.
///
/// A client you build yourself keeps its own reconnect policy: give it one
/// (fred's [`ReconnectPolicy`]) so that the store recovers when Redis comes
/// back, and bound its queue of commands (fred's
/// `ConnectionConfig::max_command_buffer_len`, unbounded by default) so that
/// an outage cannot grow it without end.
/// [`RedisStore::from_url`](crate::RedisStore::from_url) does both for you
/// ([`MAX_QUEUED_COMMANDS`](crate::MAX_QUEUED_COMMANDS)).
#[derive(Clone)]
pub struct RedisConnection(Kind);

#[derive(Clone)]
enum Kind {
    Client(Client),
    Pool(Pool),
}

impl From<Client> for RedisConnection {
    fn from(client: Client) -> Self {
        RedisConnection(Kind::Client(client))
    }
}

impl From<Pool> for RedisConnection {
    fn from(pool: Pool) -> Self {
        RedisConnection(Kind::Pool(pool))
    }
}

impl RedisConnection {
    /// The client the next command goes through (with a pool, the next
    /// connected one), e.g. for a readiness probe that sends `PING`.
    #[must_use]
    pub fn client(&self) -> &Client {
        match &self.0 {
            Kind::Client(client) => client,
            Kind::Pool(pool) => pool.next_connected(),
        }
    }

    /// Connects to `url` with a reconnect policy that retries forever (with
    /// a backoff capped at one second), so that the store recovers by itself
    /// when Redis comes back; waits until the first connection is up.
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<Self, Error> {
        let client = Self::client_for(url, timeout, true)?;
        client.init().await.map_err(Error::store)?;
        Ok(client.into())
    }

    /// As [`connect`](Self::connect), without waiting: the connection task
    /// starts on the current Tokio runtime, and commands sent before it is
    /// up wait for it (within their timeout).
    pub(crate) fn connect_lazy(url: &str, timeout: Duration) -> Result<Self, Error> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::store(
                "connecting to Redis needs a Tokio runtime: call this from async code \
                 or inside the runtime (e.g. actix-web's `HttpServer::new` factory)",
            ));
        }
        // Not failing fast: a first connection that fails is retried like a
        // lost one, since nobody is waiting to be told.
        let client = Self::client_for(url, timeout, false)?;
        // The connection task runs until the client sends QUIT or its
        // runtime shuts down (an actix-web worker's, at shutdown); nothing
        // needs its handle.
        drop(client.connect());
        Ok(client.into())
    }

    /// A client for `url`; `fail_fast`: whether a failed first connection
    /// ends its connection task (else the reconnect policy retries it).
    fn client_for(url: &str, timeout: Duration, fail_fast: bool) -> Result<Client, Error> {
        let lower = url.to_ascii_lowercase();
        if !cfg!(feature = "tls") && (lower.starts_with("rediss") || lower.starts_with("valkeys")) {
            return Err(Error::store(
                "TLS URLs (`rediss://`) need session-redis's `tls` feature",
            ));
        }
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider, and cannot pick one
            // by itself when the dependency graph enables more than one. Ours
            // is ring; an application that installed its own keeps it.
            let _ = fred::rustls::crypto::ring::default_provider().install_default();
        }
        let mut config = Config::from_url(url).map_err(Error::store)?;
        config.fail_fast = fail_fast;
        Builder::from_config(config)
            .with_performance_config(|perf| perf.default_command_timeout = timeout)
            .with_connection_config(|conn| {
                conn.connection_timeout = timeout;
                conn.internal_command_timeout = timeout;
                conn.max_command_buffer_len = crate::MAX_QUEUED_COMMANDS;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 1_000, 2))
            .build()
            .map_err(Error::store)
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Client(_) => f.write_str("RedisConnection::Client"),
            Kind::Pool(pool) => write!(f, "RedisConnection::Pool({})", pool.size()),
        }
    }
}

/// A Lua script with its SHA1, sent by `EVALSHA` and, when the server does
/// not know it yet (a restarted server, another cluster node), by `EVAL`,
/// which also caches it there for the next `EVALSHA`. Both are kept as
/// [`Value`]s, so that sending one copies nothing.
pub(crate) struct Script {
    lua: Value,
    sha1: Value,
}

impl Script {
    pub(crate) fn new(lua: &'static str) -> Self {
        Script {
            lua: Value::from_static_str(lua),
            sha1: fred::util::sha1_hash(lua).into(),
        }
    }
}

/// When a write the store makes is answered: see
/// [`RedisStoreBuilder::durability`](crate::RedisStoreBuilder::durability).
///
/// ```
/// use std::time::Duration;
/// use session_redis::{Durability, RedisStore};
///
/// // A save is answered only once one replica has it, or fails after
/// // 500 ms without one.
/// let builder = RedisStore::builder().durability(Durability::Replicas {
///     count: 1,
///     timeout: Duration::from_millis(500),
/// });
/// # drop(builder);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// As soon as the master applied it (the default, Redis's own):
    /// replication is asynchronous, so a master that dies right after
    /// answering may take the last writes with it when a replica takes
    /// over.
    #[default]
    Master,
    /// Once `count` replicas acknowledged it: every write is followed, on
    /// the same connection, by `WAIT count timeout`, and fails with
    /// [`Error::Store`] when fewer replicas acknowledged it within
    /// `timeout` (but a login's delete of its old id: see
    /// [`RedisStoreBuilder::durability`](crate::RedisStoreBuilder::durability)).
    Replicas {
        /// How many replicas must have the write (at least 1).
        count: u32,
        /// How long to wait for them (at least 1 ms; capped by the
        /// store's command timeout).
        timeout: Duration,
    },
}

/// What a write under [`Durability::Replicas`] answers when fewer
/// replicas than required acknowledged it in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shortfall {
    /// An error: a failover may undo the write (it may still have been
    /// applied on the master).
    Fails,
    /// The write's own reply, with a warning logged: for a write whose
    /// caller must know what it did on the master, as a login must know
    /// that it deleted the old session.
    Answers,
}

/// Sends commands with a time budget per store operation.
#[derive(Clone)]
pub(crate) struct Redis {
    connection: RedisConnection,
    timeout: Duration,
    durability: Durability,
    /// Whether fred queues a command on the first poll of its future: not
    /// under `Blocking::Interrupt`, which may first wait to interrupt a
    /// blocked connection (see [`write_and_wait`](Self::write_and_wait)).
    queues_on_first_poll: bool,
}

impl Redis {
    pub(crate) fn new(
        connection: RedisConnection,
        timeout: Duration,
        durability: Durability,
    ) -> Self {
        let queues_on_first_poll =
            connection.client().client_config().blocking != Blocking::Interrupt;
        Redis {
            connection,
            timeout,
            durability,
            queues_on_first_poll,
        }
    }

    pub(crate) fn durability(&self) -> Durability {
        self.durability
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn connection(&self) -> &RedisConnection {
        &self.connection
    }

    /// Whether the connection is to a Redis Cluster, where one script may
    /// only touch keys of one slot.
    pub(crate) fn is_clustered(&self) -> bool {
        self.connection.client().is_clustered()
    }

    /// fred's own per-command timeout rather than a timer around the call:
    /// fred then also drops the command from its queue, so a write that
    /// timed out while Redis was down is not sent once it is back.
    fn options(timeout: Duration) -> Options {
        Options {
            timeout: Some(timeout),
            ..Options::default()
        }
    }

    /// A read under the [watchdog](crate::watchdog), with fred's
    /// per-command timer turned off (a zero timeout: none), including a
    /// default timeout on a client the application built.
    async fn read<T>(
        &self,
        command: impl AsyncFnOnce(&WithOptions<Client>) -> Result<T, FredError>,
    ) -> Result<T, Error> {
        let client = self.connection.client().with_options(&Options {
            timeout: Some(Duration::ZERO),
            ..Options::default()
        });
        // fred's future is several kilobytes, and each future it is nested
        // in (the layout's load, the store's, the lifecycle's) copies it
        // when it is made; boxed, they copy a pointer. One allocation spares
        // the client some 900 instructions per read (callgrind,
        // bench-redis-store). Boxed on both paths: a future holds room for
        // every future it awaits, so one unboxed path would make this one
        // as large as fred's again.
        let command = Box::pin(command(&client));
        if self.timeout.is_zero() {
            return command.await.map_err(Error::store);
        }
        match watchdog::within(self.timeout, command).await {
            Some(result) => result.map_err(Error::store),
            None => Err(self.timed_out()),
        }
    }

    /// The error of an operation that Redis did not answer within the
    /// command timeout.
    pub(crate) fn timed_out(&self) -> Error {
        Error::store(format!("Redis did not answer within {:?}", self.timeout))
    }

    /// Runs `script` on `key_count` keys within `timeout` (zero: no limit),
    /// and once more within `timeout` when the server does not have the
    /// script cached. `keys_and_args` pushes the keys (`KEYS`), then the
    /// script's arguments (`ARGV`), onto the command: it runs once per
    /// call, so the arguments are not built twice on the usual path.
    pub(crate) async fn eval(
        &self,
        script: &Script,
        key_count: usize,
        timeout: Duration,
        keys_and_args: impl FnMut(&mut Vec<Value>),
    ) -> Result<Value, FredError> {
        self.eval_with(script, key_count, timeout, Shortfall::Fails, keys_and_args)
            .await
    }

    /// [`eval`](Self::eval), answering as `shortfall` says when fewer
    /// replicas than [`Durability::Replicas`] requires acknowledged the
    /// script's writes.
    pub(crate) async fn eval_with(
        &self,
        script: &Script,
        key_count: usize,
        timeout: Duration,
        shortfall: Shortfall,
        mut keys_and_args: impl FnMut(&mut Vec<Value>),
    ) -> Result<Value, FredError> {
        let mut command = |body: &Value| {
            let mut full: Vec<Value> = Vec::with_capacity(8);
            full.push(body.clone());
            full.push(Value::Integer(i64::try_from(key_count).unwrap_or(i64::MAX)));
            keys_and_args(&mut full);
            full
        };
        match self
            .eval_as("EVALSHA", command(&script.sha1), timeout, shortfall)
            .await
        {
            // The refused call wrote nothing, and the script goes again
            // whole, with a limit of its own. Under durability, its `WAIT`
            // still waited for everything the master wrote before it (up
            // to its limit when no replica answers, as right after a
            // failover: Redis does not replicate its script cache, so a
            // promoted master has none); with what was left, a login's
            // delete could run and answer too late to be told.
            Err(error) if error.details().starts_with("NOSCRIPT") => {
                self.eval_as("EVAL", command(&script.lua), timeout, shortfall)
                    .await
            }
            result => result,
        }
    }

    /// `command` (`EVALSHA` or `EVAL`) with its full argument list: script,
    /// number of keys, keys, arguments.
    async fn eval_as(
        &self,
        command: &'static str,
        args: Vec<Value>,
        timeout: Duration,
        shortfall: Shortfall,
    ) -> Result<Value, FredError> {
        // The first key is the third argument: route by its slot, so that
        // a cluster sends the script to the node that owns the key. (fred
        // honours only `ClusterHash::Custom` on a custom command: with
        // any other, it hashes the first argument, the script, and the
        // call comes back `MOVED`.)
        let slot = args.get(2).and_then(Value::as_bytes).map(redis_keyslot);
        let hash = slot.map_or(ClusterHash::Random, ClusterHash::Custom);
        let command = CustomCommand::new_static(command, hash, false);
        match (self.durability, slot) {
            (
                Durability::Replicas {
                    count,
                    timeout: wait,
                },
                Some(slot),
            ) => {
                self.write_and_wait(timeout, slot, count, wait, shortfall, async |client| {
                    client.custom(command, args).await
                })
                .await
            }
            _ => {
                self.connection
                    .client()
                    .with_options(&Self::options(timeout))
                    .custom(command, args)
                    .await
            }
        }
    }

    /// Sends `write`, then `WAIT count wait` right behind it on the same
    /// connection, to the server that owns `slot`: the write's reply once
    /// `count` replicas acknowledged it, else an error.
    ///
    /// Two commands of their own, not a fred pipeline: fred drops a
    /// command that timed out before it was sent, but it still sends a
    /// pipeline that timed out, once the connection is back (a soak caught
    /// a login's delete, answered as failed, deleting the session seconds
    /// later). Neither is ever re-sent or redirected (fred's `max_attempts`
    /// is 1, `max_redirections` 0): a `WAIT` re-sent alone on a new
    /// connection would wait for nothing and count every connected
    /// replica, and a write redirected by a `MOVED` would not be followed
    /// by its `WAIT`: it fails instead.
    async fn write_and_wait(
        &self,
        timeout: Duration,
        slot: u16,
        count: u32,
        wait: Duration,
        shortfall: Shortfall,
        write: impl AsyncFnOnce(&WithOptions<Client>) -> Result<Value, FredError>,
    ) -> Result<Value, FredError> {
        // WAIT 0 would wait for ever: at least 1 ms; and shorter than the
        // call's time limit, so that a shortfall is reported as such
        // rather than as a timeout.
        let mut wait = wait.max(Duration::from_millis(1));
        if !timeout.is_zero() {
            wait = wait.min(timeout.mul_f64(0.9));
        }
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let options = Options {
            timeout: Some(timeout),
            max_attempts: Some(1),
            max_redirections: Some(0),
            ..Options::default()
        };
        // One client: with a pool, both commands go on its connection.
        let client = self.connection.client().with_options(&options);
        // fred queues a command when its future is first polled: the write
        // is polled once before its `WAIT` is, so that it goes first; both
        // then go in one round trip. Where that may not hold, the `WAIT`
        // goes after the write's reply.
        let mut write = pin!(write(&client));
        let written_at_once = if self.queues_on_first_poll {
            poll_once(write.as_mut()).await
        } else {
            Poll::Ready(write.as_mut().await)
        };
        if let Poll::Ready(Err(error)) = written_at_once {
            return Err(error);
        }
        let wait_command = CustomCommand::new_static("WAIT", ClusterHash::Custom(slot), false);
        let mut waited = pin!(client.custom::<Value, _>(
            wait_command,
            vec![Value::from(i64::from(count)), wait_ms.into()],
        ));
        let waited_at_once = poll_once(waited.as_mut()).await;
        let written = match written_at_once {
            Poll::Ready(written) => written,
            Poll::Pending => write.await,
        };
        // Awaited even after a failed write, so that a `WAIT` that timed
        // out is marked so and dropped rather than sent later.
        let waited = match waited_at_once {
            Poll::Ready(waited) => waited,
            Poll::Pending => waited.await,
        };
        let written = written?;
        match waited {
            Ok(Value::Integer(acknowledged)) if acknowledged >= i64::from(count) => Ok(written),
            Ok(Value::Integer(acknowledged)) if shortfall == Shortfall::Answers => {
                tracing::warn!(
                    acknowledged,
                    required = count,
                    "a write that fewer replicas than required acknowledged is answered: \
                     a failover may still undo it"
                );
                Ok(written)
            }
            Ok(Value::Integer(acknowledged)) => Err(FredError::new(
                ErrorKind::Timeout,
                format!(
                    "the write reached {acknowledged} of the {count} replicas required within \
                     {wait_ms} ms (it may still have been applied on the master)"
                ),
            )),
            Ok(other) => Err(FredError::new(
                ErrorKind::Protocol,
                format!("unexpected reply to WAIT: {other:?}"),
            )),
            Err(error) => Err(error),
        }
    }

    /// `HGETALL key`.
    pub(crate) async fn hgetall(&self, key: &str) -> Result<Value, Error> {
        self.read(async |client| client.hgetall(key).await).await
    }

    /// `GET key`: the value, or `None` when there is no such key.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let value: Value = self.read(async |client| client.get(key).await).await?;
        bytes_of(value, "GET")
    }

    /// `SET key value NX [EX secs]`: whether the key was set (`false`: it
    /// already existed, and is left as it was).
    pub(crate) async fn set_new(
        &self,
        key: &str,
        value: String,
        expire_secs: Option<i64>,
    ) -> Result<bool, Error> {
        let expire = expire_secs.map(Expiration::EX);
        let reply = self
            .write(key.as_bytes(), Shortfall::Fails, async |client| {
                client
                    .set(key, value, expire, Some(SetOptions::NX), false)
                    .await
            })
            .await?;
        Ok(!matches!(reply, Value::Null))
    }

    /// `GETDEL key`: the value the key held, if any; under
    /// [`Durability::Replicas`], answered as `shortfall` says when fewer
    /// replicas than required acknowledged it.
    pub(crate) async fn getdel(
        &self,
        key: &str,
        shortfall: Shortfall,
    ) -> Result<Option<Vec<u8>>, Error> {
        let value = self
            .write(key.as_bytes(), shortfall, async |client| {
                client.getdel(key).await
            })
            .await?;
        bytes_of(value, "GETDEL")
    }

    /// `HSET key field value [field value ...]`: how many of the fields
    /// were new.
    pub(crate) async fn hset(&self, key: &str, fields: Map) -> Result<i64, Error> {
        // fred's own command, not a custom one: fred writes a custom
        // command to the socket at once, and its own commands many to a
        // write.
        let reply = self
            .write(key.as_bytes(), Shortfall::Fails, async |client| {
                client.hset(key, fields).await
            })
            .await?;
        reply
            .as_i64()
            .ok_or_else(|| Error::store(format!("unexpected reply to HSET: {reply:?}")))
    }

    /// `HSET key field value [field value ...]`, then `HEXISTS key
    /// checked`, in one round trip: how many of the fields were new, and
    /// whether `checked` was there just after.
    pub(crate) async fn hset_then_hexists(
        &self,
        key: &str,
        fields: Map,
        checked: &str,
    ) -> Result<(i64, bool), Error> {
        let reply = self
            .write(key.as_bytes(), Shortfall::Fails, async |client| {
                // Two commands of their own, handed to fred together (the
                // first is queued before the second is made), not a fred
                // pipeline: fred still sends a pipeline that timed out once
                // the connection is back, which would do a write its caller
                // was told had failed (see `write_and_wait`).
                let (added, exists) = tokio::join!(
                    client.hset::<Value, _, _>(key, fields),
                    client.hexists::<Value, _, _>(key, checked),
                );
                Ok(Value::Array(vec![added?, exists?]))
            })
            .await?;
        match &reply {
            Value::Array(replies) => match replies.as_slice() {
                [added, exists] => added.as_i64().zip(exists.as_bool()),
                _ => None,
            },
            _ => None,
        }
        .ok_or_else(|| Error::store(format!("unexpected replies to HSET and HEXISTS: {reply:?}")))
    }

    /// The [client cache](crate::RedisStoreBuilder::client_cache)'s
    /// barrier, `CLIENT TRACKINGINFO` and `GET epoch_key` in one round
    /// trip: whether this connection has client tracking on (off on one we
    /// have not turned it on for, a new one after a reconnect above all),
    /// and the value of `epoch_key`, if any.
    pub(crate) async fn tracking_barrier(
        &self,
        epoch_key: &str,
    ) -> Result<(bool, Option<Vec<u8>>), Error> {
        let replies: Vec<Value> = self
            .read(async |client| {
                let pipeline = client.pipeline();
                let () = pipeline.client_trackinginfo().await?;
                let () = pipeline.get(epoch_key).await?;
                pipeline.all().await
            })
            .await?;
        let [info, epoch] = <[Value; 2]>::try_from(replies).map_err(|replies| {
            Error::store(format!(
                "unexpected replies to the cache's barrier: {replies:?}"
            ))
        })?;
        let on = tracking_flags(&info).is_some_and(|flags| {
            flags
                .iter()
                .any(|flag| flag.as_bytes() == Some(b"on".as_slice()))
        });
        Ok((on, bytes_of(epoch, "GET")?))
    }

    /// `CLIENT TRACKING ON`: Redis remembers the keys this connection reads
    /// and tells it (on the same connection, under RESP3) when one changes.
    pub(crate) async fn start_tracking(&self) -> Result<(), Error> {
        self.read(async |client| {
            client
                .client_tracking::<Value, _, _>(
                    "on",
                    None,
                    Vec::<String>::new(),
                    false,
                    false,
                    false,
                    false,
                )
                .await
        })
        .await
        .map(drop)
    }

    /// `HEXISTS key field`.
    pub(crate) async fn hexists(&self, key: &str, field: &str) -> Result<bool, Error> {
        self.read(async |client| client.hexists(key, field).await)
            .await
    }

    /// `DEL key`, for a key whose deletion need not be waited for: under
    /// [`Durability::Replicas`], a shortfall is answered.
    pub(crate) async fn del(&self, key: &str) -> Result<(), Error> {
        self.write(key.as_bytes(), Shortfall::Answers, async |client| {
            client.del(key).await
        })
        .await
        .map(drop)
    }

    /// Sends `write`, a command on `key`, with the store's command timeout,
    /// and under [`Durability::Replicas`] waits for its replicas (see
    /// [`write_and_wait`](Self::write_and_wait)).
    ///
    /// fred's own timeout, not the [watchdog](crate::watchdog) a read has:
    /// fred then drops a write that timed out before it was sent, rather
    /// than send it once Redis is back, after its request was answered.
    async fn write(
        &self,
        key: &[u8],
        shortfall: Shortfall,
        write: impl AsyncFnOnce(&WithOptions<Client>) -> Result<Value, FredError>,
    ) -> Result<Value, Error> {
        // Boxed, as a read is: fred's future is several kilobytes.
        match self.durability {
            Durability::Master => {
                let client = self
                    .connection
                    .client()
                    .with_options(&Self::options(self.timeout));
                Box::pin(write(&client)).await
            }
            Durability::Replicas { count, timeout } => {
                Box::pin(self.write_and_wait(
                    self.timeout,
                    redis_keyslot(key),
                    count,
                    timeout,
                    shortfall,
                    write,
                ))
                .await
            }
        }
        .map_err(Error::store)
    }
}

/// Polls `future` once: its output if it is ready.
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    poll_fn(|context| Poll::Ready(future.as_mut().poll(context))).await
}

/// The names and values in a reply of named fields (`HGETALL`,
/// `CLIENT TRACKINGINFO`): a flat array of names and values under RESP2, a
/// map under RESP3; `None` for anything else. A name is `None` when it is
/// neither text nor bytes.
pub(crate) fn pairs(reply: &Value) -> Option<impl Iterator<Item = (Option<&[u8]>, &Value)>> {
    // One iterator type for both shapes: the one the reply does not have
    // is empty.
    let (array, map): (&[Value], _) = match reply {
        Value::Array(items) => (items, None),
        Value::Map(map) => (&[], Some(map)),
        _ => return None,
    };
    let from_array = array
        .chunks_exact(2)
        .map(|pair| (pair[0].as_bytes(), &pair[1]));
    let from_map = map.into_iter().flat_map(|map| {
        map.iter()
            .map(|(name, value)| (Some(name.as_bytes()), value))
    });
    Some(from_array.chain(from_map))
}

/// The `flags` of a reply to `CLIENT TRACKINGINFO`.
fn tracking_flags(reply: &Value) -> Option<&[Value]> {
    let (_, flags) = pairs(reply)?.find(|(name, _)| *name == Some(b"flags".as_slice()))?;
    match flags {
        Value::Array(flags) => Some(flags),
        _ => None,
    }
}

/// The bytes of a reply to `command` that answers a string or nothing.
fn bytes_of(value: Value, command: &str) -> Result<Option<Vec<u8>>, Error> {
    match value {
        Value::Null => Ok(None),
        Value::Bytes(bytes) => Ok(Some(bytes.to_vec())),
        Value::String(text) => Ok(Some(text.as_bytes().to_vec())),
        other => Err(Error::store(format!(
            "unexpected reply to {command}: {:?}",
            other.kind()
        ))),
    }
}
