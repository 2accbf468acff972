//! The demo app in a real browser: headless Chromium driven through
//! WebDriver (chromedriver), on each framework, with the encrypted cookie
//! store. `cargo xtask test` installs Debian's `chromium` and
//! `chromium-driver` when they are missing.
//!
//! The browser goes through what a user does: open the page, log in through
//! the form, reload and still be logged in with "Last visited" showing the
//! earlier visit, press the counter twice, log out. It also checks that
//! page scripts cannot read the session cookie (`HttpOnly`).
//!
//! Then two browsers with profiles of their own (a laptop and a phone) log
//! in as one user on a store that keeps a user index: each lists both
//! sessions, the laptop logs out everywhere else, and the phone is logged
//! out; flash messages say what happened, once.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use session_core::{MemoryStore, SessionConfig, SessionManager};
use session_encrypted_cookie::{EncryptedCookieStore, Key, KeyRing};
use session_examples::server::{self, Framework};

/// A chromedriver process on a free loopback port, killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
    _profile: TempDir,
}

impl ChromeDriver {
    fn start() -> Self {
        let binary = find_on_path("chromedriver").expect(
            "chromedriver is not installed: run `cargo xtask test`, or apt-get install chromium chromium-driver",
        );
        // Now and then chromedriver exits before it says its port (once in
        // a `cargo xtask ci` run here, among four tests starting one each):
        // started again, it comes up.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::spawn(&binary) {
                Ok((child, port)) => {
                    return ChromeDriver {
                        child,
                        port,
                        _profile: TempDir::new("chromium-profile"),
                    };
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("chromedriver did not start: {failures:?}");
    }

    /// Starts chromedriver on a port it picks: the process and the port,
    /// or why not.
    fn spawn(binary: &std::path::Path) -> Result<(Child, u16), String> {
        // Port 0: chromedriver binds a free port itself and says which, so
        // that no other process can take the port between a pick and its
        // bind (then the WebDriver requests went to that process).
        let mut child = Command::new(binary)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot run chromedriver: {error}"))?;
        let stdout = child.stdout.take().expect("chromedriver's stdout");
        let (port_sender, port) = mpsc::channel();
        // Reads on until chromedriver exits, so that its output never fills
        // the pipe.
        std::thread::spawn(move || {
            let mut port_sender = Some(port_sender);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let started = line
                    .strip_prefix("ChromeDriver was started successfully on port ")
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok());
                if let Some(port) = started {
                    if let Some(sender) = port_sender.take() {
                        let _ = sender.send(port);
                    }
                }
            }
        });
        match port.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => Ok((child, port)),
            Err(error) => {
                let _ = child.kill();
                let status = child.wait().map(|status| status.to_string());
                Err(format!(
                    "no port within 20 s ({error}); chromedriver: {status:?}"
                ))
            }
        }
    }

    async fn browser(&self) -> Client {
        let chromium = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find_map(find_on_path)
            .expect(
                "chromium is not installed: run `cargo xtask test`, or apt-get install chromium",
            );
        // Flags for a closed network: without the background-networking ones
        // Chromium keeps trying to reach Google's hosts.
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self._profile.0.display()),
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("open a Chromium session through chromedriver")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            session_core::SessionId::generate().as_str()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

async fn text(browser: &Client, id: &str) -> String {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no element #{id}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("no text in #{id}: {e}"))
}

/// Waits (a bounded time) for `#id` to read `expected`: after a click on a
/// form button the browser navigates, and until the new page is there the
/// old one, or a stale reference to it, answers.
async fn wait_for_text(browser: &Client, id: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Id(id)).await {
            if let Ok(text) = element.text().await {
                if text == expected {
                    return;
                }
                last = text;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("#{id} reads {last:?}, expected {expected:?}");
}

async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no element #{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("could not click #{id}: {e}"));
}

