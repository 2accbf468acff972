//! The client cache ([`RedisStoreBuilder::client_cache`]) against a real
//! Redis: it saves the reads it promises to save, and a load still answers
//! the session as Redis holds it when the load begins, whoever changed it
//! and however: another process (through a connection that delivers
//! Redis's answers late), a command by hand, a flush, a lost connection, a
//! restarted server, a master that Sentinel demotes.
//!
//! [`RedisStoreBuilder::client_cache`]: session_redis::RedisStoreBuilder::client_cache

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use session_core::{SessionConfig, SessionManager};
use session_redis::RedisStore;
use session_testing::{RedisSentinel, RedisServer, Reply, info_fields, wait_for};

use common::{
    calls_where, command_calls, cookie_pair, integer, one_worker_runtime, peek,
    poll_once_then_shut_down, redis_key, visit,
};

async fn cached(url: &str) -> SessionManager {
    let store = RedisStore::builder()
        .client_cache(1_000)
        .connect(url)
        .await
        .expect("connect");
    SessionManager::new(store, SessionConfig::default())
}

async fn uncached(url: &str) -> SessionManager {
    let store = RedisStore::from_url(url).await.expect("connect");
    SessionManager::new(store, SessionConfig::default())
}

/// A new session holding `{"k": value}`: its cookie pair.
async fn session_with(manager: &SessionManager, value: &str) -> String {
    cookie_pair(
        &visit(manager, None, |session| {
            session.insert("k", value).expect("insert");
        })
        .await,
    )
}

/// What `k` holds in the session `cookie` loads, or `None` when it loads
/// a new session.
async fn k_seen(manager: &SessionManager, cookie: &str) -> Option<String> {
    let session = peek(manager, cookie).await;
    if session.is_new() {
        return None;
    }
    session.get("k").expect("a string")
}

async fn set_k(manager: &SessionManager, cookie: &str, value: &str) {
    visit(manager, Some(cookie), |session| {
        session.insert("k", value).expect("insert");
    })
    .await;
}

fn hgetalls(server: &RedisServer) -> u64 {
    calls_where(&command_calls(server), |name| name == "hgetall")
}

#[tokio::test]
async fn an_unchanged_session_is_read_from_redis_twice() {
    let server = RedisServer::start();
    let manager = cached(&server.url()).await;
    // Created here, then written here: each time, the next load reads it
    // on the store's connection, the one after on the cache's (tracked),
    // and the rest are answered from memory.
    let cookie = session_with(&manager, "v1").await;
    let before = hgetalls(&server);
    for _ in 0..5 {
        assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v1"));
    }
    assert_eq!(
        hgetalls(&server) - before,
        2,
        "two reads, three answered from memory"
    );
    set_k(&manager, &cookie, "v2").await;
    let before = hgetalls(&server);
    for _ in 0..4 {
        assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v2"));
    }
    assert_eq!(hgetalls(&server) - before, 2);

    // A session written on every request (each visit loads it and writes
    // it) is read untracked every time: Redis tracks nothing of it (but
    // the cache's epoch key), so its writes send no invalidation.
    for n in 0..5 {
        set_k(&manager, &cookie, &format!("w{n}")).await;
    }
    let tracked_keys: u64 = info_fields(&common::info(&server, "stats"))
        .find(|(name, _)| *name == "tracking_total_keys")
        .expect("tracking_total_keys")
        .1
        .parse()
        .expect("a number");
    assert!(tracked_keys <= 1, "{tracked_keys} keys tracked");
    assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("w4"));

    // Without the cache, every load reads.
    let plain = uncached(&server.url()).await;
    let before = hgetalls(&server);
    for _ in 0..3 {
        assert_eq!(k_seen(&plain, &cookie).await.as_deref(), Some("w4"));
    }
    assert_eq!(hgetalls(&server) - before, 3);
}

