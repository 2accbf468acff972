//! `cargo xtask soak --seconds N [--debug] [--framework axum|actix]`: the demo on Redis under load
//! through a Redis restart (`examples/src/bin/soak.rs` says what it checks).
//!
//! Builds the demo and the soak driver, then runs the driver, which starts
//! redis-server and the demo itself. Release builds by default; `--debug`
//! uses the debug build of `cargo xtask test`, which it has just made,
//! so that its short run costs seconds rather than a release build.

use crate::{Result, TEST_BUILD, cargo, prerequisites, root, run};

/// The options of `cargo xtask soak`.
pub(crate) struct Soak {
    /// How long the load runs.
    pub(crate) seconds: u64,
    /// Build and run the debug profile instead of release.
    pub(crate) debug: bool,
    /// The demo's framework (`axum` or `actix`); the driver's default when
    /// `None`.
    pub(crate) framework: Option<String>,
}

impl Soak {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut soak = Soak {
            seconds: 30,
            debug: false,
            framework: None,
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
                other => return Err(format!("soak: unknown option {other}")),
            }
        }
        Ok(soak)
    }
}

pub(crate) fn run_soak(soak: &Soak) -> Result {
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
    run(&mut build)?;
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
    run(&mut driver)
}
