//! CPU placement and CPU time of processes (Linux).
//!
//! The machine this was written for has 2 cores, so a run pins the server
//! under test to one core and the load generator (with redis-server) to the
//! other: the server's core then measures the server alone. Pinning uses
//! the `taskset` tool (util-linux), so that this crate needs no `unsafe`
//! `sched_setaffinity` call; without it, or with fewer than 2 cores, runs
//! are unpinned and the report says so.

use std::fs;
use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The core the server under test runs on.
pub const SERVER_CORE: usize = 0;
/// The core of the load generator and redis-server.
pub const LOAD_CORE: usize = 1;

/// Whether processes can be pinned: `taskset` works and there are at least
/// two cores.
#[must_use]
pub fn can_pin() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    cores >= 2
        && Command::new("taskset")
            .args(["-p", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// Pins every thread of process `pid` to `core`; threads it starts later
/// inherit the mask.
///
/// # Errors
///
/// When `taskset` fails.
pub fn pin(pid: u32, core: usize) -> io::Result<()> {
    let status = Command::new("taskset")
        .args(["--all-tasks", "--cpu-list", "--pid"])
        .arg(core.to_string())
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "taskset on {pid} failed: {status}"
        )))
    }
}

/// A command that runs `program` pinned to `core` (through `taskset`), or
/// unpinned when `core` is `None`.
#[must_use]
pub fn command_on(core: Option<usize>, program: &std::path::Path) -> Command {
    match core {
        Some(core) => {
            let mut command = Command::new("taskset");
            command.args(["--cpu-list", &core.to_string()]).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// The CPU time process `pid` has used so far, summed over its live
/// threads (`/proc/PID/task/*/schedstat`, in nanoseconds, rather than
/// `/proc/PID/stat`'s 10 ms ticks). A running thread's figure only moves
/// at a context switch or a scheduler tick (4 ms here): precise enough over
/// the seconds another process is measured, not for this one's own short
/// runs, which [`own_cpu_time`] is for.
///
/// # Errors
///
/// When the process is gone or `/proc` is unreadable.
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let mut total_ns: u64 = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread may exit between listing and reading: it is not counted.
        let Ok(schedstat) = fs::read_to_string(path) else {
            continue;
        };
        let on_cpu_ns: u64 = schedstat
            .split_whitespace()
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::other("unexpected schedstat format"))?;
        total_ns += on_cpu_ns;
    }
    Ok(Duration::from_nanos(total_ns))
}

/// The CPU time this process has used so far, all threads, to the
/// nanosecond (`CLOCK_PROCESS_CPUTIME_ID`, which counts a running thread's
/// time up to the call, unlike [`process_cpu_time`]).
#[must_use]
pub fn own_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    // Never negative.
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}
