# The orchestrator: one statically linked binary on an empty base image.
# Built from target/testbed/ by scripts/testbed.sh (no registry, nothing is pulled).
FROM scratch
COPY leotest-orchestrator /usr/local/bin/leotest-orchestrator
COPY leotest /usr/local/bin/leotest
# Empty, non-root-owned mount points: a new named volume inherits this ownership.
COPY --chown=65532:65532 empty/ /var/lib/leotest/data/
COPY --chown=65532:65532 empty/ /var/lib/leotest/certs/
USER 65532:65532
WORKDIR /var/lib/leotest
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/leotest-orchestrator"]
