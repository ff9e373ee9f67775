#!/bin/sh
# One-shot testbed initialisation (run by the `init` compose service): registers the node
# and the two sample users, idempotently, and hands the node's token to the kernel service.
set -eu
# ORCHESTRATOR_HOST: the orchestrator, or in the `ha` profile its load balancer.
lt() { leotest --grpc-host="${ORCHESTRATOR_HOST:-orchestrator}" --grpc-port=50051 --ca-cert=/certs/server.crt \
    --userid=admin --access-token="$LEOTEST_ADMIN_TOKEN" "$@"; }

# A load balancer may start, or see its first replica up, a moment after the replica's own
# health check passes: wait for the admin to answer (60 s) before deciding anything.
tries=0
until lt user --action=get --id=admin >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "orchestrator ${ORCHESTRATOR_HOST:-orchestrator} does not answer" >&2; exit 1; }
    sleep 1
done

register() { # id name role team
    if lt user --action=get --id="$1" >/dev/null 2>&1; then
        echo "user $1 exists"
    else
        # the reply carries the new token: keep it out of the logs
        lt user --action=register --id="$1" --name="$2" --role="$3" --team="$4" >/dev/null
        echo "registered $1 ($3)"
    fi
}

register "$NODE_ID" "Testbed node $NODE_ID" node leotest-rs
register alice "Alice (privileged)" user_priv leotest-rs
register bob "Bob" user leotest-rs

# The orchestrator derives a user's static token as hex sha256(id + name + team), as the
# original does, so a re-run (user already registered) can derive it again.
token=$(printf '%s' "${NODE_ID}Testbed node ${NODE_ID}leotest-rs" | sha256sum | cut -d' ' -f1)
umask 077
printf '%s' "$token" > /secrets/node-token.tmp && mv /secrets/node-token.tmp /secrets/node-token
echo "testbed initialised"
