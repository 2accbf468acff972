//! Redis going away: requests fail with a store error within the command
//! timeout, recover when it comes back, and follow a sentinel failover.

mod common;

use std::time::{Duration, Instant};

use session_core::{Error, SessionConfig, SessionManager, SessionStore};
use session_redis::RedisStore;
use session_testing::{RedisSentinel, RedisServer, Reply};

use common::{Stopped, cookie_pair, one_worker_runtime, peek, poll_once_then_shut_down, visit};

const TIMEOUT: Duration = Duration::from_secs(2);

/// How much later than the timeout a failure may arrive: scheduling slack
/// on a loaded machine, not a performance target.
const SLACK: Duration = Duration::from_secs(3);

fn assert_store_error<T: std::fmt::Debug>(result: Result<T, Error>, started: Instant, what: &str) {
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(Error::Store(_))), "{what}: {result:?}");
    assert!(elapsed <= TIMEOUT + SLACK, "{what} took {elapsed:?}");
}

/// A store on the Redis at `url` with command timeout `timeout`, and the
/// cookie of a session in it that holds `user = "ada"`.
async fn a_session_on(url: &str, timeout: Duration) -> (SessionManager, String) {
    a_session_through(RedisStore::builder(), url, timeout).await
}

/// [`a_session_on`], with the store `builder` makes.
async fn a_session_through(
    builder: session_redis::RedisStoreBuilder,
    url: &str,
    timeout: Duration,
) -> (SessionManager, String) {
    let store = builder
        .command_timeout(timeout)
        .connect(url)
        .await
        .expect("connect");
    let manager = SessionManager::new(store, SessionConfig::default());
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    (manager, pair)
}

