"""Every golden request encoding of the original is sent to its RPC; replies must decode cleanly.

The bytes are sent exactly as the original's protobuf produced them (not re-encoded), as
admin, to a private orchestrator. Any status is acceptable for odd input except the ones a
crash produces (UNKNOWN, INTERNAL), a dead server (UNAVAILABLE) and UNIMPLEMENTED; an OK
reply must decode with the contract's classes with no unknown field and re-encode to the
same bytes.
"""

from __future__ import annotations

import grpc
import pytest

from conftest import ADMIN_ID
from contract import PACKAGE, RPCS, load_vectors, msg, unknown_field_paths

CRASH_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE}


def _request_vectors():
    by_input = {}
    for rpc in RPCS.values():
        by_input.setdefault(rpc.request.DESCRIPTOR.full_name, []).append(rpc.name)
    cases = []
    for vector in load_vectors():
        for rpc_name in by_input.get(f"{PACKAGE}.{vector['message']}", []):
            cases.append(
                pytest.param(rpc_name, vector, id=f"{rpc_name}-{vector['case']}")
            )
    return cases


REQUEST_VECTORS = _request_vectors()


def test_every_rpc_has_request_vectors():
    assert {p.values[0] for p in REQUEST_VECTORS} == set(RPCS)


@pytest.fixture(scope="module")
def vector_admin(fresh_server):
    return fresh_server.admin()


@pytest.mark.parametrize(("rpc_name", "vector"), REQUEST_VECTORS)
def test_golden_request_is_answered_cleanly(fresh_server, vector_admin, rpc_name, vector):
    payload = bytes.fromhex(vector["hex"])
    # the vector is what the original's classes encode for this request
    assert RPCS[rpc_name].request.FromString(payload).SerializeToString() == payload

    reply = vector_admin.raw(rpc_name, payload)
    assert reply.code not in CRASH_CODES, f"{reply.code} {reply.details!r}"
    assert reply.code != grpc.StatusCode.UNIMPLEMENTED, reply.details
    if reply.code == grpc.StatusCode.OK:
        assert unknown_field_paths(reply.response) == []
        assert reply.response.SerializeToString() == reply.raw
    assert fresh_server.alive()
    assert vector_admin.call("get_user", userid=ADMIN_ID).exists


def test_response_vectors_decode_with_the_contract():
    """Sanity check of the contract itself: response vectors round-trip through our classes."""
    for vector in load_vectors():
        payload = bytes.fromhex(vector["hex"])
        decoded = msg(vector["message"]).FromString(payload)
        assert unknown_field_paths(decoded) == []
        assert decoded.SerializeToString() == payload
