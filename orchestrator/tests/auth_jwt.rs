//! JWT authentication of the real binary: the configured algorithm only, `exp` honoured, the
//! user must exist, static-token fallback, and start-up refusal of unsafe settings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

use std::process::Command;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use leotest_proto::unary::*;
use leotest_test_support::{orchestrator_bin, req, Creds, Orchestrator};
use serde_json::json;
use tonic::Code;

const SECRET: &str = "integration-test-jwt-secret";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn hs(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn alg_none(claims: serde_json::Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    format!("{header}.{body}.")
}

fn get_admin() -> MessageGetUser {
    MessageGetUser {
        userid: "admin".into(),
    }
}

async fn outcome(s: &Orchestrator, creds: Creds) -> Result<(), tonic::Status> {
    let mut c = s.client().await;
    c.get_user(req(get_admin(), &creds)).await.map(|_| ())
}

/// Refused with the original's code and words; a refused JWT adds why (`Invalid token: ...`).
fn assert_invalid_because(r: Result<(), tonic::Status>, what: &str, reason: &str) {
    let st = r.expect_err(what);
    assert_eq!(st.code(), Code::Unauthenticated, "{what}");
    let want = if reason.is_empty() {
        "Invalid token".to_string()
    } else {
        format!("Invalid token: {reason}")
    };
    assert_eq!(st.message(), want, "{what}");
}

fn assert_invalid(r: Result<(), tonic::Status>, what: &str) {
    let st = r.expect_err(what);
    assert_eq!(st.code(), Code::Unauthenticated, "{what}");
    assert!(
        st.message().starts_with("Invalid token"),
        "{what}: {}",
        st.message()
    );
}

#[tokio::test]
async fn security_hs256_tokens_are_checked_strictly() {
    let s = Orchestrator::start(&["--jwt-algo", "HS256", "--jwt-secret", SECRET]).await;
    let exp = now() + 300;

    let good = hs(
        Algorithm::HS256,
        SECRET,
        json!({"userid": "admin", "exp": exp}),
    );
    outcome(&s, Creds::Jwt(good.clone()))
        .await
        .expect("valid JWT accepted");

    // The caller is the JWT's user: its role governs what it may do.
    let mut c = s.client().await;
    let r = c
        .register_user(req(
            MessageRegisterUser {
                id: "alice".into(),
                name: "a".into(),
                role: UserRoles::User as i32,
                team: "t".into(),
            },
            &Creds::Jwt(good.clone()),
        ))
        .await
        .expect("register")
        .into_inner();
    assert_eq!(r.state, ResponseState::Success as i32);
    let alice = hs(
        Algorithm::HS256,
        SECRET,
        json!({"userid": "alice", "exp": exp}),
    );
    let r = c
        .update_global_config(req(
            MessageUpdateGlobalConfig { config: None },
            &Creds::Jwt(alice),
        ))
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(r.message, "permission denied: userid=alice and role=USER");

    let expired = "JWT expired (exp is in the past)";
    let signature = "JWT signature does not verify with this server's key";
    let algorithm = "JWT algorithm is not the one this server accepts";
    let cases = [
        (
            "expired",
            hs(
                Algorithm::HS256,
                SECRET,
                json!({"userid": "admin", "exp": now() - 5}),
            ),
            expired,
        ),
        (
            "forged",
            hs(
                Algorithm::HS256,
                "some-other-secret",
                json!({"userid": "admin", "exp": exp}),
            ),
            signature,
        ),
        (
            "other HMAC algorithm",
            hs(
                Algorithm::HS512,
                SECRET,
                json!({"userid": "admin", "exp": exp}),
            ),
            algorithm,
        ),
        (
            "no exp",
            hs(Algorithm::HS256, SECRET, json!({"userid": "admin"})),
            "JWT has no exp claim (required)",
        ),
        (
            "unknown user",
            hs(
                Algorithm::HS256,
                SECRET,
                json!({"userid": "ghost", "exp": exp}),
            ),
            "the JWT's userid is not a registered user",
        ),
        (
            "userid not a string",
            hs(Algorithm::HS256, SECRET, json!({"userid": 7, "exp": exp})),
            "JWT has no userid claim (required, a string)",
        ),
        (
            "no userid",
            hs(
                Algorithm::HS256,
                SECRET,
                json!({"sub": "admin", "exp": exp}),
            ),
            "JWT has no userid claim (required, a string)",
        ),
        (
            "not yet valid",
            hs(
                Algorithm::HS256,
                SECRET,
                json!({"userid": "admin", "exp": exp, "nbf": now() + 200}),
            ),
            "JWT not valid yet (nbf is in the future)",
        ),
        ("garbage", "a.b.c".to_string(), "not a well-formed JWT"),
    ];
    for (what, token, reason) in cases {
        assert_invalid_because(outcome(&s, Creds::Jwt(token)).await, what, reason);
        // The message never carries the secret.
        assert!(!reason.contains(SECRET));
    }
    // `alg: none` is refused (the reason is the decoder's: malformed or algorithm).
    assert_invalid(
        outcome(
            &s,
            Creds::Jwt(alg_none(json!({"userid": "admin", "exp": exp}))),
        )
        .await,
        "alg none",
    );
    // A static token says only what the original said.
    assert_invalid_because(
        outcome(&s, Creds::token("admin", "wrong")).await,
        "bad static token",
        "",
    );

    // A bad JWT falls back to the static token, as in the original...
    let expired = hs(
        Algorithm::HS256,
        SECRET,
        json!({"userid": "admin", "exp": now() - 5}),
    );
    outcome(
        &s,
        Creds::JwtAndToken(
            expired,
            "admin".into(),
            leotest_test_support::ADMIN_TOKEN.into(),
        ),
    )
    .await
    .expect("static token fallback");
    // ...and a good JWT wins over a wrong static token.
    outcome(&s, Creds::JwtAndToken(good, "admin".into(), "wrong".into()))
        .await
        .expect("JWT first");
}

#[tokio::test]
async fn security_es256_with_public_key_rejects_algorithm_confusion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("P-256 key");
    let private_pem = key.serialize_pem();
    let public_pem = key.public_key_pem();
    let pub_path = leotest_test_support::write(dir.path(), "jwt.pub.pem", &public_pem);
    let pub_arg = pub_path.to_string_lossy().to_string();
    let s = Orchestrator::start(&["--jwt-algo", "ES256", "--jwt-public-key", &pub_arg]).await;
    let exp = now() + 300;

    let good = encode(
        &Header::new(Algorithm::ES256),
        &json!({"userid": "admin", "exp": exp}),
        &EncodingKey::from_ec_pem(private_pem.as_bytes()).expect("ec key"),
    )
    .expect("encode");
    outcome(&s, Creds::Jwt(good)).await.expect("ES256 accepted");

    // Classic confusion: HMAC keyed with the public key must not verify.
    let confused = hs(
        Algorithm::HS256,
        &public_pem,
        json!({"userid": "admin", "exp": exp}),
    );
    assert_invalid_because(
        outcome(&s, Creds::Jwt(confused)).await,
        "HS256 with public key",
        "JWT algorithm is not the one this server accepts",
    );
    assert_invalid(
        outcome(
            &s,
            Creds::Jwt(alg_none(json!({"userid": "admin", "exp": exp}))),
        )
        .await,
        "alg none",
    );
}

#[tokio::test]
async fn security_jwt_is_off_by_default() {
    // The original's defaults (--jwt-algo jwt-algo) verify no JWT at all.
    let s = Orchestrator::start(&[]).await;
    let token = hs(
        Algorithm::HS256,
        "jwt-secret",
        json!({"userid": "admin", "exp": now() + 300}),
    );
    assert_invalid_because(
        outcome(&s, Creds::Jwt(token)).await,
        "JWT while disabled",
        "JWT authentication is off on this server (--jwt-algo)",
    );
}

#[test]
fn security_unsafe_jwt_settings_stop_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["--jwt-algo", "HS256"],
        vec!["--jwt-algo", "RS256"],
        vec![
            "--jwt-algo",
            "ES256",
            "--jwt-public-key",
            "/nonexistent/key.pem",
        ],
    ] {
        let out = Command::new(orchestrator_bin())
            .current_dir(dir.path())
            .args(["--grpc-port", "1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(&args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} must not start");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("JWT"), "{args:?}: {stderr}");
    }
}
