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

# Registers a user and prints the token its reply carries (the only place a token is ever
# shown: tokens are random, nothing can compute them again). Prints nothing on failure.
register_with_token() { # id name role team
    lt --json user --action=register --id="$1" --name="$2" --role="$3" --team="$4" |
        sed -n 's/.*access_token=\([0-9a-f]\{64\}\).*/\1/p'
}

register() { # id name role team
    if lt user --action=get --id="$1" >/dev/null 2>&1; then
        echo "user $1 exists"
    else
        # the reply carries the new token: keep it out of the logs
        lt user --action=register --id="$1" --name="$2" --role="$3" --team="$4" >/dev/null
        echo "registered $1 ($3)"
    fi
}

node_name="Testbed node ${NODE_ID}"
umask 077
if lt user --action=get --id="$NODE_ID" >/dev/null 2>&1 && [ -s /secrets/node-token ]; then
    echo "node $NODE_ID exists; keeping its token"
else
    # First run, or the secrets volume was lost while the orchestrator kept its data: the old
    # token cannot be recovered, so the node identity is registered afresh.
    lt user --action=delete --id="$NODE_ID" >/dev/null 2>&1 || true
    token=$(register_with_token "$NODE_ID" "$node_name" node leotest-rs)
    if [ -z "$token" ]; then
        echo "cannot register node $NODE_ID" >&2
        exit 1
    fi
    printf '%s' "$token" > /secrets/node-token.tmp && mv /secrets/node-token.tmp /secrets/node-token
    echo "registered $NODE_ID (node)"
fi

register alice "Alice (privileged)" user_priv leotest-rs
register bob "Bob" user leotest-rs
echo "testbed initialised"
