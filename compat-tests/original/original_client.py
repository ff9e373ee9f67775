"""The compat suite's client, made of the ORIGINAL common/client.py (LEOTEST_COMPAT_CLIENT=original).

Each `LeotestClient` of the suite becomes an original `common.client.LeotestClient`: its own
`init_grpc_client` builds the channel (TLS trusting `certs/server.crt`, read from the working
directory as it does; `ssl_target_name_override=localhost`; its metadata call credentials) and
its generated `LeotestOrchestratorStub`. Every call goes through that stub with the original's
generated request class (the suite's request bytes parsed into it), so what reaches our server
is what the original's code serialises. The answer's wire bytes are taken from the channel
(recorder.RecordingChannel) and decoded with the suite's contract classes.

Not used: the original's per-method wrappers and their retry-forever loop (a test that expects
UNAUTHENTICATED would hang); node_agent.py and dropin.py drive those.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))

import recorder  # noqa: E402
from upstream import upstream_dir  # noqa: E402

_LOCK = threading.Lock()
_CERT_DIRS: dict[str, Path] = {}


def _cert_dir(root_cert: bytes) -> Path:
    """A directory whose certs/server.crt is `root_cert` (the original reads that path)."""
    digest = hashlib.sha256(root_cert).hexdigest()
    if digest not in _CERT_DIRS:
        d = Path(tempfile.mkdtemp(prefix="compat-original-client-"))
        (d / "certs").mkdir()
        (d / "certs" / "server.crt").write_bytes(root_cert)
        _CERT_DIRS[digest] = d
    return _CERT_DIRS[digest]


@contextlib.contextmanager
def _in(directory: Path):
    old = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old)


def _original_modules():
    root = str(upstream_dir())
    if root not in sys.path:
        sys.path.insert(0, root)
    import common.client
    import common.leotest_pb2 as pb2

    return common.client, pb2


def make_client_class(base, rpcs, recorder_of_coverage, reply_cls):
    """A subclass of the suite's LeotestClient whose calls go through the original client."""
    client_mod, pb2 = _original_modules()

    class OriginalLeotestClient(base):
        def __init__(self, target, root_cert, userid="", access_token="", jwt_access_token=""):
            self.userid, self.access_token, self.jwt_access_token = userid, access_token, jwt_access_token
            host, port = target.rsplit(":", 1)
            made: list[recorder.RecordingChannel] = []
            real = grpc.secure_channel

            def capture(*args, **kwargs):
                made.append(recorder.RecordingChannel(real(*args, **kwargs), None, abort_on_repeats=False))
                return made[-1]

            with _LOCK, _in(_cert_dir(root_cert)):
                grpc.secure_channel = capture
                try:
                    self.original = client_mod.LeotestClient(
                        grpc_hostname=host, grpc_port=int(port), userid=userid,
                        access_token=access_token, jwt_access_token=jwt_access_token)  # fmt: skip
                finally:
                    grpc.secure_channel = real
            self.channel = made[-1]

        def raw(self, rpc_name, payload, timeout=15.0):
            rpc = rpcs[rpc_name]
            request = getattr(pb2, rpc.request.DESCRIPTOR.name).FromString(payload)
            stub = getattr(self.original.grpc_stub, rpc_name)
            try:
                stub(request, timeout=timeout)
            except grpc.RpcError as err:
                recorder_of_coverage.record(rpc.path, err.code())
                return reply_cls(err.code(), err.details() or "", None, None)
            raw = self.channel.last_raw
            recorder_of_coverage.record(rpc.path, grpc.StatusCode.OK)
            return reply_cls(grpc.StatusCode.OK, "", rpc.response.FromString(raw), raw)

        def close(self):
            self.channel.close()

    return OriginalLeotestClient
