//! Why a handler could not have its session: what the adapters' extractors
//! reject with, written once for every framework.
//!
//! An adapter keeps only its framework's half: a newtype around
//! [`Rejection`] that turns it into the framework's response, and an
//! [`OnError`] of the framework's response type, which the application may
//! set.

use std::fmt;
use std::sync::Arc;

use crate::Error;

/// Turns a session error into the response sent instead of the
/// handler's: the application's choice (an adapter's
/// `with_error_response`), or the adapter's default. Cheap to clone.
///
/// ```
/// use session_core::{Error, OnError};
///
/// let on_error = OnError::new(|error: &Error| format!("500: {error}"));
/// let response = on_error.respond(&Error::store("down"));
/// assert!(response.starts_with("500: session store failed"));
/// ```
pub struct OnError<T>(Arc<dyn Fn(&Error) -> T + Send + Sync>);

impl<T> OnError<T> {
    /// Answers every session error with what `respond` makes of it.
    pub fn new(respond: impl Fn(&Error) -> T + Send + Sync + 'static) -> Self {
        OnError(Arc::new(respond))
    }

    /// The response for `error`.
    pub fn respond(&self, error: &Error) -> T {
        (self.0)(error)
    }
}

impl<T> Clone for OnError<T> {
    fn clone(&self) -> Self {
        OnError(Arc::clone(&self.0))
    }
}

impl<T> fmt::Debug for OnError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnError(..)")
    }
}

/// Why the session could not be extracted: no session layer wraps the
/// route, or the store failed to load it. `R` is what answers a failed
/// load (the adapter's [`OnError`]).
///
/// Both are logged when the rejection is made, with the details that the
/// response leaves out (they may name the backend's internals).
///
/// ```
/// use session_core::{Error, Rejection};
///
/// let missing: Rejection<()> = Rejection::missing_layer("no session layer wraps this route");
/// assert!(missing.is_missing_layer() && missing.error().is_none());
/// assert_eq!(missing.to_string(), "no session layer wraps this route");
///
/// let failed = Rejection::load_failed(Error::store("timed out"), ());
/// assert!(failed.error().is_some());
/// assert!(failed.to_string().starts_with("the session could not be loaded: "));
/// ```
pub struct Rejection<R> {
    kind: Kind<R>,
}

enum Kind<R> {
    /// The adapter's message naming its missing layer.
    MissingLayer(&'static str),
    Load {
        error: Error,
        on_error: R,
    },
}

impl<R> Rejection<R> {
    /// No session layer wraps the route: a mistake in how the application
    /// is put together, which `message` explains.
    pub fn missing_layer(message: &'static str) -> Self {
        tracing::error!("{message}");
        Rejection {
            kind: Kind::MissingLayer(message),
        }
    }

    /// The store failed to load the session; `on_error` answers it.
    pub fn load_failed(error: Error, on_error: R) -> Self {
        tracing::error!(%error, "the session could not be loaded");
        Rejection {
            kind: Kind::Load { error, on_error },
        }
    }

    /// Whether no session layer (middleware) wraps the route.
    #[must_use]
    pub fn is_missing_layer(&self) -> bool {
        matches!(self.kind, Kind::MissingLayer(_))
    }

    /// The error that kept the session from loading, if that is what
    /// happened.
    #[must_use]
    pub fn error(&self) -> Option<&Error> {
        match &self.kind {
            Kind::MissingLayer(_) => None,
            Kind::Load { error, .. } => Some(error),
        }
    }

    /// The error that kept the session from loading, if that is what
    /// happened.
    #[must_use]
    pub fn into_error(self) -> Option<Error> {
        match self.kind {
            Kind::MissingLayer(_) => None,
            Kind::Load { error, .. } => Some(error),
        }
    }

    /// The response: `missing` makes the one for a missing layer from its
    /// message, `failed` the one for a failed load.
    pub fn respond<T>(
        &self,
        missing: impl FnOnce(&'static str) -> T,
        failed: impl FnOnce(&R, &Error) -> T,
    ) -> T {
        match &self.kind {
            Kind::MissingLayer(message) => missing(message),
            Kind::Load { error, on_error } => failed(on_error, error),
        }
    }
}

impl<R> fmt::Debug for Rejection<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer(_) => f.write_str("SessionRejection::MissingLayer"),
            Kind::Load { error, .. } => f
                .debug_tuple("SessionRejection::Load")
                .field(error)
                .finish(),
        }
    }
}

impl<R> fmt::Display for Rejection<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::MissingLayer(message) => f.write_str(message),
            Kind::Load { error, .. } => write!(f, "the session could not be loaded: {error}"),
        }
    }
}

impl<R> std::error::Error for Rejection<R> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error().map(|error| error as _)
    }
}
