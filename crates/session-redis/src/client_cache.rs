//! The client-side cache ([`RedisStoreBuilder::client_cache`]): sessions
//! this process read, kept in memory while Redis says they have not
//! changed, so that a load of an unchanged session needs no `HGETALL`.
//!
//! # How it stays exact
//!
//! The cache reads through a connection of its own, in RESP3 with
//! [client tracking](https://redis.io/docs/latest/develop/reference/client-side-caching/)
//! on: Redis remembers the keys that connection read, and pushes an
//! invalidation on it when one of them changes (written, deleted, expired,
//! evicted), whoever changed it. Redis writes that push to the connection
//! before its reply to any command it processes after the change, and
//! fred hands pushes over, in order, before it answers the replies that
//! follow them.
//!
//! So a load that finds its session cached first waits for a **barrier**:
//! `CLIENT TRACKINGINFO` and a `GET` (below), sent on that connection after
//! the load began, and it answers from memory only once the barrier's
//! reply is in and every invalidation received before it applied. Redis
//! processed the barrier after every write answered before the request
//! arrived (another process's logout included), so the cache answers what
//! an `HGETALL` sent then would have, and a logout is as final as without
//! it. The round trip is shared, and one barrier is out at a time: the
//! loads that begin while one is on its way all wait for the next, sent
//! when it comes back and the tasks it released have had a turn (so that
//! a busy server's next requests join it too), so under load one barrier
//! serves many requests, and Redis decodes and sends no session.
//!
//! * **A load that finds nothing cached** reads at once, on the cache's
//!   connection (so that Redis tracks the key from then on), and keeps what
//!   it read unless an invalidation of its key, or an emptying, came while
//!   it did. A read sent after the load began needs no barrier.
//! * **A new connection** (after a reconnect, or a Redis restart) has
//!   tracking off, and the invalidations of the old one are lost: the
//!   barrier says so, and the cache is emptied and tracking turned on
//!   before the loads waiting for it go on. A read that a load begins
//!   meanwhile, its own barrier passed before, goes to the store's
//!   connection and is not kept: sent before the `CLIENT TRACKING ON`, it
//!   would not be tracked, and a barrier sent after it, which may come
//!   back first, would vouch for it.
//! * **A flush** (`FLUSHALL`, `FLUSHDB`) makes Redis forget what every
//!   connection read and tell each with an invalidation that names no
//!   key, which fred 10.1 drops. So the barrier also reads an epoch key,
//!   `{prefix}cache-epoch`, holding a random value that a cache finding it
//!   missing writes: a value other than the one the last barrier read
//!   (gone with a flush, or written again since) empties the cache. A
//!   session id is 32 characters, so no session's key is the epoch key.
//! * **A session this process created or wrote** is read next time
//!   through the store's own connection, untracked, and not kept: its next
//!   change would most likely come from here again (a counter, a cart),
//!   and tracking it would only cost Redis an invalidation per write and
//!   this process a read it makes anyway. The load after that reads it
//!   tracked, and the loads after are answered from memory. The mark that
//!   says so takes an entry of the cache, like a cached session.
//! * **A key past its Redis expiry** that Redis has not deleted yet may
//!   still be cached, but the record's deadline, which the store keeps
//!   equal to the key's, is past too, and the core treats it as gone.
//! * When the cache's connection is not up, or a barrier fails at once (an
//!   ACL that forbids `CLIENT`, say), a load reads through the store's own
//!   connection, uncached, as if there were no cache. When a barrier fails
//!   half the command timeout or more after its first load began to wait
//!   (Redis not answering), its loads fail, with the store's timeout
//!   error: reading elsewhere would take them past the command timeout,
//!   which bounds every operation. A barrier out for more than a quarter
//!   of the timeout no longer holds back the next, so a slow Redis delays
//!   a load's barrier by that much at most.
//!
//! [`RedisStoreBuilder::client_cache`]: crate::RedisStoreBuilder::client_cache

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use fred::prelude::{Builder, ClientLike, ReconnectPolicy, TrackingInterface};
use fred::types::RespVersion;
use fred::types::client::Invalidation;
use session_core::{Error, Record, SessionId};
use tokio::sync::{broadcast, watch};

use crate::connection::{Redis, RedisConnection};

/// How many invalidations may wait between two barriers before the
/// cache, having missed some, must empty itself.
const INVALIDATIONS_BUFFERED: usize = 4096;

/// Sessions read through a tracked connection; cheap to clone.
#[derive(Clone)]
pub(crate) struct ClientCache(Arc<Shared>);

