#!/usr/bin/env bash
# The newcomer walk-through of issue 24, from a temporary directory outside the repository:
# start an orchestrator (built binary, embedded store, TLS with a generated certificate),
# `leotest login` as admin, register a user and a node, log in as the user, schedule, plan,
# list, reschedule and delete jobs, and hit every exit code on purpose (0 done, 1 not found /
# refused, 2 usage, 3 unreachable / TLS, 4 permission, 5 other), asserting output and exit
# code of each step. Prints "newcomer: N passed, M failed"; exit 1 on any failure.
# Then the operator's side: the certificate rotated with SIGHUP (the old CA is refused, the new
# one accepted, the log says so) and the metrics endpoint read by promtool (Debian's prometheus
# package; CI installs it, elsewhere that step is skipped with a note) on both daemons: the
# orchestrator and a kernel service started beside it (needs the Docker engine).
# Runs in well under a minute (after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build --quiet --locked -p leotest-orchestrator -p leotest-client -p leotest-kernel-service

work=$(mktemp -d "${TMPDIR:-/tmp}/leotest-newcomer.XXXXXX")
orch_pid=
holder_pid=
kernel_pid=
knet=
cleanup() {
    [ -n "$kernel_pid" ] && kill "$kernel_pid" 2>/dev/null && wait "$kernel_pid" 2>/dev/null
    [ -n "$knet" ] && docker network rm "$knet" >/dev/null 2>&1
    [ -n "$orch_pid" ] && kill "$orch_pid" 2>/dev/null && wait "$orch_pid" 2>/dev/null
    [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/server" "$work/home" "$work/me" "$work/other"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
mport=$(free_port)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; printf '%s\n' "$2" | sed 's/^/  | /' | tail -n 20; }
# A clean environment: only what a newcomer would have. HOME (and so ~/.config/leotest) is
# a temporary directory; nothing is read from the repository.
run_env=(env -i PATH="$target/debug:/usr/bin:/bin" HOME="$work/home")
# expect RC NAME PATTERN -- COMMAND...: runs it in $work/me, checks the exit code and that
# stdout+stderr match PATTERN (grep -E; empty: anything).
expect() {
    local rc=$1 name=$2 pattern=$3
    shift 4
    local out code=0
    out=$(cd "$work/me" && "${run_env[@]}" "$@" 2>&1 </dev/null) || code=$?
    if [ "$code" != "$rc" ]; then
        fail "$name (exit $code, expected $rc)" "$out"
    elif [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
        fail "$name (output lacks /$pattern/)" "$out"
    else
        pass "$name"
    fi
    last=$out
}

# --- the operator: a certificate, an admin token, the orchestrator ----------------------------
(cd "$work/server" && "$target/debug/leotest-orchestrator" gen-cert --san localhost --san 127.0.0.1 \
    --cert pki/server.crt --key pki/server.key >/dev/null 2>&1)
admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
jwt_secret=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
(cd "$work/server" && exec env -i PATH=/usr/bin:/bin LEOTEST_ADMIN_ACCESS_TOKEN="$admin_token" \
    LEOTEST_JWT_ALGO=HS256 LEOTEST_JWT_SECRET="$jwt_secret" \
    "$target/debug/leotest-orchestrator" --listen 127.0.0.1 --grpc-port "$port" --data-dir data \
    --tls-cert pki/server.crt --tls-key pki/server.key --metrics-listen "127.0.0.1:$mport") \
    >"$work/orchestrator.log" 2>&1 &
orch_pid=$!
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$orch_pid" 2>/dev/null || break
    sleep 0.2
done
cp "$work/server/pki/server.crt" "$work/me/orchestrator.crt"
printf '%s\n' "$admin_token" >"$work/me/admin.token"

# --- the admin logs in once; everything after works from any directory ------------------------
lt=leotest
# Job dates ahead of the clock, always (a job is stored until its end date): the first year at
# least two years ahead laid out like 2030, the rule of the Rust tests' future_year().
y=$(($(date -u +%Y) + 2))
while [ "$(date -u -d "$y-01-01" +%u)" != 2 ] || date -u -d "$y-02-29" >/dev/null 2>&1; do y=$((y + 1)); done
expect 0 "login as admin (token file)" "Logged in to 127.0.0.1:$port as admin \(ADMIN\)" -- \
    $lt login --grpc-host 127.0.0.1 --grpc-port "$port" --ca-cert orchestrator.crt --userid admin \
    --access-token-file admin.token
mode=$(stat -c %a "$work/home/.config/leotest/config.json" 2>/dev/null || echo missing)
[ "$mode" = 600 ] && pass "profile is mode 0600" || fail "profile is mode 0600" "mode $mode"
rm "$work/me/orchestrator.crt" "$work/me/admin.token"   # the profile has its own copies
expect 0 "whoami" "ADMIN" -- $lt whoami
expect 0 "register a user" "SUCCESS" -- $lt user --action=register --id=alice --name=Alice --role=user --team=lab
alice_token=$(sed -n 's/.*access_token=\([0-9a-f]*\).*/\1/p' <<<"$last")
[ -n "$alice_token" ] && pass "the reply carries alice's token" || fail "the reply carries alice's token" "$last"
expect 0 "register a node" "SUCCESS" -- $lt node --action=register --nodeid=node-1 --name=roof --location=Delhi
expect 0 "list nodes" "node-1" -- $lt node --action=get --fields=nodeid,location
expect 0 "modify changes only the fields given" "" -- $lt user --action=modify --id=alice --team=lab2
expect 0 "name kept by modify" '"name": ?"Alice"' -- $lt -o json user --action=get --id=alice
expect 1 "get of a user that does not exist: not found" 'user "nobody" not found' -- $lt user --action=get --id=nobody

# --- the experimenter ------------------------------------------------------------------------
printf '%s\n' "$alice_token" >"$work/alice.token"
expect 0 "login as alice (second context, token on stdin)" "as alice \(USER\)" -- \
    sh -c "leotest --context alice login --grpc-host 127.0.0.1 --grpc-port $port \
        --ca-cert $work/home/.config/leotest/ca-default.crt --userid alice < $work/alice.token"
expect 0 "whoami as alice" '"role": ?"USER"' -- $lt -o json whoami
expect 0 "schedule a job" "job successfully scheduled" -- $lt job --action=schedule --jobid=j1 --nodeid=node-1 \
    --type=atq --start-date=$y-01-01T10:00:00Z --end-date=$y-01-01T12:00:00Z --length=600 --exp-config=/dev/null
expect 1 "an overlapping job is refused" "FAILED" -- $lt job --action=schedule --jobid=j2 --nodeid=node-1 \
    --type=atq --start-date=$y-01-01T10:05:00Z --end-date=$y-01-01T12:00:00Z --length=600 --exp-config=/dev/null
expect 1 "plan finds the conflict and the nearest free slot" "free_slot_start +$y-01-01T10:11:00Z" -- \
    $lt job --action=plan --nodeid=node-1 --type=atq --start-date=$y-01-01T10:05:00Z \
    --end-date=$y-01-01T12:00:00Z --length=600
expect 0 "schedule at the free slot" "job successfully scheduled" -- $lt job --action=schedule --jobid=j2 \
    --nodeid=node-1 --type=atq --start-date=$y-01-01T10:11:00Z --end-date=$y-01-01T12:00:00Z \
    --length=600 --exp-config=/dev/null
expect 0 "list my jobs, times in UTC" "j1 +$y-01-01T10:00:00Z" -- $lt job --action=get --fields=id,start_date
expect 0 "reschedule" "rescheduled +true" -- $lt job --action=reschedule --jobid=j1 \
    --start-date=$y-01-02T00:00:00Z --end-date=$y-01-03T00:00:00Z
expect 0 "delete a job" "deleted job successfully" -- $lt job --action=delete --jobid=j2
expect 0 "the admin lists every job" "j1" -- $lt --context default job --action=get --all --fields=id,userid

# --- a JWT from the orchestrator's own `jwt` subcommand -------------------------------------
jwt=$(cd "$work/server" && env -i PATH=/usr/bin:/bin LEOTEST_JWT_ALGO=HS256 LEOTEST_JWT_SECRET="$jwt_secret" \
    "$target/debug/leotest-orchestrator" jwt --userid alice --ttl 1h 2>/dev/null || true)
expect 0 "a JWT from 'leotest-orchestrator jwt' is accepted" '"auth": ?"jwt"' -- $lt -o json --jwt-access-token "$jwt" whoami
expect 0 "alice's jobs through the JWT" "j1" -- $lt --jwt-access-token "$jwt" --userid alice job --action=get --fields=id
expect 4 "4: a JWT the server did not sign, and why" "Invalid token" -- $lt --jwt-access-token e30.e30.c2ln whoami

# --- every exit code on purpose ---------------------------------------------------------------
expect 1 "1: delete a job that does not exist" "does not exist" -- $lt job --action=delete --jobid=nope
expect 2 "2: end before start" "is not after" -- $lt job --action=schedule --jobid=j3 --nodeid=node-1 \
    --type=atq --start-date=$y-01-02T00:00:00Z --end-date=$y-01-01T00:00:00Z --length=60
expect 2 "2: cron without --schedule" "needs --schedule" -- $lt job --action=schedule --jobid=j3 \
    --nodeid=node-1 --start-date=$y-01-01T00:00:00Z --end-date=$y-01-02T00:00:00Z --length=60
closed=$(free_port)
expect 3 "3: unreachable, naming the address" "127.0.0.1:$closed" -- $lt --grpc-port "$closed" --retries 0 whoami
(cd "$work/other" && "$target/debug/leotest-orchestrator" gen-cert --cert other.crt --key other.key >/dev/null 2>&1)
expect 3 "3: a CA that does not match, naming --ca-cert" "\-\-ca-cert" -- $lt --ca-cert "$work/other/other.crt" --retries 0 whoami
expect 3 "3: a name the certificate lacks, naming --tls-domain" "\-\-tls-domain" -- $lt --tls-domain other.example --retries 0 whoami
python3 -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); c=s.accept(); time.sleep(30)' >"$work/silent.port" &
holder_pid=$!
for _ in $(seq 1 50); do [ -s "$work/silent.port" ] && break; sleep 0.1; done
silent=$(cat "$work/silent.port")
expect 3 "3: a server that never finishes TLS" "127.0.0.1:$silent" -- $lt --grpc-port "$silent" --timeout 1 --retries 0 whoami
expect 4 "4: a user deleting a node's jobs" "permission denied" -- $lt job --action=delete --nodeid=node-1
expect 4 "4: a user registering users" "permission denied" -- $lt user --action=register --id=eve --name=E --role=admin
expect 5 "5: an experiment config that cannot be read" "missing.yaml" -- $lt job --action=schedule --jobid=j4 \
    --nodeid=node-1 --type=atq --start-date=$y-02-01T00:00:00Z --end-date=$y-02-02T00:00:00Z --length=60 \
    --exp-config=missing.yaml
expect 0 "logout" "logged out" -- $lt logout
expect 4 "4: after logout, a hint to log in" "leotest login" -- $lt whoami

# --- the operator: a new certificate without a restart, and the metrics ----------------------
cp "$work/server/pki/server.crt" "$work/old.crt"
(cd "$work/server" && "$target/debug/leotest-orchestrator" gen-cert --force \
    --cert pki/server.crt --key pki/server.key >/dev/null 2>&1)
cp "$work/server/pki/server.crt" "$work/new.crt"
kill -HUP "$orch_pid"
for _ in $(seq 1 50); do grep -q "reloaded" "$work/orchestrator.log" && break; sleep 0.1; done
grep -q "reloaded" "$work/orchestrator.log" && pass "SIGHUP: the log says the certificate was reloaded" ||
    fail "SIGHUP: the log says the certificate was reloaded" "$(tail -n 5 "$work/orchestrator.log")"
admin_flags=(--grpc-host 127.0.0.1 --grpc-port "$port" --userid admin --access-token "$admin_token" --retries 0)
expect 0 "after SIGHUP the new certificate is served" "ADMIN" -- $lt "${admin_flags[@]}" --ca-cert "$work/new.crt" whoami
expect 3 "after SIGHUP the old CA no longer verifies" "\-\-ca-cert" -- $lt "${admin_flags[@]}" --ca-cert "$work/old.crt" whoami
# The node's kernel service (it maps callers through Docker: a network of its own for it),
# so that both metrics endpoints are read; skipped without a Docker engine outside CI.
endpoints=("orchestrator 127.0.0.1:$mport")
if docker info >/dev/null 2>&1; then
    knet=leotest-newcomer-$$
    docker network create "$knet" >/dev/null
    kmport=$(free_port)
    (cd "$work/server" && exec env -i PATH=/usr/bin:/bin LEOTEST_ACCESS_TOKEN="$admin_token" \
        "$target/debug/leotest-kernel-service" --nodeid admin --grpc-hostname localhost \
        --grpc-port "$port" --ca-cert pki/server.crt --leotest-net "$knet" \
        --listen "127.0.0.1:$(free_port)" --metrics-listen "127.0.0.1:$kmport") >"$work/kernel.log" 2>&1 &
    kernel_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$kmport/healthz" >/dev/null 2>&1 && break
        kill -0 "$kernel_pid" 2>/dev/null || break
        sleep 0.2
    done
    endpoints+=("kernel-service 127.0.0.1:$kmport")
elif [ "${CI:-}" = true ]; then
    fail "kernel service metrics" "no Docker engine"
else
    echo "SKIP kernel service metrics: no Docker engine"
fi
if command -v promtool >/dev/null; then
    for endpoint in "${endpoints[@]}"; do
        # promtool reads the text format: what a client that does not ask for OpenMetrics gets.
        for accept in "*/*" "text/plain; version=0.0.4"; do
            body=$(curl -fsS -H "Accept: $accept" "http://${endpoint#* }/metrics" || true)
            if out=$(printf '%s\n' "$body" | promtool check metrics 2>&1) && [ -n "$body" ]; then
                pass "promtool check metrics: ${endpoint% *} ($accept)"
            else
                fail "promtool check metrics: ${endpoint% *} ($accept)" "$out$(tail -n 5 "$work/kernel.log" 2>/dev/null)"
            fi
        done
    done
elif [ "${CI:-}" = true ]; then
    fail "promtool check metrics" "promtool is missing (apt-get install prometheus)"
else
    echo "SKIP promtool check metrics: promtool is not installed (apt-get install prometheus)"
fi

echo "newcomer: $passed passed, $failed failed"
if [ "$failed" != 0 ]; then
    echo "--- orchestrator log (tail)"; tail -n 30 "$work/orchestrator.log"
fi
[ "$failed" = 0 ]
