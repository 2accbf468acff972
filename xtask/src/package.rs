//! The packages of the published crates, as crates.io would receive them:
//! `cargo package` builds each from its packaged sources (the workspace's
//! crates in dependency order, each against the others' packages), and
//! each package holds what its users need, nothing else: its sources, its
//! README and its manifest, not tests, test data or benches.

use std::process::Command;

use crate::{Result, cargo, run};

/// The crates published to crates.io, in dependency order.
pub(crate) const PUBLISHED: &[&str] = &[
    "session-core",
    "session-conformance",
    "session-simple-cookie",
    "session-encrypted-cookie",
    "session-redis",
    "session-sqlx",
    "session-axum",
    "session-actix",
];

/// Files every package holds beside `src/`: cargo's and the README.
const PACKAGE_FILES: &[&str] = &[
    "Cargo.toml",
    "Cargo.toml.orig",
    "Cargo.lock",
    ".cargo_vcs_info.json",
    "README.md",
];

/// Fails on a package that does not build, or holds more than its users
/// need.
pub(crate) fn check() -> Result {
    for crate_name in PUBLISHED {
        let files = list(crate_name)?;
        let extra: Vec<&String> = files
            .iter()
            .filter(|file| !file.starts_with("src/") && !PACKAGE_FILES.contains(&file.as_str()))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "the package of {crate_name} holds files its users do not need: {extra:?} \
                 (see `include` in its Cargo.toml)"
            ));
        }
        if !files.iter().any(|file| file == "README.md") {
            return Err(format!("the package of {crate_name} has no README.md"));
        }
    }
    forget_stale_extractions();
    let mut package = cargo();
    package
        .args(["package", "--workspace", "--allow-dirty"])
        .env("CARGO_TARGET_DIR", crate::root().join(VERIFY_TARGET));
    for excluded in unpublished()? {
        package.args(["--exclude", &excluded]);
    }
    run(&mut package)
}

/// The files of `crate_name`'s package.
fn list(crate_name: &str) -> Result<Vec<String>> {
    let mut command = cargo();
    command.args(["package", "--list", "--allow-dirty", "-p", crate_name]);
    let output = output(&mut command)?;
    Ok(output.lines().map(str::to_owned).collect())
}

/// The workspace's members that are not published.
fn unpublished() -> Result<Vec<String>> {
    let metadata = output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    // Members are listed with their names in `"name":"…"`; the published
    // ones are known, so every other name is unpublished.
    let names = metadata
        .split("\"name\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| name.starts_with("session-") || *name == "xtask")
        .filter(|name| !PUBLISHED.contains(name))
        .map(str::to_owned);
    let mut unpublished: Vec<String> = names.collect();
    unpublished.sort();
    unpublished.dedup();
    Ok(unpublished)
}

fn output(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{command:?} printed non-UTF-8: {e}"))
}

/// Where the packages are verified: a target directory of their own,
/// made anew by every run (see [`forget_stale_extractions`]).
const VERIFY_TARGET: &str = "target/package-verify";

/// Removes what cargo kept of the workspace's packages from an earlier run.
/// It verifies each package against the others' packages through a local
/// registry, and takes a registry package as never changing: it extracts
/// one only when its `name-version` directory is missing, and reuses what
/// it built from it. With the version unchanged, a second run would build
/// against the first run's sources. So the verification builds go (in a
/// target directory of their own), and so do the local registry's
/// extracted sources (its directories' names start with `-`; crates.io's
/// start with its host name).
fn forget_stale_extractions() {
    let _ = std::fs::remove_dir_all(crate::root().join(VERIFY_TARGET));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo"))
        });
    let Some(sources) = cargo_home.map(|home| home.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(packages) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for package in packages.flatten() {
            let name = package.file_name().to_string_lossy().into_owned();
            if PUBLISHED.iter().any(|published| {
                name.strip_prefix(published)
                    .is_some_and(|rest| rest.starts_with('-'))
            }) {
                let _ = std::fs::remove_dir_all(package.path());
            }
        }
    }
}