struct Shared {
    /// The cache's own connection, tracked.
    redis: Redis,
    /// What session keys start with: the cache is keyed by session id.
    key_prefix: String,
    epoch_key: String,
    /// Its connection task starts with the first load, on that load's
    /// runtime (a store may be built outside one).
    connecting: Once,
    capacity: usize,
    state: Mutex<State>,
    /// The newest barriers that passed and that failed.
    barriers: watch::Sender<Barriers>,
}

#[derive(Clone, Copy, Default)]
struct Barriers {
    passed: u64,
    failed: u64,
}

/// How a barrier went, for the loads that waited for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Passage {
    /// The cache can vouch for what it holds.
    Passed,
    /// It cannot, but there is time to read through the store's own
    /// connection.
    Failed,
    /// It cannot, and the load's time is (about) up.
    TimedOut,
}

struct State {
    /// The barrier loads may still join, not sent yet, and when it was
    /// opened (the first of its loads began to wait).
    open: Option<(u64, Instant)>,
    /// The last barrier started.
    started: u64,
    /// Whether a task is sending barriers (one at a time, until none is
    /// open).
    sending: bool,
    invalidations: broadcast::Receiver<Invalidation>,
    /// By session id.
    entries: HashMap<CachedId, Entry>,
    /// Ids in the order they were entered, with the insertion each was
    /// (an entry since invalidated or entered again is skipped): the
    /// oldest goes first when the cache is full.
    order: VecDeque<(u64, CachedId)>,
    insertions: u64,
    /// Ids being read through the cache's connection, and whether an
    /// invalidation came while they were.
    loading: HashMap<CachedId, Loading>,
    /// How many times the cache was emptied.
    emptied: u64,
    /// The epoch key's value at the last barrier.
    epoch: Option<Vec<u8>>,
    /// Whether the last barrier passed: until one has, Redis is not
    /// tracking what the cache's connection reads, and a read there would
    /// be kept for nothing.
    tracking: bool,
}

/// A session id as the cache keeps it: inline, so that an entry allocates
/// nothing of its own. Tens of thousands of small strings that live as
/// long as the cache scattered the allocator's free lists (a counter over
/// 50,000 sessions spent some 2 µs more per request in `malloc` with the
/// cache than without). Up to [`SessionId::LEN`] bytes, which every issued
/// id is; a longer one is not cached.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct CachedId {
    len: u8,
    bytes: [u8; SessionId::LEN],
}

impl CachedId {
    fn new(id: &str) -> Option<Self> {
        let len = id.len();
        let mut bytes = [0; SessionId::LEN];
        bytes.get_mut(..len)?.copy_from_slice(id.as_bytes());
        Some(CachedId {
            len: u8::try_from(len).ok()?,
            bytes,
        })
    }
}

struct Entry {
    state: EntryState,
    insertion: u64,
}

enum EntryState {
    /// The session as Redis held it when read, tracked since.
    Cached(Arc<Record>),
    /// Written by this process: the next load reads it untracked
    /// (`read_since` then), the one after tracked.
    Written { read_since: bool },
}

/// What a load does next, as what the cache holds of its session says.
enum Route {
    /// Answers the session from memory.
    Answer(Arc<Record>),
    /// Waits for a barrier, then asks again.
    Barrier,
    /// Reads it on the cache's connection, and keeps it.
    ReadTracked(CachedId),
    /// Reads it on the store's own connection, and keeps nothing.
    ReadUntracked,
}

#[derive(Default)]
struct Loading {
    count: usize,
    invalidated: bool,
}

impl ClientCache {
    /// A cache of at most `capacity` sessions, reading through a new
    /// connection configured as `connection` is, but in RESP3; `None` on a
    /// cluster, where one barrier cannot vouch for every node.
    pub(crate) fn new(
        connection: &RedisConnection,
        timeout: Duration,
        key_prefix: &str,
        capacity: usize,
    ) -> Result<Option<Self>, Error> {
        let base = connection.client();
        if base.is_clustered() {
            return Ok(None);
        }
        let mut config = base.client_config();
        config.version = RespVersion::RESP3;
        // A first connection that fails is retried: loads fall back to the
        // store's connection meanwhile.
        config.fail_fast = false;
        let mut performance = base.perf_config();
        performance.broadcast_channel_capacity = INVALIDATIONS_BUFFERED;
        let policy = base
            .client_reconnect_policy()
            .unwrap_or_else(|| ReconnectPolicy::new_exponential(0, 50, 1_000, 2));
        let client = Builder::from_config(config)
            .set_performance_config(performance)
            .set_connection_config(base.connection_config().clone())
            .set_policy(policy)
            .build()
            .map_err(Error::store)?;
        let invalidations = client.invalidation_rx();
        let redis = Redis::new(client.into(), timeout, crate::Durability::Master);
        Ok(Some(ClientCache(Arc::new(Shared {
            redis,
            key_prefix: key_prefix.to_owned(),
            epoch_key: format!("{key_prefix}cache-epoch"),
            connecting: Once::new(),
            capacity,
            state: Mutex::new(State::new(invalidations)),
            barriers: watch::channel(Barriers::default()).0,
        }))))
    }

