//! The cost of the session cookie on the request path, through the public
//! lifecycle over the in-memory store: finding the session's cookie in a
//! `Cookie` header among the other cookies a site sets (`load`), and building
//! the `Set-Cookie` values of a login and of the logout that follows it
//! (`login_logout`). The store's own work is a hash-map access, so the cookie
//! handling is most of what these measure.
//!
//! `cargo bench -p session-core --bench cookie`.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use session_core::{CookieConfig, MemoryStore, SameSite, SessionConfig, SessionManager};

/// A `Cookie` header as a browser sends it to a site with analytics and
/// preference cookies: about 1.5 KB of other cookies around the session's.
fn cookie_header(session: &str) -> String {
    let mut pairs: Vec<String> = (0..12)
        .map(|i| format!("_pref{i}={}", "a1B2c3D4e5".repeat(12)))
        .collect();
    pairs.insert(8, format!("session={session}"));
    pairs.join("; ")
}

fn cookie(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let config = SessionConfig::default().with_cookie(
        CookieConfig::default()
            .with_path("/app")
            .with_domain(Some("example.com".to_owned()))
            .with_same_site(SameSite::Strict),
    );
    let manager = SessionManager::new(MemoryStore::new(), config);
    let set_cookie = runtime.block_on(async {
        let request = manager.request();
        let session = request.session([]).await.expect("a session");
        session.insert("user", "alice").expect("an insert");
        request.save_changes().await.expect("a saved session")
    });
    let value = set_cookie[0]
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix("session="))
        .expect("the session cookie")
        .to_owned();
    let header = cookie_header(&value);

    let mut group = c.benchmark_group("cookie");
    group.bench_function("load", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let request = manager.request();
                let session = request
                    .session([black_box(header.as_bytes())])
                    .await
                    .expect("a session");
                assert!(!session.is_new());
                session
            })
        });
    });
    group.bench_function("login_logout", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let login = manager.request();
                let session = login.session([]).await.expect("a session");
                session.insert("n", &1).expect("an insert");
                let set_cookie = login.save_changes().await.expect("a saved session");
                // The logout keeps the store from growing over the run.
                let pair = set_cookie[0].split(';').next().expect("a pair").to_owned();
                let logout = manager.request();
                logout
                    .session([pair.as_bytes()])
                    .await
                    .expect("a session")
                    .invalidate();
                let removal = logout.save_changes().await.expect("a logout");
                (set_cookie, removal)
            })
        });
    });
    group.finish();
}

mod harness {
    #![allow(
        missing_docs,
        reason = "criterion_group! defines an undocumented function"
    )]
    criterion::criterion_group!(benches, super::cookie);
}

criterion_main!(harness::benches);
