//! The conformance suite of `session-core` stores: checks that a
//! [`SessionStore`] keeps every promise of the trait, run in one call, with
//! what store authors need around it:
//!
//! * [`run`] and [`run_with`]: the suite, and its [`Report`];
//! * [`FaultyStore`]: a store around another that fails on command, to test
//!   what sits around a store (a 500 rather than a lost write);
//! * [`Browser`]: a client with one cookie jar that drives a
//!   [`SessionManager`] as a browser would;
//! * [`arbitrary`]: the [`proptest`](mod@proptest) strategies that the
//!   workspace's property tests share (arbitrary session data, hostile
//!   cookie bytes).
//!
//! Every store of this workspace runs the suite, and third-party stores
//! should too, from an ordinary test:
//!
//! ```
//! use session_conformance::{self as conformance, StoreKind};
//! use session_core::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let report = conformance::run(MemoryStore::new(), StoreKind::ServerSide).await;
//! assert!(report.skipped().is_empty());
//! # });
//! ```
//!
//! The suite drives the store through a [`SessionManager`] with a
//! [`ManualClock`], as a browser would: it sends the cookies the manager set
//! and reads what comes back. Expiry is tested by moving the clock, so the
//! suite never sleeps; stores must therefore keep the record's timestamps
//! exactly (to the millisecond) rather than derive them from their own clock.
//!
//! A failed check panics with the check's name and what went wrong, so the
//! suite runs inside an ordinary `#[tokio::test]`. Checks that cannot apply to
//! a kind of store (a cookie store cannot forget a cookie the client kept)
//! are skipped and listed in the [`Report`] with the reason.
//!
//! A store that keeps less than a full [`Record`] (a format shared with
//! another implementation, say) declares what it cannot keep with
//! [`Capabilities`] and [`run_with`]: the checks that need it are skipped
//! with the reason, and the expiry checks adapt to a store that enforces its
//! own idle timeout:
//!
//! ```
//! use std::time::Duration;
//! use session_conformance::{self as conformance, Capabilities, StoreKind};
//! use session_core::MemoryStore;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let limits = Capabilities::FULL.with_last_write_wins();
//! let report = conformance::run_with(MemoryStore::new(), StoreKind::ServerSide, limits).await;
//! assert_eq!(report.skipped()[0].0, "concurrent_deltas_merge");
//! # });
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arbitrary;
mod faulty;
mod set_cookie;

pub use faulty::FaultyStore;
pub use set_cookie::SetCookie;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use session_core::{Changes, Clock, CookieLifetime};
use session_core::{
    Error, Expiry, ManualClock, Record, Refresh, Regenerate, RequestSession, Rolling, Session,
    SessionConfig, SessionCookie, SessionManager, SessionStore, Update, Written,
};

/// What kind of store is under test, which decides the checks that apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreKind {
    /// The cookie holds an id; the data lives in the store.
    ServerSide,
    /// The cookie holds the record itself, sealed so that clients can neither
    /// read nor change it.
    CookieAuthenticated,
    /// The cookie holds the record in the clear, with nothing stopping a
    /// client from changing it (testing only).
    CookieUnauthenticated,
}

impl StoreKind {
    fn server_side(self) -> bool {
        self == StoreKind::ServerSide
    }
}

/// What a store keeps of a session, for the checks that depend on it.
///
/// [`Capabilities::FULL`], which [`run`] assumes, is what the trait asks of
/// every store: timestamps to the millisecond, the deadline it is given (and
/// moved by `touch`), `created` as the creation time, and, for server-side
/// stores, delta saves that merge. The other constructors each give up one
/// of these; [`run_with`] then skips the checks that need it, naming the
/// reason in the [`Report`].
///
/// ```
/// use std::time::Duration;
/// use session_conformance::Capabilities;
///
/// // aiohttp_session's Redis format: whole seconds, `created` rewritten on
/// // every write, a fixed max_age from the last write, whole-record writes.
/// let aiohttp = Capabilities::FULL
///     .with_whole_second_timestamps()
///     .with_fixed_idle_timeout(Duration::from_secs(3600))
///     .with_created_at_last_write()
///     .with_last_write_wins();
/// assert_ne!(aiohttp, Capabilities::FULL);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    whole_seconds: bool,
    fixed_idle_timeout: Option<Duration>,
    created_at_last_write: bool,
    last_write_wins: bool,
}

impl Capabilities {
    /// Everything the trait asks for: what [`run`] checks.
    pub const FULL: Capabilities = Capabilities {
        whole_seconds: false,
        fixed_idle_timeout: None,
        created_at_last_write: false,
        last_write_wins: false,
    };

    /// The shortest fixed idle timeout the suite accepts: some checks move
    /// the clock this far minus a little and expect the session to live.
    pub const MIN_FIXED_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

    /// The store keeps timestamps in whole seconds. The suite's clock then
    /// starts on a whole second, so that what it stores round-trips exactly.
    #[must_use]
    pub const fn with_whole_second_timestamps(mut self) -> Self {
        self.whole_seconds = true;
        self
    }

    /// The store ends every session `timeout` after its last write, whatever
    /// the configuration says: it derives the deadline itself, keeps no
    /// per-session expiry, and `touch` moves nothing, so reads never extend
    /// a session. The expiry checks then measure against `timeout`, and the
    /// rolling-refresh and per-session-expiry checks are skipped.
    ///
    /// # Panics
    ///
    /// [`run_with`] panics when `timeout` is shorter than
    /// [`MIN_FIXED_IDLE_TIMEOUT`](Self::MIN_FIXED_IDLE_TIMEOUT).
    #[must_use]
    pub const fn with_fixed_idle_timeout(mut self, timeout: Duration) -> Self {
        self.fixed_idle_timeout = Some(timeout);
        self
    }

    /// The store's `created` is the time of the session's last write (as in
    /// aiohttp_session), so an absolute timeout counts from there and cannot
    /// be enforced: the absolute-expiry check is skipped.
    #[must_use]
    pub const fn with_created_at_last_write(mut self) -> Self {
        self.created_at_last_write = true;
        self
    }

    /// Each save writes the whole record, so of two concurrent saves of one
    /// session the last wins: the merge check is skipped.
    #[must_use]
    pub const fn with_last_write_wins(mut self) -> Self {
        self.last_write_wins = true;
        self
    }
}

impl Default for Capabilities {
    /// [`Capabilities::FULL`].
    fn default() -> Self {
        Capabilities::FULL
    }
}

/// What the suite ran.
#[derive(Clone, Debug, Default)]
pub struct Report {
    passed: Vec<&'static str>,
    skipped: Vec<(&'static str, &'static str)>,
}

impl Report {
    /// The checks that ran and passed.
    #[must_use]
    pub fn passed(&self) -> &[&'static str] {
        &self.passed
    }

