//! The testbed segmentation check (issue 21 item 6). From a sample experiment container,
//! every address of every running container of the compose project and every name the
//! testbed uses is probed on every port the testbed listens on; the only one that may answer
//! is the kernel service's port 9000 on the experiment network. Everything else must be
//! refused, unroutable or unresolvable. Bounded: each probe gives up after 2 s, all run at
//! once inside the probe container (busybox nc).
//!
//! The end-to-end tests (e2e_testbed, e2e_ha, e2e_sites) record its two checks in their
//! reports; `cargo xtask segmentation` runs it alone against a running testbed.

use anyhow::{Context, Result};
use bollard::Docker;

use crate::checks::Checks;
use crate::compose::Compose;
use crate::docker::{self, Container};

/// Ports the testbed listens on anywhere: kernel service, its metrics, the orchestrator's
/// gRPC and metrics, the balancer's status page, MongoDB. `SEGMENTATION_PORTS` overrides.
const PORTS: &str = "9000 9100 9101 50051 8404 27017";

/// Names resolvable on the experiment network only for its own members.
const NAMES: [&str; 6] = [
    "orchestrator",
    "orchestrator-2",
    "orchestrator-lb",
    "mongo",
    "init",
    "kernel-metrics",
];

/// The one port an experiment may reach (on the kernel service's experiment address).
const KERNEL_PORT: &str = "9000";

/// Runs each `label host port` line of stdin as a probe in the background; prints the ones
/// that connected. busybox nc: `-e /bin/true` exits 0 as soon as the connection is made.
const PROBE_SCRIPT: &str = "while read -r l h p; do (nc -w 2 \"$h\" \"$p\" -e /bin/true \
     >/dev/null 2>&1 && echo \"open $l $h:$p\") & done; wait";

/// One probe: what is reported (service or `name:NAME`), host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    label: String,
    host: String,
    port: String,
}

/// The ports to probe: `SEGMENTATION_PORTS` (space-separated) or the testbed's.
pub(crate) fn ports() -> Vec<String> {
    let ports = std::env::var("SEGMENTATION_PORTS").unwrap_or_else(|_| PORTS.to_string());
    ports.split_whitespace().map(str::to_string).collect()
}

/// Every (address or name) x port, containers first in the engine's order.
pub(crate) fn targets(containers: &[Container], ports: &[String]) -> Vec<Target> {
    let by_address = containers.iter().flat_map(|c| {
        c.addresses
            .iter()
            .map(move |(_, ip)| (c.service.clone(), ip.clone()))
    });
    let by_name = NAMES.iter().map(|n| (format!("name:{n}"), n.to_string()));
    by_address
        .chain(by_name)
        .flat_map(|(label, host)| {
            ports.iter().map(move |port| Target {
                label: label.clone(),
                host: host.clone(),
                port: port.clone(),
            })
        })
        .collect()
}

/// The probe script's input: `label host port` lines.
fn probe_input(targets: &[Target]) -> String {
    targets
        .iter()
        .map(|t| format!("{} {} {}\n", t.label, t.host, t.port))
        .collect()
}

/// What a segmentation run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Containers probed from.
    pub(crate) probe: String,
    /// Number of probes made.
    pub(crate) probes: usize,
    /// The kernel service's address on the experiment network (empty when it has none).
    pub(crate) kernel_address: String,
    /// The one line that must be among the answers: `open KERNEL-SERVICE IP:9000`.
    pub(crate) expected: String,
    /// Every answer of the probe container (`open LABEL HOST:PORT` lines, or its errors).
    pub(crate) answers: Vec<String>,
}

