//! The throwaway Postgres cluster against the real binaries.

use session_testing::PostgresServer;

#[test]
fn a_server_answers_on_its_own_port_and_is_removed_on_drop() {
    let server = PostgresServer::start();
    let port = server.port();
    assert_ne!(port, 5432, "never the system service's port");
    assert_eq!(server.execute("SELECT 1 + 1").unwrap(), "2");
    assert_eq!(
        server.execute("SELECT current_setting('fsync')").unwrap(),
        "off"
    );
    let dir = server.dir().to_owned();
    drop(server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!dir.exists(), "the cluster's directory is removed");
}

#[test]
fn a_stopped_server_comes_back_with_its_data() {
    let mut server = PostgresServer::start();
    let port = server.port();
    server.execute("CREATE TABLE t (v text)").unwrap();
    server.execute("INSERT INTO t VALUES ('kept')").unwrap();
    server.stop();
    assert!(!server.is_running());
    assert!(server.execute("SELECT 1").is_err());
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.execute("SELECT v FROM t").unwrap(), "kept");
}

#[test]
fn shared_servers_are_one_while_held() {
    let a = PostgresServer::shared();
    let b = PostgresServer::shared();
    assert_eq!(a.port(), b.port());
}

#[test]
fn the_cluster_of_a_killed_test_process_is_reaped_by_the_next_one() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let mut doomed = Command::new(env!("CARGO_BIN_EXE_start-postgres-and-wait"))
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
    // SIGKILL: no destructor runs, the cluster lives on.
    doomed.kill().expect("kill");
    doomed.wait().expect("wait");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let mine = PostgresServer::start();
    session_testing::reap_postgres_orphans();
    // This process's own cluster is not an orphan.
    assert_eq!(mine.execute("SELECT 1").unwrap(), "1");
    let stopped = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(stopped, "the orphan still answers on {port}");
    assert!(!dir.exists(), "its directory is removed");
}

#[test]
fn a_paused_server_answers_again_once_resumed() {
    let server = PostgresServer::start();
    server.pause();
    server.resume();
    assert_eq!(server.execute("SELECT 2").unwrap(), "2");
}
