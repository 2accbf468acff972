//! The schema, and the migrations that create it and will change it.
//!
//! Each migration has a version; the versions applied to a table are
//! recorded in `{table}_migrations`, so that [`run`] applies only the new
//! ones. The first creates the table:
//!
//! | column | Postgres | SQLite | what |
//! |---|---|---|---|
//! | `id` | `TEXT PRIMARY KEY` | `TEXT PRIMARY KEY` | the cookie value: a [`SessionId`](session_core::SessionId) |
//! | `data` | `JSONB` | `TEXT` (JSON) | each key's value as JSON text: see `codec` |
//! | `created` | `BIGINT` | `INTEGER` | the session's creation, Unix ms |
//! | `expires_at` | `BIGINT`, indexed | `INTEGER`, indexed | the deadline, Unix ms; `NULL` for none |
//! | `expiry` | `TEXT` | `TEXT` | the session's own expiry policy (JSON), if any |
//!
//! The second adds the user binding, for listing and revoking a user's
//! sessions (`SessionManager::sessions_of`), with an index on `(user_id,
//! expires_at)` over the bound rows only:
//!
//! | column | Postgres | SQLite | what |
//! |---|---|---|---|
//! | `user_id` | `TEXT` | `TEXT` | the user the session is bound to; `NULL` for none |
//! | `label` | `TEXT` | `TEXT` | the label the application gave the session |
//! | `last_seen` | `BIGINT` | `INTEGER` | when a request last wrote or refreshed a bound session, Unix ms |
//!
//! Rows written before it have no binding, as sessions saved before
//! `bind_user` existed; they load and save as before.

use std::time::{Duration, SystemTime};

use crate::codec::millis;
use crate::table::Table;

/// The time a migration may take, at least (creating an index on a large
/// table can take a while).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Postgres,
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
}

/// One migration: its version, what it does, and its statements.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) statements: Vec<String>,
}

/// The migrations for `table`, in order.
pub(crate) fn migrations(table: &Table, dialect: Dialect) -> Vec<Migration> {
    let t = table.sessions();
    let index = table.derived("expires_at");
    let (create, index) = match dialect {
        Dialect::Postgres => (
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 id TEXT PRIMARY KEY, \
                 data JSONB NOT NULL, \
                 created BIGINT NOT NULL, \
                 expires_at BIGINT, \
                 expiry TEXT)"
            ),
            format!("CREATE INDEX IF NOT EXISTS \"{index}\" ON {t} (expires_at)"),
        ),
        Dialect::Sqlite => (
            format!(
                "CREATE TABLE IF NOT EXISTS {t} (\
                 id TEXT PRIMARY KEY NOT NULL, \
                 data TEXT NOT NULL, \
                 created INTEGER NOT NULL, \
                 expires_at INTEGER, \
                 expiry TEXT) WITHOUT ROWID"
            ),
            // SQLite names the index's schema, not the table's.
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON \"{}\" (expires_at)",
                table.qualified(&index),
                table.name
            ),
        ),
    };
    let by_user = table.derived("user_id");
    let bind = match dialect {
        Dialect::Postgres => vec![
            format!(
                "ALTER TABLE {t} ADD COLUMN IF NOT EXISTS user_id TEXT, \
                 ADD COLUMN IF NOT EXISTS label TEXT, \
                 ADD COLUMN IF NOT EXISTS last_seen BIGINT"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS \"{by_user}\" ON {t} (user_id, expires_at) \
                 WHERE user_id IS NOT NULL"
            ),
        ],
        Dialect::Sqlite => vec![
            // One column per statement: SQLite's ALTER TABLE adds one.
            format!("ALTER TABLE {t} ADD COLUMN user_id TEXT"),
            format!("ALTER TABLE {t} ADD COLUMN label TEXT"),
            format!("ALTER TABLE {t} ADD COLUMN last_seen INTEGER"),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON \"{}\" (user_id, expires_at) \
                 WHERE user_id IS NOT NULL",
                table.qualified(&by_user),
                table.name
            ),
        ],
    };
    vec![
        Migration {
            version: 1,
            description: "sessions table, with an index on the deadline",
            statements: vec![create, index],
        },
        Migration {
            version: 2,
            description: "user binding (user_id, label, last_seen), with an index on the user",
            statements: bind,
        },
    ]
}

/// The statements that come before any migration: the schema (Postgres),
/// and the table of applied versions.
fn bookkeeping(table: &Table, dialect: Dialect) -> Vec<String> {
    let mut statements = Vec::new();
    if let (Some(schema), Dialect::Postgres) = (&table.schema, dialect) {
        statements.push(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""));
    }
    statements.push(format!(
        "CREATE TABLE IF NOT EXISTS {} (\
         version BIGINT PRIMARY KEY NOT NULL, \
         description TEXT NOT NULL, \
         applied_at BIGINT NOT NULL)",
        versions(table)
    ));
    statements
}

fn versions(table: &Table) -> String {
    table.qualified(&table.derived("migrations"))
}

/// Applies the migrations `conn` (in a transaction) has not seen yet.
macro_rules! run_on {
    ($name:ident, $conn:ty) => {
        pub(crate) async fn $name(
            conn: &mut $conn,
            table: &Table,
            dialect: Dialect,
        ) -> Result<(), sqlx::Error> {
            for statement in bookkeeping(table, dialect) {
                sqlx::query(&statement).execute(&mut *conn).await?;
            }
            let applied: Vec<(i64,)> =
                sqlx::query_as(&format!("SELECT version FROM {}", versions(table)))
                    .fetch_all(&mut *conn)
                    .await?;
            let record = match dialect {
                Dialect::Postgres => format!(
                    "INSERT INTO {} (version, description, applied_at) VALUES ($1, $2, $3)",
                    versions(table)
                ),
                Dialect::Sqlite => format!(
                    "INSERT INTO {} (version, description, applied_at) VALUES (?1, ?2, ?3)",
                    versions(table)
                ),
            };
            for migration in migrations(table, dialect) {
                if applied.iter().any(|(version,)| *version == migration.version) {
                    continue;
                }
                for statement in &migration.statements {
                    sqlx::query(statement).execute(&mut *conn).await?;
                }
                sqlx::query(&record)
                    .bind(migration.version)
                    .bind(migration.description)
                    .bind(millis(SystemTime::now()))
                    .execute(&mut *conn)
                    .await?;
                tracing::info!(
                    table = %table.display(),
                    version = migration.version,
                    "session-sqlx: applied migration: {}",
                    migration.description
                );
            }
            Ok(())
        }
    };
}

#[cfg(feature = "postgres")]
run_on!(run_postgres, sqlx::PgConnection);
#[cfg(feature = "sqlite")]
run_on!(run_sqlite, sqlx::SqliteConnection);
