//! Certificate rotation without a restart: on SIGHUP the server certificate and key are read
//! again from their paths and served from the next handshake on.
//!
//! A new pair that cannot be used (unreadable, not PEM, key of another certificate) is
//! refused with an error line and the previous certificate stays in service: a half-copied
//! file must not take the server off the air. Connections already open keep their session.
//! The client CA of mTLS (`--tls-client-ca`) is not reloaded (a restart applies it).

use std::path::PathBuf;
use std::sync::Arc;

use crate::tls::{load_certified, CurrentCert, TlsError};

/// Re-reads one certificate/key pair into the served slot.
pub struct CertReloader {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<CurrentCert>,
}

impl CertReloader {
    /// A reloader of the pair at `cert` and `key` into `current`.
    pub fn new(cert: PathBuf, key: PathBuf, current: Arc<CurrentCert>) -> CertReloader {
        CertReloader { cert, key, current }
    }

    /// Loads the pair and serves it; on error the previous pair stays. The SHA-256 of the
    /// new leaf certificate is returned (what the log line shows, to compare with
    /// `openssl x509 -noout -fingerprint -sha256`).
    pub fn reload(&self) -> Result<String, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = load_certified(&self.cert, &self.key, &provider)?;
        self.current.replace(certified);
        Ok(self.current.sha256())
    }

    /// Reloads and says so in the log.
    pub fn reload_logged(&self) {
        match self.reload() {
            Ok(sha256) => tracing::info!(
                cert = %self.cert.display(),
                key = %self.key.display(),
                %sha256,
                "TLS certificate reloaded (SIGHUP): new connections get it"
            ),
            Err(e) => tracing::error!(
                error = %e,
                "TLS certificate reload failed: still serving the previous certificate"
            ),
        }
    }
}

/// Installs the SIGHUP handler now (so that a SIGHUP right after start-up cannot take the
/// default action, which ends the process) and reloads on every SIGHUP in a task. `None`
/// (with a warning) where no handler can be installed.
pub fn spawn_on_sighup(reloader: CertReloader) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(hup) => hup,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: certificates reload only on restart");
                return None;
            }
        };
        let reloader = Arc::new(reloader);
        Some(tokio::spawn(async move {
            while hup.recv().await.is_some() {
                // Reading PEM files is quick but blocking: off the async workers.
                let task = Arc::clone(&reloader);
                let _ = tokio::task::spawn_blocking(move || task.reload_logged()).await;
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{generate_dev_pair, load_server_tls};

    #[test]
    fn a_bad_pair_keeps_the_old_one_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cert = dir.path().join("s.crt");
        let key = dir.path().join("s.key");
        let names = vec!["localhost".to_string()];
        let a = generate_dev_pair(&names).expect("a");
        std::fs::write(&cert, &a.cert_pem).expect("cert");
        std::fs::write(&key, &a.key_pem).expect("key");
        let loaded = load_server_tls(&cert, &key, None, false).expect("load");
        let r = CertReloader::new(cert.clone(), key.clone(), loaded.current.clone());
        let served = |c: &Arc<CurrentCert>| c.sha256();
        let before = served(&loaded.current);

        // A key of another certificate: refused, the old pair still served.
        let b = generate_dev_pair(&names).expect("b");
        std::fs::write(&cert, &b.cert_pem).expect("cert");
        assert!(r.reload().is_err());
        assert_eq!(served(&loaded.current), before);

        std::fs::write(&key, &b.key_pem).expect("key");
        let sha = r.reload().expect("reload");
        assert_eq!(sha.len(), 64);
        assert_ne!(served(&loaded.current), before);
    }
}