/// A write of a cached session that another process writes while the
/// request runs (here, in its handler): what the cache answers next has
/// both writes.
#[tokio::test]
async fn a_write_racing_another_process_s_write_loses_neither() {
    let server = RedisServer::start();
    let manager = cached(&server.url()).await;
    let cookie = session_with(&manager, "v0").await;
    for _ in 0..2 {
        assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v0"));
    }
    let key = redis_key(&cookie);
    for round in 0..3 {
        let theirs = format!("\"t{round}\"");
        visit(&manager, Some(&cookie), |session| {
            server
                .command(&["HSET", &key, "d:theirs", &theirs])
                .expect("HSET");
            session.insert("k", &format!("k{round}")).expect("insert");
        })
        .await;
        for _ in 0..2 {
            let session = peek(&manager, &cookie).await;
            assert_eq!(
                session.get::<String>("k").expect("k"),
                Some(format!("k{round}"))
            );
            assert_eq!(
                session.get::<String>("theirs").expect("theirs"),
                Some(format!("t{round}")),
                "round {round}: the other process's write is seen"
            );
        }
    }
}

/// A write of a cached session whose request is dropped after Redis
/// applied it but before its reply came back: the cache does not go on
/// answering what it held before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_dropped_before_its_reply_leaves_nothing_stale() {
    let (server, late, here, cookie) = cached_behind_late_proxy(Duration::ZERO).await;
    set_k(&here, &cookie, "a").await;
    for _ in 0..3 {
        assert_eq!(k_seen(&here, &cookie).await.as_deref(), Some("a"));
    }
    late.set_delay(Duration::from_millis(300));
    let key = redis_key(&cookie);
    let applied = async {
        loop {
            let stored = server.command(&["HGET", &key, "d:k"]).expect("HGET");
            if stored == Reply::Bulk(b"\"b\"".to_vec()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        () = set_k(&here, &cookie, "b") => panic!("answered before its reply could come"),
        () = applied => {}
    }
    late.set_delay(Duration::ZERO);
    for _ in 0..3 {
        assert_eq!(k_seen(&here, &cookie).await.as_deref(), Some("b"));
    }
}

/// A session this process writes and loads in turn, which another process
/// writes and logs out of too: each load sees the last write answered,
/// whichever process made it, with Redis's answers coming late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_written_here_and_elsewhere_stays_exact() {
    let (server, _late, here, cookie) = cached_behind_late_proxy(Duration::from_millis(20)).await;
    let there = uncached(&server.url()).await;
    for round in 0..5 {
        let mine = format!("here {round}");
        set_k(&here, &cookie, &mine).await;
        assert_eq!(k_seen(&here, &cookie).await, Some(mine.clone()));
        assert_eq!(k_seen(&here, &cookie).await, Some(mine), "round {round}");
        let theirs = format!("there {round}");
        set_k(&there, &cookie, &theirs).await;
        assert_eq!(
            k_seen(&here, &cookie).await,
            Some(theirs),
            "round {round}: the other process's write is seen"
        );
    }
    set_k(&here, &cookie, "last").await;
    visit(&there, Some(&cookie), |session| session.invalidate()).await;
    assert_eq!(k_seen(&here, &cookie).await, None, "the logout is final");
}

