//! The request lifecycle, end to end, with the in-memory store.

use std::time::Duration;

use serde_json::json;
use session_core::{
    Clock, CookieLifetime, Error, Expiry, ManualClock, MemoryStore, Rolling, SameSite,
    SessionConfig, SessionManager,
};

struct App {
    manager: SessionManager,
    clock: ManualClock,
    store: MemoryStore,
}

impl App {
    fn new(config: SessionConfig) -> Self {
        let clock = ManualClock::starting_now();
        let store = MemoryStore::new();
        let config = config.with_clock(Clock::from(clock.clone()));
        App {
            manager: SessionManager::new(store.clone(), config),
            clock,
            store,
        }
    }

    /// The session a new request with `cookie` (a `name=value` pair) sees.
    async fn load(&self, cookie: &str) -> session_core::Session {
        self.manager
            .request()
            .session([cookie.as_bytes()])
            .await
            .unwrap()
    }
}

/// `name=value` of a Set-Cookie header value.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// A request with `cookie` that writes `key: value`: the `Set-Cookie`
/// values it answers with.
async fn write_set_cookies(
    app: &App,
    cookie: Option<&str>,
    key: &str,
    value: serde_json::Value,
) -> Vec<String> {
    let request = app.manager.request();
    request
        .session(cookie.map(str::as_bytes))
        .await
        .unwrap()
        .insert(key, &value)
        .unwrap();
    request.save_changes().await.unwrap()
}

/// A request with `cookie` that writes `key: value`: the cookie the client
/// holds afterwards.
async fn write(app: &App, cookie: Option<&str>, key: &str, value: serde_json::Value) -> String {
    let set = write_set_cookies(app, cookie, key, value).await;
    match (set.as_slice(), cookie) {
        ([set], _) => pair(set),
        // The memory store keeps the id: the client's cookie stays valid.
        ([], Some(cookie)) => cookie.to_owned(),
        _ => panic!("unexpected Set-Cookie values after a write: {set:?}"),
    }
}

#[tokio::test]
async fn an_untouched_session_sets_no_cookie_and_costs_no_io() {
    let app = App::new(SessionConfig::default());
    let request = app.manager.request();
    assert!(request.save_changes().await.unwrap().is_empty());
    assert!(!request.is_loaded());

    let request = app.manager.request();
    let session = request.session([]).await.unwrap();
    assert!(session.is_new() && session.is_empty() && !session.is_changed());
    assert!(request.save_changes().await.unwrap().is_empty());
    assert!(app.store.is_empty());
}

#[tokio::test]
async fn a_changed_session_sets_a_cookie_with_every_configured_attribute() {
    let app = App::new(
        SessionConfig::default()
            .with_cookie_name("sid")
            .with_cookie_path("/app")
            .with_cookie_domain(Some("example.com".into()))
            .with_same_site(SameSite::Strict)
            .with_expiry(Expiry::NEVER.with_idle_timeout(Some(Duration::from_secs(600))))
            .with_cookie_lifetime(CookieLifetime::Persistent),
    );
    let request = app.manager.request();
    request.session([]).await.unwrap().insert("k", &1).unwrap();
    let set = request.save_changes().await.unwrap();
    assert_eq!(set.len(), 1);
    let (value, attributes) = set[0].split_once(';').unwrap();
    assert!(value.starts_with("sid=") && value.len() > 20);
    assert_eq!(
        attributes,
        " HttpOnly; SameSite=Strict; Secure; Path=/app; Domain=example.com; Max-Age=600"
    );
}

#[tokio::test]
async fn created_survives_a_load() {
    let app = App::new(SessionConfig::default());
    let request = app.manager.request();
    let created = request.session([]).await.unwrap().created();
    request.session([]).await.unwrap().insert("k", &1).unwrap();
    let cookie = pair(&request.save_changes().await.unwrap()[0]);
    app.clock.advance(Duration::from_secs(30));
    let session = app.load(&cookie).await;
    assert_eq!(session.created(), created);
}

#[tokio::test]
async fn idle_expiry_gives_a_new_session_even_when_the_cookie_is_resent() {
    let app = App::new(
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(60)))
            .with_rolling(Rolling::Disabled),
    );
    let cookie = write(&app, None, "user", json!("ada")).await;
    app.clock.advance(Duration::from_secs(61));
    let session = app.load(&cookie).await;
    assert!(session.is_new() && session.is_empty());
}

