"""A TLS pair made exactly the way the original's deployments make one: its own
`certs/generate_certs.sh` (RSA 4096, `openssl req -new` answered on stdin with CN=localhost,
self-signed X.509 v1 with serial 01, no extensions, key rewritten by `openssl rsa`).

The script is copied into a fresh directory and run there with bash; nothing is changed in it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Answers to `openssl req -new`'s prompts, in order: country, state, locality, organisation,
# unit, common name (what grpcio's `ssl_target_name_override=localhost` checks), e-mail,
# challenge password, optional company name.
REQ_ANSWERS = "IN\nKarnataka\nBengaluru\nLEOScope\nTestbed\nlocalhost\n\n\n\n"


def make_original_cert(upstream: Path, directory: Path) -> tuple[Path, Path]:
    """Runs the original's generate_certs.sh in `directory`; returns (server.crt, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "generate_certs.sh"
    shutil.copyfile(upstream / "certs" / "generate_certs.sh", script)
    done = subprocess.run(
        ["bash", str(script)],
        cwd=directory,
        input=REQ_ANSWERS,
        text=True,
        capture_output=True,
        timeout=120,
    )
    crt, key = directory / "server.crt", directory / "server.key"
    if done.returncode != 0 or not crt.is_file() or not key.is_file():
        raise RuntimeError(
            f"generate_certs.sh failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    key.chmod(0o600)
    return crt, key


def main() -> None:
    import argparse

    from upstream import upstream_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", type=Path)
    args = p.parse_args()
    crt, key = make_original_cert(upstream_dir(), args.directory)
    print(crt)
    print(key)


if __name__ == "__main__":
    main()
