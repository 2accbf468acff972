//! How the session behaves: its cookie and its expiry.

use std::time::Duration;

use crate::expiry::{Clock, Expiry, Rolling, Rules};
use crate::{CookieConfig, CookieLifetime, SameSite};

/// Everything configurable about sessions, with safe defaults.
///
/// | setting | default |
/// |---|---|
/// | cookie | `session`, `Path=/`, `Secure`, `HttpOnly`, `SameSite=Lax` |
/// | idle timeout | 24 hours |
/// | absolute timeout | 7 days |
/// | cookie lifetime | browser session (no `Max-Age`) |
/// | rolling refresh | on reads and writes, at most once a minute |
///
/// ```
/// use std::time::Duration;
/// use session_core::{CookieLifetime, SameSite, SessionConfig};
///
/// let config = SessionConfig::default()
///     .with_cookie_name("id")
///     .with_same_site(SameSite::Strict)
///     .with_idle_timeout(Some(Duration::from_secs(30 * 60)))
///     .with_cookie_lifetime(CookieLifetime::Persistent);
/// assert_eq!(config.cookie().name(), "id");
/// ```
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    cookie: CookieConfig,
    expiry: Expiry,
    rolling: Rolling,
    clock: Clock,
}

impl SessionConfig {
    /// Replaces the cookie settings at once.
    #[must_use]
    pub fn with_cookie(mut self, cookie: CookieConfig) -> Self {
        self.cookie = cookie;
        self
    }

    /// Sets the cookie's name. See [`CookieConfig::with_name`].
    #[must_use]
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie = self.cookie.with_name(name);
        self
    }

    /// Sets the cookie's `Path`. See [`CookieConfig::with_path`].
    #[must_use]
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie = self.cookie.with_path(path);
        self
    }

    /// Sets the cookie's `Domain`. See [`CookieConfig::with_domain`].
    #[must_use]
    pub fn with_cookie_domain(mut self, domain: Option<String>) -> Self {
        self.cookie = self.cookie.with_domain(domain);
        self
    }

    /// Sets the cookie's `Secure` flag. Off only for plain-http testing.
    #[must_use]
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.cookie = self.cookie.with_secure(secure);
        self
    }

    /// Sets the cookie's `HttpOnly` flag.
    #[must_use]
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.cookie = self.cookie.with_http_only(http_only);
        self
    }

    /// Sets the cookie's `SameSite` attribute.
    #[must_use]
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.cookie = self.cookie.with_same_site(same_site);
        self
    }

    /// Replaces the expiry policy at once.
    #[must_use]
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets (or, with `None`, removes) the idle timeout.
    #[must_use]
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.expiry = self.expiry.with_idle_timeout(idle);
        self
    }

    /// Sets (or, with `None`, removes) the absolute timeout.
    #[must_use]
    pub fn with_absolute_timeout(mut self, absolute: Option<Duration>) -> Self {
        self.expiry = self.expiry.with_absolute_timeout(absolute);
        self
    }

    /// Chooses between browser-session and persistent cookies. See
    /// [`CookieConfig::with_lifetime`].
    #[must_use]
    pub fn with_cookie_lifetime(mut self, lifetime: CookieLifetime) -> Self {
        self.cookie = self.cookie.with_lifetime(lifetime);
        self
    }

    /// Sets when requests extend the idle timeout (see [`Rolling`]).
    #[must_use]
    pub fn with_rolling(mut self, rolling: Rolling) -> Self {
        self.rolling = rolling;
        self
    }

    /// Sets the clock expiry is measured with (a
    /// [`ManualClock`](crate::ManualClock) in tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The cookie settings.
    #[must_use]
    pub fn cookie(&self) -> &CookieConfig {
        &self.cookie
    }

    /// The default expiry policy (a session may override it, within its
    /// absolute timeout: see [`Expiry::within`]).
    #[must_use]
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The rolling refresh policy.
    #[must_use]
    pub fn rolling(&self) -> Rolling {
        self.rolling
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub(crate) fn expiry_rules(&self) -> Rules {
        Rules {
            configured: self.expiry,
            rolling: self.rolling,
        }
    }
}
