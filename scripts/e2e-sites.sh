#!/usr/bin/env bash
# End-to-end test of the multi-site testbed (issue 22): two sites behind emulated `leo` links.
# Brings it up (scripts/testbed.sh up --nodes 2 --link $LINK), checks that each site's
# experiments reach their own kernel service's port 9000 and nothing else (not the other
# site, not the cloud), grants and denials from each site, then runs leotest-sites-probe
# (bench/src/sites: steady `cca.check` decisions) in both sites' USER_PRIV containers while it
# cuts site 1's uplink for CUT_SECONDS and later revokes the user; prints one summary line:
#   decision p50/p99, share of the granted user's decisions granted (outside the cut), share
#   denied during the cut, share of the revoked user's decisions denied after the revocation
#   and the longest time after it that one still got in.
#
#   scripts/e2e-sites.sh               LINK=leo|wan|lan, LOAD_SECONDS (90), CUT_AT (20),
#                                      CUT_SECONDS (10), REVOKE_AT (75), RATE (10/s), CONCURRENT (1),
#                                      LEOTEST_STALE_GRANT_WINDOW (0s: off; on, the fail-closed
#                                      checks are skipped and the figures measure the policy)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] || { echo "usage: $0 (settings in the environment)" >&2; exit 2; }
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leotest-rs-e2e-sites}
export LEOTEST_NETWORK=${LEOTEST_NETWORK:-$COMPOSE_PROJECT_NAME-net}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
LEOTEST_HOST_PORT=${LEOTEST_HOST_PORT:-$(free_port)}
LEOTEST_ORCH_METRICS_PORT=${LEOTEST_ORCH_METRICS_PORT:-$(free_port)}
export LEOTEST_HOST_PORT LEOTEST_ORCH_METRICS_PORT
COMPOSE=${COMPOSE:-$(command -v docker-compose >/dev/null && echo docker-compose || echo "docker compose")}
export COMPOSE_FILE="docker-compose.yml:target/testbed-sites/$COMPOSE_PROJECT_NAME.yml"
TARGET=x86_64-unknown-linux-gnu
LINK=${LINK:-leo}
LOAD_SECONDS=${LOAD_SECONDS:-90}
CUT_AT=${CUT_AT:-20}
CUT_SECONDS=${CUT_SECONDS:-10}
REVOKE_AT=${REVOKE_AT:-75}
RATE=${RATE:-10}
CONCURRENT=${CONCURRENT:-1}
start=$SECONDS
pass=0 fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/leotest-e2e-sites.XXXXXX")

