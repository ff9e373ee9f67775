#!/usr/bin/env bash
# Writes a fresh self-signed development certificate and key for the orchestrator
# (CN/SAN localhost + 127.0.0.1, ECDSA P-256, key mode 0600) to certs/server.crt|key.
# Extra arguments go to `leotest-orchestrator gen-cert`, e.g. --force, --san my.host,
# --cert PATH --key PATH. Never commit the key (certs/ is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet -p leotest-orchestrator -- gen-cert "$@"
