#!/usr/bin/env bash
# Runs the security test group: every test named `security_*` in the workspace, i.e. the
# attacks of the adversarial review (issue 15) and the regression tests of what held, each
# against real processes (the orchestrator binary over TLS, the kernel service on our own
# Docker networks, sandboxed jobs), with bounded loops on loopback. docs/security.md maps each
# attack to its test. Extra arguments go to the test binaries (e.g. `--nocapture`).
# Needs what `cargo test --workspace` needs (Docker and root for the kernel-service tests;
# LEOTEST_SKIP_DOCKER_TESTS=1 skips the Docker ones); starts a MongoDB-wire server itself
# when LEOTEST_TEST_MONGO_URI is unset. scripts/test-all.sh runs these tests too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${LEOTEST_TEST_MONGO_URI:-}" ]; then
    LEOTEST_TEST_MONGO_URI=$(PORT=${LEOTEST_TEST_MONGO_PORT:-27018} scripts/start-mongo-wire.sh)
    export LEOTEST_TEST_MONGO_URI
fi

# The orchestrator binary must exist before the client and kernel-service tests start it.
cargo build --locked -p leotest-orchestrator
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked security_ -- "$@" 2>&1 | tee "$log"
# Every `fn security_*` in the tree must have run and passed: a group that matched less (a
# filter typo, a test left out of a binary) must not pass silently.
ran=$(awk '/^test result:/ { n += $4 } END { print n + 0 }' "$log")
want=$(grep -rhoE 'fn security_[a-z0-9_]+' --include='*.rs' \
    proto wire rpc orchestrator kernel-service client bench test-support | sort -u | wc -l)
if [ "$ran" -ne "$want" ]; then
    echo "security-tests: $ran security_ tests passed, $want are defined" >&2
    exit 1
fi
echo "security-tests: all $ran tests passed"
