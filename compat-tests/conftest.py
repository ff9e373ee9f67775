"""Fixtures: the real orchestrator binary over TLS, certificates, identities, coverage report.

Each server session gets a fresh certificate and data directory. Sessions:
  - embedded-san:      embedded store, RSA 2048 certificate with CN and SAN localhost
  - embedded-origcert: embedded store, a certificate made like the original's
                       certs/generate_certs.sh (RSA 4096, CN=localhost, no SAN, PKCS#1 key)
  - mongo-san:         MongoDB-wire store at $LEOTEST_TEST_MONGO_URI (only when it is set)
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import secrets
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from contract import ALL_PATHS, RPCS, enum_value, msg
from leotest_client import COMPAT_CLIENT, RECORDER, LeotestClient

REPO_ROOT = Path(__file__).resolve().parent.parent
BINARY_NAME = "leotest-orchestrator"
ADMIN_ID = "admin"
READY_TIMEOUT_S = 60.0


# ---------------------------------------------------------------- binary and certificates


def _locate_binary() -> Path:
    explicit = os.environ.get("LEOTEST_ORCHESTRATOR_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    binary = target / "debug" / BINARY_NAME
    if not binary.exists():
        subprocess.run(
            ["cargo", "build", "-p", "leotest-orchestrator"], cwd=REPO_ROOT, check=True
        )
    if not binary.exists():
        pytest.exit(f"{binary} was not built", returncode=3)
    return binary


@pytest.fixture(scope="session")
def orchestrator_binary() -> Path:
    return _locate_binary()


def make_cert(directory: Path, original_style: bool) -> tuple[Path, Path]:
    """Writes a self-signed certificate and key; returns (cert path, key path)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=4096 if original_style else 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1 if original_style else x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if not original_style:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    key_format = (
        serialization.PrivateFormat.TraditionalOpenSSL  # PKCS#1, what `openssl rsa` writes
        if original_style
        else serialization.PrivateFormat.PKCS8
    )
    cert_path = directory / "server.crt"
    key_path = directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- the orchestrator process


@dataclass
class Orchestrator:
    """A running orchestrator and everything a test needs to talk to it."""

    name: str
    binary: Path
    workdir: Path
    backend: str
    mongo_uri: str | None
    original_cert: bool
    admin_token: str = field(default_factory=lambda: "adm-" + secrets.token_hex(8))
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = 0
    proc: subprocess.Popen | None = None
    root_cert: bytes = b""
    _clients: list[LeotestClient] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "orchestrator.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cert, key = make_cert(self.workdir, self.original_cert)
        self.root_cert = cert.read_bytes()
        self.port = _free_port()
        args = [
            str(self.binary),
            "--listen", f"127.0.0.1:{self.port}",
            "--tls-cert", str(cert),
            "--tls-key", str(key),
            "--admin-access-token", self.admin_token,
            "--jwt-secret", self.jwt_secret,
            "--jwt-algo", "HS256",
        ]  # fmt: skip
        if self.backend == "mongo":
            args += ["--db-server", self.mongo_uri, "--db-name", f"compat_{uuid.uuid4().hex[:12]}"]
        else:
            args += ["--data-dir", str(self.workdir / "data")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEOTEST_")}
        env.setdefault("RUST_LOG", "info")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        # A fresh channel per attempt: a channel that met the port before the server listened
        # waits out gRPC's reconnect backoff (1 s, x1.6 with jitter), so one probe channel made
        # readiness take ~15 s and, under load, more than the whole deadline.
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"orchestrator exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            probe = LeotestClient(self.target, self.root_cert, ADMIN_ID, self.admin_token)
            try:
                stub = probe.channel.unary_unary(
                    RPCS["get_user"].path,
                    request_serializer=lambda m: m.SerializeToString(),
                    response_deserializer=RPCS["get_user"].response.FromString,
                )
                rsp = stub(msg("message_get_user")(userid=ADMIN_ID), timeout=2)
                if rsp.exists:
                    return
            except grpc.RpcError as err:
                last = f"{err.code()} {err.details()}"
            finally:
                probe.close()
            time.sleep(0.2)
        raise RuntimeError(f"orchestrator not ready in {READY_TIMEOUT_S}s ({last}):\n"
                           + self.log_tail())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, userid: str = "", token: str = "", jwt: str = "") -> LeotestClient:
        c = LeotestClient(self.target, self.root_cert, userid, token, jwt)
        self._clients.append(c)
        return c

    def admin(self) -> LeotestClient:
        return self.client(ADMIN_ID, self.admin_token)


def _server_params() -> list:
    params = [
        pytest.param(("embedded", False), id="embedded-san"),
        pytest.param(("embedded", True), id="embedded-origcert"),
    ]
    if os.environ.get("LEOTEST_TEST_MONGO_URI"):
        params.append(pytest.param(("mongo", False), id="mongo-san"))
    return params


def _start(binary: Path, tmp: Path, name: str, backend: str, original: bool) -> Orchestrator:
    server = Orchestrator(
        name=name,
        binary=binary,
        workdir=tmp,
        backend=backend,
        mongo_uri=os.environ.get("LEOTEST_TEST_MONGO_URI"),
        original_cert=original,
    )
    server.start()
    return server


