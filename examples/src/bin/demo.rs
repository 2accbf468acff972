//! The session demo: `cargo run -p session-examples --bin demo`, then open
//! http://127.0.0.1:8080/. See `--help` for the options, and
//! `session_examples::demo` for the routes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use session_core::{MemoryStore, SessionConfig, SessionManager, SessionStore, aiohttp};
use session_encrypted_cookie::aiohttp::{FernetCookieStore, NaclCookieStore};
use session_encrypted_cookie::{Cipher, EncryptedCookieStore, Key, KeyRing};
use session_examples::server::{self, Framework};
use session_redis::{Durability, RedisLayout, RedisStore};
use session_simple_cookie::SimpleCookieStore;
use session_sqlx::{PostgresStore, SqliteStore};

/// Serves the session demo app: a page that remembers your last visit, a
/// login, a counter, and a JSON API over the session.
#[derive(Debug, Parser)]
#[command(version)]
struct Options {
    /// The web framework to serve with.
    #[arg(long, value_enum, default_value_t = Framework::Axum)]
    framework: Framework,

    /// Where sessions are kept.
    #[arg(long, value_enum, default_value_t = StoreChoice::Encrypted)]
    store: StoreChoice,

    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// A 32-byte key in base64 for the encrypted stores; repeat it to keep
    /// old keys: the first encrypts, all decrypt. Without it, a key is
    /// generated (and sessions end when the demo stops). For
    /// aiohttp-encrypted and aiohttp-nacl, the secret_key of the Python
    /// service as base64.urlsafe_b64encode(secret_key) prints it (for
    /// EncryptedCookieStorage, its Fernet key).
    // URL-safe base64 may start with '-': still a value, not an option.
    #[arg(long = "key", value_name = "BASE64", allow_hyphen_values = true)]
    keys: Vec<String>,

    /// The encrypted store's cipher.
    #[arg(long, value_enum)]
    cipher: Option<CipherChoice>,

    /// The Redis server for `--store redis`: redis://, rediss://,
    /// redis-cluster:// or redis-sentinel:// [default: redis://127.0.0.1:6379]
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,

    /// The database for `--store postgres` (postgres://user:password@host/db)
    /// or `--store sqlite` (sqlite://PATH, the file created when missing).
    /// The demo creates or updates the sessions table at start.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,

    /// The table that `--store postgres` or `--store sqlite` keeps sessions
    /// in: `name` or `schema.name` [default: sessions].
    #[arg(long, value_name = "NAME")]
    table: Option<String>,

    /// Delete the expired sessions of `--store postgres` or `--store
    /// sqlite` every this many seconds (0: never; `--delete-expired` does
    /// it once).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    cleanup_interval: u64,

    /// Delete the expired sessions of `--store postgres` or `--store
    /// sqlite` once, print how many, and exit (as Django's clearsessions).
    #[arg(long)]
    delete_expired: bool,

    /// How the Redis store lays sessions out [default: hash].
    #[arg(long, value_enum)]
    redis_layout: Option<RedisLayoutChoice>,

    /// With --store redis: answer a write only once this many replicas
    /// acknowledged it (Redis's WAIT), so that a failover loses no write
    /// answered 200; a write they do not acknowledge in time fails (500).
    /// 0: answer once the master has it [default: 0].
    #[arg(long, value_name = "N")]
    redis_wait_replicas: Option<u32>,

    /// How long a write waits for --redis-wait-replicas, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    redis_wait_timeout_ms: u64,

    /// With --store redis: keep up to this many sessions read in memory,
    /// answered without an HGETALL while Redis says they have not changed
    /// (RedisStoreBuilder::client_cache; one server or Sentinel, hash
    /// layout). 0: off [default: 0].
    #[arg(long, value_name = "SESSIONS", default_value_t = 0)]
    redis_client_cache: usize,

    /// Exit when standard input closes: a test driver that gives the demo
    /// a pipe as its input never leaves it running, even when killed.
    #[arg(long)]
    exit_with_stdin: bool,