/// One user's visit of the demo served by `framework`.
async fn log_in_count_and_log_out(framework: Framework) {
    let store = EncryptedCookieStore::new(KeyRing::builder(Key::generate()).build().expect("ring"));
    // Secure cookies are kept over plain http only for localhost, which
    // browsers treat as a secure context; that is the address used below.
    let manager = SessionManager::new(store, SessionConfig::default());
    let demo = server::serve_demo(framework, manager, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the demo");
    let home = format!("http://localhost:{}/", demo.addr().port());

    let driver = ChromeDriver::start();
    let browser = driver.browser().await;

    browser.goto(&home).await.expect("open the page");
    assert_eq!(text(&browser, "last-visited").await, "Last visited: never");
    assert_eq!(text(&browser, "login-state").await, "Not logged in");

    let name = browser
        .find(Locator::Id("login-user"))
        .await
        .expect("login field");
    name.send_keys("Ada <Lovelace>")
        .await
        .expect("type the user name");
    click(&browser, "login-submit").await;
    wait_for_text(&browser, "login-state", "Logged in as Ada <Lovelace>").await;

    browser.refresh().await.expect("reload");
    assert_eq!(
        text(&browser, "login-state").await,
        "Logged in as Ada <Lovelace>"
    );
    let last_visited = text(&browser, "last-visited").await;
    assert!(
        last_visited.starts_with("Last visited: ") && !last_visited.ends_with("never"),
        "the reload shows the earlier visit: {last_visited:?}"
    );

    click(&browser, "count").await;
    wait_for_text(&browser, "counter", "1").await;
    click(&browser, "count").await;
    wait_for_text(&browser, "counter", "2").await;

    // The browser holds the session cookie, but page scripts cannot see it.
    let cookies = browser
        .get_all_cookies()
        .await
        .expect("read the browser's cookies");
    let session_cookie = cookies
        .iter()
        .find(|cookie| cookie.name() == "session")
        .expect("the browser keeps the session cookie");
    assert_eq!(session_cookie.http_only(), Some(true));
    assert_eq!(session_cookie.secure(), Some(true));
    let visible = browser
        .execute("return document.cookie", vec![])
        .await
        .expect("run a script");
    assert!(
        !visible.as_str().unwrap_or_default().contains("session="),
        "document.cookie exposes the session cookie: {visible}"
    );

    click(&browser, "logout").await;
    wait_for_text(&browser, "login-state", "Not logged in").await;
    assert_eq!(text(&browser, "counter").await, "0");
    browser.refresh().await.expect("reload");
    assert_eq!(text(&browser, "login-state").await, "Not logged in");

    browser.close().await.expect("close the browser");
    demo.stop().await;
}

/// How many sessions the page lists, once it lists `expected`.
async fn wait_for_sessions(browser: &Client, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = usize::MAX;
    while Instant::now() < deadline {
        if let Ok(listed) = browser.find_all(Locator::Css("#sessions li")).await {
            last = listed.len();
            if last == expected {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page lists {last} sessions, expected {expected}");
}

async fn log_in(browser: &Client, home: &str, user: &str) {
    browser.goto(home).await.expect("open the page");
    let name = browser
        .find(Locator::Id("login-user"))
        .await
        .expect("login field");
    name.send_keys(user).await.expect("type the user name");
    click(browser, "login-submit").await;
    wait_for_text(browser, "login-state", &format!("Logged in as {user}")).await;
}

/// A laptop and a phone, each a browser with a profile of its own, log in
/// as one user; the laptop logs out everywhere else.
async fn two_devices_of_one_user(framework: Framework) {
    let manager = SessionManager::new(MemoryStore::new(), SessionConfig::default());
    let demo = server::serve_demo(framework, manager, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("serve the demo");
    let home = format!("http://localhost:{}/", demo.addr().port());
    let (laptop_driver, phone_driver) = (ChromeDriver::start(), ChromeDriver::start());
    let laptop = laptop_driver.browser().await;
    let phone = phone_driver.browser().await;

    log_in(&laptop, &home, "ada").await;
    assert_eq!(text(&laptop, "flashes").await, "Logged in as ada.");
    wait_for_sessions(&laptop, 1).await;
    log_in(&phone, &home, "ada").await;
    wait_for_sessions(&phone, 2).await;

    laptop.refresh().await.expect("reload");
    wait_for_sessions(&laptop, 2).await;
    assert_eq!(text(&laptop, "flashes").await, "", "a flash is shown once");
    let current = laptop
        .find_all(Locator::Css("#sessions li.current"))
        .await
        .expect("the current session");
    assert_eq!(current.len(), 1, "one session is marked as this one");

    click(&laptop, "revoke-others").await;
    wait_for_text(&laptop, "flashes", "Logged out of 1 other session(s).").await;
    wait_for_sessions(&laptop, 1).await;

    phone.refresh().await.expect("reload");
    wait_for_text(&phone, "login-state", "Not logged in").await;
    laptop.refresh().await.expect("reload");
    assert_eq!(text(&laptop, "login-state").await, "Logged in as ada");

    click(&laptop, "logout").await;
    wait_for_text(&laptop, "login-state", "Not logged in").await;
    assert_eq!(text(&laptop, "flashes").await, "Logged out.");

    laptop.close().await.expect("close the laptop's browser");
    phone.close().await.expect("close the phone's browser");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_on_axum() {
    two_devices_of_one_user(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_one_user_on_actix() {
    two_devices_of_one_user(Framework::Actix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_counts_and_logs_out_on_axum() {
    log_in_count_and_log_out(Framework::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_logs_in_counts_and_logs_out_on_actix() {
    log_in_count_and_log_out(Framework::Actix).await;
}
