//! `Durability::Replicas`: a write is answered only once replicas have it,
//! and fails (never a silent success) when they do not acknowledge it.

mod common;

use std::time::{Duration, Instant};

use session_core::{Error, RequestSession, SessionConfig, SessionManager};
use session_redis::{Durability, RedisLayout, RedisStore};
use session_testing::{AnswerLosingProxy, RedisCluster, RedisServer, Reply};

use common::{cookie_pair, cookie_value, peek, redis_key, visit};

const WAIT: Duration = Duration::from_millis(1000);

fn durable(count: u32) -> Durability {
    Durability::Replicas {
        count,
        timeout: WAIT,
    }
}

/// A manager on the Redis at `url` whose writes wait for `replicas`.
async fn durable_manager(url: &str, replicas: u32) -> SessionManager {
    durable_manager_in(url, replicas, RedisLayout::Hash).await
}

/// [`durable_manager`], with its sessions in `layout`.
async fn durable_manager_in(url: &str, replicas: u32, layout: RedisLayout) -> SessionManager {
    let store = RedisStore::builder()
        .layout(layout)
        .durability(durable(replicas))
        .connect(url)
        .await
        .expect("connect");
    SessionManager::new(store, SessionConfig::default())
}

/// A login (a regenerate) of the session behind the cookie `pair`: its
/// `Set-Cookie` values, or the save's error.
async fn log_in_on(manager: &SessionManager, pair: &str) -> Result<Vec<String>, Error> {
    a_login(manager, pair).await.save_changes().await
}

/// A request that loaded the session behind `pair` and regenerated it, not
/// saved yet.
async fn a_login(manager: &SessionManager, pair: &str) -> RequestSession {
    let request = manager.request();
    request
        .session([pair.as_bytes()])
        .await
        .expect("load")
        .regenerate();
    request
}

