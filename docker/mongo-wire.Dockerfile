# The `mongo` profile's database: nx-27017, a MongoDB-wire server on SQLite (PyPI), on a
# Python base made locally with debootstrap + `docker import` (no registry is needed).
# Built by `scripts/testbed.sh build --mongo`, which stages its packages in target/testbed/.
FROM leotest-rs/python-base:bookworm
COPY nx-27017/ /opt/nx-27017/
COPY --chown=65532:65532 empty/ /data/
ENV PYTHONPATH=/opt/nx-27017 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 27017
ENTRYPOINT ["python3", "-W", "ignore::RuntimeWarning", "-m", "nx_27017.nx_27017", \
            "--host", "0.0.0.0", "--port", "27017", "--data-dir", "/data"]
