//! The one error type of the session workspace.

use std::error::Error as StdError;

/// A boxed error from a store's backend (a Redis client, a file, a database).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What can go wrong while loading or saving a session.
///
/// A missing, malformed, tampered, expired or unknown cookie is *not* an
/// error: it yields a new, empty session. An `Error` means the request cannot
/// be served faithfully (the store is down, the session no longer fits in a
/// cookie), and adapters answer it with a 500 that the application can map.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's backend failed: Redis is down, a command timed out, ...
    #[error("session store failed: {0}")]
    Store(#[source] BoxError),

    /// The cookie the session would need is larger than browsers accept.
    ///
    /// Browsers silently drop cookies over 4096 bytes, which would lose the
    /// session without a trace; the save fails loudly instead.
    #[error(
        "session cookie `{name}` would be {size} bytes, over the {limit}-byte limit that browsers enforce"
    )]
    CookieTooLarge {
        /// The cookie's name.
        name: String,
        /// The size of `name=value` plus attributes, in bytes.
        size: usize,
        /// The largest size allowed.
        limit: usize,
    },

    /// The store does not offer what was asked of it (say, listing a user's
    /// sessions on a cookie store, which keeps nothing to list).
    #[error("the session store does not support {0}")]
    Unsupported(&'static str),
    /// The store broke the [`SessionStore`](crate::SessionStore) contract:
    /// a bug in the store, not a condition of its backend. Nothing was sent
    /// to the client.
    #[error("the session store broke its contract: {0}")]
    ContractViolation(ContractViolation),

    /// A value could not be converted to or from JSON.
    #[error("session value could not be converted: {0}")]
    Value(#[source] serde_json::Error),
}

impl Error {
    /// Wraps a backend failure.
    ///
    /// ```
    /// use session_core::Error;
    /// let err = Error::store(std::io::Error::other("connection refused"));
    /// assert!(err.to_string().contains("connection refused"));
    /// ```
    pub fn store(error: impl Into<BoxError>) -> Self {
        Error::Store(error.into())
    }
}

/// How a store broke the [`SessionStore`](crate::SessionStore) contract, in
/// an [`Error::ContractViolation`].
///
/// ```
/// use session_core::{ContractViolation, Error};
///
/// let error = Error::ContractViolation(ContractViolation::InvalidCookieValue {
///     cookie: "id".to_owned(),
/// });
/// assert!(error.to_string().contains("`id`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractViolation {
    /// The store produced a cookie value with bytes that a cookie value may
    /// not hold (RFC 6265's `cookie-octet`s, optionally quoted).
    #[error("the store produced a value that is not a valid value for cookie `{cookie}`")]
    InvalidCookieValue {
        /// The cookie's name.
        cookie: String,
    },
    /// The framework refused a `Set-Cookie` value as a header value.
    /// Cookie values are checked before, so this is a bug of the adapter
    /// or of the framework's header type.
    #[error("the session cookie is not a valid header value")]
    InvalidHeaderValue,
}
