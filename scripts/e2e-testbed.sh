#!/usr/bin/env bash
# End-to-end check of the docker-compose testbed (xtask/src/testbed.rs): `cargo xtask e2e-testbed [--mongo]`.
cd "$(dirname "$0")/.."
exec cargo xtask e2e-testbed "$@"
