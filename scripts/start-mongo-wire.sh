#!/usr/bin/env bash
# Starts a local MongoDB-wire-compatible server (PyPI `nx-27017`, SQLite underneath) for the
# MongoDB backend tests, and prints its connection string on stdout (and nothing else).
#
#   LEOTEST_TEST_MONGO_URI=$(scripts/start-mongo-wire.sh)      # start (or reuse) and print URI
#   scripts/start-mongo-wire.sh stop                          # stop the one started here
#
# Idempotent: if a server already answers on the port, it is reused. Installs nx-27017 with
# pip into its own venv (target/mongo-wire-venv, or MONGO_WIRE_VENV) when missing. Environment: PORT (27017), MONGO_WIRE_DIR (data dir, default under
# ${TMPDIR:-/tmp}), MONGO_WIRE_WAIT (seconds to wait for start-up, 30), NX_27017_VERSION.
set -euo pipefail

HOST=127.0.0.1
PORT=${PORT:-27017}
DIR=${MONGO_WIRE_DIR:-${TMPDIR:-/tmp}/leotest-mongo-wire-$PORT}
WAIT=${MONGO_WIRE_WAIT:-30}
VERSION=${NX_27017_VERSION:-0.8.1}
URI="mongodb://$HOST:$PORT"
PIDFILE="$DIR/nx-27017.pid"

log() { echo "start-mongo-wire: $*" >&2; }

case "$PORT" in
    '' | *[!0-9]*) log "PORT must be a number, got '$PORT'"; exit 2 ;;
esac

# Answers a MongoDB `ping` (not just an open port), within one second.
answers() {
    "$PY" - "$URI" <<'EOF' >/dev/null 2>&1
import sys
import pymongo
c = pymongo.MongoClient(sys.argv[1], serverSelectionTimeoutMS=1000, connectTimeoutMS=1000)
c.admin.command("ping")
EOF
}

if [ "${1:-}" = "stop" ]; then
    if [ -f "$PIDFILE" ]; then
        pid=$(cat "$PIDFILE")
        case "$pid" in '' | *[!0-9]*) log "bad pid file $PIDFILE"; exit 1 ;; esac
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            log "stopped nx-27017 (pid $pid)"
        fi
        rm -f "$PIDFILE"
    else
        log "no server started by this script on port $PORT"
    fi
    exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
    log "python3 is required (apt-get install -y python3 python3-venv)"
    exit 1
fi

# nx-27017 (and the pymongo it brings) live in a venv of their own under target/, so nothing is
# installed into the system's Python (no pip --break-system-packages); made once, kept.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${MONGO_WIRE_VENV:-$ROOT/target/mongo-wire-venv}
PY=$VENV/bin/python
installed() { "$PY" -c 'import nx_27017.nx_27017, pymongo' >/dev/null 2>&1; }
if ! installed; then
    if [ ! -x "$PY" ] && ! python3 -m venv "$VENV" >&2; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "installing python3-venv with apt-get"
            apt-get install -y -qq python3-venv >&2
            rm -rf "$VENV" && python3 -m venv "$VENV" >&2
        fi
    fi
    log "installing nx-27017==$VERSION from PyPI into $VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check "nx-27017==$VERSION" >&2 || true
fi
if ! installed; then
    log "nx-27017 could not be installed into $VENV"
    exit 1
fi

if answers; then
    log "reusing the server already answering on $HOST:$PORT"
    echo "$URI"
    exit 0
fi

mkdir -p "$DIR"
log "starting nx-27017 on $HOST:$PORT with data in $DIR"
"$PY" -W ignore::RuntimeWarning -m nx_27017.nx_27017 --daemon \
    --data-dir "$DIR" --host "$HOST" --port "$PORT" \
    --pid-file "$PIDFILE" --log-file "$DIR/nx-27017.log" >&2

for _ in $(seq 1 "$WAIT"); do
    if answers; then
        echo "$URI"
        exit 0
    fi
    sleep 1
done
log "nx-27017 did not answer on $HOST:$PORT within ${WAIT}s; log: $DIR/nx-27017.log"
tail -n 20 "$DIR/nx-27017.log" >&2 2>/dev/null || true
exit 1
