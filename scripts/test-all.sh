#!/usr/bin/env bash
# Runs every test of leotest-rs: Rust unit and integration tests (real orchestrator over TLS,
# real Docker engine, embedded store and a MongoDB-wire server), the Python grpcio
# compatibility suite, and a short benchmark smoke run.
# Needs: cargo, python3, docker; it starts the MongoDB-wire server it needs by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ -z "${LEOTEST_TEST_MONGO_URI:-}" ]; then
    step "starting a MongoDB-wire server for the MongoDB backend tests"
    LEOTEST_TEST_MONGO_URI=$(scripts/start-mongo-wire.sh)
    export LEOTEST_TEST_MONGO_URI
fi
echo "MongoDB backend tests use $LEOTEST_TEST_MONGO_URI"

step "Rust tests (workspace)"
cargo test --workspace --locked

step "Python grpcio compatibility suite"
compat-tests/run.sh

step "benchmark smoke run"
scripts/bench.sh --smoke orchestrator
scripts/bench.sh --smoke sandbox
