//! Deleting expired rows: in batches, so that a large backlog never holds
//! one long transaction, and on a timer for applications that want it.

use std::future::Future;
use std::time::{Duration, SystemTime};

use session_core::Error;

use crate::codec::millis;

/// Rows one statement of the cleanup deletes at most.
const BATCH: i64 = 1000;

/// Runs `delete_batch(now, limit)`, which deletes at most `limit` rows
/// whose deadline is before `now` (Unix ms) and answers how many it
/// deleted, until a batch comes back short; answers the total.
pub(crate) async fn delete_expired<F, Fut>(mut delete_batch: F) -> Result<u64, Error>
where
    F: FnMut(i64, i64) -> Fut,
    Fut: Future<Output = Result<u64, Error>>,
{
    let now = millis(SystemTime::now());
    let mut deleted = 0;
    loop {
        let batch = delete_batch(now, BATCH).await?;
        deleted += batch;
        if batch < BATCH.unsigned_abs() {
            return Ok(deleted);
        }
    }
}

/// The cleanup task: `delete_expired` every `period`, the first time at
/// once; a failure is logged and the next run tried on time.
pub(crate) fn spawn<F, Fut>(period: Duration, mut delete_expired: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match delete_expired().await {
                Ok(deleted) => tracing::debug!(deleted, "session-sqlx: expired sessions deleted"),
                Err(error) => {
                    tracing::warn!(%error, "session-sqlx: deleting expired sessions failed");
                }
            }
        }
    })
}
