//! A time limit for reads from Redis without a timer per command.
//!
//! A Tokio timer per command (fred's command timeout) costs a request a few
//! microseconds: registering it often wakes the runtime's driver through a
//! system call, which for a session load is about as much as the rest of
//! the client's work. Reads do not need a precise limit, so every read in
//! the process shares one watchdog thread that wakes every
//! [`RESOLUTION`] while reads are in flight (and sleeps otherwise) and fails
//! those past their deadline. A read that times out this way may still be
//! sent once Redis is back, which is harmless for a read; writes keep fred's
//! own timeout, which also drops a timed-out command from fred's queue.
//!
//! Without its thread, nothing would fail a read that Redis never answers,
//! so the watchdog fails closed: when the thread cannot be started, the
//! read fails at once (a store error, not a wait without end), and the next
//! read tries to start it again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How late past its deadline a read may be failed.
pub(crate) const RESOLUTION: Duration = Duration::from_millis(20);

/// Runs `future` for at most about `limit` (up to [`RESOLUTION`] more):
/// `None` when it did not finish in time. A limit too far away to represent
/// is no limit.
pub(crate) fn within<F: Future>(limit: Duration, future: F) -> Within<F> {
    watched_by(watchdog(), limit, future)
}

fn watched_by<F: Future>(watchdog: &'static Watchdog, limit: Duration, future: F) -> Within<F> {
    Within {
        future,
        deadline: Instant::now().checked_add(limit),
        registration: Registration(None),
        watchdog,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`within`]: a named type rather than an `async fn`,
    /// which would hold `future` twice (once as its argument, once pinned);
    /// a Redis client's future is several kilobytes, and every session load
    /// copies the future it is part of into a box.
    pub(crate) struct Within<F> {
        #[pin]
        future: F,
        // `None`: no limit.
        deadline: Option<Instant>,
        registration: Registration,
        watchdog: &'static Watchdog,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        match &this.registration.0 {
            Some(watch) => {
                let mut state = watch.state();
                if state.expired {
                    return Poll::Ready(None);
                }
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
            }
            None => {
                let watch = Arc::new(Watch {
                    deadline,
                    state: Mutex::new(WatchState {
                        waker: Some(cx.waker().clone()),
                        ..WatchState::default()
                    }),
                });
                if !this.watchdog.watch(Arc::clone(&watch)) {
                    // Nothing would fail this read in time: fail it now.
                    return Poll::Ready(None);
                }
                this.registration.0 = Some(watch);
            }
        }
        Poll::Pending
    }
}

/// A read's watch, if it has one: whatever way the read ends (finished,
/// failed, or dropped unfinished), the watchdog may forget it.
struct Registration(Option<Arc<Watch>>);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(watch) = &self.0 {
            watch.state().done = true;
        }
    }
}

/// One read being watched: shared between its future and the watchdog.
struct Watch {
    deadline: Instant,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// Set by the watchdog once the deadline has passed.
    expired: bool,
    /// Set by the future when it finishes or is dropped: the watchdog
    /// forgets it.
    done: bool,
    waker: Option<Waker>,
}

impl Watch {
    fn state(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's one watchdog.
fn watchdog() -> &'static Watchdog {
    static WATCHDOG: OnceLock<Watchdog> = OnceLock::new();
    WATCHDOG.get_or_init(|| Watchdog::new(spawn_thread))
}

/// Starts the watchdog thread on `shared`.
type Spawn = fn(Arc<Shared>) -> std::io::Result<()>;

fn spawn_thread(shared: Arc<Shared>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("session-redis-watchdog".into())
        .spawn(move || run(&shared))
        .map(drop)
}

struct Watchdog {
    shared: Arc<Shared>,
    spawn: Spawn,
    /// Whether the thread runs; set once it started, under the lock that
    /// keeps two reads from starting two threads.
    running: AtomicBool,
    starting: Mutex<()>,
}

struct Shared {
    watches: Mutex<Vec<Arc<Watch>>>,
    /// Signalled when the first watch arrives while there were none.
    arrived: Condvar,
}

impl Shared {
    fn watches(&self) -> MutexGuard<'_, Vec<Arc<Watch>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Watchdog {
    /// A watchdog whose thread `spawn` starts, on the first watch.
    fn new(spawn: Spawn) -> Self {
        Watchdog {
            shared: Arc::new(Shared {
                watches: Mutex::new(Vec::new()),
                arrived: Condvar::new(),
            }),
            spawn,
            running: AtomicBool::new(false),
            starting: Mutex::new(()),
        }
    }

    /// Whether the thread runs, starting it if it does not yet.
    fn ensure_running(&self) -> bool {
        if self.running.load(Ordering::Acquire) {
            return true;
        }
        let _starting = self.starting.lock().unwrap_or_else(PoisonError::into_inner);
        if self.running.load(Ordering::Acquire) {
            return true;
        }
        match (self.spawn)(Arc::clone(&self.shared)) {
            Ok(()) => {
                self.running.store(true, Ordering::Release);
                true
            }
            Err(error) => {
                tracing::error!(%error, "could not start the Redis read watchdog thread");
                false
            }
        }
    }

