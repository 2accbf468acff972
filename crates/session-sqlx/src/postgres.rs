//! The Postgres store.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use session_core::user::{BoundSession, UserIndex};
use session_core::{
    Create, Error, Record, Refresh, Regenerate, SessionCookie, SessionId, SessionStore, Update,
    Written, async_trait,
};
use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::batch::{Batcher, Loads, Updates};
use crate::cleanup;
use crate::codec::{self, COLUMNS, Delta, IdAndRow, Meta, millis};
use crate::migrate::{self, Dialect};
use crate::table::{InvalidTableName, Table};
use crate::{DEFAULT_TIMEOUT, MAX_ID_ATTEMPTS, timed};

/// Sessions in a Postgres table, one row per session, through a sqlx
/// [`PgPool`].
///
/// Every operation is one statement (see the [crate docs](crate) for the
/// SQL and its guarantees). Create the table with
/// [`migrate`](Self::migrate), and delete expired rows with
/// [`delete_expired`](Self::delete_expired) or
/// [`spawn_cleanup`](Self::spawn_cleanup).
///
/// ```no_run
/// use std::time::Duration;
/// use session_core::{SessionConfig, SessionManager};
/// use session_sqlx::PostgresStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@localhost/app")
///     .await?
///     .with_table_name("auth.sessions")?;
/// store.migrate().await?; // at deployment, or at start-up if you choose
/// let _cleanup = store.spawn_cleanup(Duration::from_secs(600));
/// let manager = SessionManager::new(store, SessionConfig::default());
/// # drop(manager);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: Table,
    sql: Arc<Sql>,
    /// Loads waiting at the same time go as one statement.
    loads: Arc<Batcher<Loads>>,
    /// So do updates.
    updates: Arc<Batcher<Updates>>,
    timeout: Duration,
}

/// The statements, built once for the table.
struct Sql {
    /// Loads many ids: see [`Loads`].
    load_many: String,
    create: String,
    /// Updates many sessions: see [`Updates`].
    update_many: String,
    refresh: String,
    regenerate: String,
    delete: String,
    delete_expired: String,
    /// A user's live sessions, through the index on `(user_id, expires_at)`.
    sessions_of: String,
}

/// Fails when a session key holds U+0000, which Postgres's `jsonb` and
/// `text` refuse.
fn check_keys<'a>(mut keys: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    if keys.any(|key| key.contains('\0')) {
        return Err(Error::store(
            "Postgres cannot store a session key that contains U+0000",
        ));
    }
    Ok(())
}

/// Fails when the session's user or label holds U+0000, which Postgres's
/// `text` refuses.
fn check_binding(meta: &Meta<'_>) -> Result<(), Error> {
    if [meta.user, meta.label]
        .into_iter()
        .flatten()
        .any(|text| text.contains('\0'))
    {
        return Err(Error::store(
            "Postgres cannot store a user or a label that contains U+0000",
        ));
    }
    Ok(())
}

/// One update's row of the batched update's recordset.
#[derive(serde::Serialize)]
struct UpdateRow<'a> {
    id: &'a str,
    cleared: bool,
    removed: &'a [&'a str],
    written: &'a std::collections::BTreeMap<&'a str, String>,
    /// The data alone: the row's other columns stay as they are (see
    /// `Update::data_only`).
    data_only: bool,
    created: i64,
    expires_at: Option<i64>,
    expiry: Option<&'a str>,
    user_id: Option<&'a str>,
    label: Option<&'a str>,
    last_seen: Option<i64>,
    now: i64,
}

/// What a regenerate sets the row's `data` to: the delta
/// applied to the row as it is when the statement runs (`$2` cleared,
/// `$3` the keys to delete, `$4` the keys to write); and its other columns
/// (`$5` to `$7`, and the user binding, `$10` to `$12`).
const DELTA: &str = "data = (CASE WHEN $2 OR jsonb_typeof(data) <> 'object' THEN '{}'::jsonb \
     ELSE data - $3::text[] END) || $4::jsonb, \
     created = $5, expires_at = $6, expiry = $7, \
     user_id = $10, label = $11, last_seen = $12";

