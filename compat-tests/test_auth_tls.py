"""TLS set-up of the original client and the two authentication paths of its CheckToken."""

from __future__ import annotations

import time

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import ADMIN_ID, make_cert
from contract import RPCS, enum_value
from leotest_client import LeotestClient

OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
FAILED = enum_value("response_state", "FAILED")


def token_for(server, userid: str, **extra) -> str:
    claims = {"userid": userid, "exp": int(time.time()) + 600}
    claims.update(extra)
    return jwt.encode(claims, server.jwt_secret, algorithm="HS256")


def assert_invalid_token(reply) -> None:
    assert (reply.code, reply.details) == (UNAUTHENTICATED, "Invalid token")


def assert_invalid_jwt(reply, reason: str) -> None:
    """A refused JWT: the original's code and words, then why (docs/compatibility.md)."""
    assert (reply.code, reply.details) == (UNAUTHENTICATED, "Invalid token: " + reason)


# ---------------------------------------------------------------- TLS


def test_original_client_setup_reaches_server(server, admin):
    """Root cert = server cert, target name overridden to localhost, as common/client.py."""
    rsp = admin.call("get_user", userid=ADMIN_ID)
    assert rsp.exists
    assert (rsp.id, rsp.name, rsp.team) == (ADMIN_ID, "LEOScope Admin", "LeoScope MSR-India")
    assert rsp.role == enum_value("user_roles", "ADMIN")


def test_plaintext_client_is_refused(server):
    channel = grpc.insecure_channel(server.target)
    stub = channel.unary_unary(RPCS["get_user"].path)
    with pytest.raises(grpc.RpcError) as err:
        stub(b"", timeout=5)
    channel.close()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_trusting_another_certificate_is_refused(server, tmp_path):
    other_cert, _ = make_cert(tmp_path, original_style=False)
    client = LeotestClient(server.target, other_cert.read_bytes(), ADMIN_ID, server.admin_token)
    try:
        reply = client.reply("get_user", userid=ADMIN_ID)
    finally:
        client.close()
    assert reply.code == grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------- static tokens


@pytest.mark.parametrize("rpc_name", sorted(RPCS))
def test_every_rpc_refuses_missing_credentials(server, rpc_name):
    """The original client sends all three headers, empty when unset."""
    reply = server.client().reply(rpc_name)
    assert_invalid_token(reply)


def test_wrong_static_token_is_refused(server):
    assert_invalid_token(server.client(ADMIN_ID, "not-the-token").reply("get_user", userid=ADMIN_ID))


def test_default_admin_token_is_not_accepted_when_another_is_configured(server):
    reply = server.client(ADMIN_ID, "leotest-access-token").reply("get_user", userid=ADMIN_ID)
    assert_invalid_token(reply)


def test_unknown_user_is_refused(server):
    reply = server.client("nobody-here", server.admin_token).reply("get_user", userid=ADMIN_ID)
    assert_invalid_token(reply)


def test_userid_without_token_is_refused(server):
    assert_invalid_token(server.client(ADMIN_ID, "").reply("get_user", userid=ADMIN_ID))


def test_token_without_userid_is_refused(server):
    assert_invalid_token(server.client("", server.admin_token).reply("get_user", userid=ADMIN_ID))


def test_token_of_another_user_is_refused(server, users):
    alice = users.register("USER")
    bob = users.register("USER")
    reply = server.client(alice.userid, bob.token).reply("get_user", userid=alice.userid)
    assert_invalid_token(reply)


def test_registered_user_token_authenticates_with_its_role(server, users):
    user = users.register("USER")
    rsp = user.client.call("register_user", id="x-" + user.userid, name="n", role=1, team="t")
    assert rsp.state == FAILED
    assert rsp.message == f"permission denied: userid={user.userid} and role=USER"


# ---------------------------------------------------------------- JWT


