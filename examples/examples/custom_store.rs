//! A session store written outside the session crates, against the core
//! trait only: each session is a JSON file in a directory.
//!
//! It shows what a store has to do (see `session_core::SessionStore`): four
//! methods, one per intent. `create` issues random ids and never overwrites;
//! `update` applies a request's delta rather than overwriting, and answers
//! `Written::Gone` for a session that vanished (it never recreates one, so
//! an id the store did not issue is never adopted); `delete` says whether it
//! deleted something; and every method treats the cookie value as untrusted
//! (here: a value that does not parse as a `SessionId` never reaches the
//! file system, so `../../etc/passwd` is just an unknown session). The
//! trait's provided `refresh` (an update without changes) and `regenerate`
//! (create, then delete the old id and undo the create if a logout deleted
//! it first) serve as they are. Then it proves it by running the
//! conformance suite.
//!
//! `cargo run -p session-examples --example custom_store` runs the suite;
//! `cargo test -p session-examples --example custom_store` runs it as a test.
//! A real deployment would also sweep expired files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_conformance::{self as conformance, StoreKind};
use session_core::{
    Create, Error, Record, SessionCookie, SessionId, SessionStore, Update, Written, async_trait,
};
use tokio::sync::Mutex;

/// Sessions as `<id>.json` files in one directory.
struct FileStore {
    dir: PathBuf,
    /// Serializes read-modify-write cycles, so that two requests changing
    /// different keys of one session both keep their change (one process).
    write: Mutex<()>,
}

impl FileStore {
    fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FileStore {
            dir,
            write: Mutex::new(()),
        })
    }

    /// The file of the session a cookie value names, or `None` when the
    /// value cannot be one of our ids.
    fn path(&self, value: &str) -> Option<PathBuf> {
        let id: SessionId = value.parse().ok()?;
        Some(self.dir.join(format!("{}.json", id.as_str())))
    }

    async fn read(path: &Path) -> Result<Option<Record>, Error> {
        match tokio::fs::read(path).await {
            // A file we cannot parse is a session we cannot serve: a new one
            // starts, as for any unknown cookie.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(Error::store(error)),
        }
    }

    async fn write(path: &Path, record: &Record) -> Result<(), Error> {
        let json = serde_json::to_vec(record).map_err(Error::Value)?;
        // Write aside, then rename: a reader never sees half a file.
        let partial = path.with_extension("json.partial");
        tokio::fs::write(&partial, json)
            .await
            .map_err(Error::store)?;
        tokio::fs::rename(&partial, path)
            .await
            .map_err(Error::store)
    }
}

#[async_trait]
impl SessionStore for FileStore {
    async fn load(&self, cookie: SessionCookie<'_>) -> Result<Option<Arc<Record>>, Error> {
        match self.path(cookie.value) {
            Some(path) => Ok(Self::read(&path).await?.map(Arc::new)),
            None => Ok(None),
        }
    }

    async fn create(&self, create: Create<'_>) -> Result<String, Error> {
        let _guard = self.write.lock().await;
        // A fresh id, never one that exists already.
        loop {
            let id = SessionId::generate();
            let path = self.dir.join(format!("{}.json", id.as_str()));
            if !tokio::fs::try_exists(&path).await.map_err(Error::store)? {
                Self::write(&path, create.record).await?;
                return Ok(id.into_string());
            }
        }
    }

    async fn update(&self, update: Update<'_>) -> Result<Written, Error> {
        let _guard = self.write.lock().await;
        let Some(path) = self.path(update.cookie.value) else {
            return Ok(Written::Gone);
        };
        let Some(mut stored) = Self::read(&path).await? else {
            return Ok(Written::Gone);
        };
        if stored.is_expired_at(update.now) {
            let _ = tokio::fs::remove_file(&path).await;
            return Ok(Written::Gone);
        }
        update.apply_to(&mut stored);
        Self::write(&path, &stored).await?;
        Ok(Written::Cookie(update.cookie.value.to_owned()))
    }

    async fn delete(&self, cookie: SessionCookie<'_>) -> Result<bool, Error> {
        let _guard = self.write.lock().await;
        let Some(path) = self.path(cookie.value) else {
            return Ok(false);
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(Error::store(error)),
        }
    }
}

/// Runs the conformance suite against a `FileStore` in a fresh directory.
async fn check_conformance() -> conformance::Report {
    let dir = std::env::temp_dir().join(format!("session-file-store-{}", std::process::id()));
    let store = FileStore::new(&dir).expect("the temporary directory is writable");
    let report = conformance::run(store, StoreKind::ServerSide).await;
    let _ = std::fs::remove_dir_all(&dir);
    report
}

#[tokio::main]
async fn main() {
    let report = check_conformance().await;
    println!(
        "FileStore passed {} conformance checks:",
        report.passed().len()
    );
    for check in report.passed() {
        println!("  {check}");
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_file_store_conforms() {
        let report = super::check_conformance().await;
        // Only the checks of the optional capability it does not offer: a
        // user index.
        let skipped: Vec<&str> = report.skipped().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            skipped,
            ["user_sessions", "revocation_beats_a_racing_login"]
        );
        assert!(!report.passed().is_empty());
    }

    #[tokio::test]
    async fn cookie_values_never_reach_the_file_system() {
        let dir = std::env::temp_dir().join(format!("session-file-paths-{}", std::process::id()));
        let store = super::FileStore::new(&dir).unwrap();
        for value in ["../../../etc/passwd", "", "a/b", &"x".repeat(33)] {
            assert!(store.path(value).is_none(), "{value}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
