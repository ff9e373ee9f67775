"""Users and global config: the original's replies, messages and role rules."""

from __future__ import annotations

import grpc
import pytest

from conftest import ADMIN_ID, static_token, token_from_reply
from contract import enum_value, msg

SUCCESS = enum_value("response_state", "SUCCESS")
FAILED = enum_value("response_state", "FAILED")
NON_ADMIN_ROLES = ["USER", "NODE", "USER_PRIV", "NODE_PRIV"]


def role(name: str) -> int:
    return enum_value("user_roles", name)


def denied(identity) -> str:
    return f"permission denied: userid={identity.userid} and role={identity.role}"


# ---------------------------------------------------------------- register_user / get_user


def test_register_user_answers_a_random_token(server, admin, uid):
    """Deviation (docs/compatibility.md): the token is random, not sha256(id+name+team)."""
    rsp = admin.call(
        "register_user", id=f"u-{uid}", name="Ada", role=role("USER_PRIV"), team="MSR"
    )
    assert rsp.state == SUCCESS
    token = token_from_reply(rsp.message, "user registered")
    assert token != static_token(f"u-{uid}", "Ada", "MSR")
    assert server.client(f"u-{uid}", token).call("get_user", userid=f"u-{uid}").exists
    derived = server.client(f"u-{uid}", static_token(f"u-{uid}", "Ada", "MSR"))
    assert derived.reply("get_user", userid=f"u-{uid}").code == grpc.StatusCode.UNAUTHENTICATED

    got = admin.call("get_user", userid=f"u-{uid}")
    assert (got.exists, got.id, got.name, got.role, got.team) == (
        True, f"u-{uid}", "Ada", role("USER_PRIV"), "MSR",
    )  # fmt: skip


def test_register_user_twice_is_refused(admin, uid):
    assert admin.call("register_user", id=f"d-{uid}", name="a", role=1, team="t").state == SUCCESS
    rsp = admin.call("register_user", id=f"d-{uid}", name="other", role=1, team="t")
    assert (rsp.state, rsp.message) == (FAILED, "user with given id already exists")


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_register_user_needs_admin(users, caller_role, uid):
    caller = users.register(caller_role)
    rsp = caller.client.call("register_user", id=f"r-{uid}", name="n", role=0, team="t")
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert not users.admin_client.call("get_user", userid=f"r-{uid}").exists


def test_get_user_of_unknown_id(admin):
    """The original answers exists=false with role USER and empty strings."""
    rsp = admin.call("get_user", userid="never-registered")
    assert (rsp.exists, rsp.id, rsp.name, rsp.role, rsp.team) == (False, "", "", role("USER"), "")


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_any_role_may_get_a_user(users, caller_role):
    caller = users.register(caller_role)
    rsp = caller.client.call("get_user", userid=ADMIN_ID)
    assert rsp.exists and rsp.role == role("ADMIN")


# ---------------------------------------------------------------- modify_user


def test_modify_user(users, admin):
    user = users.register("USER")
    rsp = admin.call("modify_user", id=user.userid, name="New Name", role=role("NODE_PRIV"),
                     team="New Team")  # fmt: skip
    assert (rsp.state, rsp.message) == (SUCCESS, "user updated")
    got = admin.call("get_user", userid=user.userid)
    assert (got.name, got.role, got.team) == ("New Name", role("NODE_PRIV"), "New Team")
    # deviation (docs/compatibility.md): the original erased the tokens; ours keep working
    assert user.client.call("get_user", userid=user.userid).role == role("NODE_PRIV")


def test_modify_unknown_user(admin):
    rsp = admin.call("modify_user", id="no-such-user-m", name="n", role=1, team="t")
    assert (rsp.state, rsp.message) == (FAILED, "user with given id does not exist")


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_modify_user_needs_admin(users, caller_role):
    caller = users.register(caller_role)
    rsp = caller.client.call("modify_user", id=caller.userid, name="n", role=0, team="t")
    # the original crashed here (UNKNOWN); ours answers the usual denial
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert users.admin_client.call("get_user", userid=caller.userid).role == role(caller_role)


# ---------------------------------------------------------------- delete_user


def test_delete_user(users, admin):
    user = users.register("USER")
    rsp = admin.call("delete_user", userid=user.userid)
    assert (rsp.state, rsp.message) == (SUCCESS, "user deleted")
    assert not admin.call("get_user", userid=user.userid).exists
    rsp = admin.call("delete_user", userid=user.userid)
    assert (rsp.state, rsp.message) == (FAILED, "user with given id does not exist")


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_delete_user_needs_admin(users, caller_role):
    caller = users.register(caller_role)
    victim = users.register("USER")
    rsp = caller.client.call("delete_user", userid=victim.userid)
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert users.admin_client.call("get_user", userid=victim.userid).exists