    /// The checks that did not apply to this kind of store, with the reason.
    #[must_use]
    pub fn skipped(&self) -> &[(&'static str, &'static str)] {
        &self.skipped
    }
}

/// Runs every check that applies to `kind` against `store`, which must
/// keep everything a [`Record`] holds ([`Capabilities::FULL`]).
///
/// # Panics
///
/// Panics on the first check that fails, naming it.
pub async fn run<S: SessionStore>(store: S, kind: StoreKind) -> Report {
    run_with(store, kind, Capabilities::FULL).await
}

/// Runs every check that applies to `kind` and to a store with
/// `capabilities` against `store`.
///
/// # Panics
///
/// Panics on the first check that fails, naming it, and at once when a
/// fixed idle timeout is shorter than
/// [`Capabilities::MIN_FIXED_IDLE_TIMEOUT`].
pub async fn run_with<S: SessionStore>(
    store: S,
    kind: StoreKind,
    capabilities: Capabilities,
) -> Report {
    if let Some(timeout) = capabilities.fixed_idle_timeout {
        assert!(
            timeout >= Capabilities::MIN_FIXED_IDLE_TIMEOUT,
            "the conformance suite needs a fixed idle timeout of at least {:?}, got {timeout:?}",
            Capabilities::MIN_FIXED_IDLE_TIMEOUT
        );
    }
    let suite = Suite {
        store: Arc::new(store),
        kind,
        capabilities,
        report: Report::default(),
    };
    suite.run_all().await
}

const CLIENT_SIDE: &str = "the cookie carries the whole session, so a client that keeps an old cookie keeps the session it holds";
const UNAUTHENTICATED: &str =
    "the store does not authenticate its cookies, so a changed cookie is a valid cookie";
const LAST_WRITE_WINS: &str =
    "each response carries a whole record, so the last response a client gets wins";
const WHOLE_RECORD_WRITES: &str =
    "each save writes the whole record, so of two concurrent saves the last wins";
const CREATED_AT_LAST_WRITE: &str =
    "`created` is the time of the last write, so an absolute timeout counts from there";
const FIXED_IDLE_ACTIVITY: &str = "the store ends sessions by its own idle timeout after the last write, and reads cannot extend it";
const FIXED_IDLE_CLOCK: &str = "the store ends sessions by its own idle timeout, on its backend's clock rather than the application's";
const NO_USER_INDEX: &str =
    "the store keeps no index of users' sessions (SessionStore::user_index is None)";
const FIXED_IDLE_OVERRIDE: &str =
    "the store keeps no per-session expiry: every session ends by its own idle timeout";

struct Suite {
    store: Arc<dyn SessionStore>,
    kind: StoreKind,
    capabilities: Capabilities,
    report: Report,
}

/// A browser with one cookie jar, talking to a [`SessionManager`] without
/// a framework: each visit loads the session with the cookie in the jar,
/// runs a handler, saves, and keeps what the `Set-Cookie` values say. What
/// the suite drives stores with, for store authors' own tests.
///
/// ```
/// use session_conformance::Browser;
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
/// let mut browser = Browser::new(manager);
/// browser.visit(|session| session.insert("user", "ada").unwrap()).await;
/// assert!(browser.cookie().is_some());
/// let (session, set_cookies) = browser.visit(|_| {}).await;
/// assert_eq!(session.get::<String>("user").unwrap().as_deref(), Some("ada"));
/// assert!(set_cookies.is_empty(), "a read sets no cookie");
/// # });
/// ```
pub struct Browser {
    manager: SessionManager,
    /// The manager's clock, when the suite made it.
    clock: Option<ManualClock>,
    jar: Option<String>,
}

impl Browser {
    /// A browser with an empty jar, talking to `manager`.
    #[must_use]
    pub fn new(manager: SessionManager) -> Self {
        Browser {
            manager,
            clock: None,
            jar: None,
        }
    }

    /// The manager it talks to.
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    fn cookie_name(&self) -> &str {
        self.manager.config().cookie().name()
    }

    /// Starts a request, to [`load`](Self::load) and [`end`](Self::end) by
    /// hand (two requests in flight at once, say).
    #[must_use]
    pub fn begin(&self) -> RequestSession {
        self.manager.request()
    }

    /// `request`'s session, loaded with the cookie in the jar.
    pub fn load(
        &self,
        request: &RequestSession,
    ) -> impl Future<Output = Result<Session, Error>> + use<> {
        let header = self
            .jar
            .as_ref()
            .map(|value| format!("{}={value}", self.cookie_name()));
        request.session(header.as_deref().map(str::as_bytes))
    }

    /// Saves `request` and keeps the cookie it sets (or forgets the jar's,
    /// on a removal cookie): the `Set-Cookie` values.
    ///
    /// # Panics
    ///
    /// When the save fails, or sets a cookie of another name.
    pub async fn end(&mut self, request: &RequestSession) -> Vec<String> {
        let set_cookies = request
            .save_changes()
            .await
            .unwrap_or_else(|e| panic!("save_changes failed: {e}"));
        for set_cookie in SetCookie::parse_all(set_cookies.iter().map(String::as_str)) {
            assert_eq!(
                set_cookie.name(),
                self.cookie_name(),
                "Set-Cookie for the wrong cookie"
            );
            self.jar = (!set_cookie.is_removal()).then(|| set_cookie.value().to_owned());
        }
        set_cookies
    }

    /// One request that runs `handler` on the session: the session, and the
    /// `Set-Cookie` values of the response.
    ///
    /// # Panics
    ///
    /// When the load or the save fails.
    pub async fn visit(&mut self, handler: impl FnOnce(&Session)) -> (Session, Vec<String>) {
        let request = self.begin();
        let session = self
            .load(&request)
            .await
            .unwrap_or_else(|e| panic!("load failed: {e}"));
        handler(&session);
        let set_cookies = self.end(&request).await;
        (session, set_cookies)
    }

    /// The session a request with the cookie value `cookie` sees, saving
    /// nothing.
    ///
    /// # Panics
    ///
    /// When the load fails.
    pub async fn peek_with(&self, cookie: Option<&str>) -> Session {
        let header = cookie.map(|value| format!("{}={value}", self.cookie_name()));
        self.manager
            .request()
            .session(header.as_deref().map(str::as_bytes))
            .await
            .unwrap_or_else(|e| panic!("load failed: {e}"))
    }

    /// The session the jar's cookie loads, saving nothing.
    pub async fn peek(&self) -> Session {
        self.peek_with(self.jar.as_deref()).await
    }

    /// The session cookie's value in the jar, if any.
    #[must_use]
    pub fn cookie(&self) -> Option<&str> {
        self.jar.as_deref()
    }

