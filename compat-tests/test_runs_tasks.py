"""Runs (update_run / get_runs) and tasks (schedule_task / get_tasks / update_task)."""

from __future__ import annotations

import time

import pytest

from contract import enum_value, msg
from original.dates import Y

SUCCESS = enum_value("response_state", "SUCCESS")
FAILED = enum_value("response_state", "FAILED")
SERVER_START = enum_value("task_type", "SERVER_START")
SERVER_STOP = enum_value("task_type", "SERVER_STOP")
TASK_SCHEDULED = enum_value("task_status", "TASK_SCHEDULED")
TASK_COMPLETE = enum_value("task_status", "TASK_COMPLETE")


@pytest.fixture
def node(users):
    return users.register_node()


def run(runid, jobid, nodeid, userid="u", hour=10, status="running", msg_="started"):
    return msg("run_instance")(
        runid=runid,
        jobid=jobid,
        nodeid=nodeid,
        userid=userid,
        start_time=f"{Y}-01-15T{hour:02d}:00:00+00:00",
        end_time=f"{Y}-01-15T{hour:02d}:10:00+00:00",
        last_updated=f"{Y}-01-15T{hour:02d}:05:00+00:00",
        blob_url=f"https://blob.example/{runid}",
        status=status,
        status_message=msg_,
    )


def update(client, r):
    rsp = client.call("update_run", run=r)
    assert (rsp.state, rsp.message) == (SUCCESS, "updated run successfully")


# ---------------------------------------------------------------- runs


def test_update_run_and_get_it(node, uid):
    update(node.client, run(f"r-{uid}", f"j-{uid}", node.userid, userid="alice"))
    runs = node.client.call("get_runs", runid=f"r-{uid}").runs
    assert len(runs) == 1
    r = runs[0]
    assert (r.runid, r.jobid, r.nodeid, r.userid) == (f"r-{uid}", f"j-{uid}", node.userid, "alice")
    assert (r.blob_url, r.status, r.status_message) == (
        f"https://blob.example/r-{uid}", "running", "started",
    )  # fmt: skip
    # the original stores datetimes and answers str() of MongoDB's naive UTC value
    assert (r.start_time, r.end_time, r.last_updated) == (
        f"{Y}-01-15 10:00:00", f"{Y}-01-15 10:10:00", f"{Y}-01-15 10:05:00",
    )  # fmt: skip


def test_update_run_upserts_by_runid(node, uid):
    update(node.client, run(f"up-{uid}", f"j-{uid}", node.userid))
    update(node.client, run(f"up-{uid}", f"j-{uid}", node.userid, status="complete", msg_="done"))
    runs = node.client.call("get_runs", runid=f"up-{uid}").runs
    assert [(r.status, r.status_message) for r in runs] == [("complete", "done")]


def test_update_run_marks_the_node_active(node, admin, uid):
    assert list(admin.call("get_nodes", nodeid=node.userid, active=True).nodes) == []
    update(node.client, run(f"act-{uid}", f"j-{uid}", node.userid))
    assert len(admin.call("get_nodes", nodeid=node.userid, active=True).nodes) == 1


def test_get_runs_filters_and_limit(node, admin, uid):
    for h in (10, 11, 12, 13):
        update(node.client, run(f"f{h}-{uid}", f"job-{uid}", node.userid, userid=f"us-{uid}",
                                hour=h))  # fmt: skip
    update(node.client, run(f"g-{uid}", f"other-{uid}", node.userid, hour=12))

    by_job = admin.call("get_runs", jobid=f"job-{uid}").runs
    assert sorted(r.runid for r in by_job) == sorted(f"f{h}-{uid}" for h in (10, 11, 12, 13))
    assert len(admin.call("get_runs", nodeid=node.userid).runs) == 5
    assert len(admin.call("get_runs", userid=f"us-{uid}").runs) == 4
    # as the original: insertion (natural) order, so `limit` keeps the first runs stored
    first = admin.call("get_runs", jobid=f"job-{uid}", limit=2).runs
    assert [r.runid for r in first] == [f"f10-{uid}", f"f11-{uid}"]

    window = msg("message_time_range")(start=f"{Y}-01-15T10:30:00+00:00",
                                       end=f"{Y}-01-15T12:00:00+00:00")  # fmt: skip
    in_window = admin.call("get_runs", jobid=f"job-{uid}", time_range=window).runs
    assert sorted(r.runid for r in in_window) == [f"f11-{uid}", f"f12-{uid}"]
    assert list(admin.call("get_runs", runid=f"none-{uid}").runs) == []