def _finish(server: Orchestrator) -> None:
    crashed = not server.alive()
    server.stop()
    text = server.log_text()
    if crashed:
        pytest.fail(f"orchestrator {server.name} died during the tests:\n{server.log_tail()}")
    if "panicked" in text:
        pytest.fail(f"orchestrator {server.name} logged a panic:\n{server.log_tail(80)}")


@pytest.fixture(scope="session", params=_server_params())
def server(request, orchestrator_binary, tmp_path_factory):
    """The orchestrator shared by the tests of one backend/certificate session."""
    backend, original = request.param
    name = f"{backend}-{'origcert' if original else 'san'}"
    srv = _start(orchestrator_binary, tmp_path_factory.mktemp(name), name, backend, original)
    yield srv
    _finish(srv)


@pytest.fixture(scope="module")
def fresh_server(orchestrator_binary, tmp_path_factory):
    """A private embedded orchestrator for tests that change global state (vectors, config)."""
    srv = _start(orchestrator_binary, tmp_path_factory.mktemp("fresh"), "fresh", "embedded", False)
    yield srv
    _finish(srv)


# ---------------------------------------------------------------- identities


def static_token(ident: str, name: str, team: str) -> str:
    """The original's static token: hex sha256 over id, name and team."""
    return hashlib.sha256((ident + name + team).encode()).hexdigest()


def token_from_reply(message: str, prefix: str) -> str:
    """The token a registration reply carries, where the original puts it (clients parse it
    from there): `<prefix> access_token=<64 hex digits>`. Ours are random (docs/compatibility.md),
    never the derivable static_token()."""
    head, _, token = message.rpartition(" access_token=")
    assert head == prefix, message
    assert re.fullmatch(r"[0-9a-f]{64}", token), message
    return token


@dataclass
class Identity:
    userid: str
    name: str
    team: str
    role: str
    token: str
    client: LeotestClient


class Users:
    """Registers users of each role through the admin and hands out their clients."""

    def __init__(self, server: Orchestrator) -> None:
        self.server = server
        self.admin_client = server.admin()

    def register(self, role: str, prefix: str | None = None) -> Identity:
        userid = f"{prefix or role.lower()}-{uuid.uuid4().hex[:10]}"
        name, team = f"name of {userid}", "compat team"
        rsp = self.admin_client.call(
            "register_user",
            id=userid,
            name=name,
            role=enum_value("user_roles", role),
            team=team,
        )
        assert rsp.state == enum_value("response_state", "SUCCESS"), rsp
        token = token_from_reply(rsp.message, "user registered")
        return Identity(userid, name, team, role, token, self.server.client(userid, token))

    def register_node(self, nodeid: str | None = None) -> Identity:
        nodeid = nodeid or f"node-{uuid.uuid4().hex[:10]}"
        name, description = f"name of {nodeid}", "compat test node"
        node = msg("_node")(
            nodeid=nodeid,
            name=name,
            description=description,
            coords="17.4,78.3",
            location="hyderabad",
            provider="starlink",
            public_ip="192.0.2.10",
        )
        rsp = self.admin_client.call("register_node", node=node)
        assert rsp.state == enum_value("response_state", "SUCCESS"), rsp
        token = token_from_reply(rsp.message, "node successfully registered")
        return Identity(nodeid, name, description, "NODE", token, self.server.client(nodeid, token))


@pytest.fixture(scope="session")
def users(server) -> Users:
    return Users(server)


@pytest.fixture(scope="session")
def admin(server) -> LeotestClient:
    return server.admin()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


# ---------------------------------------------------------------- coverage report


def _coverage_enforced(config) -> bool:
    if os.environ.get("LEOTEST_COMPAT_PARTIAL"):
        return False
    opt = config.option
    return not (getattr(opt, "keyword", "") or getattr(opt, "markexpr", "") or getattr(opt, "lf", False))


def pytest_sessionfinish(session, exitstatus):
    covered = RECORDER.answered & ALL_PATHS
    session.config._compat_covered = covered
    if _coverage_enforced(session.config) and len(covered) < len(ALL_PATHS):
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    covered = getattr(config, "_compat_covered", RECORDER.answered & ALL_PATHS)
    tr = terminalreporter
    tr.section("wire compatibility coverage")
    name = {r.path: r.name for r in RPCS.values()}
    missing = sorted(name[p] for p in ALL_PATHS - covered)
    unimpl = sorted(name[p] for p in RECORDER.unimplemented & ALL_PATHS - covered)
    if missing:
        tr.write_line(f"not covered: {', '.join(missing)}")
    if unimpl:
        tr.write_line(f"answered UNIMPLEMENTED: {', '.join(unimpl)}")
    tr.write_line(f"compat: client = {COMPAT_CLIENT} (LEOTEST_COMPAT_CLIENT)")
    tr.write_line(f"compat: {len(covered)}/{len(ALL_PATHS)} RPCs covered")
    if _coverage_enforced(config) and len(covered) < len(ALL_PATHS):
        tr.write_line("compat: FAILED, every RPC of the original must answer")
