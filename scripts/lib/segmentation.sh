# Sourced by the e2e scripts: the testbed segmentation check (issue 21 item 6). From a sample
# experiment container, every address of every container of the compose project and every
# name the testbed uses is probed on every port the testbed listens on; the only one that may
# answer is the kernel service's port 9000 on the experiment network. Everything else must be
# refused, unroutable or unresolvable. Bounded: each probe gives up after 2 s, all run at once.
#
#   security_segmentation PROBE-SERVICE EXPERIMENT-NETWORK [KERNEL-SERVICE]
# Needs $COMPOSE, $COMPOSE_PROJECT_NAME and the caller's check/check_empty functions.

# Ports the testbed listens on anywhere: kernel service, its metrics, the orchestrator's gRPC
# and metrics, the balancer's status page, MongoDB.
SEGMENTATION_PORTS=${SEGMENTATION_PORTS:-"9000 9100 9101 50051 8404 27017"}

segmentation_targets() { # -> "label host port" lines
    local c svc ip port name
    for c in $(docker ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME"); do
        svc=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$c")
        for ip in $(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$c"); do
            for port in $SEGMENTATION_PORTS; do echo "$svc $ip $port"; done
        done
    done
    # Names: resolvable on the experiment network only for its own members.
    for name in orchestrator orchestrator-2 orchestrator-lb mongo init kernel-metrics; do
        for port in $SEGMENTATION_PORTS; do echo "name:$name $name $port"; done
    done
}

security_segmentation() { # probe-service experiment-network [kernel-service]
    local probe=$1 net=$2 kernel=${3:-kernel-service} kid kip targets open expected unexpected
    kid=$($COMPOSE ps -q "$kernel")
    kip=$(docker inspect -f "{{with index .NetworkSettings.Networks \"$net\"}}{{.IPAddress}}{{end}}" "$kid")
    targets=$(segmentation_targets)
    # busybox nc: `-e /bin/true` exits 0 as soon as the connection is made
    open=$(printf '%s\n' "$targets" | $COMPOSE exec -T "$probe" sh -c \
        'while read -r l h p; do (nc -w 2 "$h" "$p" -e /bin/true >/dev/null 2>&1 && echo "open $l $h:$p") & done; wait' 2>&1 || true)
    expected="open $kernel $kip:9000"
    log "security_segmentation: $(printf '%s\n' "$targets" | wc -l) probes from $probe"
    check "security_segmentation: $probe reaches the kernel service on $kip:9000" "$expected" "$open"
    unexpected=$(printf '%s\n' "$open" | grep -vxF "$expected" | grep . || true)
    check_empty "security_segmentation: nothing else of the testbed answers $probe" "$unexpected"
}
