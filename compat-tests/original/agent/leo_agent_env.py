"""The node agent's surroundings, faked for the harness (see ../README.md, "Fakes"):
Docker, Azure Blob Storage, redis, memcached, at/atd, MQTT, the Starlink dish and the
satellite catalogue. Also makes a process deterministic: a step clock for `time_now()`,
seeded `uuid.uuid4()`, and (executors only) shortened sleeps.

Every process of the harness (the scheduler passes in the harness itself, each executor)
calls `install()` before importing the original's `node.*` modules. Events (RPCs, Docker,
Azure, redis, at) go to the process's EventLog ($HARNESS_RECORD_DIR, $HARNESS_ROLE).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
import uuid
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # recorder.py

import recorder  # noqa: E402
from dates import Y  # noqa: E402

_LOG: recorder.EventLog | None = None
_REAL_SLEEP = time.sleep
ROLE = os.environ.get("HARNESS_ROLE", "unnamed")


def set_role(role: str) -> None:
    """Names the role whose events follow (the harness process changes roles per pass)."""
    global _LOG, ROLE
    ROLE = role
    directory = os.environ.get("HARNESS_RECORD_DIR")
    _LOG = recorder.EventLog(Path(directory) / f"{role}-{os.getpid()}.jsonl", role) if directory else None


def log() -> recorder.EventLog | None:
    return _LOG


def event(kind: str, **data) -> None:
    if _LOG is not None:
        _LOG.write(kind, **data)


class StepClock:
    """`time_now()` of the original (naive UTC), one second further on every call, starting
    at $HARNESS_CLOCK_BASE: the same calls give the same times on every run."""

    def __init__(self, base: str) -> None:
        self.base = _dt.datetime.fromisoformat(base)
        self.calls = 0

    def __call__(self) -> _dt.datetime:
        now = self.base + _dt.timedelta(seconds=self.calls)
        self.calls += 1
        return now


def _seeded_uuid4(role: str):
    seed = zlib.crc32(role.encode())
    counter = iter(range(1, 1 << 30))

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=(seed << 64) | next(counter), version=4)

    return uuid4


class FakeStorageDirectoryClient:
    """Azure Blob Storage as the executor uses it: nothing stored there, uploads recorded."""

    def __init__(self, connection_string, container_name):
        self.connection_string = connection_string
        self.container_name = container_name
        event("azure", op="connect", connection_string=connection_string, container=container_name)

    def check_blob_exists(self, source):
        event("azure", op="exists", blob=source)
        return False

    def upload_file(self, source, dest):
        event("azure", op="upload", blob=dest, local_exists=os.path.exists(source))

    def get_sas_url(self, blob_name):
        return f"https://harness.blob.example/{self.container_name}/{blob_name}?sas=fake"


class FakeTerminalGrpcDataCsv:
    """The Starlink dish's gRPC poller: there is no dish; writes the CSV header only."""

    def __init__(self, api_path, logfile):
        self.logfile = logfile

    def run(self, _async=True):
        with open(self.logfile, "w") as f:
            f.write("timestamp,fake\n")

    def stop(self):
        pass


def _rewrite(rpc, response, raw):
    """Diagnostic masks ($HARNESS_MASK): answers replaced by the original's, to look past a
    known difference. Never used by the comparison test itself."""
    masks = set(filter(None, os.environ.get("HARNESS_MASK", "").split(",")))
    if "9" in masks and rpc == "get_scavenger_status" and response.found and not response.scavenger_mode_active:
        fixed = type(response)(found=False, scavenger_mode_active=False)
        event("masked", rpc=rpc, item=9, ours=raw.hex(), now=fixed.SerializeToString().hex())
        return fixed, fixed.SerializeToString()
    return response, raw


def install(role: str | None = None, executor: bool = False) -> None:
    """Fakes and determinism for this process; call before importing node.* or common.*."""
    set_role(role or ROLE)
    recorder.install(log, rewrite=_rewrite)
    import common.utils as utils  # the original's; imports azure/pyroute2/requests (installed)

    utils.time_now = StepClock(os.environ.get("HARNESS_CLOCK_BASE", f"{Y}-01-01 00:00:00.000123"))
    utils.StorageDirectoryClient = FakeStorageDirectoryClient
    utils.TerminalGrpcDataCsv = FakeTerminalGrpcDataCsv
    utils.get_public_ip = lambda: os.environ.get("HARNESS_PUBLIC_IP", "192.0.2.1")
    utils.route = lambda action, ip, gw, dev: event("route", action=action, ip=ip)
    uuid.uuid4 = _seeded_uuid4(ROLE)
    if executor:
        scale = float(os.environ.get("HARNESS_SLEEP_SCALE", "0.25"))
        time.sleep = lambda s: _REAL_SLEEP(max(0.0, s) * scale)
