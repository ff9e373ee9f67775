#!/usr/bin/env bash
# End-to-end check of the docker-compose testbed (xtask/src/e2e_testbed.rs): `cargo xtask e2e-testbed [--mongo]`.
cd "$(dirname "$0")/.."
exec cargo xtask e2e-testbed "$@"
