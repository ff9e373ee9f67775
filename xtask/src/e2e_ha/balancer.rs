//! The balancer (HAProxy, service `orchestrator-lb`) as the failover test reads it: its status
//! page (`/stats;csv`, fetched inside its container: the page is on the control network only)
//! and its log (ISO timestamps, one `tcplog` line per placed connection, a line per server
//! state change). The reading of both is pure and tested here; the fetching is in
//! [`Balancer`].

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::docker_cli;

/// The HAProxy backend of the two replicas (docker/haproxy.cfg).
const BACKEND: &str = "orchestrators";
/// Status page CSV fields (1-based, as HAProxy documents them and awk counts them).
pub(crate) const FIELD_SESSIONS: usize = 5;
/// The server's status: `UP`, `DOWN`, `MAINT`, `UP 1/3`, `no check` ...
pub(crate) const FIELD_STATUS: usize = 18;
/// What HAProxy logs when a server leaves the rotation.
const DOWN_PHRASES: [&str; 3] = [
    "is DOWN",
    "was DOWN and now enters maintenance",
    "is going DOWN",
];
/// bash: `exec 3<>/dev/tcp/...`: the page without any HTTP client in the image.
const STATS_SCRIPT: &str =
    r#"exec 3<>/dev/tcp/127.0.0.1/8404 && printf "GET /stats;csv HTTP/1.0\r\n\r\n" >&3 && cat <&3"#;