    /// The session `id`, from the cache when Redis has not changed it
    /// since it was cached, else read by `read` (given the connection to
    /// read through) and cached. `uncached` is the store's own connection,
    /// read through when the cache's cannot vouch for it.
    pub(crate) async fn load(
        &self,
        id: &str,
        uncached: &Redis,
        read: impl AsyncFnOnce(&Redis) -> Result<Option<Record>, Error>,
    ) -> Result<Option<Arc<Record>>, Error> {
        self.load_from(id, uncached, read, false).await
    }

    /// [`load`](Self::load), from where a load that has `passed_barrier`
    /// or not goes on.
    async fn load_from(
        &self,
        id: &str,
        uncached: &Redis,
        read: impl AsyncFnOnce(&Redis) -> Result<Option<Record>, Error>,
        mut passed_barrier: bool,
    ) -> Result<Option<Arc<Record>>, Error> {
        let shared = &*self.0;
        let client = shared.redis.connection().client();
        self.start_connecting();
        loop {
            let route = shared.lock().route(id, passed_barrier);
            match route {
                Route::Answer(record) => return Ok(Some(record)),
                // Down, the cache's connection would only make the load
                // wait its timeout before reading elsewhere.
                Route::Barrier if !client.is_connected() => break,
                Route::Barrier => match self.barrier().await {
                    Passage::Passed => passed_barrier = true,
                    Passage::Failed => break,
                    // Of the same length as the store's connection's.
                    Passage::TimedOut => return Err(shared.redis.timed_out()),
                },
                Route::ReadTracked(cached) if client.is_connected() => {
                    // Unless a barrier found the connection new since the
                    // route was decided: then the store's connection.
                    if let Some(loading) = shared.register_read(cached) {
                        return Box::pin(self.read_tracked(loading, read)).await;
                    }
                    break;
                }
                Route::ReadTracked(_) | Route::ReadUntracked => break,
            }
        }
        Box::pin(read(uncached))
            .await
            .map(|record| record.map(Arc::new))
    }

    /// Starts the cache's connection task, on the current runtime, unless
    /// it was started already.
    fn start_connecting(&self) {
        let client = self.0.redis.connection().client();
        self.0.connecting.call_once(|| {
            // The connection task runs as long as the client lives; the
            // client is the cache's, which nothing else closes.
            drop(client.connect());
        });
    }

    /// Starts the cache's connection and waits, at most `timeout` (zero:
    /// without a limit), for it to be up.
    pub(crate) async fn connect(&self, timeout: Duration) {
        self.start_connecting();
        let up = self.0.redis.connection().client().wait_for_connect();
        let up = if timeout.is_zero() {
            Some(up.await)
        } else {
            crate::watchdog::within(timeout, up).await
        };
        if !matches!(up, Some(Ok(()))) {
            tracing::debug!("the client cache's connection is not up yet; loads read uncached");
        }
    }

    /// Reads the session a [registered](Shared::register_read) read is for
    /// on the cache's connection, which Redis then tracks, and keeps it
    /// unless an invalidation or an emptying came while it was read.
    async fn read_tracked(
        &self,
        mut loading: LoadingGuard<'_>,
        read: impl AsyncFnOnce(&Redis) -> Result<Option<Record>, Error>,
    ) -> Result<Option<Arc<Record>>, Error> {
        let record = read(&self.0.redis).await?.map(Arc::new);
        let mut state = self.0.lock();
        let invalidated = loading.finish(&mut state);
        match &record {
            Some(record) if !invalidated && state.emptied == loading.emptied => {
                state.enter(
                    loading.id,
                    EntryState::Cached(Arc::clone(record)),
                    self.0.capacity,
                );
            }
            _ => {}
        }
        Ok(record)
    }

    /// Session `id` is being written (or created, or deleted) by this
    /// process: its next load reads it untracked.
    pub(crate) fn written(&self, id: &str) {
        // An id the cache cannot keep has no entry, and is never read
        // tracked.
        let Some(id) = CachedId::new(id) else {
            return;
        };
        let mut state = self.0.lock();
        state.mark_loading_invalidated(id);
        // In place of what the cache held of it.
        state.enter(
            id,
            EntryState::Written { read_since: false },
            self.0.capacity,
        );
    }

