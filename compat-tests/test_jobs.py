"""Jobs: scheduling with the original's overlap rules, lookups, rescheduling and deletion."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from contract import enum_value, msg
from original.dates import future_year

SUCCESS = enum_value("response_state", "SUCCESS")
FAILED = enum_value("response_state", "FAILED")
CRON = enum_value("job_type", "CRON")
ATQ = enum_value("job_type", "ATQ")
UTC = dt.timezone.utc
# Ahead of the clock, always, so no job expires (expire_at = end_date) while the suite runs.
DAY = dt.datetime(future_year(), 1, 15, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return DAY.replace(hour=hour, minute=minute)


def iso(t: dt.datetime) -> str:
    """How clients send dates: ISO 8601 with offset."""
    return t.isoformat()


def pystr(t: dt.datetime) -> str:
    """How the original prints dates it computed: Python's str(datetime)."""
    return str(t)


def params(tag: str = "x"):
    return msg("job_params")(
        mode="docker", deploy=f"image=hello-{tag}", execute="run.sh", finish="collect.sh"
    )


def job_request(jobid, nodeid, *, kind=CRON, schedule="0 * * * *", start=None, end=None,
                length=600, overhead=True, server=None, trigger=None, config="cfg: 1"):  # fmt: skip
    fields = dict(
        id=jobid,
        nodeid=nodeid,
        type=kind,
        params=params(jobid),
        schedule=schedule if kind == CRON else "",
        start_date=iso(start or at(10)),
        end_date=iso(end or at(14)),
        length_secs=length,
        overhead=overhead,
        userid="someone-else",  # the original ignores it and stores the caller
        config=config,
    )
    if server is not None:
        fields["server"] = server
    if trigger is not None:
        fields["trigger"] = trigger
    return msg("message_schedule_job")(**fields)


def schedule(client, *args, **kwargs):
    return client.call("schedule_job", job_request(*args, **kwargs))


def assert_scheduled(rsp) -> None:
    assert (rsp.state, rsp.message) == (SUCCESS, "job successfully scheduled")


def conflict_text(i, jobid, cron, start, end, c_start, c_end) -> str:
    return (
        f"<{i}, jobid={jobid}, cron='{cron}', start={start}, end={end},"
        f"conflict_start={c_start}, conflict_end={c_end}>"
    )


@pytest.fixture
def node(users):
    return users.register_node()


@pytest.fixture
def user(users):
    return users.register("USER")


# ---------------------------------------------------------------- schedule_job / get_job_by_id


def test_schedule_cron_job_and_get_it(user, node, uid):
    assert_scheduled(schedule(user.client, f"cron-{uid}", node.userid, trigger=None))
    got = user.client.call("get_job_by_id", jobid=f"cron-{uid}")
    assert got.exists
    assert (got.id, got.nodeid, got.userid, got.type) == (f"cron-{uid}", node.userid,
                                                          user.userid, CRON)  # fmt: skip
    assert got.params == params(f"cron-{uid}")
    assert got.schedule == "0 * * * *"
    assert (got.start_date, got.end_date) == (iso(at(10)), iso(at(14)))
    assert (got.overhead, got.config) == (True, "cfg: 1")


def test_schedule_atq_job_and_get_it(user, node, uid):
    assert_scheduled(schedule(user.client, f"atq-{uid}", node.userid, kind=ATQ, start=at(11),
                              end=at(12), trigger="uplink_throughput_bps > 5",
                              server=node.userid))  # fmt: skip
    got = user.client.call("get_job_by_id", jobid=f"atq-{uid}")
    assert (got.exists, got.type, got.schedule) == (True, ATQ, "")
    assert (got.trigger, got.server) == ("uplink_throughput_bps > 5", node.userid)
    assert (got.start_date, got.end_date) == (iso(at(11)), iso(at(12)))


def test_get_unknown_job(admin):
    """The original crashed (UNKNOWN) on an unknown job id; ours answers exists=false."""
    got = admin.call("get_job_by_id", jobid="no-such-job-g")
    assert got.exists is False


def test_duplicate_job_id_is_refused(user, node, uid):
    assert_scheduled(schedule(user.client, f"dup-{uid}", node.userid, overhead=False))
    rsp = schedule(user.client, f"dup-{uid}", node.userid, overhead=False, start=at(20),
                   end=at(21))  # fmt: skip
    assert (rsp.state, rsp.message) == (FAILED, "job with the given id exists")


