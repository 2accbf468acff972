//! The core's conformance suite against real Redis: standalone, a
//! three-master cluster, and through sentinels.

use session_core::conformance::{self, StoreKind};
use session_redis::RedisStore;
use session_testing::{RedisCluster, RedisSentinel, RedisServer};

async fn passes(url: &str) {
    let store = RedisStore::from_url(url).await.expect("connect");
    let report = conformance::run(store, StoreKind::ServerSide).await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());
    assert!(report.passed().len() >= 19, "{:?}", report.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone() {
    let server = RedisServer::start();
    passes(&server.url()).await;
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
