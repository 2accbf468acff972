//! The index of each user's sessions, as kept in Redis: on one server and on
//! a cluster, it never holds an entry for a session that ended (logged out,
//! revoked or expired), and it vanishes with its user's last session.

mod common;

use std::time::Duration;

use session_core::{Clock, ManualClock, Session, SessionConfig, SessionManager};
use session_redis::RedisStore;
use session_testing::{RedisCluster, RedisServer, Reply};

use common::{cookie_pair, visit};

/// How a test reads Redis: one server, or every node of a cluster.
trait Inspect {
    /// The replies of every node to `args`, errors (a key on another node)
    /// left out.
    fn ask(&self, args: &[&str]) -> Vec<Reply>;

    /// How many members the user's index holds, and whether it expires.
    fn index_of(&self, user: &str) -> (i64, bool) {
        let key = format!("session:user:{user}");
        let members = self.ask(&["ZCARD", &key]).iter().filter_map(integer).sum();
        let expires = self
            .ask(&["PEXPIRETIME", &key])
            .iter()
            .filter_map(integer)
            .any(|at| at > 0);
        (members, expires)
    }
}

impl Inspect for RedisServer {
    fn ask(&self, args: &[&str]) -> Vec<Reply> {
        vec![self.command(args).expect("command")]
    }
}

impl Inspect for RedisCluster {
    fn ask(&self, args: &[&str]) -> Vec<Reply> {
        self.command_all(args).expect("command")
    }
}

fn integer(reply: &Reply) -> Option<i64> {
    match reply {
        Reply::Integer(n) => Some(*n),
        _ => None,
    }
}

async fn log_in(manager: &SessionManager, user: &str, label: &str) -> String {
    let (user, label) = (user.to_owned(), label.to_owned());
    cookie_pair(
        &visit(manager, None, move |s: &Session| {
            s.regenerate();
            s.bind_user(user);
            s.set_label(label);
        })
        .await,
    )
}

async fn the_index_holds_only_live_sessions(url: &str, redis: &impl Inspect) {
    let clock = ManualClock::starting_now();
    let store = RedisStore::from_url(url).await.expect("connect");
    let manager = SessionManager::new(
        store,
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(600)))
            .with_clock(Clock::from(clock.clone())),
    );
    let laptop = log_in(&manager, "ada", "laptop").await;
    log_in(&manager, "ada", "phone").await;
    log_in(&manager, "bob", "desk").await;
    assert_eq!(
        redis.index_of("ada"),
        (2, true),
        "two sessions, and it expires"
    );
    assert_eq!(redis.index_of("bob"), (1, true));

    // A logout leaves the index.
    let logout = visit(&manager, Some(&laptop), Session::invalidate).await;
    assert!(logout[0].contains("Max-Age=0"));
    assert_eq!(redis.index_of("ada").0, 1, "a logout leaves the index");

    // A revocation too; the last one takes the index with it.
    assert_eq!(
        manager
            .revoke_all_except("ada", None)
            .await
            .expect("revoke"),
        1
    );
    assert_eq!(redis.index_of("ada"), (0, false), "the index is gone");
    assert!(manager.sessions_of("ada").await.expect("list").is_empty());

    // An expired session leaves the listing, and the index once it is read.
    log_in(&manager, "bob", "phone").await;
    clock.advance(Duration::from_secs(601));
    assert!(manager.sessions_of("bob").await.expect("list").is_empty());
    assert_eq!(redis.index_of("bob").0, 0, "expired entries are dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_server() {
    let server = RedisServer::start();
    the_index_holds_only_live_sessions(&server.url(), &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster() {
    let cluster = RedisCluster::start();
    the_index_holds_only_live_sessions(&cluster.url(), &cluster).await;
}
