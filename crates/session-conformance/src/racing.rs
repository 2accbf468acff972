//! A store that provokes one ordering of a race the suite checks: a login
//! that lands between a revocation's listing and its delete.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;

use session_core::user::{BoundSession, UserIndex};
use session_core::{
    Changes, Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionStore, Update,
    Written,
};

/// Around the store under test: once [armed](Self::arm) with a session's
/// cookie, the next listing of a user's sessions moves that session to a
/// new id right after listing it, as a login on its device would (a
/// regenerate, which keeps the session bound to its user). Everything else
/// goes to the store as it is.
pub(crate) struct LoginAfterListing {
    inner: Arc<dyn SessionStore>,
    /// The cookie name and value of the session to move on the next
    /// listing.
    armed: Mutex<Option<(String, String)>>,
    /// Where the listing moved it.
    moved_to: Mutex<Option<String>>,
}

impl LoginAfterListing {
    pub(crate) fn around(inner: Arc<dyn SessionStore>) -> Self {
        LoginAfterListing {
            inner,
            armed: Mutex::new(None),
            moved_to: Mutex::new(None),
        }
    }

    /// Moves the session behind `cookie_value` on the next listing.
    pub(crate) fn arm(&self, cookie_name: &str, cookie_value: &str) {
        *lock(&self.armed) = Some((cookie_name.to_owned(), cookie_value.to_owned()));
    }

    /// The cookie value the armed session was moved to, once it was.
    pub(crate) fn moved_to(&self) -> Option<String> {
        lock(&self.moved_to).clone()
    }

    /// What a login does to the session: its record, under a new id.
    async fn log_in_again(&self, name: &str, value: &str, now: SystemTime) -> Result<(), Error> {
        let cookie = SessionCookie::new(name, value);
        let Some(record) = self.inner.load(cookie).await? else {
            return Ok(());
        };
        let unchanged = Changes::default();
        let regenerate = Regenerate::new(cookie, &record, &unchanged, now);
        if let Written::Cookie(new_value) = self.inner.regenerate(regenerate).await? {
            *lock(&self.moved_to) = Some(new_value);
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl SessionStore for LoginAfterListing {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        self.inner.load(cookie).await
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        self.inner.create(create).await
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        self.inner.update(update).await
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        self.inner.refresh(refresh).await
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        self.inner.regenerate(regenerate).await
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        self.inner.delete(cookie).await
    }

    fn needs_reissue(&self, cookie: SessionCookie<'_>) -> bool {
        self.inner.needs_reissue(cookie)
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index().map(|_| self as &dyn UserIndex)
    }
}

#[async_trait]
impl UserIndex for LoginAfterListing {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        let index = self
            .inner
            .user_index()
            .ok_or(Error::Unsupported("listing a user's sessions"))?;
        let listed = index.sessions_of(user, now).await?;
        let armed = lock(&self.armed).take();
        if let Some((name, value)) = armed {
            self.log_in_again(&name, &value, now).await?;
        }
        Ok(listed)
    }
}