    /// Puts `value` in the jar (`None`: empties it), as a client that kept
    /// an old cookie, or forged one.
    pub fn set_cookie(&mut self, value: Option<String>) {
        self.jar = value;
    }

    /// The jar's cookie value, which the suite expects there.
    fn held(&self) -> String {
        self.jar
            .clone()
            .expect("the browser holds no session cookie")
    }

    fn clock(&self) -> &ManualClock {
        self.clock
            .as_ref()
            .expect("the suite's browsers have a manual clock")
    }

    fn now(&self) -> SystemTime {
        self.clock().now()
    }

    fn advance(&self, secs: u64) {
        self.clock().advance(Duration::from_secs(secs));
    }
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("manager", &self.manager)
            .field("holds_a_cookie", &self.jar.is_some())
            .finish_non_exhaustive()
    }
}

fn insert(session: &Session, key: &str, value: Value) {
    session.insert_value(key, value);
}

impl Suite {
    fn browser(&self, config: SessionConfig) -> Browser {
        self.browser_on(self.store.clone(), config)
    }

    /// A [`browser`](Self::browser) of a store around the one under test.
    fn browser_on(&self, store: Arc<dyn SessionStore>, config: SessionConfig) -> Browser {
        let clock = if self.capabilities.whole_seconds {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            ManualClock::new(UNIX_EPOCH + Duration::from_secs(secs))
        } else {
            ManualClock::starting_now()
        };
        let config = config.with_clock(Clock::from(clock.clone()));
        Browser {
            manager: SessionManager::with_shared_store(store, config),
            clock: Some(clock),
            jar: None,
        }
    }

    /// A browser with no rolling refresh, so that reads write nothing.
    fn still_browser(&self) -> Browser {
        self.still_browser_on(self.store.clone())
    }

    /// A [`still_browser`](Self::still_browser) of a store around the one
    /// under test.
    fn still_browser_on(&self, store: Arc<dyn SessionStore>) -> Browser {
        self.browser_on(
            store,
            SessionConfig::default().with_rolling(Rolling::Disabled),
        )
    }

    /// A [`still_browser`](Self::still_browser), whose every write moves
    /// the deadline, and, where the store lets rolling refresh be on, one
    /// with the default throttle on a clock that does not move, whose
    /// writes change data keys alone ([`Update::data_only`]): a store may
    /// save those by another path.
    fn writing_browsers(&self) -> Vec<(&'static str, Browser)> {
        let mut browsers = vec![("writes moving the deadline", self.still_browser())];
        if self.capabilities.fixed_idle_timeout.is_none() {
            browsers.push((
                "writes of data keys alone",
                self.browser(SessionConfig::default()),
            ));
        }
        browsers
    }

    fn pass(&mut self, name: &'static str) {
        self.report.passed.push(name);
    }

    fn skip(&mut self, name: &'static str, why: &'static str) {
        self.report.skipped.push((name, why));
    }

    async fn run_all(mut self) -> Report {
        self.round_trip().await;
        self.values_round_trip_exactly().await;
        self.unchanged_session_sends_no_cookie().await;
        self.sessions_are_distinct().await;
        self.bad_cookies_start_new_sessions().await;
        self.tampered_cookies_start_new_sessions().await;
        self.deadline_round_trips().await;
        self.idle_expiry().await;
        self.absolute_expiry().await;
        self.rolling_refresh().await;
        self.per_session_expiry().await;
        self.delta_saves().await;
        self.concurrent_deltas_merge().await;
        self.data_writes_keep_concurrent_metadata().await;
        self.regenerate().await;
        self.regenerate_keeps_the_absolute_timeout().await;
        self.own_expiry_cannot_outlive_the_absolute_timeout().await;
        self.invalidate().await;
        self.logout_beats_a_racing_write().await;
        self.logout_beats_a_racing_regenerate().await;
        self.logout_beats_a_racing_refresh().await;
        self.a_request_racing_a_login_keeps_the_login_cookie().await;
        self.expired_sessions_are_not_written().await;
        self.strict_mode().await;
        self.delete_is_idempotent().await;
        self.user_sessions().await;
        self.revocation_beats_a_racing_login().await;
        self.large_sessions().await;
        self.report
    }

    async fn round_trip(&mut self) {
        let mut browser = self.still_browser();
        let (first, cookies) = browser
            .visit(|s| {
                assert!(
                    s.is_new(),
                    "round_trip: a cookieless request gets a new session"
                );
                insert(s, "user", json!("ada"));
            })
            .await;
        assert_eq!(
            cookies.len(),
            1,
            "round_trip: a changed session sets one cookie"
        );
        let (again, cookies) = browser
            .visit(|s| {
                assert!(
                    !s.is_new(),
                    "round_trip: the cookie loads the saved session"
                );
                assert_eq!(
                    s.get_value("user"),
                    Some(json!("ada")),
                    "round_trip: data survives"
                );
            })
            .await;
        assert!(cookies.is_empty(), "round_trip: a read sets no cookie");
        assert_eq!(
            again.created(),
            first.created(),
            "round_trip: `created` survives a load"
        );
        // A store that answers from memory answers what `load` would.
        let value = browser.held();
        let cookie = SessionCookie::new(browser.cookie_name(), &value);
        let store = browser.manager().store();
        if let Some(from_memory) = store.load_from_memory(cookie) {
            let loaded = store
                .load(cookie)
                .await
                .unwrap_or_else(|e| panic!("round_trip: load failed: {e}"));
            assert_eq!(
                loaded.as_deref(),
                Some(&*from_memory),
                "round_trip: load_from_memory gave a record that load does not"
            );
        }
        self.pass("round_trip");
    }

    async fn values_round_trip_exactly(&mut self) {
        let mut browser = self.still_browser();
        let values = json!({
            "": "empty key",
            "d:colon": "a key that looks like a prefix",
            "ключ ✓": "unicode key",
            "text": "héllo \"wörld\" \\ \n\t 🦀",
            "int": 9_007_199_254_740_993_i64,
            "neg": -42,
            "float": 0.1,
            "true": true,
            "false": false,
            "null": null,
            "list": [1, "two", [3.5], {"four": 4}],
            "nested": {"a": {"b": {"c": [true, null]}}},
        });
        let Value::Object(map) = values.clone() else {
            unreachable!()
        };
        browser
            .visit(|s| {
                for (key, value) in map {
                    insert(s, &key, value);
                }
            })
            .await;
        let loaded = browser.peek().await;
        assert_eq!(
            Value::Object(loaded.data()),
            values,
            "values_round_trip_exactly"
        );
        self.pass("values_round_trip_exactly");
    }

