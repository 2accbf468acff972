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
