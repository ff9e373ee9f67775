# The node's kernel service (TCP 9000): one statically linked binary. busybox gives sandbox
# jobs a small userland (sh, echo, ls, ...) to run in, read-only.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# Sandbox jobs mount a private tmpfs on /tmp as their working directory.
COPY empty/ /tmp/
COPY leotest-kernel-service /usr/local/bin/leotest-kernel-service
COPY leotest /usr/local/bin/leotest
# The original image ran from /leotest with its certificate baked in at certs/server.crt, the
# default --ca-cert: mounting the same certs at /leotest/certs makes its compose file work as is.
WORKDIR /leotest
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/leotest-kernel-service"]
