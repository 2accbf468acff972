//! The table a store keeps its sessions in: a name the application picks,
//! checked once at construction, so that it can be put into SQL text.

use std::fmt;

/// The longest table name accepted: the store derives the names of its
/// index and of its migrations table by appending to it, and those must
/// stay within Postgres's 63-byte identifiers.
const MAX_NAME_LEN: usize = 48;

/// A table name that [`PostgresStore::with_table_name`] or
/// [`SqliteStore::with_table_name`] refused.
///
/// A name is one or two identifiers (`sessions`, or `auth.sessions` with a
/// schema, or an attached database on SQLite), each starting with an ASCII
/// letter or `_` and going on with ASCII letters, digits and `_`, at most
/// 48 bytes each. Names are quoted in SQL, so case is kept.
///
/// [`PostgresStore::with_table_name`]: crate::PostgresStore::with_table_name
/// [`SqliteStore::with_table_name`]: crate::SqliteStore::with_table_name
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = session_sqlx::SqliteStore::connect("sqlite::memory:").await.unwrap();
/// let error = store.with_table_name("sessions; DROP TABLE users").unwrap_err();
/// assert!(error.to_string().contains("not a valid table name"));
/// # });
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidTableName {
    name: String,
}

impl fmt::Display for InvalidTableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a valid table name: use `table` or `schema.table`, each an ASCII letter \
             or `_` followed by ASCII letters, digits or `_`, at most {MAX_NAME_LEN} bytes",
            self.name
        )
    }
}

impl std::error::Error for InvalidTableName {}

/// A checked table name and the SQL names derived from it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// `schema`, unquoted, if any.
    pub(crate) schema: Option<String>,
    /// The table's own name, unquoted.
    pub(crate) name: String,
}

impl Table {
    pub(crate) fn parse(name: &str) -> Result<Table, InvalidTableName> {
        let invalid = || InvalidTableName {
            name: name.to_owned(),
        };
        let mut parts = name.split('.');
        let (schema, table) = match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, None) => (None, table),
            (Some(schema), Some(table), None) => (Some(schema), table),
            _ => return Err(invalid()),
        };
        if !schema.is_none_or(is_identifier) || !is_identifier(table) {
            return Err(invalid());
        }
        Ok(Table {
            schema: schema.map(str::to_owned),
            name: table.to_owned(),
        })
    }

    /// `"schema"."name"` or `"name"`.
    pub(crate) fn qualified(&self, name: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{name}\""),
            None => format!("\"{name}\""),
        }
    }

    /// The sessions table, quoted.
    pub(crate) fn sessions(&self) -> String {
        self.qualified(&self.name)
    }

    /// The unquoted name of a derived object: `{name}_{suffix}`.
    pub(crate) fn derived(&self, suffix: &str) -> String {
        format!("{}_{suffix}", self.name)
    }

    /// The name as the application gave it.
    pub(crate) fn display(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

fn is_identifier(part: &str) -> bool {
    let mut bytes = part.bytes();
    part.len() <= MAX_NAME_LEN
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_identifiers() {
        for good in ["sessions", "_s", "App_Sessions2", "auth.sessions"] {
            assert!(Table::parse(good).is_ok(), "{good}");
        }
        let long = "s".repeat(MAX_NAME_LEN + 1);
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1sessions",
            "sessions;",
            "s\"x",
            "s x",
            "sessions--",
            "séssions",
            "a-b",
            &long,
        ] {
            assert!(Table::parse(bad).is_err(), "{bad}");
        }
        let table = Table::parse("auth.sessions").unwrap();
        assert_eq!(table.sessions(), r#""auth"."sessions""#);
        assert_eq!(table.derived("expires_at"), "sessions_expires_at");
        assert_eq!(Table::parse("s").unwrap().sessions(), r#""s""#);
    }
}
