#!/usr/bin/env bash
# Runs the grpcio wire-compatibility suite against the real Rust orchestrator binary, three ways:
#   ours      the suite with its own client (leotest_client.py), compat-tests/.venv
#   original  the same suite with the ORIGINAL common/client.py as its client
#             (LEOTEST_COMPAT_CLIENT=original), compat-tests/.venv-original (original/venv.sh)
#   harness   original/: the original's orchestrator, node agent and files against ours
#             (issue 14; its own pytest.ini)
# COMPAT_RUN picks some ("ours original harness" by default). Extra arguments go to pytest
# (the first two runs). Builds the orchestrator (cargo build -p leotest-orchestrator) first.
# Set LEOTEST_TEST_MONGO_URI to add the MongoDB-wire session. pytest's exit code 5 ("no tests
# collected") is turned into a failure. The original's reference copy is needed by the last
# two: missing, they are skipped, or fail under CI=true.
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
    echo "compat-tests: building leotest-orchestrator and leotest" >&2
    (cd "$here/.." && cargo build --quiet -p leotest-orchestrator -p leotest-client)
fi

upstream=${LEOTEST_UPSTREAM:-$here/../../shared/upstream/global-testbed}
have_upstream=false
[ -f "$upstream/common/client.py" ] && have_upstream=true

failed=()
run_pytest() { # name python args...
    local name=$1 py=$2 rc
    shift 2
    echo "compat-tests: === $name ===" >&2
    set +e
    "$py" -m pytest -p no:cacheprovider "$@"
    rc=$?
    set -e
    if [ "$rc" -eq 5 ]; then
        echo "compat-tests: $name: pytest collected no tests; treating that as a failure" >&2
        rc=1
    fi
    return "$rc"
}

for what in ${COMPAT_RUN:-ours original harness}; do
    case "$what" in
        ours) run_pytest "suite, our client" "$venv/bin/python" "$@" || failed+=(ours) ;;
        original | harness)
            if ! $have_upstream; then
                if [ "${CI:-}" = true ]; then
                    echo "compat-tests: $what: no reference copy of the original at $upstream (CI=true)" >&2
                    failed+=("$what")
                else
                    echo "compat-tests: $what: SKIPPED, no reference copy of the original at $upstream" >&2
                fi
                continue
            fi
            export LEOTEST_UPSTREAM=$upstream
            orig_python=$("$here/original/venv.sh")
            if [ "$what" = original ]; then
                # protobuf 4.23.4's upb backend crashes (SIGSEGV) iterating repeated fields of
                # the suite's private-pool classes; its pure-Python backend runs the same code.
                LEOTEST_COMPAT_CLIENT=original PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python \
                    run_pytest "suite, the original's client" "$orig_python" "$@" ||
                    failed+=(original)
            else
                (cd "$here/original" && run_pytest "harness around the original" "$orig_python") ||
                    failed+=(harness)
            fi
            ;;
        *) echo "compat-tests: unknown COMPAT_RUN entry '$what'" >&2; exit 2 ;;
    esac
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "compat-tests: FAILED: ${failed[*]}" >&2
    exit 1
fi
