//! TLS of the real binary: original-style certificates (RSA 4096, CN only, PKCS#1 and PKCS#8
//! keys), dev-pair generation at the default paths (also by several processes at once), and
//! optional client certificates (mTLS).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use leotest_proto::unary::MessageGetUser;
use leotest_proto::LeotestOrchestratorClient;
use leotest_test_support::certs::{openssl, openssl_available, sign_v1};
use leotest_test_support::{free_port, orchestrator_bin, req, As, Creds, Orchestrator};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature_with_raw_key, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::DigitallySignedStruct;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The original's `certs/generate_certs.sh`, non-interactive: RSA 4096, CN=localhost, no SAN.
fn original_style_pair(dir: &Path, pkcs1: bool) {
    std::fs::create_dir_all(dir.join("certs")).expect("mkdir");
    let mut genkey = vec!["genrsa", "-out", "certs/server.key"];
    if pkcs1 {
        genkey.push("-traditional");
    }
    genkey.push("4096");
    openssl(dir, &genkey);
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "certs/server.key",
            "-out",
            "certs/server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    sign_v1(
        dir,
        "certs/server.csr",
        "certs/server.key",
        "certs/server.crt",
    );
    let key = std::fs::read_to_string(dir.join("certs/server.key")).expect("key");
    let want = if pkcs1 {
        "BEGIN RSA PRIVATE KEY"
    } else {
        "BEGIN PRIVATE KEY"
    };
    assert!(key.contains(want), "key format");
}

