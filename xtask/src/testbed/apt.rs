//! The host's Debian packages the testbed needs (busybox-static for the images' shell and
//! `nc`, debootstrap for the base images), installed with apt-get when dpkg does not know them.

use anyhow::Result;

use super::{log, Testbed};

/// Installs those of `packages` dpkg does not know as installed (apt-get, quietly).
pub(crate) async fn apt_install(tb: &Testbed, packages: &[&str]) -> Result<()> {
    let mut missing = Vec::new();
    for p in packages {
        let mut dpkg = tb.cmd("dpkg");
        dpkg.args(["-s", p])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if !super::succeeds(dpkg).await {
            missing.push(*p);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    log(format!("installing {}", missing.join(" ")));
    let mut update = tb.cmd("apt-get");
    update.args(["update", "-qq"]);
    super::run(update, "apt-get update").await?;
    let mut install = tb.cmd("apt-get");
    install
        .args(["install", "-y", "-qq"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::process::Stdio::null());
    super::run(install, "apt-get install").await
}
