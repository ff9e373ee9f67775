//! Job RPCs: schedule, read, list, reschedule, modify and delete, under the ownership rule
//! (ADMIN, the job's owner, the job's node).

use leotest_proto::unary::*;
use tonic::Code;

use crate::harness::{at, atq_job, denied, Scene, FAILED, OK, YEAR};

fn reschedule(jobid: &str, day: u32) -> MessageRescheduleJob {
    MessageRescheduleJob {
        jobid: jobid.into(),
        starttime: format!("{YEAR}-03-{day:02} 10:00:00"),
        endtime: format!("{YEAR}-03-{:02} 10:00:00", day + 1),
    }
}

/// A user books a window on a node; the job is stored as its own.
mod schedule_job {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let mut job = atq_job("j2", "n2");
        // n1 serves it, a week after j1 (an overhead job books its server too).
        job.server = Some("n1".into());
        job.start_date = format!("{YEAR}-03-08 10:00:00");
        job.end_date = format!("{YEAR}-03-09 10:00:00");
        let r = s.bob.schedule_job(job).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "job successfully scheduled")
        );
        let j = s.bob.get_job_by_id("j2").await;
        assert!(j.exists);
        assert_eq!(
            (j.userid.as_str(), j.nodeid.as_str(), j.server.as_str()),
            ("bob", "n2", "n1")
        );
    }

    pub(super) async fn refused(s: Scene) {
        // An overlapping overhead job on the same node, a taken id, bad dates.
        let r = s.bob.schedule_job(atq_job("j2", "n1")).await;
        assert_eq!(r.state, FAILED);
        assert!(
            r.message.starts_with("schedule conflict:<0, jobid=j1,"),
            "{}",
            r.message
        );
        let r = s.bob.schedule_job(atq_job("j1", "n2")).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "job with the given id exists")
        );
        let mut job = atq_job("j3", "n2");
        job.start_date = "yesterday".into();
        let r = s.bob.schedule_job(job).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "invalid start_date: 'yesterday'")
        );
        assert!(!s.h.admin().get_job_by_id("j2").await.exists);
        assert!(!s.h.admin().get_job_by_id("j3").await.exists);
    }
}

/// The owner and the job's node read the job in full, until it expires at its end date.
mod get_job_by_id {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        for who in [&s.alice, &s.n1] {
            let j = who.get_job_by_id("j1").await;
            assert!(j.exists);
            assert_eq!((j.id.as_str(), j.userid.as_str()), ("j1", "alice"));
            assert_eq!(j.config, "secret: config of j1\n");
        }
        s.h.clock.set(at(3, 2, 11));
        assert!(!s.alice.get_job_by_id("j1").await.exists);
    }

    pub(super) async fn refused(s: Scene) {
        // Someone else's job reads as unknown (its config may hold credentials).
        for who in [&s.bob, &s.n2] {
            assert_eq!(
                who.get_job_by_id("j1").await,
                MessageGetJobByIdResponse::default()
            );
        }
    }
}

/// A user lists its own jobs; ADMIN lists anyone's.
mod get_jobs_by_userid {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.alice.get_jobs_by_userid("alice").await;
        assert!(r.exists);
        assert_eq!(
            r.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
            ["j1"]
        );
        assert_eq!(s.h.admin().get_jobs_by_userid("alice").await.jobs.len(), 1);
    }

    pub(super) async fn refused(s: Scene) {
        let r = s.bob.get_jobs_by_userid("alice").await;
        assert!(!r.exists && r.jobs.is_empty());
        assert_eq!(r.message, denied(&s.bob, "USER"));
        // The empty id lists every job: ADMIN only.
        let r = s.n1.get_jobs_by_userid("").await;
        assert_eq!((r.jobs.len(), r.message), (0, denied(&s.n1, "NODE")));
    }
}

