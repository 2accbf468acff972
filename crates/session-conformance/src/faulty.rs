//! A store that fails on command, for testing what sits around a store.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::time::SystemTime;

use async_trait::async_trait;

use session_core::user::{BoundSession, UserIndex};
use session_core::{
    Changes, Create, Error, MemoryStore, Record, Refresh, Regenerate, SessionCookie, SessionStore,
    Update, Written,
};

/// A store around another one that counts its calls and fails on command: a
/// backend outage without taking a real backend down, to test adapters,
/// middleware and applications (a 500 rather than a lost write, recovery
/// once the store is back, laziness). It can also order one race: a login
/// between a revocation's listing and its delete
/// ([`move_after_next_listing`](Self::move_after_next_listing)).
///
/// Clones share the counters and the switches.
///
/// ```
/// use session_conformance::FaultyStore;
/// use session_core::{Error, SessionConfig, SessionManager};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = FaultyStore::default(); // around a MemoryStore
/// let manager = SessionManager::new(store.clone(), SessionConfig::default());
///
/// store.fail_loads(true);
/// let request = manager.request();
/// let loaded = request.session([&b"session=some-id"[..]]).await;
/// assert!(matches!(loaded, Err(Error::Store(_))));
/// assert_eq!(store.loads(), 1);
/// # });
/// ```
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn SessionStore>,
    faults: Arc<Faults>,
}

#[derive(Default)]
struct Faults {
    loads: AtomicUsize,
    saves: AtomicUsize,
    loads_fail: AtomicBool,
    writes_fail: AtomicBool,
    /// The cookie name and value of the session to move on the next
    /// listing.
    move_after_listing: Mutex<Option<(String, String)>>,
    /// Where the listing moved it.
    moved_to: Mutex<Option<String>>,
}

impl Default for FaultyStore {
    /// Around a new [`MemoryStore`].
    fn default() -> Self {
        Self::around(Arc::new(MemoryStore::new()))
    }
}

impl FaultyStore {
    /// Wraps `inner`, working until told to fail.
    pub fn around(inner: Arc<dyn SessionStore>) -> Self {
        FaultyStore {
            inner,
            faults: Arc::default(),
        }
    }

    /// Makes `load` fail (or work again).
    pub fn fail_loads(&self, fail: bool) {
        self.faults.loads_fail.store(fail, Ordering::SeqCst);
    }

    /// Makes every write (`create`, `update`, `refresh`, `regenerate`,
    /// `delete`) fail (or work again).
    pub fn fail_writes(&self, fail: bool) {
        self.faults.writes_fail.store(fail, Ordering::SeqCst);
    }

    /// Makes every call fail (or work again): the backend is down.
    pub fn fail_all(&self, fail: bool) {
        self.fail_loads(fail);
        self.fail_writes(fail);
    }

    /// How many times `load` was called, failed calls included.
    #[must_use]
    pub fn loads(&self) -> usize {
        self.faults.loads.load(Ordering::SeqCst)
    }

    /// How many times data was written (`create`, `update` or
    /// `regenerate` called), failed calls included.
    #[must_use]
    pub fn saves(&self) -> usize {
        self.faults.saves.load(Ordering::SeqCst)
    }

    /// Moves the session behind `cookie_value` to a new id right after the
    /// next listing of a user's sessions has listed it, as a login on its
    /// device would (a regenerate, which keeps it bound to its user): the
    /// race of a revocation, which lists then deletes, with a login.
    /// [`moved_to`](Self::moved_to) tells the new id.
    pub fn move_after_next_listing(&self, cookie_name: &str, cookie_value: &str) {
        *lock(&self.faults.move_after_listing) =
            Some((cookie_name.to_owned(), cookie_value.to_owned()));
    }

    /// The cookie value [`move_after_next_listing`](Self::move_after_next_listing)
    /// moved its session to, once it has.
    #[must_use]
    pub fn moved_to(&self) -> Option<String> {
        lock(&self.faults.moved_to).clone()
    }

    /// What a login does to the session behind `value`: its record, under
    /// a new id.
    async fn move_session(&self, name: &str, value: &str, now: SystemTime) -> Result<(), Error> {
        let cookie = SessionCookie::new(name, value);
        let Some(record) = self.inner.load(cookie).await? else {
            return Ok(());
        };
        let unchanged = Changes::default();
        let regenerate = Regenerate::new(cookie, &record, &unchanged, now);
        if let Written::Cookie(new_value) = self.inner.regenerate(regenerate).await? {
            *lock(&self.faults.moved_to) = Some(new_value);
        }
        Ok(())
    }

    fn check(fail: &AtomicBool) -> Result<(), Error> {
        if fail.load(Ordering::SeqCst) {
            Err(Error::store(std::io::Error::other(
                "simulated store outage",
            )))
        } else {
            Ok(())
        }
    }
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("loads", &self.loads())
            .field("saves", &self.saves())
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Counts a data write, then fails it if writes fail.
    fn write(&self) -> Result<(), Error> {
        self.faults.saves.fetch_add(1, Ordering::SeqCst);
        Self::check(&self.faults.writes_fail)
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        self.faults.loads.fetch_add(1, Ordering::SeqCst);
        Self::check(&self.faults.loads_fail)?;
        self.inner.load(cookie).await
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        self.write()?;
        self.inner.create(create).await
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        self.write()?;
        self.inner.update(update).await
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        Self::check(&self.faults.writes_fail)?;
        self.inner.refresh(refresh).await
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        self.write()?;
        self.inner.regenerate(regenerate).await
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        Self::check(&self.faults.writes_fail)?;
        self.inner.delete(cookie).await
    }

    fn needs_reissue(&self, cookie: SessionCookie<'_>) -> bool {
        self.inner.needs_reissue(cookie)
    }

    // Listings are reads: they fail with loads. Revocations are deletes,
    // which fail with writes.
    fn user_index(&self) -> Option<&dyn UserIndex> {
        self.inner.user_index().map(|_| self as &dyn UserIndex)
    }
}

#[async_trait]
impl UserIndex for FaultyStore {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        Self::check(&self.faults.loads_fail)?;
        let index = self
            .inner
            .user_index()
            .ok_or(Error::Unsupported("listing a user's sessions"))?;
        let listed = index.sessions_of(user, now).await?;
        let armed = lock(&self.faults.move_after_listing).take();
        if let Some((name, value)) = armed {
            self.move_session(&name, &value, now).await?;
        }
        Ok(listed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
