//! A master, its replicas, and three sentinels watching them.

use std::fmt;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, Instance};
use crate::resp::{self, Reply};
use crate::{RedisServer, RedisServerBuilder};

/// The name the sentinels know the master by.
pub const SERVICE_NAME: &str = "session-testing";

/// How long the replica may take to sync and the sentinels to see each
/// other and the replica.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A sentinel deployment on free loopback ports: a master, one replica of
/// it (or more: [`start_with_replicas`](Self::start_with_replicas)), and
/// three sentinels (quorum 2) with short timeouts
/// (`down-after-milliseconds 1000`, `failover-timeout 3000`), so that a
/// failover takes seconds. Everything is killed when dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use session_testing::RedisSentinel;
///
/// let mut sentinel = RedisSentinel::start();
/// // "redis-sentinel://127.0.0.1:<s1>?sentinelServiceName=session-testing&node=..."
/// let url = sentinel.url();
/// sentinel.kill_master();
/// let new_master = sentinel.wait_for_failover(Duration::from_secs(30));
/// assert_eq!(new_master, sentinel.replica().port());
/// // The old master comes back as a replica of the new one.
/// sentinel.restart_as_replica(Duration::from_secs(30));
/// # drop(url);
/// ```
pub struct RedisSentinel {
    /// The master at start, then its replicas.
    servers: Vec<RedisServer>,
    /// The index in `servers` of the master [`kill_master`] killed.
    killed: Option<usize>,
    sentinels: Vec<Instance>,
    // After `sentinels`: the processes die before their directory goes.
    _dir: TempDir,
}

impl RedisSentinel {
    /// Starts the master and the replica, waits for the replica to sync,
    /// starts the sentinels, and waits until they agree they can fail over
    /// (`SENTINEL CKQUORUM`) and all know the replica.
    ///
    /// # Panics
    ///
    /// When `redis-server` is missing (the message says what to install) or
    /// the deployment does not settle within 30 seconds.
    #[track_caller]
    pub fn start() -> RedisSentinel {
        Self::start_with_replicas(1)
    }

    /// As [`start`](Self::start), with `replicas` replicas of the master
    /// (at least one).
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    #[track_caller]
    pub fn start_with_replicas(replicas: usize) -> RedisSentinel {
        Self::try_start(replicas.max(1)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(replicas: usize) -> Result<RedisSentinel, String> {
        // A replica (re)joining is served at once, not after the default
        // 5 s wait for others to join it.
        let conf = "repl-diskless-sync-delay 0\n";
        let master = RedisServer::launch(&RedisServerBuilder::default(), conf)?;
        let mut servers = vec![master];
        for _ in 0..replicas {
            let builder = RedisServerBuilder::default().replica_of(servers[0].port());
            let replica = RedisServer::launch(&builder, conf)?;
            servers.push(replica);
        }
        for replica in &servers[1..] {
            replica.try_wait_for_sync(SETTLE_TIMEOUT)?;
        }
        let master = &servers[0];
        let replica_count = replicas;

        let dir = process::owned_temp_dir(process::SENTINEL_DIR)?;
        let mut sentinels = Vec::new();
        for i in 0..3 {
            // Sentinels rewrite their configuration file: each needs its own.
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "bind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                     sentinel monitor {SERVICE_NAME} 127.0.0.1 {port} 2\n\
                     sentinel down-after-milliseconds {SERVICE_NAME} 1000\n\
                     sentinel failover-timeout {SERVICE_NAME} 3000\n\
                     sentinel parallel-syncs {SERVICE_NAME} 1\n",
                    dir = dir.path().display(),
                    port = master.port(),
                ),
            )
            .map_err(|e| format!("could not write {}: {e}", conf.display()))?;
            let log = dir.path().join(format!("sentinel-{i}.log"));
            let args = vec![
                conf.display().to_string(),
                "--sentinel".to_owned(),
                "--logfile".to_owned(),
                log.display().to_string(),
            ];
            sentinels.push(Instance::start_on_free_port(args, log, |port| {
                vec!["--port".to_owned(), port.to_string()]
            })?);
        }
        for sentinel in &sentinels {
            process::wait_for("the sentinels to settle", SETTLE_TIMEOUT, || {
                let quorum = resp::command(sentinel.port, &["SENTINEL", "CKQUORUM", SERVICE_NAME])
                    .map_err(|e| e.to_string())?;
                if !matches!(&quorum, Reply::Status(s) if s.starts_with("OK")) {
                    return Err(format!("{quorum:?}"));
                }
                let replicas =
                    resp::command(sentinel.port, &["SENTINEL", "REPLICAS", SERVICE_NAME])
                        .map_err(|e| e.to_string())?;
                match replicas.array() {
                    Some(list) if list.len() >= replica_count => Ok(()),
                    _ => Err("the sentinel does not know every replica yet".to_owned()),
                }
            })?;
        }
        Ok(RedisSentinel {
            servers,
            killed: None,
            sentinels,
            _dir: dir,
        })
    }

