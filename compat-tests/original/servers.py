"""Start and stop the servers the harness compares: OUR orchestrator binary and the ORIGINAL
Python orchestrator (from the reference copy, on a MongoDB-wire server), side by side.

Reusable outside the tests (e.g. by a benchmark that runs both):

    python servers.py original-orchestrator --workdir /tmp/orig --port 50151 \\
        --admin-token T --jwt-secret S          # + its own nx-27017 unless --mongo-uri

prints `ready 127.0.0.1:PORT CERT` once it answers, and runs until SIGINT/SIGTERM. Use the
interpreter of compat-tests/.venv-original (`compat-tests/original/venv.sh` prints it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from upstream import REPO_ROOT, upstream_dir

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 90.0
# message_get_user{userid: "admin"} and the start of an answer with exists = true.
_GET_ADMIN = b"\n\x05admin"
_EXISTS_TRUE = b"\x08\x01"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe(target: str, root_cert: bytes, admin_token: str, timeout: float = 2.0) -> str | None:
    """None when `get_user(admin)` answers exists=true over TLS as the original client calls
    it, else a description of what happened."""
    creds = grpc.ssl_channel_credentials(root_certificates=root_cert)
    channel = grpc.secure_channel(
        target, creds, options=(("grpc.ssl_target_name_override", "localhost"),)
    )
    try:
        call = channel.unary_unary("/unary.LeotestOrchestrator/get_user")
        md = (("x-leotest-access-token", admin_token), ("x-leotest-userid", "admin"),
              ("x-leotest-jwt-access-token", ""))  # fmt: skip
        answer = call(_GET_ADMIN, timeout=timeout, metadata=md)
        return None if answer.startswith(_EXISTS_TRUE) else f"get_user(admin) answered {answer!r}"
    except grpc.RpcError as err:
        return f"{err.code()} {err.details()}"
    finally:
        channel.close()


class MongoWire:
    """An nx-27017 of our own on a free port (scripts/start-mongo-wire.sh)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / f"mongo-wire-{self.port}"
        self.uri = ""

    def _env(self) -> dict:
        return {**os.environ, "PORT": str(self.port), "MONGO_WIRE_DIR": str(self.dir)}

    def start(self) -> str:
        done = subprocess.run(
            [str(REPO_ROOT / "scripts" / "start-mongo-wire.sh")],
            env=self._env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"start-mongo-wire.sh failed:\n{done.stderr}")
        self.uri = done.stdout.strip()
        return self.uri

    def stop(self) -> None:
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "start-mongo-wire.sh"), "stop"],
            env=self._env(), capture_output=True, timeout=60,
        )  # fmt: skip


@dataclass
class Server:
    """A running orchestrator process: ours or the original."""

    name: str
    workdir: Path
    cert: Path
    key: Path
    admin_token: str
    jwt_secret: str
    port: int = 0
    proc: subprocess.Popen | None = None
    _log: Path | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _spawn(self, args: list[str], env: dict, cwd: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.workdir / f"{self.name}.log"
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        root = self.cert.read_bytes()
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            last = probe(self.target, root, self.admin_token)
            if last is None:
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {READY_TIMEOUT_S}s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def our_binary() -> Path:
    explicit = os.environ.get("LEOTEST_ORCHESTRATOR_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    binary = target / "debug" / "leotest-orchestrator"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "leotest-orchestrator"], cwd=REPO_ROOT, check=True)
    return binary


@dataclass
class OursOrchestrator(Server):
    """Our orchestrator binary, embedded store (or MongoDB at `mongo_uri`)."""

    mongo_uri: str | None = None
    binary: Path = field(default_factory=our_binary)

    def start(self) -> "OursOrchestrator":
        self.port = self.port or free_port()
        args = [
            str(self.binary),
            "--grpc-hostname", "127.0.0.1",
            "--grpc-port", str(self.port),
            "--tls-cert", str(self.cert),
            "--tls-key", str(self.key),
            "--admin-access-token", self.admin_token,
            "--jwt-secret", self.jwt_secret,
            "--jwt-algo", "HS256",
        ]  # fmt: skip
        if self.mongo_uri:
            args += ["--db-server", self.mongo_uri, "--db-name", f"harness_{uuid.uuid4().hex[:10]}"]
        else:
            args += ["--data-dir", str(self.workdir / "data")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEOTEST_")}
        env.setdefault("RUST_LOG", "info")
        self._spawn(args, env, self.workdir)
        return self


@dataclass
class OriginalOrchestrator(Server):
    """The original Python orchestrator from the reference copy, through shim_orchestrator.py,
    on the MongoDB-wire server at `mongo_uri` (a fresh database each start)."""

    mongo_uri: str = ""
    python: str = sys.executable
    db_name: str = ""

    def start(self) -> "OriginalOrchestrator":
        self.port = self.port or free_port()
        self.db_name = self.db_name or f"leotest_{uuid.uuid4().hex[:10]}"
        hostport = self.mongo_uri.removeprefix("mongodb://").split("/")[0]
        db_host, db_port = hostport.rsplit(":", 1)
        run_dir = self.workdir / "original-cwd"
        (run_dir / "certs").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.cert, run_dir / "certs" / "server.crt")
        shutil.copyfile(self.key, run_dir / "certs" / "server.key")
        args = [
            self.python, str(HERE / "shim_orchestrator.py"),
            "--grpc-hostname", "localhost",
            "--grpc-port", str(self.port),
            "--db-server", db_host,
            "--db-port", db_port,
            "--db-name", self.db_name,
            "--admin-access-token", self.admin_token,
            "--jwt-secret", self.jwt_secret,
            "--jwt-algo", "HS256",
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": str(upstream_dir()),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LEOTEST_ORIGINAL_BIND": self.target,
        }
        self._spawn(args, env, run_dir)
        return self


def _main() -> None:
    import argparse

    from certs import make_original_cert

    p = argparse.ArgumentParser(description="Run the ORIGINAL orchestrator from the reference copy.")
    sub = p.add_subparsers(dest="what", required=True)
    o = sub.add_parser("original-orchestrator")
    o.add_argument("--workdir", type=Path, required=True)
    o.add_argument("--port", type=int, default=0)
    o.add_argument("--cert", type=Path, help="server.crt (default: made by generate_certs.sh)")
    o.add_argument("--key", type=Path)
    o.add_argument("--mongo-uri", default="", help="default: an nx-27017 of its own")
    o.add_argument("--db-name", default="")
    o.add_argument("--admin-token", required=True)
    o.add_argument("--jwt-secret", required=True)
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    if not a.cert:
        a.cert, a.key = make_original_cert(upstream_dir(), a.workdir / "certs")
    mongo = None
    if not a.mongo_uri:
        mongo = MongoWire(a.workdir)
        a.mongo_uri = mongo.start()
    server = OriginalOrchestrator(
        name="original", workdir=a.workdir, cert=a.cert, key=a.key, admin_token=a.admin_token,
        jwt_secret=a.jwt_secret, port=a.port, mongo_uri=a.mongo_uri, db_name=a.db_name,
    )  # fmt: skip
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        server.start()
        print(f"ready {server.target} {a.cert}", flush=True)
        while not stop and server.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if mongo:
            mongo.stop()


if __name__ == "__main__":
    _main()
