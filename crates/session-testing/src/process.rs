//! Finding the Redis binaries, picking ports, and running one server process
//! until it answers.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::resp::{self, Reply};

/// How long a process may take to answer `PING` after it was spawned.
pub(crate) const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How often readiness is polled.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The oldest Redis these helpers (and `session-redis`, which needs
/// `PEXPIRETIME`) support.
const MIN_VERSION: (u32, u32) = (7, 0);

const INSTALL_HINT: &str = "install Redis >= 7.0 (Debian/Ubuntu: `apt-get install redis-server redis-tools`; \
     `cargo xtask test` does this on a fresh machine)";

/// The path of `name` on `PATH`, or a message saying what to install.
pub(crate) fn binary(name: &'static str) -> Result<&'static Path, String> {
    static SERVER: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    static CLI: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let cell = match name {
        "redis-server" => &SERVER,
        "redis-cli" => &CLI,
        _ => return Err(format!("unknown Redis binary `{name}`")),
    };
    cell.get_or_init(|| {
        let path = find_on_path(name)
            .ok_or_else(|| format!("`{name}` was not found on PATH: {INSTALL_HINT}"))?;
        if name == "redis-server" {
            check_version(&path)?;
        }
        Ok(path)
    })
    .as_deref()
    .map_err(Clone::clone)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn check_version(server: &Path) -> Result<(), String> {
    let output = Command::new(server)
        .arg("--version")
        .output()
        .map_err(|e| format!("could not run `{}`: {e}", server.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "Redis server v=7.0.15 sha=..."
    let version = text
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .ok_or_else(|| format!("unexpected `redis-server --version` output: {text}"))?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_VERSION {
        return Err(format!(
            "redis-server {version} is too old (PEXPIRETIME needs 7.0): {INSTALL_HINT}"
        ));
    }
    Ok(())
}

/// The prefix of a standalone server's temporary directory.
pub(crate) const SERVER_DIR: &str = "session-testing-redis-";
/// The prefix of the sentinels' shared temporary directory.
pub(crate) const SENTINEL_DIR: &str = "session-testing-sentinel-";
/// The prefix of a Postgres cluster's temporary directory.
pub(crate) const POSTGRES_DIR: &str = "session-testing-postgres-";

/// The file in each of those directories that names the process that made
/// it: `<pid> <start time>`, so that a reused pid is not taken for it.
const OWNER_FILE: &str = "owner";

/// A new temporary directory named `prefix…` (one of the prefixes above),
/// recorded as owned by this process, so that [`reap_orphans`] can tell
/// when its servers have outlived it.
pub(crate) fn owned_temp_dir(prefix: &'static str) -> Result<TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| format!("could not create a temporary directory: {e}"))?;
    let owner = start_time(Path::new("/proc/self"))
        .map(|started| format!("{} {started}", std::process::id()))
        .ok_or("could not read /proc/self/stat")?;
    let path = dir.path().join(OWNER_FILE);
    fs::write(&path, owner).map_err(|e| format!("could not write {}: {e}", path.display()))?;
    Ok(dir)
}

/// Kills the Redis processes that test processes killed earlier left
/// behind, and removes their directories; returns how many it killed.
///
/// A test process killed with SIGKILL (a CI timeout, say) runs no
/// destructor, so its servers live on with their temporary directories.
/// They are recognised by their working directory, which Redis changes to
/// its `dir` (one of this crate's temporary directories), whose owner file
/// names a process that is gone: the servers of test processes still
/// running are left alone. Runs by itself before the first server of a
/// process starts.
pub fn reap_orphans() -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    // The binary this crate starts, symbolic links resolved as in
    // `/proc/<pid>/exe` (Debian's `redis-server` links to
    // `redis-check-rdb`).
    let Some(server) = binary("redis-server")
        .ok()
        .and_then(|path| fs::canonicalize(path).ok())
    else {
        return 0;
    };
    let temp = std::env::temp_dir();
    let mut reaped = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        let is_redis = fs::read_link(proc_dir.join("exe")).is_ok_and(|exe| exe == server);
        let Ok(cwd) = fs::read_link(proc_dir.join("cwd")) else {
            continue;
        };
        let ours = cwd.parent() == Some(temp.as_path())
            && cwd
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    [SERVER_DIR, SENTINEL_DIR]
                        .iter()
                        .any(|prefix| name.starts_with(prefix))
                });
        if !is_redis || !ours || !owner_is_gone(&cwd) {
            continue;
        }
        let killed = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if killed {
            reaped += 1;
            // Sentinels share a directory: the first of them removes it,
            // and the others, killed in this same sweep, find it gone.
            let _ = fs::remove_dir_all(&cwd);
        }
    }
    reaped
}

/// Whether the process named by `dir`'s owner file has ended. A directory
/// without one (an older version's, or one being set up) is never taken
/// for an orphan's.
pub(crate) fn owner_is_gone(dir: &Path) -> bool {
    let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
        return false;
    };
    let Some((pid, started)) = owner.trim().split_once(' ') else {
        return false;
    };
    start_time(&Path::new("/proc").join(pid)).is_none_or(|now| now.to_string() != started)
}