    /// Watches `watch` until it is done or its deadline passes; `false`
    /// when there is no thread to do it.
    fn watch(&self, watch: Arc<Watch>) -> bool {
        if !self.ensure_running() {
            return false;
        }
        let mut watches = self.shared.watches();
        let was_idle = watches.is_empty();
        watches.push(watch);
        drop(watches);
        if was_idle {
            self.shared.arrived.notify_one();
        }
        true
    }
}

/// The watchdog thread: while there are watches, every [`RESOLUTION`],
/// forgets the finished ones and fails (wakes) those past their deadline.
fn run(shared: &Shared) {
    loop {
        {
            let mut watches = shared.watches();
            while watches.is_empty() {
                watches = shared
                    .arrived
                    .wait(watches)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        std::thread::sleep(RESOLUTION);
        let now = Instant::now();
        let mut expired = Vec::new();
        shared.watches().retain(|watch| {
            let mut state = watch.state();
            if state.done {
                false
            } else if watch.deadline <= now {
                state.expired = true;
                expired.extend(state.waker.take());
                false
            } else {
                true
            }
        });
        // Woken outside the lock: a waker may run code of its own.
        for waker in expired {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_that_finishes_in_time_gives_its_output() {
        assert_eq!(within(Duration::from_secs(5), async { 7 }).await, Some(7));
        let slow_but_in_time = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            8
        };
        assert_eq!(
            within(Duration::from_secs(5), slow_but_in_time).await,
            Some(8)
        );
    }

    #[tokio::test]
    async fn a_limit_beyond_any_instant_is_no_limit() {
        assert_eq!(within(Duration::MAX, async { 3 }).await, Some(3));
        let slow = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            4
        };
        assert_eq!(within(Duration::MAX, slow).await, Some(4));
    }

    #[tokio::test]
    async fn a_future_that_never_finishes_is_failed_after_the_limit() {
        let started = Instant::now();
        let limit = Duration::from_millis(100);
        assert_eq!(within(limit, std::future::pending::<()>()).await, None);
        // Never early; late by scheduling at most (a generous bound: this
        // is behaviour, not a performance target).
        let elapsed = started.elapsed();
        assert!(elapsed >= limit, "{elapsed:?}");
        assert!(elapsed < limit + Duration::from_secs(3), "{elapsed:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_reads_at_once_each_get_their_own_outcome() {
        let tasks: Vec<_> = (0..200_u64)
            .map(|i| {
                tokio::spawn(async move {
                    if i % 2 == 0 {
                        within(Duration::from_millis(50), std::future::pending::<u64>()).await
                    } else {
                        within(Duration::from_secs(10), async move { i }).await
                    }
                })
            })
            .collect();
        for (i, task) in (0..).zip(tasks) {
            let outcome = task.await.expect("no panic");
            assert_eq!(outcome, (i % 2 == 1).then_some(i), "read {i}");
        }
    }

    #[tokio::test]
    async fn dropped_and_finished_reads_are_forgotten() {
        for _ in 0..100 {
            assert_eq!(within(Duration::from_secs(60), async { 1 }).await, Some(1));
            let mut pending = Box::pin(within(
                Duration::from_secs(60),
                std::future::pending::<()>(),
            ));
            assert!(futures_poll_once(pending.as_mut()).await.is_pending());
        }
        // Within a few rounds of the watchdog, none of the 100 dropped
        // watches is kept.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !watchdog().shared.watches().is_empty() {
            assert!(Instant::now() < deadline, "watches were kept");
            tokio::time::sleep(RESOLUTION).await;
        }
    }

    #[tokio::test]
    async fn without_its_thread_a_read_fails_at_once_and_the_next_one_starts_it() {
        static ATTEMPTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        // Fails the first start, as a process out of threads would.
        fn fails_once(shared: Arc<Shared>) -> std::io::Result<()> {
            if ATTEMPTS.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(std::io::Error::other("no threads left"));
            }
            spawn_thread(shared)
        }
        let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog::new(fails_once)));
        let limit = Duration::from_secs(60);
        let started = Instant::now();
        let unanswered = watched_by(watchdog, limit, std::future::pending::<()>());
        assert_eq!(unanswered.await, None, "failed closed");
        assert!(started.elapsed() < limit, "at once, not after the limit");

        let short = Duration::from_millis(50);
        let started = Instant::now();
        let unanswered = watched_by(watchdog, short, std::future::pending::<()>());
        assert_eq!(unanswered.await, None);
        assert!(started.elapsed() >= short, "this time the thread timed it");
        assert_eq!(ATTEMPTS.load(Ordering::SeqCst), 2);
        let answered = watched_by(watchdog, limit, async { 5 });
        assert_eq!(answered.await, Some(5));
    }

    async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
    }
}