/// Handshakes like the original client would (trust server.crt, name localhost, ALPN h2) and
/// returns openssl's transcript.
fn handshake(port: u16, cert: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-alpn", "h2", "-verify_return_error", "-CAfile"])
        .arg(cert)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("s_client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"");
    }
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Trusts exactly one certificate (byte for byte), as the original client trusting
/// `certs/server.crt` does; webpki would refuse a v1 CN-only certificate outright.
#[derive(Debug)]
struct PinnedCert {
    cert: CertificateDer<'static>,
    /// The certificate's public key, taken out with openssl (webpki cannot parse v1).
    spki: SubjectPublicKeyInfoDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "this test client speaks TLS 1.3 only".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature_with_raw_key(
            message,
            &self.spki,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A gRPC client that reaches the server over TLS with the pinned certificate.
async fn pinned_client(port: u16, cert_path: &Path) -> LeotestOrchestratorClient<Channel> {
    let pem = std::fs::read(cert_path).expect("cert");
    let cert = CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("one cert")
        .expect("pem");
    let out = Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(cert_path)
        .output()
        .expect("openssl x509 -pubkey");
    let spki = SubjectPublicKeyInfoDer::from_pem_slice(&out.stdout).expect("public key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCert {
            cert,
            spki,
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect_with_connector(tower::service_fn(move |_uri: tonic::transport::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let name = ServerName::try_from("localhost").expect("name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .expect("connect with pinned certificate");
    LeotestOrchestratorClient::new(channel)
}

async fn serves_original_style_cert(pkcs1: bool) {
    if !openssl_available() {
        eprintln!("openssl not installed: original-style certificate test skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    original_style_pair(dir.path(), pkcs1);
    let s = Orchestrator::start_in(dir, &[]).await;
    let transcript = handshake(s.port, &s.cert_path());
    assert!(
        transcript.contains("Verify return code: 0 (ok)"),
        "{transcript}"
    );
    assert!(transcript.contains("ALPN protocol: h2"), "{transcript}");
    assert!(transcript.contains("4096 bit"), "{transcript}");

    // And real gRPC over it, authenticated like the original client.
    let c = pinned_client(s.port, &s.cert_path()).await;
    let r = As::new(&c, &Creds::admin())
        .get_user(MessageGetUser {
            userid: "admin".into(),
        })
        .await;
    assert!(r.exists);
    assert_eq!(r.name, "LEOScope Admin");
}

#[tokio::test]
async fn original_style_rsa4096_cn_only_pkcs1_key() {
    serves_original_style_cert(true).await;
}

#[tokio::test]
async fn original_style_rsa4096_cn_only_pkcs8_key() {
    serves_original_style_cert(false).await;
}

#[tokio::test]
async fn default_paths_get_a_generated_dev_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(orchestrator_bin())
        .current_dir(dir.path())
        .env_remove("LEOTEST_TLS_CERT")
        .env_remove("LEOTEST_TLS_KEY")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let cert = dir.path().join("certs/server.crt");
    let key = dir.path().join("certs/server.key");
    let mut ok = false;
    for _ in 0..200 {
        if cert.exists() {
            let tls = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&cert).expect("cert")))
                .domain_name("localhost");
            let ch = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
                .expect("uri")
                .tls_config(tls)
                .expect("tls")
                .connect()
                .await;
            if let Ok(ch) = ch {
                let mut c = LeotestOrchestratorClient::new(ch);
                let r = c
                    .get_user(req(
                        MessageGetUser {
                            userid: "admin".into(),
                        },
                        &Creds::token("admin", "leotest-access-token"),
                    ))
                    .await;
                ok = r.map(|r| r.into_inner().exists).unwrap_or(false);
                if ok {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(ok, "server with generated cert did not serve: {log}");
    assert!(
        log.contains("generated a self-signed development pair"),
        "{log}"
    );
    assert!(dir.path().join("data/leotest.sqlite3").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Whether the server on `port` answers over TLS trusting only the certificate at `cert`.
async fn serves_pair_on_disk(port: u16, cert: &Path) -> bool {
    let Ok(pem) = std::fs::read(cert) else {
        return false;
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name("localhost");
    let Ok(ch) = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
    else {
        return false;
    };
    let r = LeotestOrchestratorClient::new(ch)
        .get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::token("admin", "leotest-access-token"),
        ))
        .await;
    r.map(|r| r.into_inner().exists).unwrap_or(false)
}

/// Several processes started at once on one certificate directory (replicas sharing a
/// volume) with no pair yet: every one starts, one pair is generated, and all serve it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_at_once_share_one_generated_pair() {
    const PROCS: usize = 4;
    for round in 0..4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..PROCS).map(|_| free_port()).collect();
        let mut children: Vec<_> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                Command::new(orchestrator_bin())
                    .current_dir(dir.path())
                    .env_remove("LEOTEST_TLS_CERT")
                    .env_remove("LEOTEST_TLS_KEY")
                    .arg("--listen")
                    .arg(format!("127.0.0.1:{port}"))
                    // Own data dirs: only the certificate directory is shared.
                    .arg("--data-dir")
                    .arg(format!("data{i}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        let cert = dir.path().join("certs/server.crt");
        let mut serving = vec![false; PROCS];
        for _ in 0..200 {
            for (i, port) in ports.iter().enumerate() {
                if !serving[i] {
                    serving[i] = serves_pair_on_disk(*port, &cert).await;
                }
            }
            let exited = children
                .iter_mut()
                .any(|c| c.try_wait().ok().flatten().is_some());
            if serving.iter().all(|s| *s) || exited {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut logs = String::new();
        let mut generated = 0;
        for mut c in children {
            let _ = c.kill();
            let out = c.wait_with_output().expect("output");
            let log = String::from_utf8_lossy(&out.stderr).to_string();
            generated += usize::from(log.contains("generated a self-signed development pair"));
            logs.push_str(&log);
        }
        assert!(
            serving.iter().all(|s| *s),
            "round {round}: serving {serving:?}: {logs}"
        );
        assert_eq!(generated, 1, "round {round}: one process generates: {logs}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("certs"))
            .expect("certs dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}

#[test]
fn explicit_missing_cert_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(orchestrator_bin())
        .current_dir(dir.path())
        .args([
            "--listen",
            "127.0.0.1:1",
            "--tls-cert",
            "nope.crt",
            "--tls-key",
            "nope.key",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nope.crt"), "{stderr}");
    assert!(!dir.path().join("nope.crt").exists(), "nothing generated");
}

#[tokio::test]
async fn client_certificates_are_required_with_a_client_ca() {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test client CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let client_key = KeyPair::generate().expect("client key");
    let mut client_params =
        CertificateParams::new(vec!["node-1".to_string()]).expect("client params");
    client_params
        .distinguished_name
        .push(DnType::CommonName, "node-1");
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .expect("client cert");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = leotest_test_support::write(dir.path(), "client-ca.crt", &ca_cert.pem());
    let ca_arg = ca_path.to_string_lossy().to_string();
    let s = Orchestrator::start(&["--tls-client-ca", &ca_arg]).await;

    // Without a client certificate the handshake (and so the call) fails.
    let no_cert = match s.channel_with(s.tls()).await {
        Ok(ch) => LeotestOrchestratorClient::new(ch)
            .get_user(req(MessageGetUser::default(), &Creds::admin()))
            .await
            .is_err(),
        Err(_) => true,
    };
    assert!(no_cert, "a client without certificate must be refused");

    let tls = s.tls().identity(Identity::from_pem(
        client_cert.pem(),
        client_key.serialize_pem(),
    ));
    let ch = s.channel_with(tls).await.expect("mTLS connect");
    let r = LeotestOrchestratorClient::new(ch)
        .get_user(req(
            MessageGetUser {
                userid: "admin".into(),
            },
            &Creds::admin(),
        ))
        .await
        .expect("mTLS call")
        .into_inner();
    assert!(r.exists);
}