    /// The session cookie's name [default: session; AIOHTTP_SESSION with
    /// --redis-layout aiohttp and the aiohttp-* stores].
    #[arg(long, value_parser = cookie_name)]
    cookie_name: Option<String>,

    /// End a session after this many seconds without activity (0: never).
    /// With --redis-layout aiohttp and the aiohttp-* stores, this is
    /// aiohttp_session's max_age: the session ends this long after its last
    /// write.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<u64>,

    /// End a session this many seconds after it started, however active (0:
    /// never).
    #[arg(long, value_name = "SECS")]
    absolute_timeout: Option<u64>,

    /// Send the cookie without the Secure flag, so that browsers keep it over
    /// plain http (testing only).
    #[arg(long)]
    insecure_cookies: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreChoice {
    /// Encrypted cookies (session-encrypted-cookie).
    Encrypted,
    /// Plain JSON cookies, readable and forgeable by clients (testing only).
    Simple,
    /// This process's memory: sessions end when the demo stops.
    Memory,
    /// Redis (session-redis).
    Redis,
    /// aiohttp_session's EncryptedCookieStorage: Fernet cookies under --key.
    AiohttpEncrypted,
    /// aiohttp_session's NaClCookieStorage: SecretBox cookies under --key.
    AiohttpNacl,
    /// aiohttp_session's SimpleCookieStorage: plain JSON cookies (testing only).
    AiohttpSimple,
    /// Postgres (session-sqlx): needs --database-url.
    Postgres,
    /// SQLite (session-sqlx): needs --database-url sqlite://PATH.
    Sqlite,
}

impl StoreChoice {
    /// Whether the store keeps aiohttp_session's cookies.
    fn is_aiohttp(self) -> bool {
        matches!(
            self,
            StoreChoice::AiohttpEncrypted | StoreChoice::AiohttpNacl | StoreChoice::AiohttpSimple
        )
    }

