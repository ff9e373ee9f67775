//! TLS towards the orchestrator: trusts what the original's grpcio client trusts.
//!
//! The original client (`common/client.py`) passes `certs/server.crt` as its root certificates
//! and overrides the target name with `localhost` (`grpc.ssl_target_name_override`). Its
//! deployments use certificates that WebPKI refuses as a server's own certificate: the X.509 v1
//! output of `certs/generate_certs.sh` (`UnsupportedCertVersion`) and the v3 `CA:TRUE` of the
//! `openssl req -x509` one-liner (`CaUsedAsEndEntity`), both without SAN. grpcio accepts them
//! because the presented certificate *is* a trusted root. So does [`PinnedOrWebPki`]:
//!
//! * a presented end-entity certificate byte-identical to one in the `--ca-cert` file is
//!   trusted when it is within its validity period and carries the expected name: a SAN entry
//!   if it has any, else its CN (gRPC's `tsi_ssl_peer_matches_name`). The handshake signature
//!   is still verified against that certificate's key by rustls' crypto provider, so only the
//!   holder of the pinned certificate's private key gets through;
//! * any other certificate goes through rustls' [`WebPkiServerVerifier`] with the file's
//!   certificates as roots, unchanged (CA-issued certificates, SAN required).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

pub use crate::connect::{ConnectError, ConnectStage};

/// Why the trusted certificates cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The file holds no PEM certificate.
    #[error("no PEM certificate (-----BEGIN CERTIFICATE-----) in file")]
    NoCertificate,
    /// A certificate in the file cannot be parsed.
    #[error("certificate {index} of the file is not valid PEM/X.509: {reason}")]
    BadCertificate {
        /// Position of the certificate in the file, from 0.
        index: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// The expected server name cannot be used for TLS (not a DNS name or IP address).
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(String),
}

/// A trusted certificate as the pinned path needs it, parsed once.
struct Pinned {
    der: CertificateDer<'static>,
    spki: SubjectPublicKeyInfoDer<'static>,
    /// Whether WebPKI parses it as an end-entity certificate (v3); v1 ones it does not.
    webpki_parsable: bool,
    not_before: i64,
    not_after: i64,
    /// Every SAN entry counts: with any present, the CN is not looked at (as in gRPC).
    san_entries: usize,
    san_dns: Vec<String>,
    san_ips: Vec<IpAddr>,
    common_name: Option<String>,
}

impl Pinned {
    fn parse(index: usize, der: CertificateDer<'static>) -> Result<Pinned, TlsSetupError> {
        use x509_parser::extensions::GeneralName;
        let bad = |reason: String| TlsSetupError::BadCertificate { index, reason };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| bad(e.to_string()))?;
        let mut san_entries = 0;
        let mut san_dns = Vec::new();
        let mut san_ips = Vec::new();
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| bad(e.to_string()))?
        {
            for name in &san.value.general_names {
                san_entries += 1;
                match name {
                    GeneralName::DNSName(dns) => san_dns.push(dns.to_string()),
                    GeneralName::IPAddress(octets) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*octets) {
                            san_ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*octets) {
                            san_ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let validity = cert.validity();
        let spki = SubjectPublicKeyInfoDer::from(cert.public_key().raw.to_vec());
        let webpki_parsable = rustls::server::ParsedCertificate::try_from(&der).is_ok();
        Ok(Pinned {
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            der,
            spki,
            webpki_parsable,
            san_entries,
            san_dns,
            san_ips,
            common_name,
        })
    }

    /// The names it is valid for, for error messages.
    fn names(&self) -> Vec<String> {
        if self.san_entries > 0 {
            let ips = self.san_ips.iter().map(IpAddr::to_string);
            self.san_dns.iter().cloned().chain(ips).collect()
        } else {
            self.common_name
                .iter()
                .map(|cn| format!("{cn} (CN, no SAN)"))
                .collect()
        }
    }

    /// gRPC's rule: SAN entries if there are any (IP names match IP entries exactly), else
    /// the CN, and never the CN for an IP address.
    fn matches(&self, name: &ServerName<'_>) -> bool {
        match name {
            ServerName::IpAddress(ip) => self.san_ips.contains(&IpAddr::from(*ip)),
            ServerName::DnsName(dns) => {
                let dns = dns.as_ref();
                if self.san_entries > 0 {
                    self.san_dns
                        .iter()
                        .any(|entry| dns_entry_matches(entry, dns))
                } else {
                    self.common_name
                        .as_deref()
                        .is_some_and(|cn| dns_entry_matches(cn, dns))
                }
            }
            _ => false,
        }
    }
}

/// Case-insensitive name match with gRPC's wildcard rule: `*.rest` stands for exactly one
/// leading label, and `rest` must itself have a dot (no `*.com`).
fn dns_entry_matches(entry: &str, name: &str) -> bool {
    let entry = entry.strip_suffix('.').unwrap_or(entry);
    let name = name.strip_suffix('.').unwrap_or(name);
    if entry.is_empty() || name.is_empty() {
        return false;
    }
    if !entry.starts_with('*') {
        return entry.eq_ignore_ascii_case(name);
    }
    let Some(rest) = entry.strip_prefix("*.") else {
        return false;
    };
    let Some((first, name_rest)) = name.split_once('.') else {
        return false;
    };
    !first.is_empty()
        && !rest.is_empty()
        && rest.contains('.')
        && !rest.ends_with('.')
        && name_rest.eq_ignore_ascii_case(rest)
}

/// Trusts a byte-identical pinned certificate (see the module docs), else WebPKI.
pub struct PinnedOrWebPki {
    pinned: Vec<Pinned>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PinnedOrWebPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedOrWebPki")
            .field("pinned", &self.pinned.len())
            .field("webpki", &self.webpki.is_some())
            .finish()
    }
}

