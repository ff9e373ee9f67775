# The emulated uplink of a multi-site testbed site (scripts/testbed.sh up --nodes N): one
# statically linked binary (bench/src/link), built from target/testbed/ like the others.
FROM scratch
COPY leotest-link /usr/local/bin/leotest-link
USER 65532:65532
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/leotest-link"]
