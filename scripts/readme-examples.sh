#!/usr/bin/env bash
# Runs the README's command blocks as written (issue 18 item 6): the orchestrator command of
# "## Orchestrator" and the CLI session of "## Client and CLI", in a fresh directory (with the
# repository's examples/) against a fresh orchestrator. Two substitutions only: the built binary
# for `cargo run --release -p leotest-orchestrator --` (no second, release build), and a free port
# through LEOTEST_GRPC_PORT (which both the orchestrator and `leotest` read) instead of 50051.
# HOME is a temporary directory. Prints "readme-examples: N passed, M failed"; exit 1 on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}

log() { echo "readme-examples: $*" >&2; }

cargo build --quiet --locked -p leotest-orchestrator -p leotest-client

# The blocks, from README.md itself.
blocks=$(python3 - "$repo/README.md" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
def section(title):
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else ""
def sh_blocks(s):
    return re.findall(r"```sh\n(.*?)```", s, re.S)
orch = sh_blocks(section("Orchestrator"))
session_part = section("Client and CLI").split("A session against the orchestrator started above:", 1)
print(json.dumps({"orchestrator": orch[0] if orch else "",
                  "session": sh_blocks(session_part[1])[0] if len(session_part) > 1 else ""}))
PY
)
orchestrator_cmd=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["orchestrator"].strip())' "$blocks")
session=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["session"])' "$blocks")
passed=0
failed=0
check() { # name ok detail
    if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "PASS $1"; else failed=$((failed + 1)); echo "FAIL $1: $3"; fi
}
if [ -z "$orchestrator_cmd" ] || [ -z "$session" ]; then
    check "README blocks found" 1 "no orchestrator command or CLI session block in README.md"
    echo "readme-examples: $passed passed, $failed failed"
    exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/leotest-readme-examples.XXXXXX")
orch_pid=
cleanup() {
    [ -n "$orch_pid" ] && kill "$orch_pid" 2>/dev/null && wait "$orch_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
ln -s "$repo/examples" "$work/examples"
mkdir -p "$work/home"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# A clean environment: no LEOTEST_* from the caller, the README's own values only.
run_env=(env -i PATH="$target/debug:/usr/local/bin:/usr/bin:/bin" HOME="$work/home"
    LEOTEST_GRPC_PORT="$port" RUST_LOG=info)
cmd=${orchestrator_cmd/cargo run --release -p leotest-orchestrator --/$target/debug/leotest-orchestrator}
log "orchestrator: $cmd (port $port)"
(cd "$work" && exec "${run_env[@]}" bash -c "exec $cmd") >"$work/orchestrator.log" 2>&1 &
orch_pid=$!
ready=1
for _ in $(seq 1 120); do
    if [ -f "$work/certs/server.crt" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        ready=0; break
    fi
    kill -0 "$orch_pid" 2>/dev/null || break
    sleep 0.5
done
check "the README's orchestrator command starts an orchestrator" "$ready" "$(tail -n 20 "$work/orchestrator.log")"

if [ "$ready" = 0 ]; then
    set +e
    out=$(cd "$work" && "${run_env[@]}" bash -euo pipefail -c "$session" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/  | /'
    check "the README's CLI session runs as written" "$rc" "exit $rc"
    grep -q '"ping-1"' <<<"$out"
    check "the scheduled job is listed by 'job --action=get'" "$?" "no ping-1 in the output"
    [ -s "$work/home/.local/share/bash-completion/completions/leotest" ]
    check "the completion script is written" "$?" "empty or missing"
    set -e
fi
echo "readme-examples: $passed passed, $failed failed"
[ "$failed" = 0 ]
