//! The shared store checks, run against aiohttp_session's SimpleCookieStorage format.
#![cfg(feature = "aiohttp")]

use std::time::Duration;

use session_conformance::{self as conformance, Capabilities, StoreKind};
use session_simple_cookie::aiohttp::SimpleCookieStore;

const MAX_AGE: Duration = Duration::from_secs(3600);

/// What aiohttp_session's formats keep: whole seconds, `created` rewritten
/// on every write, a fixed `max_age` from the last write, whole-record
/// writes. A session lives through the whole second `created + max_age`
/// (aiohttp_session's check is `int(now) - created > max_age`): the
/// deadline is `max_age` and one second after the write.
fn capabilities() -> Capabilities {
    Capabilities::FULL
        .with_whole_second_timestamps()
        .with_fixed_idle_timeout(MAX_AGE + Duration::from_secs(1))
        .with_created_at_last_write()
        .with_last_write_wins()
}

/// The checks that must have run and passed for a cookie store in aiohttp_session's formats.
fn assert_passed(report: &conformance::Report) {
    for check in [
        "round_trip",
        "values_round_trip_exactly",
        "bad_cookies_start_new_sessions",
        "deadline_round_trips",
        "idle_expiry",
        "regenerate",
        "invalidate",
        "large_sessions",
    ] {
        assert!(report.passed().contains(&check), "{check}: {report:?}");
    }
}

#[tokio::test]
async fn the_simple_format_passes_the_conformance_suite() {
    let store = SimpleCookieStore::new(Some(MAX_AGE));
    let report =
        conformance::run_with(store, StoreKind::CookieUnauthenticated, capabilities()).await;
    assert_passed(&report);
}
