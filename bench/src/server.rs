//! The server variants: one framework, one session library, one store.

use std::fmt;

/// How many sessions the `-redis-cached` servers' client cache holds: more
/// than the largest rotation of distinct sessions (50,000), so that what is
/// measured is the cache's cost, not its size.
pub const CLIENT_CACHE_SESSIONS: usize = 100_000;

/// The web framework a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framework {
    /// axum 0.8 on a current-thread tokio runtime.
    Axum,
    /// actix-web 4 with one worker.
    Actix,
}

/// Who implements the sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    /// No sessions at all: the framework's limit.
    Bare,
    /// This workspace: `session-axum` / `session-actix` on `session-core`.
    Ours,
    /// tower-sessions (axum).
    TowerSessions,
    /// actix-session (actix-web).
    ActixSession,
    /// No library: the least a session kept in some store must do, written
    /// by hand (see [`Server::AxumRedisFloor`] and
    /// [`Server::AxumCookieFloor`]). A bound, not a contender.
    Floor,
}

/// Where the session data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Bare servers have none.
    None,
    /// In the cookie, encrypted.
    Cookie,
    /// In the server process's memory.
    Memory,
    /// In Redis.
    Redis,
    /// In Postgres.
    Postgres,
}

/// One benchmarked server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// axum without sessions.
    AxumBare,
    /// actix-web without sessions.
    ActixBare,
    /// Ours on axum, encrypted cookie store with its default cipher,
    /// XChaCha20-Poly1305.
    AxumOursCookie,
    /// Ours on axum, encrypted cookie store with AES-256-GCM, the cipher
    /// actix-session's private cookies use.
    AxumOursCookieAes,
    /// Ours on axum, `MemoryStore`.
    AxumOursMemory,
    /// Ours on axum, `RedisStore`.
    AxumOursRedis,
    /// Ours on axum, `RedisStore` with its client cache
    /// ([`CLIENT_CACHE_SESSIONS`] sessions).
    AxumOursRedisCached,
    /// Ours on axum, session-sqlx's `PostgresStore`.
    AxumOursPostgres,
    /// Ours on actix-web, encrypted cookie store with its default cipher,
    /// XChaCha20-Poly1305.
    ActixOursCookie,
    /// Ours on actix-web, encrypted cookie store with AES-256-GCM.
    ActixOursCookieAes,
    /// Ours on actix-web, `MemoryStore`.
    ActixOursMemory,
    /// Ours on actix-web, `RedisStore`.
    ActixOursRedis,
    /// Ours on actix-web, `RedisStore` with its client cache
    /// ([`CLIENT_CACHE_SESSIONS`] sessions).
    ActixOursRedisCached,
    /// tower-sessions 0.15 with its `MemoryStore`, on axum.
    AxumTowerSessionsMemory,
    /// tower-sessions 0.14 with tower-sessions-redis-store 0.16, on axum.
    AxumTowerSessionsRedis,
    /// tower-sessions 0.14 with tower-sessions-sqlx-store 0.15's
    /// `PostgresStore`, on axum.
    AxumTowerSessionsPostgres,
    /// actix-session 0.11 with its `CookieSessionStore` (private cookies).
    ActixSessionCookie,
    /// actix-session 0.11 with its `RedisSessionStore`.
    ActixSessionRedis,
    /// The floor of a Redis-backed session on axum, written by hand on the
    /// same fred client as ours and tower-sessions-redis-store: the cookie
    /// is the key of a Redis string, a read is one `GET` of it and nothing
    /// else (no decoding, no expiry check), a write one `GET` and one `SET`.
    /// Every Redis-backed session pays at least this, so its requests per
    /// core-second bound what any of them can reach.
    AxumRedisFloor,
    /// The floor of our encrypted cookie on axum: bare axum whose clients
    /// send the cookie ours sends them (its setup routes run our session
    /// layer and cookie store, with its default cipher, and set that
    /// cookie; the measured routes ignore it). A read is bare axum's with
    /// the cookie's bytes in the request; a counter also sends the cookie
    /// back unchanged in a `Set-Cookie`, as a session written on every
    /// request must send one of that size. It counts nothing.
    AxumCookieFloor,
    /// [`Server::AxumCookieFloor`] on actix-web.
    ActixCookieFloor,
}

