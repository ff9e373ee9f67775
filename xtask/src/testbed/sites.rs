//! The compose override of a multi-site testbed (`testbed up --nodes N --link lan|wan|leo`,
//! issue 22 item 1), formerly scripts/lib/sites-compose.sh; the text is the same, byte for
//! byte.
//!
//! - cloud (the `control` network of docker-compose.yml): orchestrator(s), balancer, database,
//!   one `init-K` per site that registers node-K
//! - site K: its experiment network ($LEOTEST_NETWORK-site-K, internal) with its kernel service
//!   (alias `kernel`, node id node-K, its own token volume) and two labeled sample containers;
//!   an uplink network (internal) joining the kernel service to `link-K`, the emulated link
//!   (leotest-link, bench/src/link) which alone is also on the cloud's network. The site's
//!   orchestrator traffic therefore crosses the link; its experiments reach their own kernel
//!   service's port 9000 and nothing else.
//!
//! The single-node services (init, kernel-service, experiment-*) step aside: they are put in
//! a profile that is never enabled by `up` (`build` and `down` enable it: their images are the
//! sites' images, and `down` removes everything).

use std::path::Path;

use anyhow::{Context, Result};

/// The services of one site; `@K@`, `@AFTER@`, `@ORCH@`, `@NET@` and `@PROFILE@` are filled in.
/// `${...}` stays as it is: docker-compose substitutes it.
const SITE: &str = r#"  init-@K@:
    image: leotest-rs/experiment:${LEOTEST_IMAGE_TAG:-dev}
    user: "0:0"
    entrypoint: ["/bin/sh", "/init/testbed-init.sh"]
    environment:
      LEOTEST_ADMIN_TOKEN: ${LEOTEST_ADMIN_TOKEN:-leotest-access-token}
      NODE_ID: node-@K@
      ORCHESTRATOR_HOST: @ORCH@
    volumes:
      - ./docker/testbed-init.sh:/init/testbed-init.sh:ro
      - certs:/certs:ro
      - node-secrets-@K@:/secrets
    networks: [control]
    depends_on:
      # one after the other: each registers the sample users too
      @AFTER@
    restart: "no"
    logging: *logging
  link-@K@:
    image: leotest-rs/link:${LEOTEST_IMAGE_TAG:-dev}
    command: ["--listen=0.0.0.0:50051", "--upstream=@ORCH@:50051", "--profile=@PROFILE@", "--seed=@K@"]
    networks: [uplink-@K@, control]
    restart: unless-stopped
    read_only: true
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    logging: *logging
  kernel-service-@K@:
    image: leotest-rs/kernel-service:${LEOTEST_IMAGE_TAG:-dev}
    command:
      - --nodeid=node-@K@
      - --grpc-hostname=link-@K@
      - --grpc-port=50051
      - --access-token-file=/secrets/node-token
      - --ca-cert=/certs/server.crt
      - --leotest-net=@NET@-site-@K@
      - --listen=0.0.0.0:9000
    environment:
      RUST_LOG: info
      LEOTEST_METRICS_LISTEN: 0.0.0.0:9100
      LEOTEST_METRICS_HOST: kernel-metrics
      LEOTEST_UNIX_SOCKET: /run/leotest/kernel.sock
      LEOTEST_STALE_GRANT_WINDOW: ${LEOTEST_STALE_GRANT_WINDOW:-0s}
    # the privileges of docker-compose.yml's kernel-service, for the same reasons
    pid: host
    cap_drop: [ALL]
    cap_add: [SYS_ADMIN, SYS_PTRACE, NET_ADMIN, SETUID, SETGID, KILL, DAC_OVERRIDE]
    security_opt: ["apparmor:unconfined", "seccomp:unconfined", "no-new-privileges:true"]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock:ro
      - /sys/fs/cgroup:/sys/fs/cgroup:rw
      - certs:/certs:ro
      - node-secrets-@K@:/secrets:ro
      - kernel-socket-@K@:/run/leotest
    networks:
      site-@K@: { aliases: [kernel] }
      uplink-@K@: { aliases: [kernel-metrics] }
    depends_on:
      init-@K@: { condition: service_completed_successfully }
      link-@K@: { condition: service_started }
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "/usr/local/bin/leotest-kernel-service", "healthcheck"]
      interval: 2s
      timeout: 3s
      retries: 30
    logging: *logging
  experiment-priv-@K@:
    image: leotest-rs/experiment:${LEOTEST_IMAGE_TAG:-dev}
    labels: { userid: alice, leotest.site: "@K@" }
    cap_drop: [NET_RAW]
    volumes: ["kernel-socket-@K@:/run/leotest:ro"]
    networks: [site-@K@]
    depends_on: [kernel-service-@K@]
    logging: *logging
  experiment-user-@K@:
    image: leotest-rs/experiment:${LEOTEST_IMAGE_TAG:-dev}
    labels: { userid: bob, leotest.site: "@K@" }
    cap_drop: [NET_RAW]
    volumes: ["kernel-socket-@K@:/run/leotest:ro"]
    networks: [site-@K@]
    depends_on: [kernel-service-@K@]
    logging: *logging
