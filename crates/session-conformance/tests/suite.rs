//! The suite itself: what it runs against a full store, and what it skips
//! for a store that declares it keeps less.

use std::time::Duration;

use session_conformance::{self as conformance, Capabilities, StoreKind};
use session_core::MemoryStore;

#[tokio::test]
async fn memory_store_passes_the_conformance_suite() {
    let report = conformance::run(MemoryStore::new(), StoreKind::ServerSide).await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());
    assert!(report.passed().len() >= 27, "{:?}", report.passed());
}

/// A store that declares what it cannot keep gets exactly those checks
/// skipped, with reasons, and passes the adapted expiry checks (a full store
/// satisfies them too).
#[tokio::test]
async fn declared_limits_skip_exactly_their_checks() {
    let limits = Capabilities::FULL
        .with_whole_second_timestamps()
        .with_fixed_idle_timeout(Duration::from_secs(600))
        .with_created_at_last_write()
        .with_last_write_wins();
    let report = conformance::run_with(MemoryStore::new(), StoreKind::ServerSide, limits).await;
    let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
    assert_eq!(
        skipped,
        [
            "absolute_expiry",
            "rolling_refresh",
            "per_session_expiry",
            "concurrent_deltas_merge",
            "data_writes_keep_concurrent_metadata",
            "regenerate_keeps_the_absolute_timeout",
            "own_expiry_cannot_outlive_the_absolute_timeout",
            "logout_beats_a_racing_refresh",
            "expired_sessions_are_not_written",
        ]
    );
    assert!(report.skipped().iter().all(|(_, why)| !why.is_empty()));
    assert!(report.passed().contains(&"deadline_round_trips"));
    assert!(report.passed().contains(&"idle_expiry"));
}

#[tokio::test]
#[should_panic(expected = "fixed idle timeout of at least")]
async fn a_fixed_idle_timeout_too_short_for_the_suite_is_refused() {
    let limits = Capabilities::FULL.with_fixed_idle_timeout(Duration::from_secs(60));
    conformance::run_with(MemoryStore::new(), StoreKind::ServerSide, limits).await;
}
