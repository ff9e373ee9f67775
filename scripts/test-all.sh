#!/usr/bin/env bash
# Runs every test of leotest-rs: Rust unit and integration tests (real orchestrator over TLS,
# real Docker engine, embedded store and a MongoDB-wire server), the scale test (10 000 jobs
# and 1 000 000 runs per store), the README's command blocks, the Python grpcio compatibility
# suite (with our client and with the original's common/client.py) and the harness that drives
# us with the original's own code (its orchestrator, node agent, certificates), the
# docker-compose testbed end to end (embedded store, the `mongo` profile, then the `ha`
# failover test, then 2 sites behind emulated satellite links), the drop-in test with the original's compose files, and a short benchmark
# smoke run (with the Python original side by side: scripts/bench.sh --smoke --orig).
# Needs: cargo, python3, docker (as root); it starts the MongoDB-wire server it needs by itself
# and stops it again at the end (one it found already running is left alone).
#
#   scripts/test-all.sh [all]        everything, in the order above (CI runs this)
#   scripts/test-all.sh fast         `cargo fast` (.cargo/config.toml): unit tests (cargo test
#                                    --lib --bins) and every RPC handler in process
#                                    (orchestrator/tests/handlers): no binary, no TLS, no Docker,
#                                    no MongoDB, no root
#   scripts/test-all.sh integration  cargo test --workspace (+ MongoDB suite through the fault
#                                    proxy), the scale test, the README/newcomer/operations
#                                    walk-throughs and the Python compatibility suites
#   scripts/test-all.sh e2e          the Docker tiers (compose testbeds, sites, drop-in) and the
#                                    benchmark smoke runs
# The README ("Tests") gives each tier's time.
# LEOTEST_SKIP_DOCKER_TESTS=1 skips everything that needs the Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's header carries the time since the start, so a log shows where the time goes.
step() { printf '\n==> [+%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

tier=${1:-all}
case "$tier" in
    fast | integration | e2e | all) ;;
    *) echo "usage: $0 [fast|integration|e2e|all]" >&2; exit 2 ;;
esac
# A MongoDB-wire server for the MongoDB backend tests (and the runs benchmark), stopped at exit
# if this run started it.
start_mongo() {
    [ -z "${LEOTEST_TEST_MONGO_URI:-}" ] || return 0
    step "starting a MongoDB-wire server for the MongoDB backend tests"
    # Not on 27017: scripts/dropin-test.sh runs the original compose file, which publishes 27017.
    local port=${LEOTEST_TEST_MONGO_PORT:-27018}
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        trap "PORT=$port scripts/start-mongo-wire.sh stop" EXIT
    fi
    LEOTEST_TEST_MONGO_URI=$(PORT=$port scripts/start-mongo-wire.sh)
    export LEOTEST_TEST_MONGO_URI
    echo "MongoDB backend tests use $LEOTEST_TEST_MONGO_URI"
}

integration_tier() {
    step "Rust tests (workspace)"
    cargo test --workspace --locked

    step "MongoDB suite again, through the pass-through fault-injecting wire proxy (test-support mongo_proxy)"
    LEOTEST_TEST_MONGO_PROXY=1 cargo test --locked -p leotest-orchestrator --test store_conformance \
        --test mongo_compat --test mongo_faults --test booking_race --test node_identity --test replicas

    step "scale test: 10 000 jobs and 1 000 000 runs in each store (release build)"
    cargo test --release --locked -p leotest-orchestrator --test scale_jobs -- --ignored --nocapture --test-threads 1

    step "README examples, as written"
    scripts/readme-examples.sh

    step "newcomer walk-through: login, users, nodes, jobs, every exit code (from outside the repository)"
    scripts/newcomer.sh

    step "docs/operations.md's checked blocks (certificate, registration, online backup and restore, SIGHUP, promtool)"
    scripts/operations-examples.sh

    step "Python grpcio compatibility suite (our client, the original's client) and the harness around the original's code"
    compat-tests/run.sh
}

e2e_tier() {
    if [ "${LEOTEST_SKIP_DOCKER_TESTS:-}" = 1 ]; then
        step "docker-compose testbed: skipped (LEOTEST_SKIP_DOCKER_TESTS=1)"
    else
        step "docker-compose testbed end to end (embedded store)"
        scripts/e2e-testbed.sh
        step "docker-compose testbed end to end (mongo profile)"
        scripts/e2e-testbed.sh --mongo
        step "docker-compose testbed end to end (ha: two replicas behind HAProxy, one killed under load)"
        scripts/e2e-ha.sh
        step "multi-site testbed end to end (2 sites behind emulated leo links: isolation, link cut, revocation)"
        scripts/e2e-sites.sh
        step "drop-in: the original's docker-compose files, certificates and client against our images"
        # The images the two runs above built (same tag); publishes host ports 50051 and 27017.
        DROPIN_SKIP_BUILD=1 LEOTEST_IMAGE_TAG=${LEOTEST_IMAGE_TAG:-dev} scripts/dropin-test.sh
    fi

    step "benchmark smoke run"
    scripts/bench.sh --smoke orchestrator
    scripts/bench.sh --smoke sandbox
    scripts/bench.sh --smoke runs
    local upstream=${LEOTEST_UPSTREAM:-$PWD/../shared/upstream/global-testbed}
    if [ "${LEOTEST_SKIP_DOCKER_TESTS:-}" = 1 ]; then
        echo "compare-original smoke run: skipped (LEOTEST_SKIP_DOCKER_TESTS=1)"
    elif [ -f "$upstream/services/kernel/__main__.py" ]; then
        scripts/bench.sh --smoke --orig "$upstream"
        # one profile, one burst size (about a minute): the full run is in BENCHMARKS.md
        scripts/bench.sh --smoke sites --orig "$upstream" --profiles leo+obstruction --containers 1
    elif [ "${CI:-}" = true ]; then
        echo "compare-original: the original's reference copy is missing at $upstream (CI=true)" >&2
        exit 1
    else
        echo "compare-original smoke run: SKIPPED, no reference copy of the original at $upstream"
    fi
}

case "$tier" in
    fast)
        step "unit tests (workspace: --lib --bins) and the in-process handler tests (--test handlers)"
        # The alias of .cargo/config.toml: `cargo fast` by hand runs exactly this tier.
        cargo fast
        ;;
    integration) start_mongo; integration_tier ;;
    e2e) start_mongo; e2e_tier ;;
    all) start_mongo; integration_tier; e2e_tier ;;
esac
