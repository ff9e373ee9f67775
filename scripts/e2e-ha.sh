#!/usr/bin/env bash
# End-to-end failover test of the `ha` compose testbed (two orchestrator replicas on the
# MongoDB-wire database behind HAProxy): bring it up with the README's command, run a steady
# load of kernel decisions (from the labeled experiment container) and update_run/get_runs
# (through the balancer), `docker kill` the replica that serves the kernel service in the
# middle, then check that every acknowledged write is readable, that nothing failed beyond
# the requests in flight at the kill, that every stream kept answering within the deadline,
# that the replica rejoins when it is back, and that `down -v` leaves nothing behind.
#
#   scripts/e2e-ha.sh                (= scripts/testbed.sh e2e --ha)
#
# LOAD_SECONDS (30) and KILL_AFTER (10) shape the run; the host ports and the network name
# are picked so that it can run next to another testbed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leotest-rs-e2e-ha}
export LEOTEST_NETWORK=${LEOTEST_NETWORK:-$COMPOSE_PROJECT_NAME-net}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
LEOTEST_HOST_PORT=${LEOTEST_HOST_PORT:-$(free_port)}
LEOTEST_LB_PORT=${LEOTEST_LB_PORT:-$(free_port)}
LEOTEST_ORCH_METRICS_PORT=${LEOTEST_ORCH_METRICS_PORT:-$(free_port)}
LEOTEST_KERNEL_METRICS_PORT=${LEOTEST_KERNEL_METRICS_PORT:-$(free_port)}
export LEOTEST_HOST_PORT LEOTEST_LB_PORT LEOTEST_ORCH_METRICS_PORT LEOTEST_KERNEL_METRICS_PORT
# The control network (orchestrators, balancer, database), which experiments cannot reach.
CONTROL_NET=${COMPOSE_PROJECT_NAME}_control
# What `testbed.sh --ha` sets, for the compose commands of this script.
export COMPOSE_PROFILES=mongo,ha LEOTEST_STORE=mongo LEOTEST_ORCHESTRATOR_HOST=orchestrator-lb
export LEOTEST_TRUSTED_PROXIES=${LEOTEST_TRUSTED_PROXIES:-172.16.0.0/12,192.168.0.0/16,10.0.0.0/8}
COMPOSE=${COMPOSE:-$(command -v docker-compose >/dev/null && echo docker-compose || echo "docker compose")}
TARGET=x86_64-unknown-linux-gnu
LOAD_SECONDS=${LOAD_SECONDS:-30}
KILL_AFTER=${KILL_AFTER:-10}
DEADLINE_MS=3000
start=$SECONDS
pass=0 fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/leotest-e2e-ha.XXXXXX")

log() { printf '[e2e-ha] %s\n' "$*" >&2; }
check() { # name expected-substring actual
    if [[ "$3" == *"$2"* ]]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected '$2', got '$3'"; fi
}
check_empty() { # name actual
    if [ -z "$2" ]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected nothing, got '$2'"; fi
}
check_ms() { # name actual: "<n> ms" when the wait succeeded
    if [[ "$2" =~ ^[0-9]+\ ms$ ]]; then pass=$((pass + 1)); log "ok   $1 ($2)"
    else fail=$((fail + 1)); log "FAIL $1: $2"; fi
}
check_le() { # name value limit
    if [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -le "$3" ]; then pass=$((pass + 1)); log "ok   $1 ($2 <= $3)"
    else fail=$((fail + 1)); log "FAIL $1: $2 > $3"; fi
}
cleanup() { $COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true; rm -rf "$tmp"; }
# shellcheck source=scripts/lib/segmentation.sh
. scripts/lib/segmentation.sh
trap cleanup EXIT
now_ms() { date +%s%3N; }
ctr() { $COMPOSE ps -q "$1"; }
# The balancer's view of a replica: UP, DOWN, MAINT (no address) ... from its status page.
lb_stat() { # server field (18: status, 5: current sessions)
    docker exec "$lb" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8404 && printf "GET /stats;csv HTTP/1.0\r\n\r\n" >&3 && cat <&3' 2>/dev/null |
        awk -F, -v s="$1" -v f="$2" '$1 == "orchestrators" && $2 == s { print $f }'
}
lb_state() { lb_stat "$1" 18; }
# When the balancer's log (ISO timestamps) first says SERVER went down or into maintenance.
lb_down_at_ms() { # server
    local line
    line=$(docker logs "$lb" 2>&1 | grep -E "^20.* Server orchestrators/$1 (is DOWN|was DOWN and now enters maintenance|is going DOWN)" | tail -n 1)
    [ -n "$line" ] && date -d "${line%% *}" +%s%3N
}
wait_lb_state() { # server state-regex seconds -> prints the ms it took
    local t0 deadline state
    t0=$(now_ms); deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        state=$(lb_state "$1")
        if [[ "$state" =~ ^($2) ]]; then echo "$(( $(now_ms) - t0 )) ms"; return 0; fi
        sleep 0.1
    done
    echo "timeout (last state: ${state:-none})"
}
result() { # stream-or-writes key
    awk -v w="$1" -v k="$2" '$1 == "result" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == "stream" || kv[1] == "writes") id = (kv[1] == "writes") ? "writes" : kv[2];
        if (id == w && kv[1] == k) print kv[2] } }' "$tmp/load.out"
}