    /// Whether `--key` configures the store.
    fn takes_keys(self) -> bool {
        matches!(
            self,
            StoreChoice::Encrypted | StoreChoice::AiohttpEncrypted | StoreChoice::AiohttpNacl
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CipherChoice {
    /// XChaCha20-Poly1305 (the default).
    Xchacha20poly1305,
    /// AES-256-GCM.
    Aes256gcm,
}

impl From<CipherChoice> for Cipher {
    fn from(choice: CipherChoice) -> Self {
        match choice {
            CipherChoice::Xchacha20poly1305 => Cipher::XChaCha20Poly1305,
            CipherChoice::Aes256gcm => Cipher::Aes256Gcm,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RedisLayoutChoice {
    /// One hash per session (the default).
    Hash,
    /// Byte-compatible with aiohttp_session's RedisStorage.
    Aiohttp,
}

fn cookie_name(name: &str) -> Result<String, String> {
    let is_token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if is_token {
        Ok(name.to_owned())
    } else {
        Err("a cookie name is letters, digits and !#$%&'*+-.^_`|~".to_owned())
    }
}

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The store the options ask for.
async fn build_store(options: &Options) -> Result<Arc<dyn SessionStore>, String> {
    let encrypted = options.store == StoreChoice::Encrypted;
    if !encrypted && options.cipher.is_some() {
        return Err("--cipher configures --store encrypted".to_owned());
    }
    if !options.store.takes_keys() && !options.keys.is_empty() {
        return Err(
            "--key configures --store encrypted, aiohttp-encrypted and aiohttp-nacl".to_owned(),
        );
    }
    if options.store.is_aiohttp() && options.absolute_timeout.is_some_and(|secs| secs > 0) {
        return Err(
            "--absolute-timeout cannot be enforced with the aiohttp-* stores: \
             aiohttp_session moves `created` on every write"
                .to_owned(),
        );
    }
    let redis = options.store == StoreChoice::Redis;
    if !redis
        && (options.redis_url.is_some()
            || options.redis_layout.is_some()
            || options.redis_wait_replicas.is_some())
    {
        return Err(
            "--redis-url, --redis-layout and --redis-wait-replicas configure --store redis"
                .to_owned(),
        );
    }
    let sql = matches!(options.store, StoreChoice::Postgres | StoreChoice::Sqlite);
    if !sql && (options.database_url.is_some() || options.table.is_some() || options.delete_expired)
    {
        return Err(
            "--database-url, --table and --delete-expired configure --store postgres or --store sqlite"
                .to_owned(),
        );
    }
    match options.store {
        StoreChoice::Encrypted => encrypted_store(&options.keys, options.cipher),
        StoreChoice::AiohttpEncrypted => Ok(Arc::new(FernetCookieStore::new(
            key_ring(&options.keys)?,
            idle_timeout(options),
        ))),
        StoreChoice::AiohttpNacl => Ok(Arc::new(NaclCookieStore::new(
            key_ring(&options.keys)?,
            idle_timeout(options),
        ))),
        StoreChoice::AiohttpSimple => {
            tracing::warn!(
                "the aiohttp simple cookie store sends sessions in the clear and lets clients rewrite them: for testing only"
            );
            Ok(Arc::new(
                session_simple_cookie::aiohttp::SimpleCookieStore::new(idle_timeout(options)),
            ))
        }
        StoreChoice::Redis => redis_store(options).await,
        StoreChoice::Postgres | StoreChoice::Sqlite => {
            let store = sql_store(options).await?;
            let interval = Duration::from_secs(options.cleanup_interval);
            if !interval.is_zero() {
                drop(store.spawn_cleanup(interval));
            }
            Ok(store.shared())
        }
        StoreChoice::Memory => Ok(Arc::new(MemoryStore::new())),
        StoreChoice::Simple => {
            tracing::warn!(
                "the simple cookie store sends sessions in the clear and lets clients rewrite them: for testing only"
            );
            Ok(Arc::new(SimpleCookieStore::new()))
        }
    }
}

/// The encrypted cookie store: the first key encrypts, the others still
/// open the cookies they sealed; without keys, a generated one.
fn encrypted_store(
    keys: &[String],
    cipher: Option<CipherChoice>,
) -> Result<Arc<dyn SessionStore>, String> {
    let ring = key_ring(keys)?;
    let cipher = cipher.map_or_else(Cipher::default, Cipher::from);
    Ok(Arc::new(
        EncryptedCookieStore::new(ring).with_cipher(cipher),
    ))
}

/// The keys of `--key`: the first seals, the others still open; without
/// any, a generated one.
fn key_ring(keys: &[String]) -> Result<KeyRing, String> {
    let mut keys = keys
        .iter()
        .map(|text| Key::from_base64(text).map_err(|e| format!("--key: {e}")));
    let primary = match keys.next() {
        Some(key) => key?,
        None => {
            tracing::warn!(
                "no --key given: using a generated key, so sessions end when the demo stops"
            );
            Key::generate()
        }
    };
    let mut ring = KeyRing::builder(primary);
    for key in keys {
        ring = ring.old_key(key?);
    }
    ring.build().map_err(|e| format!("--key: {e}"))
}

/// The Redis store, connected: a demo that cannot reach Redis says so at
/// start rather than on the first request.
async fn redis_store(options: &Options) -> Result<Arc<dyn SessionStore>, String> {
    let url = options.redis_url.as_deref().unwrap_or(DEFAULT_REDIS_URL);
    let layout = if aiohttp_layout(options) {
        if options.absolute_timeout.is_some_and(|secs| secs > 0) {
            return Err(
                "--absolute-timeout cannot be enforced with --redis-layout aiohttp: \
                 aiohttp_session moves `created` on every write"
                    .to_owned(),
            );
        }
        RedisLayout::Aiohttp {
            max_age: idle_timeout(options),
        }
    } else {
        RedisLayout::Hash
    };
    let durability = match options.redis_wait_replicas {
        None | Some(0) => Durability::Master,
        Some(count) => Durability::Replicas {
            count,
            timeout: Duration::from_millis(options.redis_wait_timeout_ms),
        },
    };
    let mut builder = RedisStore::builder().layout(layout).durability(durability);
    if options.redis_client_cache > 0 {
        builder = builder.client_cache(options.redis_client_cache);
    }
    let store = builder
        .connect(url)
        .await
        .map_err(|e| format!("--redis-url {url}: {e}"))?;
    Ok(Arc::new(store))
}

/// A store of session-sqlx.
enum SqlStore {
    Postgres(PostgresStore),
    Sqlite(SqliteStore),
}

impl SqlStore {
    async fn delete_expired(&self) -> Result<u64, session_core::Error> {
        match self {
            SqlStore::Postgres(store) => store.delete_expired().await,
            SqlStore::Sqlite(store) => store.delete_expired().await,
        }
    }

    fn spawn_cleanup(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        match self {
            SqlStore::Postgres(store) => store.spawn_cleanup(period),
            SqlStore::Sqlite(store) => store.spawn_cleanup(period),
        }
    }

    fn shared(self) -> Arc<dyn SessionStore> {
        match self {
            SqlStore::Postgres(store) => Arc::new(store),
            SqlStore::Sqlite(store) => Arc::new(store),
        }
    }
}

/// The Postgres or SQLite store, its table created or brought up to date
/// (an explicit step of the application, here at start): a demo that
/// cannot reach the database says so at start.
async fn sql_store(options: &Options) -> Result<SqlStore, String> {
    let url = options
        .database_url
        .as_deref()
        .ok_or("--store postgres and --store sqlite need --database-url")?;
    let table = options.table.as_deref().unwrap_or("sessions");
    let failed = |e: &dyn std::fmt::Display| format!("--database-url {url}: {e}");
    let store = match options.store {
        StoreChoice::Postgres => {
            let store = PostgresStore::connect(url)
                .await
                .map_err(|e| failed(&e))?
                .with_table_name(table)
                .map_err(|e| format!("--table: {e}"))?;
            store.migrate().await.map_err(|e| failed(&e))?;
            SqlStore::Postgres(store)
        }
        _ => {
            if !url.starts_with("sqlite:") {
                return Err(format!("--database-url {url}: not a sqlite:// URL"));
            }
            let store = SqliteStore::connect(url)
                .await
                .map_err(|e| failed(&e))?
                .with_table_name(table)
                .map_err(|e| format!("--table: {e}"))?;
            store.migrate().await.map_err(|e| failed(&e))?;
            SqlStore::Sqlite(store)
        }
    };
    Ok(store)
}

/// `--delete-expired`: the cleanup, once.
async fn delete_expired(options: &Options) -> ExitCode {
    let deleted = match sql_store(options).await {
        Ok(store) => store.delete_expired().await.map_err(|e| e.to_string()),
        Err(message) => Err(message),
    };
    match deleted {
        Ok(deleted) => {
            println!("deleted {deleted} expired session(s)");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("demo: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Whether sessions are shared with aiohttp_session (`--redis-layout
/// aiohttp`).
fn aiohttp_layout(options: &Options) -> bool {
    options.redis_layout == Some(RedisLayoutChoice::Aiohttp)
}

/// Whether sessions are shared with aiohttp_session: its Redis layout or
/// one of its cookie formats.
fn shares_with_aiohttp(options: &Options) -> bool {
    aiohttp_layout(options) || options.store.is_aiohttp()
}

/// The idle timeout asked for, or the default one.
fn idle_timeout(options: &Options) -> Option<Duration> {
    match options.idle_timeout {
        Some(secs) => timeout(secs),
        None => SessionConfig::default().expiry().idle_timeout(),
    }
}

fn timeout(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn build_config(options: &Options) -> SessionConfig {
    let (config, default_name) = if shares_with_aiohttp(options) {
        // aiohttp_session's settings: max_age from the last write, no
        // absolute timeout, reads never extend a session.
        let config = aiohttp::session_config(idle_timeout(options));
        (config, aiohttp::COOKIE_NAME)
    } else {
        let mut config = SessionConfig::default();
        if let Some(secs) = options.idle_timeout {
            config = config.with_idle_timeout(timeout(secs));
        }
        if let Some(secs) = options.absolute_timeout {
            config = config.with_absolute_timeout(timeout(secs));
        }
        (config, "session")
    };
    let name = options.cookie_name.as_deref().unwrap_or(default_name);
    config
        .with_cookie_name(name)
        .with_secure(!options.insecure_cookies)
}

/// Ends the process once standard input is closed (its writer exited).
fn exit_when_stdin_closes() {
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            tracing::info!("standard input closed: exiting");
            std::process::exit(0);
        });
    if let Err(error) = spawned {
        eprintln!("demo: cannot watch standard input: {error}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let options = Options::parse();
    if options.exit_with_stdin {
        exit_when_stdin_closes();
    }
    if options.delete_expired {
        if !matches!(options.store, StoreChoice::Postgres | StoreChoice::Sqlite) {
            eprintln!("demo: --delete-expired needs --store postgres or --store sqlite");
            return ExitCode::FAILURE;
        }
        return delete_expired(&options).await;
    }
    let store = match build_store(&options).await {
        Ok(store) => store,
        Err(message) => {
            eprintln!("demo: {message}");
            return ExitCode::FAILURE;
        }
    };
    let manager = SessionManager::with_shared_store(store, build_config(&options));
    let running = match server::serve_demo(options.framework, manager, options.listen).await {
        Ok(running) => running,
        Err(error) => {
            eprintln!("demo: cannot listen on {}: {error}", options.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        framework = %options.framework,
        store = ?options.store,
        "serving the session demo on {}",
        running.url()
    );
    if !options.insecure_cookies {
        tracing::info!(
            "the cookie is Secure: browsers other than for localhost may drop it over plain http; pass --insecure-cookies to test over http"
        );
    }
    match running.wait().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("demo").chain(args.iter().copied())).unwrap()
    }

    async fn store_error(args: &[&str]) -> String {
        build_store(&options(args)).await.err().unwrap()
    }

    #[tokio::test]
    async fn the_defaults_are_axum_encrypted_on_port_8080() {
        let defaults = options(&[]);
        assert_eq!(defaults.framework, Framework::Axum);
        assert_eq!(defaults.store, StoreChoice::Encrypted);
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:8080");
        assert!(build_store(&defaults).await.is_ok());
        let config = build_config(&defaults);
        assert_eq!(config.cookie().name(), "session");
        assert!(config.cookie().secure());
    }

    #[tokio::test]
    async fn keys_and_cipher_build_an_encrypted_store() {
        let new = Key::generate().to_base64();
        let old = Key::generate().to_base64();
        let args = ["--key", &new, "--key", &old, "--cipher", "aes256gcm"];
        assert!(build_store(&options(&args)).await.is_ok());
        assert!(
            store_error(&["--key", "not a key"])
                .await
                .starts_with("--key: ")
        );
        assert!(
            store_error(&["--key", &new, "--key", &new])
                .await
                .starts_with("--key: ")
        );
    }

    #[tokio::test]
    async fn a_key_that_starts_with_a_hyphen_is_a_key() {
        // Key::generate().to_base64() starts with '-' one time in 64.
        let key = format!("-{}", &Key::generate().to_base64()[1..]);
        let parsed = options(&["--key", &key, "--cipher", "aes256gcm"]);
        assert_eq!(parsed.keys, [key]);
        assert!(build_store(&parsed).await.is_ok());
    }

    #[tokio::test]
    async fn options_of_another_store_are_refused_with_a_reason() {
        let key = Key::generate().to_base64();
        let error = store_error(&["--store", "memory", "--key", &key]).await;
        assert!(error.contains("--store encrypted"));
        let error = store_error(&["--redis-url", "redis://127.0.0.1"]).await;
        assert!(error.contains("--store redis"));
        assert!(build_store(&options(&["--store", "memory"])).await.is_ok());
        assert!(build_store(&options(&["--store", "simple"])).await.is_ok());
    }

    #[tokio::test]
    async fn redis_options_build_a_connected_redis_store() {
        let redis = session_testing::RedisServer::start();
        let url = redis.url();
        assert!(
            build_store(&options(&["--store", "redis", "--redis-url", &url]))
                .await
                .is_ok()
        );
        // Nothing listens there: the demo refuses to start, naming the URL.
        let port = redis.port();
        drop(redis);
        let gone = format!("redis://127.0.0.1:{port}");
        let error = store_error(&["--store", "redis", "--redis-url", &gone]).await;
        assert!(
            error.starts_with(&format!("--redis-url {gone}: ")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn database_options_build_a_migrated_sql_store() {
        let postgres = session_testing::PostgresServer::shared();
        let url = postgres.url();
        let args = [
            "--store",
            "postgres",
            "--database-url",
            &url,
            "--table",
            "demo.sessions",
        ];
        assert!(build_store(&options(&args)).await.is_ok());
        assert_eq!(
            postgres
                .execute("SELECT count(*) FROM demo.sessions")
                .unwrap(),
            "0",
            "the table was created"
        );
        let store = sql_store(&options(&args)).await.unwrap();
        assert_eq!(store.delete_expired().await.unwrap(), 0);

        let dir = tempfile::tempdir().unwrap();
        let file = format!("sqlite://{}", dir.path().join("demo.db").display());
        let args = ["--store", "sqlite", "--database-url", &file];
        assert!(build_store(&options(&args)).await.is_ok());
        assert!(dir.path().join("demo.db").exists());

        let error = store_error(&["--store", "postgres"]).await;
        assert!(error.contains("--database-url"), "{error}");
        let error = store_error(&["--store", "sqlite", "--database-url", &url]).await;
        assert!(error.contains("not a sqlite:// URL"), "{error}");
        let error = store_error(&["--store", "memory", "--database-url", &url]).await;
        assert!(error.contains("--store postgres"), "{error}");
        let bad = [
            "--store",
            "postgres",
            "--database-url",
            &url,
            "--table",
            "x;y",
        ];
        assert!(store_error(&bad).await.starts_with("--table: "));
        // Nothing listens there: the demo refuses to start, naming the URL.
        let gone = "postgres://postgres@127.0.0.1:1/postgres";
        let error = store_error(&["--store", "postgres", "--database-url", gone]).await;
        assert!(
            error.starts_with(&format!("--database-url {gone}: ")),
            "{error}"
        );
    }

    #[tokio::test]
    async fn the_aiohttp_layout_shares_aiohttp_sessions_settings() {
        let redis = session_testing::RedisServer::start();
        let url = redis.url();
        let args = [
            "--store",
            "redis",
            "--redis-url",
            &url,
            "--redis-layout",
            "aiohttp",
            "--idle-timeout",
            "600",
            "--insecure-cookies",
        ];
        let parsed = options(&args);
        let config = build_config(&parsed);
        assert_eq!(config.cookie().name(), "AIOHTTP_SESSION");
        assert_eq!(
            config.expiry().idle_timeout(),
            Some(Duration::from_secs(600))
        );
        assert_eq!(config.expiry().absolute_timeout(), None);
        assert_eq!(config.rolling(), session_core::Rolling::Disabled);
        assert!(!config.cookie().secure());

        // The store writes aiohttp_session's keys, with max_age as their TTL.
        let store = build_store(&parsed).await.unwrap();
        let manager = SessionManager::with_shared_store(store, config);
        let request = manager.request();
        request
            .session([])
            .await
            .unwrap()
            .insert("user", "ada")
            .unwrap();
        let set_cookie = request.save_changes().await.unwrap();
        let id = set_cookie[0].split(['=', ';']).nth(1).unwrap();
        let key = format!("AIOHTTP_SESSION_{id}");
        let ttl = redis.command(&["TTL", &key]).unwrap();
        assert!(
            matches!(ttl, session_testing::Reply::Integer(599..=600)),
            "{ttl:?}"
        );

        // The cookie name can still be chosen; the hash layout keeps "session".
        let mut named = args.to_vec();
        named.extend(["--cookie-name", "SID"]);
        assert_eq!(build_config(&options(&named)).cookie().name(), "SID");
        let hash = ["--store", "redis", "--redis-layout", "hash"];
        assert_eq!(build_config(&options(&hash)).cookie().name(), "session");

        // An absolute timeout cannot be kept in this layout: refused.
        let mut absolute = args.to_vec();
        absolute.extend(["--absolute-timeout", "60"]);
        let error = store_error(&absolute).await;
        assert!(error.contains("--absolute-timeout"), "{error}");
    }

    #[tokio::test]
    async fn the_aiohttp_cookie_stores_share_aiohttp_sessions_settings() {
        // base64.urlsafe_b64encode(bytes(range(32))): the Fernet key.
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let old = Key::generate().to_base64();
        for (store, prefix) in [
            ("aiohttp-encrypted", "AIOHTTP_SESSION=\"gAAAAA"),
            ("aiohttp-encrypted", "AIOHTTP_SESSION=gAAAAA"),
            ("aiohttp-nacl", "AIOHTTP_SESSION="),
            ("aiohttp-simple", "AIOHTTP_SESSION=\"{\\\"created\\\": "),
        ] {
            let mut args = vec!["--store", store, "--idle-timeout", "600"];
            if store != "aiohttp-simple" {
                args.extend(["--key", key, "--key", &old]);
            }
            let parsed = options(&args);
            let config = build_config(&parsed);
            assert_eq!(config.cookie().name(), "AIOHTTP_SESSION");
            assert_eq!(
                config.expiry().idle_timeout(),
                Some(Duration::from_secs(600))
            );
            assert_eq!(config.expiry().absolute_timeout(), None);
            assert_eq!(config.rolling(), session_core::Rolling::Disabled);

            let manager =
                SessionManager::with_shared_store(build_store(&parsed).await.unwrap(), config);
            // A Fernet token is quoted when its base64 ends in `=`: one
            // length in three is not, so the data grows a block at a time.
            let mut seen = false;
            for blocks in 0..6 {
                let request = manager.request();
                request
                    .session([])
                    .await
                    .unwrap()
                    .insert("user", &"x".repeat(16 * blocks))
                    .unwrap();
                let set_cookie = request.save_changes().await.unwrap();
                assert!(
                    set_cookie[0]
                        .split("; ")
                        .any(|attribute| attribute == "Max-Age=600"),
                    "{}",
                    set_cookie[0]
                );
                if set_cookie[0].starts_with(prefix) {
                    seen = true;
                    break;
                }
            }
            assert!(seen, "{store}: {prefix}");

            let mut absolute = args.clone();
            absolute.extend(["--absolute-timeout", "60"]);
            assert!(store_error(&absolute).await.contains("--absolute-timeout"));
        }
        let error = store_error(&["--store", "aiohttp-simple", "--key", key]).await;
        assert!(error.contains("--key configures"), "{error}");
        let error = store_error(&["--store", "aiohttp-nacl", "--cipher", "aes256gcm"]).await;
        assert!(error.contains("--cipher"), "{error}");
    }

    #[test]
    fn cookie_and_timeout_options_reach_the_config() {
        let config = build_config(&options(&[
            "--cookie-name",
            "sid",
            "--insecure-cookies",
            "--idle-timeout",
            "60",
            "--absolute-timeout",
            "0",
        ]));
        assert_eq!(config.cookie().name(), "sid");
        assert!(!config.cookie().secure());
        assert_eq!(
            config.expiry().idle_timeout(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(config.expiry().absolute_timeout(), None);
        assert!(Options::try_parse_from(["demo", "--cookie-name", "a b"]).is_err());
    }
}
