# Sourced by the e2e scripts: the testbed segmentation check (issue 21 item 6), implemented
# once in `cargo xtask segmentation` (xtask/src/segmentation.rs): from a sample experiment
# container, every address of every container of the compose project and every name the
# testbed uses is probed on every port the testbed listens on; only the kernel service's port
# 9000 on the experiment network may answer. This records its result with the caller's
# check/check_empty under the same two names.
#
#   security_segmentation PROBE-SERVICE EXPERIMENT-NETWORK [KERNEL-SERVICE]
# Needs $COMPOSE_PROJECT_NAME (exported), $COMPOSE and the caller's log/check/check_empty.

security_segmentation() { # probe-service experiment-network [kernel-service]
    local probe=$1 net=$2 kernel=${3:-kernel-service} out kip
    # exit 1 when a check fails: its lines say which
    out=$(COMPOSE=$COMPOSE cargo xtask segmentation "$probe" "$net" "$kernel") || true
    kip=$(sed -n 's/^kernel-address //p' <<<"$out")
    log "security_segmentation: $(sed -n 's/^probes //p' <<<"$out") probes from $probe"
    check "security_segmentation: $probe reaches the kernel service on $kip:9000" \
        "open $kernel $kip:9000" "$(sed -n 's/^answer //p' <<<"$out")"
    check_empty "security_segmentation: nothing else of the testbed answers $probe" \
        "$(sed -n 's/^unexpected //p' <<<"$out")"
}
