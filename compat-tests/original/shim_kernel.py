"""Runs the ORIGINAL kernel service (`python -m services.kernel` from the reference copy), on
the host as the original runs it, with exactly one shim (listed in README.md and BENCHMARKS.md):

1. Listen port. The original binds `0.0.0.0:9000` whatever its flags say. Its `bind` is
   pointed at `$LEOTEST_ORIGINAL_KERNEL_LISTEN` (host:port) instead, so that it can run next to
   other kernel services on one machine. Nothing else changes: it still accepts one connection
   at a time (`listen(1)`), makes a Docker client and inspects the network and every container
   on it per connection, asks the orchestrator `kernel_access`, and runs `sysctl`.

Run with the reference copy on PYTHONPATH and a working directory holding `certs/server.crt`
(its client reads the orchestrator's certificate from there). Arguments are the original's
(`--nodeid --grpc-hostname --grpc-port --access-token --leotest-net`). Needs the `docker`
package (docker-py, in requirements.txt) and a Docker engine.
"""

from __future__ import annotations

import os
import runpy
import socket
import sys

LISTEN = os.environ["LEOTEST_ORIGINAL_KERNEL_LISTEN"]
_host, _port = LISTEN.rsplit(":", 1)
HERE = (_host, int(_port))
# The address the original hard-codes; no other bind is touched.
ORIGINAL = ("0.0.0.0", 9000)

_bind = socket.socket.bind


def _bind_here(self, address):
    return _bind(self, HERE if tuple(address) == ORIGINAL else address)


socket.socket.bind = _bind_here

sys.argv = ["services.kernel", *sys.argv[1:]]
runpy.run_module("services.kernel", run_name="__main__", alter_sys=True)
