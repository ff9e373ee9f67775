#!/usr/bin/env bash
# The ORIGINAL node agent over an emulated `leo` link (issue 22 item 3): builds leotest-link and
# our orchestrator (debug), then runs compat-tests/original/test_node_agent_link.py against ours
# and against the Python original; prints one line per server with the counts of heartbeats,
# update_run and update_task answered OK (and failed attempts that were retried), the tasks and
# runs as the admin reads them afterwards. About 70 s on 2 cores.
#
#   scripts/agent-over-link.sh [PYTEST ARGS...]   LEOTEST_UPSTREAM: the original's checkout
#                                                 (default ../shared/upstream/global-testbed)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked -p leotest-orchestrator -p leotest-bench --bin leotest-link
target=${CARGO_TARGET_DIR:-$PWD/target}
export LEOTEST_LINK_BIN="$target/debug/leotest-link"
py=$(compat-tests/original/venv.sh)
cd compat-tests/original
exec "$py" -m pytest -p no:cacheprovider -s test_node_agent_link.py "$@"
