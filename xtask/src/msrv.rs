//! The minimum supported Rust version, checked: every published crate,
//! with all its features, must build with the `rust-version` that the
//! workspace's manifest states, on that toolchain itself (installed through
//! rustup when missing), against the dependency versions of `Cargo.lock`.
//!
//! Clippy's `incompatible_msrv` lint catches our own use of newer standard
//! library items, but not a dependency that needs a newer compiler; only a
//! build on the old toolchain catches both.

use std::process::Command;

use crate::package::PUBLISHED;
use crate::{Result, root, run};

/// Builds (`cargo check`) the published crates with the toolchain of the
/// workspace's `rust-version`, in a target directory of its own.
pub(crate) fn check() -> Result {
    let version = rust_version()?;
    let installed = Command::new("rustup")
        .args(["run", &version, "rustc", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        eprintln!("xtask: installing Rust {version}, the workspace's rust-version");
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            &version,
            "--profile",
            "minimal",
        ]))?;
    }
    let mut check = Command::new("rustup");
    check
        .args([
            "run",
            &version,
            "cargo",
            "check",
            "--locked",
            "--all-features",
        ])
        .args(PUBLISHED.iter().flat_map(|name| ["-p", name]))
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env("CARGO_TARGET_DIR", root().join("target").join("msrv"))
        .current_dir(root());
    run(&mut check)
}

/// The `rust-version` of the workspace manifest's `[workspace.package]`.
fn rust_version() -> Result<String> {
    let manifest = root().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("could not read {}: {e}", manifest.display()))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("rust-version"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .next()
        .ok_or_else(|| format!("no rust-version in {}", manifest.display()))
}
