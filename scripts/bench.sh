#!/usr/bin/env bash
# Runs the leotest-rs benchmarks (bench/, binary leotest-bench). Needs root and a local Docker
# engine (kernel benchmark: containers, setns; sandbox benchmark: namespaces, cgroups).
#
#   scripts/bench.sh            full run, release build: the figures in BENCHMARKS.md
#   scripts/bench.sh --smoke    a few seconds per benchmark (debug build), so CI notices rot
#   scripts/bench.sh [--smoke] SUBCOMMAND [ARGS...]   one benchmark (orchestrator, kernel,
#                               sandbox, runs, all), extra args go to leotest-bench
#   scripts/bench.sh [--smoke] --orig DIR [ARGS...]   leotest-rs vs the Python original in one
#                               run (leotest-bench compare-original --orig DIR): DIR is a checkout
#                               of leoscope-testbed/global-testbed (here ../shared/upstream/
#                               global-testbed); its orchestrator and kernel service are started
#                               from it with compat-tests/original's venv (PyPI) and shims, on an
#                               nx-27017 server of their own
#
# The MongoDB-wire figures need LEOTEST_TEST_MONGO_URI; a full run starts a local server with
# scripts/start-mongo-wire.sh when it is unset (LEOTEST_BENCH_NO_MONGO=1 skips that).
# Full-run output is also written to target/bench/results-<UTC time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
orig=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1; shift ;;
        --orig)
            [ $# -ge 2 ] || { echo "bench.sh: --orig needs a directory" >&2; exit 2; }
            orig=$2
            shift 2
            ;;
        --orig=*) orig=${1#--orig=}; shift ;;
        *) break ;;
    esac
done
if [ -n "$orig" ]; then
    # Relative to where the script was called from (it runs from the repository root).
    case "$orig" in /*) ;; *) orig="$OLDPWD/$orig" ;; esac
    set -- compare-original --orig "$orig" "$@"
fi
cmd=${1:-all}
[ $# -gt 0 ] && shift

if [ "$(id -u)" != 0 ]; then
    echo "bench.sh: run as root (namespaces, cgroups, Docker, setns)" >&2
    exit 1
fi

crates=(-p leotest-orchestrator -p leotest-kernel-service -p leotest-bench)
if [ "$smoke" = 1 ]; then
    cargo build --quiet "${crates[@]}"
    exec target/debug/leotest-bench "$cmd" --smoke --bin-dir target/debug "$@"
fi

cargo build --quiet --release "${crates[@]}"
# compare-original starts the nx-27017 server it shares with the original by itself.
if [ "$cmd" != compare-original ] && [ -z "${LEOTEST_TEST_MONGO_URI:-}" ] &&
    [ "${LEOTEST_BENCH_NO_MONGO:-0}" != 1 ]; then
    if uri=$(PORT=${MONGO_WIRE_PORT:-27019} scripts/start-mongo-wire.sh); then
        export LEOTEST_TEST_MONGO_URI=$uri
    else
        echo "bench.sh: no MongoDB-wire server; its figures are skipped" >&2
    fi
fi
mkdir -p target/bench
out="target/bench/results-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
    echo "command: scripts/bench.sh $cmd $*"
    echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
    target/release/leotest-bench "$cmd" --bin-dir target/release "$@"
} 2>&1 | tee "$out"
echo "results saved to $out" >&2