def test_invalid_trigger_is_refused(user, node, uid):
    rsp = schedule(user.client, f"trig-{uid}", node.userid, trigger="nosuchvar > 5")
    assert (rsp.state, rsp.message) == (FAILED, "trigger: undefined variable 'nosuchvar'")
    assert user.client.call("get_job_by_id", jobid=f"trig-{uid}").exists is False


# ---------------------------------------------------------------- overlap rules


def test_overlapping_atq_jobs_conflict(user, node, uid):
    assert_scheduled(schedule(user.client, f"a1-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11)))  # fmt: skip
    rsp = schedule(user.client, f"a2-{uid}", node.userid, kind=ATQ, start=at(10, 5), end=at(11))
    assert rsp.state == FAILED
    assert rsp.message == "schedule conflict:" + conflict_text(
        0, f"a1-{uid}", "", iso(at(10)), iso(at(11)), pystr(at(10, 5)), pystr(at(10, 10))
    )


def test_touching_atq_jobs_conflict(user, node, uid):
    """The original counts start == previous end as a conflict (start_max <= end_min)."""
    assert_scheduled(schedule(user.client, f"t1-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11)))  # fmt: skip
    rsp = schedule(user.client, f"t2-{uid}", node.userid, kind=ATQ, start=at(10, 10), end=at(11))
    assert rsp.state == FAILED
    assert rsp.message.startswith(f"schedule conflict:<0, jobid=t1-{uid}, ")


def test_overlapping_cron_jobs_conflict(user, node, uid):
    assert_scheduled(schedule(user.client, f"c1-{uid}", node.userid, schedule="0 * * * *"))
    rsp = schedule(user.client, f"c2-{uid}", node.userid, schedule="5 * * * *")
    assert rsp.state == FAILED
    assert rsp.message == "schedule conflict:" + conflict_text(
        0, f"c1-{uid}", "0 * * * *", iso(at(10)), iso(at(14)), pystr(at(9, 55)), pystr(at(10, 15))
    )


def test_back_to_back_cron_jobs_do_not_conflict(user, node, uid):
    assert_scheduled(schedule(user.client, f"b1-{uid}", node.userid, schedule="0 * * * *"))
    assert_scheduled(schedule(user.client, f"b2-{uid}", node.userid, schedule="10 * * * *"))


def test_atq_job_over_a_cron_run_conflicts(user, node, uid):
    assert_scheduled(schedule(user.client, f"cr-{uid}", node.userid, schedule="0 * * * *"))
    rsp = schedule(user.client, f"aq-{uid}", node.userid, kind=ATQ, start=at(10, 55), end=at(12))
    assert rsp.state == FAILED
    assert rsp.message == "schedule conflict:" + conflict_text(
        0, f"cr-{uid}", "0 * * * *", iso(at(10)), iso(at(14)), pystr(at(10, 55)), pystr(at(11, 5))
    )


def test_atq_job_inside_a_running_cron_run_is_accepted_like_the_original(user, node, uid):
    """The original only looks for cron starts inside the atq window."""
    assert_scheduled(schedule(user.client, f"cr2-{uid}", node.userid, schedule="0 * * * *"))
    assert_scheduled(schedule(user.client, f"aq2-{uid}", node.userid, kind=ATQ, start=at(10, 5),
                              end=at(12), length=300))  # fmt: skip


def test_jobs_without_overhead_are_not_checked(user, node, uid):
    assert_scheduled(schedule(user.client, f"o1-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11), overhead=False))  # fmt: skip
    assert_scheduled(schedule(user.client, f"o2-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11), overhead=True))  # fmt: skip
    assert_scheduled(schedule(user.client, f"o3-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11), overhead=False))  # fmt: skip


def test_jobs_on_the_server_node_count_as_conflicts(users, user, node, uid):
    server_node = users.register_node()
    assert_scheduled(schedule(user.client, f"s1-{uid}", node.userid, kind=ATQ, start=at(10),
                              end=at(11), server=server_node.userid))  # fmt: skip
    rsp = schedule(user.client, f"s2-{uid}", server_node.userid, kind=ATQ, start=at(10, 5),
                   end=at(11))  # fmt: skip
    assert rsp.state == FAILED
    assert rsp.message.startswith(f"schedule conflict:<0, jobid=s1-{uid}, cron='', ")


# ---------------------------------------------------------------- listing jobs


def test_get_jobs_by_nodeid_includes_jobs_using_it_as_server(users, user, node, uid):
    other = users.register_node()
    assert_scheduled(schedule(user.client, f"n1-{uid}", node.userid, length=900))
    assert_scheduled(schedule(user.client, f"n2-{uid}", other.userid, kind=ATQ, start=at(20),
                              end=at(21), server=node.userid))  # fmt: skip
    rsp = user.client.call("get_jobs_by_nodeid", nodeid=node.userid)
    assert rsp.exists is True
    jobs = {j.id: j for j in rsp.jobs}
    assert set(jobs) == {f"n1-{uid}", f"n2-{uid}"}
    cron = jobs[f"n1-{uid}"]
    assert (cron.nodeid, cron.userid, cron.type, cron.schedule, cron.length_secs) == (
        node.userid, user.userid, CRON, "0 * * * *", 900,
    )  # fmt: skip
    assert (cron.start_date, cron.end_date, cron.overhead) == (iso(at(10)), iso(at(14)), True)
    assert cron.params == params(f"n1-{uid}")
    assert jobs[f"n2-{uid}"].server == node.userid


def test_get_jobs_by_unknown_nodeid(admin):
    rsp = admin.call("get_jobs_by_nodeid", nodeid="no-such-node-j")
    assert (rsp.exists, list(rsp.jobs)) == (False, [])


def test_get_jobs_by_userid_as_admin(admin, user, node, uid):
    assert_scheduled(schedule(user.client, f"u1-{uid}", node.userid, kind=ATQ, start=at(15),
                              end=at(16)))  # fmt: skip
    rsp = admin.call("get_jobs_by_userid", userid=user.userid)
    assert rsp.exists is True
    assert [(j.id, j.userid, j.type, j.schedule) for j in rsp.jobs] == [
        (f"u1-{uid}", user.userid, ATQ, "")
    ]
    assert admin.call("get_jobs_by_userid", userid="no-jobs-user").exists is False


def test_get_jobs_by_userid_of_own_jobs(user, node, uid):
    """The original crashed for every non-admin (UnboundLocalError); the intent was owner-only."""
    assert_scheduled(schedule(user.client, f"own-{uid}", node.userid))
    rsp = user.client.call("get_jobs_by_userid", userid=user.userid)
    assert rsp.exists is True
    assert [j.id for j in rsp.jobs] == [f"own-{uid}"]


def test_get_jobs_by_userid_of_someone_else_is_denied(users, user, node, uid):
    other = users.register("USER")
    assert_scheduled(schedule(other.client, f"oth-{uid}", node.userid))
    rsp = user.client.call("get_jobs_by_userid", userid=other.userid)
    assert (rsp.exists, list(rsp.jobs)) == (False, [])
    assert rsp.message == f"permission denied: userid={user.userid} and role=USER"


def test_get_nodes_lists_the_nodes_jobs(admin, user, node, uid):
    assert_scheduled(schedule(user.client, f"gn-{uid}", node.userid))
    got = admin.call("get_nodes", nodeid=node.userid).nodes[0]
    assert got.jobs == (
        f"<jobid=gn-{uid} userid={user.userid} type=cron start={iso(at(10))} end={iso(at(14))} "
        "length=600 schedule=0 * * * * overhead=True server=None trigger=None>"
    )


# ---------------------------------------------------------------- reschedule_job_nearest


def test_reschedule_unknown_job(admin):
    rsp = admin.call("reschedule_job_nearest", jobid="no-such-job-r", starttime=iso(at(10)),
                     endtime=iso(at(11)))  # fmt: skip
    assert (rsp.rescheduled, rsp.message) == (False, "job with the given id not found.")


def test_reschedule_cron_job_is_refused(user, node, uid):
    assert_scheduled(schedule(user.client, f"rc-{uid}", node.userid))
    rsp = user.client.call("reschedule_job_nearest", jobid=f"rc-{uid}", starttime=iso(at(10)),
                           endtime=iso(at(11)))  # fmt: skip
    assert (rsp.rescheduled, rsp.message) == (False, "only jobs of type 'atq' can be rescheduled.")


def test_reschedule_atq_job_to_the_nearest_free_slot(user, node, uid):
    assert_scheduled(schedule(user.client, f"busy-{uid}", node.userid, kind=ATQ, start=at(18),
                              end=at(18, 10)))  # fmt: skip
    assert_scheduled(schedule(user.client, f"mv-{uid}", node.userid, kind=ATQ, start=at(20),
                              end=at(21)))  # fmt: skip
    rsp = user.client.call("reschedule_job_nearest", jobid=f"mv-{uid}", starttime=iso(at(18)),
                           endtime=iso(at(19)))  # fmt: skip
    assert rsp.rescheduled is True
    assert rsp.message == f"updated job schedule successfully; next_slot={pystr(at(18, 10))}"
    got = user.client.call("get_job_by_id", jobid=f"mv-{uid}")
    assert got.start_date == pystr(at(18, 10))


def test_reschedule_atq_job_without_room(user, node, uid):
    assert_scheduled(schedule(user.client, f"full-{uid}", node.userid, kind=ATQ, start=at(18),
                              end=at(19)))  # fmt: skip
    assert_scheduled(schedule(user.client, f"nr-{uid}", node.userid, kind=ATQ, start=at(20),
                              end=at(21)))  # fmt: skip
    rsp = user.client.call("reschedule_job_nearest", jobid=f"nr-{uid}", starttime=iso(at(18)),
                           endtime=iso(at(19)))  # fmt: skip
    assert rsp.rescheduled is False
    assert rsp.message == (
        "empty slot not found with the given constraints:"
        f"start_time={pystr(at(18))} end_time={pystr(at(19))}"
    )


# ---------------------------------------------------------------- modify_job


def test_modify_job_answers(admin):
    """The original never implemented modify_job: its handler returned nothing, which grpcio
    turned into INTERNAL. Its response message has no field, so the compatible answer is an
    empty OK reply, never a crash status."""
    reply = admin.reply("modify_job")
    assert reply.code == grpc.StatusCode.OK, reply
    assert reply.raw == b""


# ---------------------------------------------------------------- deletion


def test_owner_deletes_own_job(user, node, uid):
    assert_scheduled(schedule(user.client, f"del-{uid}", node.userid))
    rsp = user.client.call("delete_job_by_id", jobid=f"del-{uid}")
    assert (rsp.exists, rsp.message) == (True, "deleted job successfully")
    assert user.client.call("get_job_by_id", jobid=f"del-{uid}").exists is False
    rsp = user.client.call("delete_job_by_id", jobid=f"del-{uid}")
    assert (rsp.exists, rsp.message) == (False, f"job with jobid=del-{uid} does not exist")


def test_admin_deletes_any_job(admin, user, node, uid):
    assert_scheduled(schedule(user.client, f"adel-{uid}", node.userid))
    rsp = admin.call("delete_job_by_id", jobid=f"adel-{uid}")
    assert (rsp.exists, rsp.message) == (True, "deleted job successfully")
    rsp = admin.call("delete_job_by_id", jobid=f"adel-{uid}")
    assert (rsp.exists, rsp.message) == (False, "job with given jobid does not exist")


@pytest.mark.parametrize("caller_role", ["USER", "USER_PRIV", "NODE", "NODE_PRIV"])
def test_others_may_not_delete_a_job(users, user, node, uid, caller_role):
    assert_scheduled(schedule(user.client, f"keep-{uid}", node.userid))
    caller = users.register(caller_role)
    rsp = caller.client.call("delete_job_by_id", jobid=f"keep-{uid}")
    assert rsp.message == f"permission denied: userid={caller.userid} and role={caller_role}"
    assert rsp.exists is True
    assert user.client.call("get_job_by_id", jobid=f"keep-{uid}").exists is True


def test_delete_jobs_by_nodeid(admin, user, node, users, uid):
    other = users.register_node()
    assert_scheduled(schedule(user.client, f"m1-{uid}", node.userid, overhead=False))
    assert_scheduled(schedule(user.client, f"m2-{uid}", node.userid, overhead=False))
    assert_scheduled(schedule(user.client, f"m3-{uid}", other.userid, server=node.userid))
    rsp = admin.call("delete_jobs_by_nodeid", nodeid=node.userid)
    # only jobs ON the node are deleted, not those using it as server
    assert (rsp.num_deleted, rsp.message) == (2, "deleted records successfully")
    assert [j.id for j in admin.call("get_jobs_by_nodeid", nodeid=node.userid).jobs] == [
        f"m3-{uid}"
    ]
    rsp = admin.call("delete_jobs_by_nodeid", nodeid=node.userid)
    assert (rsp.num_deleted, rsp.message) == (0, "deleted records successfully")


@pytest.mark.parametrize("caller_role", ["USER", "NODE"])
def test_delete_jobs_by_nodeid_needs_admin(users, user, node, uid, caller_role):
    """Deviation: the original let any authenticated user wipe a node's jobs (its doc: ADMIN)."""
    assert_scheduled(schedule(user.client, f"wipe-{uid}", node.userid))
    caller = node if caller_role == "NODE" else user
    rsp = caller.client.call("delete_jobs_by_nodeid", nodeid=node.userid)
    assert rsp.num_deleted == 0
    assert rsp.message == f"permission denied: userid={caller.userid} and role={caller_role}"
    assert user.client.call("get_job_by_id", jobid=f"wipe-{uid}").exists is True


def test_delete_node_with_its_jobs(admin, user, node, uid):
    assert_scheduled(schedule(user.client, f"dn-{uid}", node.userid))
    rsp = admin.call("delete_node", nodeid=node.userid, deleteJobs=True)
    assert (rsp.state, rsp.message) == (SUCCESS, "node deleted")
    assert admin.call("get_job_by_id", jobid=f"dn-{uid}").exists is False


def test_delete_node_keeps_its_jobs_by_default(admin, user, node, uid):
    assert_scheduled(schedule(user.client, f"dk-{uid}", node.userid))
    assert admin.call("delete_node", nodeid=node.userid).state == SUCCESS
    assert admin.call("get_job_by_id", jobid=f"dk-{uid}").exists is True


# ---------------------------------------------------------------- get_scheduled_runs


def test_get_scheduled_runs_expands_cron_and_atq(user, node, uid):
    assert_scheduled(schedule(user.client, f"ev-c-{uid}", node.userid, schedule="0 * * * *",
                              start=at(10), end=at(14)))  # fmt: skip
    assert_scheduled(schedule(user.client, f"ev-a-{uid}", node.userid, kind=ATQ, start=at(12, 30),
                              end=at(13), length=120))  # fmt: skip
    rsp = user.client.call("get_scheduled_runs", nodeid=node.userid, start=iso(at(10)),
                           end=iso(at(13)))  # fmt: skip
    assert (rsp.state, rsp.message) == (SUCCESS, "success")
    cron = [(e.title, e.start, e.end, e.type, e.schedule, e.length)
            for e in rsp.events if e.type == "cron"]  # fmt: skip
    assert cron == [
        (f"ev-c-{uid}", pystr(at(h)), pystr(at(h, 10)), "cron", "0 * * * *", 600)
        for h in (10, 11, 12, 13)
    ]
    atq = [(e.title, e.start, e.end, e.schedule, e.length) for e in rsp.events if e.type == "atq"]
    assert atq == [(f"ev-a-{uid}", pystr(at(12, 30)), pystr(at(12, 32)), "", 120)]
    assert sorted(e.id for e in rsp.events) == list(range(len(rsp.events)))
    assert all(e.overhead and e.params == params(e.title) for e in rsp.events)


def test_get_scheduled_runs_with_end_before_start(admin, node):
    rsp = admin.call("get_scheduled_runs", nodeid=node.userid, start=iso(at(13)), end=iso(at(10)))
    assert (rsp.state, rsp.message, list(rsp.events)) == (
        FAILED, "error: end must be greater than start", [],
    )  # fmt: skip


def test_get_scheduled_runs_of_a_node_without_jobs(admin, node):
    rsp = admin.call("get_scheduled_runs", nodeid=node.userid, start=iso(at(10)), end=iso(at(13)))
    assert (rsp.state, rsp.message, list(rsp.events)) == (SUCCESS, "success", [])
