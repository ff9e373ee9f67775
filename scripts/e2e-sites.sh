#!/usr/bin/env bash
# End-to-end test of the multi-site testbed (xtask/src/e2e_sites/): `cargo xtask e2e-sites`, settings in the environment.
[ $# -eq 0 ] || { echo "usage: $0 (settings in the environment)" >&2; exit 2; }
cd "$(dirname "$0")/.." && exec cargo xtask e2e-sites "$@"