log() { printf '[e2e-sites] %s\n' "$*" >&2; }
check() { # name expected-substring actual
    if [[ "$3" == *"$2"* ]]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected '$2', got '$3'"; fi
}
check_empty() { # name actual
    if [ -z "$2" ]; then pass=$((pass + 1)); log "ok   $1"
    else fail=$((fail + 1)); log "FAIL $1: expected nothing, got '$2'"; fi
}
cleanup() { scripts/testbed.sh down >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
# shellcheck source=scripts/lib/segmentation.sh
. scripts/lib/segmentation.sh
in_ctr() { $COMPOSE exec -T "$1" sh -c "$2" 2>&1 || true; }
now_ms() { date +%s%3N; }
stale_grants_off() { [[ "${LEOTEST_STALE_GRANT_WINDOW:-0s}" =~ ^0+(ms|s|m|h)?$ ]]; }

log "building the probe (static, like the testbed's binaries)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" \
    -p leotest-bench --bin leotest-sites-probe
cp "${CARGO_TARGET_DIR:-target}/$TARGET/release/leotest-sites-probe" "$tmp/"
chmod 0755 "$tmp/leotest-sites-probe"

scripts/testbed.sh up --nodes 2 --link "$LINK"

for k in 1 2; do
    security_segmentation "experiment-user-$k" "$LEOTEST_NETWORK-site-$k" "kernel-service-$k"
    check "site $k: USER_PRIV granted over the $LINK link" "net.ipv4.tcp_congestion_control = " \
        "$(in_ctr "experiment-priv-$k" 'echo cca.check | nc -w 10 kernel 9000')"
    check "site $k: USER denied" "access_denied" "$(in_ctr "experiment-user-$k" 'echo cca.check | nc -w 10 kernel 9000')"
done

docker cp "$($COMPOSE ps -q orchestrator):/var/lib/leotest/certs/server.crt" "$tmp/server.crt"
lt() { target/testbed/leotest --grpc-host=127.0.0.1 --grpc-port="$LEOTEST_HOST_PORT" --ca-cert="$tmp/server.crt" \
    --userid=admin --access-token="$(cat "target/testbed-secrets/$COMPOSE_PROJECT_NAME/admin-token")" "$@"; }

for k in 1 2; do docker cp "$tmp/leotest-sites-probe" "$($COMPOSE ps -q "experiment-priv-$k"):/usr/local/bin/leotest-sites-probe"; done
log "probes for ${LOAD_SECONDS}s at ${RATE}/s x ${CONCURRENT}; site 1 cut at ${CUT_AT}s for ${CUT_SECONDS}s; alice revoked at ${REVOKE_AT}s"
t0=$(now_ms)
for k in 1 2; do
    $COMPOSE exec -T "experiment-priv-$k" leotest-sites-probe --duration="$LOAD_SECONDS" --rate="$RATE" \
        --concurrent="$CONCURRENT" >"$tmp/site-$k.out" 2>&1 &
done
sleep "$CUT_AT"
# The window counts from when the signal has landed to when the restore has landed.
scripts/testbed.sh link cut 1; cut_from=$(now_ms)
sleep "$CUT_SECONDS"
scripts/testbed.sh link restore 1; cut_to=$(now_ms)
sleep $((REVOKE_AT - CUT_AT - CUT_SECONDS))
# The revocation counts from when the orchestrator acknowledged it: a decision sent while the
# `user modify` call was still on its way may be answered "granted", and is counted as late.
revoke_out=$(lt user --action=modify --id=alice --name='Alice (privileged)' --role=user --team=leotest-rs 2>&1 >/dev/null)
revoked=$(now_ms)
check_empty "alice revoked (USER_PRIV -> USER)" "$revoke_out"
wait
# E2E_SITES_OUT=DIR keeps the probes' raw lines (one per decision) and the kernel services'
# logs for a closer look.
if [ -n "${E2E_SITES_OUT:-}" ]; then mkdir -p "$E2E_SITES_OUT" && cp "$tmp"/site-*.out "$E2E_SITES_OUT/" &&
    echo "t0=$t0 cut_from=$cut_from cut_to=$cut_to revoked=$revoked" >"$E2E_SITES_OUT/times"; fi
docker logs -t "$($COMPOSE ps -q link-1)" 2>&1 | grep -E 'handover|cut|restored' >&2 || true
if [ -n "${E2E_SITES_OUT:-}" ]; then
    for k in 1 2; do docker logs -t "$($COMPOSE ps -q "kernel-service-$k")" >"$E2E_SITES_OUT/kernel-service-$k.log" 2>&1 || true; done
fi

summary=$(python3 - "$tmp" "$t0" "$cut_from" "$cut_to" "$revoked" "$LINK" <<'EOF'
import sys
tmp, t0, cut_from, cut_to, revoked, link = sys.argv[1], *map(int, sys.argv[2:6]), sys.argv[6]
def load(k):
    out = []
    for line in open(f"{tmp}/site-{k}.out"):
        p = line.split()
        if len(p) == 4 and p[0] == "d":
            out.append((int(p[1]), float(p[2]), p[3]))
    return out
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
parts, ok = [], True
for k in (1, 2):
    d = load(k)
    before = [x for x in d if x[0] + x[1] < revoked]
    outside = [x for x in before if k == 2 or x[0] + x[1] < cut_from or x[0] > cut_to]
    during = [x for x in before if k == 1 and x[0] >= cut_from and x[0] + x[1] <= cut_to]
    # Decisions sent after the acknowledgement must all be denied; one sent before it may still
    # be answered "granted" after it: that is how long the revoked user still got in.
    after = [x for x in d if x[0] > revoked]
    lat = [x[1] for x in outside if x[2] == "granted"]
    granted = sum(x[2] == "granted" for x in outside) / max(1, len(outside))
    denied_after = sum(x[2] != "granted" for x in after) / max(1, len(after))
    late = max([0] + [x[0] + x[1] - revoked for x in d if x[2] == "granted"])
    miss = {o: sum(x[2] == o for x in outside) for o in ("denied", "error")}
    s = (f"site{k}: n={len(d)} p50={pct(lat, .5):.1f}ms p99={pct(lat, .99):.1f}ms "
         f"granted={granted * 100:.2f}% (not: {miss['denied']} denied, {miss['error']} error) "
         f"revoked_denied={denied_after * 100:.1f}% revoked_late_max={late:.0f}ms")
    if k == 1:
        s += f" cut_denied={sum(x[2] != 'granted' for x in during) / max(1, len(during)) * 100:.1f}%"
    parts.append(s)
print(f"e2e-sites {link}: " + "; ".join(parts))
EOF
)
echo "$summary"
for k in 1 2; do
    granted=$(sed -n "s/.*site$k: [^;]* granted=\([0-9.]*\)%.*/\1/p" <<<"$summary")
    # The goal is 99.9 % (issue 22); this bound catches a regression (BENCHMARKS.md has the figures).
    check "site $k: the granted user's decisions granted outside the cut (>= 95 %: $granted %)" "yes" \
        "$(python3 -c "print('yes' if float('${granted:-0}') >= 95.0 else 'no')")"
    # With stale grants on, a decision may be granted from a recent grant while the link is
    # down or slow, so "fail closed" is not asked of it (the figures are still printed).
    if stale_grants_off; then
        revoked_denied=$(sed -n "s/.*site$k: [^;]* revoked_denied=\([0-9.]*\)%.*/\1/p" <<<"$summary")
        check "site $k: every decision after the revocation denied" "100.0" "$revoked_denied"
    fi
done
if stale_grants_off; then
    check "site 1: decisions during the cut fail closed" "cut_denied=100.0%" "$summary"
else
    log "stale grants on (LEOTEST_STALE_GRANT_WINDOW=$LEOTEST_STALE_GRANT_WINDOW): fail-closed checks skipped"
fi

scripts/testbed.sh down
trap 'rm -rf "$tmp"' EXIT
left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"; \
       docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
check_empty "down -v leaves nothing behind" "$left"
log "sites end to end ($LINK): $((SECONDS - start)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
