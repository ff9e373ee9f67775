//! Authentication: one tower layer in front of every RPC (JWT first, then userid + static token).
//!
//! On success the [`Caller`] is put in the request extensions for the handlers; on failure the
//! request never reaches a handler and the client gets `UNAUTHENTICATED` / `Invalid token`,
//! as from the original. A refused JWT adds why after a colon (`Invalid token: JWT expired`,
//! [`JwtReject`]): fixed texts that name no secret and no user; a refused static token says
//! nothing more (which part was wrong would tell an attacker whether a user id exists).
//! Health checks and reflection are public (they reveal no data).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tonic::Status;
use tower::{Layer, Service};

use crate::error::ServiceError;
use crate::logsafe::untrusted;
use crate::metrics::Metrics;
use crate::store::{Role, Store, StoreError};
use crate::tokens;

pub mod failure;
pub use failure::{AuthFailure, JwtReject, INVALID_TOKEN};

// The wire's header names and credential bound live in the proto crate.
use leotest_proto::MAX_CREDENTIAL_LEN;
pub use leotest_proto::{JWT_HEADER, TOKEN_HEADER, USERID_HEADER};

/// gRPC paths served without credentials.
const PUBLIC_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The authenticated identity of a request, as the handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// User id the credentials proved.
    pub userid: String,
    /// The user's role, as stored.
    pub role: Role,
}

/// Problems with the JWT settings, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// An asymmetric algorithm was chosen without a public key.
    #[error("--jwt-algo {0} needs --jwt-public-key")]
    MissingPublicKey(String),
    /// HS* was chosen with the well-known default secret.
    #[error("--jwt-algo {0} needs a non-default --jwt-secret")]
    WeakSecret(String),
    /// The public key file could not be read.
    #[error("cannot read JWT public key {path}: {source}")]
    ReadKey {
        /// The key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The public key does not parse for the chosen algorithm.
    #[error("invalid JWT public key: {0}")]
    BadKey(String),
}

/// The claims read; `userid` is checked by hand so that a missing or non-string one gets
/// its own reason (a serde error would not say which field).
#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    userid: Option<serde_json::Value>,
}

/// Verifies JWTs with exactly one configured algorithm and key.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// Builds a verifier, or `None` when `algo` names no supported algorithm (the original's
    /// default `jwt-algo` leaves JWT authentication off).
    pub fn from_settings(
        algo: &str,
        secret: &str,
        public_key: Option<&Path>,
    ) -> Result<Option<JwtVerifier>, AuthConfigError> {
        let Ok(alg) = Algorithm::from_str(algo) else {
            return Ok(None);
        };
        let key = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                if secret.is_empty() || secret == "jwt-secret" {
                    return Err(AuthConfigError::WeakSecret(algo.to_string()));
                }
                DecodingKey::from_secret(secret.as_bytes())
            }
            other => {
                let path = public_key
                    .ok_or_else(|| AuthConfigError::MissingPublicKey(algo.to_string()))?;
                let pem = std::fs::read(path).map_err(|source| AuthConfigError::ReadKey {
                    path: path.display().to_string(),
                    source,
                })?;
                let key = match other {
                    Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    _ => DecodingKey::from_rsa_pem(&pem),
                };
                key.map_err(|e| AuthConfigError::BadKey(e.to_string()))?
            }
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        Ok(Some(JwtVerifier { key, validation }))
    }

    /// The `userid` claim of a valid token, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<String, JwtReject> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => match data.claims.userid {
                Some(serde_json::Value::String(userid)) => Ok(userid),
                _ => Err(JwtReject::NoUserid),
            },
            Err(e) => {
                // The error kind names the failure (ExpiredSignature, InvalidSignature, ...)
                // without echoing the token.
                let reason: String = format!("{:?}", e.kind()).chars().take(64).collect();
                tracing::info!(%reason, "JWT rejected");
                Err(JwtReject::of(&e))
            }
        }
    }
}

/// Checks request credentials against the store.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: Option<JwtVerifier>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= MAX_CREDENTIAL_LEN)
}

impl Authenticator {
    /// Checks credentials against `store`; `jwt` is `None` when JWT authentication is off.
    pub fn new(store: Arc<dyn Store>, jwt: Option<JwtVerifier>) -> Authenticator {
        Authenticator { store, jwt }
    }

