#!/usr/bin/env bash
# Runs the leotest-rs benchmarks (bench/, binary leotest-bench). Needs root and a local Docker
# engine (kernel benchmark: containers, setns; sandbox benchmark: namespaces, cgroups).
#
#   scripts/bench.sh            full run, release build: the figures in BENCHMARKS.md
#   scripts/bench.sh --smoke    a few seconds per benchmark (debug build), so CI notices rot
#   scripts/bench.sh [--smoke] SUBCOMMAND [ARGS...]   one benchmark (orchestrator, kernel,
#                               sandbox, runs, schedule, all), extra args go to leotest-bench
#   scripts/bench.sh --baseline-rev REV [SUBCOMMAND]   also builds the orchestrator at git
#                               revision REV (e.g. the commit before atomic bookings) and passes
#                               it as the `schedule` baseline (LEOTEST_BENCH_BASELINE_BIN)
#   scripts/bench.sh [--smoke] --orig DIR [ARGS...]   leotest-rs vs the Python original in one
#                               run (leotest-bench compare-original --orig DIR): DIR is a checkout
#                               of leoscope-testbed/global-testbed (here ../shared/upstream/
#                               global-testbed); its orchestrator and kernel service are started
#                               from it with compat-tests/original's venv (PyPI) and shims, on an
#                               nx-27017 server of their own
#   scripts/bench.sh [--smoke] sites --orig DIR [ARGS...]   kernel decisions over an emulated
#                               link (lan, wan, leo, leo + 10 s obstruction; 1 and 50 connections
#                               at once), leotest-rs vs the original's kernel service and
#                               orchestrator from DIR, same run (leotest-bench sites --help)
#
# The MongoDB-wire figures need LEOTEST_TEST_MONGO_URI; a full run starts a local server with
# scripts/start-mongo-wire.sh when it is unset (LEOTEST_BENCH_NO_MONGO=1 skips that).
# Full-run output is also written to target/bench/results-<UTC time>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
baseline_rev=
orig=""
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1; shift ;;
        --baseline-rev)
            [ $# -ge 2 ] || { echo "bench.sh: --baseline-rev needs a revision" >&2; exit 2; }
            baseline_rev=$2
            shift 2
            ;;
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

# The orchestrator as of another revision, built from a clean export of it (not this tree),
# in a target directory of its own: cargo hashes workspace crates by their path inside the
# workspace, so the export's crates would overwrite ours in target/ (and git archive's old
# file times would make cargo take our artifacts for the export's). The directory starts as a
# copy of ours (dependencies are not rebuilt) and the export's files are made newer.
if [ -n "$baseline_rev" ]; then
    rev=$(git rev-parse --short "$baseline_rev^{commit}")
    src="target/bench/baseline-src-$rev"
    rm -rf "$src"
    mkdir -p "$src"
    git archive "$rev" | tar -x -C "$src"
    find "$src" -type f -exec touch {} +
    profile=release out_dir=release
    [ "$smoke" = 1 ] && profile=dev out_dir=debug
    tgt="target/bench/baseline-target"
    if [ ! -d "$tgt/$out_dir" ] && [ -d "target/$out_dir" ]; then
        mkdir -p "$tgt"
        cp -a "target/$out_dir" "$tgt/$out_dir"
    fi
    echo "bench.sh: building the baseline orchestrator at $rev ($profile)" >&2
    cargo build --quiet --profile "$profile" -p leotest-orchestrator \
        --manifest-path "$src/Cargo.toml" --target-dir "$tgt"
    mkdir -p "target/bench/baseline-$rev"
    cp "$tgt/$out_dir/leotest-orchestrator" "target/bench/baseline-$rev/leotest-orchestrator"
    export LEOTEST_BENCH_BASELINE_BIN="$PWD/target/bench/baseline-$rev/leotest-orchestrator"
fi
if [ "$smoke" = 1 ]; then
    cargo build --quiet "${crates[@]}"
    exec target/debug/leotest-bench "$cmd" --smoke --bin-dir target/debug "$@"
fi

cargo build --quiet --release "${crates[@]}"
# compare-original and sites start the nx-27017 server of the original by themselves.
if [ "$cmd" != compare-original ] && [ "$cmd" != sites ] && [ -z "${LEOTEST_TEST_MONGO_URI:-}" ] &&
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
