//! Saves that are waiting at the same time go to Redis as one script call.
//!
//! fred writes a script call to the socket at once: it flushes after every
//! `EVAL`/`EVALSHA`, even inside a pipeline, while plain commands wait and
//! go out many to a write. A save per call therefore cost every save a
//! system call, a timer and a trip through fred of its own. Instead, a save
//! joins a queue, and one task sends everything queued as a single call of
//! a script that applies each save in turn and answers for each; what
//! queues meanwhile goes in the next call (group commit). Under load one
//! call carries many saves; a save on an idle store goes at once.
//!
//! A cluster spreads keys over slots, and one script call may only touch
//! one slot, so there every save is a call of its own, as before.

use std::mem;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fred::error::ErrorKind;
use fred::prelude::{ClientLike, Error as FredError};
use fred::types::Value;
use tokio::sync::oneshot;

use crate::connection::{Redis, Script};

/// The most saves in one script call: enough to absorb bursts, few enough
/// that Redis is not busy with one call for long.
const MAX_BATCH: usize = 64;

/// A script taking any number of keys, each with its own arguments, and
/// answering one reply per key, sent in batches.
///
/// The script's `ARGV` holds, for each key in turn, the number of its
/// arguments and then those arguments; its reply is an array with the
/// reply for each key, in order.
pub(crate) struct Batcher {
    script: Script,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: Vec<Call>,
    /// Whether a task is sending the queue (it sends until it is empty).
    sending: bool,
}

/// One key's share of a script call, and where its reply goes.
struct Call {
    key: Value,
    args: Vec<Value>,
    /// `None`: no time limit.
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Value, FredError>>,
}

impl Batcher {
    pub(crate) fn new(script: Script) -> Self {
        Batcher {
            script,
            state: Mutex::new(State::default()),
        }
    }

    /// Runs the script for `key` with `args` within `redis`'s command
    /// timeout, in one call with whatever other calls are waiting: the
    /// script's reply for `key`.
    pub(crate) async fn call(
        self: &Arc<Self>,
        redis: &Redis,
        key: String,
        args: Vec<Value>,
    ) -> Result<Value, FredError> {
        let timeout = redis.timeout();
        // A zero timeout, or one too long to represent, is no limit.
        let deadline = (!timeout.is_zero())
            .then(|| Instant::now().checked_add(timeout))
            .flatten();
        let (reply, answer) = oneshot::channel();
        let call = Call {
            key: key.into(),
            args,
            deadline,
            reply,
        };
        // The queue is sent by a task on the caller's runtime rather than by
        // the caller: if its request is dropped, the calls queued behind it
        // still go. Without a Tokio runtime to spawn on, or on a cluster, a
        // call goes alone.
        let runtime = tokio::runtime::Handle::try_current().ok();
        match runtime {
            Some(runtime) if !redis.connection().client().is_clustered() => {
                let start_sending = {
                    let mut state = self.state();
                    state.queue.push(call);
                    !mem::replace(&mut state.sending, true)
                };
                if start_sending {
                    // The guard is made here, not in the task: a task
                    // dropped before it first runs (its runtime shut down)
                    // still drops it.
                    let sending = Sending {
                        batcher: Arc::clone(self),
                        emptied: false,
                    };
                    runtime.spawn(send_queued(sending, redis.clone()));
                }
            }
            // Boxed: a fred command's future is several kilobytes, and
            // inline it would grow every save's future, which the store
            // boxes and copies, by as much.
            _ => Box::pin(self.send(redis, vec![call])).await,
        }
        answer.await.unwrap_or_else(|_| {
            Err(FredError::new(
                ErrorKind::Canceled,
                "the save was dropped before Redis answered (its runtime shut down)",
            ))
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends `batch` as one script call and answers each call. Calls whose
    /// time is up, or whose caller is gone, are not sent.
    async fn send(&self, redis: &Redis, batch: Vec<Call>) {
        let now = Instant::now();
        let mut live = Vec::with_capacity(batch.len());
        for call in batch {
            if call.reply.is_closed() {
                // Its caller is gone.
                continue;
            }
            if call.deadline.is_some_and(|deadline| deadline <= now) {
                let _ = call.reply.send(Err(FredError::new(
                    ErrorKind::Timeout,
                    format!("Redis did not take the save within {:?}", redis.timeout()),
                )));
            } else {
                live.push(call);
            }
        }
        if live.is_empty() {
            return;
        }
        // The earliest deadline bounds the call; fred drops it from its
        // queue if Redis cannot be reached by then, so that a save that
        // timed out is not written later behind its caller's back.
        let timeout =
            live.iter()
                .filter_map(|call| call.deadline)
                .min()
                .map_or(Duration::ZERO, |deadline| {
                    deadline
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1))
                });
        let reply = redis
            .eval(&self.script, live.len(), timeout, |full| {
                full.extend(live.iter().map(|call| call.key.clone()));
                for call in &live {
                    full.push(args_len(&call.args));
                    full.extend(call.args.iter().cloned());
                }
            })
            .await;
        match reply {
            Ok(Value::Array(replies)) if replies.len() == live.len() => {
                for (call, reply) in live.into_iter().zip(replies) {
                    let _ = call.reply.send(Ok(reply));
                }
            }
            Ok(other) => {
                for call in live {
                    let _ = call.reply.send(Err(FredError::new(
                        ErrorKind::Unknown,
                        format!("unexpected reply from the save script: {other:?}"),
                    )));
                }
            }
            Err(error) => {
                for call in live {
                    let _ = call.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Sends the queue of `sending`'s batcher, a batch at a time, until it is
/// empty.
async fn send_queued(mut sending: Sending, redis: Redis) {
    let batcher = Arc::clone(&sending.batcher);
    loop {
        let batch: Vec<Call> = {
            let mut state = batcher.state();
            if state.queue.is_empty() {
                // Under the lock that callers queue under, so that a call
                // queued after this starts a new task.
                state.sending = false;
                sending.emptied = true;
                return;
            }
            let len = state.queue.len().min(MAX_BATCH);
            state.queue.drain(..len).collect()
        };
        batcher.send(&redis, batch).await;
    }
}

/// The task sending a batcher's queue. Dropped before it emptied the
/// queue (its runtime shut down, before or after the task first ran), it
/// fails the calls still queued, whose callers would otherwise wait for
/// ever, and lets the next call start a new task.
struct Sending {
    batcher: Arc<Batcher>,
    emptied: bool,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if !self.emptied {
            let mut state = self.batcher.state();
            state.sending = false;
            // Dropping a call's reply sender fails the call.
            state.queue.clear();
        }
    }
}

fn args_len(args: &[Value]) -> Value {
    Value::Integer(i64::try_from(args.len()).unwrap_or(i64::MAX))
}
