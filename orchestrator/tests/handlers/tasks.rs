//! Task RPCs: a client node asks its job's server node to start or stop the server side;
//! tasks follow their job's ownership rule and expire at their TTL by the clock.

use chrono::Duration;
use leotest_proto::unary::*;

use crate::harness::{denied, task, Scene, FAILED, OK};

fn put(t: Task) -> MessageScheduleTask {
    MessageScheduleTask { task: Some(t) }
}

fn complete(taskid: &str) -> MessageUpdateTask {
    MessageUpdateTask {
        taskid: taskid.into(),
        status: TaskStatus::TaskComplete as i32,
    }
}

fn taskids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.taskid.as_str()).collect()
}

/// The job's node schedules a task; it starts as TASK_SCHEDULED whatever was sent.
mod schedule_task {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        let mut t = task("t1", "j1", "n1");
        t.status = TaskStatus::TaskComplete as i32;
        let r = s.n1.schedule_task(put(t)).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "task successfully scheduled")
        );
        let tasks = s.n1.get_tasks(()).await.tasks;
        assert_eq!(taskids(&tasks), ["t1"]);
        assert_eq!(tasks[0].status, TaskStatus::TaskScheduled as i32);
        let r = s.alice.schedule_task(put(task("t1", "j1", "n1"))).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "task with the given id exists")
        );
    }

    pub(super) async fn refused(s: Scene) {
        for (who, role) in [(&s.bob, "USER"), (&s.n2, "NODE")] {
            let r = who.schedule_task(put(task("t1", "j1", "n1"))).await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let mut t = task("t2", "j1", "n1");
        t.ttl_secs = -1;
        let r = s.n1.schedule_task(put(t)).await;
        assert_eq!(r.state, FAILED);
        assert!(r.message.starts_with("invalid ttl_secs"), "{}", r.message);
        assert!(s.h.admin().get_tasks(()).await.tasks.is_empty());
    }
}

/// The node and the job's owner see the task until its TTL runs out.
mod get_tasks {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        s.n1.schedule_task(put(task("t1", "j1", "n1"))).await;
        for who in [&s.n1, &s.alice] {
            assert_eq!(taskids(&who.get_tasks(()).await.tasks), ["t1"]);
        }
        let by_job = MessageGetTasks {
            jobid: Some("j1".into()),
            ..Default::default()
        };
        assert_eq!(taskids(&s.alice.get_tasks(by_job).await.tasks), ["t1"]);
        s.h.clock.advance(Duration::seconds(601));
        assert!(s.n1.get_tasks(()).await.tasks.is_empty());
    }

    pub(super) async fn refused(s: Scene) {
        s.n1.schedule_task(put(task("t1", "j1", "n1"))).await;
        for who in [&s.bob, &s.n2] {
            assert!(who.get_tasks(()).await.tasks.is_empty());
        }
    }
}

/// The task's node completes it; strangers are denied.
mod update_task {
    use super::*;

    pub(super) async fn ok(s: Scene) {
        s.n1.schedule_task(put(task("t1", "j1", "n1"))).await;
        let r = s.n1.update_task(complete("t1")).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (OK, "updated task successfully")
        );
        assert_eq!(
            s.alice.get_tasks(()).await.tasks[0].status,
            TaskStatus::TaskComplete as i32
        );
    }

    pub(super) async fn refused(s: Scene) {
        s.n1.schedule_task(put(task("t1", "j1", "n1"))).await;
        for (who, role) in [(&s.bob, "USER"), (&s.n2, "NODE")] {
            let r = who.update_task(complete("t1")).await;
            assert_eq!((r.state, r.message), (FAILED, denied(who, role)));
        }
        let r = s.n1.update_task(complete("t9")).await;
        assert_eq!(
            (r.state, r.message.as_str()),
            (FAILED, "task with given id does not exist")
        );
        assert_eq!(
            s.n1.get_tasks(()).await.tasks[0].status,
            TaskStatus::TaskScheduled as i32
        );
    }
}

rpc_tests!(schedule_task, get_tasks, update_task);
