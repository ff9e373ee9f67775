"""Fake `docker` (docker-py) for the original node agent: an in-process engine per process.

Containers start 'running' and report 'exited' after HARNESS_CONTAINER_RUNNING_READS (3) status
reads, so the executor's wait loops take the same number of turns on every run. `get()` waits
up to 3 s for a container a concurrent `run()` is creating (the executor starts the container
in a thread and looks it up at once). Every call that matters is recorded.
"""

from __future__ import annotations

import os
import threading
import time

import leo_agent_env

from . import errors

_LOCK = threading.Lock()
_RUNNING_READS = int(os.environ.get("HARNESS_CONTAINER_RUNNING_READS", "3"))


class Container:
    def __init__(self, name, image, labels):
        self.name = name
        self.image = image
        self.labels = dict(labels or {})
        self.attrs = {"NetworkSettings": {"Networks": {}}}
        self._reads = 0
        self._stopped = False

    @property
    def status(self):
        with _LOCK:
            self._reads += 1
            running = not self._stopped and self._reads <= _RUNNING_READS
        return "running" if running else "exited"

    def is_running(self):
        return not self._stopped and self._reads < _RUNNING_READS

    def stop(self, **_kw):
        self._stopped = True
        leo_agent_env.event("docker", op="stop", name=self.name)

    def remove(self, **_kw):
        _ENGINE.containers._by_name.pop(self.name, None)
        leo_agent_env.event("docker", op="remove", name=self.name)

    def logs(self, **_kw):
        return iter([b"fake log line\n"])


class Containers:
    def __init__(self):
        self._by_name = {}

    def run(self, image, **kw):
        name = kw.get("name") or f"fake-{len(self._by_name)}"
        recorded = {k: kw.get(k) for k in ("name", "network", "network_mode", "environment",
                                          "labels", "ports", "privileged", "detach", "stream")}
        recorded["volumes_dest"] = sorted(v["bind"] for v in (kw.get("volumes") or {}).values())
        leo_agent_env.event("docker", op="run", image=image, **recorded)
        with _LOCK:
            self._by_name[name] = Container(name, image, kw.get("labels"))
        if kw.get("detach"):
            return self._by_name[name]
        return iter([b"fake measurement started\n", b"fake measurement done\n"])

    def get(self, name):
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with _LOCK:
                c = self._by_name.get(name)
            if c is not None:
                return c
            time.sleep(0.02)
        raise errors.NotFound(f"No such container: {name}")

    def list(self, filters=None, **_kw):
        filters = filters or {}
        wanted = filters.get("label", [])
        out = []
        for c in list(self._by_name.values()):
            if filters.get("status") == "running" and not c.is_running():
                continue
            if all((lbl.split("=", 1)[0] in c.labels) if "=" not in lbl
                   else c.labels.get(lbl.split("=", 1)[0]) == lbl.split("=", 1)[1]
                   for lbl in wanted):  # fmt: skip
                out.append(c)
        leo_agent_env.event("docker", op="list", filters=filters, found=[c.name for c in out])
        return out


class Images:
    def pull(self, repository, *args, **kw):
        leo_agent_env.event("docker", op="pull", image=repository)


class DockerClient:
    def __init__(self):
        self.containers = Containers()
        self.images = Images()


_ENGINE = DockerClient()


def from_env(*_args, **_kw):
    return _ENGINE