    /// Waits for a barrier sent after this call: whether it passed (every
    /// invalidation Redis sent before it applied).
    async fn barrier(&self) -> Passage {
        let shared = &self.0;
        let (barrier, opened) = {
            let mut state = shared.lock();
            let state = &mut *state;
            // One clock read per barrier, not per load: the loads that join
            // it began to wait at most the hold-back later (see
            // `Shared::send_barriers`).
            let (barrier, opened) = *state.open.get_or_insert_with(|| {
                state.started += 1;
                (state.started, Instant::now())
            });
            if !state.sending {
                state.sending = true;
                // The guard is made here, not in the task: a task dropped
                // before it first runs (its runtime shut down) still drops
                // it.
                tokio::spawn(send_barriers(SendingBarriers {
                    shared: Arc::clone(shared),
                    stopped: false,
                }));
            }
            (barrier, opened)
        };
        let mut barriers = shared.barriers.subscribe();
        let passed = match barriers
            .wait_for(|b| b.passed >= barrier || b.failed >= barrier)
            .await
        {
            Ok(barriers) => barriers.passed >= barrier,
            // The sender lives as long as `shared`, which we hold.
            Err(_) => false,
        };
        let timeout = shared.redis.timeout();
        if passed {
            Passage::Passed
        } else if !timeout.is_zero() && opened.elapsed() >= timeout / 2 {
            Passage::TimedOut
        } else {
            Passage::Failed
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot have left the cache
        // inconsistent in a way that matters more than losing it: what it
        // holds goes (and the reads under way are not kept, the emptying
        // tells them), once. The poison goes with it; left in place, it
        // would empty the cache on every lock from then on.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut state = poisoned.into_inner();
            state.empty();
            self.state.clear_poison();
            state
        })
    }

    /// Sends `barrier`, and tells the loads waiting for it (and for any
    /// before it) how it went.
    async fn pass(self: Arc<Self>, barrier: u64) {
        let passed = self.pass_barrier().await;
        self.lock().tracking = passed;
        self.barriers.send_modify(|barriers| {
            if passed {
                barriers.passed = barriers.passed.max(barrier);
            } else {
                barriers.failed = barriers.failed.max(barrier);
            }
        });
    }
}

impl Shared {
    /// Registers a read of session `id` about to go on the cache's
    /// connection, or `None` when no barrier vouches for that connection
    /// any more. Checked under the lock that registers the read: a barrier
    /// that finds the connection new empties the cache and stops counting
    /// reads as tracked, under that lock, before it turns tracking on, so
    /// that a read registered before it is not kept (the emptying), and
    /// one registered after reads elsewhere.
    fn register_read(&self, id: CachedId) -> Option<LoadingGuard<'_>> {
        let mut state = self.lock();
        if !state.tracking {
            return None;
        }
        // Invalidations already in are of writes before this read: applied
        // now, they cannot be taken for ones that raced it. (Without
        // invalidations to come, the read is not kept: the mark is already
        // taken as invalidated.)
        let intact = state.apply_invalidations(&self.key_prefix);
        let loading = state.loading.entry(id).or_default();
        loading.count += 1;
        loading.invalidated |= !intact;
        Some(LoadingGuard {
            cache: self,
            id,
            emptied: state.emptied,
            done: false,
        })
    }

    /// Turns client tracking on, for a connection found without it. The
    /// cache is emptied first, and reads stop counting as tracked: a
    /// barrier sent after the `CLIENT TRACKING ON`, while this one is still
    /// out (Redis is slow, and the next barrier went out without waiting),
    /// finds tracking on and passes, perhaps before this one comes back;
    /// it must find nothing read on the lost connection to vouch for.
    async fn turn_tracking_on(&self) -> Result<(), Error> {
        self.forget_connection();
        self.redis.start_tracking().await
    }

    /// [`turn_tracking_on`](Self::turn_tracking_on)'s first step: the
    /// cache emptied, and reads no longer counted as tracked.
    fn forget_connection(&self) {
        let mut state = self.lock();
        state.empty();
        state.tracking = false;
    }

    /// Sends a barrier and brings the cache up to it: whether it can vouch
    /// for what it holds.
    async fn pass_barrier(&self) -> bool {
        let (tracking, epoch) = match self.redis.tracking_barrier(&self.epoch_key).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%error, "client cache barrier failed; reading uncached");
                return false;
            }
        };
        // A connection we have not tracked on: what the cache holds was
        // read on another, whose invalidations are lost. It is emptied
        // before tracking is turned on, and again below, which also drops
        // what reads meanwhile would keep.
        if !tracking {
            if let Err(error) = self.turn_tracking_on().await {
                tracing::debug!(%error, "client tracking could not be turned on; reading uncached");
                return false;
            }
        }
        {
            let mut state = self.lock();
            if !state.apply_invalidations(&self.key_prefix) {
                return false;
            }
            if !tracking || epoch.is_none() || state.epoch != epoch {
                // Also drops what reads from before tracking was on, or
                // from before a flush, would still insert.
                state.empty();
                state.epoch.clone_from(&epoch);
            }
        }
        if epoch.is_none() {
            // Written before the loads waiting for this barrier go on, so
            // that a flush after it is one the next barrier sees.
            let value = uuid::Uuid::new_v4().simple().to_string();
            match self
                .redis
                .set_new(&self.epoch_key, value.clone(), None)
                .await
            {
                Ok(true) => self.lock().epoch = Some(value.into_bytes()),
                // Another process's cache made it first: the next barrier
                // reads it, and empties this cache once more.
                Ok(false) => {}
                Err(error) => {
                    tracing::debug!(%error, "the client cache's epoch key could not be written");
                }
            }
        }
        true
    }
}

