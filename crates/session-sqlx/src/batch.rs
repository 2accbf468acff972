//! Loads and updates that wait at the same time go to Postgres as one
//! statement each.
//!
//! Every statement costs the application a trip through sqlx and the pool,
//! and Postgres a round of reading the message, planning the cached
//! statement and answering; an index lookup or a row update is the cheap
//! part. So a load (an update) joins a queue, and one task sends everything
//! queued as a single statement, then answers each caller from its result;
//! what queues meanwhile goes in the next statement (group commit). Under
//! load one statement carries many requests; on an idle store a request
//! goes at once. Each row is still read, or changed, atomically, exactly as
//! by a statement of its own:
//!
//! * loads: `SELECT ... WHERE id = ANY($1) AND <live>`;
//! * updates: `UPDATE ... FROM jsonb_to_recordset($1)`, each row's delta
//!   applied to the row as it is. A batch never holds two updates of one
//!   session (the second waits for the next batch), and it locks its rows
//!   in id order, so that the batches of several processes cannot
//!   deadlock.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use session_core::Error;
use sqlx::postgres::PgPool;
use tokio::sync::oneshot;

use crate::codec::{Row, millis};

/// The most requests in one statement.
const MAX_BATCH: usize = 64;

/// A kind of request that goes in batches.
pub(crate) trait Kind: Send + Sync + Sized + 'static {
    /// What a request carries besides its id.
    type Args: Send + 'static;
    /// What the caller waits for.
    type Output: Send + 'static;
    /// Whether one batch may hold two requests for one id.
    const SAME_ID_TWICE: bool;

    /// Sends `batch` as one statement and answers each call.
    fn send(
        &self,
        pool: &PgPool,
        batch: Vec<Call<Self>>,
        timeout: Duration,
    ) -> impl Future<Output = ()> + Send;
}

/// One request and where its answer goes.
pub(crate) struct Call<K: Kind> {
    id: String,
    /// What the statement needs besides the id.
    args: K::Args,
    reply: oneshot::Sender<Result<K::Output, Arc<sqlx::Error>>>,
}

/// The queue of one kind of request of one store.
pub(crate) struct Batcher<K: Kind> {
    kind: K,
    state: Mutex<State<K>>,
}

struct State<K: Kind> {
    queue: Vec<Call<K>>,
    /// Whether a task is sending the queue (it sends until it is empty).
    sending: bool,
}

impl<K: Kind> Batcher<K> {
    pub(crate) fn new(kind: K) -> Self {
        Batcher {
            kind,
            state: Mutex::new(State {
                queue: Vec::new(),
                sending: false,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // Consistent between statements: a panic elsewhere cannot leave it
        // half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs the request for `id` with `args`, together with whatever other
    /// requests are waiting, within `timeout`. Without a tokio runtime to
    /// spawn the sending task on, the request goes alone.
    pub(crate) async fn call(
        self: &Arc<Self>,
        pool: &PgPool,
        id: &str,
        args: K::Args,
        timeout: Duration,
    ) -> Result<K::Output, Error> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            id: id.to_owned(),
            args,
            reply,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let start_sending = {
                    let mut state = self.state();
                    state.queue.push(call);
                    !mem::replace(&mut state.sending, true)
                };
                if start_sending {
                    // A task rather than this caller: if this request is
                    // dropped, the requests queued behind it still go. The
                    // guard is made here, not in the task: a task dropped
                    // before it first runs (its runtime shut down) still
                    // drops it.
                    let sending = Sending {
                        batcher: Arc::clone(self),
                        emptied: false,
                    };
                    runtime.spawn(send_queued(sending, pool.clone(), timeout));
                }
            }
            Err(_) => self.kind.send(pool, vec![call], timeout).await,
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer.map_err(Error::store),
            Ok(Err(_)) => Err(Error::store(
                "the request was dropped before the database answered (its runtime shut down)",
            )),
            Err(_) => Err(Error::store(format!(
                "the database did not answer within {timeout:?}"
            ))),
        }
    }
}

/// Sends the queue of `sending`'s batcher, a batch at a time, until it is
/// empty.
async fn send_queued<K: Kind>(mut sending: Sending<K>, pool: PgPool, timeout: Duration) {
    let batcher = Arc::clone(&sending.batcher);
    loop {
        let batch = {
            let mut state = batcher.state();
            // Requests whose caller gave up (its time ran out) are not
            // sent: a write that failed is not made later.
            state.queue.retain(|call| !call.reply.is_closed());
            if state.queue.is_empty() {
                // Under the lock that callers queue under, so that a
                // request queued after this starts a new task.
                state.sending = false;
                sending.emptied = true;
                return;
            }
            take_batch(&mut state.queue, K::SAME_ID_TWICE)
        };
        batcher.kind.send(&pool, batch, timeout).await;
    }
}

/// Takes up to [`MAX_BATCH`] calls from the front of `queue`; unless
/// `same_id_twice`, a call for an id already taken stays queued, in order,
/// for the next batch.
fn take_batch<K: Kind>(queue: &mut Vec<Call<K>>, same_id_twice: bool) -> Vec<Call<K>> {
    if same_id_twice {
        let len = queue.len().min(MAX_BATCH);
        return queue.drain(..len).collect();
    }
    let mut ids = HashSet::new();
    let mut batch = Vec::new();
    let mut rest = Vec::new();
    for call in queue.drain(..) {
        if batch.len() < MAX_BATCH && !ids.contains(&call.id) {
            ids.insert(call.id.clone());
            batch.push(call);
        } else {
            rest.push(call);
        }
    }
    *queue = rest;
    batch
}

/// The task sending the queue. Dropped before it emptied the queue (its
/// runtime shut down, before or after the task first ran), it fails the
/// requests still queued, whose callers would otherwise wait until their
/// timeout, and lets the next request start a new task.
struct Sending<K: Kind> {
    batcher: Arc<Batcher<K>>,
    emptied: bool,
}

impl<K: Kind> Drop for Sending<K> {
    fn drop(&mut self) {
        if !self.emptied {
            let mut state = self
                .batcher
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.sending = false;
            // Dropping a call's reply sender fails the call.
            state.queue.clear();
        }
    }
}

/// Runs `query` within `timeout`, the failure shared by every call.
async fn within<T>(
    timeout: Duration,
    query: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Arc<sqlx::Error>> {
    match tokio::time::timeout(timeout, query).await {
        Ok(result) => result.map_err(Arc::new),
        Err(_) => Err(Arc::new(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the database did not answer within {timeout:?}"),
        )))),
    }
}

