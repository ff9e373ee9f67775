#!/usr/bin/env bash
# Runs the grpcio wire-compatibility suite against the real Rust orchestrator binary.
# Creates compat-tests/.venv, installs the pinned requirements into it, builds the
# orchestrator (cargo build -p leotest-orchestrator), then runs pytest.
# Extra arguments go to pytest. Set LEOTEST_TEST_MONGO_URI to add the MongoDB-wire session.
# pytest's exit code 5 ("no tests collected") is turned into a failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

python=${PYTHON:-python3}
venv="$here/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
    echo "compat-tests: creating $venv" >&2
    if ! "$python" -m venv "$venv"; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "compat-tests: installing python3-venv with apt-get" >&2
            apt-get install -y -qq python3-venv >&2
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            exit 1
        fi
    fi
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "compat-tests: installing requirements.txt" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$want" >"$stamp"
fi

# Always (re)build so a stale binary is never tested; a no-op when it is up to date.
if [ -z "${LEOTEST_ORCHESTRATOR_BIN:-}" ]; then
    echo "compat-tests: building leotest-orchestrator" >&2
    (cd "$here/.." && cargo build --quiet -p leotest-orchestrator)
fi

set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "compat-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$rc"