/// Sends the open barrier, and then the one opened while it was on its
/// way, until none is open: one barrier at a time, so that the loads that
/// begin during a round trip share the next one.
///
/// A barrier out for longer than a quarter of the command timeout (Redis
/// is slow, or down) no longer holds back the next: it is left to finish
/// on its own, and the next goes out. So a load waits at most about a
/// quarter of the timeout for its barrier to go out, and the timeout for
/// it to come back.
async fn send_barriers(mut sending: SendingBarriers) {
    let shared = Arc::clone(&sending.shared);
    let hold_back = shared.redis.timeout() / 4;
    loop {
        // The next barrier waits for one turn of the runtime: the tasks the
        // last one released run (a busy server's connections then begin
        // their next loads), requests already received are read, and their
        // loads join it rather than wait for one more. Under load this
        // halves the barriers per request on axum, and so the cache's round
        // trips; on an idle store it costs a load a turn of an idle
        // runtime.
        tokio::task::yield_now().await;
        let barrier = {
            let mut state = shared.lock();
            let Some((barrier, _)) = state.open.take() else {
                state.sending = false;
                sending.stopped = true;
                return;
            };
            barrier
        };
        let mut passing = Box::pin(Arc::clone(&shared).pass(barrier));
        if hold_back.is_zero() {
            passing.await;
        } else if crate::watchdog::within(hold_back, passing.as_mut())
            .await
            .is_none()
        {
            tokio::spawn(passing);
        }
    }
}

/// The task sending barriers. Dropped before it stopped on its own (its
/// runtime shut down, before or after the task first ran), it fails every
/// barrier started, whose loads would otherwise wait for ever (they read
/// through the store instead), and lets the next load start a new task.
struct SendingBarriers {
    shared: Arc<Shared>,
    stopped: bool,
}

impl Drop for SendingBarriers {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let started = {
            let mut state = self.shared.lock();
            state.sending = false;
            state.open = None;
            state.started
        };
        self.shared.barriers.send_modify(|barriers| {
            barriers.failed = barriers.failed.max(started);
        });
    }
}

impl State {
    /// An empty cache, hearing of invalidations from `invalidations`, that
    /// has passed no barrier yet.
    fn new(invalidations: broadcast::Receiver<Invalidation>) -> Self {
        State {
            open: None,
            started: 0,
            sending: false,
            invalidations,
            entries: HashMap::new(),
            order: VecDeque::new(),
            insertions: 0,
            loading: HashMap::new(),
            emptied: 0,
            epoch: None,
            tracking: false,
        }
    }

    /// What a load of session `id` does next, once it has passed a
    /// barrier or before.
    fn route(&mut self, id: &str, passed_barrier: bool) -> Route {
        // Not cached, a session is read tracked once a barrier has vouched
        // that Redis tracks what the cache's connection reads (and
        // `register_read` finds that no later barrier has found the
        // connection new since).
        let tracked = self.tracking || passed_barrier;
        let Some(id) = CachedId::new(id) else {
            return Route::ReadUntracked;
        };
        let Some(entry) = self.entries.get_mut(&id) else {
            return if tracked {
                Route::ReadTracked(id)
            } else {
                Route::Barrier
            };
        };
        match &mut entry.state {
            EntryState::Cached(record) if passed_barrier => Route::Answer(Arc::clone(record)),
            EntryState::Cached(_) => Route::Barrier,
            EntryState::Written { read_since } if !*read_since => {
                *read_since = true;
                Route::ReadUntracked
            }
            EntryState::Written { .. } if tracked => Route::ReadTracked(id),
            EntryState::Written { .. } => Route::Barrier,
        }
    }

