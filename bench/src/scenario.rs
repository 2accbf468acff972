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

/// A benchmark scenario: the requests that set a session up, then the
/// request that is measured, with what its answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
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
    /// On each connection, 1, 2, 3, ... after setup: proves that the
    /// session was saved and its cookie sent back on every request.
    Increments,
}

impl Scenario {
    /// Every scenario, in the order they are run and reported.
    pub const ALL: [Scenario; 4] = [
        Scenario::Untouched,
        Scenario::ReadKey,
        Scenario::Counter,
        Scenario::ReadLarge,
    ];

    /// A short name for reports and the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Untouched => "untouched",
            Scenario::ReadKey => "read",
            Scenario::Counter => "counter",
            Scenario::ReadLarge => "read-1kb",
        }
    }

    /// The request each connection makes once before measuring, to create
    /// its session and receive the cookie.
    #[must_use]
    pub fn setup_path(self) -> &'static str {
        match self {
            // The client holds a session, as a logged-in user's browser
            // would: the untouched route must ignore it at no cost.
            Scenario::Untouched | Scenario::ReadKey | Scenario::Counter => SETUP_SMALL,
            Scenario::ReadLarge => SETUP_LARGE,
        }
    }

    /// The request that is measured.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Scenario::Untouched => UNTOUCHED,
            Scenario::ReadKey => READ,
            Scenario::Counter => COUNTER,
            Scenario::ReadLarge => READ_LARGE,
        }
    }

    /// What the measured response must say. A bare server has no session
    /// and answers constants, so its counter is not checked.
    #[must_use]
    pub fn expect(self, has_sessions: bool) -> Option<Expect> {
        match self {
            Scenario::Untouched => Some(Expect::Body(UNTOUCHED_BODY)),
            Scenario::ReadKey => Some(Expect::Body(USER)),
            Scenario::Counter if has_sessions => Some(Expect::Increments),
            Scenario::Counter => None,
            Scenario::ReadLarge => Some(Expect::Body(PAYLOAD_LEN_TEXT)),
        }
    }
}

/// [`PAYLOAD_LEN`] as the text that [`READ_LARGE`] answers.
pub const PAYLOAD_LEN_TEXT: &str = "1000";

/// Parses a scenario's [name](`Scenario::name`), as given on the command line.
impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        crate::by_name(&Scenario::ALL, |s| s.name(), "scenario", name)
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
        for scenario in Scenario::ALL {
            assert_eq!(scenario.name().parse::<Scenario>(), Ok(scenario));
        }
    }
}
