//! The routes every server answers and the scenarios measured on them.
//!
//! Every server, bare or with sessions, serves the same paths with the same
//! response bodies, so that the load generator can check each answer and a
//! difference in throughput can only come from the session layer.

use std::sync::LazyLock;

/// Never touches the session; answers [`UNTOUCHED_BODY`].
pub const UNTOUCHED: &str = "/untouched";
/// Writes `user` = [`USER`]: the setup of the small-session scenarios.
pub const SETUP_SMALL: &str = "/setup/small";
/// Writes `user` and a [`PAYLOAD_LEN`]-byte `payload`: the setup of the
/// 1 KB-session scenario.
pub const SETUP_LARGE: &str = "/setup/large";
/// Reads `user` and answers it.
pub const READ: &str = "/read";
/// Increments `counter` (absent counts as 0) and answers the new value.
pub const COUNTER: &str = "/counter";
/// Reads `payload` and answers its length in bytes.
pub const READ_LARGE: &str = "/read-large";

/// The body of [`UNTOUCHED`] and of the setup routes.
pub const UNTOUCHED_BODY: &str = "ok";
/// The value that [`SETUP_SMALL`] and [`SETUP_LARGE`] store under `user`.
pub const USER: &str = "ada";
/// The session key holding [`USER`].
pub const USER_KEY: &str = "user";
/// The session key of the counter.
pub const COUNTER_KEY: &str = "counter";
/// The session key of the large value.
pub const PAYLOAD_KEY: &str = "payload";
/// The length of the large value: with the `user` key and the JSON around
/// them, the session is about 1 KB.
pub const PAYLOAD_LEN: usize = 1000;

/// The large value stored by [`SETUP_LARGE`]: printable, so that it costs
/// the same to encode in every store's format.
#[must_use]
pub fn payload() -> &'static str {
    static PAYLOAD: LazyLock<String> = LazyLock::new(|| {
        "0123456789abcdef"
            .chars()
            .cycle()
            .take(PAYLOAD_LEN)
            .collect()
    });
    &PAYLOAD
}

/// What a scenario measures: the requests that set a session up, then the
/// request that is measured, with what its answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A route that never touches the session, on a client that holds one.
    Untouched,
    /// Reads one key of a small existing session.
    ReadKey,
    /// Writes the session on every request: increments a counter.
    Counter,
    /// Reads a key of an existing session of about 1 KB.
    ReadLarge,
}

/// What a measured response's body must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this text.
    Body(&'static str),
    /// For each session, 1, 2, 3, ... after setup: proves that the
    /// session was saved and its cookie sent back on every request.
    Increments,
}

impl Route {
    /// Every route, in the order they are run and reported.
    pub const ALL: [Route; 4] = [
        Route::Untouched,
        Route::ReadKey,
        Route::Counter,
        Route::ReadLarge,
    ];

    /// A short name for reports and the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Route::Untouched => "untouched",
            Route::ReadKey => "read",
            Route::Counter => "counter",
            Route::ReadLarge => "read-1kb",
        }
    }

    /// The request each connection makes once before measuring, to create
    /// its session and receive the cookie.
    #[must_use]
    pub fn setup_path(self) -> &'static str {
        match self {
            // The client holds a session, as a logged-in user's browser
            // would: the untouched route must ignore it at no cost.
            Route::Untouched | Route::ReadKey | Route::Counter => SETUP_SMALL,
            Route::ReadLarge => SETUP_LARGE,
        }
    }

    /// The request that is measured.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Route::Untouched => UNTOUCHED,
            Route::ReadKey => READ,
            Route::Counter => COUNTER,
            Route::ReadLarge => READ_LARGE,
        }
    }

    /// What the measured response must say. A bare server has no session
    /// and answers constants, so its counter is not checked.
    #[must_use]
    pub fn expect(self, has_sessions: bool) -> Option<Expect> {
        match self {
            Route::Untouched => Some(Expect::Body(UNTOUCHED_BODY)),
            Route::ReadKey => Some(Expect::Body(USER)),
            Route::Counter if has_sessions => Some(Expect::Increments),
            Route::Counter => None,
            Route::ReadLarge => Some(Expect::Body(PAYLOAD_LEN_TEXT)),
        }
    }
}

/// [`PAYLOAD_LEN`] as the text that [`READ_LARGE`] answers.
pub const PAYLOAD_LEN_TEXT: &str = "1000";

/// Parses a route's [name](`Route::name`), as given on the command line.
impl std::str::FromStr for Route {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        crate::by_name(&Route::ALL, |s| s.name(), "scenario", name)
    }
}

/// The routes that are also measured over many distinct sessions:
/// `untouched` never loads its session, so it would not differ.
pub const DISTINCT_ROUTES: [Route; 3] = [Route::ReadKey, Route::Counter, Route::ReadLarge];

/// How many distinct sessions the distinct-session scenarios rotate
/// through by default.
pub const DEFAULT_SESSION_COUNTS: [usize; 3] = [100, 5_000, 50_000];

