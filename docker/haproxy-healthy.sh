#!/bin/bash
# Container health check of the load balancer: healthy while HAProxy answers on its local
# status port and has at least one orchestrator replica up (bash: the image has no curl).
set -eu
exec 3<>/dev/tcp/127.0.0.1/8404
printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3
IFS= read -r -t 2 status <&3
[[ "$status" == "HTTP/1."[01]" 200"* ]]