/// When the process of `proc_dir` (`/proc/<pid>`) started, in clock ticks
/// since boot: field 22 of its `stat`, counted after the command name in
/// parentheses, which may itself contain spaces.
fn start_time(proc_dir: &Path) -> Option<u64> {
    let stat = fs::read_to_string(proc_dir.join("stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// A loopback port that nothing listens on right now.
///
/// The kernel hands out ephemeral ports, which never include the 6379 of a
/// system-wide Redis service. Another process may grab the port before the
/// server binds it; [`Instance::start_on_free_port`] retries then.
pub(crate) fn free_port() -> Result<u16, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// One `redis-server` process (a data server or a sentinel) with the
/// arguments to start it again.
pub(crate) struct Instance {
    pub(crate) port: u16,
    /// The arguments, without the port.
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    /// Starts `redis-server args --port P` on a free port, trying other
    /// ports when the one picked was taken in between.
    pub(crate) fn start_on_free_port(
        args: Vec<String>,
        log: PathBuf,
        port_arg: impl Fn(u16) -> Vec<String>,
    ) -> Result<Instance, String> {
        static REAPED: Once = Once::new();
        REAPED.call_once(|| {
            reap_orphans();
        });
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut full_args = args.clone();
            full_args.extend(port_arg(port));
            let mut instance = Instance {
                port,
                args: full_args,
                log: log.clone(),
                child: None,
            };
            match instance.start() {
                Ok(()) => return Ok(instance),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Spawns the process (again) and waits until it answers `PING`.
    pub(crate) fn start(&mut self) -> Result<(), String> {
        self.kill();
        let child = Command::new(binary("redis-server")?)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not spawn redis-server: {e}"))?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    /// Whether the server answering on the port is this instance's
    /// process.
    fn answers_itself(&self) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        let Ok(info) = resp::command(self.port, &["INFO", "server"]) else {
            return false;
        };
        info.text().is_some_and(|info| {
            resp::info_fields(&info)
                .any(|(name, pid)| name == "process_id" && pid == child.id().to_string())
        })
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited during startup ({status}); its log:\n{}",
                        self.port,
                        self.log_tail()
                    ));
                }
            }
            match resp::command(self.port, &["PING"]) {
                // Another process may have taken the port between the pick
                // and the bind; ours then exits, which the check above sees.
                Ok(Reply::Status(pong)) if pong == "PONG" && self.answers_itself() => {
                    return Ok(());
                }
                // LOADING while it replays its append-only file, or not
                // listening yet: keep waiting.
                _ if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                other => {
                    self.kill();
                    return Err(format!(
                        "redis-server on port {} did not answer PING within {STARTUP_TIMEOUT:?} \
                         (last answer: {other:?}); its log:\n{}",
                        self.port,
                        self.log_tail()
                    ));
                }
            }
        }
    }

    /// The process's whole log.
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the process's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Kills the process with SIGKILL (a crash, not a shutdown) and reaps it.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends `signal` (`kill`'s spelling, e.g. `-STOP`) to the process, if
    /// it runs.
    pub(crate) fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            signal_pid(child.id(), signal);
        }
    }
}

/// Sends `signal` (`kill`'s spelling, e.g. `-STOP`) to the process `pid`.
pub(crate) fn signal_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` (every 50 ms) until it returns `Ok`, or fails after
/// `timeout` with the last reason it gave: for a deployment's state that
/// changes on its own (a failover, a replica catching up).
///
/// ```
/// use std::time::Duration;
///
/// let mut polls = 0;
/// let third = session_testing::wait_for("a third poll", Duration::from_secs(5), || {
///     polls += 1;
///     if polls == 3 { Ok(polls) } else { Err(format!("poll {polls}")) }
/// });
/// assert_eq!(third, Ok(3));
/// ```
///
/// # Errors
///
/// When `timeout` passes without an `Ok`: the message names `what` and
/// the last reason.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(_) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Err(reason) => {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}: {reason}"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_cannot_bind_its_port_is_not_taken_for_the_one_that_did() {
        let other = crate::RedisServer::start();
        let dir = tempfile::tempdir().expect("a directory");
        let log = dir.path().join("redis.log");
        let mut instance = Instance {
            port: other.port(),
            args: [
                "--bind",
                "127.0.0.1",
                "--port",
                &other.port().to_string(),
                "--dir",
                &dir.path().display().to_string(),
                "--logfile",
                &log.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec(),
            log,
            child: None,
        };
        let error = instance
            .start()
            .expect_err("its port belongs to another server");
        assert!(error.contains("exited during startup"), "{error}");
    }
}
