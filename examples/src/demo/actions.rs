//! What each route does, written once against `session_core::Session`; the
//! framework modules only translate requests and [`Reply`]s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use session_core::{Error, Level, Session, SessionHandle};

use super::page;

/// The longest `?delay_ms=` honoured, so that a request cannot hold a
/// connection open for long.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// The longest user name accepted at login, in characters.
const MAX_USER_LEN: usize = 64;

/// A response, independent of the framework that sends it.
#[derive(Debug)]
pub(crate) enum Reply {
    /// JSON with a status code.
    Json(u16, Value),
    /// An HTML page, 200.
    Html(String),
    /// Plain text, 200.
    Text(&'static str),
    /// 303 See Other to `/`: the answer to an HTML form.
    BackHome,
}

fn bad_request(message: impl Into<String>) -> Reply {
    Reply::Json(400, json!({ "error": message.into() }))
}

fn value_error(error: &Error) -> Reply {
    tracing::error!(%error, "a session value could not be converted");
    Reply::Json(
        500,
        json!({ "error": "a session value could not be converted" }),
    )
}

/// The JSON answered when the session cannot be loaded or saved.
pub(crate) fn session_error(error: &Error) -> Reply {
    let message = match error {
        Error::Store(_) => "the session store failed".to_owned(),
        // Names the size and the limit, which tells the developer what to
        // trim; it says nothing about the session's content.
        Error::CookieTooLarge { .. } => error.to_string(),
        _ => "the session could not be loaded or saved".to_owned(),
    };
    Reply::Json(500, json!({ "error": message }))
}

/// Whether the request body comes from an HTML form, which is answered with
/// a redirect to the page rather than JSON.
pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    })
}

/// `GET /`: the page, as aiohttp_session's "Last visited" example, with
/// the flash messages left for it and, for a logged-in user on a store that
/// keeps a user index, the user's sessions.
pub(crate) async fn index(session: &Session, now: SystemTime) -> Reply {
    let last_visit = session
        .get_value("last_visit")
        .and_then(|value| value.as_u64())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    let user = session
        .get_value("user")
        .and_then(|value| value.as_str().map(str::to_owned));
    let counter = counter_value(session);
    let flashes = match session.take_flashes::<String>() {
        Ok(flashes) => flashes,
        Err(error) => return value_error(&error),
    };
    let sessions = match session.user_sessions().await {
        Ok(sessions) => Some(sessions),
        Err(Error::Unsupported(_)) => None,
        Err(error) => return session_error(&error),
    };
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    session.insert_value("last_visit", json!(now_secs));
    Reply::Html(page::render(&page::Page {
        last_visit,
        user: user.as_deref(),
        counter,
        flashes: &flashes,
        sessions: sessions.as_deref(),
    }))
}

/// `GET /api/session`.
pub(crate) fn show(session: &Session) -> Reply {
    Reply::Json(
        200,
        json!({ "new": session.is_new(), "data": session.data() }),
    )
}

#[derive(Deserialize)]
struct PutQuery {
    delay_ms: Option<u64>,
}

