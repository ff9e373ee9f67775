#!/usr/bin/env bash
# Builds and runs the one-machine docker-compose testbed, entirely from local sources:
# static binaries -> target/testbed/ -> FROM-scratch images (no registry is needed).
#
#   scripts/testbed.sh build   build binaries and images
#   scripts/testbed.sh up      build, then start the testbed and wait until it is healthy
#   scripts/testbed.sh down    stop it and remove its containers, network and volumes
#   scripts/testbed.sh e2e     up, run the end-to-end checks, down (used by CI)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
STAGE=target/testbed
COMPOSE=${COMPOSE:-$(command -v docker-compose >/dev/null && echo docker-compose || echo "docker compose")}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leotest-rs}

log() { printf '[testbed] %s\n' "$*" >&2; }

need_busybox() {
    if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx nc; then
        log "installing busybox-static (sh and nc for the experiment image)"
        if ! dpkg -s busybox-static >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
        fi
    fi
}

build() {
    need_busybox
    log "building static binaries (release, $TARGET)"
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" \
        -p leotest-orchestrator -p leotest-kernel-service -p leotest-client
    rm -rf "$STAGE" && mkdir -p "$STAGE/empty"
    for b in leotest-orchestrator leotest-kernel-service leotest; do
        cp "target/$TARGET/release/$b" "$STAGE/"
    done
    cp /bin/busybox "$STAGE/busybox"
    log "building images"
    $COMPOSE build
}

wait_healthy() {
    local deadline=$((SECONDS + ${1:-180})) svc id state
    for svc in orchestrator kernel-service; do
        while :; do
            id=$($COMPOSE ps -q "$svc" || true)
            state=$([ -n "$id" ] && docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo starting)
            [ "$state" = healthy ] && break
            if [ $SECONDS -ge $deadline ]; then
                log "$svc is not healthy ($state)"; $COMPOSE logs --tail=50; return 1
            fi
            sleep 1
        done
        log "$svc healthy"
    done
}

up() { build; $COMPOSE up -d; wait_healthy 180; log "testbed is up: see README for what to try"; }
down() { $COMPOSE down -v --remove-orphans; }

case "${1:-up}" in
    build) build ;;
    up) up ;;
    down) down ;;
    e2e) exec "$(dirname "$0")/e2e-testbed.sh" ;;
    *) echo "usage: $0 build|up|down|e2e" >&2; exit 2 ;;
esac
