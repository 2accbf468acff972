//! What the test suite needs on the machine, and installing it when missing.
//!
//! Installation goes through apt-get and needs root; elsewhere a clear
//! message says what to install.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, run};

/// A program the tests start, and the Debian packages that provide it.
struct Tool {
    binary: &'static str,
    packages: &'static [&'static str],
    why: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        binary: "redis-server",
        packages: &["redis-server", "redis-tools"],
        why: "Redis store tests start their own redis-server processes",
    },
    Tool {
        binary: "redis-cli",
        packages: &["redis-tools"],
        why: "creating a Redis Cluster for the cluster tests",
    },
    Tool {
        binary: "initdb",
        packages: &["postgresql"],
        why: "Postgres store tests start their own throwaway Postgres clusters",
    },
    Tool {
        binary: "chromium",
        packages: &["chromium", "chromium-driver"],
        why: "the real-browser test of the demo app",
    },
    Tool {
        binary: "chromedriver",
        packages: &["chromium-driver"],
        why: "driving Chromium through WebDriver",
    },
];

pub(crate) fn on_path(binary: &str) -> bool {
    env::var_os("PATH").is_some_and(|paths| {
        env::split_paths(&paths).any(|dir| Path::new(&dir).join(binary).is_file())
    })
}

/// Whether `tool` is installed: on `PATH`, or for Postgres, whose
/// binaries Debian keeps off `PATH`, in `/usr/lib/postgresql/<version>/bin`
/// (where session-testing looks for them).
fn installed(tool: &Tool) -> bool {
    if tool.binary == "initdb" && postgres_installed() {
        return true;
    }
    on_path(tool.binary)
}

pub(crate) fn postgres_installed() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|versions| {
        versions
            .flatten()
            .any(|version| version.path().join("bin").join("initdb").is_file())
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// Installs every missing tool, or explains what to install.
pub(crate) fn ensure_all() -> Result {
    let missing: Vec<&Tool> = TOOLS.iter().filter(|tool| !installed(tool)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing
        .iter()
        .flat_map(|tool| tool.packages.iter().copied())
        .collect();
    packages.sort_unstable();
    packages.dedup();
    if !(is_root() && on_path("apt-get")) {
        let reasons: Vec<String> = missing
            .iter()
            .map(|tool| format!("  {} ({})", tool.binary, tool.why))
            .collect();
        return Err(format!(
            "the tests need these programs:\n{}\ninstall them, e.g. `sudo apt-get install {}`",
            reasons.join("\n"),
            packages.join(" ")
        ));
    }
    eprintln!("xtask: installing {}", packages.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    match TOOLS.iter().find(|tool| !installed(tool)) {
        None => Ok(()),
        Some(tool) => Err(format!(
            "{} is still missing after installing {}",
            tool.binary,
            packages.join(" ")
        )),
    }
}

/// The Python packages of the aiohttp interop test, from PyPI.
/// aiohttp-session's extras bring its cookie storages' crypto:
/// `cryptography` (Fernet, `secure`) and PyNaCl (`pynacl`).
const PYTHON_PACKAGES: &[&str] = &["aiohttp", "aiohttp-session[secure,pynacl]", "redis"];

/// A virtual environment under `target/` with aiohttp, aiohttp-session (and
/// its `secure` and `pynacl` extras) and redis from PyPI, created once and
/// reused while its package list is this one; returns its interpreter.
///
/// The interop test finds it through `SESSION_TEST_PYTHON`.
pub(crate) fn ensure_python_env(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target").join("python-venv");
    let python = venv.join("bin").join("python");
    let ready = venv.join(".ready");
    let wanted = PYTHON_PACKAGES.join("\n");
    let installed = std::fs::read_to_string(&ready).ok();
    if installed.as_deref() == Some(wanted.as_str()) && python.is_file() {
        return Ok(python);
    }
    let system_python = ["python3", "python"]
        .into_iter()
        .find(|name| on_path(name))
        .ok_or("the aiohttp interop test needs Python 3 with venv (Debian: apt-get install python3 python3-venv)")?;
    if run(Command::new(system_python)
        .args(["-m", "venv", "--clear"])
        .arg(&venv))
    .is_err()
    {
        if is_root() && on_path("apt-get") {
            run(Command::new("apt-get").arg("update").arg("-qq"))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "python3-venv"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
            run(Command::new(system_python)
                .args(["-m", "venv", "--clear"])
                .arg(&venv))?;
        } else {
            return Err("`python3 -m venv` failed: install python3-venv".to_owned());
        }
    }
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES))?;
    std::fs::write(&ready, wanted)
        .map_err(|e| format!("could not write {}: {e}", ready.display()))?;
    Ok(python)
}

/// The cargo-deny version `cargo xtask ci` installs when it is missing.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Installs cargo-deny from crates.io when it is missing, so that `cargo
/// xtask ci` always checks licenses, bans and sources.
pub(crate) fn ensure_cargo_deny() -> Result {
    if on_path("cargo-deny") {
        return Ok(());
    }
    eprintln!("xtask: cargo-deny is missing; installing it from crates.io");
    run(crate::cargo().args([
        "install",
        "--locked",
        "cargo-deny",
        "--version",
        CARGO_DENY_VERSION,
    ]))
}