#[tokio::test]
async fn absolute_expiry_gives_a_new_session_despite_activity() {
    let app = App::new(
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(60)))
            .with_absolute_timeout(Some(Duration::from_secs(100))),
    );
    let cookie = write(&app, None, "n", json!(0)).await;
    for n in 1..=3 {
        app.clock.advance(Duration::from_secs(30));
        assert_eq!(write(&app, Some(&cookie), "n", json!(n)).await, cookie);
    }
    app.clock.advance(Duration::from_secs(11)); // 101 s after creation
    let session = app.load(&cookie).await;
    assert!(session.is_new() && session.is_empty());
}

#[tokio::test]
async fn invalidate_sends_a_removal_cookie_with_the_same_attributes() {
    let app = App::new(
        SessionConfig::default()
            .with_cookie_path("/app")
            .with_cookie_domain(Some("example.com".into()))
            .with_same_site(SameSite::None),
    );
    let cookie = write(&app, None, "user", json!("ada")).await;
    let request = app.manager.request();
    let session = request.session([cookie.as_bytes()]).await.unwrap();
    session.invalidate();
    assert!(session.is_empty() && session.is_changed());
    let set = request.save_changes().await.unwrap();
    assert_eq!(
        set,
        [
            "session=; HttpOnly; SameSite=None; Secure; Path=/app; Domain=example.com; \
          Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ]
    );
    assert!(app.store.is_empty());
    assert!(app.load(&cookie).await.is_new());
}

#[tokio::test]
async fn regenerate_keeps_the_data_under_a_new_id() {
    let app = App::new(SessionConfig::default());
    let cookie = write(&app, None, "cart", json!([1, 2])).await;
    let request = app.manager.request();
    request
        .session([cookie.as_bytes()])
        .await
        .unwrap()
        .regenerate();
    let new_cookie = pair(&request.save_changes().await.unwrap()[0]);
    assert_ne!(new_cookie, cookie);
    let session = app.load(&new_cookie).await;
    assert_eq!(session.get::<Vec<u8>>("cart").unwrap(), Some(vec![1, 2]));
    assert!(app.load(&cookie).await.is_new());
    assert_eq!(app.store.len(), 1);
}

#[tokio::test]
async fn an_oversized_cookie_is_an_error_naming_its_size() {
    // The memory store's cookie is an id; a long cookie name makes even that too big.
    let name = "n".repeat(4060);
    let app = App::new(SessionConfig::default().with_cookie_name(name));
    let request = app.manager.request();
    request.session([]).await.unwrap().insert("k", &1).unwrap();
    match request.save_changes().await {
        Err(Error::CookieTooLarge { size, limit, .. }) => {
            assert_eq!(limit, 4096);
            assert_eq!(
                size,
                4060 + 1 + 32 + "; HttpOnly; SameSite=Lax; Secure; Path=/".len()
            );
        }
        other => panic!("expected CookieTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn a_malformed_cookie_gives_a_new_session() {
    let app = App::new(SessionConfig::default());
    for header in [
        "session=%%%",
        "session=",
        "session",
        "session=\u{1F980}",
        ";;=;",
    ] {
        let session = app.load(header).await;
        assert!(session.is_new() && session.is_empty(), "{header}");
    }
    let raw: &[u8] = b"session=\xff\xfe";
    assert!(app.manager.request().session([raw]).await.unwrap().is_new());
}

#[tokio::test]
async fn same_name_cookies_are_tried_in_order() {
    let app = App::new(SessionConfig::default());
    let first = write(&app, None, "who", json!("first")).await;
    let second = write(&app, None, "who", json!("second")).await;
    let header = format!("session=bogus; {second}; {first}");
    let session = app.load(&header).await;
    assert_eq!(
        session.get::<String>("who").unwrap().as_deref(),
        Some("second")
    );

    // The same cookies split over several Cookie headers.
    let headers = ["session=bogus".to_owned(), first.clone(), second];
    let request = app.manager.request();
    let session = request
        .session(headers.iter().map(|h| h.as_bytes()))
        .await
        .unwrap();
    assert_eq!(
        session.get::<String>("who").unwrap().as_deref(),
        Some("first")
    );

    // Past the bound, a valid cookie is not even tried.
    let header = format!("session=a; session=b; session=c; session=d; {first}");
    assert!(app.load(&header).await.is_new());
}

#[tokio::test]
async fn a_read_only_request_writes_nothing_until_the_throttle_step() {
    let app = App::new(
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(3600)))
            .with_cookie_lifetime(CookieLifetime::Persistent),
    );
    let cookie = write(&app, None, "k", json!(1)).await;
    app.clock.advance(Duration::from_secs(59));
    let request = app.manager.request();
    request.session([cookie.as_bytes()]).await.unwrap();
    assert!(request.save_changes().await.unwrap().is_empty());

    app.clock.advance(Duration::from_secs(1));
    let request = app.manager.request();
    request.session([cookie.as_bytes()]).await.unwrap();
    let set = request.save_changes().await.unwrap();
    // A persistent cookie is re-sent so the browser's Max-Age moves too.
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with(&format!("{cookie};")) && set[0].contains("Max-Age=3600"));
}

