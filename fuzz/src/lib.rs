//! The fuzz targets of the session crates' decoders (issue 7): one target
//! per decoder that reads bytes from the network or from Redis. The checks
//! live in the main workspace's `session-fuzz-checks` (`fuzz-checks/`),
//! whose test replays the committed inputs, re-exported here as [`checks`];
//! the targets in `fuzz_targets/` only hand libFuzzer's input to them.
//!
//! Run them with `cargo xtask fuzz --seconds N` from the repository root
//! (see `fuzz/README.md`).

pub use session_fuzz_checks as checks;
