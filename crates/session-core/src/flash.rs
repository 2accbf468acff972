//! Flash messages: set during one request, read once on a later one (the
//! post/redirect/get pattern).
//!
//! They live in the session under one key, [`FLASH_KEY`], so they work with
//! every store and both frameworks; a request that neither sets nor takes
//! one pays nothing for them.
//!
//! ```
//! use session_core::{Flash, Level, Session};
//!
//! // POST /login: the handler leaves a message and redirects.
//! let session = Session::new_detached();
//! session.flash(Level::Success, &"Welcome back, Ada")?;
//!
//! // GET /: the next page shows it, once.
//! let messages: Vec<Flash<String>> = session.take_flashes()?;
//! assert_eq!(messages, [Flash::new(Level::Success, "Welcome back, Ada".to_owned())]);
//! assert!(session.take_flashes::<String>()?.is_empty());
//! # Ok::<(), session_core::Error>(())
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Session};

/// The session key that holds the pending flash messages, as a JSON array.
pub const FLASH_KEY: &str = "_flash";

/// How important a flash message is, for the page to style it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    /// For developers.
    Debug,
    /// Neutral information.
    Info,
    /// Something the user did worked.
    Success,
    /// Worth the user's attention.
    Warning,
    /// Something failed.
    Error,
}

impl Level {
    /// The level's name as serialized: `"info"`, `"success"`, ...
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A flash message: a level and a message of any serde type (text, or a
/// struct of the application's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flash<T = String> {
    /// How important it is.
    pub level: Level,
    /// What it says.
    pub message: T,
}

impl<T> Flash<T> {
    /// A message at `level`.
    pub fn new(level: Level, message: T) -> Self {
        Flash { level, message }
    }
}

impl Session {
    /// Adds a flash message for a later request to [take](Self::take_flashes).
    ///
    /// # Errors
    ///
    /// [`Error::Value`] when `message` does not serialize, or when the
    /// session holds something other than a list under [`FLASH_KEY`].
    pub fn flash<T: Serialize + ?Sized>(&self, level: Level, message: &T) -> Result<(), Error> {
        let flash = serde_json::json!({
            "level": level,
            "message": serde_json::to_value(message).map_err(Error::Value)?,
        });
        let mut pending = match self.get_value(FLASH_KEY) {
            None => Vec::new(),
            Some(Value::Array(pending)) => pending,
            Some(other) => {
                return Err(Error::Value(serde::de::Error::custom(format!(
                    "the session's {FLASH_KEY:?} holds {other}, not a list of flash messages"
                ))));
            }
        };
        pending.push(flash);
        self.insert_value(FLASH_KEY, Value::Array(pending));
        Ok(())
    }

    /// Takes the pending flash messages, oldest first, and removes them from
    /// the session: each is read once. Empty, and no change to the session,
    /// when there are none.
    ///
    /// # Errors
    ///
    /// [`Error::Value`] when a pending message is not a `Flash<T>`; the
    /// messages stay in the session.
    pub fn take_flashes<T: DeserializeOwned>(&self) -> Result<Vec<Flash<T>>, Error> {
        let Some(pending) = self.get_value(FLASH_KEY) else {
            return Ok(Vec::new());
        };
        let flashes = serde_json::from_value(pending).map_err(Error::Value)?;
        self.remove(FLASH_KEY);
        Ok(flashes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Notice {
        code: u32,
        text: String,
    }

    #[test]
    fn messages_of_any_type_come_back_once_in_order() {
        let session = Session::new_detached();
        session
            .flash(
                Level::Info,
                &Notice {
                    code: 1,
                    text: "a".into(),
                },
            )
            .unwrap();
        session
            .flash(
                Level::Error,
                &Notice {
                    code: 2,
                    text: "b".into(),
                },
            )
            .unwrap();
        let taken: Vec<Flash<Notice>> = session.take_flashes().unwrap();
        assert_eq!(taken.len(), 2);
        assert_eq!((taken[0].level, taken[0].message.code), (Level::Info, 1));
        assert_eq!((taken[1].level, taken[1].message.code), (Level::Error, 2));
        assert!(!session.contains_key(FLASH_KEY));
        assert!(session.take_flashes::<Notice>().unwrap().is_empty());
    }

    #[test]
    fn a_request_without_flashes_changes_nothing() {
        let session = Session::new_detached();
        assert!(session.take_flashes::<String>().unwrap().is_empty());
        assert!(!session.is_changed());
    }

    #[test]
    fn messages_of_another_type_stay_and_are_an_error() {
        let session = Session::new_detached();
        session.flash(Level::Warning, &"text").unwrap();
        assert!(session.take_flashes::<Notice>().is_err());
        assert_eq!(session.take_flashes::<String>().unwrap().len(), 1);
        session.insert(FLASH_KEY, &7).unwrap();
        assert!(session.flash(Level::Info, &"x").is_err());
    }

    #[test]
    fn levels_serialize_in_lowercase() {
        for level in [
            Level::Debug,
            Level::Info,
            Level::Success,
            Level::Warning,
            Level::Error,
        ] {
            assert_eq!(
                serde_json::to_value(level).unwrap(),
                Value::String(level.as_str().into())
            );
        }
    }
}
