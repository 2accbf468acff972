//! Postgres and SQLite session stores for [`session_core`], on [sqlx]:
//! sessions in the database the application already runs, as Django keeps
//! them by default.
//!
//! The cookie holds a random session id; the session is one row of a table.
//! Writes apply only what a request changed, in one statement, so that
//! concurrent requests on one session keep each other's changes, and a
//! logout is never undone by a request that was still running. This crate
//! is written against `session-core`'s public trait only, and passes its
//! conformance suite on both databases.
//!
//! * [`PostgresStore`] (feature `postgres`): Postgres 12 or later.
//! * [`SqliteStore`] (feature `sqlite`): SQLite, through sqlx's bundled
//!   libsqlite3.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use session_core::{SessionConfig, SessionManager};
//! use session_sqlx::PostgresStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@localhost/app").await?;
//! store.migrate().await?; // explicit: never done behind your back
//! let cleanup = store.spawn_cleanup(Duration::from_secs(3600));
//! let manager = SessionManager::new(store, SessionConfig::default());
//! // Hand `manager` to session-axum's or session-actix's layer.
//! # drop((manager, cleanup));
//! # Ok(())
//! # }
//! ```
//!
//! [`SqliteStore`] has a runnable example.
//!
//! # Setting up
//!
//! * **Connecting**: `PostgresStore::connect(url)` / `SqliteStore::connect(url)`,
//!   or `new(pool)` with a sqlx pool you configured.
//! * **Migrations** ship with the crate and run only when you call
//!   `migrate()`: at deployment (a command of your application), or at
//!   start-up if you choose. They create the table, its index on the
//!   deadline, and `{table}_migrations`, which records the versions
//!   applied so that later versions of this crate add only what changed.
//! * **Table name**: `sessions` by default; `with_table_name("name")` or
//!   `("schema.name")`. It is checked when set (ASCII identifiers only), so
//!   no request can reach it, and quoted in the SQL.
//! * **Expired rows** never load, and are deleted by `delete_expired()`
//!   (run it from a command, as Django's `clearsessions`) or every period
//!   by `spawn_cleanup(period)` (as tower-sessions' `ExpiredDeletion`).
//! * **Timeouts**: every operation fails with [`Error::Store`] after 5
//!   seconds (`with_timeout`): with the database down, requests answer 500
//!   and recover without a restart once it is back.
//!
//! # Schema
//!
//! | column | Postgres | SQLite | what |
//! |---|---|---|---|
//! | `id` | `TEXT PRIMARY KEY` | `TEXT PRIMARY KEY` | the cookie value: 32 base64url characters, 192 random bits |
//! | `data` | `JSONB` | `TEXT` | an object mapping each session key to its value's JSON text |
//! | `created` | `BIGINT` | `INTEGER` | the session's first creation, Unix milliseconds |
//! | `expires_at` | `BIGINT`, indexed | `INTEGER`, indexed | the deadline, Unix milliseconds; `NULL` for none |
//! | `expiry` | `TEXT` | `TEXT` | the session's own expiry policy (JSON), `NULL` for the configured one |
//! | `user_id` | `TEXT` | `TEXT` | the user the session is bound to (`Session::bind_user`); `NULL` for none; indexed with `expires_at` over bound rows |
//! | `label` | `TEXT` | `TEXT` | the label the application gave the session (`Session::set_label`) |
//! | `last_seen` | `BIGINT` | `INTEGER` | when a request last wrote to or refreshed a bound session, Unix milliseconds |
//!
//! The last three come with the second migration: `migrate()` adds them
//! to a table made by an earlier release, whose sessions keep loading
//! (unbound until a handler binds them).
//!
//! Each value is kept as the JSON text serde_json wrote (`{"user":
//! "\"ada\""}`), so that every value round-trips exactly (Postgres's
//! `jsonb` would rewrite numbers and refuse `\u0000` in strings; SQLite's
//! JSON functions would turn numbers into doubles), and so that applying a
//! delta is a key-by-key replacement on both databases. To read a value in
//! SQL: `(data->>'user')::jsonb` on Postgres, `json(data->>'user')` on
//! SQLite.
//!
//! # Statements and guarantees
//!
//! Every operation is one statement; `$now` is the application's clock.
//! A cookie value that does not parse as a
//! [`SessionId`](session_core::SessionId) never reaches the database, and
//! every value is a bound parameter.
//!
//! * **load**: `SELECT ... WHERE id = $1 AND (expires_at IS NULL OR
//!   expires_at > $now)`: an expired row never loads, whether or not the
//!   cleanup has run (and the core checks the record's deadline again).
//! * **create**: `INSERT ... ON CONFLICT (id) DO NOTHING`: never overwrites;
//!   another id is drawn if one was taken.
//! * **update** applies the request's delta to the row as it is when the
//!   statement runs, under the row's lock, so two requests that changed
//!   different keys both keep their change. Postgres removes the deleted
//!   keys with `-` and merges the written ones with `||`; SQLite applies one
//!   merge patch that maps written keys to their text and deleted keys to
//!   `null`. A row that is gone (a logout, a revocation) or past its
//!   deadline is not written, and the answer is
//!   [`Written::Gone`](session_core::Written): **a write after a logout
//!   never brings the session back**.
//!
//!   ```sql
//!   -- Postgres
//!   UPDATE sessions
//!   SET data = (CASE WHEN $2 THEN '{}'::jsonb ELSE data - $3::text[] END) || $4::jsonb,
//!       created = $5, expires_at = $6, expiry = $7,
//!       user_id = $10, label = $11, last_seen = $12
//!   WHERE id = $1 AND (expires_at IS NULL OR expires_at > $8)
//!   -- SQLite
//!   UPDATE sessions
//!   SET data = json_patch(CASE WHEN ?2 THEN '{}' ELSE data END, ?3),
//!       created = ?4, expires_at = ?5, expiry = ?6,
//!       user_id = ?9, label = ?10, last_seen = ?11
//!   WHERE id = ?1 AND (expires_at IS NULL OR expires_at > ?7)
//!   ```
//!
//!   On Postgres, the updates that wait at the same time go as one
//!   `UPDATE ... FROM jsonb_to_recordset($1)` that applies each row's own
//!   delta the same way (never two updates of one session in one
//!   statement; rows locked in id order, so that the statements of several
//!   processes cannot deadlock), and so do loads, as one `SELECT ... WHERE
//!   id = ANY($1)`: group commit, one statement of each in flight per
//!   store, and what queues meanwhile goes in the next. A busy application
//!   then pays one statement's overhead (in sqlx and in Postgres) for many
//!   requests; an idle store sends each request at once.
//! * **refresh** (a rolling refresh): `SET expires_at = $2, last_seen =
//!   $4` on the same condition: only the deadline (and, for a bound
//!   session, when it was last seen) is rewritten.
//! * **regenerate**: `UPDATE ... SET id = $new, <the delta> WHERE id = $old
//!   AND <live>`: the row moves to the new id with its stored data (keys
//!   that concurrent requests wrote included) plus the request's delta, in
//!   one statement, only if the old session still exists; a logout that
//!   came first leaves nothing to move.
//! * **delete**: `DELETE ... WHERE id = $1 RETURNING expires_at`.
//! * **a user's sessions** (`SessionManager::sessions_of`, through
//!   [`UserIndex`](session_core::user::UserIndex)): one `SELECT ... WHERE
//!   user_id = $1 AND (expires_at IS NULL OR expires_at > $now)`, served
//!   by the index on `(user_id, expires_at)`. The binding lives in the
//!   session's own row, so there is no second structure to keep in step:
//!   revoking (`revoke`, `revoke_all_except`) is the **delete** above, and
//!   like a logout it is final, since every write requires the row.
//!
//! # Errors and limits
//!
//! Database failures and timeouts are [`Error::Store`]. A malformed row
//! (written by hand, say, and on SQLite also one whose column holds a value
//! of another type) loads as no session, and is not listed among its user's
//! sessions; SQLite's cleanup also removes a row whose deadline is not a
//! number. Postgres refuses the character U+0000 in a session *key*, user
//! or label (values may hold it): saving one fails that save alone with
//! [`Error::Store`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a database feature there is no store to use the shared code.
#![cfg_attr(
    not(any(feature = "postgres", feature = "sqlite")),
    allow(dead_code, unused_imports, unused_macros)
)]

