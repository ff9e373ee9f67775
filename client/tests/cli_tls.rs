//! The real `leotest` binary against the real orchestrator binary over each certificate style
//! LeoTest deployments use, pinned with `--ca-cert` as the original client pins
//! `certs/server.crt`: accepted as grpcio accepts them, and refused for another certificate
//! with the same CN or a host name the certificate does not carry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod support;

use std::path::Path;

use support::certs::{self, Style};
use support::{orchestrator_with, Cli, Orchestrator, Run};

/// A `leotest user get admin` trusting `trust`, with extra global options.
fn get_admin(o: &Orchestrator, trust: &Path, extra: &[&str]) -> Run {
    let trust = trust.to_string_lossy().to_string();
    let mut args = vec!["--ca-cert", trust.as_str(), "--retries", "0", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["user", "--action=get", "--id=admin"]);
    o.leotest(&args)
}

#[track_caller]
fn assert_refused(run: &Run, what: &str) {
    assert_eq!(run.code, 3, "{what} must be refused (exit 3): {run:#?}");
    assert!(
        run.stdout.contains("invalid peer certificate"),
        "{what}: the error says why: {run:#?}"
    );
}

/// Serves a certificate of `style`, checks `leotest` trusts it, and refuses an impostor of
/// the same style and CN and a name the certificate does not carry.
fn cli_over(style: Style, version: &str) {
    if !certs::openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = certs::make(&dir.path().join("certs"), "server", style, 4096);
    assert_eq!(certs::version_line(&pair.cert), version, "{style:?} recipe");
    let other = tempfile::tempdir().expect("tempdir");
    let impostor = certs::make(other.path(), "impostor", style, 2048);
    let o = orchestrator_with(dir, &pair.cert, &pair.key);

    let run = get_admin(&o, &pair.trust, &[]);
    run.expect(0);
    assert_eq!(run.json()["name"], "LEOScope Admin", "{run:#?}");

    assert_refused(
        &get_admin(&o, &impostor.trust, &[]),
        "another certificate with CN=localhost",
    );
    assert_refused(
        &get_admin(&o, &pair.trust, &["--tls-domain", "other.example"]),
        "a name the certificate does not carry",
    );
}

#[test]
fn original_generate_certs_sh_v1_certificate() {
    cli_over(Style::OriginalV1, "Version: 1 (0x0)");
}

#[test]
fn openssl_one_liner_ca_true_certificate() {
    cli_over(Style::OneLinerCa, "Version: 3 (0x2)");
}

#[test]
fn self_signed_leaf_with_san() {
    cli_over(Style::LeafWithSan, "Version: 3 (0x2)");
}

#[test]
fn leaf_issued_by_a_trusted_ca() {
    cli_over(Style::CaIssued, "Version: 3 (0x2)");
}

/// The name is checked like gRPC does: by IP SAN for an IP, and a CN never stands for an IP.
#[test]
fn ip_names_need_an_ip_san() {
    if !certs::openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let v1 = certs::make(&dir.path().join("certs"), "server", Style::OriginalV1, 2048);
    let o = orchestrator_with(dir, &v1.cert, &v1.key);
    assert_refused(
        &get_admin(&o, &v1.trust, &["--tls-domain", "127.0.0.1"]),
        "an IP name against a CN-only certificate",
    );
    drop(o);

    let dir = tempfile::tempdir().expect("tempdir");
    let leaf = certs::make(
        &dir.path().join("certs"),
        "server",
        Style::LeafWithSan,
        2048,
    );
    let o = orchestrator_with(dir, &leaf.cert, &leaf.key);
    get_admin(&o, &leaf.trust, &["--tls-domain", "127.0.0.1"]).expect(0);
}
