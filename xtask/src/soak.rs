//! `cargo xtask soak [--topology standalone|cluster|sentinel] [--apps N]
//! [--seconds S] [--wait-replicas N] [--client-cache N] [--debug]
//! [--framework axum|actix]`:
//! demo processes on Redis under load through a failover
//! (`examples/src/bin/soak.rs` says what it does and checks).
//!
//! Builds the demo and the soak driver, then runs the driver, which starts
//! redis-server and the demo itself. Release builds by default; `--debug`
//! uses the debug build of `cargo xtask test`, which it has just made,
//! so that its short run costs seconds rather than a release build.

use crate::{Result, TEST_BUILD, cargo, prerequisites, root, run};

/// The options of `cargo xtask soak`.
#[derive(Clone)]
pub(crate) struct Soak {
    /// How long the load runs.
    pub(crate) seconds: u64,
    /// Build and run the debug profile instead of release.
    pub(crate) debug: bool,
    /// The demo's framework (`axum` or `actix`); the driver's default when
    /// `None`.
    pub(crate) framework: Option<String>,
    /// `standalone`, `cluster` or `sentinel`; the driver's default
    /// (standalone) when `None`.
    pub(crate) topology: Option<String>,
    /// Demo processes; the driver's default when `None`.
    pub(crate) apps: Option<usize>,
    /// The store's durability: writes wait for this many replicas.
    pub(crate) wait_replicas: Option<u32>,
    /// The store's client cache: this many sessions per process.
    pub(crate) client_cache: Option<usize>,
}

impl Soak {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut soak = Soak {
            seconds: 30,
            debug: false,
            framework: None,
            topology: None,
            apps: None,
            wait_replicas: None,
            client_cache: None,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    soak.seconds = args
                        .next()
                        .and_then(|s| s.parse().ok())
                        .ok_or("--seconds takes a whole number of seconds")?;
                }
                "--debug" => soak.debug = true,
                "--framework" => {
                    soak.framework = Some(
                        args.next()
                            .ok_or("--framework takes axum or actix")?
                            .clone(),
                    );
                }
                "--topology" => {
                    soak.topology = Some(
                        args.next()
                            .ok_or("--topology takes standalone, cluster or sentinel")?
                            .clone(),
                    );
                }
                "--apps" => {
                    soak.apps = Some(
                        args.next()
                            .and_then(|s| s.parse().ok())
                            .ok_or("--apps takes a number of demo processes")?,
                    );
                }
                "--wait-replicas" => {
                    soak.wait_replicas = Some(
                        args.next()
                            .and_then(|s| s.parse().ok())
                            .ok_or("--wait-replicas takes a number of replicas")?,
                    );
                }
                "--client-cache" => {
                    soak.client_cache = Some(
                        args.next()
                            .and_then(|s| s.parse().ok())
                            .ok_or("--client-cache takes a number of sessions")?,
                    );
                }
                other => return Err(format!("soak: unknown option {other}")),
            }
        }
        Ok(soak)
    }
}

pub(crate) fn run_soak(soak: &Soak) -> Result {
    build_and_run(soak, true)
}

/// Runs the soak; `build`: build the binaries first (a second soak in a
/// row skips it).
pub(crate) fn build_and_run(soak: &Soak, build_first: bool) -> Result {
    if build_first {
        build(soak)?;
    }
    let profile = if soak.debug { "debug" } else { "release" };
    let bin = root().join("target").join(profile);
    let mut driver = std::process::Command::new(bin.join("soak"));
    driver
        .arg("--demo")
        .arg(bin.join("demo"))
        .args(["--seconds", &soak.seconds.to_string()]);
    if let Some(framework) = &soak.framework {
        driver.args(["--framework", framework]);
    }
    if let Some(topology) = &soak.topology {
        driver.args(["--topology", topology]);
    }
    if let Some(apps) = soak.apps {
        driver.args(["--apps", &apps.to_string()]);
    }
    if let Some(wait) = soak.wait_replicas {
        driver.args(["--wait-replicas", &wait.to_string()]);
    }
    if let Some(sessions) = soak.client_cache {
        driver.args(["--client-cache", &sessions.to_string()]);
    }
    run(&mut driver)
}

fn build(soak: &Soak) -> Result {
    prerequisites::ensure_all()?;
    let mut build = cargo();
    if soak.debug {
        // Exactly the build of `cargo xtask test`, which puts the examples'
        // binaries in target/debug for their integration tests, so that after
        // it nothing is compiled again. A `cargo build` of the two binaries
        // would leave out the dev-dependencies, resolve other features and
        // rebuild much of the tree beside the test build, on disk too.
        build.args(TEST_BUILD).args(["--no-run", "--quiet"]);
    } else {
        build.args(["build", "--bin", "demo", "--bin", "soak"]);
        build.args(["-p", "session-examples", "--release"]);
    }
    run(&mut build)
}
