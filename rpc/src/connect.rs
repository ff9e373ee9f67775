//! Connection failures that name the address tried and the step that failed (TCP, TLS, TLS
//! timeout), so that the CLI can say what to fix.

/// Which step of connecting failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStage {
    /// TCP (refused, no route, name resolution).
    Tcp,
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol error).
    Tls,
    /// The TLS handshake did not complete in time (a server that accepts TCP but never
    /// speaks TLS, or something other than the orchestrator on that port).
    TlsTimeout,
}

/// A connection failure that names the address tried; carried inside the `io::Error` the
/// transport reports, so [`crate::ClientError`] can find it in the error chain.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConnectError {
    /// `host:port` tried.
    pub addr: String,
    /// Which step of connecting failed.
    pub stage: ConnectStage,
    /// The underlying error, in words.
    pub detail: String,
}

impl ConnectError {
    fn describe(&self) -> String {
        match self.stage {
            ConnectStage::Tcp => format!("cannot connect to {}: {}", self.addr, self.detail),
            ConnectStage::Tls => {
                format!("TLS handshake with {} failed: {}", self.addr, self.detail)
            }
            ConnectStage::TlsTimeout => format!(
                "TLS handshake with {} did not complete within {}",
                self.addr, self.detail
            ),
        }
    }

    pub(crate) fn into_io(self, kind: std::io::ErrorKind) -> std::io::Error {
        std::io::Error::new(kind, self)
    }

    /// Finds a `ConnectError` in an error's source chain.
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<ConnectError> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            if let Some(c) = e.downcast_ref::<ConnectError>() {
                return Some(c.clone());
            }
            // `io::Error::source` skips its own payload, so look inside it explicitly.
            if let Some(c) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<ConnectError>())
            {
                return Some(c.clone());
            }
            cur = e.source();
        }
        None
    }
}
