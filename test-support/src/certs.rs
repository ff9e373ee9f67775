//! Server certificates in the styles LeoTest deployments use, made with the `openssl` CLI the
//! way their recipes do. Shared by the client and kernel-service TLS tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// How a server certificate was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The original's `certs/generate_certs.sh`: RSA 4096, `openssl x509 -req -signkey`
    /// without extensions, so X.509 v1, CN=localhost, no SAN.
    OriginalV1,
    /// `openssl req -x509 -newkey rsa:4096 -nodes -subj /CN=localhost`: v3 with
    /// `basicConstraints CA:TRUE`, no SAN.
    OneLinerCa,
    /// A self-signed leaf: v3, `CA:FALSE`, SAN `DNS:localhost, IP:127.0.0.1`.
    LeafWithSan,
    /// A leaf with SAN issued by a separate CA; the client trusts only the CA.
    CaIssued,
}

/// Every style, for tests that try them all.
pub const ALL: [Style; 4] = [
    Style::OriginalV1,
    Style::OneLinerCa,
    Style::LeafWithSan,
    Style::CaIssued,
];

/// The files of one style: what the server presents, and what the client trusts.
#[derive(Debug, Clone)]
pub struct Pair {
    /// PEM certificate the server presents.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// The `--ca-cert` for clients: the certificate itself, or its CA.
    pub trust: PathBuf,
}

/// Whether openssl can be run; under `CI=true` its absence fails the test instead.
pub fn openssl_available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("openssl is required for the TLS tests (CI=true)");
    }
    if !ok {
        eprintln!("openssl not installed: TLS certificate-style test skipped");
    }
    ok
}

/// Runs `openssl ARGS` in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `openssl x509 -req -signkey` as the original's `certs/generate_certs.sh` runs it: the
/// request `csr` self-signed with `key` into `crt`, no extensions (so X.509 v1).
pub fn sign_v1(dir: &Path, csr: &str, key: &str, crt: &str) {
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "365",
            "-in",
            csr,
            "-signkey",
            key,
            "-set_serial",
            "01",
            "-out",
            crt,
        ],
    );
}

/// Makes a certificate of `style` (RSA `bits` where the recipe uses RSA) in `dir/name.*`.
pub fn make(dir: &Path, name: &str, style: Style, bits: u32) -> Pair {
    std::fs::create_dir_all(dir).expect("mkdir");
    let crt = format!("{name}.crt");
    let key = format!("{name}.key");
    let bits = bits.to_string();
    let rsa = format!("rsa:{bits}");
    match style {
        Style::OriginalV1 => {
            let csr = format!("{name}.csr");
            openssl(dir, &["genrsa", "-out", &key, &bits]);
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-key",
                    &key,
                    "-out",
                    &csr,
                    "-subj",
                    "/C=GB/ST=Surrey/O=UoS/CN=localhost",
                ],
            );
            sign_v1(dir, &csr, &key, &crt);
            openssl(dir, &["rsa", "-in", &key, "-out", &key]);
        }
        Style::OneLinerCa => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                &rsa,
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &key,
                "-out",
                &crt,
            ],
        ),
        Style::LeafWithSan => openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
                &key,
                "-out",
                &crt,
            ],
        ),
        Style::CaIssued => {
            let ca_crt = format!("{name}-ca.crt");
            let ca_key = format!("{name}-ca.key");
            let csr = format!("{name}.csr");
            let ext = format!("{name}.ext");
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=LeoTest test CA",
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca_crt,
                ],
            );
            openssl(
                dir,
                &[
                    "req",
                    "-new",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ],
            );
            std::fs::write(
                dir.join(&ext),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n\
                 basicConstraints=critical,CA:FALSE\n\
                 extendedKeyUsage=serverAuth\n",
            )
            .expect("ext file");
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-set_serial",
                    "02",
                    "-days",
                    "30",
                    "-extfile",
                    &ext,
                    "-out",
                    &crt,
                ],
            );
            return Pair {
                cert: dir.join(&crt),
                key: dir.join(&key),
                trust: dir.join(&ca_crt),
            };
        }
    }
    Pair {
        cert: dir.join(&crt),
        key: dir.join(&key),
        trust: dir.join(&crt),
    }
}

/// The certificate's X.509 version line, e.g. `Version: 1 (0x0)`, to check a recipe's output.
pub fn version_line(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509 -text");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with("Version:"))
        .unwrap_or("")
        .trim()
        .to_string()
}