impl PinnedOrWebPki {
    /// Builds the verifier from the trusted certificates (PEM, one or more).
    pub fn from_pem(pem: &[u8], provider: Arc<CryptoProvider>) -> Result<Self, TlsSetupError> {
        let mut certs = Vec::new();
        for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|e| TlsSetupError::BadCertificate {
                index,
                reason: e.to_string(),
            })?;
            certs.push(cert);
        }
        if certs.is_empty() {
            return Err(TlsSetupError::NoCertificate);
        }
        let pinned = certs
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, c)| Pinned::parse(i, c))
            .collect::<Result<Vec<_>, _>>()?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(certs);
        let webpki = if roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| TlsSetupError::Rustls(e.to_string()))?,
            )
        };
        Ok(PinnedOrWebPki {
            pinned,
            webpki,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    fn pinned_for(&self, cert: &CertificateDer<'_>) -> Option<&Pinned> {
        self.pinned.iter().find(|p| p.der.as_ref() == cert.as_ref())
    }

    /// TLS 1.2 signature by a certificate WebPKI cannot parse: the same loop as
    /// `rustls::crypto::verify_tls12_signature`, over the key taken from the certificate.
    fn verify_tls12_raw(
        &self,
        spki: &SubjectPublicKeyInfoDer<'_>,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algs = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(TlsError::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))?;
        let key = webpki::RawPublicKeyEntity::try_from(spki)
            .map_err(|_| TlsError::InvalidCertificate(CertificateError::BadEncoding))?;
        for alg in algs {
            match key.verify_signature(*alg, message, dss.signature()) {
                Ok(()) => return Ok(HandshakeSignatureValid::assertion()),
                Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_)) => continue,
                Err(_) => break,
            }
        }
        Err(TlsError::InvalidCertificate(CertificateError::BadSignature))
    }
}