/// Many requests of one process write and load one session at once, each
/// its own key, through the cache: each load that begins after a write
/// was answered sees that write or a later one, however the writes and the
/// loads (cached, tracked or not) overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_here_never_go_back_to_an_older_value() {
    let (_server, _late, here, cookie) = cached_behind_late_proxy(Duration::from_millis(1)).await;
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let (here, cookie) = (Arc::clone(&here), cookie.clone());
            tokio::spawn(async move {
                let key = format!("w{writer}");
                for written in 1..=60_u32 {
                    visit(&here, Some(&cookie), |session| {
                        session.insert(&key, &written).expect("insert");
                    })
                    .await;
                    let seen: u32 = peek(&here, &cookie)
                        .await
                        .get(&key)
                        .expect("a number")
                        .expect("the key");
                    assert!(
                        seen >= written,
                        "{key}: wrote {written}, then loaded {seen}"
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("a writer");
    }
}

/// Another process writes and logs out, and the cached process hears of it
/// 100 ms late: each of its loads still sees the change at once, because
/// it waits for a barrier that comes back behind the invalidation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_s_changes_are_seen_at_once_even_when_redis_answers_late() {
    let server = RedisServer::start();
    let late = LateProxy::start(server.port(), Duration::from_millis(100));
    let here = cached(&late.url()).await;
    let there = uncached(&server.url()).await;
    for round in 0..5 {
        let cookie = session_with(&there, "before").await;
        assert_eq!(k_seen(&here, &cookie).await.as_deref(), Some("before"));
        assert_eq!(k_seen(&here, &cookie).await.as_deref(), Some("before"));
        set_k(&there, &cookie, "after").await;
        assert_eq!(
            k_seen(&here, &cookie).await.as_deref(),
            Some("after"),
            "round {round}: the write is seen"
        );
        visit(&there, Some(&cookie), |session| session.invalidate()).await;
        assert_eq!(
            k_seen(&here, &cookie).await,
            None,
            "round {round}: the logout is final"
        );
    }
}

/// Loads race writes: many tasks load one session over and over while
/// another process writes it; each load that begins after a write was
/// answered sees that write or a later one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_racing_writes_never_go_back_to_an_older_value() {
    let server = RedisServer::start();
    let late = LateProxy::start(server.port(), Duration::from_millis(2));
    let here = Arc::new(cached(&late.url()).await);
    let there = uncached(&server.url()).await;
    let cookie = session_with(&there, "0").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (here, cookie, stop) = (Arc::clone(&here), cookie.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    k_seen(&here, &cookie).await;
                }
            })
        })
        .collect();
    for written in 1..=200_u32 {
        set_k(&there, &cookie, &written.to_string()).await;
        let seen: u32 = k_seen(&here, &cookie)
            .await
            .expect("the session")
            .parse()
            .expect("a number");
        assert!(seen >= written, "wrote {written}, then loaded {seen}");
    }
    stop.store(true, Ordering::Relaxed);
    for racer in racers {
        racer.await.expect("a racer");
    }
}

fn barriers(server: &RedisServer) -> u64 {
    calls_where(&command_calls(server), |name| name == "client|trackinginfo")
}

/// A cached store whose commands time out after `timeout`.
async fn cached_within(url: &str, timeout: Duration) -> SessionManager {
    let store = RedisStore::builder()
        .client_cache(1_000)
        .command_timeout(timeout)
        .connect(url)
        .await
        .expect("connect");
    SessionManager::new(store, SessionConfig::default())
}

/// A new session holding `{"k": value}`, made through `there` and cached
/// by `here` (read tracked, then answered from memory): its cookie pair.
async fn cached_session(here: &SessionManager, there: &SessionManager, value: &str) -> String {
    let cookie = session_with(there, value).await;
    for _ in 0..2 {
        assert_eq!(k_seen(here, &cookie).await.as_deref(), Some(value));
    }
    cookie
}

/// A redis-server, a proxy that delivers its answers `delay` late, a
/// cached store through the proxy, and a session it has cached (made
/// through a store of its own, without the proxy): its cookie pair.
async fn cached_behind_late_proxy(
    delay: Duration,
) -> (RedisServer, LateProxy, Arc<SessionManager>, String) {
    let server = RedisServer::start();
    let late = LateProxy::start(server.port(), delay);
    let here = Arc::new(cached(&late.url()).await);
    let there = uncached(&server.url()).await;
    let cookie = cached_session(&here, &there, "v").await;
    (server, late, here, cookie)
}

/// Loads session `cookie` through `manager`: what `k` holds, or the
/// load's error.
async fn load_k(
    manager: &SessionManager,
    cookie: &str,
) -> Result<Option<String>, session_core::Error> {
    let session = manager.request().session([cookie.as_bytes()]).await?;
    Ok(session.get("k").expect("a string"))
}

/// Starts [`load_k`] on a task of its own.
fn start_load(
    manager: &Arc<SessionManager>,
    cookie: &str,
) -> tokio::task::JoinHandle<Result<Option<String>, session_core::Error>> {
    let (manager, cookie) = (Arc::clone(manager), cookie.to_owned());
    tokio::spawn(async move { load_k(&manager, &cookie).await })
}