    /// The caller, or why the credentials are missing or wrong.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Result<Caller, AuthFailure>, StoreError> {
        let mut failure = AuthFailure::NoCredentials;
        match (header(headers, JWT_HEADER), &self.jwt) {
            (Some(token), Some(jwt)) => match jwt.verify(token) {
                Ok(userid) => {
                    if let Some(user) = self.store.get_user(&userid).await? {
                        return Ok(Ok(Caller {
                            userid,
                            role: user.role,
                        }));
                    }
                    failure = AuthFailure::JwtUnknownUser;
                    tracing::info!(userid = %untrusted(&userid), "JWT names an unknown user");
                }
                Err(reject) => failure = AuthFailure::JwtInvalid(reject),
            },
            (Some(_), None) => failure = AuthFailure::JwtDisabled,
            (None, _) => {}
        }
        if let (Some(userid), Some(token)) = (
            header(headers, USERID_HEADER),
            header(headers, TOKEN_HEADER),
        ) {
            failure = AuthFailure::UnknownUser;
            if let Some(user) = self.store.get_user(userid).await? {
                // Evaluate both so the time does not reveal which token matched.
                let s = tokens::matches(token, &user.static_access_token);
                let d = tokens::matches(token, &user.access_token);
                if s | d {
                    return Ok(Ok(Caller {
                        userid: user.id,
                        role: user.role,
                    }));
                }
                failure = AuthFailure::BadToken;
            }
            tracing::info!(userid = %untrusted(userid), "static token rejected");
        }
        Ok(Err(failure))
    }
}

fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Tower layer that authenticates every request before routing.
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    metrics: Option<Arc<Metrics>>,
}

impl AuthLayer {
    /// Authenticates with `auth`; failures are counted by reason in `metrics` when given.
    pub fn new(auth: Arc<Authenticator>, metrics: Option<Arc<Metrics>>) -> AuthLayer {
        AuthLayer { auth, metrics }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service produced by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
    metrics: Option<Arc<Metrics>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

fn reject<B: Default>(status: Status) -> http::Response<B> {
    status.into_http()
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // Take the service that was driven to readiness; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            if is_public(req.uri().path()) {
                return inner.call(req).await;
            }
            let outcome = auth.authenticate(req.headers()).await;
            let failed = |reason| {
                if let Some(m) = &metrics {
                    m.auth_failure(reason);
                }
            };
            match outcome {
                Ok(Ok(caller)) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await
                }
                Ok(Err(reason)) => {
                    failed(reason);
                    Ok(reject(Status::unauthenticated(reason.message())))
                }
                Err(e) => {
                    failed(AuthFailure::StoreError);
                    Ok(reject(ServiceError::from(e).into()))
                }
            }
        })
    }
}

/// The caller of a request that went through [`AuthLayer`]; fails closed if absent.
pub fn caller_of<T>(req: &tonic::Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated(INVALID_TOKEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_paths() {
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        assert!(!is_public("/unary.LeotestOrchestrator/get_user"));
        assert!(!is_public("/grpc.health.v1.Healthz/Check"));
    }

    #[test]
    fn unknown_algorithm_disables_jwt() {
        assert!(JwtVerifier::from_settings("jwt-algo", "x", None)
            .expect("ok")
            .is_none());
        assert!(JwtVerifier::from_settings("none", "x", None)
            .expect("ok")
            .is_none());
    }

    #[test]
    fn static_token_failures_say_only_invalid_token() {
        for f in [
            AuthFailure::NoCredentials,
            AuthFailure::UnknownUser,
            AuthFailure::BadToken,
        ] {
            assert_eq!(f.message(), INVALID_TOKEN);
        }
        assert_eq!(
            AuthFailure::JwtInvalid(JwtReject::Expired).message(),
            "Invalid token: JWT expired (exp is in the past)"
        );
    }

    #[test]
    fn weak_or_missing_keys_are_refused() {
        assert!(matches!(
            JwtVerifier::from_settings("HS256", "jwt-secret", None),
            Err(AuthConfigError::WeakSecret(_))
        ));
        assert!(matches!(
            JwtVerifier::from_settings("RS256", "", None),
            Err(AuthConfigError::MissingPublicKey(_))
        ));
    }
}
