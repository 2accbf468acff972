//! Starts a Redis server, prints its port and directory, and waits to be
//! killed: a test process that dies without stopping its server, for the
//! test of `session_testing::reap_orphans`.

fn main() {
    let server = session_testing::RedisServer::start();
    println!("{} {}", server.port(), server.dir().display());
    loop {
        std::thread::park();
    }
}
