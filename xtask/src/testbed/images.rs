//! The base images of the `mongo` and `ha` profiles, made here because no image can be pulled:
//! a minimal Debian bookworm made with debootstrap from the mirror this machine's apt uses (or
//! `$DEBIAN_MIRROR`) and `docker import`ed once (kept between runs), and nx-27017 staged with
//! pip for that base's CPython 3.11.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};

use super::{log, Testbed, STAGE};

/// Python 3.11 for the `mongo` profile's server.
const PYTHON_BASE: &str = "leotest-rs/python-base:bookworm";
/// HAProxy for the `ha` profile's load balancer.
const HAPROXY_BASE: &str = "leotest-rs/haproxy-base:bookworm";
/// The Debian release of both bases.
const SUITE: &str = "bookworm";
/// The one-line apt sources, then the directory of the others (`*.list`, deb822 `*.sources`).
const APT_SOURCES: &str = "/etc/apt/sources.list";
const APT_SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// The first mirror serving `suite` in an apt sources file: a one-line `deb [opts] URI SUITE
/// COMPONENTS...` or a deb822 stanza with `URIs:` and `Suites:` (the first URI). Comment lines
/// are skipped; a blank line ends a stanza. (What the awk of scripts/testbed.sh read.)
pub(crate) fn mirror_in(sources: &str, suite: &str) -> Option<String> {
    let stanza = |uris: &[&str], suites: &[&str]| {
        (!uris.is_empty() && suites.contains(&suite)).then(|| uris[0].to_string())
    };
    let (mut uris, mut suites): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for line in sources.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.first() {
            None => {
                if let Some(m) = stanza(&uris, &suites) {
                    return Some(m);
                }
                uris.clear();
                suites.clear();
            }
            Some(&"deb") => {
                // `[arch=amd64 signed-by=...]` may span fields: the URI follows the one
                // ending in `]`.
                let mut i = 1;
                if fields.get(1).is_some_and(|f| f.starts_with('[')) {
                    while i < fields.len() && !fields[i].ends_with(']') {
                        i += 1;
                    }
                    i += 1;
                }
                if fields.get(i + 1) == Some(&suite) {
                    return fields.get(i).map(|u| u.to_string());
                }
            }
            Some(key) if key.eq_ignore_ascii_case("uris:") => uris = fields[1..].to_vec(),
            Some(key) if key.eq_ignore_ascii_case("suites:") => suites = fields[1..].to_vec(),
            Some(_) => {}
        }
    }
    stanza(&uris, &suites)
}

/// The apt sources files in the order apt reads them: sources.list, then the directory's
/// `*.list`, then its `*.sources`, each sorted by name.
fn apt_source_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(APT_SOURCES)];
    let mut dir: Vec<PathBuf> = std::fs::read_dir(APT_SOURCES_DIR)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dir.sort();
    for ext in ["list", "sources"] {
        files.extend(
            dir.iter()
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .cloned(),
        );
    }
    files
}

/// The Debian mirror that serves `suite` to this machine's apt; `$DEBIAN_MIRROR` overrides it
/// (for every suite, as before).
fn debian_mirror(tb: &Testbed, suite: &str) -> Option<String> {
    if let Some(m) = tb.var("DEBIAN_MIRROR") {
        return Some(m);
    }
    apt_source_files().iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        mirror_in(&text, suite)
    })
}

/// A fresh directory `$TMPDIR/leotest-base.XXXXXX` (what `mktemp -d` made).
fn temp_dir(tb: &Testbed) -> Result<PathBuf> {
    let base = PathBuf::from(tb.var("TMPDIR").unwrap_or_else(|| "/tmp".into()));
    for _ in 0..16 {
        let suffix = super::secrets::hex(&super::secrets::random_bytes(3)?);
        let dir = base.join(format!("leotest-base.{suffix}"));
        match std::fs::DirBuilder::new().create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", dir.display())),
        }
    }
    bail!("no free temporary directory name in {}", base.display())
}

/// `path` plus `.log`: the debootstrap log next to its root.
fn log_path(root: &Path) -> PathBuf {
    let mut p = root.as_os_str().to_os_string();
    p.push(".log");
    PathBuf::from(p)
}

