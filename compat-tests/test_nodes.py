"""Nodes, heartbeats, scavenger mode and kernel access: the original's replies and role rules."""

from __future__ import annotations

import re

import pytest

from conftest import ADMIN_ID, static_token
from contract import enum_value, msg

SUCCESS = enum_value("response_state", "SUCCESS")
FAILED = enum_value("response_state", "FAILED")
NON_ADMIN_ROLES = ["USER", "NODE", "USER_PRIV", "NODE_PRIV"]


def denied(identity) -> str:
    return f"permission denied: userid={identity.userid} and role={identity.role}"


def get_node(client, nodeid: str):
    nodes = client.call("get_nodes", nodeid=nodeid).nodes
    assert len(nodes) <= 1
    return nodes[0] if nodes else None


# ---------------------------------------------------------------- register_node / get_nodes


def test_register_node_creates_a_node_user(users, admin):
    node = users.register_node()
    got = admin.call("get_user", userid=node.userid)
    assert (got.exists, got.name, got.team, got.role) == (
        True, node.name, node.team, enum_value("user_roles", "NODE"),
    )  # fmt: skip
    # the node authenticates with the token from the reply message
    assert node.client.call("get_user", userid=node.userid).exists


def test_get_nodes_answers_the_registered_fields(users, admin):
    node = users.register_node()
    got = get_node(admin, node.userid)
    assert got is not None
    assert (got.nodeid, got.name, got.description) == (node.userid, node.name, node.team)
    assert (got.coords, got.location, got.provider, got.public_ip) == (
        "17.4,78.3", "hyderabad", "starlink", "192.0.2.10",
    )  # fmt: skip
    assert got.scavenger_mode_active is False
    # the original stores last_active 2020-01-01 when none is given and answers str(datetime)
    assert got.last_active == "2020-01-01 00:00:00"
    assert got.jobs == ""


def test_register_node_twice_is_refused(users, admin):
    node = users.register_node()
    rsp = admin.call("register_node", node=msg("_node")(nodeid=node.userid, name="again",
                                                        coords="0,0", location="x"))  # fmt: skip
    assert (rsp.state, rsp.message) == (FAILED, "node with the given id exists")
    # the first token still works
    assert node.client.call("get_user", userid=node.userid).exists


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_register_node_needs_admin(users, caller_role, uid):
    caller = users.register(caller_role)
    node = msg("_node")(nodeid=f"n-{uid}", name="n", description="d", coords="0,0", location="x")
    rsp = caller.client.call("register_node", node=node)
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert get_node(users.admin_client, f"n-{uid}") is None


def test_get_nodes_filters(users, admin, uid):
    a = users.register_node(f"filt-a-{uid}")
    admin.call("update_node", nodeid=a.userid, location=f"loc-{uid}", provider=f"prov-{uid}")
    users.register_node(f"filt-b-{uid}")
    by_loc = admin.call("get_nodes", location=f"loc-{uid}").nodes
    assert [n.nodeid for n in by_loc] == [a.userid]
    by_prov = admin.call("get_nodes", provider=f"prov-{uid}").nodes
    assert [n.nodeid for n in by_prov] == [a.userid]
    by_name = admin.call("get_nodes", name=a.name).nodes
    assert [n.nodeid for n in by_name] == [a.userid]
    assert list(admin.call("get_nodes", nodeid=f"nothing-{uid}").nodes) == []


# ---------------------------------------------------------------- heartbeat / active nodes


def test_heartbeat_from_the_node_marks_it_active(users, admin):
    node = users.register_node()
    assert list(admin.call("get_nodes", nodeid=node.userid, active=True).nodes) == []
    assert node.client.call("report_heartbeat", nodeid=node.userid).received is True
    active = admin.call("get_nodes", nodeid=node.userid, active=True, activeThres=600).nodes
    assert [n.nodeid for n in active] == [node.userid]
    # Python's str() of a naive UTC datetime (the original's MongoDB kept milliseconds only)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?", active[0].last_active)
    assert active[0].last_active > "2020-01-01 00:00:00"


def test_heartbeat_for_another_id_is_not_received(users, admin):
    node = users.register_node()
    other = users.register_node()
    assert other.client.call("report_heartbeat", nodeid=node.userid).received is False
    assert admin.call("report_heartbeat", nodeid=node.userid).received is False
    assert list(admin.call("get_nodes", nodeid=node.userid, active=True).nodes) == []


def test_heartbeat_compares_ids_only(users):
    """The original answers received=true whenever nodeid == caller, node or not."""
    user = users.register("USER")
    assert user.client.call("report_heartbeat", nodeid=user.userid).received is True


# ---------------------------------------------------------------- update_node


def test_update_node_by_admin_and_by_the_node(users, admin):
    node = users.register_node()
    rsp = admin.call("update_node", nodeid=node.userid, location="bengaluru",
                     description="moved")  # fmt: skip
    assert (rsp.state, rsp.message) == (SUCCESS, "updated node successfully")
    rsp = node.client.call("update_node", nodeid=node.userid, coords="12.9,77.6",
                           public_ip="198.51.100.7")  # fmt: skip
    assert (rsp.state, rsp.message) == (SUCCESS, "updated node successfully")
    got = get_node(admin, node.userid)
    assert (got.location, got.description, got.public_ip) == (
        "bengaluru", "moved", "198.51.100.7",
    )  # fmt: skip
    # deviation: the original copied last_active into coords
    assert got.coords == "12.9,77.6"
    assert got.name == node.name  # unset fields are left alone


