//! A session store written outside the session crates, against the core
//! trait only: each session is a JSON file in a directory.
//!
//! It shows what a store has to do (see `session_core::SessionStore`): issue
//! random ids and never adopt one it did not issue, apply a request's delta
//! rather than overwrite, report a session that vanished as `Saved::Gone`,
//! keep the record's timestamps exactly, and treat any cookie value as
//! untrusted (here: a value that is not one of our ids never reaches the file
//! system, so `../../etc/passwd` is just an unknown session). Then it proves
//! it by running the conformance suite.
//!
//! `cargo run -p session-examples --example custom_store` runs the suite;
//! `cargo test -p session-examples --example custom_store` runs it as a test.
//! A real deployment would also sweep expired files.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use session_core::conformance::{self, StoreKind};
use session_core::{
    Delete, Error, Load, Record, Save, Saved, SessionId, SessionStore, Touch, async_trait,
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

    /// The file of `id`, or `None` when `id` cannot be one of ours.
    fn path(&self, id: &str) -> Option<PathBuf> {
        let ours = id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ours.then(|| self.dir.join(format!("{id}.json")))
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
    async fn load(&self, load: Load<'_>) -> Result<Option<Arc<Record>>, Error> {
        match self.path(load.value) {
            Some(path) => Ok(Self::read(&path).await?.map(Arc::new)),
            None => Ok(None),
        }
    }

    async fn save(&self, save: Save<'_>) -> Result<Saved, Error> {
        let _guard = self.write.lock().await;
        let Some(previous) = save.previous else {
            // A fresh id, never one that exists already.
            loop {
                let id = SessionId::generate().into_string();
                let Some(path) = self.path(&id) else {
                    return Err(Error::store("generated an id of an unexpected shape"));
                };
                if !tokio::fs::try_exists(&path).await.map_err(Error::store)? {
                    Self::write(&path, save.record).await?;
                    return Ok(Saved::Cookie(id));
                }
            }
        };
        let Some(path) = self.path(previous) else {
            return Ok(Saved::Gone);
        };
        let Some(mut stored) = Self::read(&path).await? else {
            return Ok(Saved::Gone);
        };
        if stored.is_expired_at(save.now) {
            let _ = tokio::fs::remove_file(&path).await;
            return Ok(Saved::Gone);
        }
        save.apply_to(&mut stored);
        Self::write(&path, &stored).await?;
        Ok(Saved::Cookie(previous.to_owned()))
    }

    async fn touch(&self, touch: Touch<'_>) -> Result<Option<String>, Error> {
        let _guard = self.write.lock().await;
        if let Some(path) = self.path(touch.value) {
            if let Some(mut stored) = Self::read(&path).await? {
                stored.expires_at = touch.record.expires_at;
                Self::write(&path, &stored).await?;
            }
        }
        Ok(None)
    }

    async fn delete(&self, delete: Delete<'_>) -> Result<(), Error> {
        let _guard = self.write.lock().await;
        let Some(path) = self.path(delete.value) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Err(error) if error.kind() != ErrorKind::NotFound => Err(Error::store(error)),
            _ => Ok(()),
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
        assert!(report.skipped().is_empty(), "{:?}", report.skipped());
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