    async fn unchanged_session_sends_no_cookie(&mut self) {
        let mut browser = self.still_browser();
        let (_, cookies) = browser.visit(|s| assert!(s.is_empty())).await;
        assert!(
            cookies.is_empty(),
            "unchanged_session_sends_no_cookie: untouched new session"
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        let (_, cookies) = browser.visit(|s| insert(s, "k", json!(1))).await;
        assert!(
            cookies.is_empty(),
            "unchanged_session_sends_no_cookie: equal value written"
        );
        self.pass("unchanged_session_sends_no_cookie");
    }

    async fn sessions_are_distinct(&mut self) {
        let mut alice = self.still_browser();
        let mut bob = self.still_browser();
        alice.visit(|s| insert(s, "who", json!("alice"))).await;
        bob.visit(|s| insert(s, "who", json!("bob"))).await;
        assert_ne!(
            alice.held(),
            bob.held(),
            "sessions_are_distinct: cookies differ"
        );
        assert_eq!(alice.peek().await.get_value("who"), Some(json!("alice")));
        assert_eq!(bob.peek().await.get_value("who"), Some(json!("bob")));
        self.pass("sessions_are_distinct");
    }

    async fn bad_cookies_start_new_sessions(&mut self) {
        let browser = self.still_browser();
        let long = "A".repeat(3000);
        let bad = [
            "",
            "x",
            "=",
            "null",
            "{}",
            "[]",
            "%%%%",
            "\"\"",
            "..",
            "AAAA",
            "____----",
            "not-a-session-id-at-all",
            "eyJjIjowLCJkIjp7fX0",
            &long,
        ];
        for value in bad {
            let session = browser.peek_with(Some(value)).await;
            assert!(
                session.is_new() && session.is_empty(),
                "bad_cookies_start_new_sessions: {value:.40?} loaded a session"
            );
        }
        self.pass("bad_cookies_start_new_sessions");
    }

    async fn tampered_cookies_start_new_sessions(&mut self) {
        if self.kind == StoreKind::CookieUnauthenticated {
            return self.skip("tampered_cookies_start_new_sessions", UNAUTHENTICATED);
        }
        let mut browser = self.still_browser();
        browser.visit(|s| insert(s, "role", json!("user"))).await;
        let cookie = browser.held();
        for (i, original) in cookie.char_indices() {
            for replacement in ['A', 'z', '0', '-', '_'] {
                if replacement == original {
                    continue;
                }
                let mut tampered = cookie.clone();
                tampered.replace_range(i..=i, &replacement.to_string());
                let session = browser.peek_with(Some(&tampered)).await;
                assert!(
                    session.is_new() && session.is_empty(),
                    "tampered_cookies_start_new_sessions: changing byte {i} still loaded"
                );
            }
        }
        for cut in [1, cookie.len() / 2, cookie.len() - 1] {
            let session = browser.peek_with(Some(&cookie[..cut])).await;
            assert!(
                session.is_new(),
                "tampered_cookies_start_new_sessions: truncated to {cut}"
            );
        }
        let extended = format!("{cookie}A");
        assert!(browser.peek_with(Some(&extended)).await.is_new());
        self.pass("tampered_cookies_start_new_sessions");
    }

    async fn deadline_round_trips(&mut self) {
        if let Some(timeout) = self.capabilities.fixed_idle_timeout {
            return self.fixed_deadline_round_trips(timeout).await;
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(600))))
                .with_rolling(Rolling::Throttled(Duration::from_secs(1))),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        let saved = browser.peek().await.expires_at();
        assert_eq!(
            saved,
            Some(browser.now() + Duration::from_secs(600)),
            "deadline_round_trips: the store keeps the deadline it was given"
        );
        browser.advance(100);
        browser.visit(|_| {}).await;
        assert_eq!(
            browser.peek().await.expires_at(),
            Some(browser.now() + Duration::from_secs(600)),
            "deadline_round_trips: touch moves the stored deadline"
        );
        self.pass("deadline_round_trips");
    }

    /// [`Self::deadline_round_trips`] for a store that derives the deadline
    /// from its own idle timeout: it is that long after each write.
    async fn fixed_deadline_round_trips(&mut self, timeout: Duration) {
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(timeout)))
                .with_rolling(Rolling::Disabled),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        assert_eq!(
            browser.peek().await.expires_at(),
            Some(browser.now() + timeout),
            "deadline_round_trips: the deadline is the store's idle timeout after the write"
        );
        browser.advance(100);
        browser.visit(|s| insert(s, "k", json!(2))).await;
        assert_eq!(
            browser.peek().await.expires_at(),
            Some(browser.now() + timeout),
            "deadline_round_trips: a write moves the deadline"
        );
        self.pass("deadline_round_trips");
    }

    async fn idle_expiry(&mut self) {
        let idle = self
            .capabilities
            .fixed_idle_timeout
            .unwrap_or(Duration::from_secs(60));
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(idle)))
                .with_rolling(Rolling::Disabled),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        browser.advance(idle.as_secs().saturating_sub(1));
        assert!(
            !browser.peek().await.is_new(),
            "idle_expiry: alive before the timeout"
        );
        browser.advance(2);
        let (session, _) = browser.visit(|_| {}).await;
        assert!(
            session.is_new() && session.is_empty(),
            "idle_expiry: a cookie resent after the idle timeout gives a new session"
        );
        self.pass("idle_expiry");
    }

    async fn absolute_expiry(&mut self) {
        if self.capabilities.created_at_last_write {
            return self.skip("absolute_expiry", CREATED_AT_LAST_WRITE);
        }
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip("absolute_expiry", FIXED_IDLE_ACTIVITY);
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(
                    Expiry::NEVER
                        .with_idle_timeout(Some(Duration::from_secs(60)))
                        .with_absolute_timeout(Some(Duration::from_secs(150))),
                )
                .with_rolling(Rolling::Throttled(Duration::from_secs(1))),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        for _ in 0..2 {
            browser.advance(50);
            browser.visit(|_| {}).await;
        }
        browser.advance(40); // 140 s: still within both timeouts
        let (session, _) = browser.visit(|s| insert(s, "k", json!(2))).await;
        assert!(!session.is_new(), "absolute_expiry: alive while active");
        browser.advance(11); // 151 s: active, but past the absolute timeout
        let (session, _) = browser.visit(|_| {}).await;
        assert!(
            session.is_new(),
            "absolute_expiry: activity never extends the absolute timeout"
        );
        self.pass("absolute_expiry");
    }

    async fn rolling_refresh(&mut self) {
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip("rolling_refresh", FIXED_IDLE_ACTIVITY);
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(60))))
                .with_rolling(Rolling::Throttled(Duration::from_secs(10))),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        browser.advance(5);
        let (_, cookies) = browser.visit(|_| {}).await;
        assert!(
            cookies.is_empty(),
            "rolling_refresh: no refresh within the throttle step"
        );
        browser.advance(35); // 40 s
        browser.visit(|_| {}).await;
        browser.advance(50); // 90 s: past the first deadline, within the refreshed one
        let (session, _) = browser.visit(|_| {}).await;
        assert!(
            !session.is_new(),
            "rolling_refresh: a read extended the idle timeout"
        );
        assert_eq!(
            session.get_value("k"),
            Some(json!(1)),
            "rolling_refresh: data kept"
        );
        self.pass("rolling_refresh");
    }

    async fn per_session_expiry(&mut self) {
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip("per_session_expiry", FIXED_IDLE_OVERRIDE);
        }
        let mut short = self.still_browser();
        let mut default = self.still_browser();
        short
            .visit(|s| {
                insert(s, "k", json!(1));
                s.set_expiry(Some(
                    Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(10))),
                ));
            })
            .await;
        default.visit(|s| insert(s, "k", json!(1))).await;
        short.advance(11);
        default.advance(11);
        assert!(
            short.peek().await.is_new(),
            "per_session_expiry: the override applies"
        );
        assert!(
            !default.peek().await.is_new(),
            "per_session_expiry: others keep the default"
        );
        self.pass("per_session_expiry");
    }

    async fn delta_saves(&mut self) {
        for (writes, mut browser) in self.writing_browsers() {
            browser
                .visit(|s| {
                    for key in ["a", "b", "c"] {
                        insert(s, key, json!(key));
                    }
                })
                .await;
            browser
                .visit(|s| {
                    s.remove("a");
                    insert(s, "b", json!("B"));
                    insert(s, "d", json!("d"));
                })
                .await;
            let data = Value::Object(browser.peek().await.data());
            assert_eq!(
                data,
                json!({"b": "B", "c": "c", "d": "d"}),
                "delta_saves: remove and write ({writes})"
            );
            browser
                .visit(|s| {
                    s.remove("d");
                })
                .await;
            let data = Value::Object(browser.peek().await.data());
            assert_eq!(
                data,
                json!({"b": "B", "c": "c"}),
                "delta_saves: remove alone ({writes})"
            );
            browser
                .visit(|s| {
                    s.clear();
                    insert(s, "z", json!(26));
                })
                .await;
            let data = Value::Object(browser.peek().await.data());
            assert_eq!(
                data,
                json!({"z": 26}),
                "delta_saves: clear then write ({writes})"
            );
        }
        self.pass("delta_saves");
    }

    async fn concurrent_deltas_merge(&mut self) {
        if !self.kind.server_side() {
            return self.skip("concurrent_deltas_merge", LAST_WRITE_WINS);
        }
        if self.capabilities.last_write_wins {
            return self.skip("concurrent_deltas_merge", WHOLE_RECORD_WRITES);
        }
        for (writes, mut browser) in self.writing_browsers() {
            browser.visit(|s| insert(s, "base", json!(0))).await;
            let (first, second) = (browser.begin(), browser.begin());
            let (a, b) = (browser.load(&first).await, browser.load(&second).await);
            let (a, b) = (a.expect("load"), b.expect("load"));
            insert(&a, "from_first", json!(1));
            b.remove("base");
            insert(&b, "from_second", json!(2));
            browser.end(&first).await;
            browser.end(&second).await;
            let data = Value::Object(browser.peek().await.data());
            assert_eq!(
                data,
                json!({"from_first": 1, "from_second": 2}),
                "concurrent_deltas_merge: both requests' changes are kept ({writes})"
            );
        }
        self.pass("concurrent_deltas_merge");
    }

    /// A write of data keys alone ([`Update::data_only`]) that ends after a
    /// concurrent request changed the session's metadata (bound it to a
    /// user, labelled it, gave it an expiry of its own) leaves that
    /// metadata as it is: the binding, and the session's place in its
    /// user's listing, survive.
    async fn data_writes_keep_concurrent_metadata(&mut self) {
        const NAME: &str = "data_writes_keep_concurrent_metadata";
        if !self.kind.server_side() {
            return self.skip(NAME, LAST_WRITE_WINS);
        }
        if self.capabilities.last_write_wins {
            return self.skip(NAME, WHOLE_RECORD_WRITES);
        }
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip(NAME, FIXED_IDLE_OVERRIDE);
        }
        let with_users = self.store.user_index().is_some();
        let user = format!("user-{}", session_core::SessionId::generate().as_str());
        let own = Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(600)));
        // The default throttle, on a clock that does not move: the data
        // write moves no deadline.
        let mut browser = self.browser(SessionConfig::default());
        browser.visit(|s| insert(s, "base", json!(0))).await;
        let (writer, account) = (browser.begin(), browser.begin());
        let data_write = browser.load(&writer).await.expect("load");
        let settings = browser.load(&account).await.expect("load");
        if with_users {
            settings.bind_user(user.clone());
            settings.set_label("laptop");
        }
        settings.set_expiry(Some(own));
        browser.end(&account).await;
        insert(&data_write, "cart", json!([1]));
        browser.end(&writer).await;

        let after = browser.peek().await;
        assert_eq!(
            Value::Object(after.data()),
            json!({"base": 0, "cart": [1]}),
            "{NAME}: the data write is saved"
        );
        assert_eq!(after.expiry(), Some(own), "{NAME}: the expiry is kept");
        if with_users {
            assert_eq!(after.user(), Some(user.clone()), "{NAME}: the user is kept");
            let listed = browser.manager.sessions_of(&user).await.expect("list");
            let labels: Vec<_> = listed.iter().map(|s| s.label()).collect();
            assert_eq!(labels, [Some("laptop")], "{NAME}: still listed, labelled");
        }
        self.pass(NAME);
    }

    async fn regenerate(&mut self) {
        let mut browser = self.still_browser();
        let (before, _) = browser.visit(|s| insert(s, "cart", json!([1, 2]))).await;
        let old = browser.held();
        browser.advance(5);
        let (_, cookies) = browser
            .visit(|s| {
                s.regenerate();
                insert(s, "user", json!("ada"));
            })
            .await;
        assert_eq!(cookies.len(), 1, "regenerate: sets the new cookie");
        assert_ne!(browser.held(), old, "regenerate: the cookie value changes");
        let after = browser.peek().await;
        assert_eq!(
            Value::Object(after.data()),
            json!({"cart": [1, 2], "user": "ada"}),
            "regenerate: data is kept"
        );
        if !self.capabilities.created_at_last_write {
            assert_eq!(
                after.created(),
                before.created(),
                "regenerate: `created` stays the session's first creation"
            );
        }
        self.pass("regenerate");
        if self.kind.server_side() {
            assert!(
                browser.peek_with(Some(&old)).await.is_new(),
                "regenerate: the old cookie no longer loads"
            );
            self.pass("regenerate (old cookie no longer loads)");
        } else {
            self.skip("regenerate (old cookie no longer loads)", CLIENT_SIDE);
        }
    }

    async fn invalidate(&mut self) {
        let mut browser = self.still_browser();
        browser.visit(|s| insert(s, "user", json!("ada"))).await;
        let old = browser.held();
        let (_, cookies) = browser.visit(Session::invalidate).await;
        assert_eq!(cookies.len(), 1, "invalidate: sends one cookie");
        assert!(
            cookies[0].contains("Max-Age=0"),
            "invalidate: a removal cookie"
        );
        assert!(browser.jar.is_none());
        browser.jar = Some(old.clone());
        let (_, cookies) = browser
            .visit(|s| {
                s.invalidate();
                insert(s, "flash", json!("bye"));
            })
            .await;
        assert!(
            cookies.len() == 1 && browser.held() != old,
            "invalidate: writes after invalidate start a fresh session"
        );
        self.pass("invalidate");
        if self.kind.server_side() {
            let replayed = browser.peek_with(Some(&old)).await;
            assert!(
                replayed.is_new(),
                "invalidate: the old cookie no longer loads"
            );
            self.pass("invalidate (old cookie no longer loads)");
        } else {
            self.skip("invalidate (old cookie no longer loads)", CLIENT_SIDE);
        }
    }

    async fn logout_beats_a_racing_write(&mut self) {
        if !self.kind.server_side() {
            return self.skip("logout_beats_a_racing_write", CLIENT_SIDE);
        }
        for (writes, mut browser) in self.writing_browsers() {
            browser.visit(|s| insert(s, "user", json!("ada"))).await;
            let old = browser.held();
            let slow_write = browser.begin();
            let session = browser.load(&slow_write).await.expect("load");
            browser.visit(Session::invalidate).await;
            insert(&session, "late", json!("write"));
            browser.jar = Some(old.clone());
            let cookies = browser.end(&slow_write).await;
            assert!(
                cookies.is_empty(),
                "logout_beats_a_racing_write: the late write sets no cookie ({writes}): \
                 {cookies:?}"
            );
            let replayed = browser.peek_with(Some(&old)).await;
            assert!(
                replayed.is_new() && replayed.is_empty(),
                "logout_beats_a_racing_write: the late write did not bring the session back \
                 ({writes})"
            );
        }
        self.pass("logout_beats_a_racing_write");
    }

    async fn strict_mode(&mut self) {
        if !self.kind.server_side() {
            return self.skip("strict_mode", "cookie stores have no ids to adopt");
        }
        let mut browser = self.still_browser();
        let planted = "attacker-chosen-id-0123456789abcdef";
        browser.jar = Some(planted.to_owned());
        let (session, _) = browser.visit(|s| insert(s, "user", json!("victim"))).await;
        assert!(session.is_new(), "strict_mode: an unknown id is not loaded");
        assert_ne!(
            browser.held(),
            planted,
            "strict_mode: an unknown id is never adopted"
        );

        let name = browser.cookie_name().to_owned();
        let now = browser.now();
        let record = Arc::new(Record::new(now));
        let changes = Changes::replace_all(&record);
        let cookie = SessionCookie::new(&name, planted);
        let written = [
            self.store
                .update(Update::new(cookie, &record, &changes, now))
                .await,
            self.store.refresh(Refresh::new(cookie, &record, now)).await,
            (self.store)
                .regenerate(Regenerate::new(cookie, &record, &changes, now))
                .await,
        ];
        for written in written {
            assert_eq!(
                written.expect("write"),
                Written::Gone,
                "strict_mode: a write to an unknown id is refused"
            );
        }
        let loaded = self.store.load(cookie).await.expect("load");
        assert!(loaded.is_none(), "strict_mode: ...and does not create it");
        self.pass("strict_mode");
    }

    async fn delete_is_idempotent(&mut self) {
        let mut browser = self.still_browser();
        browser.visit(|s| insert(s, "k", json!(1))).await;
        let name = browser.cookie_name().to_owned();
        let value = browser.held();
        let cookie = SessionCookie::new(&name, &value);
        let first = self
            .store
            .delete(cookie)
            .await
            .expect("delete_is_idempotent");
        let second = self
            .store
            .delete(cookie)
            .await
            .expect("delete_is_idempotent");
        let unknown = (self.store)
            .delete(SessionCookie::new(&name, "never-issued"))
            .await
            .expect("delete_is_idempotent: unknown value");
        assert!(
            !second && !unknown,
            "delete_is_idempotent: only a stored session counts as deleted"
        );
        if self.kind.server_side() {
            assert!(first, "delete_is_idempotent: the first delete deletes");
            assert!(
                browser.peek().await.is_new(),
                "delete_is_idempotent: deleted"
            );
        }
        self.pass("delete_is_idempotent");
    }

    async fn regenerate_keeps_the_absolute_timeout(&mut self) {
        const NAME: &str = "regenerate_keeps_the_absolute_timeout";
        if self.capabilities.created_at_last_write {
            return self.skip(NAME, CREATED_AT_LAST_WRITE);
        }
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip(NAME, FIXED_IDLE_ACTIVITY);
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(
                    Expiry::NEVER
                        .with_idle_timeout(Some(Duration::from_secs(60)))
                        .with_absolute_timeout(Some(Duration::from_secs(150))),
                )
                .with_rolling(Rolling::Disabled),
        );
        browser.visit(|s| insert(s, "k", json!(1))).await;
        for _ in 0..3 {
            browser.advance(45);
            let (session, _) = browser.visit(Session::regenerate).await;
            assert!(!session.is_new(), "{NAME}: alive within the timeout");
        }
        browser.advance(20); // 155 s after the first creation
        let (session, _) = browser.visit(|_| {}).await;
        assert!(
            session.is_new() && session.is_empty(),
            "{NAME}: regenerating the id never restarts the absolute timeout"
        );
        self.pass(NAME);
    }

    async fn own_expiry_cannot_outlive_the_absolute_timeout(&mut self) {
        const NAME: &str = "own_expiry_cannot_outlive_the_absolute_timeout";
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip(NAME, FIXED_IDLE_OVERRIDE);
        }
        if self.capabilities.created_at_last_write {
            return self.skip(NAME, CREATED_AT_LAST_WRITE);
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(
                    Expiry::NEVER
                        .with_idle_timeout(Some(Duration::from_secs(60)))
                        .with_absolute_timeout(Some(Duration::from_secs(100))),
                )
                .with_rolling(Rolling::Throttled(Duration::from_secs(1))),
        );
        let long = Expiry::NEVER
            .with_idle_timeout(Some(Duration::from_secs(1000)))
            .with_absolute_timeout(Some(Duration::from_secs(10_000)));
        browser.visit(|s| s.set_expiry(Some(long))).await;
        browser.advance(90);
        let (session, _) = browser.visit(|s| insert(s, "k", json!(1))).await;
        assert!(!session.is_new(), "{NAME}: the longer idle timeout applies");
        browser.advance(11); // 101 s
        assert!(
            browser.peek().await.is_new(),
            "{NAME}: a session's own expiry never lengthens the configured absolute timeout"
        );
        self.pass(NAME);
    }

    /// A login that loaded the session before a logout and regenerates it
    /// after: it must not carry the logged-out data into a new session.
    async fn logout_beats_a_racing_regenerate(&mut self) {
        const NAME: &str = "logout_beats_a_racing_regenerate";
        if !self.kind.server_side() {
            return self.skip(NAME, CLIENT_SIDE);
        }
        let mut browser = self.still_browser();
        browser
            .visit(|s| insert(s, "secret", json!("s3cr3t")))
            .await;
        let old = browser.held();
        let login = browser.begin();
        let session = browser.load(&login).await.expect("load");
        browser.visit(Session::invalidate).await;
        session.regenerate();
        insert(&session, "user", json!("ada"));
        browser.jar = Some(old.clone());
        let cookies = browser.end(&login).await;
        assert!(
            cookies.is_empty(),
            "{NAME}: the late login sets no cookie, and makes no new session: {cookies:?}"
        );
        let replayed = browser.peek_with(Some(&old)).await;
        assert!(
            replayed.is_new() && replayed.is_empty(),
            "{NAME}: the old cookie stays logged out"
        );
        self.pass(NAME);
    }

    /// Requests that loaded the session before a login moved it to a new id
    /// and end after it (a write, another login): their writes go nowhere,
    /// and they set no cookie, so the browser keeps the login's and stays
    /// logged in. (A removal cookie would arrive after the login's and
    /// wipe it.)
    async fn a_request_racing_a_login_keeps_the_login_cookie(&mut self) {
        const NAME: &str = "a_request_racing_a_login_keeps_the_login_cookie";
        if !self.kind.server_side() {
            return self.skip(NAME, CLIENT_SIDE);
        }
        for (writes, mut browser) in self.writing_browsers() {
            browser.visit(|s| insert(s, "cart", json!(1))).await;
            let old = browser.held();
            let slow_write = browser.begin();
            let session = browser.load(&slow_write).await.expect("load");
            let second_login = browser.begin();
            let second = browser.load(&second_login).await.expect("load");
            browser
                .visit(|s| {
                    s.regenerate();
                    insert(s, "user", json!("ada"));
                })
                .await;
            let logged_in = browser.held();
            assert_ne!(logged_in, old, "{NAME}: the login moved the session");

            insert(&session, "late", json!("write"));
            let cookies = browser.end(&slow_write).await;
            assert!(
                cookies.is_empty(),
                "{NAME}: the late write sets no cookie ({writes}): {cookies:?}"
            );
            second.regenerate();
            insert(&second, "user", json!("bob"));
            let cookies = browser.end(&second_login).await;
            assert!(
                cookies.is_empty(),
                "{NAME}: the second login sets no cookie ({writes}): {cookies:?}"
            );

            assert_eq!(browser.cookie(), Some(logged_in.as_str()));
            let now = browser.peek().await;
            assert_eq!(
                (
                    now.get_value("user"),
                    now.get_value("cart"),
                    now.get_value("late")
                ),
                (Some(json!("ada")), Some(json!(1)), None),
                "{NAME}: still logged in, and the late write went nowhere ({writes})"
            );
            assert!(
                browser.peek_with(Some(&old)).await.is_new(),
                "{NAME}: the old cookie loads nothing ({writes})"
            );
        }
        self.pass(NAME);
    }

    /// A read whose rolling refresh is saved after a logout: the store must
    /// answer gone, and a persistent cookie must not be sent again.
    async fn logout_beats_a_racing_refresh(&mut self) {
        const NAME: &str = "logout_beats_a_racing_refresh";
        if !self.kind.server_side() {
            return self.skip(NAME, CLIENT_SIDE);
        }
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip(NAME, FIXED_IDLE_ACTIVITY);
        }
        let mut browser = self.browser(
            SessionConfig::default()
                .with_expiry(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(60))))
                .with_rolling(Rolling::Throttled(Duration::from_secs(1)))
                .with_cookie_lifetime(CookieLifetime::Persistent),
        );
        browser.visit(|s| insert(s, "user", json!("ada"))).await;
        let old = browser.held();
        browser.advance(30);
        let read = browser.begin();
        let session = browser.load(&read).await.expect("load");
        assert!(!session.is_new(), "{NAME}: loaded");
        browser.visit(Session::invalidate).await;
        browser.jar = Some(old.clone());
        let cookies = browser.end(&read).await;
        assert!(
            cookies.is_empty(),
            "{NAME}: the refresh after a logout sets no cookie: {cookies:?}"
        );
        assert!(
            browser.peek_with(Some(&old)).await.is_new(),
            "{NAME}: the refresh did not bring the session back"
        );
        self.pass(NAME);
    }

    /// Updates and refreshes that reach the store after the stored deadline
    /// (by the application's clock) find the session gone. (A regenerate
    /// may rely on `delete`, which has no clock; the lifecycle checked the
    /// session's expiry when it loaded it.)
    async fn expired_sessions_are_not_written(&mut self) {
        const NAME: &str = "expired_sessions_are_not_written";
        if !self.kind.server_side() {
            return self.skip(NAME, CLIENT_SIDE);
        }
        if self.capabilities.fixed_idle_timeout.is_some() {
            return self.skip(NAME, FIXED_IDLE_CLOCK);
        }
        let mut browser = self.still_browser();
        browser.visit(|s| insert(s, "k", json!(1))).await;
        let name = browser.cookie_name().to_owned();
        let value = browser.held();
        let cookie = SessionCookie::new(&name, &value);
        let stored = self
            .store
            .load(cookie)
            .await
            .expect("load")
            .expect("the session is stored");
        let Some(deadline) = stored.expires_at else {
            panic!("{NAME}: the default configuration gives every session a deadline");
        };
        let late = deadline + Duration::from_secs(1);
        let mut refreshed = Record::clone(&stored);
        refreshed.expires_at = Some(late + Duration::from_secs(3600));
        let refreshed = Arc::new(refreshed);
        let changes = Changes::replace_all(&refreshed);
        let mut data_change = Changes::default();
        data_change.record_write("k");
        let answers = [
            (
                "refresh",
                self.store
                    .refresh(Refresh::new(cookie, &refreshed, late))
                    .await,
            ),
            (
                "update",
                self.store
                    .update(Update::new(cookie, &refreshed, &changes, late))
                    .await,
            ),
            (
                "data-only update",
                self.store
                    .update(Update::new(cookie, &stored, &data_change, late).with_data_only(true))
                    .await,
            ),
        ];
        for (operation, written) in answers {
            assert_eq!(
                written.expect("write"),
                Written::Gone,
                "{NAME}: {operation} after the deadline"
            );
        }
        self.pass(NAME);
    }

    /// The optional capability: sessions bound to a user are listed,
    /// revoked one by one or all but one, never shown by id, and a revoked
    /// session stays revoked even for a request that was in flight.
    async fn user_sessions(&mut self) {
        const NAME: &str = "user_sessions";
        if self.store.user_index().is_none() {
            return self.skip(NAME, NO_USER_INDEX);
        }
        let user = format!("user-{}", session_core::SessionId::generate().as_str());
        let log_in = |label: &'static str| {
            let user = user.clone();
            move |s: &Session| {
                s.regenerate();
                s.bind_user(user);
                s.set_label(label);
                insert(s, "secret", json!(label));
            }
        };
        let mut laptop = self.still_browser();
        let mut phone = self.still_browser();
        let mut stranger = self.still_browser();
        laptop.visit(log_in("laptop")).await;
        phone.visit(log_in("phone")).await;
        stranger.visit(|s| insert(s, "k", json!(1))).await;
        let listed = laptop.manager.sessions_of(&user).await.expect("list");
        let mut labels: Vec<_> = listed.iter().filter_map(|s| s.label()).collect();
        labels.sort_unstable();
        assert_eq!(labels, ["laptop", "phone"], "{NAME}: both devices listed");
        for session in &listed {
            for cookie in [laptop.held(), phone.held()] {
                assert!(
                    !cookie.contains(session.handle().as_str()),
                    "{NAME}: a handle gives nothing of a cookie away"
                );
            }
            assert!(session.created() <= session.last_seen(), "{NAME}: times");
        }

        // From a handler: its own session is the current one.
        let (seen, _) = laptop.visit(|_| {}).await;
        let mine = seen.user_sessions().await.expect("list from a handler");
        let current: Vec<_> = mine.iter().filter(|s| s.is_current()).collect();
        assert_eq!(current.len(), 1, "{NAME}: one current session");
        assert_eq!(current[0].label(), Some("laptop"));
        assert_eq!(current[0].handle(), &seen.handle().expect("a handle"));

        // The phone has a request in flight when the laptop logs it out.
        let phone_cookie = phone.held();
        let in_flight = phone.begin();
        let phone_session = phone.load(&in_flight).await.expect("load");
        assert_eq!(
            seen.revoke_other_user_sessions().await.expect("revoke"),
            1,
            "{NAME}: one other session revoked"
        );
        insert(&phone_session, "late", json!("write"));
        let cookies = phone.end(&in_flight).await;
        assert!(
            cookies.is_empty(),
            "{NAME}: the in-flight request of a revoked session sets no cookie: {cookies:?}"
        );
        let (next, _) = phone.visit(|_| {}).await;
        assert!(next.is_new() && next.is_empty(), "{NAME}: revoked is final");
        assert!(
            phone.peek_with(Some(&phone_cookie)).await.is_new(),
            "{NAME}: the revoked cookie no longer loads"
        );
        let listed = laptop.manager.sessions_of(&user).await.expect("list");
        assert_eq!(listed.len(), 1, "{NAME}: the revoked session is not listed");

        // Revoking one by handle, and a handle of another user's session.
        let handle = listed[0].handle().clone();
        assert!(
            !stranger
                .manager
                .revoke("someone-else", &handle)
                .await
                .expect("revoke"),
            "{NAME}: a handle only revokes among its own user's sessions"
        );
        assert!(laptop.manager.revoke(&user, &handle).await.expect("revoke"));
        assert!(laptop.peek().await.is_new(), "{NAME}: revoked by handle");

        // Logged out and expired sessions leave the listing.
        phone.visit(log_in("phone")).await;
        laptop.visit(log_in("laptop")).await;
        phone.visit(Session::invalidate).await;
        let listed = laptop.manager.sessions_of(&user).await.expect("list");
        assert_eq!(listed.len(), 1, "{NAME}: a logout leaves the listing");
        laptop.advance(25 * 3600);
        let listed = laptop.manager.sessions_of(&user).await.expect("list");
        assert!(
            listed.is_empty(),
            "{NAME}: an expired session is not listed"
        );
        self.pass(NAME);
    }

    /// "Log out everywhere else" while the other device logs in again: the
    /// login moves that device's session to a new id (still bound to the
    /// user) after the revocation listed the user's sessions and before it
    /// deleted that one. The revocation gets it under its new id too.
    async fn revocation_beats_a_racing_login(&mut self) {
        const NAME: &str = "revocation_beats_a_racing_login";
        if self.store.user_index().is_none() {
            return self.skip(NAME, NO_USER_INDEX);
        }
        let racing = FaultyStore::around(self.store.clone());
        let user = format!("user-{}", session_core::SessionId::generate().as_str());
        let log_in = |s: &Session| {
            s.regenerate();
            s.bind_user(user.clone());
            insert(s, "secret", json!("s3cr3t"));
        };
        let mut laptop = self.still_browser_on(Arc::new(racing.clone()));
        let mut phone = self.still_browser_on(Arc::new(racing.clone()));
        laptop.visit(log_in).await;
        phone.visit(log_in).await;
        let (laptop_session, _) = laptop.visit(|_| {}).await;

        racing.move_after_next_listing(phone.cookie_name(), &phone.held());
        let revoked = laptop_session
            .revoke_other_user_sessions()
            .await
            .expect("revoke");
        let moved_to = racing
            .moved_to()
            .expect("the login moved the phone's session");
        assert_eq!(revoked, 1, "{NAME}: the phone's session, under its new id");
        assert!(
            phone.peek_with(Some(&moved_to)).await.is_new(),
            "{NAME}: the phone's new id is logged out"
        );
        assert!(phone.peek().await.is_new(), "{NAME}: and its old one");
        let listed = laptop.manager.sessions_of(&user).await.expect("list");
        let handles: Vec<_> = listed.iter().map(|s| s.handle().clone()).collect();
        assert_eq!(
            handles,
            [laptop_session.handle().expect("a handle")],
            "{NAME}: only the laptop is left"
        );
        self.pass(NAME);
    }

    async fn large_sessions(&mut self) {
        let browser =
            self.browser(SessionConfig::default().with_cookie_lifetime(CookieLifetime::Persistent));
        let request = browser.begin();
        let session = browser.load(&request).await.expect("load");
        insert(&session, "blob", json!("x".repeat(5000)));
        let result = request.save_changes().await;
        if self.kind.server_side() {
            assert!(
                result.is_ok(),
                "large_sessions: a server-side store takes large sessions"
            );
        } else {
            match result {
                Err(Error::CookieTooLarge { size, .. }) => assert!(size > 5000),
                other => panic!("large_sessions: expected CookieTooLarge, got {other:?}"),
            }
        }
        self.pass("large_sessions");
    }
}
