//! Run RPCs: node agents report runs, owners read them, nodes expand their calendar.

use leotest_proto::unary::*;
use tonic::Code;

use crate::harness::{denied, run, Scene, FAILED, OK, YEAR};

fn report(r: RunInstance) -> MessageUpdateRun {
    MessageUpdateRun { run: Some(r) }
}

fn runids(runs: &[RunInstance]) -> Vec<&str> {
    runs.iter().map(|r| r.runid.as_str()).collect()
}

fn calendar(nodeid: &str) -> MessageGetScheduledRuns {
    MessageGetScheduledRuns {
        nodeid: nodeid.into(),
        start: format!("{YEAR}-03-01 00:00:00"),
        end: format!("{YEAR}-03-03 00:00:00"),
    }
}

/// The job's node reports a run of it (which also counts as its heartbeat).
mod update_run {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r =
            s.n1.update_run(report(run("r1", "j1", "n1", "alice")))
                .await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "updated run successfully")
        );
        let active = MessageGetNodes {
            active: Some(true),
            ..Default::default()
        };
        let nodes = s.alice.get_nodes(active).await.nodes;
        assert_eq!(
            nodes.iter().map(|n| n.nodeid.as_str()).collect::<Vec<_>>(),
            ["n1"]
        );
    }

    pub(super) async fn refused(s: Scene) {
        // A stranger, another node, a run that names someone else than the job's owner.
        for (who, role) in [(&s.bob, "USER"), (&s.n2, "NODE")] {
            let r = who.update_run(report(run("r1", "j1", "n1", "alice"))).await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let r = s.n1.update_run(report(run("r1", "j1", "n1", "bob"))).await;
        assert_eq!((r.state, r.message), (FAILED, denied(&s.n1, "NODE")));
        let mut bad = run("r1", "j1", "n1", "alice");
        bad.end_time = "later".into();
        let r = s.n1.update_run(report(bad)).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "invalid end_time: 'later'")
        );
        assert!(s.h.admin().get_runs(()).await.runs.is_empty());
    }
}

/// The owner and the node read the run; the time range filters on its start.
mod get_runs {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        s.n1.update_run(report(run("r1", "j1", "n1", "alice")))
            .await;
        for who in [&s.alice, &s.n1, &s.h.admin()] {
            assert_eq!(runids(&who.get_runs(()).await.runs), ["r1"]);
        }
        let r = s
            .alice
            .get_runs(MessageGetRuns {
                time_range: Some(MessageTimeRange {
                    start: format!("{YEAR}-03-02 00:00:00"),
                    end: format!("{YEAR}-03-03 00:00:00"),
                }),
                ..Default::default()
            })
            .await;
        assert!(r.runs.is_empty());
    }

    pub(super) async fn refused(s: Scene) {
        s.n1.update_run(report(run("r1", "j1", "n1", "alice")))
            .await;
        let theirs = MessageGetRuns {
            userid: Some("alice".into()),
            ..Default::default()
        };
        assert!(s.bob.get_runs(theirs).await.runs.is_empty());
        assert!(s.bob.get_runs(()).await.runs.is_empty());
        assert!(s.n2.get_runs(()).await.runs.is_empty());
        let bad = MessageGetRuns {
            time_range: Some(MessageTimeRange {
                start: "x".into(),
                end: "y".into(),
            }),
            ..Default::default()
        };
        let status = s.alice.try_get_runs(bad).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}

/// A node's calendar: one event per run in the window, params in full for its node.
mod get_scheduled_runs {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.n1.get_scheduled_runs(calendar("n1")).await;
        assert_eq!((r.state, r.message.as_str()), (OK, "success"));
        assert_eq!(r.events.len(), 1);
        let e = &r.events[0];
        assert_eq!((e.title.as_str(), e.r#type.as_str()), ("j1", "atq"));
        assert_eq!(e.start, format!("{YEAR}-03-01 10:00:00"));
        assert_eq!(
            e.params.as_ref().map(|p| p.execute.as_str()),
            Some("run --secret=s3")
        );
    }

    pub(super) async fn refused(s: Scene) {
        // A stranger sees the slot taken, not the command lines.
        let r = s.bob.get_scheduled_runs(calendar("n1")).await;
        assert_eq!((r.state, r.events.len()), (OK, 1));
        assert_eq!(r.events[0].params, Some(JobParams::default()));
        let mut bad = calendar("n1");
        bad.start = "now".into();
        let r = s.n1.get_scheduled_runs(bad).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "error: start and end must be ISO-8601 dates")
        );
        let mut reversed = calendar("n1");
        std::mem::swap(&mut reversed.start, &mut reversed.end);
        let r = s.n1.get_scheduled_runs(reversed).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "error: end must be greater than start")
        );
    }
}

rpc_tests!(update_run, get_runs, get_scheduled_runs);
