# A sample experiment container: busybox (sh, nc, sleep) and the leotest CLI.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY leotest /usr/local/bin/leotest
USER 1000:1000
CMD ["/bin/sleep", "2147483647"]
