//! TLS material: loading the server identity, optional client CA, and dev certificate generation.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::{Arc, RwLock};

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Path of the file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file to generate exists and `--force` was not given.
    #[error("{0} already exists (use --force to overwrite)")]
    Exists(PathBuf),
    /// A certificate or key file cannot be used.
    #[error("{path}: {reason}")]
    Invalid {
        /// Path of the file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file has no PEM block of the kind expected.
    #[error("{path} holds no PEM {what}")]
    NoPem {
        /// Path of the file.
        path: PathBuf,
        /// What was looked for, e.g. `private key (PKCS#1, PKCS#8 or SEC1)`.
        what: &'static str,
    },
    /// The certificate or the key exists without the other.
    #[error("only one of {cert} and {key} exists")]
    HalfPair {
        /// The certificate path.
        cert: PathBuf,
        /// The key path.
        key: PathBuf,
    },
    /// rcgen could not make the certificate.
    #[error("certificate generation failed: {0}")]
    Generate(String),
}

/// A generated certificate and its private key, both PEM.
pub struct DevPair {
    /// The self-signed certificate.
    pub cert_pem: String,
    /// Its private key.
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
    // The system clock, not `crate::clock`: peers check the validity against their real time.
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

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn create_parent(path: &Path) -> Result<(), TlsError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir).map_err(write_err(dir)),
        None => Ok(()),
    }
}

/// Writes `data` to `path` so that no reader ever sees a partial file: into a temporary file
/// of the same directory first (synced, with its final mode), then published under `path`,
/// by a hard link that fails if `path` exists (`force` unset: the first writer wins) or a
/// rename that replaces it (`force`).
fn write_file(path: &Path, data: &str, private: bool, force: bool) -> Result<(), TlsError> {
    create_parent(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let written = opts.open(&tmp).and_then(|mut f| {
        f.write_all(data.as_bytes())?;
        f.sync_all()
    });
    let published = written.map_err(write_err(&tmp)).and_then(|()| {
        if force {
            return std::fs::rename(&tmp, path).map_err(write_err(path));
        }
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(TlsError::Exists(path.to_path_buf()))
            }
            // A filesystem without hard links: the caller holds the pair lock and saw no
            // file, so a rename cannot replace another process's pair.
            Err(_) => std::fs::rename(&tmp, path).map_err(write_err(path)),
        }
    });
    let _ = std::fs::remove_file(&tmp);
    published?;
    // The new name must survive a crash too, not only the data.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// An exclusive `flock` on `<cert>.lock`, held while a pair is checked and written, so two
/// processes starting at once on one certificate directory make one pair between them (the
/// other waits, then finds and loads it). Released when dropped (also on a crash).
struct PairLock {
    _file: std::fs::File,
}

impl PairLock {
    fn acquire(cert: &Path) -> Result<PairLock, TlsError> {
        create_parent(cert)?;
        let mut name = cert.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err(&path))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            TlsError::Write {
                path: path.clone(),
                source: e.into(),
            }
        })?;
        Ok(PairLock { _file: file })
    }
}

/// Generates a dev pair and writes it (key with mode 0600).
pub fn write_dev_pair(
    cert: &Path,
    key: &Path,
    names: &[String],
    force: bool,
) -> Result<(), TlsError> {
    let _lock = PairLock::acquire(cert)?;
    write_pair_locked(cert, key, names, force)
}

fn write_pair_locked(
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

/// Makes sure a pair exists at `cert` / `key`, generating a dev pair when neither does;
/// whether this process generated it. Under the pair lock, so of several processes starting
/// at once one generates and the others load its pair.
fn ensure_dev_pair(cert: &Path, key: &Path) -> Result<bool, TlsError> {
    let _lock = PairLock::acquire(cert)?;
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(false),
        (false, false) => {
            let names = ["localhost".to_string(), "127.0.0.1".to_string()];
            write_pair_locked(cert, key, &names, false)?;
            Ok(true)
        }
        _ => Err(TlsError::HalfPair {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Serves one certificate to every client, whatever the SNI; replaceable while serving
/// ([`crate::tls_reload`]: SIGHUP). Handshakes in progress keep the one they started with.
#[derive(Debug)]
pub struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    fn new(key: CertifiedKey) -> CurrentCert {
        CurrentCert(RwLock::new(Arc::new(key)))
    }

    /// SHA-256 of the leaf certificate served now (upper-case hex, as `openssl x509
    /// -fingerprint -sha256` prints it without the colons).
    pub fn sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let key = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        key.cert
            .first()
            .map(|c| hex::encode_upper(Sha256::digest(c.as_ref())))
            .unwrap_or_default()
    }

    /// Serves `key` from the next handshake on.
    pub fn replace(&self, key: CertifiedKey) {
        // A poisoned lock only means a writer panicked mid-assignment of an Arc: the value
        // is still a whole certificate, so keep serving.
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
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

/// Reads and checks a certificate chain and its private key (the key must match the
/// certificate, where that can be checked).
pub fn load_certified(
    cert: &Path,
    key: &Path,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<CertifiedKey, TlsError> {
    let chain = pem_certs(cert, &read(cert)?, "certificate")?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::NoPem {
        path: key.to_path_buf(),
        what: "private key (PKCS#1, PKCS#8 or SEC1)",
    })?;
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

    Ok(certified)
}

/// What [`load_server_tls`] did.
pub struct LoadedTls {
    /// The rustls server configuration to serve with.
    pub config: Arc<ServerConfig>,
    /// True when a development pair was generated because none existed.
    pub generated: bool,
    /// The certificate being served, for reloading it.
    pub current: Arc<CurrentCert>,
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
    let generated = match (cert.exists(), key.exists()) {
        (true, true) => false,
        // Checked again under the pair lock: another process may be writing the pair now.
        _ if may_generate => ensure_dev_pair(cert, key)?,
        (true, false) | (false, true) => {
            return Err(TlsError::HalfPair {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        (false, false) => false,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = load_certified(cert, key, &provider)?;
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
    let current = Arc::new(CurrentCert::new(certified));
    let mut config = builder.with_cert_resolver(current.clone());
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(LoadedTls {
        config: Arc::new(config),
        generated,
        current,
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
