//! The fast tier's handler tests: every RPC of `unary.LeotestOrchestrator` called in process
//! ([`harness`]: production's gRPC stack, embedded store in a temporary directory, a test
//! clock), no TLS, no Docker, no MongoDB, no root.
//!
//! Each family module has one module per RPC with at least its main success path (`ok`) and
//! one refusal (`refused`: a wrong role, a stranger's data or bad input), asserting what the
//! caller sees; [`rpc_tests!`] turns them into tests and lists the RPCs, and
//! [`every_rpc_has_an_in_process_test`] holds those lists against the RPC table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is its failure report

mod harness;

/// Runs the handler tests of the RPCs named, each written as a module of its family named after
/// the RPC with `async fn ok(s: Scene)` and `async fn refused(s: Scene)` (it does not compile
/// without both): one `#[tokio::test]` per function, each on a fresh [`harness::Scene`], under
/// `<family>::tests::<rpc>::{ok, refused}`. Also lists the names as `COVERED`, which
/// [`every_rpc_has_an_in_process_test`] holds against the RPC table.
macro_rules! rpc_tests {
    ($($rpc:ident),* $(,)?) => {
        mod tests {$(
            mod $rpc {
                #[tokio::test]
                async fn ok() {
                    super::super::$rpc::ok($crate::harness::Scene::new().await).await;
                }

                #[tokio::test]
                async fn refused() {
                    super::super::$rpc::refused($crate::harness::Scene::new().await).await;
                }
            }
        )*}

        /// The RPCs this module tests.
        pub(crate) const COVERED: &[&str] = &[$(stringify!($rpc)),*];
    };
}

mod config;
mod jobs;
mod nodes;
mod runs;
mod tasks;
mod users;

/// Fails when an RPC of the table has no `ok`/`refused` pair here, or when a name here is not
/// an RPC (a rename in the table).
#[test]
fn every_rpc_has_an_in_process_test() {
    use std::collections::BTreeSet;
    let lists = [
        config::COVERED,
        jobs::COVERED,
        nodes::COVERED,
        runs::COVERED,
        tasks::COVERED,
        users::COVERED,
    ];
    let covered: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    let unique: BTreeSet<&str> = covered.iter().copied().collect();
    assert_eq!(
        unique.len(),
        covered.len(),
        "an RPC is tested in two modules"
    );
    let table: BTreeSet<&str> = leotest_proto::RPC_METHODS.iter().copied().collect();
    let missing: Vec<_> = table.difference(&unique).collect();
    let unknown: Vec<_> = unique.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "RPCs without an in-process test: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "tested names that are no RPC: {unknown:?}"
    );
}

/// The auth layer sits in front of the handlers: no credentials and a wrong token are
/// refused before any handler runs.
#[tokio::test]
async fn auth_layer_refuses_missing_and_wrong_credentials() {
    let h = harness::Harness::start().await;
    let s = h
        .anonymous()
        .try_get_user("admin")
        .await
        .expect_err("refused");
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    assert_eq!(s.message(), "Invalid token");
    let wrong = leotest_test_support::Creds::token("admin", "not-the-token");
    let s = h
        .with(&wrong)
        .try_get_user("admin")
        .await
        .expect_err("refused");
    assert_eq!(s.code(), tonic::Code::Unauthenticated);
    assert!(h.admin().get_user("admin").await.exists);
}

/// The harness serves production's stack, not the bare service: the health service answers
/// beside the orchestrator's, without credentials, as `server::run` serves it.
#[tokio::test]
async fn health_is_served_beside_the_service() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    let h = harness::Harness::start().await;
    let reply = HealthClient::new(h.channel())
        .check(HealthCheckRequest {
            service: leotest_proto::SERVICE_NAME.into(),
        })
        .await
        .expect("a health reply")
        .into_inner();
    assert_eq!(reply.status, ServingStatus::Serving as i32);
}
