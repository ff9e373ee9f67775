"""Fixtures for the harness around the ORIGINAL's code: the reference copy, a certificate
from its generate_certs.sh, a MongoDB-wire server, our orchestrator and the original one.

The reference copy is found by upstream.py; a missing copy skips these tests, except under
CI=true where it fails them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from certs import make_original_cert
from servers import MongoWire, OriginalOrchestrator, OursOrchestrator
from upstream import UpstreamMissing, in_ci, upstream_dir


@pytest.fixture(scope="session")
def upstream() -> Path:
    try:
        return upstream_dir()
    except UpstreamMissing as err:
        if in_ci():
            pytest.fail(f"CI=true: {err}")
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def orig_cert(upstream, tmp_path_factory) -> tuple[Path, Path]:
    """server.crt and server.key made by the original's certs/generate_certs.sh."""
    return make_original_cert(upstream, tmp_path_factory.mktemp("orig-cert"))


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory) -> str:
    explicit = os.environ.get("LEOTEST_TEST_MONGO_URI")
    if explicit:
        yield explicit
        return
    server = MongoWire(tmp_path_factory.mktemp("mongo-wire"))
    yield server.start()
    server.stop()


@pytest.fixture
def credentials() -> dict:
    return {"admin_token": "adm-" + secrets.token_hex(8), "jwt_secret": secrets.token_hex(24)}


def start_ours(tmp: Path, cert, credentials: dict, mongo_uri: str | None = None) -> OursOrchestrator:
    return OursOrchestrator(name="ours", workdir=tmp, cert=cert[0], key=cert[1],
                            mongo_uri=mongo_uri, **credentials).start()  # fmt: skip


def start_original(tmp: Path, cert, credentials: dict, mongo_uri: str) -> OriginalOrchestrator:
    return OriginalOrchestrator(name="original", workdir=tmp, cert=cert[0], key=cert[1],
                                mongo_uri=mongo_uri, **credentials).start()  # fmt: skip


@pytest.fixture
def ours(tmp_path, orig_cert, credentials, upstream):
    server = start_ours(tmp_path / "ours", orig_cert, credentials)
    yield server
    server.stop()


@pytest.fixture
def original(tmp_path, orig_cert, credentials, mongo_uri, upstream):
    server = start_original(tmp_path / "original", orig_cert, credentials, mongo_uri)
    yield server
    server.stop()
