"""Records every gRPC call a client makes, on the wire: request and answer bytes, status code
and details, plus the messages decoded as the caller sees them (`MessageToDict`).

`RecordingChannel` wraps the channel that the ORIGINAL client creates (grpc.secure_channel is
patched while it runs), so the original's own stub, generated classes, TLS set-up and call
credentials are what talk to the server; the recorder only looks.

The original client retries every RpcError forever. So that a server answering an error where
the original answered OK shows up as a failure and not as a hang, the recorder raises
`RetriedForever` once the same RPC has failed `MAX_SAME_FAILURES` times in a row.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

MAX_SAME_FAILURES = 3
# Per process, not per channel: the original client makes a new channel after every failure.
_FAILURES: dict[tuple[str, bytes, str], int] = {}
_FAILURES_LOCK = threading.Lock()


class RetriedForever(Exception):
    """The original client would have retried this call forever (it hangs its caller)."""


def present_fields(message: Message, prefix: str = "") -> list[str]:
    """Paths of the fields present on the wire (proto3 optional fields set to "" included)."""
    out: list[str] = []
    for fd, value in message.ListFields():
        path = f"{prefix}{fd.name}"
        repeated = getattr(fd, "is_repeated", None)
        if repeated if repeated is not None else fd.label == fd.LABEL_REPEATED:
            if fd.message_type is not None:
                for i, item in enumerate(value):
                    out.append(f"{path}[{i}]")
                    out += present_fields(item, f"{path}[{i}].")
            else:
                out.append(f"{path}[{len(value)}]")
        elif fd.message_type is not None:
            out.append(path)
            out += present_fields(value, f"{path}.")
        else:
            out.append(path)
    return out


class EventLog:
    """Append-only JSON-lines file of one process (one role)."""

    def __init__(self, path: Path, role: str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.role = role
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, kind: str, **data) -> None:
        with self._lock:
            self._seq += 1
            rec = {"role": self.role, "seq": self._seq, "kind": kind, "t": time.time(), **data}
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec, default=str) + "\n")


class _RecordingCall:
    def __init__(self, inner, method: str, serialize: Callable, deserialize: Callable,
                 channel: "RecordingChannel") -> None:  # fmt: skip
        self._inner = inner
        self._method = method
        self._serialize = serialize or (lambda m: m)
        self._deserialize = deserialize or (lambda b: b)
        self._channel = channel

    def __call__(self, request, timeout=None, metadata=None, credentials=None,
                 wait_for_ready=None, compression=None):  # fmt: skip
        rpc = self._method.rsplit("/", 1)[-1]
        payload = self._serialize(request)
        entry = {
            "rpc": rpc,
            "request": MessageToDict(request) if isinstance(request, Message) else None,
            "request_hex": payload.hex(),
        }
        try:
            raw = self._inner(payload, timeout=timeout, metadata=metadata,
                              credentials=credentials, wait_for_ready=wait_for_ready,
                              compression=compression)  # fmt: skip
        except grpc.RpcError as err:
            code = err.code().name if err.code() else "UNKNOWN"
            self._channel.failed(rpc, payload, code, err.details() or "", entry)
            raise
        response = self._deserialize(raw)
        if self._channel.rewrite is not None:
            response, raw = self._channel.rewrite(rpc, response, raw)
        self._channel.answered(rpc, entry, response, raw)
        return response


class RecordingChannel:
    """A grpc.Channel whose unary calls are recorded into `log` (an EventLog, or None)."""

    def __init__(self, channel: grpc.Channel, log: EventLog | None, rewrite=None,
                 abort_on_repeats: bool = True) -> None:  # fmt: skip
        self._channel = channel
        self.log = log
        self.rewrite = rewrite
        self.abort_on_repeats = abort_on_repeats
        self.last_raw: bytes | None = None

    def unary_unary(self, method, request_serializer=None, response_deserializer=None, **_kw):
        inner = self._channel.unary_unary(method)
        return _RecordingCall(inner, method, request_serializer, response_deserializer, self)

    def failed(self, rpc: str, payload: bytes, code: str, details: str, entry: dict) -> None:
        if self.log:
            self.log.write("rpc", **entry, code=code, details=details)
        if not self.abort_on_repeats:
            return
        key = (rpc, payload, code)
        with _FAILURES_LOCK:
            _FAILURES[key] = count = _FAILURES.get(key, 0) + 1
        if code != "UNAVAILABLE" and count >= MAX_SAME_FAILURES:
            raise RetriedForever(
                f"{rpc} answered {code} ({details!r}) {count} times in a row; "
                "the original client retries every RpcError forever, so its caller hangs"
            )

    def answered(self, rpc: str, entry: dict, response, raw: bytes) -> None:
        with _FAILURES_LOCK:
            for k in [k for k in _FAILURES if k[0] == rpc]:
                del _FAILURES[k]
        self.last_raw = raw
        if self.log:
            self.log.write(
                "rpc", **entry, code="OK", details="",
                response=MessageToDict(response) if isinstance(response, Message) else None,
                present=present_fields(response) if isinstance(response, Message) else None,
                response_hex=raw.hex(),
            )  # fmt: skip

    def __getattr__(self, name):
        return getattr(self._channel, name)


_real_secure_channel = grpc.secure_channel


def install(log_for: Callable[[], EventLog | None], rewrite=None) -> None:
    """Makes every grpc.secure_channel of this process a RecordingChannel logging into
    `log_for()` (evaluated per channel, so a role can change between channels)."""

    def secure_channel(target, credentials, options=None, compression=None):
        inner = _real_secure_channel(target, credentials, options=options, compression=compression)
        return RecordingChannel(inner, log_for(), rewrite)

    grpc.secure_channel = secure_channel


def env_log() -> EventLog | None:
    """The EventLog named by $HARNESS_RECORD_DIR and $HARNESS_ROLE (one file per process)."""
    directory = os.environ.get("HARNESS_RECORD_DIR")
    if not directory:
        return None
    role = os.environ.get("HARNESS_ROLE", "unnamed")
    return EventLog(Path(directory) / f"{role}-{os.getpid()}.jsonl", role)
