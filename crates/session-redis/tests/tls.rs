//! Redis over TLS, for real: a redis-server whose certificate comes from an
//! authority made for the test. The store speaks TLS to it through a client
//! that trusts that authority, and refuses it through a `rediss://` URL,
//! which trusts only the system's authorities: certificates are verified.

#![cfg(feature = "tls")]

use std::sync::Arc;
use std::time::Duration;

use fred::prelude::{Builder, Client, ClientLike, Config};
use fred::rustls::pki_types::CertificateDer;
use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::{ClientConfig, RootCertStore};
use session_conformance::{self as conformance, StoreKind};
use session_core::Error;
use session_redis::RedisStore;
use session_testing::RedisServer;

fn tls_server() -> (RedisServer, String) {
    let server = RedisServer::builder().tls(true).start();
    let url = server.tls_url().expect("a TLS port");
    (server, url)
}

/// A fred client for `url` that trusts the server's own authority.
async fn trusting_client(server: &RedisServer, url: &str) -> Client {
    let ca_pem = server.tls_ca_pem().expect("a TLS authority");
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("the authority's PEM"))
        .expect("a CA certificate");
    let provider = Arc::new(fred::rustls::crypto::ring::default_provider());
    let tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config = Config::from_url(url).expect("a rediss:// URL");
    config.tls = Some(tls.into());
    let client = Builder::from_config(config).build().expect("a client");
    client.init().await.expect("a TLS connection");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_over_tls() {
    let (server, url) = tls_server();
    // The TLS port speaks nothing but TLS: every command below goes through
    // it.
    let store = RedisStore::builder().build(trusting_client(&server, &url).await);
    let report = conformance::run(store, StoreKind::ServerSide).await;
    assert!(report.skipped().is_empty(), "{:?}", report.skipped());
    assert!(report.passed().len() >= 19, "{:?}", report.passed());
}

#[tokio::test]
async fn a_certificate_the_system_does_not_trust_is_refused() {
    let (_server, url) = tls_server();
    let result = RedisStore::builder()
        .command_timeout(Duration::from_secs(2))
        .connect(&url)
        .await;
    match result {
        Err(Error::Store(error)) => {
            let message = error.to_string().to_lowercase();
            assert!(message.contains("certificate"), "{message}");
        }
        Err(other) => panic!("expected a store error, got {other}"),
        Ok(_) => panic!("connected to a server with an untrusted certificate"),
    }
}