log "building the load generator (static, like the testbed's binaries)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" \
    -p leotest-bench --bin leotest-ha-load
cp "${CARGO_TARGET_DIR:-target}/$TARGET/release/leotest-ha-load" "$tmp/"

# The README's command.
scripts/testbed.sh up --ha
lb=$(ctr orchestrator-lb)
# Experiments reach the kernel service's port 9000 and nothing else: not the balancer, its
# status page, either replica or the database (issue 21 item 6).
security_segmentation experiment-user "$LEOTEST_NETWORK"

for s in orchestrator-1 orchestrator-2; do
    check_ms "the balancer has $s up" "$(wait_lb_state "$s" UP 30)"
done
admins=$($COMPOSE exec -T mongo python3 -c "import pymongo; print(pymongo.MongoClient('mongodb://127.0.0.1:27017').leotest.users.count_documents({'id': 'admin'}))" 2>&1)
check "two replicas starting at once leave one admin user" "1" "$admins"

# Credentials for the load and the CLI: the node's own token and the orchestrator's CA.
docker cp "$(ctr orchestrator):/var/lib/leotest/certs/server.crt" "$tmp/server.crt"
$COMPOSE exec -T kernel-service cat /secrets/node-token >"$tmp/node-token"
chmod 0755 "$tmp/leotest-ha-load"; chmod 0644 "$tmp/server.crt" "$tmp/node-token"
lt() { target/testbed/leotest --grpc-host=127.0.0.1 --grpc-port="$LEOTEST_LB_PORT" \
    --ca-cert="$tmp/server.crt" --userid=node-1 --access-token="$(cat "$tmp/node-token")" "$@"; }
check "the CLI reaches the orchestrator through the balancer" "node-1" "$(lt user --action=get --id=node-1 2>&1)"

# A first decision opens the kernel service's channel; the balancer's log says which
# replica it landed on, and that replica is the one killed below.
check "USER_PRIV gets the congestion control through the balancer" "net.ipv4.tcp_congestion_control = " \
    "$($COMPOSE exec -T experiment-priv sh -c 'echo cca.check | nc -w 5 kernel-service 9000' 2>&1)"
ks_ip=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$CONTROL_NET\"}}{{.IPAddress}}{{end}}" "$(ctr kernel-service)")
victim_server=$(docker logs "$(ctr orchestrator-lb)" 2>&1 | grep -F "$ks_ip:" | grep -o 'orchestrators/orchestrator-[12]' | tail -n 1 | cut -d/ -f2)
check "the kernel service's channel goes through the balancer" "orchestrator-" "$victim_server"
case "$victim_server" in orchestrator-2) victim=orchestrator-2 ;; *) victim_server=orchestrator-1 victim=orchestrator ;; esac

