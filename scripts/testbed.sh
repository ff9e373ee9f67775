#!/usr/bin/env bash
# Builds and runs the one-machine docker-compose testbed, entirely from local sources:
# static binaries -> target/testbed/ -> FROM-scratch images (no registry is needed).
#
#   scripts/testbed.sh build [--mongo|--ha]   build binaries and images
#   scripts/testbed.sh up [--mongo|--ha]      build, then start the testbed and wait until it is healthy
#   scripts/testbed.sh down                   stop it and remove its containers, network and volumes
#   scripts/testbed.sh e2e [--mongo|--ha]     up, run the end-to-end checks, down (used by CI)
#   scripts/testbed.sh up --nodes N [--link lan|wan|leo]   a cloud and N sites (README, "Sites and links")
#   scripts/testbed.sh link cut|restore SITE  cut or restore site SITE's uplink (multi-site testbed)
#
# --mongo adds the `mongo` profile (a MongoDB-wire server, nx-27017) and runs the orchestrator
# on it (LEOTEST_STORE=mongo). Its image needs a Python base, made once with debootstrap from
# the Debian mirror apt uses here (or DEBIAN_MIRROR) and `docker import` (leotest-rs/python-base:bookworm; kept between runs).
# --ha is --mongo plus the `ha` profile: a second orchestrator replica and HAProxy in front of
# both (127.0.0.1:$LEOTEST_LB_PORT, default 50052), which the kernel service and init use; its
# image is made the same way (leotest-rs/haproxy-base:bookworm).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
STAGE=target/testbed
COMPOSE=${COMPOSE:-$(command -v docker-compose >/dev/null && echo docker-compose || echo "docker compose")}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-leotest-rs}
PYTHON_BASE=leotest-rs/python-base:bookworm
HAPROXY_BASE=leotest-rs/haproxy-base:bookworm
NX_27017_VERSION=${NX_27017_VERSION:-0.8.1}

log() { printf '[testbed] %s\n' "$*" >&2; }
# shellcheck source=scripts/lib/sites-compose.sh
. scripts/lib/sites-compose.sh

# A multi-site testbed is docker-compose.yml plus a generated override, kept until `down`;
# every compose command of this script (and of the e2e scripts) then reads both.
SITES_FILE=target/testbed-sites/$COMPOSE_PROJECT_NAME.yml
NODES=${LEOTEST_NODES:-}
LINK_PROFILE=${LEOTEST_LINK:-leo}
use_sites_file() { [ -f "$SITES_FILE" ] && export COMPOSE_FILE="docker-compose.yml:$SITES_FILE"; return 0; }

# The orchestrator refuses the original's public default admin token on a listener other
# containers can reach, so each testbed gets a random one, kept (mode 0600) until `down`.
# LEOTEST_ADMIN_TOKEN set by the caller wins and is not written anywhere.
SECRETS=target/testbed-secrets/$COMPOSE_PROJECT_NAME
admin_token() {
    if [ -z "${LEOTEST_ADMIN_TOKEN:-}" ]; then
        if [ ! -s "$SECRETS/admin-token" ]; then
            (umask 077 && mkdir -p "$SECRETS" &&
                head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$SECRETS/admin-token.tmp" &&
                mv "$SECRETS/admin-token.tmp" "$SECRETS/admin-token")
        fi
        LEOTEST_ADMIN_TOKEN=$(cat "$SECRETS/admin-token")
        log "admin token in $SECRETS/admin-token"
    fi
    export LEOTEST_ADMIN_TOKEN
}

apt_install() { # package...
    local missing=() p
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_busybox() {
    if [ ! -x /bin/busybox ] || ! /bin/busybox --list | grep -qx nc; then
        apt_install busybox-static
    fi
}

# The Debian mirror that serves SUITE to this machine's apt, read from its sources (one-line
# `deb URI SUITE ...` and deb822 `URIs:`/`Suites:` stanzas); DEBIAN_MIRROR overrides it.
debian_mirror() { # suite
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return 0; fi
    local suite=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*#/ { next }
            $1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                          if ($(i + 1) == suite) { print $i; exit } next }
            /^[[:space:]]*$/ { if (uris != "" && suites ~ ("(^| )" suite "( |$)")) { split(uris, u, " "); print u[1]; exit }
                              uris = ""; suites = ""; next }
            tolower($1) == "uris:" { $1 = ""; uris = substr($0, 2) }
            tolower($1) == "suites:" { $1 = ""; suites = substr($0, 2) }
            END { if (uris != "" && suites ~ ("(^| )" suite "( |$)")) { split(uris, u, " "); print u[1] } }
        ' "$f" | head -n 1 | grep . && return 0
    done
    log "no apt source for Debian $suite found in /etc/apt: set DEBIAN_MIRROR=http://your.mirror/debian"
    return 1
}

