//! One standalone `redis-server`.

use std::fmt;
use std::io;
use std::path::Path;

use tempfile::TempDir;

use crate::cluster::NodeLine;
use crate::process::{self, Instance};
use crate::resp::{self, Reply};

/// A `redis-server` process of its own, on a free loopback port, with its
/// own temporary data directory. Killed (and the directory removed) when
/// dropped, also when a test panics.
///
/// ```no_run
/// use session_testing::RedisServer;
///
/// let mut server = RedisServer::builder().persistence(true).start();
/// let url = server.url(); // "redis://127.0.0.1:<port>"
/// // ... write through a client ...
/// server.kill(); // a crash: SIGKILL
/// server.restart(); // same port, same directory: the data is back
/// # drop(url);
/// ```
pub struct RedisServer {
    // Declared before `dir` so that the process dies before its directory
    // is removed.
    instance: Instance,
    tls: Option<Tls>,
    dir: TempDir,
}

/// The TLS side of a server started with [`RedisServerBuilder::tls`].
struct Tls {
    port: u16,
    ca_pem: String,
}

/// Options for a [`RedisServer`]; see [`RedisServer::builder`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RedisServerBuilder {
    persistence: bool,
    tls: bool,
    replica_of: Option<u16>,
    config: Vec<(String, String)>,
}

impl RedisServerBuilder {
    /// With `true`, every write goes to an append-only file that is synced
    /// before the reply (`appendonly yes`, `appendfsync always`), so that
    /// data acknowledged before [`RedisServer::kill`] is there after
    /// [`RedisServer::restart`]. Off by default: no file is written at all.
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// With `true`, the server also accepts TLS connections, on a port of
    /// its own ([`RedisServer::tls_url`]), with a certificate for
    /// `127.0.0.1` and `localhost` signed by a certificate authority made
    /// for this server alone ([`RedisServer::tls_ca_pem`]), which no system
    /// trusts. Clients need no certificate of their own. The plain port
    /// stays open for [`RedisServer::command`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Starts the server as a replica of the server on `127.0.0.1:port`
    /// (`replicaof`); [`RedisServer::wait_for_sync`] waits until it has
    /// the master's data.
    pub fn replica_of(mut self, port: u16) -> Self {
        self.replica_of = Some(port);
        self
    }

