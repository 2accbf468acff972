//! The SQLite store.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use session_core::user::{BoundSession, UserIndex};
use session_core::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionId, SessionStore, Update,
    Written, async_trait,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

use crate::cleanup;
use crate::codec::{self, COLUMNS, Delta, IdAndRow, Meta, Row, millis};
use crate::migrate::{self, Dialect};
use crate::table::{InvalidTableName, Table};
use crate::{DEFAULT_TIMEOUT, MAX_ID_ATTEMPTS, timed};

/// Sessions in a SQLite table, one row per session, through a sqlx
/// [`SqlitePool`].
///
/// Every operation is one statement (see the [crate docs](crate) for the
/// SQL and its guarantees); SQLite runs one write at a time, so each
/// update applies its delta to the row as the previous write left it.
/// Create the table with [`migrate`](Self::migrate), and delete expired
/// rows with [`delete_expired`](Self::delete_expired) or
/// [`spawn_cleanup`](Self::spawn_cleanup).
///
/// ```
/// use session_core::{SessionConfig, SessionManager};
/// use session_sqlx::SqliteStore;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
/// // let url = "sqlite:///var/lib/myapp/sessions.db";
/// let store = SqliteStore::connect(&url).await?;
/// store.migrate().await?;
/// let manager = SessionManager::new(store, SessionConfig::default());
///
/// let request = manager.request();
/// request.session([]).await?.insert("user", "ada")?;
/// let set_cookie = request.save_changes().await?;
/// let cookie = set_cookie[0].split(';').next().unwrap(); // "session=<id>"
///
/// let next = manager.request();
/// let user: Option<String> = next.session([cookie.as_bytes()]).await?.get("user")?;
/// assert_eq!(user.as_deref(), Some("ada"));
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    table: Table,
    sql: Arc<Sql>,
    timeout: Duration,
}

/// The statements, built once for the table.
struct Sql {
    load: String,
    create: String,
    update: String,
    refresh: String,
    regenerate: String,
    delete: String,
    delete_expired: String,
    /// A user's live sessions, through the index on `(user_id, expires_at)`.
    sessions_of: String,
}

/// A row read leniently: `None` when a column does not hold the type the
/// store writes there. SQLite keeps whatever type a value was written with
/// (the table is not `STRICT`), so a row edited by hand to another type
/// (`expires_at = 'never'`) is a malformed row, which loads as no session,
/// rather than an error that fails every request with its cookie, and
/// every listing of its user's sessions.
struct Lenient<T>(Option<T>);

impl<'r, T: sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    for Lenient<T>
{
    fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(Lenient(T::from_row(row).ok()))
    }
}

/// Which row [`SqliteStore::apply`] writes, and how.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// The session's own row; of its columns, only `data` when
    /// `data_only`.
    Update { data_only: bool },
    /// The session's row, moved to this new id, every column written.
    MoveTo(&'a str),
}

/// What an update and a regenerate set the row's `data` to: the delta
/// (`?3`, an RFC 7396 merge patch) applied by `json_patch` to the row as it
/// is when the statement runs, or to nothing when cleared (`?2`); and its
/// other columns (`?4` to `?6`, and the user binding, `?9` to `?11`), unless
/// the update is of the data alone (`?12`, see `Update::data_only`), which
/// leaves them as they are.
const DELTA: &str = "data = json_patch(CASE WHEN ?2 THEN '{}' ELSE data END, ?3), \
     created = CASE WHEN ?12 THEN created ELSE ?4 END, \
     expires_at = CASE WHEN ?12 THEN expires_at ELSE ?5 END, \
     expiry = CASE WHEN ?12 THEN expiry ELSE ?6 END, \
     user_id = CASE WHEN ?12 THEN user_id ELSE ?9 END, \
     label = CASE WHEN ?12 THEN label ELSE ?10 END, \
     last_seen = CASE WHEN ?12 THEN last_seen ELSE ?11 END";