# A minimal Debian (bookworm) with PACKAGES made here (no image can be pulled), imported once.
debootstrap_image() { # image packages cmd-json
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    apt_install debootstrap
    local root mirror security
    mirror=$(debian_mirror bookworm) || return 1
    root=$(mktemp -d "${TMPDIR:-/tmp}/leotest-base.XXXXXX")
    log "making $1 with debootstrap (about a minute)"
    debootstrap --variant=minbase --include="$2" bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2; rm -rf "$root" "$root.log"; return 1; }
    # Security updates as well, when this machine's apt knows where they come from.
    if security=$(debian_mirror bookworm-security 2>/dev/null); then
        echo "deb $security bookworm-security main" >"$root/etc/apt/sources.list.d/security.list"
        { chroot "$root" apt-get update -qq && DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get upgrade -y -qq; } \
            >>"$root.log" 2>&1 || log "security updates for $1 failed (see $root.log): continuing without"
    fi
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/{doc,man,locale}
    tar -C "$root" -c . | docker import -c "CMD $3" - "$1" >/dev/null
    rm -rf "$root" "$root.log"
}

# Python 3.11 for the `mongo` profile's server.
python_base() { debootstrap_image "$PYTHON_BASE" python3-minimal,libpython3.11-stdlib '["python3"]'; }

# HAProxy for the `ha` profile's load balancer.
haproxy_base() { debootstrap_image "$HAPROXY_BASE" haproxy '["haproxy", "-v"]'; }

# nx-27017 and its pure-Python/manylinux dependencies, for the base's CPython 3.11.
stage_mongo() {
    python_base
    log "staging nx-27017==$NX_27017_VERSION"
    rm -rf "$STAGE/nx-27017"
    python3 -m pip install --quiet --disable-pip-version-check --target "$STAGE/nx-27017" \
        --only-binary=:all: --implementation cp --python-version 3.11 \
        --platform manylinux2014_x86_64 "nx-27017==$NX_27017_VERSION"
}

build() {
    need_busybox
    log "building static binaries (release, $TARGET)"
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" \
        -p leotest-orchestrator -p leotest-kernel-service -p leotest-client
    rm -rf "$STAGE" && mkdir -p "$STAGE/empty"
    for b in leotest-orchestrator leotest-kernel-service leotest; do
        cp "${CARGO_TARGET_DIR:-target}/$TARGET/release/$b" "$STAGE/"
    done
    if [ -n "$NODES" ]; then
        RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --target "$TARGET" \
            -p leotest-bench --bin leotest-link
        cp "${CARGO_TARGET_DIR:-target}/$TARGET/release/leotest-link" "$STAGE/"
        docker build -q -f docker/link.Dockerfile -t "leotest-rs/link:${LEOTEST_IMAGE_TAG:-dev}" "$STAGE" >/dev/null
    fi
    cp /bin/busybox "$STAGE/busybox"
    [ -n "${COMPOSE_PROFILES:-}" ] && stage_mongo
    if ha; then haproxy_base; fi
    log "building images"
    # single-node: a multi-site testbed parks the single-node services there; their images are its images
    COMPOSE_PROFILES=${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}single-node $COMPOSE build
}

