//! What a request did to its session, written to the store: one store call
//! per [`Outcome`], and the `Set-Cookie` values that follow from its answer.

use std::sync::Arc;
use std::time::SystemTime;

use crate::session::Outcome;
use crate::{
    CookieConfig, Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionStore, Update,
    Written,
};

/// One request's end: the store, the cookie settings, and the cookie the
/// session was loaded from.
pub(super) struct Writer<'a> {
    pub(super) store: &'a dyn SessionStore,
    pub(super) cookie: &'a CookieConfig,
    /// `cookie`'s removal, formatted once per manager.
    pub(super) removal_cookie: &'a str,
    /// The cookie value the session was loaded from; `None` for a session
    /// that was new to this request.
    pub(super) previous: Option<&'a str>,
    pub(super) now: SystemTime,
}

impl Writer<'_> {
    /// Writes `outcome` and returns the `Set-Cookie` values to send.
    pub(super) async fn write(&self, outcome: Outcome) -> Result<Vec<String>, Error> {
        // A loaded session's writes name it by the cookie it came from; a
        // new session's can only create.
        let previous = self
            .previous
            .map(|value| SessionCookie::new(self.name(), value));
        match (outcome, previous) {
            // Only a loaded session is refreshed.
            (Outcome::Unchanged, _) | (Outcome::Refreshed { .. }, None) => Ok(Vec::new()),
            (Outcome::Invalidated { then }, previous) => self.invalidate(previous, then).await,
            (Outcome::Created(record), _)
            | (Outcome::Changed { record, .. } | Outcome::Regenerated { record, .. }, None) => {
                self.create(record).await
            }
            (
                Outcome::Changed {
                    record,
                    changes,
                    data_only,
                },
                Some(cookie),
            ) => {
                let update =
                    Update::new(cookie, &record, &changes, self.now).with_data_only(data_only);
                let written = self.store.update(update).await?;
                self.kept(written, &record, !data_only)
            }
            (Outcome::Refreshed { record, restamped }, Some(cookie)) => {
                let written = self
                    .store
                    .refresh(Refresh::new(cookie, &record, self.now))
                    .await?;
                self.kept(written, &record, restamped)
            }
            (Outcome::Regenerated { record, changes }, Some(cookie)) => {
                let regenerate = Regenerate::new(cookie, &record, &changes, self.now);
                match self.store.regenerate(regenerate).await? {
                    Written::Cookie(value) => {
                        tracing::debug!(cookie = self.name(), "session regenerated");
                        Ok(vec![self.set_cookie(&value, &record)?])
                    }
                    Written::Gone => Ok(self.gone()),
                    Written::Emptied => Ok(self.removal()),
                }
            }
        }
    }

    fn name(&self) -> &str {
        self.cookie.name()
    }

    fn set_cookie(&self, value: &str, record: &Record) -> Result<String, Error> {
        self.cookie
            .session_cookie(value, record.expires_at, self.now)
    }

    /// The answer to a session that ended while the request ran (a logout,
    /// a revocation, a login that moved it, or its expiry came first):
    /// nothing of the session comes back, and no cookie is sent. Not a
    /// removal: the response that ended the session may have given the
    /// client a newer cookie of the same name (the new id of a login, or a
    /// session begun after a logout), and the browser applies whichever
    /// response arrives last.
    fn gone(&self) -> Vec<String> {
        tracing::debug!(cookie = self.name(), "session ended during the request");
        Vec::new()
    }

    /// The cookie's removal, alone.
    fn removal(&self) -> Vec<String> {
        vec![self.removal_cookie.to_owned()]
    }

    /// Stores `record` as a brand-new session under a fresh id.
    async fn create(&self, record: Arc<Record>) -> Result<Vec<String>, Error> {
        let create = Create::new(self.name(), &record, self.now);
        let value = self.store.create(create).await?;
        Ok(vec![self.set_cookie(&value, &record)?])
    }

    /// The cookies after a write that kept the session's identity: none
    /// when the browser already holds exactly the cookie to send (a
    /// server-side store keeps the id, and a browser-session cookie has no
    /// `Max-Age` to move; sending it again would change nothing, and would
    /// keep shared caches from storing the response).
    fn kept(
        &self,
        written: Written,
        record: &Record,
        deadline_moved: bool,
    ) -> Result<Vec<String>, Error> {
        match written {
            Written::Gone => Ok(self.gone()),
            Written::Emptied => Ok(self.removal()),
            Written::Cookie(value)
                if self.previous == Some(value.as_str())
                    && !(deadline_moved && self.cookie.resent_when_deadline_moves()) =>
            {
                Ok(Vec::new())
            }
            Written::Cookie(value) => Ok(vec![self.set_cookie(&value, record)?]),
        }
    }

    /// Logout: deletes the session the client came with, then stores what
    /// the request wrote afterwards as a new session, or removes the
    /// cookie.
    async fn invalidate(
        &self,
        previous: Option<SessionCookie<'_>>,
        then: Option<Arc<Record>>,
    ) -> Result<Vec<String>, Error> {
        if let Some(cookie) = previous {
            self.store.delete(cookie).await?;
            tracing::debug!(cookie = self.name(), "session invalidated");
        }
        match (then, previous) {
            (Some(record), _) => self.create(record).await,
            (None, Some(_)) => Ok(self.removal()),
            (None, None) => Ok(Vec::new()),
        }
    }
}
