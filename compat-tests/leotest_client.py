"""A gRPC client that talks to the orchestrator exactly like the original's common/client.py.

TLS channel trusting the server certificate, target name overridden to `localhost`, and the
three credential headers sent on every call through metadata call credentials (empty values
included, as the original does). Requests are encoded with the contract's classes and every
path called is recorded for the coverage report.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import Message

from contract import RPCS

DEFAULT_TIMEOUT = 15.0

# Answers that never reached the RPC's handler: they do not count as covering it.
_NOT_HANDLED = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
    }
)


@dataclass
class CallRecorder:
    """Which RPC paths were called, which reached their handler, which were UNIMPLEMENTED."""

    called: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    unimplemented: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, path: str, code: grpc.StatusCode) -> None:
        with self._lock:
            self.called.add(path)
            if code == grpc.StatusCode.UNIMPLEMENTED:
                self.unimplemented.add(path)
            elif code not in _NOT_HANDLED:
                self.answered.add(path)


RECORDER = CallRecorder()


@dataclass
class Reply:
    """The outcome of one call: status code, details and (on OK) the decoded response."""

    code: grpc.StatusCode
    details: str
    response: Message | None
    raw: bytes | None


def _identity(b: bytes) -> bytes:
    return b


class LeotestClient:
    """One TLS channel with one identity (static token and/or JWT)."""

    def __init__(
        self,
        target: str,
        root_cert: bytes,
        userid: str = "",
        access_token: str = "",
        jwt_access_token: str = "",
    ) -> None:
        self.userid = userid
        self.access_token = access_token
        self.jwt_access_token = jwt_access_token
        creds = grpc.ssl_channel_credentials(root_certificates=root_cert)
        call_creds = grpc.metadata_call_credentials(self._metadata)
        composite = grpc.composite_channel_credentials(creds, call_creds)
        self.channel = grpc.secure_channel(
            target, composite, options=(("grpc.ssl_target_name_override", "localhost"),)
        )

    def _metadata(self, _context, callback) -> None:
        callback(
            (
                ("x-leotest-access-token", self.access_token),
                ("x-leotest-userid", self.userid),
                ("x-leotest-jwt-access-token", self.jwt_access_token),
            ),
            None,
        )

    def close(self) -> None:
        self.channel.close()

    def raw(self, rpc_name: str, payload: bytes, timeout: float = DEFAULT_TIMEOUT) -> Reply:
        """Sends pre-encoded request bytes; the response is returned undecoded and decoded."""
        rpc = RPCS[rpc_name]
        stub = self.channel.unary_unary(
            rpc.path, request_serializer=_identity, response_deserializer=_identity
        )
        try:
            data = stub(payload, timeout=timeout)
        except grpc.RpcError as err:
            RECORDER.record(rpc.path, err.code())
            return Reply(err.code(), err.details() or "", None, None)
        RECORDER.record(rpc.path, grpc.StatusCode.OK)
        return Reply(grpc.StatusCode.OK, "", rpc.response.FromString(data), data)

    def reply(self, rpc_name: str, request: Message | None = None, **fields) -> Reply:
        """Calls `rpc_name` with `request` (or a request built from `fields`)."""
        rpc = RPCS[rpc_name]
        if request is None:
            request = rpc.request(**fields)
        assert type(request).DESCRIPTOR.full_name == rpc.request.DESCRIPTOR.full_name
        return self.raw(rpc_name, request.SerializeToString())

    def call(self, rpc_name: str, request: Message | None = None, **fields) -> Message:
        """Like `reply` but requires status OK and returns the decoded response."""
        r = self.reply(rpc_name, request, **fields)
        assert r.code == grpc.StatusCode.OK, f"{rpc_name}: {r.code} {r.details!r}"
        return r.response


# LEOTEST_COMPAT_CLIENT=original: the same suite with the ORIGINAL common/client.py underneath
# (original/original_client.py; run it in compat-tests/.venv-original, as run.sh does).
COMPAT_CLIENT = os.environ.get("LEOTEST_COMPAT_CLIENT", "ours")
if COMPAT_CLIENT == "original":
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "original"))
    from original_client import make_client_class

    LeotestClient = make_client_class(LeotestClient, RPCS, RECORDER, Reply)  # type: ignore[misc]
elif COMPAT_CLIENT != "ours":
    raise SystemExit(f"LEOTEST_COMPAT_CLIENT must be 'ours' or 'original', not {COMPAT_CLIENT!r}")