"#;

/// The networks of one site (`@K@` and `@NET@` filled in).
const SITE_NETWORKS: &str = "  site-@K@:
    name: @NET@-site-@K@
    driver: bridge
    internal: true
  uplink-@K@:
    driver: bridge
    internal: true
";

/// The single-node services, parked in a profile `up` never enables.
const SINGLE_NODE: [&str; 4] = [
    "init",
    "kernel-service",
    "experiment-priv",
    "experiment-user",
];

/// The override for `nodes` sites behind `profile` links; `network` is `$LEOTEST_NETWORK`
/// (the sites' experiment networks are named after it), `orchestrator` the host the inits and
/// links talk to (`$LEOTEST_ORCHESTRATOR_HOST`: the balancer with `--ha`).
pub(crate) fn sites_compose(nodes: u8, profile: &str, network: &str, orchestrator: &str) -> String {
    let mut out = format!(
        "# Generated by scripts/testbed.sh up --nodes {nodes} --link {profile}; removed by down.\n\
         version: \"3.8\"\n\
         x-logging: &logging\n  driver: json-file\n  options: {{ max-size: \"10m\", max-file: \"2\" }}\n\
         services:\n"
    );
    for s in SINGLE_NODE {
        out.push_str(&format!("  {s}: {{ profiles: [single-node] }}\n"));
    }
    for k in 1..=nodes {
        // Each init waits for the previous one: they all register the sample users.
        let after = if k > 1 {
            format!(
                "init-{}: {{ condition: service_completed_successfully }}",
                k - 1
            )
        } else {
            "orchestrator: { condition: service_healthy }".to_string()
        };
        out.push_str(
            &SITE
                .replace("@AFTER@", &after)
                .replace("@ORCH@", orchestrator)
                .replace("@NET@", network)
                .replace("@PROFILE@", profile)
                .replace("@K@", &k.to_string()),
        );
    }
    out.push_str("volumes:\n");
    for k in 1..=nodes {
        out.push_str(&format!("  node-secrets-{k}:\n  kernel-socket-{k}:\n"));
    }
    out.push_str("networks:\n");
    for k in 1..=nodes {
        out.push_str(
            &SITE_NETWORKS
                .replace("@NET@", network)
                .replace("@K@", &k.to_string()),
        );
    }
    out
}

/// Writes [`sites_compose`]'s text to `file`, making its directory.
pub(crate) fn write(file: &Path, text: &str) -> Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    }
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_has_its_services_volumes_and_networks() {
        let y = sites_compose(3, "wan", "net", "orch");
        assert!(y.starts_with(
            "# Generated by scripts/testbed.sh up --nodes 3 --link wan; removed by down.\n\
             version: \"3.8\"\n"
        ));
        for k in 1..=3 {
            for s in [
                "init",
                "link",
                "kernel-service",
                "experiment-priv",
                "experiment-user",
            ] {
                assert_eq!(y.matches(&format!("\n  {s}-{k}:\n")).count(), 1, "{s}-{k}");
            }
            assert!(y.contains(&format!("\n  node-secrets-{k}:\n  kernel-socket-{k}:\n")));
            assert!(y.contains(&format!("    name: net-site-{k}\n")));
            assert!(y.contains(&format!("--leotest-net=net-site-{k}\n")));
            assert!(y.contains(&format!("\"--seed={k}\"]")));
        }
        assert!(!y.contains("-4:"));
        assert!(!y.contains('@'), "a placeholder is left");
        assert!(y.ends_with("  uplink-3:\n    driver: bridge\n    internal: true\n"));
    }

    #[test]
    fn the_text_is_the_scripts_byte_for_byte() {
        // testdata/: what scripts/lib/sites-compose.sh wrote for `sites_compose 2 lan FILE`
        // with LEOTEST_NETWORK=lt-bed-net LEOTEST_ORCHESTRATOR_HOST=orchestrator-lb.
        assert_eq!(
            sites_compose(2, "lan", "lt-bed-net", "orchestrator-lb"),
            include_str!("testdata/sites-2-lan-ha.yml")
        );
    }

    #[test]
    fn inits_run_one_after_the_other_and_links_use_the_profile() {
        let y = sites_compose(2, "lan", "n", "orchestrator-lb");
        assert!(y.contains("      orchestrator: { condition: service_healthy }\n"));
        assert!(y.contains("      init-1: { condition: service_completed_successfully }\n"));
        assert!(!y.contains("init-2: { condition: service_completed_successfully }\n    restart"));
        assert!(y.contains(
            "command: [\"--listen=0.0.0.0:50051\", \"--upstream=orchestrator-lb:50051\", \"--profile=lan\", \"--seed=2\"]"
        ));
        assert!(y.contains("      ORCHESTRATOR_HOST: orchestrator-lb\n"));
        // docker-compose's own substitutions stay for it to make.
        assert!(y.contains("image: leotest-rs/link:${LEOTEST_IMAGE_TAG:-dev}\n"));
        assert!(y.contains("  experiment-user: { profiles: [single-node] }\n"));
    }
}