impl Sql {
    fn new(table: &Table) -> Sql {
        let t = table.sessions();
        let live = "(expires_at IS NULL OR expires_at > ?7)";
        Sql {
            load: format!(
                "SELECT data, {COLUMNS} FROM {t} \
                 WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
            ),
            create: format!(
                "INSERT INTO {t} \
                 (id, data, created, expires_at, expiry, user_id, label, last_seen) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING"
            ),
            update: format!("UPDATE {t} SET {DELTA} WHERE id = ?1 AND {live}"),
            refresh: format!(
                "UPDATE {t} SET expires_at = ?2, last_seen = ?4 \
                 WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?3)"
            ),
            regenerate: format!("UPDATE {t} SET id = ?8, {DELTA} WHERE id = ?1 AND {live}"),
            delete: format!("DELETE FROM {t} WHERE id = ?1 RETURNING expires_at"),
            // Also rows whose deadline is not a number (edited by hand):
            // text sorts after every number, so they would never expire,
            // and they never load.
            delete_expired: format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} \
                 WHERE expires_at <= ?1 OR typeof(expires_at) NOT IN ('integer', 'null') \
                 LIMIT ?2)"
            ),
            sessions_of: format!(
                "SELECT id, data, {COLUMNS} FROM {t} \
                 WHERE user_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)"
            ),
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// A store on `pool`, in the table `sessions` (see
    /// [`with_table_name`](Self::with_table_name)). Creates nothing: call
    /// [`migrate`](Self::migrate) once.
    ///
    /// Give the pool's connections a busy timeout (sqlx's default is 5
    /// seconds), so that writes wait for each other rather than fail, and
    /// preferably the WAL journal, so that loads do not wait for writes.
    #[must_use]
    pub fn new(pool: SqlitePool) -> Self {
        let table = Table::parse(crate::DEFAULT_TABLE).expect("the default table name is valid");
        SqliteStore {
            pool,
            sql: Arc::new(Sql::new(&table)),
            table,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Opens `url` (`sqlite://path/to/file.db`, the file created when
    /// missing), in WAL mode, with sqlx's busy timeout of 5 seconds, in a
    /// pool of up to 8 connections. `sqlite::memory:` gives a database of
    /// the process's own, on one connection kept open (for tests).
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when `url` is not a SQLite URL or the file cannot
    /// be opened.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Error::store)?
            .create_if_missing(true);
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if memory {
            // Each connection to `:memory:` is a database of its own: one,
            // never closed.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        };
        let options = if memory {
            options
        } else {
            options.journal_mode(SqliteJournalMode::Wal)
        };
        let pool = pool
            .acquire_timeout(DEFAULT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(Error::store)?;
        Ok(Self::new(pool))
    }

    /// Keeps sessions in `name` instead: `table`, or `schema.table` for a
    /// table in an attached database (see [`InvalidTableName`] for what is
    /// accepted).
    ///
    /// # Errors
    ///
    /// When `name` is not a plain identifier, or two.
    pub fn with_table_name(mut self, name: &str) -> Result<Self, InvalidTableName> {
        self.table = Table::parse(name)?;
        self.sql = Arc::new(Sql::new(&self.table));
        Ok(self)
    }

    /// How long each operation may take, waiting for a connection and for
    /// other writers included, before it fails with [`Error::Store`]
    /// (default 5 seconds).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates the store's table and index, or brings them up to date: the
    /// migrations this crate ships that have not run on this table yet, in
    /// one transaction, recorded in the table `{table}_migrations`.
    ///
    /// Never called by the store itself: run it when you deploy, or at
    /// start-up if you choose to.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a statement fails; nothing is then changed.
    pub async fn migrate(&self) -> Result<(), Error> {
        let run = async {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            migrate::run_sqlite(&mut tx, &self.table, Dialect::Sqlite).await?;
            tx.commit().await
        };
        timed(self.timeout.max(migrate::TIMEOUT), run).await
    }

    /// Deletes the rows whose deadline has passed, in batches of 1000, and
    /// answers how many: run it from a command now and then (as Django's
    /// `clearsessions`), or let [`spawn_cleanup`](Self::spawn_cleanup) do
    /// it. Expired rows never load, so this only frees space.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a batch fails; the batches before it stay
    /// deleted.
    pub async fn delete_expired(&self) -> Result<u64, Error> {
        cleanup::delete_expired(|now, limit| async move {
            let query = sqlx::query(&self.sql.delete_expired)
                .bind(now)
                .bind(limit)
                .execute(&self.pool);
            Ok(timed(self.timeout, query).await?.rows_affected())
        })
        .await
    }

    /// Runs [`delete_expired`](Self::delete_expired) every `period` (the
    /// first time at once) on a task of the current tokio runtime, until
    /// the returned handle is aborted or the runtime shuts down. A failed
    /// run is logged and the next one tried on time.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or when `period` is zero.
    pub fn spawn_cleanup(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        cleanup::spawn(period, move || {
            let store = store.clone();
            async move { store.delete_expired().await }
        })
    }

    async fn apply(
        &self,
        sql: &str,
        cookie: SessionCookie<'_>,
        record: &Record,
        delta: &Delta<'_>,
        now: SystemTime,
        target: Target<'_>,
    ) -> Result<u64, Error> {
        let Ok(id) = cookie.value.parse::<SessionId>() else {
            return Ok(0);
        };
        let meta = Meta::of(record)?;
        let patch = delta.merge_patch()?;
        let query = sqlx::query(sql)
            .bind(id.as_str())
            .bind(delta.cleared)
            .bind(patch)
            .bind(meta.created)
            .bind(meta.expires_at)
            .bind(meta.expiry)
            .bind(millis(now))
            // `?8`, the new id: unused by an update, but numbered before
            // the binding's parameters.
            .bind(match target {
                Target::MoveTo(new_id) => Some(new_id),
                Target::Update { .. } => None,
            })
            .bind(meta.user)
            .bind(meta.label)
            .bind(meta.last_seen)
            .bind(matches!(target, Target::Update { data_only: true }));
        Ok(timed(self.timeout, query.execute(&self.pool))
            .await?
            .rows_affected())
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        let Ok(id) = cookie.value.parse::<SessionId>() else {
            return Ok(None);
        };
        let query = sqlx::query_as::<_, Lenient<Row>>(&self.sql.load)
            .bind(id.as_str())
            .bind(millis(SystemTime::now()))
            .fetch_optional(&self.pool);
        let Some(Lenient(row)) = timed(self.timeout, query).await? else {
            return Ok(None);
        };
        let record = row.and_then(codec::decode);
        if record.is_none() {
            tracing::debug!(
                cookie = cookie.name,
                table = %self.table.display(),
                "malformed session row; ignored"
            );
        }
        Ok(record.map(Arc::new))
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        let data = codec::encode_all(create.record)?;
        let meta = Meta::of(create.record)?;
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = SessionId::generate().into_string();
            let query = sqlx::query(&self.sql.create)
                .bind(&id)
                .bind(&data)
                .bind(meta.created)
                .bind(meta.expires_at)
                .bind(&meta.expiry)
                .bind(meta.user)
                .bind(meta.label)
                .bind(meta.last_seen)
                .execute(&self.pool);
            if timed(self.timeout, query).await?.rows_affected() == 1 {
                return Ok(id);
            }
            crate::id_taken();
        }
        Err(crate::no_free_id())
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        let delta = Delta::of(update.record, update.changes)?;
        let sql = &self.sql.update;
        let target = Target::Update {
            data_only: update.data_only,
        };
        let rows = self
            .apply(
                sql,
                update.cookie,
                update.record,
                &delta,
                update.now,
                target,
            )
            .await?;
        Ok(crate::written(rows, update.cookie.value))
    }

    async fn refresh(&self, refresh: Refresh<'_>) -> Result<Written, Error> {
        let Ok(id) = refresh.cookie.value.parse::<SessionId>() else {
            return Ok(Written::Gone);
        };
        let query = sqlx::query(&self.sql.refresh)
            .bind(id.as_str())
            .bind(refresh.record.expires_at.map(millis))
            .bind(millis(refresh.now))
            .bind(refresh.record.last_seen.map(millis))
            .execute(&self.pool);
        let rows = timed(self.timeout, query).await?.rows_affected();
        Ok(crate::written(rows, refresh.cookie.value))
    }

    async fn regenerate(&self, regenerate: Regenerate<'_>) -> Result<Written, Error> {
        let delta = Delta::of(regenerate.record, regenerate.changes)?;
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = SessionId::generate().into_string();
            let rows = self.apply(
                &self.sql.regenerate,
                regenerate.cookie,
                regenerate.record,
                &delta,
                regenerate.now,
                Target::MoveTo(&id),
            );
            match rows.await {
                Ok(0) => return Ok(Written::Gone),
                Ok(_) => return Ok(Written::Cookie(id)),
                Err(error) if crate::is_unique_violation(&error) => crate::id_taken(),
                Err(error) => return Err(error),
            }
        }
        Err(crate::no_free_id())
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        let Ok(id) = cookie.value.parse::<SessionId>() else {
            return Ok(false);
        };
        let query = sqlx::query_as::<_, (Option<i64>,)>(&self.sql.delete)
            .bind(id.as_str())
            .fetch_optional(&self.pool);
        let deleted = timed(self.timeout, query).await?;
        Ok(crate::was_live(deleted.map(|(deadline,)| deadline)))
    }

    fn user_index(&self) -> Option<&dyn UserIndex> {
        Some(self)
    }
}

#[async_trait]
impl UserIndex for SqliteStore {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        let query = sqlx::query_as::<_, Lenient<IdAndRow>>(&self.sql.sessions_of)
            .bind(user)
            .bind(millis(now))
            .fetch_all(&self.pool);
        let rows = timed(self.timeout, query).await?;
        Ok(crate::bound_sessions(
            rows.into_iter().map(|Lenient(row)| row),
            &self.table,
        ))
    }
}
