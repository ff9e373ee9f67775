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
# The steps live in `cargo xtask test [TIER]` (xtask/src/test_all.rs); this is its name in the
# README and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask test "$@"