#[cfg(feature = "postgres")]
mod batch;
mod cleanup;
mod codec;
mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod table;

use std::future::Future;
use std::time::Duration;

use session_core::{Error, Written};

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
pub use table::InvalidTableName;

/// Re-exported so that applications build pools with the same sqlx.
pub use sqlx;

/// The table a store uses unless told otherwise.
const DEFAULT_TABLE: &str = "sessions";

/// How long an operation may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How many fresh ids a create or a regenerate tries before giving up
/// (with 192-bit ids, a second one is already a sign of a broken RNG).
const MAX_ID_ATTEMPTS: usize = 3;

/// `operation`, failing with [`Error::Store`] after `timeout`.
async fn timed<T>(
    timeout: Duration,
    operation: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(timeout, operation).await {
        Ok(result) => result.map_err(Error::store),
        Err(_) => Err(Error::store(format!(
            "the database did not answer within {timeout:?}"
        ))),
    }
}

/// The sessions of a user's listing, from their rows (`None`: a row whose
/// columns could not be read as the store writes them); a malformed row
/// (one written by hand, say) is left out and logged, as a load ignores
/// it.
fn bound_sessions(
    rows: impl IntoIterator<Item = Option<codec::IdAndRow>>,
    table: &table::Table,
) -> Vec<session_core::user::BoundSession> {
    rows.into_iter()
        .filter_map(|row| {
            let session = row.and_then(|row| {
                let (id, row) = codec::split_id(row);
                let record = codec::decode(row)?;
                Some(session_core::user::BoundSession::new(
                    id,
                    std::sync::Arc::new(record),
                ))
            });
            if session.is_none() {
                tracing::debug!(table = %table.display(), "malformed session row; not listed");
            }
            session
        })
        .collect()
}

/// What a write that changed `rows` rows of the session `value` answers.
fn written(rows: u64, value: &str) -> Written {
    if rows == 0 {
        Written::Gone
    } else {
        Written::Cookie(value.to_owned())
    }
}

/// Whether a deleted row (its deadline, if one was deleted) held a session
/// that was still alive.
fn was_live(deleted: Option<Option<i64>>) -> bool {
    let now = codec::millis(std::time::SystemTime::now());
    deleted.is_some_and(|deadline| deadline.is_none_or(|deadline| deadline > now))
}

/// Whether `error` is a database's refusal of a duplicate key.
fn is_unique_violation(error: &Error) -> bool {
    match error {
        Error::Store(source) => matches!(
            source.downcast_ref::<sqlx::Error>(),
            Some(sqlx::Error::Database(database)) if database.is_unique_violation()
        ),
        _ => false,
    }
}

fn id_taken() {
    tracing::warn!("a freshly drawn session id was already stored; drawing another");
}

fn no_free_id() -> Error {
    Error::store(format!(
        "{MAX_ID_ATTEMPTS} freshly drawn session ids were all taken: is the random number generator broken?"
    ))
}