impl Outcome {
    fn new(probe: &str, probes: usize, kernel: &str, kernel_address: &str, output: &str) -> Self {
        Self {
            probe: probe.to_string(),
            probes,
            kernel_address: kernel_address.to_string(),
            expected: format!("open {kernel} {kernel_address}:{KERNEL_PORT}"),
            answers: output
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    /// Every answer but the expected one: what must not be there.
    pub(crate) fn unexpected(&self) -> Vec<&str> {
        self.answers
            .iter()
            .filter(|a| **a != self.expected)
            .map(String::as_str)
            .collect()
    }

    /// Both checks, under the names the bash harness used.
    pub(crate) fn record(&self, checks: &mut Checks) {
        checks.log(&format!(
            "security_segmentation: {} probes from {}",
            self.probes, self.probe
        ));
        checks.check(
            &format!(
                "security_segmentation: {} reaches the kernel service on {}:{KERNEL_PORT}",
                self.probe, self.kernel_address
            ),
            &self.expected,
            &self.answers.join("\n"),
        );
        checks.check_empty(
            &format!(
                "security_segmentation: nothing else of the testbed answers {}",
                self.probe
            ),
            &self.unexpected().join("\n"),
        );
    }
}

/// Probes from `probe` (a compose service) with the project's containers and names;
/// `kernel` is the kernel service's compose service, `network` the experiment network.
pub(crate) async fn run(
    compose: &Compose,
    engine: &Docker,
    probe: &str,
    network: &str,
    kernel: &str,
) -> Result<Outcome> {
    let project = compose
        .var("COMPOSE_PROJECT_NAME")
        .context("COMPOSE_PROJECT_NAME is not set")?;
    let kernel_address = docker::containers(engine, &project, Some(kernel))
        .await?
        .iter()
        .find_map(|c| c.address_on(network).map(str::to_string))
        .unwrap_or_default();
    let containers = docker::containers(engine, &project, None).await?;
    let targets = targets(&containers, &ports());
    let output = compose
        .exec_with_input(probe, PROBE_SCRIPT, &probe_input(&targets))
        .await;
    Ok(Outcome::new(
        probe,
        targets.len(),
        kernel,
        &kernel_address,
        &output,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctr(service: &str, addresses: &[(&str, &str)]) -> Container {
        Container {
            service: service.into(),
            addresses: addresses
                .iter()
                .map(|(n, a)| (n.to_string(), a.to_string()))
                .collect(),
        }
    }

    #[test]
    fn every_address_and_name_is_probed_on_every_port() {
        let containers = [
            ctr(
                "kernel-service",
                &[("p_control", "172.20.0.3"), ("leotest-net", "172.21.0.2")],
            ),
            ctr("experiment-user", &[("leotest-net", "172.21.0.3")]),
            ctr("init-exited-has-none", &[]),
        ];
        let ports = vec!["9000".to_string(), "9100".to_string()];
        let t = targets(&containers, &ports);
        assert_eq!(t.len(), (3 + NAMES.len()) * 2);
        let lines = probe_input(&t);
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(
            &lines[..3],
            &[
                "kernel-service 172.20.0.3 9000",
                "kernel-service 172.20.0.3 9100",
                "kernel-service 172.21.0.2 9000",
            ]
        );
        assert!(lines.contains(&"experiment-user 172.21.0.3 9100"));
        assert!(!lines.contains(&"name:mongo mongo 27017"));
        assert!(lines.contains(&"name:kernel-metrics kernel-metrics 9100"));
        assert_eq!(
            lines.last(),
            Some(&"name:kernel-metrics kernel-metrics 9100")
        );
    }

    #[test]
    fn the_default_ports_are_the_testbeds() {
        let p: Vec<&str> = PORTS.split_whitespace().collect();
        assert_eq!(p, ["9000", "9100", "9101", "50051", "8404", "27017"]);
    }

    #[test]
    fn only_the_kernel_port_may_answer() {
        let ok = Outcome::new(
            "experiment-user",
            72,
            "kernel-service",
            "172.21.0.2",
            "open kernel-service 172.21.0.2:9000\n",
        );
        let mut c = Checks::new("test");
        ok.record(&mut c);
        assert_eq!(c.summary(), "2 passed, 0 failed");

        let leak = Outcome::new(
            "experiment-user",
            72,
            "kernel-service",
            "172.21.0.2",
            "open name:mongo mongo:27017\nopen kernel-service 172.21.0.2:9000\n",
        );
        assert_eq!(leak.unexpected(), ["open name:mongo mongo:27017"]);
        let mut c = Checks::new("test");
        leak.record(&mut c);
        assert_eq!(c.summary(), "1 passed, 1 failed");

        let unreachable = Outcome::new("experiment-user", 72, "kernel-service", "", "");
        let mut c = Checks::new("test");
        unreachable.record(&mut c);
        assert_eq!(c.summary(), "1 passed, 1 failed");
    }

    #[test]
    fn probe_errors_count_as_unexpected() {
        let o = Outcome::new(
            "p",
            1,
            "k",
            "10.0.0.2",
            "open k 10.0.0.2:9000\nno such service: p",
        );
        assert_eq!(o.unexpected(), ["no such service: p"]);
    }
}
