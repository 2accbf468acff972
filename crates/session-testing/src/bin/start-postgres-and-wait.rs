//! Starts a Postgres cluster, prints its port and directory, and waits to be
//! killed: a test process that dies without stopping its server, for the
//! test of `session_testing::reap_postgres_orphans`.

fn main() {
    let server = session_testing::PostgresServer::start();
    println!("{} {}", server.port(), server.dir().display());
    loop {
        std::thread::park();
    }
}
