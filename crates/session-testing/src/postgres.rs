//! A throwaway Postgres cluster: `initdb` into a temporary directory, one
//! `postgres` on a free loopback port, removed when dropped.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{self, POLL_INTERVAL};

/// How long `postgres` may take to accept connections after it was
/// spawned (it may replay its log after a crash).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a shutdown may take before the processes are killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

const INSTALL_HINT: &str = "install Postgres (Debian/Ubuntu: `apt-get install postgresql`; \
     `cargo xtask test` does this on a fresh machine)";

/// The superuser of the clusters started here, which trusts every local
/// connection.
pub const POSTGRES_USER: &str = "postgres";

/// The directory holding `initdb`, `postgres` and `psql`: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout, where they are not
/// on `PATH`), else the directory of `initdb` on `PATH`.
fn bin_dir() -> Result<&'static Path, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let debian = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version: u32 = entry.file_name().to_str()?.parse().ok()?;
                let bin = entry.path().join("bin");
                bin.join("initdb").is_file().then_some((version, bin))
            })
            .max();
        if let Some((_, bin)) = debian {
            return Ok(bin);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
            .ok_or_else(|| format!("Postgres's `initdb` was not found: {INSTALL_HINT}"))
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// The uid and gid to run Postgres as: `nobody` when this process is root
/// (Postgres refuses to run as root), else none (run as ourselves).
fn unprivileged_user() -> Result<Option<(u32, u32)>, String> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("could not read /proc/self/status: {e}"))?;
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .ok_or("no Uid in /proc/self/status")?;
    if euid != "0" {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(|e| format!("could not read /etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"nobody") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| "running as root, and there is no user `nobody` to run Postgres as".into())
}

/// A `postgres` server of its own: a fresh cluster (`initdb`) in a temporary
/// directory, listening on a free port of 127.0.0.1 (and on a Unix socket
/// in that directory), where the user [`POSTGRES_USER`] connects without a
/// password. Stopped, and the directory removed, when dropped (also when
/// a test panics); a test process killed with SIGKILL leaves it behind
/// until the next process that starts one ([`reap_postgres_orphans`]).
///
/// Postgres refuses to run as root: when the tests run as root, the
/// cluster belongs to `nobody` and runs as that user (so the temporary
/// directory, `TMPDIR` or `/tmp`, must be reachable by `nobody`).
///
/// Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`):
/// a test server never needs to survive a power cut, and starts faster.
///
/// ```no_run
/// use session_testing::PostgresServer;
///
/// let mut server = PostgresServer::start();
/// let url = server.url(); // "postgres://postgres@127.0.0.1:<port>/postgres"
/// server.execute("CREATE DATABASE app").unwrap();
/// server.stop(); // an outage
/// server.restart(); // same port, same data
/// # drop(url);
/// ```
pub struct PostgresServer {
    port: u16,
    child: Option<Child>,
    user: Option<(u32, u32)>,
    dir: TempDir,
}

impl PostgresServer {
    /// Makes a cluster and starts its server; see the type's docs.
    ///
    /// # Panics
    ///
    /// When Postgres is not installed (the message says what to install),
    /// or when the server does not accept connections within 30 seconds
    /// (the message quotes its log).
    #[track_caller]
    pub fn start() -> PostgresServer {
        Self::launch().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A server shared by every caller that holds the returned [`Arc`]:
    /// started by the first, stopped when the last one drops it. Tests
    /// that each use tables or databases of their own share one this way
    /// instead of each making a cluster.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    #[track_caller]
    pub fn shared() -> Arc<PostgresServer> {
        static SHARED: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(server) = shared.upgrade() {
            return server;
        }
        let server = Arc::new(Self::start());
        *shared = Arc::downgrade(&server);
        server
    }

    fn launch() -> Result<PostgresServer, String> {
        static REAPED: Once = Once::new();
        REAPED.call_once(|| {
            reap_postgres_orphans();
        });
        let bin = bin_dir()?;
        let user = unprivileged_user()?;
        let mut dir = process::owned_temp_dir(process::POSTGRES_DIR)?;
        // The cluster's owner must reach its directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("could not open up {}: {e}", dir.path().display()))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| format!("could not give {} away: {e}", dir.path().display()))?;
        }
        let data = dir.path().join(DATA_DIR);
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username",
                POSTGRES_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ])
            .stdin(Stdio::null());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb
            .output()
            .map_err(|e| format!("could not run initdb: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "initdb failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = PostgresServer {
                port: process::free_port()?,
                child: None,
                user,
                dir,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        Err(last_error)
    }

    /// Takes the directory out of a server that failed to start, to try
    /// another port with it.
    fn take_dir(mut self) -> TempDir {
        self.kill_all();
        let placeholder = tempfile::tempdir().expect("a temporary directory");
        std::mem::replace(&mut self.dir, placeholder)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join(DATA_DIR)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Spawns `postgres` on the port and waits until it accepts
    /// connections.
    fn spawn(&mut self) -> Result<(), String> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .map_err(|e| format!("could not open the log: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("could not open the log: {e}"))?;
        let mut command = Command::new(bin_dir()?.join("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .args(["-c", "logging_collector=off"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("could not spawn postgres: {e}"))?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    /// Waits until `postmaster.pid` names our process and says `ready`
    /// (which Postgres writes once it accepts connections on every
    /// socket), or the process exits (its port was taken, say).
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let pid_file = self.data().join("postmaster.pid");
        loop {
            let Some(child) = &mut self.child else {
                return Err("postgres is not running".into());
            };
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "postgres on port {} exited during startup ({status}); its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            let pid = child.id().to_string();
            let ready = fs::read_to_string(&pid_file).is_ok_and(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines.first() == Some(&pid.as_str())
                    && lines.get(3) == Some(&self.port.to_string().as_str())
                    && lines.get(7).is_some_and(|status| status.trim() == "ready")
            });
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill_all();
                return Err(format!(
                    "postgres on port {} did not accept connections within {STARTUP_TIMEOUT:?}; \
                     its log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The port it listens on, on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of the database `name` on this server.
    #[must_use]
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://{POSTGRES_USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Its temporary directory (the cluster is in `data` below it).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `sql` with `psql` on the database `postgres`, and returns what
    /// it printed (unaligned, tuples only): for set-up and checks from a
    /// test, without a client library.
    ///
    /// # Errors
    ///
    /// `psql`'s message when the statement fails or the server is down.
    pub fn execute(&self, sql: &str) -> Result<String, String> {
        let output = Command::new(bin_dir()?.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", POSTGRES_USER, "-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run psql: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Stops the server (a "fast" shutdown: connections are closed), as
    /// an outage would. Idempotent.
    pub fn stop(&mut self) {
        self.signal_postmaster("-INT");
        self.reap(SHUTDOWN_TIMEOUT);
        self.kill_all();
    }

    /// Starts the server again on the same port with the same data (stopping
    /// it first if it runs), and waits until it accepts connections.
    ///
    /// # Panics
    ///
    /// When it does not come back within 30 seconds, e.g. because another
    /// process took the port meanwhile.
    #[track_caller]
    pub fn restart(&mut self) {
        self.stop();
        self.spawn().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Freezes every process of the server with SIGSTOP: connections stay
    /// open and nothing answers, as with a hung host. Undo with
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        for pid in self.pids() {
            process::signal_pid(pid, "-STOP");
        }
    }

    /// Lets the processes [`pause`](Self::pause) froze run again.
    pub fn resume(&self) {
        for pid in self.pids() {
            process::signal_pid(pid, "-CONT");
        }
    }

    /// Whether the server process is alive.
    #[must_use]
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The server's log, last lines: worth printing when a test fails.
    #[must_use]
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The pids of this server's processes: the postmaster and the
    /// backends of the connections open now (all of them work in its data
    /// directory), e.g. to pin them to a core or to measure their CPU time.
    #[must_use]
    pub fn pids(&self) -> Vec<u32> {
        let data = self.data();
        processes_in(|cwd| cwd == data)
    }

    fn signal_postmaster(&self, signal_name: &str) {
        if let Some(child) = &self.child {
            process::signal_pid(child.id(), "-CONT");
            process::signal_pid(child.id(), signal_name);
        }
    }

    /// Waits up to `timeout` for the postmaster to exit.
    fn reap(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while let Some(child) = &mut self.child {
            match child.try_wait() {
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) | Err(_) => return,
                Ok(Some(_)) => self.child = None,
            }
        }
    }

    /// Kills every process of the server with SIGKILL.
    fn kill_all(&mut self) {
        for pid in self.pids() {
            process::signal_pid(pid, "-KILL");
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // Immediate shutdown: no checkpoint, the directory goes anyway.
        self.signal_postmaster("-QUIT");
        self.reap(SHUTDOWN_TIMEOUT);
        self.kill_all();
    }
}

impl fmt::Debug for PostgresServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresServer")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The cluster's directory inside a server's temporary directory.
const DATA_DIR: &str = "data";

/// The pids of the `postgres` processes whose working directory satisfies
/// `matches`.
fn processes_in(mut matches: impl FnMut(&Path) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let exe = fs::read_link(entry.path().join("exe")).ok()?;
            if exe.file_name()? != "postgres" {
                return None;
            }
            let cwd = fs::read_link(entry.path().join("cwd")).ok()?;
            matches(&cwd).then_some(pid)
        })
        .collect()
}

/// Kills the Postgres processes that test processes killed earlier left
/// behind, and removes their directories; returns how many processes it
/// killed.
///
/// Every process of a server started here works in the cluster's
/// directory, `<temp>/session-testing-postgres-*/data`, whose parent's
/// owner file names the test process that made it: when that process is
/// gone, the server is an orphan. Servers of test processes still running
/// are left alone. Runs by itself before the first server of a process
/// starts.
pub fn reap_postgres_orphans() -> usize {
    let temp = std::env::temp_dir();
    let orphaned = |cwd: &Path| {
        cwd.file_name().is_some_and(|name| name == DATA_DIR)
            && cwd.parent().is_some_and(|dir| {
                dir.parent() == Some(temp.as_path())
                    && dir
                        .file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with(process::POSTGRES_DIR))
                    && process::owner_is_gone(dir)
            })
    };
    let mut dirs = Vec::new();
    let pids = processes_in(|cwd| {
        let orphan = orphaned(cwd);
        if orphan {
            dirs.push(cwd.to_owned());
        }
        orphan
    });
    for pid in &pids {
        process::signal_pid(*pid, "-KILL");
    }
    for dir in dirs {
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir_all(parent);
        }
    }
    pids.len()
}