/// `PUT /api/session/{key}`: stores the JSON body under `key`, after
/// sleeping `?delay_ms=N` once the session is loaded (for race tests).
pub(crate) async fn put(session: &Session, key: &str, query: Option<&str>, body: &[u8]) -> Reply {
    let delay = match serde_urlencoded::from_str::<PutQuery>(query.unwrap_or("")) {
        Ok(query) => Duration::from_millis(query.delay_ms.unwrap_or(0)).min(MAX_DELAY),
        Err(error) => return bad_request(format!("invalid query: {error}")),
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => return bad_request(format!("the body is not JSON: {error}")),
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    session.insert_value(key, value);
    show(session)
}

/// `DELETE /api/session/{key}`.
pub(crate) fn delete(session: &Session, key: &str) -> Reply {
    session.remove(key);
    show(session)
}

fn counter_value(session: &Session) -> u64 {
    session
        .get_value("counter")
        .and_then(|value| value.as_u64())
        .unwrap_or(0)
}

/// `POST /api/counter`.
pub(crate) fn count(session: &Session, from_form: bool) -> Reply {
    let counter = counter_value(session).saturating_add(1);
    session.insert_value("counter", json!(counter));
    if from_form {
        Reply::BackHome
    } else {
        Reply::Json(200, json!({ "counter": counter }))
    }
}

#[derive(Deserialize)]
struct Login {
    user: String,
}

/// `POST /api/login`, with `{"user": "name"}` or the page's form: a new id,
/// the session bound to the user and labelled with the browser's
/// `User-Agent`, and a flash message for the next page.
pub(crate) fn login(
    session: &Session,
    content_type: Option<&str>,
    user_agent: Option<&str>,
    body: &[u8],
) -> Reply {
    let from_form = is_form(content_type);
    let login = if from_form {
        serde_urlencoded::from_bytes::<Login>(body).map_err(|e| e.to_string())
    } else {
        serde_json::from_slice::<Login>(body).map_err(|e| e.to_string())
    };
    let user = match login {
        Ok(Login { user }) => user.trim().to_owned(),
        Err(error) => return bad_request(format!("expected a user: {error}")),
    };
    if user.is_empty() || user.chars().count() > MAX_USER_LEN {
        return bad_request(format!("the user must be 1 to {MAX_USER_LEN} characters"));
    }
    // A new id at the change of privilege: a session id planted before the
    // login is worthless after it.
    session.regenerate();
    session.bind_user(user.clone());
    session.set_label(device_label(user_agent));
    if let Err(error) = session.insert("user", &user) {
        return value_error(&error);
    }
    if from_form {
        back_home_saying(session, Level::Success, &format!("Logged in as {user}."))
    } else {
        Reply::Json(200, json!({ "user": user }))
    }
}

/// The answer to a form: a redirect to the page, which shows `message`
/// once (post/redirect/get). API calls get JSON and leave no message.
fn back_home_saying(session: &Session, level: Level, message: &str) -> Reply {
    match session.flash(level, message) {
        Ok(()) => Reply::BackHome,
        Err(error) => value_error(&error),
    }
}

/// The label of a session: the browser's `User-Agent`, shortened.
fn device_label(user_agent: Option<&str>) -> String {
    const MAX_LABEL_LEN: usize = 120;
    match user_agent.map(str::trim).filter(|agent| !agent.is_empty()) {
        Some(agent) => agent.chars().take(MAX_LABEL_LEN).collect(),
        None => "unknown device".to_owned(),
    }
}

/// `POST /api/logout`: the session ends. From the page's form, the flash
/// message saying so starts a new session holding only it.
pub(crate) fn logout(session: &Session, from_form: bool) -> Reply {
    session.invalidate();
    if from_form {
        back_home_saying(session, Level::Info, "Logged out.")
    } else {
        Reply::Json(200, json!({ "user": null }))
    }
}

/// `GET /api/user/sessions`: the logged-in user's sessions.
pub(crate) async fn user_sessions(session: &Session) -> Reply {
    if session.user().is_none() {
        return not_logged_in();
    }
    match session.user_sessions().await {
        Ok(sessions) => {
            let sessions: Vec<Value> = sessions
                .iter()
                .map(|listed| {
                    json!({
                        "handle": listed.handle().as_str(),
                        "current": listed.is_current(),
                        "created": unix_secs(listed.created()),
                        "last_seen": unix_secs(listed.last_seen()),
                        "label": listed.label().unwrap_or_default(),
                    })
                })
                .collect();
            Reply::Json(200, json!({ "sessions": sessions }))
        }
        Err(error) => user_session_error(&error),
    }
}

/// `DELETE /api/user/sessions/{handle}`: revokes one of the user's
/// sessions; 404 when the handle is none of them.
pub(crate) async fn revoke(session: &Session, handle: &str) -> Reply {
    if session.user().is_none() {
        return not_logged_in();
    }
    let Ok(handle) = handle.parse::<SessionHandle>() else {
        return Reply::Json(404, json!({ "error": "no such session" }));
    };
    match session.revoke_user_session(&handle).await {
        Ok(true) => Reply::Json(200, json!({ "revoked": 1 })),
        Ok(false) => Reply::Json(404, json!({ "error": "no such session" })),
        Err(error) => user_session_error(&error),
    }
}

/// `POST /api/user/sessions/revoke-others`: "log out everywhere else".
pub(crate) async fn revoke_others(session: &Session, from_form: bool) -> Reply {
    if session.user().is_none() {
        return not_logged_in();
    }
    match session.revoke_other_user_sessions().await {
        Ok(revoked) if from_form => back_home_saying(
            session,
            Level::Info,
            &format!("Logged out of {revoked} other session(s)."),
        ),
        Ok(revoked) => Reply::Json(200, json!({ "revoked": revoked })),
        Err(error) => user_session_error(&error),
    }
}

/// `GET /api/flash`: the pending flash messages, consumed.
pub(crate) fn flash(session: &Session) -> Reply {
    match session.take_flashes::<String>() {
        Ok(flashes) => {
            let messages: Vec<Value> = flashes
                .iter()
                .map(|flash| json!({ "level": flash.level.as_str(), "text": flash.message }))
                .collect();
            Reply::Json(200, json!({ "messages": messages }))
        }
        Err(error) => value_error(&error),
    }
}

fn not_logged_in() -> Reply {
    Reply::Json(401, json!({ "error": "not logged in" }))
}

fn user_session_error(error: &Error) -> Reply {
    match error {
        Error::Unsupported(_) => Reply::Json(
            501,
            json!({ "error": "this store keeps no index of a user's sessions: use --store memory or redis" }),
        ),
        other => session_error(other),
    }
}

fn unix_secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `GET /health`: never touches the session.
pub(crate) fn health() -> Reply {
    Reply::Text("ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_recognised_by_content_type() {
        assert!(is_form(Some("application/x-www-form-urlencoded")));
        assert!(is_form(Some(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        )));
        assert!(!is_form(Some("application/json")));
        assert!(!is_form(None));
    }

    #[test]
    fn login_rejects_empty_and_overlong_names() {
        let session = Session::new_detached();
        for body in [
            r#"{"user":"  "}"#.to_owned(),
            format!(r#"{{"user":"{}"}}"#, "a".repeat(65)),
        ] {
            assert!(matches!(
                login(&session, None, None, body.as_bytes()),
                Reply::Json(400, _)
            ));
        }
        assert!(!session.contains_key("user"));
        assert!(matches!(
            login(&session, None, Some("Firefox"), br#"{"user":"ada"}"#),
            Reply::Json(200, _)
        ));
        assert_eq!(session.user().as_deref(), Some("ada"));
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some("ada")
        );
    }

    #[test]
    fn login_accepts_the_page_form() {
        let session = Session::new_detached();
        let reply = login(
            &session,
            Some("application/x-www-form-urlencoded"),
            None,
            b"user=ada+l%C3%B6v",
        );
        assert!(matches!(reply, Reply::BackHome));
        assert_eq!(
            session.get::<String>("user").unwrap().as_deref(),
            Some("ada löv")
        );
    }

    #[test]
    fn the_counter_ignores_a_value_that_is_not_a_count() {
        let session = Session::new_detached();
        session.insert("counter", "many").unwrap();
        assert!(matches!(count(&session, false), Reply::Json(200, v) if v["counter"] == 1));
    }
}