def test_jwt_authenticates_with_the_users_role(server, users):
    user = users.register("USER_PRIV")
    client = server.client(jwt=token_for(server, user.userid))
    rsp = client.call("register_user", id="y-" + user.userid, name="n", role=1, team="t")
    assert rsp.state == FAILED
    assert rsp.message == f"permission denied: userid={user.userid} and role=USER_PRIV"


def test_admin_jwt_is_admin(server, uid):
    client = server.client(jwt=token_for(server, ADMIN_ID))
    rsp = client.call("register_user", id=f"jwt-made-{uid}", name="n", role=1, team="t")
    assert rsp.state == enum_value("response_state", "SUCCESS"), rsp.message


def test_jwt_is_tried_before_the_static_token(server):
    client = server.client(ADMIN_ID, "wrong-static-token", token_for(server, ADMIN_ID))
    assert client.call("get_user", userid=ADMIN_ID).exists


def test_invalid_jwt_falls_back_to_the_static_token(server):
    forged = jwt.encode({"userid": ADMIN_ID, "exp": int(time.time()) + 600}, "x" * 32, "HS256")
    client = server.client(ADMIN_ID, server.admin_token, forged)
    assert client.call("get_user", userid=ADMIN_ID).exists


def test_jwt_signed_with_another_secret_is_refused(server):
    forged = jwt.encode({"userid": ADMIN_ID, "exp": int(time.time()) + 600}, "x" * 32, "HS256")
    assert_invalid_jwt(
        server.client(jwt=forged).reply("get_user", userid=ADMIN_ID),
        "JWT signature does not verify with this server's key",
    )


def test_expired_jwt_is_refused(server):
    expired = token_for(server, ADMIN_ID, exp=int(time.time()) - 120)
    assert_invalid_jwt(
        server.client(jwt=expired).reply("get_user", userid=ADMIN_ID),
        "JWT expired (exp is in the past)",
    )


def test_jwt_for_unknown_user_is_refused(server):
    token = token_for(server, "no-such-user-anywhere")
    assert_invalid_jwt(
        server.client(jwt=token).reply("get_user", userid=ADMIN_ID),
        "the JWT's userid is not a registered user",
    )


def test_jwt_with_alg_none_is_refused(server):
    unsigned = jwt.encode({"userid": ADMIN_ID, "exp": int(time.time()) + 600}, None, "none")
    reply = server.client(jwt=unsigned).reply("get_user", userid=ADMIN_ID)
    assert reply.code == UNAUTHENTICATED
    assert reply.details.startswith("Invalid token: "), reply.details


def test_jwt_with_another_hmac_algorithm_is_refused(server):
    token = jwt.encode(
        {"userid": ADMIN_ID, "exp": int(time.time()) + 600}, server.jwt_secret, "HS512"
    )
    assert_invalid_jwt(
        server.client(jwt=token).reply("get_user", userid=ADMIN_ID),
        "JWT algorithm is not the one this server accepts",
    )


def test_jwt_signed_with_rsa_is_refused(server):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    token = jwt.encode({"userid": ADMIN_ID, "exp": int(time.time()) + 600}, pem, "RS256")
    assert_invalid_jwt(
        server.client(jwt=token).reply("get_user", userid=ADMIN_ID),
        "JWT algorithm is not the one this server accepts",
    )


def test_garbage_jwt_is_refused(server):
    assert_invalid_jwt(
        server.client(jwt="not.a.jwt").reply("get_user", userid=ADMIN_ID), "not a well-formed JWT"
    )


def test_deleted_user_can_no_longer_authenticate(server, users, admin):
    user = users.register("USER")
    assert user.client.call("get_user", userid=user.userid).exists
    jwt_client = server.client(jwt=token_for(server, user.userid))
    assert jwt_client.call("get_user", userid=user.userid).exists
    rsp = admin.call("delete_user", userid=user.userid)
    assert (rsp.state, rsp.message) == (enum_value("response_state", "SUCCESS"), "user deleted")
    assert_invalid_token(user.client.reply("get_user", userid=user.userid))
    assert_invalid_jwt(
        jwt_client.reply("get_user", userid=user.userid),
        "the JWT's userid is not a registered user",
    )
