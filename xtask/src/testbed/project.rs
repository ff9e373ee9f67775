//! One testbed: its compose project, the environment its commands get (the caller's plus
//! what the options set, as the script exported it), its files, and `up`, `down` and `link`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use super::{build, health, log, run, secrets, sites, LinkAction, Opts, Sites, HEALTHY_WITHIN};
use crate::compose::Compose;

/// The trusted proxies of an `ha` testbed unless the caller names them: the private ranges
/// Docker's networks come from (the balancer's address is in one of them).
const DEFAULT_TRUSTED_PROXIES: &str = "172.16.0.0/12,192.168.0.0/16,10.0.0.0/8";

/// The profile the options chose (`--ha` includes `--mongo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Profile {
    /// The caller's `COMPOSE_PROFILES`, if any.
    Caller,
    Mongo,
    Ha,
}

impl Profile {
    pub(super) fn of(opts: &Opts) -> Self {
        if opts.ha {
            Self::Ha
        } else if opts.mongo {
            Self::Mongo
        } else {
            Self::Caller
        }
    }
}

/// One testbed: its compose project, the environment of its commands and its sites.
#[derive(Debug)]
pub(crate) struct Testbed {
    /// The compose command and the environment of every command.
    pub(super) compose: Compose,
    /// `COMPOSE_PROJECT_NAME`.
    pub(super) project: String,
    /// The sites of a multi-site testbed.
    pub(super) sites: Option<Sites>,
}

impl Testbed {
    /// The testbed of `base`'s environment (the caller's plus what a task set) and `profile`:
    /// what the script exported, set for every command.
    pub(super) fn new(base: Compose, profile: Profile) -> Self {
        let mut tb = Self {
            compose: base,
            project: String::new(),
            sites: None,
        };
        tb.project = tb
            .var("COMPOSE_PROJECT_NAME")
            .unwrap_or_else(|| "leotest-rs".into());
        let project = tb.project.clone();
        tb.set("COMPOSE_PROJECT_NAME", &project);
        match profile {
            Profile::Caller => {}
            Profile::Mongo => {
                tb.set("COMPOSE_PROFILES", "mongo");
                tb.set("LEOTEST_STORE", "mongo");
            }
            Profile::Ha => {
                // Replicas share the MongoDB-wire database; the kernel service and init use
                // the balancer.
                tb.set("COMPOSE_PROFILES", "mongo,ha");
                tb.set("LEOTEST_STORE", "mongo");
                tb.set("LEOTEST_ORCHESTRATOR_HOST", "orchestrator-lb");
                let proxies = tb
                    .var("LEOTEST_TRUSTED_PROXIES")
                    .unwrap_or_else(|| DEFAULT_TRUSTED_PROXIES.into());
                tb.set("LEOTEST_TRUSTED_PROXIES", &proxies);
            }
        }
        tb
    }

    /// `$key` as the testbed's commands see it; unset and empty both mean none.
    pub(super) fn var(&self, key: &str) -> Option<String> {
        self.compose.var(key).filter(|v| !v.is_empty())
    }

    /// Sets `key` for every later command.
    pub(super) fn set(&mut self, key: &str, value: &str) {
        self.compose.set(key, value);
    }

    /// `program` with the testbed's environment.
    pub(super) fn cmd(&self, program: &str) -> Command {
        self.compose.program(program)
    }

    /// Whether the `ha` profile is on.
    pub(super) fn ha(&self) -> bool {
        has_profile(self.var("COMPOSE_PROFILES").as_deref(), "ha")
    }

    /// target/testbed-secrets/<project>: the admin token and the CA.
    pub(super) fn secrets_dir(&self) -> PathBuf {
        PathBuf::from("target/testbed-secrets").join(&self.project)
    }

    /// target/testbed-sites/<project>.yml: the multi-site override (scripts/e2e-sites.sh
    /// reads it by that name).
    pub(super) fn sites_file(&self) -> PathBuf {
        PathBuf::from("target/testbed-sites").join(format!("{}.yml", self.project))
    }

    /// Every later compose command reads the sites override too, when there is one.
    pub(super) fn use_sites_file(&mut self) {
        let file = self.sites_file();
        if file.is_file() {
            self.set(
                "COMPOSE_FILE",
                &format!("docker-compose.yml:{}", file.display()),
            );
        }
    }

    /// The id of `service`'s container (`compose ps -q`); empty when it has none.
    pub(super) async fn service_id(&self, service: &str) -> Result<String> {
        health::service_id(self, service).await
    }

