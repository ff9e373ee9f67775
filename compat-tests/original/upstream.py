"""Where the ORIGINAL's code is: the read-only reference copy of leoscope-testbed/global-testbed.

`$LEOTEST_UPSTREAM` when set, else `<repo>/../shared/upstream/global-testbed`. Under `CI=true`
a missing copy is an error (a test failure, never a silent skip); elsewhere tests skip.
Nothing here writes into the copy: what must change (a shim) lives in this directory.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
# Files the harness drives; a copy without them is not the original.
REQUIRED = (
    "common/client.py",
    "common/leotest_pb2.py",
    "common/leotest_pb2_grpc.py",
    "orchestrator/__main__.py",
    "node/scheduler.py",
    "node/executor.py",
    "certs/generate_certs.sh",
    "docker-compose-orchestrator.yaml",
    "docker-compose-node.yaml",
)


class UpstreamMissing(RuntimeError):
    """The reference copy of the original repository is not where it must be."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def upstream_dir() -> Path:
    """The original repository's root; raises UpstreamMissing when it is absent or incomplete."""
    explicit = os.environ.get("LEOTEST_UPSTREAM")
    root = Path(explicit) if explicit else REPO_ROOT.parent / "shared" / "upstream" / "global-testbed"
    missing = [p for p in REQUIRED if not (root / p).is_file()]
    if missing:
        raise UpstreamMissing(
            f"the original's reference copy is missing at {root} (set LEOTEST_UPSTREAM): "
            f"no {', '.join(missing)}"
        )
    return root.resolve()