    /// A `redis-sentinel://` URL naming every sentinel and the service, as
    /// fred parses it.
    #[must_use]
    pub fn url(&self) -> String {
        let mut url = format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={SERVICE_NAME}",
            self.sentinels[0].port
        );
        for sentinel in &self.sentinels[1..] {
            url.push_str(&format!("&node=127.0.0.1:{}", sentinel.port));
        }
        url
    }

    /// The first sentinel's whole log, e.g. to count its `+switch-master`
    /// events (failovers).
    #[must_use]
    pub fn sentinel_log(&self) -> String {
        self.sentinels[0].log()
    }

    /// The name the sentinels monitor the master under.
    #[must_use]
    pub fn service_name(&self) -> &'static str {
        SERVICE_NAME
    }

    /// The sentinels' ports.
    #[must_use]
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The server that was master at start.
    #[must_use]
    pub fn master(&self) -> &RedisServer {
        &self.servers[0]
    }

    /// The server that was the (first) replica at start.
    #[must_use]
    pub fn replica(&self) -> &RedisServer {
        &self.servers[1]
    }

    /// Every data server: the master at start, then the replicas.
    #[must_use]
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Kills the current master (as the sentinels report it; at start,
    /// [`master`](Self::master)) with SIGKILL, and returns its port.
    ///
    /// # Panics
    ///
    /// When no sentinel reports a master that is one of the servers.
    #[track_caller]
    pub fn kill_master(&mut self) -> u16 {
        let port = self.current_master_port();
        let index = self
            .servers
            .iter()
            .position(|server| server.port() == port)
            .unwrap_or_else(|| panic!("the master on port {port} is none of the servers"));
        self.servers[index].kill();
        self.killed = Some(index);
        port
    }

    /// Starts the master that [`kill_master`](Self::kill_master) killed
    /// again, on its port, as a replica of the current master, and waits
    /// (at most `timeout`) until it is in sync.
    ///
    /// # Panics
    ///
    /// When no master was killed, or it does not come back in sync in
    /// time.
    #[track_caller]
    pub fn restart_as_replica(&mut self, timeout: Duration) {
        let index = self
            .killed
            .take()
            .expect("restart_as_replica: no master was killed");
        let master = self.current_master_port();
        let server = &mut self.servers[index];
        // A replica from its first moment: restarted as it was, it would
        // be an empty master until the sentinels turn it into a replica,
        // and a client that still took it for the master would read and
        // write there.
        server.restart_as_replica_of(master);
        server.wait_for_sync(timeout);
    }

    /// The port of the master as the first sentinel that answers reports it
    /// (`SENTINEL GET-MASTER-ADDR-BY-NAME`).
    ///
    /// # Panics
    ///
    /// When no sentinel answers.
    #[must_use]
    #[track_caller]
    pub fn current_master_port(&self) -> u16 {
        self.try_master_port().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_master_port(&self) -> Result<u16, String> {
        let mut last_error = String::from("no sentinel");
        for sentinel in &self.sentinels {
            let reply = resp::command(
                sentinel.port,
                &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE_NAME],
            );
            let port = reply
                .as_ref()
                .ok()
                .and_then(Reply::array)
                .and_then(|addr| addr.get(1))
                .and_then(Reply::text)
                .and_then(|port| port.parse().ok());
            match port {
                Some(port) => return Ok(port),
                None => last_error = format!("{reply:?}"),
            }
        }
        Err(format!("no sentinel reported a master: {last_error}"))
    }

    /// After [`kill_master`](Self::kill_master): waits until every
    /// sentinel reports the same other server as the master and that
    /// server itself says `role:master`, and returns its port.
    ///
    /// # Panics
    ///
    /// When no master was killed, or the failover does not complete within
    /// `timeout` (the message includes a sentinel's log).
    #[track_caller]
    pub fn wait_for_failover(&self, timeout: Duration) -> u16 {
        let killed = self
            .killed
            .map(|index| self.servers[index].port())
            .expect("wait_for_failover: no master was killed");
        process::wait_for("the failover", timeout, || {
            let mut target = None;
            for sentinel in &self.sentinels {
                let reply = resp::command(
                    sentinel.port,
                    &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE_NAME],
                )
                .map_err(|e| e.to_string())?;
                let port: Option<u16> = reply
                    .array()
                    .and_then(|addr| addr.get(1))
                    .and_then(Reply::text)
                    .and_then(|port| port.parse().ok());
                if port.is_none() || port == Some(killed) || (target.is_some() && port != target) {
                    return Err(format!("a sentinel reports {port:?}"));
                }
                target = port;
            }
            let target = target.ok_or("no sentinel")?;
            let role = resp::info(target, "replication")?;
            if resp::info_fields(&role).any(|f| f == ("role", "master")) {
                Ok(target)
            } else {
                Err("the replica is not master yet".to_owned())
            }
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nfirst sentinel's log:\n{}",
                self.sentinels[0].log_tail()
            )
        })
    }
}

impl fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("servers", &self.servers)
            .field("sentinels", &self.sentinel_ports())
            .finish()
    }
}