/// The node sees every job on it; others only those the ownership rule gives them.
mod get_jobs_by_nodeid {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        for who in [&s.n1, &s.alice] {
            let r = who.get_jobs_by_nodeid("n1").await;
            assert!(r.exists);
            assert_eq!(
                r.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
                ["j1"]
            );
        }
    }

    pub(super) async fn refused(s: Scene) {
        for who in [&s.bob, &s.n2] {
            let r = who.get_jobs_by_nodeid("n1").await;
            assert!(!r.exists && r.jobs.is_empty());
        }
    }
}

/// The owner moves an atq job to the nearest free slot of a window.
mod reschedule_job_nearest {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.alice.reschedule_job_nearest(reschedule("j1", 5)).await;
        assert!(r.rescheduled, "{}", r.message);
        assert!(
            r.message
                .starts_with("updated job schedule successfully; next_slot="),
            "{}",
            r.message
        );
        let j = s.alice.get_job_by_id("j1").await;
        assert!(
            j.start_date.starts_with(&format!("{YEAR}-03-05")),
            "{}",
            j.start_date
        );
    }

    pub(super) async fn refused(s: Scene) {
        let r = s.bob.reschedule_job_nearest(reschedule("j1", 5)).await;
        assert_eq!((r.rescheduled, r.message), (false, denied(&s.bob, "USER")));
        let r = s.alice.reschedule_job_nearest(reschedule("j9", 5)).await;
        assert_eq!(
            (r.rescheduled, r.message.as_str()),
            (false, "job with the given id not found.")
        );
        let mut bad = reschedule("j1", 5);
        bad.endtime = "soon".into();
        let r = s.alice.reschedule_job_nearest(bad).await;
        assert_eq!(
            (r.rescheduled, r.message.as_str()),
            (false, "invalid endtime: 'soon'")
        );
        let j = s.alice.get_job_by_id("j1").await;
        assert_eq!(j.start_date, format!("{YEAR}-03-01 10:00:00"));
    }
}

/// Never implemented by the original: an empty reply for any authenticated caller.
mod modify_job {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        assert_eq!(
            s.alice.modify_job(MessageModifyJob::default()).await,
            MessageModifyJobResponse::default()
        );
    }

    pub(super) async fn refused(s: Scene) {
        let status =
            s.h.anonymous()
                .try_modify_job(MessageModifyJob::default())
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::Unauthenticated);
    }
}

/// The owner deletes its job; nodes and strangers are denied.
mod delete_job_by_id {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.alice.delete_job_by_id("j1").await;
        assert_eq!(
            (r.exists, r.message.as_str()),
            (true, "deleted job successfully")
        );
        assert!(!s.h.admin().get_job_by_id("j1").await.exists);
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.bob, "USER"), (&s.n1, "NODE")] {
            let r = who.delete_job_by_id("j1").await;
            assert_eq!((r.exists, r.message), (true, denied(who, role)));
        }
        let r = s.bob.delete_job_by_id("j9").await;
        assert_eq!(
            (r.exists, r.message.as_str()),
            (false, "job with jobid=j9 does not exist")
        );
        assert!(s.alice.get_job_by_id("j1").await.exists);
    }
}

/// ADMIN clears a node's calendar; nobody else may.
mod delete_jobs_by_nodeid {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let r = s.h.admin().delete_jobs_by_nodeid("n1").await;
        assert_eq!(
            (r.num_deleted, r.message.as_str()),
            (1, "deleted records successfully")
        );
        assert!(!s.alice.get_job_by_id("j1").await.exists);
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.alice, "USER"), (&s.n1, "NODE")] {
            let r = who.delete_jobs_by_nodeid("n1").await;
            assert_eq!((r.num_deleted, r.message), (0, denied(who, role)));
        }
        assert!(s.alice.get_job_by_id("j1").await.exists);
    }
}

rpc_tests!(
    schedule_job,
    get_job_by_id,
    get_jobs_by_userid,
    get_jobs_by_nodeid,
    reschedule_job_nearest,
    modify_job,
    delete_job_by_id,
    delete_jobs_by_nodeid
);
