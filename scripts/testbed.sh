#!/usr/bin/env bash
# The one-machine docker-compose testbed (xtask/src/testbed/): `cargo xtask testbed --help`.
cd "$(dirname "$0")/.." && exec cargo xtask testbed "$@"
