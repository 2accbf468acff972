//! The demo app: the same routes on axum ([`axum`]) and actix-web
//! ([`actix`]), written once in framework-independent code so that both
//! behave identically.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | an HTML page: "Last visited: ...", the logged-in user, a login form, a logout button, a counter button |
//! | `GET /api/session` | `{"new": bool, "data": {...}}` |
//! | `PUT /api/session/{key}` | stores the JSON body under `key`; `?delay_ms=N` (at most 10 s) sleeps between loading the session and writing it, for race tests; answers like `GET /api/session` |
//! | `DELETE /api/session/{key}` | removes `key`; answers like `GET /api/session` |
//! | `POST /api/counter` | adds one to `counter`: `{"counter": n}` |
//! | `POST /api/login` | `{"user": "name"}`: regenerates the session, then sets `user`: `{"user": "name"}` |
//! | `POST /api/logout` | invalidates the session: `{"user": null}` |
//! | `GET /health` | `ok`, without touching the session |
//!
//! The page has no script: its forms post to the API as
//! `application/x-www-form-urlencoded`, and the API answers a form with a
//! `303 See Other` back to `/` instead of JSON. Stable element ids, for
//! browser tests: `last-visited` (its text starts with "Last visited: "),
//! `login-state` (its text is "Not logged in" or "Logged in as NAME"),
//! `user` (the name, when logged in), `login-form`, `login-user` (the name
//! field), `login-submit`, `logout`, `counter` (the number) and `count` (the
//! counter button).
//!
//! Bad input answers 400 with `{"error": "..."}`; a session that cannot be
//! loaded or saved answers 500 with `{"error": "..."}`.

mod actions;
pub mod actix;
pub mod axum;
mod page;