@pytest.mark.parametrize("caller_role", ["USER", "USER_PRIV", "NODE_PRIV"])
def test_update_node_by_others_is_denied(users, caller_role):
    """Deviation (docs/compatibility.md): the original let anyone update any node."""
    node = users.register_node()
    caller = users.register(caller_role)
    rsp = caller.client.call("update_node", nodeid=node.userid, location="elsewhere")
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert get_node(users.admin_client, node.userid).location == "hyderabad"


def test_update_unknown_node(admin):
    rsp = admin.call("update_node", nodeid="no-such-node-u", location="x")
    assert (rsp.state, rsp.message) == (FAILED, "node with given id does not exist")


# ---------------------------------------------------------------- scavenger mode


def test_scavenger_mode_by_the_node(users, admin):
    node = users.register_node()
    rsp = node.client.call("set_scavenger_status", nodeid=node.userid, scavenger_mode_active=True)
    assert (rsp.state, rsp.message) == (SUCCESS, "updated scavenger_mode_status successfully")
    got = node.client.call("get_scavenger_status", nodeid=node.userid)
    assert (got.found, got.scavenger_mode_active) == (True, True)
    assert get_node(admin, node.userid).scavenger_mode_active is True

    rsp = admin.call("set_scavenger_status", nodeid=node.userid, scavenger_mode_active=False)
    assert (rsp.state, rsp.message) == (SUCCESS, "updated scavenger_mode_status successfully")
    got = admin.call("get_scavenger_status", nodeid=node.userid)
    # as the original (truthiness): an existing node with the mode off is not "found"
    assert (got.found, got.scavenger_mode_active) == (False, False)


def test_scavenger_status_of_unknown_node(admin):
    got = admin.call("get_scavenger_status", nodeid="no-such-node-s")
    assert (got.found, got.scavenger_mode_active) == (False, False)
    rsp = admin.call("set_scavenger_status", nodeid="no-such-node-s", scavenger_mode_active=True)
    assert (rsp.state, rsp.message) == (FAILED, "node with given id does not exist")


@pytest.mark.parametrize("caller_role", ["USER", "USER_PRIV", "NODE_PRIV", "OTHER_NODE"])
def test_set_scavenger_status_by_others_is_denied(users, caller_role):
    node = users.register_node()
    caller = users.register_node() if caller_role == "OTHER_NODE" else users.register(caller_role)
    rsp = caller.client.call("set_scavenger_status", nodeid=node.userid, scavenger_mode_active=True)
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    got = users.admin_client.call("get_scavenger_status", nodeid=node.userid)
    assert got.scavenger_mode_active is False


# ---------------------------------------------------------------- delete_node


def test_delete_node(users, admin):
    node = users.register_node()
    rsp = admin.call("delete_node", nodeid=node.userid)
    assert (rsp.state, rsp.message) == (SUCCESS, "node deleted")
    assert get_node(admin, node.userid) is None
    assert not admin.call("get_user", userid=node.userid).exists
    assert node.client.reply("get_user", userid=node.userid).details == "Invalid token"
    rsp = admin.call("delete_node", nodeid=node.userid)
    assert (rsp.state, rsp.message) == (FAILED, "node with given id does not exist")


def test_delete_unknown_node_keeps_a_user_of_that_id(users, admin):
    """Deviation: the original deleted any user with that id, even when no node existed."""
    user = users.register("USER")
    rsp = admin.call("delete_node", nodeid=user.userid)
    assert (rsp.state, rsp.message) == (FAILED, "node with given id does not exist")
    assert admin.call("get_user", userid=user.userid).exists
    rsp = admin.call("delete_node", nodeid=ADMIN_ID)
    assert rsp.state == FAILED
    assert admin.call("get_user", userid=ADMIN_ID).exists


@pytest.mark.parametrize("caller_role", NON_ADMIN_ROLES)
def test_delete_node_needs_admin(users, caller_role):
    node = users.register_node()
    caller = users.register(caller_role)
    rsp = caller.client.call("delete_node", nodeid=node.userid)
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
    assert get_node(users.admin_client, node.userid) is not None


def test_reregistered_node_gets_a_working_token(users, admin):
    node = users.register_node()
    admin.call("delete_node", nodeid=node.userid)
    again = users.register_node(node.userid)
    assert again.token != static_token(node.userid, node.name, node.team)
    assert again.client.call("report_heartbeat", nodeid=node.userid).received is True


# ---------------------------------------------------------------- kernel_access


@pytest.mark.parametrize("target_role", ["USER_PRIV", "NODE_PRIV", "ADMIN"])
def test_kernel_access_granted(users, target_role):
    node = users.register_node()
    target = users.register(target_role)
    rsp = node.client.call("kernel_access", userid=target.userid)
    assert rsp.state == SUCCESS
    assert rsp.message == f"userid={target.userid} role={target_role} has access to kernel services"


@pytest.mark.parametrize("target_role", ["USER", "NODE"])
def test_kernel_access_refused_for_low_roles(users, target_role):
    target = users.register(target_role)
    rsp = users.admin_client.call("kernel_access", userid=target.userid)
    assert rsp.state == FAILED
    assert rsp.message == (
        f"userid={target.userid} role={target_role} does not have access to kernel services "
        "(higher access level required)"
    )


def test_kernel_access_for_unknown_user(users):
    node = users.register_node()
    rsp = node.client.call("kernel_access", userid="nobody-k")
    assert (rsp.state, rsp.message) == (FAILED, "userid=nobody-k does not exist")


@pytest.mark.parametrize("caller_role", ["USER", "USER_PRIV", "NODE_PRIV"])
def test_kernel_access_may_only_be_asked_by_nodes_and_admin(users, caller_role):
    caller = users.register(caller_role)
    rsp = caller.client.call("kernel_access", userid=ADMIN_ID)
    assert (rsp.state, rsp.message) == (FAILED, denied(caller))
