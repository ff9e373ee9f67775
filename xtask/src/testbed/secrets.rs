//! The testbed's admin credentials. The orchestrator refuses the original's public default
//! admin token on a listener other containers can reach, so each testbed gets a random one in
//! target/testbed-secrets/<project>/admin-token (directory 0700, file 0600), kept until `down`;
//! `LEOTEST_ADMIN_TOKEN` set by the caller wins and is not written anywhere. After `up`, the
//! testbed's CA is copied next to it and a ready `leotest login` line is logged.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

use super::{log, Testbed};

/// Where the orchestrator keeps the certificate it made on first start (the testbed's CA).
const ORCHESTRATOR_CERT: &str = "/var/lib/leotest/certs/server.crt";

/// `n` bytes from the kernel's random source.
pub(crate) fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf)
}

/// Lowercase hex, two digits a byte (what `od -An -tx1 | tr -d ' \n'` printed).
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token in `dir/admin-token`, made first (32 random bytes in hex) unless the file has
/// something in it. Written to a temporary file and renamed, so a reader never sees half.
fn stored_token(dir: &Path) -> Result<String> {
    let file = dir.join("admin-token");
    if !std::fs::metadata(&file).is_ok_and(|m| m.len() > 0) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("mkdir -p {}", dir.display()))?;
        let tmp = dir.join("admin-token.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(hex(&random_bytes(32)?).as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("renaming {}", tmp.display()))?;
    }
    let token =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(token.trim_end_matches('\n').to_string())
}

/// The caller's `LEOTEST_ADMIN_TOKEN`, else the testbed's stored one, for every later command.
pub(crate) fn admin_token(tb: &mut Testbed) -> Result<()> {
    if tb.var("LEOTEST_ADMIN_TOKEN").is_none() {
        let dir = tb.secrets_dir();
        let token = stored_token(&dir)?;
        log(format!("admin token in {}/admin-token", dir.display()));
        tb.set("LEOTEST_ADMIN_TOKEN", &token);
    }
    Ok(())
}

/// The `leotest login` line for the admin: `token_file` when the token is in one, else how
/// to pass `$LEOTEST_ADMIN_TOKEN` on stdin.
pub(crate) fn login_line(port: &str, ca: &Path, token_file: Option<&Path>) -> String {
    let token = match token_file {
        Some(f) => format!("--access-token-file {}", f.display()),
        None => "(token on stdin: echo \"$LEOTEST_ADMIN_TOKEN\" | ...)".to_string(),
    };
    format!(
        "log in as admin: leotest login --grpc-host 127.0.0.1 --grpc-port {port} --ca-cert {} --userid admin {token}",
        ca.display()
    )
}

/// Copies the testbed's CA out of the orchestrator and logs [`login_line`]. Informational:
/// `up` succeeds without it.
pub(crate) async fn print_login(tb: &Testbed) -> Result<()> {
    let port = if tb.ha() {
        tb.var("LEOTEST_LB_PORT").unwrap_or_else(|| "50052".into())
    } else {
        tb.var("LEOTEST_HOST_PORT")
            .unwrap_or_else(|| "50051".into())
    };
    let dir = std::env::current_dir()
        .context("the current directory")?
        .join(tb.secrets_dir());
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    let ca = dir.join("ca.crt");
    let id = tb.service_id("orchestrator").await.unwrap_or_default();
    let mut cp = tb.cmd("docker");
    cp.arg("cp")
        .arg(format!("{id}:{ORCHESTRATOR_CERT}"))
        .arg(&ca)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if !super::succeeds(cp).await {
        log("could not copy the testbed's CA out of the orchestrator");
        return Ok(());
    }
    let token_file = dir.join("admin-token");
    let token_file = std::fs::metadata(&token_file)
        .is_ok_and(|m| m.len() > 0)
        .then_some(token_file);
    log(login_line(&port, &ca, token_file.as_deref()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&random_bytes(32).unwrap()).len(), 64);
    }

    #[test]
    fn a_token_is_made_once_private_and_then_kept() {
        let dir = std::env::temp_dir().join(format!("xtask-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let secrets = dir.join("nested/project");
        let first = stored_token(&secrets).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(stored_token(&secrets).unwrap(), first);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&secrets), 0o700);
        assert_eq!(mode(&secrets.join("admin-token")), 0o600);
        assert!(!secrets.join("admin-token.tmp").exists());
        // An empty file (an interrupted older write) is replaced.
        std::fs::write(secrets.join("admin-token"), "").unwrap();
        assert_ne!(stored_token(&secrets).unwrap(), "");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_login_line_names_the_token_file_or_stdin() {
        let ca = Path::new("/w/target/testbed-secrets/p/ca.crt");
        let file = Path::new("/w/target/testbed-secrets/p/admin-token");
        assert_eq!(
            login_line("50051", ca, Some(file)),
            "log in as admin: leotest login --grpc-host 127.0.0.1 --grpc-port 50051 \
             --ca-cert /w/target/testbed-secrets/p/ca.crt --userid admin \
             --access-token-file /w/target/testbed-secrets/p/admin-token"
        );
        assert!(login_line("50052", ca, None).ends_with(
            "--grpc-port 50052 --ca-cert /w/target/testbed-secrets/p/ca.crt --userid admin \
             (token on stdin: echo \"$LEOTEST_ADMIN_TOKEN\" | ...)"
        ));
    }
}
