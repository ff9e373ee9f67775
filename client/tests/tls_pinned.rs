//! The pinned-certificate verifier of the client library against the real orchestrator, over
//! TLS 1.2 and TLS 1.3: pinned v1 and v3 `CA:TRUE` certificates complete the handshake, and a
//! server that presents the pinned certificate without holding its key is refused (the
//! handshake signature is verified, not only the certificate bytes compared).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::path::Path;
use std::sync::Arc;

use leotest_client::tls::PinnedOrWebPki;
use rustls::pki_types::ServerName;
use rustls::{ProtocolVersion, SupportedProtocolVersion};
use support::certs::{self, Style};
use support::orchestrator_with;

/// One TLS handshake with `version` only, trusting the certificates in `trust`.
async fn handshake(
    port: u16,
    trust: &Path,
    version: &'static SupportedProtocolVersion,
) -> Result<ProtocolVersion, std::io::Error> {
    let pem = std::fs::read(trust).expect("trusted certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedOrWebPki::from_pem(&pem, provider.clone()).expect("verifier");
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("version")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(tls.get_ref().1.protocol_version().expect("negotiated"))
}

const VERSIONS: [(&SupportedProtocolVersion, ProtocolVersion); 2] = [
    (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
];

#[tokio::test]
async fn pinned_v1_and_ca_true_certificates_over_tls12_and_tls13() {
    if !certs::openssl_available() {
        return;
    }
    for style in [Style::OriginalV1, Style::OneLinerCa] {
        let dir = tempfile::tempdir().expect("tempdir");
        let pair = certs::make(&dir.path().join("certs"), "server", style, 2048);
        let o = orchestrator_with(dir, &pair.cert, &pair.key);
        for (version, expect) in VERSIONS {
            let got = handshake(o.port, &pair.trust, version).await;
            assert_eq!(got.ok(), Some(expect), "{style:?} over {expect:?}");
        }
    }
}

#[tokio::test]
async fn the_pinned_certificate_without_its_key_is_refused() {
    if !certs::openssl_available() {
        return;
    }
    // The orchestrator cannot check a v1 certificate against its key, so it serves the
    // pinned certificate while signing the handshake with another key.
    let dir = tempfile::tempdir().expect("tempdir");
    let pinned = certs::make(&dir.path().join("certs"), "server", Style::OriginalV1, 2048);
    let other = certs::make(&dir.path().join("certs"), "other", Style::OriginalV1, 2048);
    let o = orchestrator_with(dir, &pinned.cert, &other.key);
    for (version, expect) in VERSIONS {
        let err = handshake(o.port, &pinned.trust, version)
            .await
            .expect_err("a handshake signed by another key must fail");
        assert!(
            err.to_string().contains("BadSignature"),
            "{expect:?}: {err}"
        );
    }
    // The same certificate with its own key is accepted by the same client.
    let dir = tempfile::tempdir().expect("tempdir");
    let right = orchestrator_with(dir, &pinned.cert, &pinned.key);
    for (version, expect) in VERSIONS {
        let got = handshake(right.port, &pinned.trust, version).await;
        assert_eq!(got.ok(), Some(expect));
    }
}
