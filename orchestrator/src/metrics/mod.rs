//! The orchestrator's metrics, on when `--metrics-listen` is given: per-RPC requests by method,
//! gRPC status code and result (`ok`, `refused`, `error`: [`result_label`]) with a latency
//! histogram ([`layer`], one tower layer in front of the
//! auth layer), authentication failures by reason ([`crate::auth::failure::AuthFailure`]), store
//! operation latency ([`store`], a wrapper around the [`crate::store::Store`] trait) and
//! connections ([`conn`]), plus `process_*` and `leotest_orchestrator_build_info`. Served as
//! plain HTTP (`/metrics`, `/healthz`) by `leotest-metrics`. Every RPC's series exist from the
//! start with 0 (see [`Metrics::default`]), so a dashboard shows 0 rather than "No data".
//!
//! Nothing here can carry a secret or grow without bound: every label value comes from a fixed
//! list (the proto's [`RPC_METHODS`], gRPC code names, auth failure reasons, Store method
//! names); a request for an unknown path is counted as `method="unknown"`. No
//! token, user id, node id or address is ever a label.

pub mod conn;
pub mod layer;
pub mod store;

use std::time::Instant;

use leotest_metrics::{histograms, Histograms};
use leotest_proto::RPC_METHODS;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::auth::failure::AuthFailure;

/// Public services, by path prefix, and the method label their requests get.
const PUBLIC_METHODS: [(&str, &str); 4] = [
    (
        "/grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Check",
    ),
    (
        "/grpc.health.v1.Health/Watch",
        "grpc.health.v1.Health/Watch",
    ),
    ("/grpc.reflection.v1.ServerReflection/", "grpc.reflection"),
    (
        "/grpc.reflection.v1alpha.ServerReflection/",
        "grpc.reflection",
    ),
];

/// The `method` label of a request path: an RPC name, a public service, or `unknown`.
pub fn method_label(path: &str) -> &'static str {
    if let Some(m) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(leotest_proto::SERVICE_NAME))
        .and_then(|p| p.strip_prefix('/'))
    {
        return RPC_METHODS
            .iter()
            .find(|known| **known == m)
            .copied()
            .unwrap_or("unknown");
    }
    PUBLIC_METHODS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or("unknown", |(_, label)| label)
}

/// gRPC status code names (as in grpc-go and the Prometheus gRPC exporters), by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The `code` label of a `grpc-status` value; anything else is `Unknown`.
pub fn code_label(grpc_status: &[u8]) -> &'static str {
    std::str::from_utf8(grpc_status)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .and_then(|n| CODE_NAMES.get(n).copied())
        .unwrap_or("Unknown")
}

/// Put in a reply's extensions by a handler that answered OK but refused the request in its
/// `state`/`message` fields (a schedule conflict, a permission denial: the original's way,
/// which its clients need). Never sent on the wire; read by [`layer`] for the `result` label.
#[derive(Clone, Copy, Debug)]
pub struct Refused;

/// The codes a client causes (bad or missing credentials, bad input): `refused`, as are
/// OK replies that carry a refusal ([`Refused`]). Every other non-OK code is an `error`.
const REFUSAL_CODES: [&str; 8] = [
    "Unauthenticated",
    "PermissionDenied",
    "InvalidArgument",
    "NotFound",
    "AlreadyExists",
    "FailedPrecondition",
    "OutOfRange",
    "ResourceExhausted",
];

/// The `result` label: `ok`, `refused` or `error`.
pub fn result_label(code: &str, refused: bool) -> &'static str {
    match code {
        "OK" if refused => "refused",
        "OK" => "ok",
        c if REFUSAL_CODES.contains(&c) => "refused",
        _ => "error",
    }
}

/// `method`, `code` and `result` of a finished RPC.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// RPC method name, e.g. `schedule_job`.
    pub method: &'static str,
    /// gRPC status code name, e.g. `OK`, `Unauthenticated`.
    pub code: &'static str,
    /// `ok`, `refused` (in the reply or by a client error code) or `error` (a server fault).
    pub result: &'static str,
}