    /// Drops what the invalidations received so far name: whether the
    /// cache can still vouch for what it keeps.
    fn apply_invalidations(&mut self, key_prefix: &str) -> bool {
        loop {
            match self.invalidations.try_recv() {
                Ok(invalidation) if invalidation.keys.is_empty() => self.empty(),
                Ok(invalidation) => {
                    for key in &invalidation.keys {
                        // Keys that are not a session's have no entry.
                        if let Some(id) = key.as_str().and_then(|k| k.strip_prefix(key_prefix)) {
                            self.invalidate(id);
                        }
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => return true,
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.empty(),
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.empty();
                    return false;
                }
            }
        }
    }

    /// Drops what the cache holds of session `id`. A mark that this
    /// process wrote it stays: the invalidation is most likely of that
    /// very write.
    fn invalidate(&mut self, id: &str) {
        // An id the cache cannot keep has no entry, and is never read
        // tracked.
        let Some(id) = CachedId::new(id) else {
            return;
        };
        if let Some(Entry {
            state: EntryState::Cached(_),
            ..
        }) = self.entries.get(&id)
        {
            self.entries.remove(&id);
        }
        self.mark_loading_invalidated(id);
    }

    /// A read of session `id` under way, if any, must not be kept.
    fn mark_loading_invalidated(&mut self, id: CachedId) {
        // Without reads under way (the usual case), no hashing.
        if self.loading.is_empty() {
            return;
        }
        if let Some(loading) = self.loading.get_mut(&id) {
            loading.invalidated = true;
        }
    }

    fn empty(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.emptied += 1;
    }

    /// Enters `state` for session `id`: in place of what is there (which
    /// keeps its place in the order of eviction), or as a new entry,
    /// evicting the oldest when the cache is full.
    fn enter(&mut self, id: CachedId, state: EntryState, capacity: usize) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.state = state;
            return;
        }
        while self.entries.len() >= capacity {
            let Some((insertion, oldest)) = self.order.pop_front() else {
                break;
            };
            if self
                .entries
                .get(&oldest)
                .is_some_and(|entry| entry.insertion == insertion)
            {
                self.entries.remove(&oldest);
            }
        }
        if capacity == 0 {
            return;
        }
        self.insertions += 1;
        let insertion = self.insertions;
        self.entries.insert(id, Entry { state, insertion });
        self.order.push_back((insertion, id));
        // Entries removed (invalidated) leave their ids in `order`; past
        // twice the entries (and some), those go, so that `order` stays
        // within a constant factor of what the cache holds, at a constant
        // cost per entry.
        if self.order.len() > self.entries.len().saturating_mul(2) + 64 {
            let entries = &self.entries;
            self.order.retain(|(insertion, id)| {
                entries
                    .get(id)
                    .is_some_and(|entry| entry.insertion == *insertion)
            });
        }
    }
}

/// A load's mark in [`State::loading`], taken off when the load finishes
/// or is dropped (its request cancelled).
struct LoadingGuard<'a> {
    cache: &'a Shared,
    id: CachedId,
    /// [`State::emptied`] when the read was registered.
    emptied: u64,
    done: bool,
}

impl LoadingGuard<'_> {
    /// Takes the mark off: whether the key was invalidated meanwhile.
    fn finish(&mut self, state: &mut State) -> bool {
        self.done = true;
        let Some(loading) = state.loading.get_mut(&self.id) else {
            return true;
        };
        let invalidated = loading.invalidated;
        loading.count -= 1;
        if loading.count == 0 {
            state.loading.remove(&self.id);
        }
        invalidated
    }
}