impl Server {
    /// Every server, in report order: for each framework, bare, ours, peers.
    pub const ALL: [Server; 21] = [
        Server::AxumBare,
        Server::AxumOursCookie,
        Server::AxumOursCookieAes,
        Server::AxumOursMemory,
        Server::AxumOursRedis,
        Server::AxumOursRedisCached,
        Server::AxumOursPostgres,
        Server::AxumTowerSessionsMemory,
        Server::AxumTowerSessionsRedis,
        Server::AxumTowerSessionsPostgres,
        Server::AxumRedisFloor,
        Server::AxumCookieFloor,
        Server::ActixBare,
        Server::ActixOursCookie,
        Server::ActixOursCookieAes,
        Server::ActixOursMemory,
        Server::ActixOursRedis,
        Server::ActixOursRedisCached,
        Server::ActixSessionCookie,
        Server::ActixSessionRedis,
        Server::ActixCookieFloor,
    ];

    /// The name used on the command line and in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Server::AxumBare => "axum-bare",
            Server::ActixBare => "actix-bare",
            Server::AxumOursCookie => "axum-ours-cookie",
            Server::AxumOursCookieAes => "axum-ours-cookie-aes",
            Server::AxumOursMemory => "axum-ours-memory",
            Server::AxumOursRedis => "axum-ours-redis",
            Server::AxumOursRedisCached => "axum-ours-redis-cached",
            Server::AxumOursPostgres => "axum-ours-postgres",
            Server::ActixOursCookie => "actix-ours-cookie",
            Server::ActixOursCookieAes => "actix-ours-cookie-aes",
            Server::ActixOursMemory => "actix-ours-memory",
            Server::ActixOursRedis => "actix-ours-redis",
            Server::ActixOursRedisCached => "actix-ours-redis-cached",
            Server::AxumTowerSessionsMemory => "axum-tower-sessions-memory",
            Server::AxumTowerSessionsRedis => "axum-tower-sessions-redis",
            Server::AxumTowerSessionsPostgres => "axum-tower-sessions-postgres",
            Server::ActixSessionCookie => "actix-session-cookie",
            Server::ActixSessionRedis => "actix-session-redis",
            Server::AxumRedisFloor => "axum-redis-floor",
            Server::AxumCookieFloor => "axum-cookie-floor",
            Server::ActixCookieFloor => "actix-cookie-floor",
        }
    }

    /// The framework it runs on.
    #[must_use]
    pub fn framework(self) -> Framework {
        match self {
            Server::AxumBare
            | Server::AxumOursCookie
            | Server::AxumOursCookieAes
            | Server::AxumOursMemory
            | Server::AxumOursRedis
            | Server::AxumOursRedisCached
            | Server::AxumOursPostgres
            | Server::AxumTowerSessionsMemory
            | Server::AxumTowerSessionsRedis
            | Server::AxumTowerSessionsPostgres
            | Server::AxumRedisFloor
            | Server::AxumCookieFloor => Framework::Axum,
            Server::ActixBare
            | Server::ActixOursCookie
            | Server::ActixOursCookieAes
            | Server::ActixOursMemory
            | Server::ActixOursRedis
            | Server::ActixOursRedisCached
            | Server::ActixSessionCookie
            | Server::ActixSessionRedis
            | Server::ActixCookieFloor => Framework::Actix,
        }
    }

    /// The session library.
    #[must_use]
    pub fn library(self) -> Library {
        match self {
            Server::AxumBare | Server::ActixBare => Library::Bare,
            Server::AxumOursCookie
            | Server::AxumOursCookieAes
            | Server::AxumOursMemory
            | Server::AxumOursRedis
            | Server::AxumOursRedisCached
            | Server::AxumOursPostgres
            | Server::ActixOursCookie
            | Server::ActixOursCookieAes
            | Server::ActixOursMemory
            | Server::ActixOursRedis
            | Server::ActixOursRedisCached => Library::Ours,
            Server::AxumTowerSessionsMemory
            | Server::AxumTowerSessionsRedis
            | Server::AxumTowerSessionsPostgres => Library::TowerSessions,
            Server::ActixSessionCookie | Server::ActixSessionRedis => Library::ActixSession,
            Server::AxumRedisFloor | Server::AxumCookieFloor | Server::ActixCookieFloor => {
                Library::Floor
            }
        }
    }

    /// The kind of store.
    #[must_use]
    pub fn store(self) -> StoreKind {
        match self {
            Server::AxumBare | Server::ActixBare => StoreKind::None,
            Server::AxumOursCookie
            | Server::AxumOursCookieAes
            | Server::ActixOursCookie
            | Server::ActixOursCookieAes
            | Server::ActixSessionCookie
            | Server::AxumCookieFloor
            | Server::ActixCookieFloor => StoreKind::Cookie,
            Server::AxumOursMemory | Server::ActixOursMemory | Server::AxumTowerSessionsMemory => {
                StoreKind::Memory
            }
            Server::AxumOursRedis
            | Server::AxumOursRedisCached
            | Server::ActixOursRedis
            | Server::ActixOursRedisCached
            | Server::AxumTowerSessionsRedis
            | Server::ActixSessionRedis
            | Server::AxumRedisFloor => StoreKind::Redis,
            Server::AxumOursPostgres | Server::AxumTowerSessionsPostgres => StoreKind::Postgres,
        }
    }

    /// Whether our encrypted cookie store uses AES-256-GCM instead of its
    /// default cipher.
    #[must_use]
    pub fn uses_aes_gcm(self) -> bool {
        matches!(self, Server::AxumOursCookieAes | Server::ActixOursCookieAes)
    }

    /// Whether our Redis store has its client cache on.
    #[must_use]
    pub fn uses_client_cache(self) -> bool {
        matches!(
            self,
            Server::AxumOursRedisCached | Server::ActixOursRedisCached
        )
    }

    /// Whether it needs `--redis-url`.
    #[must_use]
    pub fn needs_redis(self) -> bool {
        self.store() == StoreKind::Redis
    }

    /// Whether it needs `--database-url` (a Postgres URL).
    #[must_use]
    pub fn needs_postgres(self) -> bool {
        self.store() == StoreKind::Postgres
    }

    /// Whether it keeps sessions, so that its counter counts: not a bare
    /// server, nor a cookie floor, which only carries a cookie.
    #[must_use]
    pub fn has_sessions(self) -> bool {
        !matches!(
            (self.library(), self.store()),
            (Library::Bare, _) | (Library::Floor, StoreKind::Cookie)
        )
    }

    /// The bare server of the same framework: the limit this one is
    /// compared with.
    #[must_use]
    pub fn bare(self) -> Server {
        match self.framework() {
            Framework::Axum => Server::AxumBare,
            Framework::Actix => Server::ActixBare,
        }
    }

    /// For a session library's server, the [floor](Library::Floor) on the
    /// same framework and kind of store, when there is one: that of every
    /// Redis-backed session, and the cookie floor for ours with the default
    /// cipher, whose cookie it sends (other cookies differ in size).
    #[must_use]
    pub fn floor(self) -> Option<Server> {
        let bounded = match self.store() {
            StoreKind::Redis => matches!(
                self.library(),
                Library::Ours | Library::TowerSessions | Library::ActixSession
            ),
            StoreKind::Cookie => self.library() == Library::Ours && !self.uses_aes_gcm(),
            StoreKind::None | StoreKind::Memory | StoreKind::Postgres => false,
        };
        if !bounded {
            return None;
        }
        Server::ALL.into_iter().find(|other| {
            other.library() == Library::Floor
                && other.framework() == self.framework()
                && other.store() == self.store()
        })
    }

    /// For one of ours, the peer on the same framework with the same kind
    /// of store, when there is one (tower-sessions has no cookie store,
    /// actix-session no memory store).
    #[must_use]
    pub fn peer(self) -> Option<Server> {
        if self.library() != Library::Ours {
            return None;
        }
        Server::ALL.into_iter().find(|other| {
            matches!(
                other.library(),
                Library::TowerSessions | Library::ActixSession
            ) && other.framework() == self.framework()
                && other.store() == self.store()
        })
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a server's [name](`Server::name`), as given on the command line.
impl std::str::FromStr for Server {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        crate::by_name(&Server::ALL, |s| s.name(), "server", name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for server in Server::ALL {
            assert_eq!(server.name().parse::<Server>(), Ok(server));
        }
    }

    #[test]
    fn peers_share_framework_and_store() {
        assert_eq!(
            Server::AxumOursMemory.peer(),
            Some(Server::AxumTowerSessionsMemory)
        );
        assert_eq!(
            Server::AxumOursRedis.peer(),
            Some(Server::AxumTowerSessionsRedis)
        );
        assert_eq!(
            Server::AxumOursPostgres.peer(),
            Some(Server::AxumTowerSessionsPostgres)
        );
        assert_eq!(Server::AxumOursCookie.peer(), None);
        assert_eq!(
            Server::ActixOursCookie.peer(),
            Some(Server::ActixSessionCookie)
        );
        assert_eq!(
            Server::ActixOursRedis.peer(),
            Some(Server::ActixSessionRedis)
        );
        assert_eq!(
            Server::AxumOursRedisCached.peer(),
            Some(Server::AxumTowerSessionsRedis)
        );
        assert_eq!(
            Server::ActixOursRedisCached.peer(),
            Some(Server::ActixSessionRedis)
        );
        assert_eq!(
            Server::ActixOursCookieAes.peer(),
            Some(Server::ActixSessionCookie)
        );
        assert_eq!(Server::ActixOursMemory.peer(), None);
        assert_eq!(Server::ActixSessionRedis.peer(), None);
        assert_eq!(Server::AxumRedisFloor.peer(), None);
    }

    #[test]
    fn floors_bound_sessions_on_their_framework_and_store() {
        for server in [
            Server::AxumOursRedis,
            Server::AxumOursRedisCached,
            Server::AxumTowerSessionsRedis,
        ] {
            assert_eq!(server.floor(), Some(Server::AxumRedisFloor), "{server}");
        }
        assert_eq!(
            Server::AxumOursCookie.floor(),
            Some(Server::AxumCookieFloor)
        );
        assert_eq!(
            Server::ActixOursCookie.floor(),
            Some(Server::ActixCookieFloor)
        );
        for server in [
            // Their cookies are not the size of the floor's.
            Server::AxumOursCookieAes,
            Server::ActixOursCookieAes,
            Server::ActixSessionCookie,
            Server::AxumTowerSessionsMemory,
            Server::AxumRedisFloor,
            Server::AxumCookieFloor,
            Server::AxumBare,
            Server::ActixOursRedis,
            Server::ActixSessionRedis,
        ] {
            assert_eq!(server.floor(), None, "{server}");
        }
        assert!(Server::AxumRedisFloor.needs_redis());
        assert!(Server::AxumRedisFloor.has_sessions());
        for floor in [Server::AxumCookieFloor, Server::ActixCookieFloor] {
            assert!(!floor.needs_redis() && !floor.has_sessions(), "{floor}");
            assert_eq!(floor.peer(), None);
        }
    }
}