/// The series created at start for each RPC: OK, a refusal in the reply, a refusal by
/// the authentication layer and a server fault.
const INITIAL: [(&str, &str); 4] = [
    ("OK", "ok"),
    ("OK", "refused"),
    ("Unauthenticated", "refused"),
    ("Internal", "error"),
];

/// `method` of an RPC latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// RPC method name.
    pub method: &'static str,
}

/// `reason` of an authentication failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The label's value, e.g. `bad_token`.
    pub reason: &'static str,
}

/// `op` of a store operation: the [`crate::store::Store`] method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// The label's value.
    pub op: &'static str,
}

/// Every orchestrator metric; cheap handles (clones share their values).
#[derive(Debug)]
pub struct Metrics {
    /// gRPC requests answered, by method, status code and result.
    pub requests: Family<RpcLabels, Counter>,
    /// gRPC request time by method, authentication included.
    pub request_seconds: Histograms<MethodLabel>,
    /// Requests refused by the authentication layer, by reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Store operation time as the handlers see it (user cache hits included).
    pub store_seconds: Histograms<OpLabel>,
    /// Store operations that failed.
    pub store_errors: Family<OpLabel, Counter>,
    /// TLS connections handed to the gRPC server.
    pub connections: Counter,
    /// TLS connections open now.
    pub connections_active: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            requests: Family::default(),
            request_seconds: histograms(),
            auth_failures: Family::default(),
            store_seconds: histograms(),
            store_errors: Family::default(),
            connections: Counter::default(),
            connections_active: Gauge::default(),
        };
        // Zero series for every RPC and reason: rates and alerts see 0, not an absent series.
        for &method in RPC_METHODS {
            for (code, result) in INITIAL {
                let _ = m.requests.get_or_create(&RpcLabels {
                    method,
                    code,
                    result,
                });
            }
            let _ = m.request_seconds.get_or_create(&MethodLabel { method });
        }
        for reason in AuthFailure::LABELS {
            let _ = m.auth_failures.get_or_create(&ReasonLabel { reason });
        }
        m
    }
}

impl Metrics {
    /// Records a finished RPC (`refused`: an OK reply that refused, see [`Refused`]).
    pub fn rpc(&self, method: &'static str, code: &'static str, refused: bool, t0: Instant) {
        let result = result_label(code, refused);
        self.requests
            .get_or_create(&RpcLabels {
                method,
                code,
                result,
            })
            .inc();
        self.request_seconds
            .get_or_create(&MethodLabel { method })
            .observe(t0.elapsed().as_secs_f64());
    }

    /// Records a refused authentication.
    pub fn auth_failure(&self, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    /// Records one store operation that started at `t0`.
    pub fn store_op(&self, op: &'static str, t0: Instant, failed: bool) {
        let l = OpLabel { op };
        self.store_seconds
            .get_or_create(&l)
            .observe(t0.elapsed().as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&l).inc();
        }
    }

