//! The core's conformance suite against real Redis: standalone, a
//! three-master cluster, and through sentinels.

use session_conformance::{self as conformance, StoreKind};
use session_redis::RedisStore;
use session_testing::{RedisCluster, RedisSentinel, RedisServer};

async fn passes(url: &str) {
    passes_on(RedisStore::from_url(url).await.expect("connect")).await;
}

async fn passes_with_the_client_cache(url: &str) {
    let store = RedisStore::builder()
        .client_cache(1_000)
        .connect(url)
        .await
        .expect("connect");
    passes_on(store).await;
}

async fn passes_on(store: RedisStore) {
    let report = conformance::run(store, StoreKind::ServerSide).await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());
    assert!(report.passed().len() >= 19, "{:?}", report.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone() {
    let server = RedisServer::start();
    passes(&server.url()).await;
}

/// On a current-thread runtime, as on an actix-web worker: the connection
/// task runs on the same thread as the requests.
#[tokio::test(flavor = "current_thread")]
async fn standalone_connected_lazily() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .connect_lazy(&server.url())
        .expect("a valid URL");
    passes_on(store).await;
}

/// With the client cache: every check loads through it, across the
/// suite's own writes, logouts and logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_with_the_client_cache() {
    let server = RedisServer::start();
    passes_with_the_client_cache(&server.url()).await;
}

/// The same on a current-thread runtime, connected lazily, as on an
/// actix-web worker.
#[tokio::test(flavor = "current_thread")]
async fn standalone_with_the_client_cache_connected_lazily() {
    let server = RedisServer::start();
    let store = RedisStore::builder()
        .client_cache(1_000)
        .connect_lazy(&server.url())
        .expect("a valid URL");
    passes_on(store).await;
}

/// Through a client of the application's that speaks RESP3, where Redis
/// answers `HGETALL` with a map rather than an array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_over_resp3() {
    use fred::prelude::{Builder, ClientLike, Config};
    use fred::types::RespVersion;

    let server = RedisServer::start();
    let mut config = Config::from_url(&server.url()).expect("a redis:// URL");
    config.version = RespVersion::RESP3;
    let client = Builder::from_config(config).build().expect("a client");
    client.init().await.expect("a connection");
    passes_on(RedisStore::builder().build(client)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster() {
    let cluster = RedisCluster::start();
    passes(&cluster.url()).await;
    // The sessions landed on more than one node: the cluster was really used.
    let nodes_with_keys = cluster
        .command_all(&["DBSIZE"])
        .expect("DBSIZE")
        .into_iter()
        .filter(|size| !matches!(size, session_testing::Reply::Integer(0)))
        .count();
    assert!(nodes_with_keys >= 2, "keys on {nodes_with_keys} node(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel() {
    let sentinel = RedisSentinel::start();
    passes(&sentinel.url()).await;
    assert!(
        !matches!(
            sentinel.master().command(&["DBSIZE"]).expect("DBSIZE"),
            session_testing::Reply::Integer(0)
        ),
        "the sessions are on the master the sentinels named"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_sentinel_with_the_client_cache() {
    let sentinel = RedisSentinel::start();
    passes_with_the_client_cache(&sentinel.url()).await;
}

/// The aiohttp_session layout keeps less than a full record: whole seconds,
/// `created` rewritten on every write, its own `max_age` from the last
/// write, whole-value writes. Exactly the checks that need more are skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aiohttp_layout() {
    use session_conformance::Capabilities;
    use session_redis::RedisLayout;
    use std::time::Duration;

    let server = RedisServer::start();
    let max_age = Duration::from_secs(3600);
    let store = RedisStore::builder()
        .layout(RedisLayout::Aiohttp {
            max_age: Some(max_age),
        })
        .connect(&server.url())
        .await
        .expect("connect");
    let capabilities = Capabilities::FULL
        .with_whole_second_timestamps()
        .with_fixed_idle_timeout(max_age)
        .with_created_at_last_write()
        .with_last_write_wins();
    let report = conformance::run_with(store, StoreKind::ServerSide, capabilities).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        skipped,
        [
            "absolute_expiry",
            "rolling_refresh",
            "per_session_expiry",
            "concurrent_deltas_merge",
            "data_writes_keep_concurrent_metadata",
            "regenerate_keeps_the_absolute_timeout",
            "own_expiry_cannot_outlive_the_absolute_timeout",
            "logout_beats_a_racing_refresh",
            "expired_sessions_are_not_written",
            "user_sessions",
            "revocation_beats_a_racing_login",
        ]
    );
    for check in [
        "deadline_round_trips",
        "idle_expiry",
        "logout_beats_a_racing_write",
        "logout_beats_a_racing_regenerate",
        "a_request_racing_a_login_keeps_the_login_cookie",
        "strict_mode",
        "values_round_trip_exactly",
    ] {
        assert!(
            report.passed().contains(&check),
            "{check}: {:?}",
            report.passed()
        );
    }
}