wait_healthy() {
    local deadline=$((SECONDS + ${1:-180})) svc id state services=(orchestrator kernel-service)
    [ -n "${COMPOSE_PROFILES:-}" ] && services=(mongo "${services[@]}")
    if ha; then services=(mongo orchestrator orchestrator-2 orchestrator-lb kernel-service); fi
    if [ -n "$NODES" ]; then
        services=("${services[@]/kernel-service/}")
        for k in $(seq 1 "$NODES"); do services+=("kernel-service-$k"); done
    fi
    for svc in "${services[@]}"; do
        [ -n "$svc" ] || continue
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

up() {
    if [ -n "$NODES" ]; then
        sites_compose "$NODES" "$LINK_PROFILE" "$SITES_FILE"; use_sites_file
        log "$NODES sites, each behind a '$LINK_PROFILE' link ($SITES_FILE)"
    fi
    build; admin_token; $COMPOSE up -d; wait_healthy 180
    if ha; then log "load balancer on 127.0.0.1:${LEOTEST_LB_PORT:-50052}"; fi
    log "testbed is up (store: ${LEOTEST_STORE:-embedded}): see README for what to try"
    print_login
}

# A ready `leotest login` for the admin: the testbed's CA copied out of the orchestrator (it
# made it on first start) next to the admin token. Informational: `up` succeeds without it.
print_login() {
    local port=${LEOTEST_HOST_PORT:-50051} token_opt
    if ha; then port=${LEOTEST_LB_PORT:-50052}; fi
    mkdir -p "$SECRETS" && chmod 0700 "$SECRETS"
    docker cp "$($COMPOSE ps -q orchestrator):/var/lib/leotest/certs/server.crt" "$SECRETS/ca.crt" \
        >/dev/null 2>&1 || { log "could not copy the testbed's CA out of the orchestrator"; return 0; }
    if [ -s "$SECRETS/admin-token" ]; then
        token_opt="--access-token-file $PWD/$SECRETS/admin-token"
    else
        token_opt="(token on stdin: echo \"\$LEOTEST_ADMIN_TOKEN\" | ...)"
    fi
    log "log in as admin: leotest login --grpc-host 127.0.0.1 --grpc-port $port --ca-cert $PWD/$SECRETS/ca.crt --userid admin $token_opt"
}
# Every profile, so that a mongo or ha testbed is removed too.
down() {
    use_sites_file
    COMPOSE_PROFILES=mongo,ha,single-node $COMPOSE down -v --remove-orphans && rm -rf "$SECRETS" "$SITES_FILE"
}
# Cuts (SIGUSR1) or restores (SIGUSR2) one site's emulated uplink.
link() { # cut|restore site
    local sig id
    case "${1:-}" in cut) sig=USR1 ;; restore) sig=USR2 ;; *) echo "usage: $0 link cut|restore SITE" >&2; exit 2 ;; esac
    [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: $0 link cut|restore SITE (a site number)" >&2; exit 2; }
    use_sites_file
    id=$($COMPOSE ps -q "link-$2") && [ -n "$id" ] || { echo "no site $2 in $COMPOSE_PROJECT_NAME" >&2; exit 1; }
    docker kill -s "$sig" "$id" >/dev/null && log "site $2 uplink: $1"
}
ha() { [[ ",${COMPOSE_PROFILES:-}," == *,ha,* ]]; }

cmd=${1:-up}
[ $# -gt 0 ] && shift
if [ "$cmd" = link ]; then link "$@"; exit 0; fi
while [ $# -gt 0 ]; do
    arg=$1; shift
    case "$arg" in
        --nodes=*) NODES=${arg#--nodes=} ;;
        --nodes) NODES=${1:-}; shift || true ;;
        --link=*) LINK_PROFILE=${arg#--link=} ;;
        --link) LINK_PROFILE=${1:-}; shift || true ;;
        --mongo) export COMPOSE_PROFILES=mongo LEOTEST_STORE=mongo ;;
        # Replicas share the MongoDB-wire database; the kernel service and init use the balancer.
        --ha) export COMPOSE_PROFILES=mongo,ha LEOTEST_STORE=mongo LEOTEST_ORCHESTRATOR_HOST=orchestrator-lb
              export LEOTEST_TRUSTED_PROXIES=${LEOTEST_TRUSTED_PROXIES:-172.16.0.0/12,192.168.0.0/16,10.0.0.0/8} ;;
        *) echo "unknown option $arg; usage: $0 build|up|down|e2e [--mongo|--ha] [--nodes N [--link lan|wan|leo]]" >&2; exit 2 ;;
    esac
done
if [ -n "$NODES" ]; then
    [[ "$NODES" =~ ^[0-9]+$ ]] && [ "$NODES" -ge 2 ] && [ "$NODES" -le 16 ] ||
        { echo "--nodes: a number of sites from 2 to 16" >&2; exit 2; }
    case "$LINK_PROFILE" in lan|wan|leo) ;; *) echo "--link: lan, wan or leo" >&2; exit 2 ;; esac
fi
case "$cmd" in
    build) build ;;
    up) up ;;
    down) down ;;
    e2e) if ha; then exec "$(dirname "$0")/e2e-ha.sh"; else exec "$(dirname "$0")/e2e-testbed.sh"; fi ;;
    *) echo "usage: $0 build|up|down|e2e|link [--mongo|--ha] [--nodes N [--link lan|wan|leo]]" >&2; exit 2 ;;
esac