/// Removes `root` and its log, whatever is left of them.
fn remove_root(root: &Path) {
    // Best effort, as `rm -rf` was: a leftover in $TMPDIR must not fail the build.
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_file(log_path(root));
}

/// Removes what a base image does not need: apt's caches and lists (the directories stay),
/// documentation, manuals and locales.
fn slim(root: &Path) {
    for dir in ["var/cache/apt", "var/lib/apt/lists"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            for e in entries.flatten() {
                let p = e.path();
                // Best effort, as `rm -rf` was.
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
    for dir in ["usr/share/doc", "usr/share/man", "usr/share/locale"] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
}

/// A minimal Debian bookworm with `packages` (comma-separated) as `image`, whose `CMD` is
/// `cmd` (a JSON array); nothing when the image exists.
async fn debootstrap_image(tb: &Testbed, image: &str, packages: &str, cmd: &str) -> Result<()> {
    let mut inspect = tb.cmd("docker");
    inspect
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if super::succeeds(inspect).await {
        return Ok(());
    }
    super::apt::apt_install(tb, &["debootstrap"]).await?;
    let Some(mirror) = debian_mirror(tb, SUITE) else {
        log(format!(
            "no apt source for Debian {SUITE} found in /etc/apt: set DEBIAN_MIRROR=http://your.mirror/debian"
        ));
        bail!("no Debian mirror for {image}");
    };
    let root = temp_dir(tb)?;
    let result = make_root(tb, image, packages, &mirror, &root).await;
    let result = match result {
        Ok(()) => import(tb, image, cmd, &root).await,
        Err(e) => Err(e),
    };
    remove_root(&root);
    result
}

/// debootstrap into `root` (its output in `root.log`), security updates, then [`slim`].
async fn make_root(
    tb: &Testbed,
    image: &str,
    packages: &str,
    mirror: &str,
    root: &Path,
) -> Result<()> {
    let log_file = log_path(root);
    let out = std::fs::File::create(&log_file)
        .with_context(|| format!("creating {}", log_file.display()))?;
    log(format!("making {image} with debootstrap (about a minute)"));
    let mut debootstrap = tb.cmd("debootstrap");
    debootstrap
        .args(["--variant=minbase", &format!("--include={packages}"), SUITE])
        .arg(root)
        .arg(mirror)
        .stdout(out.try_clone().context("log file")?)
        .stderr(out);
    if super::run(debootstrap, "debootstrap").await.is_err() {
        let text = std::fs::read_to_string(&log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("{}", lines[lines.len().saturating_sub(20)..].join("\n"));
        bail!("debootstrap of {image} failed");
    }
    // Security updates as well, when this machine's apt knows where they come from.
    let security_suite = format!("{SUITE}-security");
    if let Some(security) = debian_mirror(tb, &security_suite) {
        let list = root.join("etc/apt/sources.list.d/security.list");
        std::fs::write(&list, format!("deb {security} {security_suite} main\n"))
            .with_context(|| format!("writing {}", list.display()))?;
        if security_updates(tb, root, &log_file).await.is_err() {
            log(format!(
                "security updates for {image} failed (see {}): continuing without",
                log_file.display()
            ));
        }
    }
    slim(root);
    Ok(())
}

/// `apt-get update && apt-get upgrade` inside `root`, appending to `log_file`.
async fn security_updates(tb: &Testbed, root: &Path, log_file: &Path) -> Result<()> {
    for args in [
        &["apt-get", "update", "-qq"][..],
        &["apt-get", "upgrade", "-y", "-qq"],
    ] {
        let out = std::fs::OpenOptions::new()
            .append(true)
            .open(log_file)
            .with_context(|| format!("opening {}", log_file.display()))?;
        let mut chroot = tb.cmd("chroot");
        chroot
            .arg(root)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(out.try_clone().context("log file")?)
            .stderr(out);
        super::run(chroot, &format!("chroot {}", args.join(" "))).await?;
    }
    Ok(())
}

/// `tar -C root -c . | docker import -c "CMD cmd" - image`.
async fn import(tb: &Testbed, image: &str, cmd: &str, root: &Path) -> Result<()> {
    let mut tar = tokio::process::Command::from(tb.cmd("tar"));
    let mut tar = tar
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running tar")?;
    let tar_out: Stdio = tar
        .stdout
        .take()
        .context("tar's stdout")?
        .try_into()
        .context("tar's stdout")?;
    let mut import = tb.cmd("docker");
    import
        .args(["import", "-c", &format!("CMD {cmd}"), "-", image])
        .stdin(tar_out)
        .stdout(Stdio::null());
    let imported = super::run(import, "docker import").await;
    let tarred = tar.wait().await.context("waiting for tar")?;
    imported?;
    if !tarred.success() {
        bail!("tar of {}: {tarred}", root.display());
    }
    Ok(())
}

/// Python 3.11 for the `mongo` profile's server.
async fn python_base(tb: &Testbed) -> Result<()> {
    debootstrap_image(
        tb,
        PYTHON_BASE,
        "python3-minimal,libpython3.11-stdlib",
        r#"["python3"]"#,
    )
    .await
}

/// HAProxy for the `ha` profile's load balancer.
pub(crate) async fn haproxy_base(tb: &Testbed) -> Result<()> {
    debootstrap_image(tb, HAPROXY_BASE, "haproxy", r#"["haproxy", "-v"]"#).await
}

/// nx-27017 and its pure-Python/manylinux dependencies, for the base's CPython 3.11, in
/// target/testbed/nx-27017 (the `mongo` image's build context copies it).
pub(crate) async fn stage_mongo(tb: &Testbed) -> Result<()> {
    python_base(tb).await?;
    let version = tb.var("NX_27017_VERSION").unwrap_or_else(|| "0.8.1".into());
    log(format!("staging nx-27017=={version}"));
    let target = Path::new(STAGE).join("nx-27017");
    if target.exists() {
        std::fs::remove_dir_all(&target).with_context(|| format!("rm -rf {}", target.display()))?;
    }
    let mut pip = tb.cmd("python3");
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--target",
    ])
    .arg(&target)
    .args([
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux2014_x86_64",
        &format!("nx-27017=={version}"),
    ]);
    super::run(pip, "pip install nx-27017").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_sources_with_and_without_options() {
        let s = "# deb http://commented.example/debian bookworm main\n\
                 deb-src http://src.example/debian bookworm main\n\
                 deb http://other.example/debian bullseye main\n\
                 deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://a.example/debian bookworm main\n\
                 deb http://b.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(s, "bookworm").as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(
            mirror_in(s, "bullseye").as_deref(),
            Some("http://other.example/debian")
        );
        assert_eq!(mirror_in(s, "trixie"), None);
        let one = "deb [trusted=yes] http://c.example/debian bookworm-security main";
        assert_eq!(
            mirror_in(one, "bookworm-security").as_deref(),
            Some("http://c.example/debian")
        );
        assert_eq!(mirror_in(one, "bookworm"), None);
    }

    #[test]
    fn deb822_stanzas_match_on_a_whole_suite() {
        let s = "Types: deb\n\
                 # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
                 URIs: http://deb.debian.org/debian http://second.example/debian\n\
                 Suites: bookworm bookworm-updates\n\
                 Components: main\n\
                 \n\
                 types: deb\n\
                 uris: http://deb.debian.org/debian-security\n\
                 suites: bookworm-security\n";
        assert_eq!(
            mirror_in(s, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(
            mirror_in(s, "bookworm-security").as_deref(),
            Some("http://deb.debian.org/debian-security")
        );
        assert_eq!(mirror_in(s, "bookworm-update"), None);
        assert_eq!(mirror_in(s, "updates"), None);
    }

    #[test]
    fn a_comment_does_not_end_a_stanza_and_a_blank_line_does() {
        let s = "URIs: http://a.example/debian\n# note\nSuites: bookworm\n";
        assert_eq!(
            mirror_in(s, "bookworm").as_deref(),
            Some("http://a.example/debian")
        );
        let s = "URIs: http://a.example/debian\n  \nSuites: bookworm\n";
        assert_eq!(mirror_in(s, "bookworm"), None);
        assert_eq!(mirror_in("URIs:\nSuites: bookworm\n", "bookworm"), None);
        assert_eq!(mirror_in("", "bookworm"), None);
    }

    #[test]
    fn the_log_is_next_to_the_root() {
        assert_eq!(
            log_path(Path::new("/tmp/leotest-base.abc")),
            PathBuf::from("/tmp/leotest-base.abc.log")
        );
    }
}
