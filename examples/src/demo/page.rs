//! The demo's one HTML page. No script and no external asset: plain forms
//! that post to the API and come back with a redirect.

use std::fmt::Write as _;
use std::time::SystemTime;

use session_core::{Flash, UserSession};

/// What the page shows.
pub(crate) struct Page<'a> {
    pub(crate) last_visit: Option<SystemTime>,
    pub(crate) user: Option<&'a str>,
    pub(crate) counter: u64,
    /// Messages left by the previous request, shown once.
    pub(crate) flashes: &'a [Flash<String>],
    /// The logged-in user's sessions; `None` on a store without a user
    /// index.
    pub(crate) sessions: Option<&'a [UserSession]>,
}

pub(crate) fn render(page: &Page<'_>) -> String {
    let last_visit = page
        .last_visit
        .map_or_else(|| "never".to_owned(), httpdate::fmt_http_date);
    let login_state = match page.user {
        Some(user) => format!(
            r#"<p id="login-state">Logged in as <strong id="user">{}</strong></p>"#,
            escape(user)
        ),
        None => r#"<p id="login-state">Not logged in</p>"#.to_owned(),
    };
    let mut flashes = String::new();
    for flash in page.flashes {
        let _ = write!(
            flashes,
            r#"<p class="flash {level}">{text}</p>"#,
            level = flash.level.as_str(),
            text = escape(&flash.message),
        );
    }
    let sessions = match (page.user, page.sessions) {
        (None, _) => String::new(),
        (Some(_), None) => {
            r#"<p id="sessions-unsupported">This store cannot list your sessions.</p>"#.to_owned()
        }
        (Some(_), Some(sessions)) => render_sessions(sessions),
    };
    let mut html = String::with_capacity(2048);
    // Writing to a String cannot fail.
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Session demo</title>
<style>
body {{ font-family: sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }}
form {{ margin: 1rem 0; }}
</style>
</head>
<body>
<h1>Session demo</h1>
<div id="flashes">{flashes}</div>
<p id="last-visited">Last visited: {last_visit}</p>
{login_state}
{sessions}
<form id="login-form" method="post" action="/api/login">
<label for="login-user">User</label>
<input id="login-user" name="user" required maxlength="64" autocomplete="username">
<button id="login-submit" type="submit">Log in</button>
</form>
<form id="logout-form" method="post" action="/api/logout">
<button id="logout" type="submit">Log out</button>
</form>
<form id="counter-form" method="post" action="/api/counter">
<p>Counter: <span id="counter">{counter}</span> <button id="count" type="submit">Count</button></p>
</form>
</body>
</html>
"#,
        counter = page.counter,
    );
    html
}

/// The user's sessions, each by its label and times, with a button that
/// logs out every other one.
fn render_sessions(sessions: &[UserSession]) -> String {
    let mut html = String::from(r#"<h2>Your sessions</h2><ul id="sessions">"#);
    for session in sessions {
        let _ = write!(
            html,
            r#"<li class="session{current}" data-handle="{handle}">{label} (since {created}, last seen {last_seen}){mark}</li>"#,
            current = if session.is_current() { " current" } else { "" },
            handle = escape(session.handle().as_str()),
            label = escape(session.label().unwrap_or("unknown device")),
            created = httpdate::fmt_http_date(session.created()),
            last_seen = httpdate::fmt_http_date(session.last_seen()),
            mark = if session.is_current() {
                " (this one)"
            } else {
                ""
            },
        );
    }
    html.push_str(
        r#"</ul>
<form id="revoke-others-form" method="post" action="/api/user/sessions/revoke-others">
<button id="revoke-others" type="submit">Log out everywhere else</button>
</form>"#,
    );
    html
}

/// Escapes text for an HTML element's content or a quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_name_is_escaped() {
        let html = render(&Page {
            last_visit: None,
            user: Some(r#"<script>alert("x")</script>&'"#),
            counter: 0,
            flashes: &[Flash::new(
                session_core::Level::Info,
                "<b>bold</b>".to_owned(),
            )],
            sessions: None,
        });
        assert!(html.contains(r#"<p class="flash info">&lt;b&gt;bold&lt;/b&gt;</p>"#));
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</strong>")
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn the_page_shows_the_last_visit_and_the_counter() {
        let html = render(&Page {
            last_visit: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777)),
            user: None,
            counter: 7,
            flashes: &[],
            sessions: None,
        });
        assert!(html.contains("Last visited: Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(html.contains(r#"<span id="counter">7</span>"#));
        assert!(html.contains("Not logged in"));
    }
}
