#!/usr/bin/env bash
# End-to-end check of the docker-compose testbed on the real Docker engine: bring it up,
# talk to the kernel service from inside the sample experiment containers, bring it down
# and check nothing is left behind. Runs every check, exits non-zero if any failed.
#
#   scripts/e2e-testbed.sh [--mongo]    (--mongo: the orchestrator on the `mongo` profile's server)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
    --mongo) export COMPOSE_PROFILES=mongo LEOTEST_STORE=mongo ;;
    '') ;;
    *) echo "usage: $0 [--mongo]" >&2; exit 2 ;;
esac
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leotest-rs-e2e}
LEOTEST_NETWORK=${LEOTEST_NETWORK:-leotest-net}
COMPOSE=${COMPOSE:-$(command -v docker-compose >/dev/null && echo docker-compose || echo "docker compose")}
start=$SECONDS
pass=0 fail=0

log() { printf '[e2e] %s\n' "$*" >&2; }
check() { # name expected-substring actual
    if [[ "$3" == *"$2"* ]]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected '$2', got '$3'"; fi
}
check_empty() { # name actual
    if [ -z "$2" ]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected nothing, got '$2'"; fi
}
in_ctr() { $COMPOSE exec -T "$1" sh -c "$2" 2>&1 || true; }
# `kernel`: the kernel service's alias on the experiment network (the original's name)
kernel() { in_ctr "$1" "echo '$2' | nc -w 5 kernel 9000"; }
# shellcheck source=scripts/lib/segmentation.sh
. scripts/lib/segmentation.sh
cleanup() { $COMPOSE down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

scripts/testbed.sh up
node_before=$(cat /proc/sys/net/ipv4/tcp_congestion_control)

out=$(kernel experiment-priv cca.check)
check "USER_PRIV gets the congestion control" "net.ipv4.tcp_congestion_control = " "$out"
check "USER is denied" "access_denied" "$(kernel experiment-user cca.check)"
check "the compose service name answers too" "net.ipv4.tcp_congestion_control = " \
    "$(in_ctr experiment-priv "echo cca.check | nc -w 5 kernel-service 9000")"
# Experiments reach the kernel service's port 9000 and nothing else (issue 21 item 6).
security_segmentation experiment-user "$LEOTEST_NETWORK"

before_user=$(in_ctr experiment-user 'cat /proc/sys/net/ipv4/tcp_congestion_control')
current=$(in_ctr experiment-priv 'cat /proc/sys/net/ipv4/tcp_congestion_control')
avail=$(in_ctr experiment-priv 'cat /proc/sys/net/ipv4/tcp_available_congestion_control')
target=""
for alg in $avail; do [ "$alg" != "$current" ] && { target=$alg; break; }; done
if [ -n "$target" ]; then
    check "cca.change answers like sysctl -w" "net.ipv4.tcp_congestion_control = $target" \
        "$(kernel experiment-priv "cca.change $target")"
    check "the caller's namespace changed" "$target" \
        "$(in_ctr experiment-priv 'cat /proc/sys/net/ipv4/tcp_congestion_control')"
    check "another container's namespace did not" "$before_user" \
        "$(in_ctr experiment-user 'cat /proc/sys/net/ipv4/tcp_congestion_control')"
    check "the node's own namespace did not" "$node_before" \
        "$(cat /proc/sys/net/ipv4/tcp_congestion_control)"
else
    log "only one congestion control available ($avail): cca.change not exercised"
fi
refused=$(kernel experiment-priv 'cca.change no-such-alg')
check_empty "cca.change refuses an unknown algorithm" "$(grep -F '= no-such-alg' <<<"$refused" || true)"
check "a sandbox job runs" "hello-from-sandbox" "$(kernel experiment-priv 'echo hello-from-sandbox')"
check "sandbox hostname" "sandbox" "$(kernel experiment-priv 'hostname')"
# CAP_NET_RAW is bit 13 of the bounding set: without it a container cannot forge a neighbour's IP.
for c in experiment-priv experiment-user; do
    check "$c has no CAP_NET_RAW" "net_raw=0" \
        "$(in_ctr "$c" 'b=$(grep CapBnd /proc/self/status | cut -f2); echo net_raw=$(( (0x$b >> 13) & 1 ))')"
done
# Both metrics endpoints, published on the host's loopback (README, "Metrics").
scrape() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" 2>&1 || true; }
kmetrics=$(scrape "${LEOTEST_KERNEL_METRICS_PORT:-19100}")
# Series exist from the start with 0: what counts is a value above 0.
value_of() { printf '%s\n' "$2" | awk -v s="$1" '$1 == s { print $2; exit }'; }
nonzero() { v=$(value_of "$1" "$2"); if [ -n "$v" ] && [ "$v" != 0 ]; then echo counted; else echo "value ${v:-missing}"; fi; }
check "kernel service metrics: decisions counted" counted "$(nonzero 'leotest_kernel_decisions_total{outcome="granted"}' "$kmetrics")"
check "kernel service metrics: sandbox start timed" 'leotest_kernel_sandbox_start_seconds_count' "$kmetrics"
ometrics=$(scrape "${LEOTEST_ORCH_METRICS_PORT:-9101}")
check "orchestrator metrics: kernel_access counted" counted \
    "$(nonzero 'leotest_orchestrator_rpc_requests_total{method="kernel_access",code="OK",result="ok"}' "$ometrics")"
check "orchestrator metrics: store timed" 'leotest_orchestrator_store_operation_seconds_count{op="get_user"}' "$ometrics"
check_empty "orchestrator metrics carry no user id" "$(grep -E 'alice|bob|node-1' <<<"$ometrics$kmetrics" || true)"
check "orchestrator /healthz" "ok" "$(curl -fsS --max-time 5 "http://127.0.0.1:${LEOTEST_ORCH_METRICS_PORT:-9101}/healthz" 2>&1 || true)"

if [ "${LEOTEST_STORE:-}" = mongo ]; then
    users=$(in_ctr mongo "python3 -c \"import pymongo; c = pymongo.MongoClient('mongodb://127.0.0.1:27017'); print(sorted(u['id'] for u in c.leotest.users.find() if u['id'] in ('alice', 'bob', 'node-1')))\"")
    check "the orchestrator keeps its users in MongoDB" "['alice', 'bob', 'node-1']" "$users"
fi

$COMPOSE down -v --remove-orphans
trap - EXIT
left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker network ls -q --filter "name=^${LEOTEST_NETWORK}\$")
check_empty "down -v leaves nothing behind" "$left"

log "testbed end to end (store: ${LEOTEST_STORE:-embedded}): $((SECONDS - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