impl ServerCertVerifier for PinnedOrWebPki {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        if let Some(pinned) = self.pinned_for(end_entity) {
            let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
            let at = |t: i64| UnixTime::since_unix_epoch(Duration::from_secs(t.max(0) as u64));
            if secs < pinned.not_before {
                return Err(TlsError::InvalidCertificate(
                    CertificateError::NotValidYetContext {
                        time: now,
                        not_before: at(pinned.not_before),
                    },
                ));
            }
            if secs > pinned.not_after {
                return Err(TlsError::InvalidCertificate(
                    CertificateError::ExpiredContext {
                        time: now,
                        not_after: at(pinned.not_after),
                    },
                ));
            }
            if !pinned.matches(server_name) {
                return Err(TlsError::InvalidCertificate(
                    CertificateError::NotValidForNameContext {
                        expected: server_name.to_owned(),
                        presented: pinned.names(),
                    },
                ));
            }
            return Ok(ServerCertVerified::assertion());
        }
        // Not pinned: WebPKI decides. A certificate it cannot even take as an end entity (v1,
        // CA:TRUE) is simply not from a trusted issuer, which is the clearer thing to say.
        let webpki = self.webpki.as_ref().ok_or(TlsError::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))?;
        webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                TlsError::InvalidCertificate(CertificateError::Other(_)) => {
                    TlsError::InvalidCertificate(CertificateError::UnknownIssuer)
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        match self.pinned_for(cert) {
            Some(p) if !p.webpki_parsable => self.verify_tls12_raw(&p.spki, message, dss),
            _ => rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        match self.pinned_for(cert) {
            Some(p) if !p.webpki_parsable => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &p.spki,
                dss,
                &self.algorithms,
            ),
            _ => rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client config (ALPN `h2`) that trusts the certificates in `ca_pem` as above.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, TlsSetupError> {
    client_config_with_fallback(ca_pem, None)
}

/// [`client_config`], also accepting a certificate valid for `fallback` when it is not valid
/// for the name connected to (see [`NameFallback`]).
pub fn client_config_with_fallback(
    ca_pem: &[u8],
    fallback: Option<ServerName<'static>>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedOrWebPki::from_pem(ca_pem, provider.clone())?;
    let verifier: Arc<dyn ServerCertVerifier> = match fallback {
        Some(fallback) => Arc::new(NameFallback {
            inner: verifier,
            fallback,
        }),
        None => Arc::new(verifier),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// When no `--tls-domain` is given the client checks the host name it connects to, and, if
/// the certificate does not carry it, the original's fixed name `localhost` (its
/// `ssl_target_name_override`): every certificate the original accepted is still accepted,
/// and a certificate issued for the public name works without `--tls-domain`. The trust
/// anchor (the CA file) and the handshake proof are the same for both names.
#[derive(Debug)]
pub struct NameFallback {
    inner: PinnedOrWebPki,
    fallback: ServerName<'static>,
}

fn is_name_error(e: &TlsError) -> bool {
    matches!(
        e,
        TlsError::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

impl ServerCertVerifier for NameFallback {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e) if is_name_error(&e) && *server_name != self.fallback => self
                .inner
                .verify_server_cert(
                    end_entity,
                    intermediates,
                    &self.fallback,
                    ocsp_response,
                    now,
                )
                // The error names what was asked for, not the fallback.
                .map_err(|_| e),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Opens TCP and then TLS to the orchestrator, checking the certificate for `server_name`.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    handshake_timeout: Duration,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// `server_name` is what the certificate must carry (the original's target name override).
    pub fn new(ca_pem: &[u8], server_name: &str) -> Result<Self, TlsSetupError> {
        Self::with_fallback(ca_pem, server_name, None)
    }

    /// Like [`TlsConnector::new`]; a certificate valid for `fallback` (and not for
    /// `server_name`) is accepted too (see [`NameFallback`]).
    pub fn with_fallback(
        ca_pem: &[u8],
        server_name: &str,
        fallback: Option<&str>,
    ) -> Result<Self, TlsSetupError> {
        let name = |n: &str| {
            ServerName::try_from(n.to_string())
                .map_err(|_| TlsSetupError::ServerName(n.to_string()))
        };
        let server_name = name(server_name)?;
        let fallback = fallback.map(name).transpose()?;
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(client_config_with_fallback(
                ca_pem, fallback,
            )?)),
            server_name,
            handshake_timeout: Duration::from_secs(20),
        })
    }

    /// Gives up on a TLS handshake that has not completed after `limit`.
    pub fn handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// Connects to `host:port` (every address the name resolves to, in turn). Failures are
    /// `io::Error`s carrying a [`ConnectError`] that names the address.
    pub async fn connect(&self, host: &str, port: u16) -> std::io::Result<TlsStream<TcpStream>> {
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let fail = |stage, detail: String, kind| {
            ConnectError {
                addr: addr.clone(),
                stage,
                detail,
            }
            .into_io(kind)
        };
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| fail(ConnectStage::Tcp, e.to_string(), e.kind()))?;
        tcp.set_nodelay(true)?;
        match tokio::time::timeout(
            self.handshake_timeout,
            self.inner.connect(self.server_name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => {
                // rustls reports a certificate or protocol problem as InvalidData: the user's
                // to fix, not retried. A connection closed or reset mid-handshake (a balancer
                // whose backend just went away) is the orchestrator not being reached: retried
                // like a refused connection.
                let stage = if e.kind() == std::io::ErrorKind::InvalidData {
                    ConnectStage::Tls
                } else {
                    ConnectStage::Tcp
                };
                Err(fail(stage, e.to_string(), e.kind()))
            }
            Err(_) => Err(fail(
                ConnectStage::TlsTimeout,
                format!("{} ms", self.handshake_timeout.as_millis()),
                std::io::ErrorKind::TimedOut,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_match_like_grpc() {
        assert!(dns_entry_matches("localhost", "localhost"));
        assert!(dns_entry_matches("LocalHost.", "localhost"));
        assert!(!dns_entry_matches("localhost", "localhost2"));
        assert!(dns_entry_matches("*.example.com", "a.example.com"));
        assert!(!dns_entry_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_entry_matches("*.example.com", "example.com"));
        assert!(!dns_entry_matches("*.com", "a.com"));
        assert!(!dns_entry_matches("a*.example.com", "ab.example.com"));
        assert!(!dns_entry_matches("", "localhost"));
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        assert!(matches!(
            PinnedOrWebPki::from_pem(b"not a certificate", provider),
            Err(TlsSetupError::NoCertificate)
        ));
    }

    #[test]
    fn a_bad_server_name_is_refused() {
        // The name is checked before the certificates are read.
        assert!(matches!(
            TlsConnector::new(b"", "not a name"),
            Err(TlsSetupError::ServerName(_))
        ));
    }
}
