# The `ha` profile's load balancer: HAProxy from Debian bookworm on a base that
# scripts/testbed.sh makes once with debootstrap + `docker import` (no registry is needed).
FROM leotest-rs/haproxy-base:bookworm
COPY haproxy.cfg /etc/haproxy/haproxy.cfg
COPY haproxy-healthy.sh /usr/local/bin/haproxy-healthy
USER haproxy
EXPOSE 50051
ENTRYPOINT ["haproxy", "-W", "-db", "-f", "/etc/haproxy/haproxy.cfg"]