# ---------------------------------------------------------------- global config


def sample_settings(tag: str):
    return msg("settings")(
        datastore=msg("datastore_settings")(
            blob=msg("blob_settings")(
                connectionString=f"DefaultEndpointsProtocol=https;AccountName={tag}",
                container=f"container-{tag}",
                artifactPath="artifacts/",
            )
        ),
        weather=msg("weather_api_settings")(apikey=f"key-{tag}"),
    )


def test_update_and_get_global_config(admin, uid):
    settings = sample_settings(uid)
    rsp = admin.call("update_global_config", config=settings)
    assert (rsp.state, rsp.message) == (SUCCESS, "config updated")
    assert admin.call("get_global_config").config == settings


def test_node_may_read_global_config(users, admin, uid):
    admin.call("update_global_config", config=sample_settings(uid))
    node = users.register_node()
    assert node.client.call("get_global_config").config.HasField("datastore")


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_update_global_config_needs_admin(users, caller_role, uid):
    caller = users.register(caller_role)
    rsp = caller.client.call("update_global_config", config=sample_settings("evil" + uid))
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))


@pytest.mark.parametrize("caller_role", ["USER", "USER_PRIV"])
def test_users_read_global_config_without_credentials(users, admin, caller_role, uid):
    """Deviation (docs/compatibility.md): an OK reply (the original client retries every error
    status forever) with the storage connection string and the weather API key left out."""
    admin.call("update_global_config", config=sample_settings(uid))
    caller = users.register(caller_role)
    got = caller.client.call("get_global_config").config
    assert got.datastore.blob.connectionString == ""
    assert got.weather.apikey == ""
    full = sample_settings(uid)
    assert got.datastore.blob.container == full.datastore.blob.container
    assert got.datastore.blob.artifactPath == full.datastore.blob.artifactPath


def test_get_global_config_before_any_update(fresh_server):
    """The original failed with UNKNOWN here; ours answers an empty config (documented)."""
    rsp = fresh_server.admin().call("get_global_config")
    assert rsp.config == msg("settings")()


# ---------------------------------------------------------------- bad input


def test_unknown_role_value_is_refused(admin, uid):
    rsp = admin.call("register_user", id=f"bad-role-{uid}", name="n", role=7, team="t")
    assert (rsp.state, rsp.message) == (FAILED, "invalid role: 7")
    assert not admin.call("get_user", userid=f"bad-role-{uid}").exists


def test_huge_strings_do_not_break_the_server(admin, uid):
    """Free text is stored up to the message limit, as the original did; ids stay bounded."""
    big = "x" * (1 << 20)
    rsp = admin.call("register_user", id=f"big-{uid}", name=big, role=1, team=big)
    assert rsp.state == SUCCESS, rsp.message
    assert admin.call("get_user", userid=f"big-{uid}").name == big
    rsp = admin.call("register_user", id="i" * 257, name="n", role=1, team="t")
    assert (rsp.state, rsp.message) == (FAILED, "invalid id: longer than 256 bytes")
    assert admin.call("get_user", userid=ADMIN_ID).exists


def test_oversized_request_is_refused_by_the_transport(admin, uid):
    """Deviation (documented): requests over --max-message-bytes (4 MiB) are refused."""
    big = "x" * (5 << 20)
    reply = admin.reply("register_user", id=f"huge-{uid}", name=big, role=1, team="t")
    assert reply.code in (grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert admin.call("get_user", userid=ADMIN_ID).exists


def test_concurrent_clients(users, server):
    """The original served 10 workers; many parallel callers must all be answered."""
    from concurrent.futures import ThreadPoolExecutor

    people = [users.register("USER") for _ in range(4)]

    def work(i):
        who = people[i % len(people)]
        return who.client.call("get_user", userid=who.userid).id == who.userid

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert all(pool.map(work, range(64)))


def test_restart_keeps_data_and_reapplies_the_admin_token(orchestrator_binary, tmp_path):
    from conftest import _start

    srv = _start(orchestrator_binary, tmp_path, "restart", "embedded", False)
    try:
        rsp = srv.admin().call("register_user", id="survivor", name="S", role=1, team="T")
        assert rsp.state == SUCCESS
        survivor_token = token_from_reply(rsp.message, "user registered")
        old_token = srv.admin_token
        srv.stop()
        srv.admin_token = "a-new-admin-token"
        srv.start()
        assert srv.admin().call("get_user", userid="survivor").exists
        assert srv.client("survivor", survivor_token).call(
            "get_user", userid="survivor"
        ).exists
        stale = srv.client(ADMIN_ID, old_token).reply("get_user", userid=ADMIN_ID)
        assert (stale.code, stale.details) == (grpc.StatusCode.UNAUTHENTICATED, "Invalid token")
    finally:
        srv.stop()