#[tokio::test]
async fn a_write_resends_the_cookie_only_when_that_changes_something() {
    // A server-side store keeps the id: the browser-session cookie the
    // client holds is the one a Set-Cookie would send.
    let app = App::new(SessionConfig::default());
    let cookie = write(&app, None, "k", json!(1)).await;
    assert!(
        write_set_cookies(&app, Some(&cookie), "k", json!(2))
            .await
            .is_empty()
    );
    assert_eq!(app.load(&cookie).await.get::<u32>("k").unwrap(), Some(2));

    // A persistent cookie's Max-Age moves with the write's new deadline,
    // which a write moves as a read does: by the rolling step at least.
    let app = App::new(
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(3600)))
            .with_cookie_lifetime(CookieLifetime::Persistent),
    );
    let cookie = write(&app, None, "k", json!(1)).await;
    app.clock.advance(Duration::from_secs(10));
    assert!(
        write_set_cookies(&app, Some(&cookie), "k", json!(2))
            .await
            .is_empty()
    );
    assert_eq!(app.load(&cookie).await.get::<u32>("k").unwrap(), Some(2));
    app.clock.advance(Duration::from_secs(60));
    let set = write_set_cookies(&app, Some(&cookie), "k", json!(3)).await;
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with(&format!("{cookie};")) && set[0].contains("Max-Age=3600"));
}

#[tokio::test]
async fn a_write_moves_the_deadline_by_the_rolling_step_as_a_read_does() {
    let app = App::new(
        SessionConfig::default()
            .with_idle_timeout(Some(Duration::from_secs(3600)))
            .with_rolling(Rolling::Throttled(Duration::from_secs(60))),
    );
    let cookie = write(&app, None, "k", json!(1)).await;
    let deadline = app.load(&cookie).await.expires_at();

    // Within the step, the data is saved and the deadline left.
    app.clock.advance(Duration::from_secs(59));
    write(&app, Some(&cookie), "k", json!(2)).await;
    let session = app.load(&cookie).await;
    assert_eq!(session.get::<u32>("k").unwrap(), Some(2));
    assert_eq!(session.expires_at(), deadline);

    // Asked for, the deadline moves at once.
    let request = app.manager.request();
    request
        .session([cookie.as_bytes()])
        .await
        .unwrap()
        .mark_changed();
    request.save_changes().await.unwrap();
    let moved = app.load(&cookie).await.expires_at();
    assert_eq!(moved, Some(app.clock.now() + Duration::from_secs(3600)));

    // A step later, a write moves it too.
    app.clock.advance(Duration::from_secs(60));
    write(&app, Some(&cookie), "k", json!(3)).await;
    assert_eq!(
        app.load(&cookie).await.expires_at(),
        Some(app.clock.now() + Duration::from_secs(3600))
    );
}