/// Loads: each call answers the live row of its id, if any.
pub(crate) struct Loads {
    /// `SELECT id, data::text, ... WHERE id = ANY($1) AND <live at $2>`.
    pub(crate) sql: String,
}

impl Kind for Loads {
    type Args = ();
    type Output = Option<Row>;
    // Two requests of one browser may load one session: one row serves
    // both.
    const SAME_ID_TWICE: bool = true;

    async fn send(&self, pool: &PgPool, batch: Vec<Call<Self>>, timeout: Duration) {
        let ids: Vec<&str> = batch.iter().map(|call| call.id.as_str()).collect();
        let query = sqlx::query_as::<_, crate::codec::IdAndRow>(&self.sql)
            .bind(&ids)
            .bind(millis(SystemTime::now()))
            .fetch_all(pool);
        match within(timeout, query).await {
            Ok(rows) => {
                let rows: HashMap<String, Row> =
                    rows.into_iter().map(crate::codec::split_id).collect();
                for call in batch {
                    let _ = call.reply.send(Ok(rows.get(&call.id).cloned()));
                }
            }
            Err(error) => {
                for call in batch {
                    let _ = call.reply.send(Err(Arc::clone(&error)));
                }
            }
        }
    }
}

/// Updates: each call carries its row of the statement's recordset (a
/// JSON object, see [`Updates::sql`]) and answers whether the session was
/// still there to update.
pub(crate) struct Updates {
    /// Applies `$1`, a JSON array of `{"id", "cleared", "removed",
    /// "written", "created", "expires_at", "expiry", "now"}` objects, and
    /// returns the ids it updated.
    pub(crate) sql: String,
}

impl Kind for Updates {
    /// The call's JSON object.
    type Args = String;
    type Output = bool;
    // Two updates of one row in one `UPDATE ... FROM` would apply only one.
    const SAME_ID_TWICE: bool = false;

    async fn send(&self, pool: &PgPool, batch: Vec<Call<Self>>, timeout: Duration) {
        let mut rows =
            String::with_capacity(2 + batch.iter().map(|c| c.args.len() + 1).sum::<usize>());
        rows.push('[');
        for (i, call) in batch.iter().enumerate() {
            if i > 0 {
                rows.push(',');
            }
            rows.push_str(&call.args);
        }
        rows.push(']');
        let query = sqlx::query_as::<_, (String,)>(&self.sql)
            .bind(rows)
            .fetch_all(pool);
        match within(timeout, query).await {
            Ok(updated) => {
                let updated: HashSet<String> = updated.into_iter().map(|(id,)| id).collect();
                for call in batch {
                    let _ = call.reply.send(Ok(updated.contains(&call.id)));
                }
            }
            Err(error) => {
                for call in batch {
                    let _ = call.reply.send(Err(Arc::clone(&error)));
                }
            }
        }
    }
}
