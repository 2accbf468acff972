//! Test support: real `redis-server` and Postgres processes for the
//! workspace's tests.
//!
//! Tests here talk to real servers, never a mock. This crate starts the
//! servers they need, each on free loopback ports with its own temporary
//! directory, and kills them when the handle is dropped (also when the test
//! panics, since dropping happens while unwinding):
//!
//! * [`RedisServer`]: one standalone server, optionally persistent
//!   ([`RedisServerBuilder::persistence`]), which a test can
//!   [`kill`](RedisServer::kill) and [`restart`](RedisServer::restart) on the
//!   same port and directory;
//! * [`RedisCluster`]: a three-master Redis Cluster with every slot
//!   assigned, optionally with replicas
//!   ([`RedisClusterBuilder::replicas`]), whose masters can be killed
//!   ([`RedisCluster::kill_master`]), failed over and brought back as
//!   replicas;
//! * [`RedisSentinel`]: a master, one replica or more
//!   ([`RedisSentinel::start_with_replicas`]) and three sentinels with
//!   short timeouts, with [`kill_master`](RedisSentinel::kill_master),
//!   [`wait_for_failover`](RedisSentinel::wait_for_failover) and
//!   [`restart_as_replica`](RedisSentinel::restart_as_replica);
//! * [`PostgresServer`]: a throwaway Postgres cluster (`initdb` into a
//!   temporary directory), run as `nobody` when the tests run as root,
//!   which a test can [`stop`](PostgresServer::stop),
//!   [`restart`](PostgresServer::restart), [`pause`](PostgresServer::pause)
//!   and [`resume`](PostgresServer::resume); [`PostgresServer::shared`]
//!   lets the tests of one process share one;
//! * [`AnswerLosingProxy`]: a TCP proxy in front of one of those servers
//!   that lets a command run and closes its connection before the answer
//!   (a reply lost with a dying server, on demand).
//!
//! It never touches a system-wide Redis service (port 6379 is never picked)
//! and depends on no session crate, so any test can use it (the property
//! strategies and the conformance suite are in `session-conformance`). A test
//! process killed with SIGKILL cannot stop its servers; the next process
//! that starts one kills those orphans first ([`reap_orphans`],
//! [`reap_postgres_orphans`]).
//!
//! # Requirements
//!
//! `redis-server` >= 7.0 on `PATH`, and `redis-cli` for [`RedisCluster`]
//! (Debian/Ubuntu: `apt-get install redis-server redis-tools`; `cargo xtask
//! test` installs them on a fresh machine), and Postgres for
//! [`PostgresServer`] (`apt-get install postgresql`: its binaries are found
//! under `/usr/lib/postgresql/<version>/bin`, or on `PATH`). When they are missing, the
//! constructors panic with a message saying so.
//!
//! # Blocking
//!
//! Everything here is synchronous: startup and the waits poll with short
//! sleeps, bounded by timeouts (10 s for a server to answer `PING`, longer
//! for a cluster or sentinels to settle). From an async test, start servers
//! before building clients; call [`RedisSentinel::wait_for_failover`] from a
//! multi-threaded runtime (or `spawn_blocking`) if other tasks must keep
//! running meanwhile.
//!
//! # Example
//!
//! ```
//! use session_testing::{RedisServer, Reply};
//!
//! let server = RedisServer::start();
//! assert!(server.url().starts_with("redis://127.0.0.1:"));
//! let pong = server.command(&["PING"]).unwrap();
//! assert_eq!(pong, Reply::Status("PONG".into()));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod cluster;
mod postgres;
mod process;
mod proxy;
mod resp;
mod sentinel;
mod server;

pub use cluster::{RedisCluster, RedisClusterBuilder};
pub use postgres::{POSTGRES_USER, PostgresServer, reap_postgres_orphans};
pub use process::{reap_orphans, wait_for};
pub use proxy::AnswerLosingProxy;
pub use resp::Reply;
pub use sentinel::{RedisSentinel, SERVICE_NAME};
pub use server::{RedisServer, RedisServerBuilder};

/// The `key:value` fields of an `INFO` reply's text, e.g. to read `role`
/// from `INFO replication` ([`command_calls`] reads `INFO commandstats`).
///
/// ```
/// let info = "# Replication\r\nrole:master\r\nconnected_slaves:1\r\n";
/// let fields: Vec<_> = session_testing::info_fields(info).collect();
/// assert_eq!(fields, [("role", "master"), ("connected_slaves", "1")]);
/// ```
pub fn info_fields(info: &str) -> impl Iterator<Item = (&str, &str)> {
    resp::info_fields(info)
}

/// The calls of each command in the text of an `INFO commandstats` reply,
/// by the name Redis gives it there (`hgetall`, `client|trackinginfo`).
/// Redis counts the commands a script runs too.
///
/// ```
/// let stats = "# Commandstats\r\ncmdstat_hset:calls=3,usec=12,usec_per_call=4.00\r\n\
///              cmdstat_client|trackinginfo:calls=1,usec=2,usec_per_call=2.00\r\n";
/// let calls: Vec<_> = session_testing::command_calls(stats).collect();
/// assert_eq!(calls, [("hset", 3), ("client|trackinginfo", 1)]);
/// ```
pub fn command_calls(commandstats: &str) -> impl Iterator<Item = (&str, u64)> {
    resp::info_fields(commandstats).filter_map(|(name, stats)| {
        let command = name.strip_prefix("cmdstat_")?;
        let calls = stats
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))?;
        Some((command, calls.parse().ok()?))
    })
}
