//! Loads that wait at the same time go to Postgres as one query.
//!
//! Every statement costs the application a trip through sqlx and the pool,
//! and Postgres a round of parsing the message, planning the cached
//! statement and answering; an index lookup is the cheap part. So a load
//! joins a queue, and one task sends everything queued as a single
//! `SELECT ... WHERE id = ANY($1)`, then answers each load from the rows;
//! what queues meanwhile goes in the next query (group commit). Under load
//! one query carries many loads; a load on an idle store goes at once.
//! Each load is still one statement's snapshot of its row, so nothing about
//! what a load sees changes.

use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use session_core::Error;
use sqlx::postgres::PgPool;
use tokio::sync::oneshot;

use crate::codec::millis;

/// The most loads in one query.
const MAX_BATCH: usize = 64;

/// A row's columns but the id: `data` as text, `created`, `expires_at`,
/// `expiry`.
pub(crate) type Row = (String, i64, Option<i64>, Option<String>);

/// What a load waits for: its row, or the shared failure of its query.
type Answer = Result<Option<Row>, Arc<sqlx::Error>>;

/// The queue of loads of one store, and the statement that serves them.
pub(crate) struct Loads {
    /// `SELECT id, data::text, ... WHERE id = ANY($1) AND <live at $2>`.
    sql: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: Vec<Call>,
    /// Whether a task is sending the queue (it sends until it is empty).
    sending: bool,
}

struct Call {
    id: String,
    reply: oneshot::Sender<Answer>,
}

impl Loads {
    pub(crate) fn new(sql: String) -> Self {
        Loads {
            sql,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Consistent between statements: a panic elsewhere cannot leave it
        // half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live row of `id`, loaded together with whatever other loads
    /// are waiting, within `timeout`. Without a tokio runtime to spawn the
    /// sending task on, the load goes alone.
    pub(crate) async fn load(
        self: &Arc<Self>,
        pool: &PgPool,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<Row>, Error> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            id: id.to_owned(),
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
                    // dropped, the loads queued behind it still go.
                    runtime.spawn(Arc::clone(self).send_queued(pool.clone(), timeout));
                }
            }
            Err(_) => self.send(pool, vec![call], timeout).await,
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(answer)) => answer.map_err(Error::store),
            Ok(Err(_)) => Err(Error::store(
                "the load was dropped before the database answered (its runtime shut down)",
            )),
            Err(_) => Err(Error::store(format!(
                "the database did not answer within {timeout:?}"
            ))),
        }
    }

    /// Sends the queue, a batch at a time, until it is empty.
    async fn send_queued(self: Arc<Self>, pool: PgPool, timeout: Duration) {
        let mut sending = Sending {
            loads: &self,
            emptied: false,
        };
        loop {
            let batch: Vec<Call> = {
                let mut state = self.state();
                // Loads whose caller gave up are not sent.
                state.queue.retain(|call| !call.reply.is_closed());
                if state.queue.is_empty() {
                    // Under the lock that callers queue under, so that a
                    // load queued after this starts a new task.
                    state.sending = false;
                    sending.emptied = true;
                    return;
                }
                let len = state.queue.len().min(MAX_BATCH);
                state.queue.drain(..len).collect()
            };
            self.send(&pool, batch, timeout).await;
        }
    }

    /// Loads the rows of `batch` in one query and answers each call.
    async fn send(&self, pool: &PgPool, batch: Vec<Call>, timeout: Duration) {
        let ids: Vec<&str> = batch.iter().map(|call| call.id.as_str()).collect();
        let query =
            sqlx::query_as::<_, (String, String, i64, Option<i64>, Option<String>)>(&self.sql)
                .bind(&ids)
                .bind(millis(SystemTime::now()))
                .fetch_all(pool);
        let rows = match tokio::time::timeout(timeout, query).await {
            Ok(rows) => rows.map_err(Arc::new),
            Err(_) => Err(Arc::new(sqlx::Error::PoolTimedOut)),
        };
        match rows {
            Ok(rows) => {
                let rows: HashMap<String, Row> = rows
                    .into_iter()
                    .map(|(id, data, created, expires_at, expiry)| {
                        (id, (data, created, expires_at, expiry))
                    })
                    .collect();
                for call in batch {
                    // Copied: one browser's concurrent requests may load
                    // the same id in one batch.
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

/// The task sending the queue. Dropped before it emptied the queue (its
/// runtime shut down), it fails the loads still queued, whose callers would
/// otherwise wait until their timeout, and lets the next load start a new
/// task.
struct Sending<'a> {
    loads: &'a Loads,
    emptied: bool,
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if !self.emptied {
            let mut state = self.loads.state();
            state.sending = false;
            // Dropping a call's reply sender fails the call.
            state.queue.clear();
        }
    }
}
