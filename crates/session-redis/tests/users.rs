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

/// A manager on the Redis at `url`, and the cookie of `user`'s session,
/// which holds one acknowledged write, `acknowledged`: 1.
async fn logged_in_with_a_write(url: &str, user: &str) -> (SessionManager, String) {
    let store = RedisStore::from_url(url).await.expect("connect");
    let manager = SessionManager::new(store, SessionConfig::default());
    let cookie = log_in(&manager, user, "laptop").await;
    visit(&manager, Some(&cookie), |s: &Session| {
        s.insert("acknowledged", &1).expect("insert");
    })
    .await;
    (manager, cookie)
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

/// On a cluster a login creates the new session, then deletes the old one
/// and takes its id out of the user's index. Once the old session is
/// deleted, an index that cannot be written (here another type; in
/// production a shard failing over, which a soak caught) no longer fails
/// the login: it answered a 500 after the session had moved, so the client
/// kept the cookie of a deleted session and lost what it had been
/// acknowledged. The stale id is dropped from the index by the next
/// listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_on_a_cluster_survives_an_index_it_cannot_clean() {
    let cluster = RedisCluster::start();
    let (manager, cookie) = logged_in_with_a_write(&cluster.url(), "bob").await;
    // Only the node that owns the key takes it; the others answer MOVED.
    cluster
        .command_all(&["SET", "session:user:bob", "not an index"])
        .expect("SET");

    let new_cookie = cookie_pair(
        &visit(&manager, Some(&cookie), |s: &Session| {
            s.regenerate();
            s.bind_user("ada");
        })
        .await,
    );
    assert_ne!(new_cookie, cookie, "the login answered its new cookie");
    assert!(
        common::peek(&manager, &cookie).await.is_new(),
        "the old id is gone"
    );
    let session = common::peek(&manager, &new_cookie).await;
    assert_eq!(session.user().as_deref(), Some("ada"));
    assert_eq!(
        session.get::<u32>("acknowledged").expect("get"),
        Some(1),
        "with what was acknowledged"
    );
    assert_eq!(manager.sessions_of("ada").await.expect("list").len(), 1);
}

/// A login (a regenerate of a session bound to a user) whose index write
/// fails leaves the session where the client's cookie finds it, with the
/// writes already acknowledged: the login fails whole, it never moves the
/// session to an id the client does not get. The index key is made
/// unusable here (another type); in production the same failure is Redis
/// dying, or timing out, between the session's move and the index write.
#[tokio::test]
async fn a_login_whose_index_write_fails_leaves_the_session_under_the_old_cookie() {
    let server = RedisServer::start();
    let (manager, cookie) = logged_in_with_a_write(&server.url(), "ada").await;

    server
        .command(&["SET", "session:user:ada", "not an index"])
        .expect("SET");
    let request = manager.request();
    let session = request.session([cookie.as_bytes()]).await.expect("load");
    session.regenerate();
    session.bind_user("ada");
    assert!(
        request.save_changes().await.is_err(),
        "the login fails: its index cannot be written"
    );

    let session = common::peek(&manager, &cookie).await;
    assert!(!session.is_new(), "the old cookie still finds the session");
    assert_eq!(
        session.get::<u32>("acknowledged").expect("get"),
        Some(1),
        "with what was acknowledged"
    );

    // With the index usable again, the login moves the session and its
    // index entry in one script call.
    server.command(&["DEL", "session:user:ada"]).expect("DEL");
    let scripts = |server: &RedisServer| {
        common::calls_where(&common::command_calls(server), |name| {
            name.starts_with("eval")
        })
    };
    let before = scripts(&server);
    let new_cookie = cookie_pair(
        &visit(&manager, Some(&cookie), |s: &Session| {
            s.regenerate();
            s.bind_user("ada");
        })
        .await,
    );
    assert_eq!(scripts(&server) - before, 1, "one script call");
    assert_ne!(new_cookie, cookie);
    let new_id = common::cookie_value(&new_cookie).to_owned();
    let members = server
        .command(&["ZRANGE", "session:user:ada", "0", "-1"])
        .expect("ZRANGE");
    assert_eq!(
        members,
        Reply::Array(vec![Reply::Bulk(new_id.into_bytes())]),
        "the index holds the new id, not the old"
    );
    assert!(common::peek(&manager, &cookie).await.is_new());
    let session = common::peek(&manager, &new_cookie).await;
    assert_eq!(session.get::<u32>("acknowledged").expect("get"), Some(1));
}
