//! Property tests of the request lifecycle against hostile `Cookie` headers
//! (issue 7), with the in-memory store, a server-side store: whatever bytes
//! a client sends, loading never fails or panics, never yields a session
//! that was not issued, and a new session never adopts a client's id.

use proptest::prelude::*;
use serde_json::{Map, Value};
use session_conformance::{SetCookie, arbitrary};
use session_core::{MemoryStore, SessionConfig, SessionManager};

/// A manager on a fresh memory store, with `issued` sessions saved in it:
/// each has the data `{"n": i}`. Returns the manager and the issued
/// sessions' `name=value` cookie pairs.
fn with_issued_sessions(
    runtime: &tokio::runtime::Runtime,
    issued: u64,
) -> (SessionManager, Vec<String>) {
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    let cookies = runtime.block_on(async {
        let mut cookies = Vec::new();
        for n in 0..issued {
            let request = manager.request();
            request.session([]).await.unwrap().insert("n", &n).unwrap();
            let set_cookie = request.save_changes().await.unwrap();
            cookies.push(SetCookie::parse(&set_cookie[0]).pair());
        }
        cookies
    });
    (manager, cookies)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #[test]
    fn hostile_headers_give_a_new_session_or_an_issued_one(
        headers in proptest::collection::vec(arbitrary::cookie_header("session"), 0..3),
        spliced in proptest::option::of((0usize..3, any::<prop::sample::Index>())),
    ) {
        let runtime = runtime();
        let (manager, issued) = with_issued_sessions(&runtime, 3);
        let mut headers = headers;
        // Sometimes an issued cookie hides somewhere in the hostile bytes.
        if let Some((which, position)) = spliced {
            let cookie = format!(";{};", issued[which]);
            match headers.first_mut() {
                Some(header) => {
                    let at = position.index(header.len() + 1);
                    header.splice(at..at, cookie.into_bytes());
                }
                None => headers.push(cookie.into_bytes()),
            }
        }
        runtime.block_on(async {
            let request = manager.request();
            let session = request.session(headers.iter().map(Vec::as_slice)).await.expect("bad cookies are not errors");
            if session.is_new() {
                prop_assert!(session.is_empty());
            } else {
                // Loaded: it must be an issued session whose cookie was sent.
                let n = session.get::<u64>("n").unwrap().expect("an issued session");
                let id = issued[usize::try_from(n).unwrap()].trim_start_matches("session=");
                prop_assert!(headers.iter().any(|h| h.windows(id.len()).any(|w| w == id.as_bytes())));
            }
            // A write to a new session gets a fresh id, never one the client
            // sent; a write to a loaded one keeps the id the client holds.
            session.insert("written", &true).unwrap();
            let set_cookie = request.save_changes().await.expect("saving after bad cookies works");
            prop_assert_eq!(set_cookie.len(), usize::from(session.is_new()));
            if session.is_new() {
                let set_cookie = SetCookie::parse(&set_cookie[0]);
                let id = set_cookie.value();
                prop_assert!(!headers.iter().any(|h| h.windows(id.len()).any(|w| w == id.as_bytes())));
                prop_assert!(!issued.iter().any(|c| c.ends_with(id)));
            }
            Ok(())
        })?;
    }

    #[test]
    fn an_issued_cookie_first_loads_whatever_garbage_follows(
        which in 0usize..3,
        garbage in proptest::collection::vec(arbitrary::cookie_header("session"), 0..3),
    ) {
        let runtime = runtime();
        let (manager, issued) = with_issued_sessions(&runtime, 3);
        let mut first = format!("{};", issued[which]).into_bytes();
        let mut garbage = garbage;
        if let Some(header) = garbage.first_mut() {
            first.append(header);
            *header = first;
        } else {
            garbage.push(first);
        }
        runtime.block_on(async {
            let request = manager.request();
            let session = request.session(garbage.iter().map(Vec::as_slice)).await.unwrap();
            prop_assert!(!session.is_new());
            prop_assert_eq!(session.get::<usize>("n").unwrap(), Some(which));
            Ok(())
        })?;
    }

    #[test]
    fn arbitrary_session_data_round_trips_through_the_lifecycle(
        data in arbitrary::session_data(),
    ) {
        let runtime = runtime();
        let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
        runtime.block_on(async {
            let request = manager.request();
            let session = request.session([]).await.unwrap();
            for (key, value) in &data {
                session.insert_value(key, value.clone());
            }
            let set_cookie = request.save_changes().await.unwrap();
            let expected_cookies = usize::from(!data.is_empty());
            prop_assert_eq!(set_cookie.len(), expected_cookies);
            if let Some(set_cookie) = set_cookie.first() {
                let cookie = SetCookie::parse(set_cookie).pair();
                let request = manager.request();
                let loaded = request.session([cookie.as_bytes()]).await.unwrap();
                prop_assert!(!loaded.is_new());
                let loaded: Map<String, Value> = loaded.data();
                prop_assert_eq!(loaded, data);
            }
            Ok(())
        })?;
    }
}