impl Drop for LoadingGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.cache.lock();
            self.finish(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use session_testing::RedisServer;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    async fn cache(server: &RedisServer, capacity: usize) -> (ClientCache, Redis) {
        let connection = RedisConnection::connect(&server.url(), TIMEOUT)
            .await
            .expect("connect");
        let cache = ClientCache::new(&connection, TIMEOUT, "session:", capacity)
            .expect("a client")
            .expect("not a cluster");
        cache.connect(TIMEOUT).await;
        (
            cache,
            Redis::new(connection, TIMEOUT, crate::Durability::Master),
        )
    }

    /// Loads session `id` through the cache with a read that tracks its
    /// key (an `HGETALL` on the connection it is given), counting reads in
    /// `reads`, and doing `meanwhile` before it answers.
    async fn load(
        cache: &ClientCache,
        uncached: &Redis,
        id: &str,
        reads: &AtomicUsize,
        meanwhile: impl AsyncFnOnce(),
    ) -> Option<Arc<Record>> {
        cache
            .load(id, uncached, async |redis| {
                reads.fetch_add(1, Ordering::SeqCst);
                redis.hgetall(&format!("session:{id}")).await?;
                meanwhile().await;
                Ok(Some(Record::new(SystemTime::UNIX_EPOCH)))
            })
            .await
            .expect("load")
    }

    /// Whether a read of session `a` is kept when `command` runs on
    /// Redis while it is out and another load's barrier passes before it
    /// answers: the next two loads read it again, or not.
    async fn kept_when_racing(command: &[&str]) -> bool {
        let server = RedisServer::start();
        let (cache, uncached) = cache(&server, 10).await;
        let reads = AtomicUsize::new(0);
        load(&cache, &uncached, "a", &reads, async || {
            server.command(command).expect("the racing command");
            assert_eq!(cache.barrier().await, Passage::Passed);
        })
        .await;
        load(&cache, &uncached, "a", &reads, async || {}).await;
        let kept = reads.load(Ordering::SeqCst) == 1;
        // Kept in any case by a read that nothing raced.
        load(&cache, &uncached, "a", &reads, async || {}).await;
        load(&cache, &uncached, "a", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), if kept { 1 } else { 2 });
        kept
    }

    #[tokio::test]
    async fn a_read_that_raced_an_invalidation_of_its_key_is_not_kept() {
        assert!(!kept_when_racing(&["HSET", "session:a", "d:x", "1"]).await);
    }

    #[tokio::test]
    async fn a_read_that_raced_an_emptying_is_not_kept() {
        assert!(!kept_when_racing(&["FLUSHALL"]).await);
    }

    #[tokio::test]
    async fn a_read_that_raced_another_key_s_change_is_kept() {
        assert!(kept_when_racing(&["HSET", "session:b", "d:x", "1"]).await);
    }

    #[tokio::test]
    async fn a_cancelled_read_leaves_no_mark() {
        let server = RedisServer::start();
        let (cache, uncached) = cache(&server, 10).await;
        let reads = AtomicUsize::new(0);
        let cancelled = tokio::time::timeout(
            Duration::from_millis(50),
            load(&cache, &uncached, "a", &reads, async || {
                std::future::pending::<()>().await;
            }),
        )
        .await;
        assert!(cancelled.is_err());
        assert!(cache.0.lock().loading.is_empty());
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let server = RedisServer::start();
        let (cache, uncached) = cache(&server, 3).await;
        let reads = AtomicUsize::new(0);
        for round in 0..4 {
            for i in 0..10 {
                let key = format!("session:{i}");
                load(&cache, &uncached, &i.to_string(), &reads, async || {}).await;
                // Changes to cached keys leave stale names in the order.
                server
                    .command(&["HSET", &key, "d:round", &round.to_string()])
                    .expect("HSET");
                let state = cache.0.lock();
                assert!(state.entries.len() <= 3, "{}", state.entries.len());
                assert!(
                    state.order.len() <= 2 * state.entries.len() + 64,
                    "{}",
                    state.order.len()
                );
            }
        }
        // Unchanged, the newest three stay and the older ones went.
        for i in 0..10 {
            load(&cache, &uncached, &i.to_string(), &reads, async || {}).await;
        }
        let before = reads.load(Ordering::SeqCst);
        for i in 7..10 {
            load(&cache, &uncached, &i.to_string(), &reads, async || {}).await;
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            before,
            "the newest three kept"
        );
        load(&cache, &uncached, "0", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), before + 1, "the oldest went");
    }

    /// A cache holding session `a`, read once (counted in the reads
    /// returned), and a connection without it.
    async fn holding_a(server: &RedisServer) -> (ClientCache, Redis, AtomicUsize) {
        let (cache, uncached) = cache(server, 10).await;
        let reads = AtomicUsize::new(0);
        load(&cache, &uncached, "a", &reads, async || {}).await;
        load(&cache, &uncached, "a", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), 1, "cached");
        (cache, uncached, reads)
    }

    #[tokio::test]
    async fn a_panic_under_the_lock_empties_the_cache_once() {
        let server = RedisServer::start();
        let (cache, uncached, reads) = holding_a(&server).await;
        let panicked = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _state = cache.0.state.lock();
                    panic!("a panic while the cache is locked");
                })
                .join()
        });
        assert!(panicked.is_err() && cache.0.state.is_poisoned());
        load(&cache, &uncached, "a", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "emptied");
        assert!(!cache.0.state.is_poisoned());
        load(&cache, &uncached, "a", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "cached again");
    }

    /// A barrier that finds tracking on because an earlier one, still out,
    /// turned it on for a new connection does not vouch for what was read
    /// on the lost one, whose invalidations went with it.
    #[tokio::test]
    async fn a_barrier_that_overtakes_the_one_turning_tracking_on_vouches_for_nothing_older() {
        let server = RedisServer::start();
        let (cache, uncached, reads) = holding_a(&server).await;
        // The first barrier on the new connection finds tracking off, and
        // turns it on; it has not come back from that yet...
        reconnected_untracked(&server, &cache).await;
        server
            .command(&["HSET", "session:a", "d:x", "1"])
            .expect("HSET");
        cache
            .0
            .turn_tracking_on()
            .await
            .expect("CLIENT TRACKING ON");
        // ...when the next, sent behind it, finds tracking on.
        assert_eq!(cache.barrier().await, Passage::Passed);
        load(&cache, &uncached, "a", &reads, async || {}).await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "read again, not answered with what the lost connection read"
        );
    }

    /// A load that passed its barrier, and reads its session only after a
    /// later barrier found the connection new and began turning tracking
    /// on, reads on a connection that may not track what it reads yet:
    /// what it reads is not kept, or a barrier that overtakes the one
    /// turning tracking on would vouch for it.
    #[tokio::test]
    async fn a_read_after_tracking_was_found_off_is_not_kept() {
        let server = RedisServer::start();
        let (cache, uncached, _) = holding_a(&server).await;
        reconnected_untracked(&server, &cache).await;
        // The later barrier's first step, before its `CLIENT TRACKING ON`.
        cache.0.forget_connection();
        let reads = AtomicUsize::new(0);
        let read = async |redis: &Redis| {
            reads.fetch_add(1, Ordering::SeqCst);
            redis.hgetall("session:b").await?;
            Ok(Some(Record::new(SystemTime::UNIX_EPOCH)))
        };
        cache
            .load_from("b", &uncached, read, true)
            .await
            .expect("load");
        // Not tracked, this change tells the cache nothing.
        server
            .command(&["HSET", "session:b", "d:x", "1"])
            .expect("HSET");
        // Tracking goes on, and a barrier sent behind it passes before the
        // first one comes back.
        cache
            .0
            .redis
            .start_tracking()
            .await
            .expect("CLIENT TRACKING ON");
        assert_eq!(cache.barrier().await, Passage::Passed);
        load(&cache, &uncached, "b", &reads, async || {}).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2, "read again");
    }

    /// Kills the cache's connection, and waits for the new one: a barrier
    /// finds it without tracking.
    async fn reconnected_untracked(server: &RedisServer, cache: &ClientCache) {
        server
            .command(&["CLIENT", "KILL", "TYPE", "normal"])
            .expect("CLIENT KILL");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match cache.0.redis.tracking_barrier(&cache.0.epoch_key).await {
                Ok((tracking, _)) => {
                    assert!(!tracking, "a new connection, not tracking yet");
                    return;
                }
                Err(_) => {
                    assert!(std::time::Instant::now() < deadline, "never reconnected");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    #[test]
    fn lagging_behind_the_invalidations_empties_the_cache() {
        let (sender, receiver) = broadcast::channel(2);
        let mut state = State::new(receiver);
        let record = Arc::new(Record::new(SystemTime::UNIX_EPOCH));
        let id = |id| CachedId::new(id).expect("short enough");
        state.enter(id("a"), EntryState::Cached(Arc::clone(&record)), 10);
        state.enter(id("b"), EntryState::Cached(record), 10);
        let server = fred::types::config::Server::new("127.0.0.1", 6379);
        for key in ["session:x", "session:y", "session:z"] {
            sender
                .send(Invalidation {
                    keys: vec![key.into()],
                    server: server.clone(),
                })
                .expect("a receiver");
        }
        assert!(state.apply_invalidations("session:"));
        assert!(state.entries.is_empty(), "one was missed: all go");
        assert_eq!(state.emptied, 1);
        drop(sender);
        assert!(
            !state.apply_invalidations("session:"),
            "no more invalidations: cannot vouch"
        );
    }
}
