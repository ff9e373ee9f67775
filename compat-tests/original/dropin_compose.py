"""The original's deployment files with only what an operator must change.

`orchestrator_file`: docker-compose-orchestrator.yaml with ONLY its two image names swapped
(ours for `orchestrator`, the MongoDB-wire image for `datastore`), checked line by line. Its
`<admin access token>` and `<jw secret>` placeholders are kept verbatim: they are the admin
token and JWT secret the deployment runs with (the harness reads them from the file).

`node_file`: the `kernel` service of docker-compose-node.yaml (the node agent, MQTT, redis,
memcached and the Starlink poller are not ours to replace), image swapped, and the three
placeholders an operator fills (`<node id>`, `<grpc host ipaddr/name>`, `<node access
token>`) filled. `--leotest-net` names the compose project's network (the original's value
assumes the project is called global-testbed). `privileged: true` is dropped only when this
Docker engine refuses privileged containers (it says so).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml

ORCHESTRATOR_IMAGE = '"leotest-orchestrator"'
DATASTORE_IMAGE = '"mongo:latest"'


def orchestrator_file(original: Path, orchestrator_image: str, datastore_image: str) -> str:
    text = original.read_text()
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped == f"image: {ORCHESTRATOR_IMAGE}":
            line = line.replace(ORCHESTRATOR_IMAGE, f'"{orchestrator_image}"')
        elif stripped == f"image: {DATASTORE_IMAGE}":
            line = line.replace(DATASTORE_IMAGE, f'"{datastore_image}"')
        out.append(line)
    new = "".join(out)
    changed = [d for d in difflib.ndiff(text.splitlines(), new.splitlines()) if d[:1] in "+-"]
    if len(changed) != 4 or not all("image:" in d for d in changed):
        raise ValueError(f"expected exactly the two image lines to change, got {changed}")
    return new


def command_value(compose_text: str, service: str, flag: str) -> str:
    """The value of `--flag=VALUE` in a service's command list."""
    for arg in yaml.safe_load(compose_text)["services"][service]["command"]:
        if str(arg).startswith(f"{flag}="):
            return str(arg).split("=", 1)[1]
    raise KeyError(f"{service} has no {flag}")


def node_file(original: Path, kernel_image: str, nodeid: str, grpc_host: str, token: str,
              project: str, privileged_ok: bool) -> tuple[str, list[str]]:  # fmt: skip
    """The generated node compose file and the list of changes made to the kernel section."""
    doc = yaml.safe_load(original.read_text())
    kernel = doc["services"]["kernel"]
    changes = [f"image {kernel['image']!r} -> {kernel_image!r}"]
    kernel["image"] = kernel_image
    fill = {"<node id>": nodeid, "<grpc host ipaddr/name>": grpc_host, "<node access token>": token}
    command = []
    for arg in kernel["command"]:
        for placeholder, value in fill.items():
            if placeholder in arg:
                arg = arg.replace(placeholder, value)
                changes.append(f"{placeholder} filled")
        if arg.startswith("--leotest-net="):
            net = f"{project}_leotest-net"
            if arg != f"--leotest-net={net}":
                changes.append(f"{arg} -> --leotest-net={net} (the project's network)")
                arg = f"--leotest-net={net}"
        command.append(arg)
    kernel["command"] = command
    kernel.pop("build", None)
    if kernel.get("privileged") and not privileged_ok:
        kernel.pop("privileged")
        changes.append("privileged: true dropped (this Docker engine cannot start privileged containers)")
    out = {"version": doc.get("version", "3.7"), "services": {"kernel": kernel},
           "networks": doc["networks"]}  # fmt: skip
    return yaml.safe_dump(out, sort_keys=False), changes


def token_from(message: str) -> str:
    m = re.search(r"access_token=(\S+)", message)
    return m.group(1) if m else ""