/// Loads that begin while a barrier is on its way cannot use it (a write
/// answered after it was sent would be missed), and wait for the next one,
/// sent when it comes back: however many begin during one round trip, they
/// cost Redis one barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_that_begin_during_a_barrier_share_the_next_one() {
    let (server, _late, here, cookie) = cached_behind_late_proxy(Duration::from_millis(300)).await;
    let (barriers_before, hgetalls_before) = (barriers(&server), hgetalls(&server));
    let mut loads = Vec::new();
    for _ in 0..4 {
        loads.push(start_load(&here, &cookie));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for load in loads {
        let seen = load.await.expect("a load").expect("loaded");
        assert_eq!(seen.as_deref(), Some("v"));
    }
    assert_eq!(
        barriers(&server) - barriers_before,
        2,
        "one for the first load, one for the three that began while it was out"
    );
    assert_eq!(hgetalls(&server), hgetalls_before, "all from memory");
}

/// The next barrier goes out once the loads the last one released have
/// had their turn: a task answered from memory that begins another load
/// right away (a client's next request, on a busy server) joins it, with
/// the loads that began while the last one was out, instead of waiting for
/// one more.
#[tokio::test]
async fn loads_a_barrier_releases_can_join_the_next_one() {
    let (server, _late, here, cookie) = cached_behind_late_proxy(Duration::from_millis(300)).await;
    let (barriers_before, hgetalls_before) = (barriers(&server), hgetalls(&server));
    let one_after_another = {
        let (here, cookie) = (Arc::clone(&here), cookie.clone());
        tokio::spawn(async move {
            let first = load_k(&here, &cookie).await?;
            let second = load_k(&here, &cookie).await?;
            Ok::<_, session_core::Error>([first, second])
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let while_out = start_load(&here, &cookie);
    let seen = one_after_another.await.expect("loads").expect("loaded");
    assert_eq!(seen, [Some("v".to_owned()), Some("v".to_owned())]);
    let seen = while_out.await.expect("a load").expect("loaded");
    assert_eq!(seen.as_deref(), Some("v"));
    assert_eq!(
        barriers(&server) - barriers_before,
        2,
        "one for the first load; one for the load that began while it was out \
         and the load its task began when it was answered"
    );
    assert_eq!(hgetalls(&server), hgetalls_before, "all from memory");
}

/// A barrier that Redis is slow to answer holds back the next one for a
/// quarter of the command timeout at most: the loads that begin while it
/// is out are still answered, from memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_barrier_does_not_hold_back_the_next() {
    let server = RedisServer::start();
    // Quick to connect through, slow once the session is cached: a round
    // trip takes most of the 2 s timeout.
    let late = LateProxy::start(server.port(), Duration::ZERO);
    let here = Arc::new(cached_within(&late.url(), Duration::from_secs(2)).await);
    let there = uncached(&server.url()).await;
    let cookie = cached_session(&here, &there, "v").await;
    let round_trip = Duration::from_millis(1_500);
    late.set_delay(round_trip);
    let (barriers_before, hgetalls_before) = (barriers(&server), hgetalls(&server));
    let mut loads = Vec::new();
    for _ in 0..3 {
        let began = Instant::now();
        let load = start_load(&here, &cookie);
        loads.push(async move { (load.await, began.elapsed()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for load in loads {
        let (seen, took) = load.await;
        assert_eq!(seen.expect("a load").expect("loaded").as_deref(), Some("v"));
        // Held back half a second at most (a quarter of the timeout), where
        // waiting for the barrier out to come back could take 1.5 s.
        assert!(
            took < round_trip + Duration::from_millis(800),
            "a load took {took:?}"
        );
    }
    assert_eq!(barriers(&server) - barriers_before, 3, "one for each");
    assert_eq!(hgetalls(&server), hgetalls_before, "all from memory");
}

#[tokio::test]
async fn changes_by_hand_and_flushes_are_seen() {
    let server = RedisServer::start();
    let manager = cached(&server.url()).await;
    let cookie = session_with(&manager, "v1").await;
    assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v1"));
    server
        .command(&["HSET", &redis_key(&cookie), "d:k", "\"by hand\""])
        .expect("HSET");
    assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("by hand"));
    server.command(&["FLUSHALL"]).expect("FLUSHALL");
    assert_eq!(k_seen(&manager, &cookie).await, None);
}

/// A lost connection loses the invalidations Redis would have sent on it:
/// the cache starts again empty on the next one.
#[tokio::test]
async fn a_lost_connection_empties_the_cache() {
    let server = RedisServer::start();
    let manager = cached(&server.url()).await;
    for round in 0..3 {
        let cookie = session_with(&manager, "v1").await;
        assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v1"));
        server
            .command(&["CLIENT", "KILL", "TYPE", "normal"])
            .expect("CLIENT KILL");
        server
            .command(&["HSET", &redis_key(&cookie), "d:k", "\"while away\""])
            .expect("HSET");
        assert_eq!(
            k_seen(&manager, &cookie).await.as_deref(),
            Some("while away"),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn a_restarted_redis_is_not_answered_from_memory() {
    let mut server = RedisServer::start();
    let manager = cached(&server.url()).await;
    let cookie = session_with(&manager, "v1").await;
    assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v1"));
    // Without persistence: the session went with the process.
    server.restart();
    let mut seen = Err(());
    for _ in 0..100 {
        let request = manager.request();
        match request.session([cookie.as_bytes()]).await {
            Ok(session) => {
                seen = Ok(session.is_new());
                break;
            }
            // Reconnecting.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(seen, Ok(true), "the session is gone with the restart");
}

/// Behind Sentinel, a master taken for down while it is alive (frozen past
/// the sentinels' timeout) is demoted once it answers again, and the
/// server promoted meanwhile has what was written there since. Loads
/// through the cache afterwards see those writes and that logout: Sentinel
/// closes the demoted server's clients, the cache's connection among them,
/// and the cache starts again empty on the next connection.
/// How long the sentinels may take to fail over, or to demote a master
/// that is back.
const FAILOVER: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_master_that_sentinel_demotes_is_not_answered_from_memory() {
    let sentinel = RedisSentinel::start_with_replicas(2);
    let url = sentinel.url();
    let cache = cached(&url).await;
    let before = uncached(&url).await;
    let kept = session_with(&before, "v1").await;
    let logged_out = session_with(&before, "v1").await;
    let old_port = sentinel.current_master_port();
    let old = server_on(&sentinel, old_port).expect("the master is one of the servers");
    assert_eq!(
        old.command(&["WAIT", "2", "5000"]).expect("WAIT"),
        Reply::Integer(2),
        "both replicas have the sessions"
    );
    for cookie in [&kept, &logged_out] {
        // Read and kept, then answered from memory.
        for _ in 0..2 {
            assert_eq!(k_seen(&cache, cookie).await.as_deref(), Some("v1"));
        }
    }

    old.pause();
    let new_port = tokio::task::block_in_place(|| {
        wait_for("another master", FAILOVER, || {
            let port = sentinel.current_master_port();
            let role = server_on(&sentinel, port).and_then(RedisServer::role);
            if port != old_port && role.as_deref() == Some("master") {
                Ok(port)
            } else {
                Err(format!(
                    "the sentinels report {port}, whose role is {role:?}"
                ))
            }
        })
    })
    .expect("a failover");
    // A process that connects now finds the new master (the sentinels,
    // busy with the failover, may take a while to answer it).
    let after = until_ok("connecting after the failover", async || {
        RedisStore::from_url(&url).await
    })
    .await;
    let after = SessionManager::new(after, SessionConfig::default());
    until_ok("a write on the new master", async || {
        let request = after.request();
        request
            .session([kept.as_bytes()])
            .await?
            .insert("k", "v2")?;
        request.save_changes().await.map(drop)
    })
    .await;
    until_ok("a logout on the new master", async || {
        let request = after.request();
        request.session([logged_out.as_bytes()]).await?.invalidate();
        request.save_changes().await.map(drop)
    })
    .await;
    let new = server_on(&sentinel, new_port).expect("the new master is one of the servers");
    assert_eq!(
        integer(new.command(&["EXISTS", &redis_key(&logged_out)])),
        0,
        "logged out on the new master"
    );

    old.resume();
    tokio::task::block_in_place(|| {
        wait_for("the old master demoted", FAILOVER, || match old.role() {
            Some(role) if role == "slave" => Ok(()),
            role => Err(format!("its role is {role:?}")),
        })
    })
    .expect("a demotion");
    let seen = until_ok("a load through the cache", async || {
        let kept = cache.request().session([kept.as_bytes()]).await?;
        let logged_out = cache.request().session([logged_out.as_bytes()]).await?;
        Ok((kept.get::<String>("k")?, logged_out.is_new()))
    })
    .await;
    assert_eq!(seen, (Some("v2".to_owned()), true));
}

/// The server of `sentinel`'s deployment listening on `port`.
fn server_on(sentinel: &RedisSentinel, port: u16) -> Option<&RedisServer> {
    sentinel
        .servers()
        .iter()
        .find(|server| server.port() == port)
}

/// What `attempt` gives once it succeeds, trying for at most 30 s: after a
/// failover, a client reconnects in its own time.
async fn until_ok<T>(
    what: &str,
    mut attempt: impl AsyncFnMut() -> Result<T, session_core::Error>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                eprintln!("{what}, not yet: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{what}: {error}"),
        }
    }
}

/// When the cache's connection may not track (here an ACL forbids the
/// `CLIENT` commands), loads go to the store's own connection, every time.
#[tokio::test]
async fn a_cache_that_cannot_track_reads_through_the_store() {
    let server = RedisServer::start();
    server
        .command(&[
            "ACL", "SETUSER", "app", "on", ">pw", "~*", "+@all", "-client",
        ])
        .expect("ACL SETUSER");
    let url = format!("redis://app:pw@127.0.0.1:{}", server.port());
    let manager = cached(&url).await;
    let cookie = session_with(&manager, "v1").await;
    let before = hgetalls(&server);
    for _ in 0..3 {
        assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v1"));
    }
    assert_eq!(hgetalls(&server) - before, 3);
    set_k(&manager, &cookie, "v2").await;
    assert_eq!(k_seen(&manager, &cookie).await.as_deref(), Some("v2"));
}

/// A TCP proxy that hands the client what the server sends `delay` late
/// (and what the client sends at once), as a congested link would.
struct LateProxy {
    port: u16,
    /// The delay, in milliseconds: it can change while connections are open.
    delay: Arc<AtomicU64>,
}

impl LateProxy {
    fn start(upstream: u16, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let proxy = LateProxy {
            port,
            delay: Arc::new(AtomicU64::new(0)),
        };
        proxy.set_delay(delay);
        let delay = Arc::clone(&proxy.delay);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = relay(client, server, Arc::clone(&delay));
            }
        });
        proxy
    }

    /// Hands on what the server sends from now on `delay` late.
    fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay.store(millis, Ordering::Relaxed);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

fn relay(client: TcpStream, server: TcpStream, delay: Arc<AtomicU64>) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    // What the server sent, with when it is due at the client.
    let (arrivals, late) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut server_in = server;
    thread::spawn(move || {
        let mut buffer = [0_u8; 16 * 1024];
        loop {
            match server_in.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let delay = Duration::from_millis(delay.load(Ordering::Relaxed));
                    if arrivals
                        .send((Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    let mut client_out = client;
    thread::spawn(move || {
        for (due, bytes) in late {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if client_out.write_all(&bytes).is_err() {
                return;
            }
        }
        let _ = client_out.shutdown(Shutdown::Write);
    });
    Ok(())
}

/// One cached store used from several runtimes (a `static` shared by a
/// test suite's tests, say): a runtime that shuts down with a load waiting
/// for a barrier, before the task that would send it first ran, leaves the
/// store loading for the others.
#[test]
fn a_runtime_that_shut_down_with_a_load_at_a_barrier_leaves_the_cache_serving() {
    let server = RedisServer::start();
    let main = one_worker_runtime();
    let (manager, cookie) = main.block_on(async {
        let manager = cached(&server.url()).await;
        let there = uncached(&server.url()).await;
        // Cached: its next load is answered from memory, after a barrier.
        let cookie = cached_session(&manager, &there, "v1").await;
        (manager, cookie)
    });

    // One poll opens a barrier and spawns the task that would send it,
    // which that runtime never runs.
    let request = manager.request();
    poll_once_then_shut_down(|| request.session([cookie.as_bytes()]));

    let seen = main.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), k_seen(&manager, &cookie)).await
    });
    assert_eq!(seen.expect("loaded in time").as_deref(), Some("v1"));
}
