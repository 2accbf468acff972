//! The helpers against real redis-server processes.

use std::time::Duration;

use session_testing::{RedisCluster, RedisSentinel, RedisServer, Reply, info_fields};

fn text(reply: std::io::Result<Reply>) -> String {
    reply.expect("command").text().expect("a text reply")
}

#[test]
fn a_server_answers_on_its_own_port_and_dies_on_drop() {
    let server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 6379, "never the system service's port");
    assert_eq!(text(server.command(&["SET", "k", "v"])), "OK");
    assert_eq!(text(server.command(&["GET", "k"])), "v");
    let dir = server.dir().to_owned();
    drop(server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists(), "the data directory is removed");
}

#[test]
fn a_persistent_server_keeps_its_data_across_a_crash() {
    let mut server = RedisServer::builder().persistence(true).start();
    let port = server.port();
    assert_eq!(text(server.command(&["SET", "k", "kept"])), "OK");
    server.kill();
    assert!(!server.is_running());
    assert!(server.command(&["PING"]).is_err());
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(text(server.command(&["GET", "k"])), "kept");
}

#[test]
fn a_server_without_persistence_forgets_on_restart() {
    let mut server = RedisServer::start();
    assert_eq!(text(server.command(&["SET", "k", "v"])), "OK");
    server.restart();
    assert_eq!(server.command(&["GET", "k"]).expect("GET"), Reply::Nil);
}

#[test]
fn extra_configuration_is_applied() {
    let server = RedisServer::builder()
        .config("maxmemory", "12345678")
        .start();
    let reply = server
        .command(&["CONFIG", "GET", "maxmemory"])
        .expect("CONFIG");
    let values = reply.array().expect("an array");
    assert_eq!(values[1].text().as_deref(), Some("12345678"));
}

#[test]
fn a_cluster_forms_with_every_slot_served() {
    let cluster = RedisCluster::start();
    let ports: Vec<u16> = cluster.nodes().iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        cluster.url(),
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );
    for info in cluster
        .command_all(&["CLUSTER", "INFO"])
        .expect("CLUSTER INFO")
    {
        let info = info.text().expect("text");
        assert!(info_fields(&info).any(|f| f == ("cluster_slots_assigned", "16384")));
    }
    // A key on another node's slot is redirected, as in any real cluster.
    let moved: Vec<Reply> = (0..20)
        .map(|i| {
            cluster.nodes()[0]
                .command(&["GET", &format!("key{i}")])
                .expect("GET")
        })
        .collect();
    assert!(
        moved
            .iter()
            .any(|r| matches!(r, Reply::Error(e) if e.starts_with("MOVED")))
    );
}

#[test]
fn sentinels_fail_over_to_the_replica() {
    let mut sentinel = RedisSentinel::start();
    assert_eq!(sentinel.current_master_port(), sentinel.master().port());
    assert!(sentinel.url().starts_with("redis-sentinel://127.0.0.1:"));
    assert!(
        sentinel
            .url()
            .contains("sentinelServiceName=session-testing")
    );
    assert_eq!(text(sentinel.master().command(&["SET", "k", "v"])), "OK");
    assert_eq!(
        sentinel
            .master()
            .command(&["WAIT", "1", "5000"])
            .expect("WAIT"),
        Reply::Integer(1)
    );
    sentinel.kill_master();
    let promoted = sentinel.wait_for_failover(Duration::from_secs(60));
    assert_eq!(promoted, sentinel.replica().port());
    assert_eq!(sentinel.current_master_port(), promoted);
    assert_eq!(text(sentinel.replica().command(&["GET", "k"])), "v");
    assert_eq!(text(sentinel.replica().command(&["SET", "k", "w"])), "OK");
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let server = RedisServer::start();
        sender.send(server.port()).expect("send");
        panic!("the test failed");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let port = receiver.recv().expect("port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_servers_of_a_killed_test_process_are_reaped_by_the_next_one() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut doomed = Command::new(env!("CARGO_BIN_EXE_start-redis-and-wait"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the helper starts");
    let mut line = String::new();
    BufReader::new(doomed.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the helper prints its server");
    let (port, dir) = line.trim().split_once(' ').expect("port and directory");
    let port: u16 = port.parse().expect("a port");
    let dir = std::path::PathBuf::from(dir);
    // SIGKILL: no destructor runs, the server lives on.
    doomed.kill().expect("kill");
    doomed.wait().expect("wait");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // The first server a process starts reaps orphans first (this one, if
    // no other test of this process started one before); so does a call.
    let mine = RedisServer::start();
    session_testing::reap_orphans();
    // This process's own servers are not orphans.
    assert!(std::net::TcpStream::connect(("127.0.0.1", mine.port())).is_ok());
    let stopped = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(stopped, "the orphan still answers on {port}");
    assert!(!dir.exists(), "its directory is removed");
}

#[test]
fn a_cluster_master_fails_over_to_its_replica_and_comes_back_as_one() {
    let mut cluster = RedisCluster::builder()
        .replicas(1)
        .node_timeout(Duration::from_secs(2))
        .start();
    assert_eq!(cluster.nodes().len(), 6);
    let masters = cluster.master_indexes();
    assert_eq!(masters.len(), 3);
    assert_eq!(cluster.replica_indexes().len(), 3);
    let victim = masters[0];
    cluster.kill_master(victim);
    let promoted = cluster.wait_for_failover(Duration::from_secs(60));
    assert_ne!(promoted, victim);
    assert_eq!(cluster.nodes()[promoted].role().as_deref(), Some("master"));
    cluster.nodes_mut()[victim].restart();
    cluster.wait_until_replica(victim, Duration::from_secs(60));
    assert_eq!(cluster.nodes()[victim].role().as_deref(), Some("slave"));
}

#[test]
fn a_sentinel_master_with_two_replicas_comes_back_as_a_replica() {
    let mut sentinel = RedisSentinel::start_with_replicas(2);
    assert_eq!(sentinel.servers().len(), 3);
    let killed = sentinel.kill_master();
    let promoted = sentinel.wait_for_failover(Duration::from_secs(60));
    assert_ne!(promoted, killed);
    sentinel.restart_as_replica(Duration::from_secs(60));
    assert_eq!(sentinel.master().role().as_deref(), Some("slave"));
    assert_eq!(sentinel.current_master_port(), promoted);
}