/// A new session of `manager`, saved with `k` = 1 (its cookie pair), and a
/// request that loaded it and set `k` to 2, not saved yet.
async fn an_unsaved_update(manager: &SessionManager) -> (String, RequestSession) {
    let pair = cookie_pair(&visit(manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let request = manager.request();
    request
        .session([pair.as_bytes()])
        .await
        .expect("load")
        .insert("k", &2)
        .expect("insert");
    (pair, request)
}

/// A master and one replica of it, in sync.
fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let replica = RedisServer::builder().replica_of(master.port()).start();
    replica.wait_for_sync(Duration::from_secs(20));
    (master, replica)
}

fn exists(server: &RedisServer, key: &str) -> bool {
    server.command(&["EXISTS", key]).expect("EXISTS") == Reply::Integer(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_and_a_logout_are_on_the_replica_when_they_are_answered() {
    let (master, replica) = master_and_replica();
    let manager = durable_manager(&master.url(), 1).await;
    // Concurrent requests, so that saves also go in batches (one WAIT
    // after each batch).
    let mut requests = Vec::new();
    for i in 0..32 {
        let manager = manager.clone();
        requests.push(tokio::spawn(async move {
            let set = visit(&manager, None, |s| s.insert("n", &i).expect("insert")).await;
            cookie_pair(&set)
        }));
    }
    let mut pairs = Vec::new();
    for request in requests {
        let pair = request.await.expect("request");
        // Answered: the replica has it, without waiting any longer.
        assert!(exists(&replica, &redis_key(&pair)), "not on the replica");
        pairs.push(pair);
    }
    let updated = visit(&manager, Some(&pairs[0]), |s| {
        s.insert("m", &2).expect("insert");
    })
    .await;
    assert!(updated.is_empty(), "{updated:?}");
    let fields = replica
        .command(&["HGET", &redis_key(&pairs[0]), "d:m"])
        .expect("HGET");
    assert_eq!(fields, Reply::Bulk(b"2".to_vec()));
    // A logout answered is a logout on the replica too.
    visit(&manager, Some(&pairs[1]), |s| s.invalidate()).await;
    assert!(
        !exists(&replica, &redis_key(&pairs[1])),
        "still on the replica"
    );
    // Login (regenerate): the new key is there, the old one gone.
    let moved = cookie_pair(&visit(&manager, Some(&pairs[2]), |s| s.regenerate()).await);
    assert!(exists(&replica, &redis_key(&moved)));
    assert!(!exists(&replica, &redis_key(&pairs[2])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aiohttp_layout_waits_for_the_replica_too() {
    let (master, replica) = master_and_replica();
    let aiohttp = RedisLayout::Aiohttp { max_age: None };
    let manager = durable_manager_in(&master.url(), 1, aiohttp).await;
    let pair =
        cookie_pair(&visit(&manager, None, |s| s.insert("user", "ada").expect("insert")).await);
    let key = format!("session_{}", cookie_value(&pair));
    assert!(exists(&replica, &key), "{key} is not on the replica");
    visit(&manager, Some(&pair), |s| {
        s.insert("k", &1).expect("insert")
    })
    .await;
    visit(&manager, Some(&pair), |s| s.invalidate()).await;
    assert!(!exists(&replica, &key));
}

/// How long past the WAIT's limit a failure may come: scheduling slack.
const SLACK: Duration = Duration::from_secs(3);

/// A master without the store's scripts (as one just promoted is: Redis
/// does not replicate its script cache) refuses the first call, whose
/// `WAIT` still waits out its limit when no replica answers; the script
/// goes again whole with the whole command timeout, so that its own
/// `WAIT` gets the limit the store was given, not what the refused call
/// left (it had 900 of the 1,000 ms, and a login's delete could run and
/// answer too late to be told).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sent_again_after_noscript_waits_as_long_as_the_first() {
    let (master, replica) = master_and_replica();
    let manager = durable_manager(&master.url(), 1).await;
    let (_, request) = an_unsaved_update(&manager).await;
    // A write that also removes a key goes through a script (one that
    // only sets keys is an HSET).
    let session = request.session([]).await.expect("the loaded session");
    session.remove("k");
    session.insert("j", &2).expect("insert");
    replica.pause();
    assert_eq!(
        master.command(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH"),
        Reply::Status("OK".into())
    );
    let started = Instant::now();
    let result = request.save_changes().await;
    let elapsed = started.elapsed();
    replica.resume();
    match result {
        Err(Error::Store(message)) => {
            let full_wait = format!(
                "0 of the 1 replicas required within {} ms",
                WAIT.as_millis()
            );
            assert!(message.to_string().contains(&full_wait), "{message}");
        }
        other => panic!("a save that no replica acknowledged: {other:?}"),
    }
    assert!(
        elapsed >= 2 * WAIT && elapsed < 2 * WAIT + SLACK,
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enough_replicas_a_save_fails_and_is_never_answered_as_done() {
    let (master, mut replica) = master_and_replica();
    let manager = durable_manager(&master.url(), 2).await;
    let started = Instant::now();
    let request = manager.request();
    request
        .session([])
        .await
        .expect("a new session")
        .insert("k", &1)
        .expect("insert");
    let result = request.save_changes().await;
    let elapsed = started.elapsed();
    match result {
        Err(Error::Store(message)) => {
            assert!(
                message.to_string().contains("1 of the 2 replicas"),
                "{message}"
            );
        }
        other => panic!("a save that reached 1 of 2 replicas: {other:?}"),
    }
    assert!(elapsed >= WAIT && elapsed < WAIT + SLACK, "{elapsed:?}");

    // One replica asked for, and it is down: loads still work, writes fail.
    let manager = durable_manager(&master.url(), 1).await;
    let (pair, request) = an_unsaved_update(&manager).await;
    replica.kill();
    let session = peek(&manager, &pair).await;
    assert_eq!(session.get::<i32>("k").expect("get"), Some(1));
    assert!(matches!(request.save_changes().await, Err(Error::Store(_))));
    // A login that its replica did not acknowledge fails, and leaves the
    // session where the client's cookie (the old one, kept on a 500)
    // finds it: it is not moved to an id the client never got.
    assert!(matches!(
        log_in_on(&manager, &pair).await,
        Err(Error::Store(_))
    ));
    let session = peek(&manager, &pair).await;
    assert!(!session.is_new(), "the failed login moved the session away");
    assert!(session.get::<i32>("k").expect("get").is_some());
    // Back in sync, writes are answered again.
    replica.restart();
    replica.wait_for_sync(Duration::from_secs(20));
    visit(&manager, Some(&pair), |s| {
        s.insert("k", &3).expect("insert")
    })
    .await;
    assert!(exists(&replica, &redis_key(&pair)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_wait_goes_to_the_master_that_took_the_write() {
    let cluster = RedisCluster::builder().replicas(1).start();
    // Each master has one replica: one acknowledgement is there to have,
    // two are not, wherever the key lives.
    let manager = durable_manager(&cluster.url(), 1).await;
    let mut pairs = Vec::new();
    for i in 0..12 {
        pairs.push(cookie_pair(
            &visit(&manager, None, |s| s.insert("n", &i).expect("insert")).await,
        ));
    }
    for (i, pair) in pairs.iter().enumerate() {
        let session = peek(&manager, pair).await;
        assert_eq!(session.get::<usize>("n").expect("get"), Some(i));
    }
    visit(&manager, Some(&pairs[0]), |s| s.regenerate()).await;
    visit(&manager, Some(&pairs[1]), |s| s.invalidate()).await;
    // Every script call went straight to the node owning its key: no
    // node answered MOVED (a WAIT behind a redirected write would fail).
    for stats in cluster.command_all(&["INFO", "errorstats"]).expect("INFO") {
        let stats = stats.text().expect("text");
        assert!(!stats.contains("errorstat_MOVED"), "{stats}");
    }

    let manager = durable_manager(&cluster.url(), 2).await;
    let request = manager.request();
    request
        .session([])
        .await
        .expect("a new session")
        .insert("k", &1)
        .expect("insert");
    assert!(matches!(request.save_changes().await, Err(Error::Store(_))));
}

/// On a cluster a login creates the new id, then deletes the old one, on
/// another slot. When the old session's shard has no replica to
/// acknowledge the delete (here its replica is frozen; in production, a
/// master just promoted, which a soak caught), the delete is still done on
/// the master, so the login answers its new cookie: it answered a 500,
/// which left the client the cookie of a deleted session and the session
/// under an id it never got. A login whose create falls short instead
/// fails whole, and leaves the session where the old cookie finds it. In
/// both layouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_old_session_is_deleted_answers_even_if_the_delete_is_not_acknowledged() {
    let cluster = RedisCluster::builder().replicas(1).start();
    let hash = durable_manager(&cluster.url(), 1).await;
    log_in_while_the_old_sessions_replica_is_frozen(&cluster, &hash, redis_key).await;
    let layout = RedisLayout::Aiohttp { max_age: None };
    let aiohttp = durable_manager_in(&cluster.url(), 1, layout).await;
    log_in_while_the_old_sessions_replica_is_frozen(&cluster, &aiohttp, |pair| {
        format!("session_{}", cookie_value(pair))
    })
    .await;
}

/// Logs in fresh sessions of `manager`, whose keys `key_of` a cookie pair
/// names, each with the replica of its shard frozen, until a login's new
/// id lands on another shard; checks what each login left.
async fn log_in_while_the_old_sessions_replica_is_frozen(
    cluster: &RedisCluster,
    manager: &SessionManager,
    key_of: impl Fn(&str) -> String,
) {
    // The new id lands on a slot at random: a third of the time on the
    // frozen shard, where the create falls short and the login fails whole.
    for _ in 0..20 {
        let pair = cookie_pair(&visit(manager, None, |s| s.insert("k", &1).expect("insert")).await);
        let replica = replica_of_the_master_of(cluster, &key_of(&pair));
        replica.pause();
        let saved = log_in_on(manager, &pair).await;
        replica.resume();
        replica.wait_for_sync(Duration::from_secs(20));
        match saved {
            Ok(set_cookies) => {
                let new_pair = cookie_pair(&set_cookies);
                assert_ne!(new_pair, pair);
                assert!(peek(manager, &pair).await.is_new(), "the old id is gone");
                let session = peek(manager, &new_pair).await;
                assert_eq!(session.get::<i32>("k").expect("get"), Some(1));
                return;
            }
            // A login whose create fell short, or whose delete got no
            // reply in time, fails; the old session must then be there.
            // (No reply used to come when the master did not have the
            // delete script yet: the refused call's WAIT, on the frozen
            // replica, used up most of the store's timeout, and the retry
            // had too little; it now has a limit of its own.)
            Err(error) => {
                let session = peek(manager, &pair).await;
                assert!(
                    !session.is_new(),
                    "a failed login ({error}) left the old cookie a deleted session"
                );
                assert_eq!(session.get::<i32>("k").expect("get"), Some(1));
            }
        }
    }
    panic!("no login's new id landed on another shard than the frozen one");
}

/// A login moves the session with two writes where one script cannot
/// (here durability; on a cluster, the two keys' slots): a create under
/// the new id, then a delete of the old. When the delete runs but its
/// answer is lost (a master that dies right after replicating it, a
/// connection that closes), the login sends it again, and must tell its
/// own delete from a logout's: the old key is gone either way. Answering
/// "gone" (or an error) would leave the client the old cookie of a deleted
/// session, and the session under an id it never got. The first delete
/// leaves a mark of the new id, which the second finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_whose_delete_answer_is_lost_still_moves_the_session() {
    for layout in LAYOUTS {
        let (master, _replica) = master_and_replica();
        let manager = |url: String| async move { durable_manager_in(&url, 1, layout).await };
        lose_a_logins_answer(&master, layout, manager).await;
    }
}

/// The same on one server without durability, where a login is one
/// script (a rename and the mark): sent again after its answer was lost,
/// it finds its mark and answers the new cookie, where it would otherwise
/// have found the old session gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_script_login_whose_answer_is_lost_still_moves_the_session() {
    for layout in LAYOUTS {
        let master = RedisServer::start();
        let manager = |url: String| async move {
            let store = RedisStore::builder()
                .layout(layout)
                .connect(&url)
                .await
                .expect("connect");
            SessionManager::new(store, SessionConfig::default())
        };
        lose_a_logins_answer(&master, layout, manager).await;
    }
}

/// Both layouts, aiohttp's without a `max_age`.
const LAYOUTS: [RedisLayout; 2] = [RedisLayout::Hash, RedisLayout::Aiohttp { max_age: None }];

/// Logs in a session of `layout` on `master`, with managers that
/// `manager_on` makes for a URL, losing the answer of the login's command
/// that names its mark (`{<old key>}:moved`); checks that the login moved
/// the session all the same.
async fn lose_a_logins_answer<F: Future<Output = SessionManager>>(
    master: &RedisServer,
    layout: RedisLayout,
    manager_on: impl Fn(String) -> F,
) {
    // A login straight to Redis first, so that the server has the login's
    // scripts: the lost answer must be of a command that ran, not of a
    // call refused with NOSCRIPT.
    let direct = manager_on(master.url()).await;
    let first = cookie_pair(&visit(&direct, None, |s| s.insert("k", &0).expect("insert")).await);
    log_in_on(&direct, &first).await.expect("a login");
    let proxy = AnswerLosingProxy::start(master.port(), b"}:moved");
    let manager = manager_on(proxy.url()).await;
    let pair = cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
    let logged_in = log_in_on(&manager, &pair).await;
    assert_eq!(proxy.cuts(), 1, "the login's answer was lost ({layout:?})");
    let new_pair = cookie_pair(&logged_in.expect("the login answers its new cookie"));
    assert_ne!(new_pair, pair);
    let session = peek(&manager, &new_pair).await;
    assert_eq!(session.get::<i32>("k").expect("get"), Some(1), "{layout:?}");
    assert!(peek(&manager, &pair).await.is_new(), "the old id is gone");
}

/// A logout between a login's create and its delete: the delete finds
/// nothing and no mark of its own, and the login answers gone (the new
/// session is deleted again), as it did before the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_after_a_logout_is_gone_even_with_the_mark() {
    for layout in LAYOUTS {
        let (master, _replica) = master_and_replica();
        let manager = durable_manager_in(&master.url(), 1, layout).await;
        let pair =
            cookie_pair(&visit(&manager, None, |s| s.insert("k", &1).expect("insert")).await);
        let request = a_login(&manager, &pair).await;
        // The logout comes after the login loaded the session.
        let logout = manager.request();
        logout
            .session([pair.as_bytes()])
            .await
            .expect("load")
            .invalidate();
        logout.save_changes().await.expect("logout");
        let set_cookies = request.save_changes().await.expect("the login answers");
        assert!(
            set_cookies.is_empty(),
            "no cookie ({layout:?}): {set_cookies:?}"
        );
        let keys = master.command(&["DBSIZE"]).expect("DBSIZE");
        assert_eq!(
            keys,
            Reply::Integer(0),
            "no session, and no mark, is left ({layout:?})"
        );
    }
}

/// The replica of the master that holds `key` (which answers `EXISTS`;
/// the other masters answer `MOVED`, and replicas too).
fn replica_of_the_master_of<'a>(cluster: &'a RedisCluster, key: &str) -> &'a RedisServer {
    let nodes = cluster.nodes();
    let master = nodes
        .iter()
        .find(|node| node.command(&["EXISTS", key]).ok() == Some(Reply::Integer(1)))
        .expect("the key's master");
    let master_port = format!("master_port:{}", master.port());
    nodes
        .iter()
        .find(|node| {
            node.command(&["INFO", "replication"])
                .ok()
                .and_then(|info| info.text())
                .is_some_and(|info| info.lines().any(|line| line.trim() == master_port))
        })
        .expect("the key's master's replica")
}

/// A write whose caller was told it failed must not be done later. fred
/// drops a command that timed out before it was sent, but sent a pipeline
/// that timed out once its connection was back: a soak caught a login
/// whose delete of the old id, answered with a timeout (a 500, so the
/// client kept the old cookie), ran seconds later and took the session
/// away. While a cluster fails over, fred stalls on the killed master, so
/// writes to the healthy shards time out too: here a logout and a save in
/// each layout, each of which must have done nothing once the cluster is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_failed_during_a_failover_is_not_done_after_it() {
    let mut cluster = RedisCluster::builder()
        .replicas(1)
        .node_timeout(Duration::from_secs(2))
        .start();
    let victim = cluster.master_indexes()[0];
    let hash = durable_manager(&cluster.url(), 1).await;
    let aiohttp = RedisLayout::Aiohttp { max_age: None };
    let aiohttp = durable_manager_in(&cluster.url(), 1, aiohttp).await;
    let aiohttp_key = |pair: &str| format!("session_{}", cookie_value(pair));
    // Sessions on the shards that stay up: the victim answers MOVED.
    let mut sessions = Vec::new();
    for (manager, key_of) in [
        (&hash, &redis_key as &dyn Fn(&str) -> String),
        (&aiohttp, &aiohttp_key),
    ] {
        let mut on_healthy_shards = Vec::new();
        while on_healthy_shards.len() < 2 {
            let pair =
                cookie_pair(&visit(manager, None, |s| s.insert("k", &1).expect("insert")).await);
            let reply = cluster.nodes()[victim]
                .command(&["EXISTS", &key_of(&pair)])
                .expect("EXISTS");
            if matches!(reply, Reply::Error(ref e) if e.starts_with("MOVED")) {
                on_healthy_shards.push(pair);
            }
        }
        sessions.push((manager, on_healthy_shards));
    }
    // Loaded before the kill: only the writes meet the failover.
    let mut writes = Vec::new();
    for (manager, pairs) in &sessions {
        let logout = manager.request();
        let session = logout.session([pairs[0].as_bytes()]).await.expect("load");
        session.invalidate();
        let save = manager.request();
        let session = save.session([pairs[1].as_bytes()]).await.expect("load");
        session.insert("k", &2).expect("insert");
        writes.push((logout, save));
    }

    cluster.kill_master(victim);
    // Time for fred to see its connection to the victim close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut outcomes = Vec::new();
    for (logout, save) in &writes {
        let (logged_out, saved) = tokio::join!(logout.save_changes(), save.save_changes());
        outcomes.push((logged_out.is_ok(), saved.is_ok()));
    }
    assert!(
        outcomes.iter().any(|&(l, s)| !l || !s),
        "no write failed during the failover: {outcomes:?}"
    );

    tokio::task::block_in_place(|| cluster.wait_for_failover(Duration::from_secs(60)));
    for ((manager, pairs), (logged_out, saved)) in sessions.iter().zip(&outcomes) {
        // Once loads are answered again, and a while longer, for whatever
        // fred still held to be sent.
        let deadline = Instant::now() + Duration::from_secs(30);
        while manager
            .request()
            .session([pairs[1].as_bytes()])
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "Redis never answered again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let session = peek(manager, &pairs[0]).await;
        assert_eq!(
            session.is_new(),
            *logged_out,
            "a logout that answered {}",
            if *logged_out {
                "done was not"
            } else {
                "an error was done after it"
            }
        );
        let session = peek(manager, &pairs[1]).await;
        let expected = if *saved { 2 } else { 1 };
        assert_eq!(
            session.get::<i32>("k").expect("get"),
            Some(expected),
            "a save that answered {}",
            if *saved { "done" } else { "an error" }
        );
    }
}

/// The `WAIT` goes right behind its write, never ahead of it: ahead, it
/// would count the replica as having every write before it, and answer a
/// save that no replica has. With a store's own client (the write and the
/// `WAIT` in one round trip) and with an application's client that
/// interrupts blocked connections (fred may then hold a command back on
/// its first poll, and the store sends the `WAIT` after the write's
/// reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_goes_after_its_write() {
    use fred::prelude::{Blocking, Builder, ClientLike, Config};

    let (master, replica) = master_and_replica();
    let own = RedisStore::builder()
        .durability(durable(1))
        .connect(&master.url())
        .await
        .expect("connect");
    let mut config = Config::from_url(&master.url()).expect("config");
    config.blocking = Blocking::Interrupt;
    let client = Builder::from_config(config).build().expect("a client");
    client.init().await.expect("init");
    let interrupting = RedisStore::builder().durability(durable(1)).build(client);
    for store in [own, interrupting] {
        let manager = SessionManager::new(store, SessionConfig::default());
        let (_, request) = an_unsaved_update(&manager).await;
        // Every write so far acknowledged (`wait_for_sync` waits for one
        // written after them): a `WAIT` sent ahead of the next write would
        // answer at once that the replica has it.
        replica.wait_for_sync(Duration::from_secs(20));
        replica.pause();
        let result = request.save_changes().await;
        replica.resume();
        match result {
            Err(Error::Store(message)) => {
                assert!(message.to_string().contains("0 of the 1"), "{message}");
            }
            other => panic!("a save that no replica has was answered: {other:?}"),
        }
    }
}