/// A benchmark scenario: a [`Route`] requested by clients that hold one
/// session per connection, or that rotate through many distinct sessions.
///
/// With `sessions: Some(n)`, the load generator first creates `n` sessions
/// (one setup request each, spread over the connections), then every
/// measured request presents the next one of them: the `n` sessions are
/// dealt out to the connections (connection `c` of `k` gets sessions `c`,
/// `c + k`, `c + 2k`, ...), and each connection cycles through its own
/// share in order. As all connections advance at about the same pace, the
/// server sees the `n` sessions in turn, each once per cycle, which is what
/// a store's cache sees under many active users; and as no two connections
/// hold the same session, a write never races another write of the same
/// session, so a counter's answers can be checked exactly. When `n` is
/// smaller than the number of connections, only `n` connections are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// The route measured.
    pub route: Route,
    /// `None`: one session per connection, the same on every request.
    /// `Some(n)`: `n` distinct sessions in rotation.
    pub sessions: Option<usize>,
}

impl Scenario {
    /// The classic scenarios: one session per connection.
    pub const SINGLE: [Scenario; 4] = [
        Scenario::single(Route::Untouched),
        Scenario::single(Route::ReadKey),
        Scenario::single(Route::Counter),
        Scenario::single(Route::ReadLarge),
    ];

    /// `route` with one session per connection.
    #[must_use]
    pub const fn single(route: Route) -> Scenario {
        Scenario {
            route,
            sessions: None,
        }
    }

    /// `route` over `sessions` distinct sessions in rotation.
    #[must_use]
    pub const fn distinct(route: Route, sessions: usize) -> Scenario {
        Scenario {
            route,
            sessions: Some(sessions),
        }
    }

    /// The default scenarios: every single-session one, then for each of
    /// `session_counts`, `read@n` and `counter@n`, and `read-1kb@n` for the
    /// middle count only (5,000 by default), which keeps a full run's time
    /// reasonable.
    #[must_use]
    pub fn defaults(session_counts: &[usize]) -> Vec<Scenario> {
        let mut all = Scenario::SINGLE.to_vec();
        for &n in session_counts {
            all.push(Scenario::distinct(Route::ReadKey, n));
            all.push(Scenario::distinct(Route::Counter, n));
        }
        if let Some(&n) = session_counts.get(session_counts.len() / 2) {
            all.push(Scenario::distinct(Route::ReadLarge, n));
        }
        all
    }

    /// The name for reports and the command line: the route's, followed by
    /// `@n` for `n` distinct sessions, e.g. `read-1kb@5000`.
    #[must_use]
    pub fn name(self) -> String {
        match self.sessions {
            None => self.route.name().to_owned(),
            Some(n) => format!("{}@{n}", self.route.name()),
        }
    }

    /// The request that creates a session.
    #[must_use]
    pub fn setup_path(self) -> &'static str {
        self.route.setup_path()
    }

    /// The request that is measured.
    #[must_use]
    pub fn path(self) -> &'static str {
        self.route.path()
    }

    /// What the measured response must say (see [`Route::expect`]).
    #[must_use]
    pub fn expect(self, has_sessions: bool) -> Option<Expect> {
        self.route.expect(has_sessions)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// Parses `read`, `counter`, ... or `read@5000`, `counter@100`, ...
impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let Some((route, count)) = name.split_once('@') else {
            return Ok(Scenario::single(route_named(name)?));
        };
        let route = route_named(route)?;
        if !DISTINCT_ROUTES.contains(&route) {
            return Err(format!(
                "{} does not load its session: it has no distinct-session variant",
                route.name()
            ));
        }
        let count = parse_count(count)?;
        Ok(Scenario::distinct(route, count))
    }
}

fn route_named(name: &str) -> Result<Route, String> {
    name.parse()
}

/// Parses a number of sessions, at least 1; `_` and `,` are not accepted
/// (`,` separates values on the command line).
///
/// # Errors
///
/// When `text` is not a positive integer.
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!("{text:?} is not a number of sessions (1 or more)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_len_text_matches() {
        assert_eq!(PAYLOAD_LEN_TEXT, PAYLOAD_LEN.to_string());
        assert_eq!(payload().len(), PAYLOAD_LEN);
    }

    #[test]
    fn names_round_trip() {
        for scenario in Scenario::defaults(&DEFAULT_SESSION_COUNTS) {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        }
        assert_eq!(
            "read-1kb@5000".parse::<Scenario>(),
            Ok(Scenario::distinct(Route::ReadLarge, 5000))
        );
        assert!("untouched@100".parse::<Scenario>().is_err());
        assert!("read@0".parse::<Scenario>().is_err());
        assert!("read@x".parse::<Scenario>().is_err());
    }

    #[test]
    fn defaults_include_the_distinct_scenarios() {
        let names: Vec<String> = Scenario::defaults(&DEFAULT_SESSION_COUNTS)
            .into_iter()
            .map(Scenario::name)
            .collect();
        assert_eq!(
            names,
            [
                "untouched",
                "read",
                "counter",
                "read-1kb",
                "read@100",
                "counter@100",
                "read@5000",
                "counter@5000",
                "read@50000",
                "counter@50000",
                "read-1kb@5000"
            ]
        );
    }
}