#[tokio::test]
async fn a_write_is_seen_by_other_requests_only_once_it_is_saved() {
    // Requests share the record the store holds until they write: a write
    // must go to the writer's own copy, never to the shared one.
    let app = App::new(SessionConfig::default());
    let cookie = write(&app, None, "k", json!(1)).await;

    let writer = app.manager.request();
    let writing = writer.session([cookie.as_bytes()]).await.unwrap();
    let reader = app.manager.request();
    let reading = reader.session([cookie.as_bytes()]).await.unwrap();
    writing.insert("k", &2).unwrap();
    writing.remove("k");
    writing.insert("k", &3).unwrap();
    assert_eq!(reading.get::<u32>("k").unwrap(), Some(1));
    assert_eq!(app.load(&cookie).await.get::<u32>("k").unwrap(), Some(1));

    writer.save_changes().await.unwrap();
    assert_eq!(app.load(&cookie).await.get::<u32>("k").unwrap(), Some(3));
    // A write after the save is the handle's own: never saved, never shared.
    writing.insert("k", &4).unwrap();
    assert_eq!(app.load(&cookie).await.get::<u32>("k").unwrap(), Some(3));
    assert_eq!(reading.get::<u32>("k").unwrap(), Some(1));
    assert!(reader.save_changes().await.unwrap().is_empty());
}

#[tokio::test]
async fn finish_runs_once() {
    let app = App::new(SessionConfig::default());
    let request = app.manager.request();
    request.session([]).await.unwrap().insert("k", &1).unwrap();
    assert_eq!(request.clone().save_changes().await.unwrap().len(), 1);
    assert!(request.save_changes().await.unwrap().is_empty());
    assert_eq!(app.store.len(), 1);
}

/// A cookie store whose values carry a generation tag: it still reads
/// generation 1, writes only generation 2, and asks for generation-1 cookies
/// to be re-issued, the way a store with a rotated key does.
struct Generations;

impl Generations {
    fn encode(record: &session_core::Record) -> String {
        use base64::Engine as _;
        let json = serde_json::to_vec(record).unwrap();
        format!(
            "g2.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        )
    }
}

#[session_core::async_trait]
impl session_core::SessionStore for Generations {
    async fn load(
        &self,
        cookie: session_core::SessionCookie<'_>,
    ) -> Result<Option<std::sync::Arc<session_core::Record>>, Error> {
        use base64::Engine as _;
        let Some(body) = cookie
            .value
            .strip_prefix("g1.")
            .or_else(|| cookie.value.strip_prefix("g2."))
        else {
            return Ok(None);
        };
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body);
        Ok(json
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .map(std::sync::Arc::new))
    }

    async fn create(&self, create: session_core::Create<'_>) -> Result<String, Error> {
        Ok(Self::encode(create.record))
    }

    async fn update(
        &self,
        update: session_core::Update<'_>,
    ) -> Result<session_core::Written, Error> {
        Ok(session_core::Written::Cookie(Self::encode(update.record)))
    }

    async fn regenerate(
        &self,
        regenerate: session_core::Regenerate<'_>,
    ) -> Result<session_core::Written, Error> {
        Ok(session_core::Written::Cookie(Self::encode(
            regenerate.record,
        )))
    }

    async fn delete(&self, _: session_core::SessionCookie<'_>) -> Result<bool, Error> {
        Ok(false)
    }

    fn needs_reissue(&self, cookie: session_core::SessionCookie<'_>) -> bool {
        cookie.value.starts_with("g1.")
    }
}

#[tokio::test]
async fn a_cookie_the_store_flags_is_reissued_with_its_deadline_unchanged() {
    let clock = ManualClock::starting_now();
    let config = SessionConfig::default()
        .with_rolling(Rolling::Disabled)
        .with_clock(Clock::from(clock.clone()));
    let manager = SessionManager::new(Generations, config);

    let request = manager.request();
    request
        .session([])
        .await
        .unwrap()
        .insert("user", &"ada")
        .unwrap();
    let written = pair(&request.save_changes().await.unwrap()[0]);
    let old_generation = written.replacen("session=g2.", "session=g1.", 1);
    assert_ne!(written, old_generation);
    clock.advance(Duration::from_secs(30));

    // A read-only request, which would send nothing for a current cookie.
    let request = manager.request();
    let session = request.session([old_generation.as_bytes()]).await.unwrap();
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("ada")
    );
    let deadline = session.expires_at();
    let reissued = request.save_changes().await.unwrap();
    assert_eq!(reissued.len(), 1, "the flagged cookie is replaced");
    let reissued = pair(&reissued[0]);
    assert!(reissued.starts_with("session=g2."), "{reissued}");

    let request = manager.request();
    let session = request.session([reissued.as_bytes()]).await.unwrap();
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(
        session.expires_at(),
        deadline,
        "re-issuing is not activity: the idle deadline stays"
    );
    assert!(
        request.save_changes().await.unwrap().is_empty(),
        "a current cookie is not re-issued"
    );

    // A request that writes saves under the new generation as usual.
    let request = manager.request();
    request
        .session([old_generation.as_bytes()])
        .await
        .unwrap()
        .insert("n", &1)
        .unwrap();
    let saved = request.save_changes().await.unwrap();
    assert!(pair(&saved[0]).starts_with("session=g2."));
}

