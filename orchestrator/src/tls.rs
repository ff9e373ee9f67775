//! TLS material: loading the server identity, optional client CA, and dev certificate generation.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} already exists (use --force to overwrite)")]
    Exists(PathBuf),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} holds no PEM {what}")]
    NoPem { path: PathBuf, what: &'static str },
    #[error("only one of {cert} and {key} exists")]
    HalfPair { cert: PathBuf, key: PathBuf },
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

/// A generated certificate and its private key, both PEM.
pub struct DevPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a self-signed certificate (ECDSA P-256) whose CN is the first name and whose SANs are
/// all `names` (IP addresses become IP SANs).
pub fn generate_dev_pair(names: &[String]) -> Result<DevPair, TlsError> {
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    for name in names {
        let san = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().map_err(gen)?),
        };
        params.subject_alt_names.push(san);
    }
    let cn = names.first().map(String::as_str).unwrap_or("localhost");
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "leotest-rs development");
    let ymd = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8)
    };
    let today = chrono::Utc::now().date_naive();
    params.not_before = ymd(today - chrono::Days::new(1));
    params.not_after = ymd(today + chrono::Days::new(825));
    let key = KeyPair::generate().map_err(gen)?;
    let cert = params.self_signed(&key).map_err(gen)?;
    Ok(DevPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_file(path: &Path, data: &str, private: bool, force: bool) -> Result<(), TlsError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let mut opts = OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists(path.to_path_buf())
        } else {
            TlsError::Write {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    f.write_all(data.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    #[cfg(unix)]
    if private {
        // `mode` only applies on creation; a forced overwrite must tighten it too.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| TlsError::Write {
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

/// Generates a dev pair and writes it (key with mode 0600).
pub fn write_dev_pair(
    cert: &Path,
    key: &Path,
    names: &[String],
    force: bool,
) -> Result<(), TlsError> {
    if !force {
        for p in [cert, key] {
            if p.exists() {
                return Err(TlsError::Exists(p.to_path_buf()));
            }
        }
    }
    let pair = generate_dev_pair(names)?;
    write_file(key, &pair.key_pem, true, force)?;
    write_file(cert, &pair.cert_pem, false, force)?;
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Serves one certificate to every client, whatever the SNI.
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn pem_certs(
    path: &Path,
    data: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(data)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(certs)
}

/// What [`load_server_tls`] did.
pub struct LoadedTls {
    pub config: Arc<ServerConfig>,
    /// True when a development pair was generated because none existed.
    pub generated: bool,
}

/// Builds the server TLS config from PEM files. When both files are missing and
/// `may_generate` is set, a dev pair for `localhost` is written there first.
///
/// The rustls config is assembled here rather than by tonic because tonic's loader insists on
/// parsing the certificate as X.509 v3, and the original's `generate_certs.sh` makes v1
/// certificates (`openssl x509 -req` without extensions) that its clients rely on.
pub fn load_server_tls(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
    may_generate: bool,
) -> Result<LoadedTls, TlsError> {
    let mut generated = false;
    match (cert.exists(), key.exists()) {
        (false, false) if may_generate => {
            write_dev_pair(
                cert,
                key,
                &["localhost".to_string(), "127.0.0.1".to_string()],
                false,
            )?;
            generated = true;
        }
        (true, false) | (false, true) => {
            return Err(TlsError::HalfPair {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        _ => {}
    }
    let chain = pem_certs(cert, &read(cert)?, "certificate")?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::NoPem {
        path: key.to_path_buf(),
        what: "private key (PKCS#1, PKCS#8 or SEC1)",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::Invalid {
            path: key.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::Invalid {
                path: key.to_path_buf(),
                reason: format!("does not match the certificate {}", cert.display()),
            })
        }
        // v1 certificates cannot be parsed for the check; the handshake still works.
        Err(e) => tracing::debug!(reason = %e, "key/certificate match not checked"),
    }

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in pem_certs(ca, &read(ca)?, "CA certificate")? {
                roots.add(c).map_err(|e| TlsError::Invalid {
                    path: ca.to_path_buf(),
                    reason: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::Invalid {
                    path: ca.to_path_buf(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(FixedCert(Arc::new(certified))));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(LoadedTls {
        config: Arc::new(config),
        generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_pair_is_written_with_a_private_key_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("c/server.crt");
        let key = dir.path().join("c/server.key");
        let loaded = load_server_tls(&cert, &key, None, true).expect("generated");
        assert!(loaded.generated);
        let pem = std::fs::read_to_string(&cert).expect("cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // A second load reuses the pair.
        let again = load_server_tls(&cert, &key, None, true).expect("loaded");
        assert!(!again.generated);
        assert_eq!(std::fs::read_to_string(&cert).expect("cert"), pem);
    }

    #[test]
    fn missing_files_without_permission_to_generate_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load_server_tls(&dir.path().join("a"), &dir.path().join("b"), None, false);
        assert!(matches!(err, Err(TlsError::Read { .. })));
    }

    #[test]
    fn half_a_pair_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("server.crt");
        std::fs::write(&cert, "x").expect("write");
        let err = load_server_tls(&cert, &dir.path().join("server.key"), None, true);
        assert!(matches!(err, Err(TlsError::HalfPair { .. })));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let names = vec!["localhost".to_string()];
        let a = generate_dev_pair(&names).expect("a");
        let b = generate_dev_pair(&names).expect("b");
        let cert = dir.path().join("a.crt");
        let key = dir.path().join("b.key");
        std::fs::write(&cert, a.cert_pem).expect("cert");
        std::fs::write(&key, b.key_pem).expect("key");
        let err = load_server_tls(&cert, &key, None, false);
        assert!(matches!(err, Err(TlsError::Invalid { .. })));
    }

    #[test]
    fn gen_cert_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("s.crt");
        let key = dir.path().join("s.key");
        let names = vec!["localhost".to_string()];
        write_dev_pair(&cert, &key, &names, false).expect("first");
        assert!(matches!(
            write_dev_pair(&cert, &key, &names, false),
            Err(TlsError::Exists(_))
        ));
        write_dev_pair(&cert, &key, &names, true).expect("forced");
    }
}