    /// A registry holding every family, for the HTTP endpoint.
    pub fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "leotest_orchestrator_rpc_requests",
            "gRPC requests answered, by method, status code and result (ok; refused: a refusal \
             in the reply's state or message, or a client error code such as Unauthenticated; \
             error: a server fault)",
            self.requests.clone(),
        );
        r.register_with_unit(
            "leotest_orchestrator_rpc_duration",
            "gRPC request time, from the request to the end of the reply (authentication included)",
            Unit::Seconds,
            self.request_seconds.clone(),
        );
        r.register(
            "leotest_orchestrator_auth_failures",
            "Requests refused by the authentication layer, by reason",
            self.auth_failures.clone(),
        );
        r.register_with_unit(
            "leotest_orchestrator_store_operation",
            "Store operation time as the handlers see it (user cache hits included), by operation",
            Unit::Seconds,
            self.store_seconds.clone(),
        );
        r.register(
            "leotest_orchestrator_store_errors",
            "Store operations that failed, by operation",
            self.store_errors.clone(),
        );
        r.register(
            "leotest_orchestrator_connections",
            "TLS connections handed to the gRPC server",
            self.connections.clone(),
        );
        r.register(
            "leotest_orchestrator_connections_active",
            "TLS connections open now",
            self.connections_active.clone(),
        );
        r.register_collector(Box::new(leotest_metrics::ProcessCollector));
        r.register_collector(leotest_metrics::BuildInfo::new(
            "leotest_orchestrator_build_info",
            "The running leotest-orchestrator's version (value 1)",
            env!("CARGO_PKG_VERSION"),
        ));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn the_method_list_is_the_protos() {
        let set = prost_types::FileDescriptorSet::decode(leotest_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let mut from_proto: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == "LeotestOrchestrator")
            .flat_map(|s| s.method.iter().map(|m| m.name().to_string()))
            .collect();
        from_proto.sort();
        let mut ours: Vec<String> = RPC_METHODS.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(ours, from_proto);
    }

    #[test]
    fn labels_are_from_fixed_sets() {
        assert_eq!(
            method_label("/unary.LeotestOrchestrator/get_user"),
            "get_user"
        );
        assert_eq!(
            method_label("/unary.LeotestOrchestrator/get_user2"),
            "unknown"
        );
        assert_eq!(method_label("/unary.LeotestOrchestrator/"), "unknown");
        assert_eq!(method_label("/x/get_user"), "unknown");
        assert_eq!(
            method_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "grpc.reflection"
        );
        assert_eq!(code_label(b"0"), "OK");
        assert_eq!(code_label(b"16"), "Unauthenticated");
        assert_eq!(code_label(b"17"), "Unknown");
        assert_eq!(code_label(b"secret-token"), "Unknown");
        assert_eq!(result_label("OK", false), "ok");
        assert_eq!(result_label("OK", true), "refused");
        assert_eq!(result_label("Unauthenticated", false), "refused");
        assert_eq!(result_label("Internal", false), "error");
        assert_eq!(result_label("Canceled", false), "error");
    }

    #[test]
    fn every_rpc_has_zero_series_from_the_start() {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &Metrics::default().registry())
            .expect("encode");
        for method in RPC_METHODS {
            for result in ["ok", "refused", "error"] {
                let series = out.lines().find(|l| {
                    l.starts_with("leotest_orchestrator_rpc_requests_total{")
                        && l.contains(&format!("method=\"{method}\""))
                        && l.contains(&format!("result=\"{result}\""))
                });
                assert!(
                    series.is_some_and(|l| l.ends_with(" 0")),
                    "{method} {result}:\n{out}"
                );
            }
        }
        assert!(out.contains("leotest_orchestrator_auth_failures_total{reason=\"bad_token\"} 0"));
        assert!(
            out.contains("leotest_orchestrator_build_info{version=\""),
            "{out}"
        );
        assert!(out.contains("\nprocess_resident_memory_bytes "), "{out}");
        // Label values never contain spaces (they are fixed identifiers).
        for l in out.lines().filter(|l| !l.starts_with('#')) {
            let labels = l.split_once('{').and_then(|(_, r)| r.split_once('}'));
            if let Some((labels, _)) = labels {
                assert!(!labels.contains(' '), "{l}");
            }
        }
    }

    #[test]
    fn the_dashboard_uses_only_exposed_names() {
        let m = Metrics::default();
        m.rpc("get_user", "OK", false, Instant::now());
        m.auth_failure(AuthFailure::BadToken);
        m.store_op("get_user", Instant::now(), true);
        m.connections.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry()).expect("encode");
        let dashboard = include_str!("../../../docs/grafana-dashboard.json");
        let used = leotest_metrics::names::names_with_prefix(dashboard, "leotest_orchestrator_");
        assert!(used.len() >= 7, "{used:?}");
        let exposed = leotest_metrics::names::sample_names(&out);
        let missing: Vec<_> = used.difference(&exposed).collect();
        assert!(missing.is_empty(), "not exposed: {missing:?}\n{exposed:?}");
        // The dashboard is JSON Grafana can import: panels with Prometheus queries.
        let d: serde_json::Value = serde_json::from_str(dashboard).expect("dashboard JSON");
        assert!(d["panels"].as_array().is_some_and(|p| p.len() > 10));
    }
}