/// Field `field` (1-based) of the `orchestrators,SERVER,...` rows of a `/stats;csv` page, one
/// a line (awk -F, '$1 == "orchestrators" && $2 == s { print $f }'): empty when the server is
/// not listed, as an unreachable page gives.
pub(crate) fn stat_field(page: &str, server: &str, field: usize) -> String {
    page.lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&BACKEND) && f.get(1) == Some(&server))
        .map(|f| f.get(field - 1).copied().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a status reads as one of `states` (bash: `[[ $state =~ ^(UP) ]]`, `^(DOWN|MAINT)`).
pub(crate) fn state_is(state: &str, states: &[&str]) -> bool {
    states.iter().any(|s| state.starts_with(s))
}

/// When the balancer's log last said `server` left the rotation, in Unix milliseconds: the
/// ISO timestamp that starts the last such line (grep -E '^20.* Server orchestrators/NAME
/// (is DOWN|...)' | tail -n 1, then `date -d`).
pub(crate) fn down_at_ms(log: &str, server: &str) -> Option<i64> {
    let needles: Vec<String> = DOWN_PHRASES
        .iter()
        .map(|p| format!(" Server {BACKEND}/{server} {p}"))
        .collect();
    let line = log.lines().rev().find(|l| {
        l.starts_with("20")
            && needles
                .iter()
                .any(|n| l.get(2..).is_some_and(|r| r.contains(n)))
    })?;
    let stamp = line.split(' ').next()?;
    chrono::DateTime::parse_from_rfc3339(stamp)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The replica the kernel service's channel went to: the last `orchestrators/orchestrator-1`
/// or `-2` on a log line naming `client_ip:` (grep -F "$ip:" | grep -o
/// 'orchestrators/orchestrator-[12]' | tail -n 1 | cut -d/ -f2); `None` when no line does.
pub(crate) fn victim_server(log: &str, client_ip: &str) -> Option<String> {
    let client = format!("{client_ip}:");
    let prefix = format!("{BACKEND}/orchestrator-");
    log.lines()
        .filter(|l| l.contains(&client))
        .flat_map(|l| {
            l.match_indices(&prefix).filter_map(|(i, m)| {
                let n = l[i + m.len()..].chars().next()?;
                matches!(n, '1' | '2').then(|| format!("orchestrator-{n}"))
            })
        })
        .last()
}

/// The compose service behind a balancer server: `orchestrator-2` is its own service, any
/// other answer (including none) means the first replica, whose service is `orchestrator`.
/// Returns (server, service), as the script's `case` set them.
pub(crate) fn victim(server: &str) -> (&'static str, &'static str) {
    if server == "orchestrator-2" {
        ("orchestrator-2", "orchestrator-2")
    } else {
        ("orchestrator-1", "orchestrator")
    }
}

/// The running balancer container.
#[derive(Debug, Clone)]
pub(crate) struct Balancer {
    /// Its container id.
    pub(crate) id: String,
}

impl Balancer {
    /// The status page (stdout of the fetch only; empty when it failed).
    async fn page(&self) -> String {
        docker_cli::docker_stdout(&["exec", &self.id, "bash", "-c", STATS_SCRIPT]).await
    }

    /// Field `field` of `server`'s row (empty when the page or the row is missing).
    pub(crate) async fn stat(&self, server: &str, field: usize) -> String {
        stat_field(&self.page().await, server, field)
    }

    /// Its log, stdout and stderr as `docker logs ... 2>&1` interleaves them.
    pub(crate) async fn log(&self) -> Result<String> {
        docker_cli::docker_combined(&["logs", &self.id]).await
    }

    /// Polls `server`'s status every 100 ms for up to `seconds` until it reads as one of
    /// `states`: `N ms` (how long it took), else `timeout (last state: S)` (or `none`).
    pub(crate) async fn wait_state(&self, server: &str, states: &[&str], seconds: u64) -> String {
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(seconds);
        let mut state = String::new();
        while Instant::now() < deadline {
            state = self.stat(server, FIELD_STATUS).await;
            if state_is(&state, states) {
                return format!("{} ms", t0.elapsed().as_millis());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let last = if state.is_empty() { "none" } else { &state };
        format!("timeout (last state: {last})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
stats,FRONTEND,,,0,1,,,,,,,,,,,,OPEN,\n\
orchestrators,orchestrator-1,0,0,3,4,,9,0,0,,0,,0,0,0,0,UP,1\n\
orchestrators,orchestrator-2,0,0,0,2,,5,0,0,,0,,0,0,0,0,DOWN,1\n\
orchestrators,BACKEND,0,0,3,4,,14,0,0,0,0,,0,0,0,0,UP,2\n\
other,orchestrator-1,0,0,7,4,,9,0,0,,0,,0,0,0,0,MAINT,1\n";

    #[test]
    fn the_status_page_gives_a_servers_fields() {
        assert_eq!(stat_field(PAGE, "orchestrator-1", FIELD_STATUS), "UP");
        assert_eq!(stat_field(PAGE, "orchestrator-1", FIELD_SESSIONS), "3");
        assert_eq!(stat_field(PAGE, "orchestrator-2", FIELD_STATUS), "DOWN");
        assert_eq!(stat_field(PAGE, "orchestrator-3", FIELD_STATUS), "");
        assert_eq!(stat_field("", "orchestrator-1", FIELD_STATUS), "");
        // A short row gives an empty field, as awk's $f past NF does.
        assert_eq!(
            stat_field("orchestrators,orchestrator-1,0", "orchestrator-1", 18),
            ""
        );
    }

    #[test]
    fn states_match_as_prefixes() {
        assert!(state_is("UP", &["UP"]));
        assert!(state_is("UP 1/3", &["UP"]));
        assert!(state_is("MAINT (resolution)", &["DOWN", "MAINT"]));
        assert!(state_is("DOWN 1/2", &["DOWN", "MAINT"]));
        assert!(!state_is("DOWN", &["UP"]));
        assert!(!state_is("", &["UP"]));
        assert!(!state_is("no check", &["DOWN", "MAINT"]));
    }

    #[test]
    fn the_last_down_line_gives_its_time() {
        let log = "\
2026-12-08T01:00:00.000000+00:00 Server orchestrators/orchestrator-1 is DOWN, reason: Layer4 connection problem\n\
[WARNING]  (8) : Server orchestrators/orchestrator-1 is DOWN, reason: Layer4\n\
2026-12-08T01:00:05.250000+00:00 Server orchestrators/orchestrator-2 is UP\n\
2026-12-08T01:00:10.123456+01:00 Server orchestrators/orchestrator-1 was DOWN and now enters maintenance (DNS)\n\
2026-12-08T01:00:11.000000+00:00 Server orchestrators/orchestrator-12 is DOWN\n";
        // 01:00:10.123 at +01:00 is 00:00:10.123 UTC.
        assert_eq!(down_at_ms(log, "orchestrator-1"), Some(1_796_688_010_123));
        assert_eq!(down_at_ms(log, "orchestrator-2"), None);
        let going = "2026-12-08T00:00:00.5Z Server orchestrators/orchestrator-2 is going DOWN for maintenance\n";
        assert_eq!(down_at_ms(going, "orchestrator-2"), Some(1_796_688_000_500));
        assert_eq!(down_at_ms("", "orchestrator-1"), None);
    }

    #[test]
    fn the_kernel_services_connection_names_the_victim() {
        let log = "\
2026-12-08T01:00:00.1+00:00 172.20.0.7:40000 [08/Dec/2026:01:00:00.1] grpc orchestrators/orchestrator-2 1/0/+0 +0 -- 1/1/0/0/0 0/0\n\
2026-12-08T01:00:01.1+00:00 172.20.0.6:40002 [08/Dec/2026:01:00:01.1] grpc orchestrators/orchestrator-1 1/0/+0 +0 -- 1/1/0/0/0 0/0\n\
2026-12-08T01:00:02.1+00:00 172.20.0.61:40004 [08/Dec/2026:01:00:02.1] grpc orchestrators/orchestrator-2 1/0/+0 +0 -- 1/1/0/0/0 0/0\n";
        assert_eq!(
            victim_server(log, "172.20.0.6").as_deref(),
            Some("orchestrator-1")
        );
        assert_eq!(
            victim_server(log, "172.20.0.7").as_deref(),
            Some("orchestrator-2")
        );
        assert_eq!(victim_server(log, "172.20.0.9"), None);
        assert_eq!(
            victim_server("172.20.0.6:1 orchestrators/orchestrator-3", "172.20.0.6"),
            None
        );
    }

    #[test]
    fn a_server_maps_to_its_compose_service() {
        assert_eq!(
            victim("orchestrator-2"),
            ("orchestrator-2", "orchestrator-2")
        );
        assert_eq!(victim("orchestrator-1"), ("orchestrator-1", "orchestrator"));
        assert_eq!(victim(""), ("orchestrator-1", "orchestrator"));
    }
}
