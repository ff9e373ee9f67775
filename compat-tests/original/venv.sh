#!/usr/bin/env bash
# Makes compat-tests/.venv-original (the original's pinned Python stack, requirements.txt here)
# when it is missing or out of date, and prints its interpreter's path on stdout.
# PYTHON picks the interpreter the venv is made from (python3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$(cd "$here/.." && pwd)/.venv-original"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)
log() { echo "original-venv: $*" >&2; }
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    if ! "${PYTHON:-python3}" -m venv "$venv" >&2; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            log "installing python3-venv with apt-get"
            apt-get install -y -qq python3-venv >&2
            rm -rf "$venv"
            "${PYTHON:-python3}" -m venv "$venv" >&2
        else
            exit 1
        fi
    fi
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    log "installing requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
    echo "$want" >"$stamp"
fi
echo "$venv/bin/python"
