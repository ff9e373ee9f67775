# The node's kernel service (TCP 9000): one statically linked binary. busybox gives sandbox
# jobs a small userland (sh, echo, ls, ...) to run in, read-only.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
# Sandbox jobs mount a private tmpfs on /tmp as their working directory.
COPY empty/ /tmp/
COPY leotest-kernel-service /usr/local/bin/leotest-kernel-service
COPY leotest /usr/local/bin/leotest
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/leotest-kernel-service"]
