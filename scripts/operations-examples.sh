#!/usr/bin/env bash
# Runs the blocks of docs/operations.md marked `<!-- check: NAME -->` as written, on this
# machine, in order, in one bash session: certificate, admin token, the orchestrator (in the
# background), node registration, an online backup while it serves, a restore, certificate
# rotation by SIGHUP, and the metrics through promtool. Then checks what each should have done.
# Substitutions only: /etc/leotest, /var/lib/leotest, /var/backups/leotest become directories
# of a temporary tree; ports 50051 and 9101 free ports; `systemctl start|stop|reload
# leotest-orchestrator` a shell function on the background process; the binaries are the
# workspace's debug builds. Prints "operations-examples: N passed, M failed"; exit 1 on failure.
# Needs: cargo, python3, openssl, sqlite3, curl, promtool (Debian: prometheus).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}

for tool in openssl sqlite3 curl promtool; do
    if ! command -v "$tool" >/dev/null; then
        if [ "${CI:-}" = true ]; then
            echo "operations-examples: $tool is missing (CI=true)" >&2
            exit 1
        fi
        echo "operations-examples: SKIPPED, $tool not installed"
        exit 0
    fi
done

cargo build --quiet --locked -p leotest-orchestrator -p leotest-client

work=$(mktemp -d "${TMPDIR:-/tmp}/leotest-operations.XXXXXX")
cleanup() {
    if [ -s "$work/orch.pid" ]; then
        kill "$(cat "$work/orch.pid")" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)

# The marked blocks, substituted, as one JSON object name -> text.
python3 - "$repo/docs/operations.md" "$work" "$port" "$mport" >"$work/blocks.json" <<'PY'
import json, re, sys
doc, work, port, mport = sys.argv[1:]
text = open(doc).read()
blocks = dict(re.findall(r"<!-- check: ([a-z-]+) -->\n```sh\n(.*?)```", text, re.S))
subs = [("/etc/leotest", f"{work}/etc/leotest"), ("/var/lib/leotest", f"{work}/var/lib/leotest"),
        ("/var/backups/leotest", f"{work}/backups"), ("0.0.0.0:50051", f"127.0.0.1:{port}"),
        ("127.0.0.1:9101", f"127.0.0.1:{mport}")]
for name in blocks:
    for a, b in subs:
        blocks[name] = blocks[name].replace(a, b)
print(json.dumps(blocks))
PY
block() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/blocks.json" "$1"; }
expected="certificate admin-token serve register-node backup restore rotate-certificate metrics"
for name in $expected; do
    block "$name" >/dev/null || { echo "FAIL docs/operations.md has no '<!-- check: $name -->' block"; exit 1; }
done

# The session: the blocks in order, with systemctl standing for the background orchestrator.
cat >"$work/session.sh" <<EOF
set -euo pipefail
export PATH="$target/debug:\$PATH" LEOTEST_GRPC_PORT=$port RUST_LOG=info
orch_log="$work/orchestrator.log"
serve() {
    ( $(block serve) ) >>"\$orch_log" 2>&1 &
    echo \$! >"$work/orch.pid"
    for _ in \$(seq 1 120); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        kill -0 "\$(cat "$work/orch.pid")" 2>/dev/null || break
        sleep 0.25
    done
    echo "the orchestrator did not start:"; tail -n 20 "\$orch_log"; return 1
}
systemctl() { # ACTION leotest-orchestrator
    local pid; pid=\$(cat "$work/orch.pid")
    case "\$1" in
        stop) kill "\$pid"; while kill -0 "\$pid" 2>/dev/null; do sleep 0.1; done ;;
        start) serve ;;
        reload) kill -HUP "\$pid" ;;
    esac
}
echo "--- certificate"
$(block certificate)
echo "--- admin-token"
$(block admin-token)
echo "--- serve"
serve
echo "--- register-node"
$(block register-node)
echo "--- backup (while serving)"
$(block backup)
# Written after the backup: the restore must bring the store back to before it.
lt user --action=register --id=after-backup --name=X --role=user --team=t >/dev/null
echo "--- restore"
$(block restore)
echo "--- rotate-certificate"
$(block rotate-certificate)
for _ in \$(seq 1 100); do grep -q 'TLS certificate reloaded' "\$orch_log" && break; sleep 0.1; done
echo "--- metrics"
$(block metrics)
echo "--- checks"
EOF

passed=0
failed=0
check() { # name ok detail
    if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "PASS $1"; else failed=$((failed + 1)); echo "FAIL $1: $3"; fi
}
set +e
out=$(env -i HOME="$work" PATH=/usr/local/bin:/usr/bin:/bin bash "$work/session.sh" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/  | /'
check "docs/operations.md's checked blocks run as written" "$rc" "exit $rc"

openssl x509 -in "$work/etc/leotest/certs/server.crt" -noout -ext subjectAltName 2>/dev/null |
    grep -q 'DNS:orchestrator.example.org'
check "the certificate carries the public name" "$?" "no SAN orchestrator.example.org"
grep -Eq '^[0-9a-f]{64}$' "$work/etc/leotest/node-1.token" 2>/dev/null
check "node registration leaves the node's token in its file" "$?" "no token in node-1.token"
[ "$(stat -c %a "$work/etc/leotest/node-1.token" 2>/dev/null)" = 600 ]
check "the token file is private (0600)" "$?" "mode $(stat -c %a "$work/etc/leotest/node-1.token" 2>/dev/null)"
grep -q '^ok$' <<<"$out"
check "the online backup passes integrity_check" "$?" "no 'ok' from PRAGMA integrity_check"
lt() { env -i PATH=/usr/bin:/bin LEOTEST_ACCESS_TOKEN="$(cat "$work/etc/leotest/admin-token")" \
    "$target/debug/leotest" --grpc-host 127.0.0.1 --grpc-port "$port" --tls-domain orchestrator.example.org \
    --ca-cert "$work/etc/leotest/certs/server.crt" --userid admin "$@"; }
lt user --action=get --id=alice >/dev/null 2>&1
check "after the restore, users from before the backup are there (over the rotated certificate)" "$?" "alice missing"
lt --json user --action=get --id=after-backup 2>/dev/null | grep -q '"exists": *true'
[ "$?" != 0 ]
check "after the restore, a user written after the backup is gone" "$?" "after-backup still exists"
grep -q 'TLS certificate reloaded' "$work/orchestrator.log"
check "SIGHUP reloads the certificate and says so" "$?" "$(grep -i 'tls' "$work/orchestrator.log" | tail -n 3)"
grep -q 'state-changing rpc' "$work/orchestrator.log"
check "state-changing RPCs have audit lines" "$?" "no audit line"
if grep -q "$(cat "$work/etc/leotest/admin-token")" "$work/orchestrator.log"; then tok=1; else tok=0; fi
check "no token in the log" "$tok" "the admin token is in the log"
set -e
echo "operations-examples: $passed passed, $failed failed"
[ "$failed" = 0 ]
