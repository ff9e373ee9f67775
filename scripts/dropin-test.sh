#!/usr/bin/env bash
# Drop-in at the deployment level, with the ORIGINAL's own files (issue 14): its
# docker-compose-orchestrator.yaml with only the image names swapped, its certs/generate_certs.sh
# certificate, its Python client (common/client.py) from the host, then the kernel section of its
# docker-compose-node.yaml and labeled containers that send `cca.check` with no newline.
# Details and what is (not) changed: compat-tests/original/README.md; the logic is
# compat-tests/original/dropin.py. Prints "dropin: N passed, M failed"; exit 1 on any failure.
#
#   scripts/dropin-test.sh              build images (tag $LEOTEST_IMAGE_TAG, default dev, the testbed's), run
#   DROPIN_SKIP_BUILD=1 scripts/dropin-test.sh    reuse images already built with that tag
#   scripts/dropin-test.sh --mask 2     diagnostic only: look past issue 14 item 2
#
# Needs docker (as root) and docker-compose v1. The compose file publishes host ports 50051 and
# 27017 unchanged: both must be free. The original's reference copy is found as
# $LEOTEST_UPSTREAM or ../shared/upstream/global-testbed; missing, it fails under CI=true and
# is skipped elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."

export LEOTEST_IMAGE_TAG=${LEOTEST_IMAGE_TAG:-dev}
upstream=${LEOTEST_UPSTREAM:-$PWD/../shared/upstream/global-testbed}
if [ ! -f "$upstream/docker-compose-orchestrator.yaml" ]; then
    if [ "${CI:-}" = true ]; then
        echo "dropin-test: the original's reference copy is missing at $upstream (CI=true)" >&2
        exit 1
    fi
    echo "dropin-test: SKIPPED, no reference copy of the original at $upstream (set LEOTEST_UPSTREAM)" >&2
    exit 0
fi
export LEOTEST_UPSTREAM=$upstream

python=$(compat-tests/original/venv.sh)
if [ "${DROPIN_SKIP_BUILD:-}" != 1 ]; then
    # Our images (orchestrator, kernel service, experiment) and the MongoDB-wire image.
    COMPOSE_PROJECT_NAME=leotest-$LEOTEST_IMAGE_TAG scripts/testbed.sh build --mongo
fi
exec "$python" compat-tests/original/dropin.py --tag "$LEOTEST_IMAGE_TAG" "$@"