#[tokio::test]
async fn finish_decides_when_called_and_is_ready_at_once_when_nothing_changed() {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let app = App::new(SessionConfig::default());
    let cookie = write(&app, None, "user", json!("ada")).await;

    // Only read: the future completes on its first poll, with no cookie.
    let request = app.manager.request();
    let _ = request
        .session([cookie.as_bytes()])
        .await
        .unwrap()
        .get_value("user");
    let mut finish = pin!(request.save_changes());
    let polled = finish
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(polled, Poll::Ready(Ok(ref set)) if set.is_empty()));

    // A write after `finish` was called is not saved, as after the handler.
    let request = app.manager.request();
    let session = request.session([cookie.as_bytes()]).await.unwrap();
    let finish = request.save_changes();
    session.insert("late", &true).unwrap();
    assert!(finish.await.unwrap().is_empty());
    let request = app.manager.request();
    assert!(
        !request
            .session([cookie.as_bytes()])
            .await
            .unwrap()
            .contains_key("late")
    );
}

#[tokio::test]
async fn the_session_future_borrows_nothing_and_later_calls_leave_their_headers_unread() {
    let app = App::new(SessionConfig::default());
    let cookie = write(&app, None, "user", json!("ada")).await;

    // The headers are parsed before `session` returns.
    let request = app.manager.request();
    let header = cookie.clone().into_bytes();
    let loading = request.session([header.as_slice()]);
    drop(header);
    let session = loading.await.unwrap();
    assert_eq!(
        session.get::<String>("user").unwrap().as_deref(),
        Some("ada")
    );

    // Loaded once: a later call with other headers gets the same session.
    let again = request.session([&b"session=bogus"[..]]).await.unwrap();
    assert!(!again.is_new());
    again.insert("k", &1).unwrap();
    assert!(session.contains_key("k"));

    // And a request first loaded without a cookie stays new.
    let request = app.manager.request();
    assert!(request.session([]).await.unwrap().is_new());
    assert!(request.session([cookie.as_bytes()]).await.unwrap().is_new());
}

/// A store that breaks the contract: the cookie values it makes hold a `;`.
struct BadValueStore(MemoryStore);

#[session_core::async_trait]
impl session_core::SessionStore for BadValueStore {
    async fn load(
        &self,
        cookie: session_core::SessionCookie<'_>,
    ) -> Result<Option<std::sync::Arc<session_core::Record>>, Error> {
        self.0.load(cookie).await
    }

    async fn create(&self, create: session_core::Create<'_>) -> Result<String, Error> {
        Ok(format!("{};x", self.0.create(create).await?))
    }

    async fn update(
        &self,
        update: session_core::Update<'_>,
    ) -> Result<session_core::Written, Error> {
        self.0.update(update).await
    }

    async fn delete(&self, cookie: session_core::SessionCookie<'_>) -> Result<bool, Error> {
        self.0.delete(cookie).await
    }
}

#[tokio::test]
async fn a_store_that_makes_an_invalid_cookie_value_is_a_typed_contract_violation() {
    let manager = SessionManager::new(BadValueStore(MemoryStore::new()), SessionConfig::default());
    let request = manager.request();
    request
        .session([])
        .await
        .unwrap()
        .insert("user", "ada")
        .unwrap();
    match request.save_changes().await {
        Err(Error::ContractViolation(violation)) => assert_eq!(
            violation,
            session_core::ContractViolation::InvalidCookieValue {
                cookie: SessionConfig::default().cookie().name().to_owned()
            }
        ),
        other => panic!("expected a contract violation, got {other:?}"),
    }
}