/// A request that writes to a new session (which loads without Redis)
/// fails to save with a store error within the timeout.
async fn assert_a_new_session_fails_to_save(manager: &SessionManager, what: &str) {
    let started = Instant::now();
    let request = manager.request();
    request
        .session([])
        .await
        .expect("a new session needs no Redis")
        .insert("k", &1)
        .expect("insert");
    assert_store_error(request.save_changes().await, started, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_fails_requests_in_time_and_a_restarted_one_serves_them_again() {
    let mut server = RedisServer::builder().persistence(true).start();
    let (manager, pair) = a_session_on(&server.url(), TIMEOUT).await;

    server.kill();
    for attempt in 0..3 {
        let started = Instant::now();
        let loaded = manager.request().session([pair.as_bytes()]).await;
        assert_store_error(loaded, started, &format!("load #{attempt}"));
    }
    assert_a_new_session_fails_to_save(&manager, "save").await;

    server.restart();
    let session = peek(&manager, &pair).await;
    assert_eq!(
        session.get::<String>("user").expect("get").as_deref(),
        Some("ada")
    );
    let set = visit(&manager, Some(&pair), |s| {
        s.insert("after", &true).expect("insert")
    })
    .await;
    // Saved under the same id: the client's cookie stays as it is.
    assert!(set.is_empty(), "{set:?}");
    assert_eq!(
        peek(&manager, &pair)
            .await
            .get::<bool>("after")
            .expect("get"),
        Some(true)
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails_with_a_store_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let result = RedisStore::builder()
        .command_timeout(TIMEOUT)
        .connect(&format!("redis://127.0.0.1:{port}"))
        .await;
    assert_store_error(result, started, "connect");
    assert!(matches!(
        RedisStore::from_url("not a url").await,
        Err(Error::Store(_))
    ));
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn tls_urls_need_the_tls_feature() {
    let error = RedisStore::from_url("rediss://127.0.0.1:6380")
        .await
        .expect_err("no TLS");
    assert!(error.to_string().contains("`tls` feature"), "{error}");
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn tls_urls_build_a_tls_client() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // Nothing listens there: the connection fails, after the TLS
    // configuration (provider, root certificates) was built without panicking.
    let error = RedisStore::from_url(&format!("rediss://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, Error::Store(_)), "{error}");
    assert!(!error.to_string().contains("`tls` feature"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover() {
    let mut sentinel = RedisSentinel::start();
    let (manager, pair) = a_session_on(&sentinel.url(), TIMEOUT).await;
    assert_eq!(
        sentinel
            .master()
            .command(&["WAIT", "1", "5000"])
            .expect("WAIT"),
        Reply::Integer(1),
        "replicated before the kill"
    );

    sentinel.kill_master();
    let promoted =
        tokio::task::block_in_place(|| sentinel.wait_for_failover(Duration::from_secs(60)));

    // The client notices the dead master, asks the sentinels, and reconnects:
    // give it a bounded number of tries.
    let deadline = Instant::now() + Duration::from_secs(30);
    let session = loop {
        match manager.request().session([pair.as_bytes()]).await {
            Ok(session) => break session,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the store did not follow the failover: {e}"),
        }
    };
    assert_eq!(
        session.get::<String>("user").expect("get").as_deref(),
        Some("ada")
    );
    let set = visit(&manager, Some(&pair), |s| {
        s.insert("after", &1).expect("insert")
    })
    .await;
    assert!(set.is_empty(), "the id stays: {set:?}");
    let key = common::redis_key(&pair);
    let on_new_master = sentinel
        .replica()
        .command(&["HGET", &key, "d:after"])
        .expect("HGET");
    assert_eq!(on_new_master.text().as_deref(), Some("1"));
    assert_eq!(sentinel.current_master_port(), promoted);
}

#[test]
fn a_lazy_connection_outside_a_runtime_is_an_error_not_a_panic() {
    let result = RedisStore::builder().connect_lazy("redis://127.0.0.1:6379");
    assert!(matches!(result, Err(Error::Store(_))), "{result:?}");
}

#[tokio::test]
async fn a_lazy_connection_to_a_bad_url_is_an_error() {
    for url in ["", "not a url", "redis://127.0.0.1:notaport"] {
        let result = RedisStore::builder().connect_lazy(url);
        assert!(matches!(result, Err(Error::Store(_))), "{url}: {result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_connection_to_a_redis_that_is_not_up_yet_fails_in_time_then_serves() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let store = RedisStore::builder()
        .command_timeout(TIMEOUT)
        .connect_lazy(&url)
        .expect("no I/O yet");
    let manager = SessionManager::new(store, SessionConfig::default());

    assert_a_new_session_fails_to_save(&manager, "save before Redis is up").await;

    server.restart();
    // The reconnect backoff (at most a second) is well within the timeout.
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    assert_eq!(
        peek(&manager, &pair)
            .await
            .get::<String>("user")
            .expect("get")
            .as_deref(),
        Some("ada")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_fails_loads_and_saves_in_time() {
    let server = RedisServer::start();
    let (manager, pair) = a_session_on(&server.url(), TIMEOUT).await;
    // The connection stays open; Redis just never answers.
    let stopped = Stopped::new(&server);
    let started = Instant::now();
    let loaded = manager.request().session([pair.as_bytes()]).await;
    assert_store_error(loaded, started, "load from a stopped Redis");
    assert_a_new_session_fails_to_save(&manager, "save to a stopped Redis").await;

    drop(stopped);
    let session = peek(&manager, &pair).await;
    assert_eq!(
        session.get::<String>("user").expect("get").as_deref(),
        Some("ada")
    );
}

/// With the client cache, a load of a cached session waits for a barrier
/// on the cache's connection: when Redis stops answering, the load still
/// fails within the command timeout (it does not then read elsewhere for
/// as long again), one that began while that barrier was out within a
/// quarter more (the barrier out holds back the next that long), and loads
/// work again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_fails_cached_loads_in_time() {
    // Long enough that twice the timeout is past the slack.
    const LONG: Duration = Duration::from_secs(5);
    let server = RedisServer::start();
    let builder = RedisStore::builder().client_cache(100);
    let (manager, pair) = a_session_through(builder, &server.url(), LONG).await;
    // Created here: read once untracked, once tracked, then cached.
    for _ in 0..2 {
        peek(&manager, &pair).await;
    }
    let hgetalls = || common::calls_where(&common::command_calls(&server), |c| c == "hgetall");
    let before = hgetalls();
    peek(&manager, &pair).await;
    assert_eq!(hgetalls(), before, "answered from the cache");
    let stopped = Stopped::new(&server);
    let load = |delay: Duration| {
        let (manager, pair) = (manager.clone(), pair.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let started = Instant::now();
            let loaded = manager.request().session([pair.as_bytes()]).await;
            (loaded.map(|_| ()), started.elapsed())
        })
    };
    let (first, second) = (load(Duration::ZERO), load(Duration::from_millis(200)));
    let (loaded, elapsed) = first.await.expect("the first load");
    assert!(matches!(loaded, Err(Error::Store(_))), "{loaded:?}");
    assert!(elapsed <= LONG + SLACK, "a cached load took {elapsed:?}");
    let (loaded, elapsed) = second.await.expect("the second load");
    assert!(matches!(loaded, Err(Error::Store(_))), "{loaded:?}");
    assert!(
        elapsed <= LONG + LONG / 4 + SLACK,
        "a cached load that began during a barrier took {elapsed:?}"
    );

    drop(stopped);
    let session = peek(&manager, &pair).await;
    assert_eq!(
        session.get::<String>("user").expect("get").as_deref(),
        Some("ada")
    );
}

#[tokio::test]
async fn a_zero_or_huge_command_timeout_is_no_limit() {
    let server = RedisServer::start();
    for timeout in [Duration::ZERO, Duration::MAX] {
        let (manager, pair) = a_session_on(&server.url(), timeout).await;
        // A load, and a save that must first send its script again.
        assert_eq!(
            server.command(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH"),
            Reply::Status("OK".into())
        );
        visit(&manager, Some(&pair), |s| {
            s.insert("k", &1).expect("insert")
        })
        .await;
        let session = peek(&manager, &pair).await;
        assert_eq!(
            session.get::<i32>("k").expect("get"),
            Some(1),
            "{timeout:?}"
        );
    }
}

/// Saves wait in a queue that a task on the saving request's runtime sends.
/// When that runtime shuts down while the task waits for Redis, the store
/// must not be left thinking a task still sends: later saves, from another
/// runtime, go through.
#[test]
fn a_runtime_that_shuts_down_during_a_save_leaves_the_store_working() {
    let server = RedisServer::start();
    // Drives fred's connection throughout.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (manager, pair) = runtime.block_on(a_session_on(&server.url(), TIMEOUT));

    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = manager.request();
    doomed.block_on(async {
        let session = request.session([pair.as_bytes()]).await.expect("load");
        session.insert("lost", &1).expect("insert");
    });
    let stopped = Stopped::new(&server);
    doomed.spawn(request.save_changes());
    // The save is queued and its task waits for the stopped Redis...
    doomed.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    // ... when its runtime goes, and the task with it.
    drop(doomed);
    drop(stopped);

    runtime.block_on(async {
        tokio::time::timeout(
            TIMEOUT + SLACK,
            visit(&manager, Some(&pair), |s| {
                s.insert("after", &1).expect("insert")
            }),
        )
        .await
        .expect("a save after the shutdown goes through");
        let session = peek(&manager, &pair).await;
        assert_eq!(session.get::<i32>("after").expect("get"), Some(1));
    });
}

/// While Redis is unreachable, fred queues commands for when it is back:
/// the store bounds that queue, and an operation past the bound fails at
/// once with a store error instead of waiting (and holding memory) for as
/// long as the outage lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_the_queue_is_bounded_and_the_overflow_fails_at_once() {
    let mut server = RedisServer::start();
    let long = Duration::from_secs(60);
    let (manager, pair) = a_session_on(&server.url(), long).await;
    server.kill();
    // Until fred notices the loss, a command may go to the dead socket.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let overflow = 300;
    let started = Instant::now();
    let loads: Vec<_> = (0..session_redis::MAX_QUEUED_COMMANDS + overflow)
        .map(|_| {
            let manager = manager.clone();
            let pair = pair.clone();
            tokio::spawn(async move {
                let result = manager.request().session([pair.as_bytes()]).await;
                (result.is_err(), started.elapsed())
            })
        })
        .collect();
    // Well within the command timeout, the loads past the bound have
    // failed, and the others wait for Redis.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (finished, waiting): (Vec<_>, Vec<_>) = loads
        .into_iter()
        .partition(tokio::task::JoinHandle::is_finished);
    for load in &waiting {
        load.abort();
    }
    let mut failed_early = 0;
    for load in finished {
        let (failed, elapsed) = load.await.expect("no panic");
        assert!(failed, "a load succeeded against a dead Redis");
        assert!(elapsed < long, "{elapsed:?}");
        failed_early += 1;
    }
    assert!(
        failed_early >= overflow,
        "only {failed_early} of the loads failed at once ({} waiting)",
        waiting.len()
    );
    assert!(
        waiting.len() <= session_redis::MAX_QUEUED_COMMANDS,
        "{} loads waited: more than the bound",
        waiting.len()
    );
}

/// A write that failed, timed out while Redis was down, is not done once
/// Redis is back: fred drops a command that timed out before it was sent,
/// but not a pipeline, so no write is sent as one. The write here adds a
/// key to a session within the rolling throttle: the `HSET` of the new
/// field and the `HEXISTS` of the metadata that tells a logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_write_that_timed_out_while_redis_was_down_is_not_done_when_it_is_back() {
    let mut server = RedisServer::builder().persistence(true).start();
    let (manager, pair) = a_session_on(&server.url(), TIMEOUT).await;
    let late = manager.request();
    let session = late.session([pair.as_bytes()]).await.expect("load");
    session.insert("cart", &["late"]).expect("insert");

    server.kill();
    // Time for fred to see its connection close and hold what it is given.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    assert_store_error(late.save_changes().await, started, "save while down");

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while manager.request().session([pair.as_bytes()]).await.is_err() {
        assert!(Instant::now() < deadline, "Redis never answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A while longer, for whatever fred still held to be sent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let session = peek(&manager, &pair).await;
    assert_eq!(
        session.get::<String>("user").expect("get").as_deref(),
        Some("ada")
    );
    assert_eq!(
        session.get_value("cart"),
        None,
        "the write answered as failed was done after all"
    );
}

/// One store used from several runtimes (a `static` shared by a test
/// suite's tests, say): a runtime that shuts down with a save of the store
/// queued, before the task that would send it first ran, leaves the store
/// saving for the others.
#[test]
fn a_runtime_that_shut_down_with_a_save_queued_leaves_the_store_saving() {
    let server = RedisServer::start();
    let main = one_worker_runtime();
    let store = main
        .block_on(
            RedisStore::builder()
                .command_timeout(TIMEOUT)
                .connect(&server.url()),
        )
        .expect("connect");
    let now = std::time::SystemTime::now();
    let mut record = session_core::Record::new(now);
    record.expires_at = Some(now + Duration::from_secs(60));
    record.data.insert("k".into(), 1.into());
    let record = std::sync::Arc::new(record);
    let create = || session_core::Create::new("session", &record, now);

    // One poll queues the save and spawns the task that would send it,
    // which that runtime never runs.
    poll_once_then_shut_down(|| store.create(create()));

    let created = main.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), store.create(create())).await
    });
    assert!(matches!(created, Ok(Ok(_))), "{created:?}");
}
