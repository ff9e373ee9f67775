"""Runs the ORIGINAL Python orchestrator (`python -m orchestrator` from the reference copy)
with exactly two shims, both listed in README.md:

1. Listen address. The original binds `[::]:50051` whatever its flags say. Its
   `add_secure_port` is pointed at `$LEOTEST_ORIGINAL_BIND` (host:port) instead, so that it can
   run next to other servers on one machine. Nothing else about the server changes.
2. `Cursor.explain()` statistics. The original decides whether a query found jobs from
   `explain()["executionStats"]["nReturned"]`, which nx-27017 (the MongoDB-wire server used
   here) always reports as 0. The shim fills `nReturned` with the number of documents the same
   query returns, as MongoDB does.

Run with the reference copy on PYTHONPATH and a working directory holding `certs/server.crt`
and `certs/server.key` (the original reads them from there). Arguments are the original's.
"""

from __future__ import annotations

import os
import runpy
import sys

import grpc
import pymongo.cursor

BIND = os.environ["LEOTEST_ORIGINAL_BIND"]

_grpc_server = grpc.server


def _server(*args, **kwargs):
    server = _grpc_server(*args, **kwargs)
    add_secure_port = server.add_secure_port

    def bind_here(_address, credentials):
        port = add_secure_port(BIND, credentials)
        if not port:
            sys.exit(f"shim: cannot listen on {BIND}")
        return port

    server.add_secure_port = bind_here
    return server


grpc.server = _server

_explain = pymongo.cursor.Cursor.explain


def _explain_with_count(self):
    plan = _explain(self)
    plan.setdefault("executionStats", {})["nReturned"] = sum(1 for _ in self.clone())
    return plan


pymongo.cursor.Cursor.explain = _explain_with_count

sys.argv = ["orchestrator", *sys.argv[1:]]
runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
