//! What the checks ask the Docker engine directly, over its API (bollard) rather than by
//! parsing `docker inspect -f` output: a compose project's running containers with their
//! service and addresses, a service's container id, and what a project left behind.

use std::collections::HashMap;

use anyhow::{Context, Result};
use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions, ListVolumesOptions};
use bollard::Docker;

/// The label docker-compose puts on everything of a project.
const PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label docker-compose puts on a service's containers.
const SERVICE_LABEL: &str = "com.docker.compose.service";

/// A running container of a compose project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    /// Its compose service (`kernel-service`, `experiment-user-1`, ...).
    pub(crate) service: String,
    /// Its IPv4 address on each network it is attached to, by network name.
    pub(crate) addresses: Vec<(String, String)>,
}

impl Container {
    /// Its address on `network`, if attached there.
    pub(crate) fn address_on(&self, network: &str) -> Option<&str> {
        self.addresses
            .iter()
            .find(|(n, _)| n == network)
            .map(|(_, ip)| ip.as_str())
    }
}

/// The local engine (`DOCKER_HOST` or the default socket).
pub(crate) fn connect() -> Result<Docker> {
    Docker::connect_with_local_defaults().context("connecting to the Docker engine")
}

fn label_filter(labels: &[String]) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), labels.to_vec())])
}

/// The running containers of `project` (`docker ps`), of `service` only when given.
pub(crate) async fn containers(
    docker: &Docker,
    project: &str,
    service: Option<&str>,
) -> Result<Vec<Container>> {
    let mut labels = vec![format!("{PROJECT_LABEL}={project}")];
    labels.extend(service.map(|s| format!("{SERVICE_LABEL}={s}")));
    let list = docker
        .list_containers(Some(ListContainersOptions {
            filters: Some(label_filter(&labels)),
            ..Default::default()
        }))
        .await
        .context("listing containers")?;
    Ok(list
        .into_iter()
        .map(|c| {
            let service = c
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_LABEL))
                .cloned()
                .unwrap_or_default();
            let mut addresses: Vec<(String, String)> = c
                .network_settings
                .and_then(|s| s.networks)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(net, ep)| Some((net, ep.ip_address.filter(|ip| !ip.is_empty())?)))
                .collect();
            addresses.sort();
            Container { service, addresses }
        })
        .collect())
}

/// Everything of `project` still there (containers, running or not; volumes; networks) and
/// the experiment network `network` by name: ids and names, one a line; empty when clean.
pub(crate) async fn leftovers(docker: &Docker, project: &str, network: &str) -> Result<String> {
    let project = label_filter(&[format!("{PROJECT_LABEL}={project}")]);
    let mut left = Vec::new();
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(project.clone()),
            ..Default::default()
        }))
        .await
        .context("listing containers")?;
    left.extend(containers.into_iter().filter_map(|c| c.id));
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(project.clone()),
        }))
        .await
        .context("listing volumes")?;
    left.extend(
        volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name),
    );
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(project),
        }))
        .await
        .context("listing networks")?;
    left.extend(networks.into_iter().filter_map(|n| n.id));
    // The experiment network has a fixed name (no project label check would see it if
    // compose ever stopped labelling it): `docker network ls --filter name=^NAME$`.
    left.extend(network_ids(docker, network).await?);
    Ok(left.join("\n"))
}

/// The ids of the networks named exactly `name` (`docker network ls -q --filter name=^NAME$`).
pub(crate) async fn network_ids(docker: &Docker, name: &str) -> Result<Vec<String>> {
    let named = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![format!("^{name}$")],
            )])),
        }))
        .await
        .context("listing networks")?;
    Ok(named.into_iter().filter_map(|n| n.id).collect())
}

/// The id of `service`'s container in `project`, running or not (`compose ps -q SERVICE`).
pub(crate) async fn container_id(docker: &Docker, project: &str, service: &str) -> Result<String> {
    let labels = [
        format!("{PROJECT_LABEL}={project}"),
        format!("{SERVICE_LABEL}={service}"),
    ];
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(&labels)),
            ..Default::default()
        }))
        .await
        .context("listing containers")?
        .into_iter()
        .find_map(|c| c.id)
        .with_context(|| format!("no {service} container in {project}"))
}