    /// Writes the sites override (if any), builds, starts the testbed and waits until it
    /// is healthy; then logs how to log in.
    pub(super) async fn up(&mut self) -> Result<()> {
        if let Some(s) = self.sites {
            let file = self.sites_file();
            let network = self
                .var("LEOTEST_NETWORK")
                .unwrap_or_else(|| "leotest-net".into());
            let orchestrator = self
                .var("LEOTEST_ORCHESTRATOR_HOST")
                .unwrap_or_else(|| "orchestrator".into());
            let text = sites::sites_compose(s.nodes, s.link.as_str(), &network, &orchestrator);
            sites::write(&file, &text)?;
            self.use_sites_file();
            log(format!(
                "{} sites, each behind a '{}' link ({})",
                s.nodes,
                s.link.as_str(),
                file.display()
            ));
        }
        build::build(self).await?;
        secrets::admin_token(self)?;
        run(self.compose.command(["up", "-d"]), "compose up").await?;
        health::wait_healthy(self, HEALTHY_WITHIN).await?;
        if self.ha() {
            let port = self
                .var("LEOTEST_LB_PORT")
                .unwrap_or_else(|| "50052".into());
            log(format!("load balancer on 127.0.0.1:{port}"));
        }
        let store = self
            .var("LEOTEST_STORE")
            .unwrap_or_else(|| "embedded".into());
        log(format!(
            "testbed is up (store: {store}): see README for what to try"
        ));
        secrets::print_login(self).await
    }

    /// Every profile down (so that a mongo, ha or multi-site testbed goes too), then its
    /// admin token, CA and sites file.
    pub(super) async fn down(&mut self) -> Result<()> {
        self.use_sites_file();
        let mut down = self.compose.command(["down", "-v", "--remove-orphans"]);
        down.env("COMPOSE_PROFILES", "mongo,ha,single-node");
        run(down, "compose down").await?;
        let secrets = self.secrets_dir();
        if secrets.exists() {
            std::fs::remove_dir_all(&secrets)
                .with_context(|| format!("rm -rf {}", secrets.display()))?;
        }
        let file = self.sites_file();
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("rm {}", file.display()))?;
        }
        Ok(())
    }

    /// Cuts (SIGUSR1) or restores (SIGUSR2) site `site`'s uplink.
    pub(super) async fn link(&mut self, action: LinkAction, site: &str) -> Result<()> {
        self.use_sites_file();
        let id = self
            .service_id(&format!("link-{site}"))
            .await
            .unwrap_or_default();
        if id.is_empty() {
            bail!("no site {site} in {}", self.project);
        }
        let (signal, what) = match action {
            LinkAction::Cut => ("USR1", "cut"),
            LinkAction::Restore => ("USR2", "restore"),
        };
        let mut kill = self.cmd("docker");
        kill.args(["kill", "-s", signal, &id]).stdout(Stdio::null());
        run(kill, "docker kill").await?;
        log(format!("site {site} uplink: {what}"));
        Ok(())
    }
}

/// Whether `profiles` (`COMPOSE_PROFILES`, comma-separated) includes `profile`.
pub(super) fn has_profile(profiles: Option<&str>, profile: &str) -> bool {
    profiles.is_some_and(|p| p.split(',').any(|p| p == profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_export_what_the_script_exported() {
        let tb = Testbed::new(
            Compose::new(vec![("COMPOSE_PROJECT_NAME".into(), "p".into())]),
            Profile::Ha,
        );
        assert_eq!(tb.project, "p");
        assert_eq!(tb.var("COMPOSE_PROFILES").as_deref(), Some("mongo,ha"));
        assert_eq!(tb.var("LEOTEST_STORE").as_deref(), Some("mongo"));
        assert_eq!(
            tb.var("LEOTEST_ORCHESTRATOR_HOST").as_deref(),
            Some("orchestrator-lb")
        );
        assert!(tb.ha());
        assert_eq!(tb.secrets_dir(), PathBuf::from("target/testbed-secrets/p"));
        assert_eq!(tb.sites_file(), PathBuf::from("target/testbed-sites/p.yml"));
        let tb = Testbed::new(
            Compose::new(vec![("COMPOSE_PROJECT_NAME".into(), "p".into())]),
            Profile::Mongo,
        );
        assert_eq!(tb.var("COMPOSE_PROFILES").as_deref(), Some("mongo"));
        assert!(!tb.ha());
        let tb = Testbed::new(
            Compose::new(vec![("COMPOSE_PROJECT_NAME".into(), String::new())]),
            Profile::Caller,
        );
        assert_eq!(tb.project, "leotest-rs");
    }

    #[test]
    fn ha_is_a_whole_profile_name() {
        assert!(has_profile(Some("mongo,ha"), "ha"));
        assert!(has_profile(Some("ha"), "ha"));
        assert!(!has_profile(Some("mongo,hax"), "ha"));
        assert!(!has_profile(Some(""), "ha"));
        assert!(!has_profile(None, "ha"));
    }
}