    /// Adds a configuration directive, as `redis-server --name value` would.
    pub fn config(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((name.into(), value.into()));
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` (>= 7.0) is not on `PATH` (the message says what
    /// to install), or when the server does not come up within 10 seconds
    /// (the message quotes its log).
    #[track_caller]
    pub fn start(self) -> RedisServer {
        RedisServer::launch(&self, "").unwrap_or_else(|e| panic!("{e}"))
    }
}

impl RedisServer {
    /// Starts a server without persistence; see [`RedisServerBuilder::start`].
    ///
    /// # Panics
    ///
    /// As [`RedisServerBuilder::start`].
    #[track_caller]
    pub fn start() -> RedisServer {
        Self::builder().start()
    }

    /// Options for a server to start.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// Starts a server with `builder`'s options plus `extra` directives in
    /// redis.conf syntax (used for cluster nodes).
    pub(crate) fn launch(builder: &RedisServerBuilder, extra: &str) -> Result<Self, String> {
        let dir = process::owned_temp_dir(process::SERVER_DIR)?;
        let mut conf = String::from("bind 127.0.0.1\ndaemonize no\nsave \"\"\n");
        if builder.persistence {
            conf.push_str("appendonly yes\nappendfsync always\n");
        } else {
            conf.push_str("appendonly no\n");
        }
        if let Some(port) = builder.replica_of {
            conf.push_str(&format!("replicaof 127.0.0.1 {port}\n"));
        }
        conf.push_str(extra);
        let conf_path = dir.path().join("redis.conf");
        std::fs::write(&conf_path, conf)
            .map_err(|e| format!("could not write {}: {e}", conf_path.display()))?;
        let log = dir.path().join("redis.log");
        let mut args = vec![
            conf_path.display().to_string(),
            "--dir".to_owned(),
            dir.path().display().to_string(),
            "--logfile".to_owned(),
            log.display().to_string(),
        ];
        let tls = if builder.tls {
            let tls = Tls::configure(dir.path())?;
            args.extend([
                "--tls-port".to_owned(),
                tls.port.to_string(),
                "--tls-cert-file".to_owned(),
                dir.path().join(TLS_CERT).display().to_string(),
                "--tls-key-file".to_owned(),
                dir.path().join(TLS_KEY).display().to_string(),
                "--tls-ca-cert-file".to_owned(),
                dir.path().join(TLS_CA).display().to_string(),
                "--tls-auth-clients".to_owned(),
                "no".to_owned(),
            ]);
            Some(tls)
        } else {
            None
        };
        for (name, value) in &builder.config {
            args.push(format!("--{name}"));
            args.push(value.clone());
        }
        let instance = Instance::start_on_free_port(args, log, |port| {
            vec!["--port".to_owned(), port.to_string()]
        })?;
        Ok(RedisServer { instance, tls, dir })
    }

    /// The port it listens on, on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.instance.port
    }

    /// `redis://127.0.0.1:<port>`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// `rediss://127.0.0.1:<tls port>` for a server started with
    /// [`RedisServerBuilder::tls`]; `None` otherwise.
    #[must_use]
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The PEM certificate of the authority that signed the TLS server's
    /// certificate, for a client to trust; `None` without TLS.
    #[must_use]
    pub fn tls_ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|tls| tls.ca_pem.as_str())
    }

    /// Its data directory (where the append-only file lives).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server with SIGKILL, as a crash would. Idempotent.
    pub fn kill(&mut self) {
        self.instance.kill();
    }

    /// Freezes the server with SIGSTOP: its connections stay open and
    /// nothing answers, as with a hung host (a replica frozen this way
    /// acknowledges nothing). Undo with [`resume`](Self::resume).
    pub fn pause(&self) {
        self.instance.signal("-STOP");
    }

    /// Lets the server [`pause`](Self::pause) froze run again.
    pub fn resume(&self) {
        self.instance.signal("-CONT");
    }

    /// Starts the server again on the same port with the same directory and
    /// options (killing it first if it runs), and waits until it answers.
    ///
    /// # Panics
    ///
    /// When it does not come back within 10 seconds, e.g. because another
    /// process took the port meanwhile.
    #[track_caller]
    pub fn restart(&mut self) {
        self.instance.start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Waits (at most `timeout`) until this server is a replica whose link
    /// to its master is up, i.e. it has the master's data and follows its
    /// writes, and has acknowledged one to its master.
    ///
    /// The acknowledgement is for `WAIT`: right after a replica synced, a
    /// first `WAIT` on its master took up to 540 ms (and often 70–330 ms)
    /// where later ones took 2 ms, so a test's first durable write could
    /// fail its limit. This makes the master write (a key set and
    /// deleted) and waits until the replica acknowledged that.
    ///
    /// # Panics
    ///
    /// When it is not in sync by then.
    #[track_caller]
    pub fn wait_for_sync(&self, timeout: std::time::Duration) {
        self.try_wait_for_sync(timeout)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// [`wait_for_sync`](Self::wait_for_sync), answering why not instead
    /// of panicking.
    pub(crate) fn try_wait_for_sync(&self, timeout: std::time::Duration) -> Result<(), String> {
        let master_port = process::wait_for("a replica to sync", timeout, || {
            let info = resp::info(self.port(), "replication")?;
            let link_up = resp::info_fields(&info).any(|f| f == ("master_link_status", "up"));
            let master_port = resp::info_fields(&info)
                .find(|(name, _)| *name == "master_port")
                .and_then(|(_, port)| port.parse::<u16>().ok());
            match master_port {
                Some(port) if link_up => Ok(port),
                _ => Err(info),
            }
        })?;
        let written = write_to_replicate(master_port)?;
        process::wait_for("a replica to acknowledge a write", timeout, || {
            let info = resp::info(master_port, "replication")?;
            let acknowledged = replica_offset(&info, self.port());
            if acknowledged.is_some_and(|offset| offset >= written) {
                Ok(())
            } else {
                Err(info)
            }
        })
    }

    /// The server's role as `INFO replication` reports it: `master` or
    /// `slave`; `None` when it does not answer.
    #[must_use]
    pub fn role(&self) -> Option<String> {
        let info = self.command(&["INFO", "replication"]).ok()?.text()?;
        resp::info_fields(&info)
            .find(|(name, _)| *name == "role")
            .map(|(_, role)| role.to_owned())
    }

    /// Starts the server again, as [`restart`](Self::restart) does, but as
    /// a replica of the server on `127.0.0.1:port` from its first moment
    /// (`replicaof` in its configuration file): it never serves as a
    /// master, not even an empty one, before it follows `port`.
    ///
    /// # Panics
    ///
    /// As [`restart`](Self::restart), or when its configuration file
    /// cannot be written.
    #[track_caller]
    pub fn restart_as_replica_of(&mut self, port: u16) {
        let conf = self.dir.path().join("redis.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap_or_default();
        text.push_str(&format!("replicaof 127.0.0.1 {port}\n"));
        std::fs::write(&conf, text)
            .unwrap_or_else(|e| panic!("could not write {}: {e}", conf.display()));
        self.restart();
    }

    /// Whether the process is alive.
    #[must_use]
    pub fn is_running(&mut self) -> bool {
        self.instance.is_running()
    }

    /// Sends one command on a fresh blocking connection and returns the
    /// reply, for checks such as `INFO commandstats` or `WAIT 1 1000`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or answers garbage.
    pub fn command(&self, args: &[&str]) -> io::Result<Reply> {
        resp::command(self.port(), args)
    }

    /// The server's log, last lines: worth printing when a test fails.
    #[must_use]
    pub fn log_tail(&self) -> String {
        self.instance.log_tail()
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port())
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The files of a TLS server's certificates, in its directory.
const TLS_CA: &str = "tls-ca.pem";
const TLS_CERT: &str = "tls-server.pem";
const TLS_KEY: &str = "tls-server.key";

impl Tls {
    /// Makes a certificate authority and a server certificate signed by it
    /// for `127.0.0.1` and `localhost`, writes them to `dir`, and picks the
    /// TLS port.
    fn configure(dir: &Path) -> Result<Tls, String> {
        let failed = |e: rcgen::Error| format!("could not make a TLS certificate: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).map_err(failed)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "session-testing CA");
        let ca = ca_params.self_signed(&ca_key).map_err(failed)?;
        let server_key = rcgen::KeyPair::generate().map_err(failed)?;
        let server =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(failed)?
                .signed_by(&server_key, &ca, &ca_key)
                .map_err(failed)?;
        for (name, pem) in [
            (TLS_CA, ca.pem()),
            (TLS_CERT, server.pem()),
            (TLS_KEY, server_key.serialize_pem()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, pem)
                .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        }
        Ok(Tls {
            port: crate::process::free_port()?,
            ca_pem: ca.pem(),
        })
    }
}

/// Makes the master on `port` write something its replicas must copy (a
/// key set and deleted again), and returns its replication offset after
/// that.
fn write_to_replicate(port: u16) -> Result<u64, String> {
    let key = key_owned_by(port)?;
    for args in [&["SET", &key, "1"][..], &["DEL", &key][..]] {
        match resp::command(port, args) {
            Ok(Reply::Error(e)) => return Err(format!("{args:?} on {port}: {e}")),
            Ok(_) => {}
            Err(e) => return Err(format!("{args:?} on {port}: {e}")),
        }
    }
    let info = resp::info(port, "replication")?;
    let offset = resp::info_fields(&info)
        .find(|(name, _)| *name == "master_repl_offset")
        .and_then(|(_, offset)| offset.parse().ok());
    offset.ok_or(info)
}

/// A key the server on `port` may write: on a cluster node, one of a slot
/// it serves, found without sending a write it would refuse (tests count
/// the `MOVED` errors a node answered).
fn key_owned_by(port: u16) -> Result<String, String> {
    let key = |i: u32| format!("session-testing:replicated:{i}");
    let info = resp::info(port, "cluster")?;
    if !resp::info_fields(&info).any(|f| f == ("cluster_enabled", "1")) {
        return Ok(key(0));
    }
    let nodes = resp::command(port, &["CLUSTER", "NODES"])
        .map_err(|e| e.to_string())?
        .text()
        .unwrap_or_default();
    let myself = nodes
        .lines()
        .filter_map(NodeLine::parse)
        .find(|line| line.flags.iter().any(|flag| flag == "myself"))
        .ok_or_else(|| format!("no `myself` in CLUSTER NODES on {port}: {nodes}"))?;
    for i in 0..10_000 {
        let candidate = key(i);
        if let Ok(Reply::Integer(slot)) = resp::command(port, &["CLUSTER", "KEYSLOT", &candidate]) {
            let served = u16::try_from(slot)
                .is_ok_and(|slot| myself.slots.iter().any(|range| range.contains(&slot)));
            if served {
                return Ok(candidate);
            }
        }
    }
    Err(format!("the node on {port} serves no slot"))
}

/// The offset the replica on `replica_port` acknowledged, from its
/// master's `INFO replication` (`slave0:ip=…,port=…,state=…,offset=…`).
fn replica_offset(master_info: &str, replica_port: u16) -> Option<u64> {
    let port = format!("port={replica_port}");
    resp::info_fields(master_info)
        .filter(|(name, _)| name.starts_with("slave"))
        .map(|(_, value)| value)
        .find(|value| value.split(',').any(|field| field == port))?
        .split(',')
        .find_map(|field| field.strip_prefix("offset="))?
        .parse()
        .ok()
}