load_ctr=$(ctr experiment-priv)
# The load also calls the balancer, which experiments cannot reach: for this test only, the
# load's container joins the control network too; its kernel decisions still come from its
# experiment-network address (`kernel` is an alias on that network only).
docker network connect "$CONTROL_NET" "$load_ctr"
docker cp "$tmp/leotest-ha-load" "$load_ctr:/usr/local/bin/leotest-ha-load"
docker cp "$tmp/server.crt" "$load_ctr:/server.crt"
docker cp "$tmp/node-token" "$load_ctr:/node-token"
log "load for ${LOAD_SECONDS}s; killing $victim ($victim_server) after ${KILL_AFTER}s"
$COMPOSE exec -T experiment-priv leotest-ha-load --ca-cert=/server.crt --access-token-file=/node-token \
    --kernel=kernel:9000 --duration="$LOAD_SECONDS" --deadline="$((DEADLINE_MS / 1000))" --event-file=/kill-at \
    --job="e2e-ha-$(now_ms)" >"$tmp/load.out" 2>&1 &
load_pid=$!
sleep "$KILL_AFTER"
victim_id=$(ctr "$victim")
sessions=$(lb_stat "$victim_server" 5)
check_le "the replica to kill carries 2 connections or more (the kernel service's, the load's)" 2 "${sessions:-0}"
kill_sent=$(now_ms)
docker kill "$victim_id" >/dev/null
# Requests under way at any moment between calling `docker kill` and its return count as in
# flight: the replica dies somewhere in between, and a request it had stored may fail before
# the call returns.
killed_at=$(now_ms)
echo "$kill_sent $killed_at" >"$tmp/kill-at"
docker cp "$tmp/kill-at" "$load_ctr:/kill-at"
took=$(wait_lb_state "$victim_server" 'DOWN|MAINT' 10)
check_ms "the balancer takes the killed replica out" "$took"
down_at=$(lb_down_at_ms "$victim_server" || true)
log "killed $victim at $kill_sent; the balancer marked it down $(( ${down_at:-$kill_sent} - kill_sent )) ms later (its log)"
load_rc=0; wait "$load_pid" || load_rc=$?
cat "$tmp/load.out" >&2
check "the load ran to the end" "0" "$load_rc"
docker network disconnect "$CONTROL_NET" "$load_ctr" || true

for s in kernel update_run get_runs; do
    check_le "$s: no failure beyond the requests in flight at the kill" "$(result "$s" failed_other)" 0
    check_le "$s: answers kept coming within the deadline (longest gap, ms)" "$(result "$s" max_gap_ms)" "$DEADLINE_MS"
    check_le "$s: every answer within the deadline (max latency, ms)" "$(result "$s" max_latency_ms)" "$DEADLINE_MS"
done
check_le "update_run: no acknowledged write lost" "$(result writes lost)" 0
for s in kernel update_run get_runs; do
    log "$s in the 5 s after the kill: max latency $(result "$s" kill_max_latency_ms) ms, longest gap $(result "$s" kill_max_gap_ms) ms"
done
acked=$(result writes acked)
check_le "update_run: a steady load was acknowledged (acked >= 10 per second of load)" \
    "$((LOAD_SECONDS * 10))" "${acked:-0}"
job=$(awk '/^# leotest-ha-load: job/ { sub(",", "", $4); print $4 }' "$tmp/load.out")
stored=$(lt --json run --action=get --jobid="$job" --limit=0 2>/dev/null |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin).get("runs", [])))' 2>&1 || true)
check "the CLI reads every acknowledged run through the balancer" "$(( acked + $(result writes unacked_stored) ))" "$stored"

restarts=$(docker inspect -f '{{.State.Status}} (restarts: {{.RestartCount}})' "$victim_id")
log "killed replica after the load: $restarts"
[[ "$restarts" == running* ]] || docker start "$victim_id" >/dev/null
check_ms "the replica rejoins the balancer when it is back" "$(wait_lb_state "$victim_server" UP 60)"

$COMPOSE down -v --remove-orphans
trap 'rm -rf "$tmp"' EXIT
left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker network ls -q --filter "name=^${LEOTEST_NETWORK}\$"; docker network ls -q --filter "name=^${CONTROL_NET}\$")
check_empty "down -v leaves nothing behind" "$left"

log "ha testbed end to end: $((SECONDS - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