impl Sql {
    fn new(table: &Table) -> Sql {
        let t = table.sessions();
        let live = "(expires_at IS NULL OR expires_at > $8)";
        Sql {
            load_many: format!(
                "SELECT id, data::text, {COLUMNS} FROM {t} \
                 WHERE id = ANY($1) AND (expires_at IS NULL OR expires_at > $2)"
            ),
            create: format!(
                "INSERT INTO {t} \
                 (id, data, created, expires_at, expiry, user_id, label, last_seen) \
                 VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
            ),
            update_many: format!(
                "WITH u AS MATERIALIZED (\
                     SELECT * FROM jsonb_to_recordset($1::jsonb) AS u(\
                         id text, cleared boolean, removed text[], written jsonb, \
                         data_only boolean, created bigint, expires_at bigint, expiry text, \
                         user_id text, label text, last_seen bigint, now bigint)\
                 ), locked AS MATERIALIZED (\
                     SELECT s.id FROM {t} AS s JOIN u ON s.id = u.id \
                     WHERE s.expires_at IS NULL OR s.expires_at > u.now \
                     ORDER BY s.id FOR UPDATE OF s\
                 ) \
                 UPDATE {t} AS s SET \
                     data = (CASE WHEN u.cleared OR jsonb_typeof(s.data) <> 'object' \
                         THEN '{{}}'::jsonb ELSE s.data - u.removed END) \
                         || u.written, \
                     created = CASE WHEN u.data_only THEN s.created ELSE u.created END, \
                     expires_at = CASE WHEN u.data_only THEN s.expires_at ELSE u.expires_at END, \
                     expiry = CASE WHEN u.data_only THEN s.expiry ELSE u.expiry END, \
                     user_id = CASE WHEN u.data_only THEN s.user_id ELSE u.user_id END, \
                     label = CASE WHEN u.data_only THEN s.label ELSE u.label END, \
                     last_seen = CASE WHEN u.data_only THEN s.last_seen ELSE u.last_seen END \
                 FROM u JOIN locked ON locked.id = u.id \
                 WHERE s.id = u.id AND (s.expires_at IS NULL OR s.expires_at > u.now) \
                 RETURNING s.id"
            ),
            refresh: format!(
                "UPDATE {t} SET expires_at = $2, last_seen = $4 \
                 WHERE id = $1 AND (expires_at IS NULL OR expires_at > $3)"
            ),
            regenerate: format!("UPDATE {t} SET id = $9, {DELTA} WHERE id = $1 AND {live}"),
            delete: format!("DELETE FROM {t} WHERE id = $1 RETURNING expires_at"),
            delete_expired: format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} \
                 WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            sessions_of: format!(
                "SELECT id, data::text, {COLUMNS} FROM {t} \
                 WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > $2)"
            ),
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's options hold the password: not shown.
        f.debug_struct("PostgresStore")
            .field("table", &self.table)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// A store on `pool`, in the table `sessions` (see
    /// [`with_table_name`](Self::with_table_name)). Creates nothing: call
    /// [`migrate`](Self::migrate) once.
    #[must_use]
    pub fn new(pool: PgPool) -> Self {
        let table = Table::parse(crate::DEFAULT_TABLE).expect("the default table name is valid");
        let sql = Sql::new(&table);
        PostgresStore {
            pool,
            loads: Arc::new(Batcher::new(Loads {
                sql: sql.load_many.clone(),
            })),
            updates: Arc::new(Batcher::new(Updates {
                sql: sql.update_many.clone(),
            })),
            sql: Arc::new(sql),
            table,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Connects a pool to `url` (`postgres://user:password@host:port/db`):
    /// sqlx's defaults (up to 10 connections), with the store's timeout as
    /// the time to wait for a connection. Connects lazily: this succeeds
    /// while the database is down, and the first operation fails then.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when `url` is not a Postgres URL.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(DEFAULT_TIMEOUT)
            .connect_lazy(url)
            .map_err(Error::store)?;
        Ok(Self::new(pool))
    }

    /// Keeps sessions in `name` instead: `table`, or `schema.table`
    /// (see [`InvalidTableName`] for what is accepted).
    /// [`migrate`](Self::migrate) creates the schema if it is missing.
    ///
    /// # Errors
    ///
    /// When `name` is not a plain identifier, or two.
    pub fn with_table_name(mut self, name: &str) -> Result<Self, InvalidTableName> {
        self.table = Table::parse(name)?;
        let sql = Sql::new(&self.table);
        self.loads = Arc::new(Batcher::new(Loads {
            sql: sql.load_many.clone(),
        }));
        self.updates = Arc::new(Batcher::new(Updates {
            sql: sql.update_many.clone(),
        }));
        self.sql = Arc::new(sql);
        Ok(self)
    }

    /// How long each operation may take, waiting for a connection
    /// included, before it fails with [`Error::Store`] (default 5
    /// seconds). With the database down or unresponsive, requests fail
    /// after this long, and succeed again once it is back.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The pool the store uses.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates the store's table, index and (with `schema.table`) schema,
    /// or brings them up to date: the migrations this crate ships that
    /// have not run on this table yet, in one transaction, recorded in
    /// the table `{table}_migrations`. Safe to call from several processes
    /// at once (they take turns on an advisory lock), and cheap once done.
    ///
    /// Never called by the store itself: run it when you deploy, or at
    /// start-up if you choose to.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when a statement fails (no permission to create
    /// tables, say); nothing is then changed.
    pub async fn migrate(&self) -> Result<(), Error> {
        let run = async {
            let mut tx = self.pool.begin().await?;
            let key = format!("session-sqlx {}", self.table.display());
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(key)
                .execute(&mut *tx)
                .await?;
            migrate::run_postgres(&mut tx, &self.table, Dialect::Postgres).await?;
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

    /// Moves the session of `cookie` to `new_id` with `delta` applied, if
    /// it is still live: the rows changed (0 or 1).
    async fn move_to(
        &self,
        new_id: &str,
        cookie: SessionCookie<'_>,
        record: &Record,
        delta: &Delta<'_>,
        now: SystemTime,
    ) -> Result<u64, Error> {
        let Ok(id) = cookie.value.parse::<SessionId>() else {
            return Ok(0);
        };
        let meta = Meta::of(record)?;
        let written = delta.written_json()?;
        let query = sqlx::query(&self.sql.regenerate)
            .bind(id.as_str())
            .bind(delta.cleared)
            .bind(&delta.removed)
            .bind(written)
            .bind(meta.created)
            .bind(meta.expires_at)
            .bind(meta.expiry)
            .bind(millis(now))
            .bind(new_id)
            .bind(meta.user)
            .bind(meta.label)
            .bind(meta.last_seen);
        Ok(timed(self.timeout, query.execute(&self.pool))
            .await?
            .rows_affected())
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        let Ok(id) = cookie.value.parse::<SessionId>() else {
            return Ok(None);
        };
        let row = self.loads.call(&self.pool, id.as_str(), (), self.timeout);
        let Some(row) = row.await? else {
            return Ok(None);
        };
        let record = codec::decode(row);
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
        check_keys(create.record.data.keys().map(String::as_str))?;
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
        let Ok(id) = update.cookie.value.parse::<SessionId>() else {
            return Ok(Written::Gone);
        };
        let delta = Delta::of(update.record, update.changes)?;
        // Checked here (and the user and label below), so that a key
        // Postgres refuses fails its own request and not the batch it would
        // join.
        check_keys(delta.removed.iter().chain(delta.written.keys()).copied())?;
        let meta = Meta::of(update.record)?;
        check_binding(&meta)?;
        let row = serde_json::to_string(&UpdateRow {
            id: id.as_str(),
            cleared: delta.cleared,
            removed: &delta.removed,
            written: &delta.written,
            data_only: update.data_only,
            created: meta.created,
            expires_at: meta.expires_at,
            expiry: meta.expiry.as_deref(),
            user_id: meta.user,
            label: meta.label,
            last_seen: meta.last_seen,
            now: millis(update.now),
        })
        .map_err(Error::Value)?;
        let updates = self
            .updates
            .call(&self.pool, id.as_str(), row, self.timeout);
        let rows = u64::from(updates.await?);
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
        check_keys(delta.removed.iter().chain(delta.written.keys()).copied())?;
        for _ in 0..MAX_ID_ATTEMPTS {
            let id = SessionId::generate().into_string();
            let rows = self.move_to(
                &id,
                regenerate.cookie,
                regenerate.record,
                &delta,
                regenerate.now,
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
impl UserIndex for PostgresStore {
    async fn sessions_of(&self, user: &str, now: SystemTime) -> Result<Vec<BoundSession>, Error> {
        let query = sqlx::query_as::<_, IdAndRow>(&self.sql.sessions_of)
            .bind(user)
            .bind(millis(now))
            .fetch_all(&self.pool);
        let rows = timed(self.timeout, query).await?;
        Ok(crate::bound_sessions(
            rows.into_iter().map(Some),
            &self.table,
        ))
    }
}