# ---------------------------------------------------------------- tasks


def task(taskid, nodeid, *, kind=SERVER_START, runid="r", jobid="j", ttl=300, status=0):
    return msg("_task")(type=kind, taskid=taskid, runid=runid, jobid=jobid, nodeid=nodeid,
                        status=status, ttl_secs=ttl)  # fmt: skip


def test_schedule_task_and_get_it(node, uid):
    # the requested status is ignored: a new task is always TASK_SCHEDULED
    rsp = node.client.call("schedule_task", task=task(f"t-{uid}", node.userid, runid=f"r-{uid}",
                                                      jobid=f"j-{uid}", status=TASK_COMPLETE))
    assert (rsp.state, rsp.message) == (SUCCESS, "task successfully scheduled")
    tasks = node.client.call("get_tasks", taskid=f"t-{uid}").tasks
    assert len(tasks) == 1
    t = tasks[0]
    assert (t.type, t.taskid, t.runid, t.jobid, t.nodeid, t.status, t.ttl_secs) == (
        SERVER_START, f"t-{uid}", f"r-{uid}", f"j-{uid}", node.userid, TASK_SCHEDULED, 300,
    )  # fmt: skip


def test_duplicate_taskid_is_refused(node, uid):
    """Deviation: the original's duplicate check looked at a field that does not exist."""
    node.client.call("schedule_task", task=task(f"dt-{uid}", node.userid))
    rsp = node.client.call("schedule_task", task=task(f"dt-{uid}", node.userid, runid="other"))
    assert (rsp.state, rsp.message) == (FAILED, "task with the given id exists")
    assert [t.runid for t in node.client.call("get_tasks", taskid=f"dt-{uid}").tasks] == ["r"]


def test_update_task(node, uid):
    node.client.call("schedule_task", task=task(f"ut-{uid}", node.userid))
    rsp = node.client.call("update_task", taskid=f"ut-{uid}", status=TASK_COMPLETE)
    assert (rsp.state, rsp.message) == (SUCCESS, "updated task successfully")
    assert [t.status for t in node.client.call("get_tasks", taskid=f"ut-{uid}").tasks] == [
        TASK_COMPLETE
    ]


def test_update_unknown_task(admin):
    rsp = admin.call("update_task", taskid="no-such-task", status=TASK_COMPLETE)
    assert (rsp.state, rsp.message) == (FAILED, "task with given id does not exist")


def test_get_tasks_filters(users, admin, uid):
    a, b = users.register_node(), users.register_node()
    admin.call("schedule_task", task=task(f"ga-{uid}", a.userid, runid=f"ra-{uid}",
                                          jobid=f"job-{uid}"))  # fmt: skip
    admin.call("schedule_task", task=task(f"gb-{uid}", b.userid, runid=f"rb-{uid}",
                                          jobid=f"job-{uid}", kind=SERVER_STOP))  # fmt: skip
    assert [t.taskid for t in admin.call("get_tasks", nodeid=a.userid).tasks] == [f"ga-{uid}"]
    assert [t.taskid for t in admin.call("get_tasks", runid=f"rb-{uid}").tasks] == [f"gb-{uid}"]
    by_job = admin.call("get_tasks", jobid=f"job-{uid}").tasks
    assert sorted(t.taskid for t in by_job) == [f"ga-{uid}", f"gb-{uid}"]
    assert list(admin.call("get_tasks", taskid=f"nothing-{uid}").tasks) == []


def test_expired_tasks_disappear(node, uid):
    node.client.call("schedule_task", task=task(f"ttl-{uid}", node.userid, ttl=1))
    deadline = time.monotonic() + 10
    while node.client.call("get_tasks", taskid=f"ttl-{uid}").tasks:
        assert time.monotonic() < deadline, "a task with ttl_secs=1 was still listed after 10 s"
        time.sleep(0.5)
