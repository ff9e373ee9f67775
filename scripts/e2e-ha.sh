#!/usr/bin/env bash
# Failover end-to-end test of the `ha` compose testbed (xtask/src/e2e_ha/): `cargo xtask e2e-ha`.
[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }
cd "$(dirname "$0")/.." && exec cargo xtask e2e-ha
