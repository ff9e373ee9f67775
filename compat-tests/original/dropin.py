"""Drop-in at the deployment level: the original's own compose file, certificates and Python
client against our images (scripts/dropin-test.sh runs this in compat-tests/.venv-original).

1. docker-compose-orchestrator.yaml with only its image names swapped (dropin_compose.py),
   brought up with docker-compose; the TLS pair made by certs/generate_certs.sh is in the
   image, as the original's Dockerfile puts it there (COPY certs).
2. From the host, the ORIGINAL common/client.py: the admin token and JWT secret from the
   compose file (its placeholders, verbatim), register users and a node, a JWT signed with
   python-jose (the original's library) accepted, a job with a 64 KiB config scheduled and
   read back intact.
3. The kernel section of docker-compose-node.yaml with our image (placeholders filled), and
   labeled containers on its network whose client sends `cca.check` with no newline
   (`s.sendall(b"cca.check")`, as a Python client does) and waits for the answer; a USER
   container gets access_denied. The same with the privileges our README documents.

Every failed check names the issue-14 item it shows. Ends with "dropin: N passed, M failed".
--mask 1,2 (diagnostic only) replaces the certificate (item 1) and overrides --grpc-hostname
(item 2) so the later checks can run past those items; never used by the test itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dropin_compose as dc  # noqa: E402
import recorder  # noqa: E402
from certs import make_original_cert  # noqa: E402
from dates import Y  # noqa: E402
from servers import probe  # noqa: E402
from upstream import upstream_dir  # noqa: E402

COMPOSE = os.environ.get("COMPOSE", "docker-compose")
HOST_DATA_DIR = Path("/home/leotest/leoscope/mongodb")  # the compose file's datastore bind mount
CONFIG_BYTES = 64 * 1024
# Run in a labeled container: connect, send the command with no newline, wait for the answer.
PROBE = r"""
import json, socket, sys, time
host, cmd = sys.argv[1], sys.argv[2].encode()
deadline = time.time() + 60
while True:
    try:
        s = socket.create_connection((host, 9000), timeout=5)
        break
    except OSError as e:
        if time.time() > deadline:
            print(json.dumps({"error": "connect: %s" % e})); sys.exit(0)
        time.sleep(1)
s.sendall(cmd)
s.settimeout(float(sys.argv[3]))
t0, data = time.time(), b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
print(json.dumps({"answer": data.decode(errors="replace"), "seconds": round(time.time() - t0, 3),
                  "closed": bool(data)}))
"""


def run(*args, check=True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), check=False, text=True, capture_output=True, **kw)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done


class Checks:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def record(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((name, ok, detail))
        print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""),
              flush=True)  # fmt: skip
        return ok

    def summary(self) -> int:
        failed = [r for r in self.results if not r[1]]
        print(f"dropin: {len(self.results) - len(failed)} passed, {len(failed)} failed")
        return 1 if failed else 0


def port_holder(port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return None
        except OSError:
            out = run("ss", "-ltnp", f"sport = :{port}", check=False).stdout.strip().splitlines()
            return out[-1] if len(out) > 1 else "unknown process"


class Dropin:
    def __init__(self, args) -> None:
        self.a = args
        self.up = upstream_dir()
        self.work = Path(tempfile.mkdtemp(prefix="leotest-harness-dropin-"))
        self.checks = Checks()
        self.tag = args.tag
        self.project = args.project
        self.node_project = f"{args.project}-node"
        self.images = [f"leotest-rs/orchestrator-dropin:{self.tag}",
                       f"leotest-rs/kernel-service-dropin:{self.tag}"]  # fmt: skip
        self.containers: list[str] = []
        self.created_host_dir = not HOST_DATA_DIR.exists()
        self.compose_file = self.work / "docker-compose-orchestrator.yaml"
        self.node_file = self.work / "docker-compose-node.yaml"

    # ---------------------------------------------------------------- set-up

    def build_images(self) -> None:
        if "1" in self.a.mask:
            print("MASK item 1: a CA-free leaf with SAN localhost instead of generate_certs.sh's "
                  "(diagnostic run)")  # fmt: skip
            crt, key = self.work / "certs" / "server.crt", self.work / "certs" / "server.key"
            crt.parent.mkdir(parents=True)
            run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                "-addext", "basicConstraints=critical,CA:FALSE",
                "-keyout", str(key), "-out", str(crt))  # fmt: skip
        else:
            crt, key = make_original_cert(self.up, self.work / "certs")
        for kind, dockerfile in (
            ("orchestrator", "FROM leotest-rs/orchestrator:{tag}\n"
             "COPY --chown=65532:65532 server.crt server.key /var/lib/leotest/certs/\n"),
            ("kernel-service", "FROM leotest-rs/kernel-service:{tag}\n"
             "COPY server.crt /leotest/certs/server.crt\n"),
        ):  # fmt: skip
            ctx = self.work / f"image-{kind}"
            ctx.mkdir()
            shutil.copy(crt, ctx / "server.crt")
            shutil.copy(key, ctx / "server.key")
            (ctx / "server.key").chmod(0o600)
            (ctx / "Dockerfile").write_text(dockerfile.format(tag=self.tag))
            run("docker", "build", "-q", "-t", f"leotest-rs/{kind}-dropin:{self.tag}", str(ctx))

    def compose(self, project: str, files: list[Path], *args, check=True):
        cmd = [COMPOSE, "-p", project]
        for f in files:
            cmd += ["-f", str(f)]
        return run(*cmd, *args, check=check, cwd=self.work)

    def up_orchestrator(self) -> list[Path]:
        text = dc.orchestrator_file(self.up / "docker-compose-orchestrator.yaml",
                                    f"leotest-rs/orchestrator-dropin:{self.tag}",
                                    f"leotest-rs/mongo-wire:{self.tag}")  # fmt: skip
        self.compose_file.write_text(text)
        self.admin_token = dc.command_value(text, "orchestrator", "--admin-access-token")
        self.jwt_secret = dc.command_value(text, "orchestrator", "--jwt-secret")
        self.jwt_algo = dc.command_value(text, "orchestrator", "--jwt-algo")
        files = [self.compose_file]
        if "2" in self.a.mask:
            import yaml

            cmd = [("--grpc-hostname=0.0.0.0" if c.startswith("--grpc-hostname=") else c)
                   for c in yaml.safe_load(text)["services"]["orchestrator"]["command"]]  # fmt: skip
            override = self.work / "mask-item-2.yaml"
            override.write_text(yaml.safe_dump({"version": "3.7", "services": {
                "orchestrator": {"command": cmd}}}))  # fmt: skip
            files.append(override)
            print("MASK item 2: --grpc-hostname=0.0.0.0 (diagnostic run, not the original file)")
        self.compose(self.project, files, "up", "-d", "--no-build")
        return files

    # ---------------------------------------------------------------- checks

    def wait_orchestrator(self) -> bool:
        root = (self.work / "certs" / "server.crt").read_bytes()
        deadline, last = time.monotonic() + self.a.wait, None
        while time.monotonic() < deadline:
            last = probe("127.0.0.1:50051", root, self.admin_token, timeout=3)
            if last is None:
                return self.checks.record("the original's compose file starts a reachable orchestrator", True)
            time.sleep(1)
        logs = self.compose(self.project, [self.compose_file], "logs", "--tail=30", "orchestrator",
                            check=False).stdout  # fmt: skip
        item = ""
        if "127.0.0.1:50051" in logs or "localhost" in logs:
            item = ("issue 14 item 2: with --grpc-hostname=localhost (the compose file's) our "
                    "server listens on the container's loopback; the published port reaches nothing. ")
        return self.checks.record(
            "the original's compose file starts a reachable orchestrator", False,
            f"{item}get_user(admin) over TLS on 127.0.0.1:50051: {last}\n{logs[-3000:]}")

    def client_checks(self) -> dict:
        """The ORIGINAL Python client, from the host. Returns tokens for the node part."""
        os.chdir(self.work)  # common/client.py reads certs/server.crt from here
        recorder.install(lambda: recorder.EventLog(self.work / "records" / "client.jsonl", "dropin"))
        sys.path.insert(0, str(self.up))
        from common.client import LeotestClient
        from google.protobuf.json_format import MessageToDict
        from jose import jwt

        def client(userid="", token="", jwt_token=""):
            return LeotestClient(grpc_hostname="127.0.0.1", grpc_port=50051, userid=userid,
                                 access_token=token, jwt_access_token=jwt_token)  # fmt: skip

        out = {}
        c = self.checks
        adm = client("admin", self.admin_token)
        for uid, role in (("alice-dropin", "USER_PRIV"), ("bob-dropin", "USER")):
            rsp = adm.register_user(uid, f"name of {uid}", role, "dropin")
            out[uid] = dc.token_from(rsp.message)
            c.record(f"register_user {uid} ({role}) with the compose file's admin token",
                     rsp.state == 0 and bool(out[uid]), f"{rsp}")  # fmt: skip
        rsp = adm.register_node("node-dropin", "dropin node", "drop-in test node", "12.9,77.6",
                                "bengaluru")  # fmt: skip
        out["node-dropin"] = dc.token_from(rsp.message)
        c.record("register_node node-dropin", rsp.state == 0 and bool(out["node-dropin"]), f"{rsp}")

        claims = {"userid": "alice-dropin", "exp": int(time.time()) + 3600}
        signed = jwt.encode(claims, self.jwt_secret, algorithm=self.jwt_algo)
        rsp = client(jwt_token=signed).get_user("alice-dropin")
        c.record("a JWT signed with the compose file's --jwt-secret is accepted",
                 rsp.exists and rsp.id == "alice-dropin", f"{rsp}")  # fmt: skip
        # The original also took a JWT without `exp`; ours requires it (docs/compatibility.md).
        no_exp = jwt.encode({"userid": "alice-dropin"}, self.jwt_secret, algorithm=self.jwt_algo)
        try:
            client(jwt_token=no_exp).get_user("alice-dropin")
            print("NOTE a JWT without exp is accepted, as by the original")
        except recorder.RetriedForever as err:
            print(f"NOTE a JWT without exp is refused (documented deviation; the original "
                  f"client would retry forever): {err}")

        line = "# " + "x" * 98 + "\n"
        config = ("docker:\n  image: 'dropin/measurement:1'\n  execute:\n    name: \"leo\"\n"
                  + line * (CONFIG_BYTES // len(line) + 1))[:CONFIG_BYTES]  # fmt: skip
        alice = client("alice-dropin", out["alice-dropin"])
        rsp = alice.schedule_job("dropin-64k", "node-dropin", "cron", "docker", "image=x", "run",
                                 "collect", "*/10 * * * *", f"{Y}-01-01T00:00:00",
                                 f"{Y}-01-02T00:00:00", 60, True,
                                 experiment_config=config)  # fmt: skip
        item = "issue 14 item 4: " if "longer than" in rsp.message else ""
        c.record(f"schedule_job with a {CONFIG_BYTES}-byte config", rsp.state == 0,
                 f"{item}state={rsp.state} message={rsp.message!r}")  # fmt: skip
        got = MessageToDict(alice.get_job_by_id("dropin-64k")).get("config", "")
        c.record(f"get_job_by_id returns the {CONFIG_BYTES}-byte config intact", got == config,
                 f"issue 14 item 4: got {len(got)} bytes back" if got != config else "")  # fmt: skip
        return out

    def up_node(self, tokens: dict) -> list[tuple[str, str]]:
        """Kernel services: the original node section, and the same with our documented
        privileges. `privileged: true` is kept unless this engine refuses to start it.
        Returns [(service, what it is)]."""
        try:
            self._up_node(tokens, privileged_ok=True)
        except RuntimeError as err:
            if "apply caps" not in str(err):
                raise
            print("privileged: true cannot start on this Docker engine (unable to apply caps)")
            self.compose(self.node_project, [self.node_file], "down", "-v", check=False)
            self._up_node(tokens, privileged_ok=False)
        return [("kernel", "the original node compose section"),
                ("kernel-documented", "the same with the privileges our README documents")]

    def _up_node(self, tokens: dict, privileged_ok: bool) -> None:
        gateway = "172.27.0.1"  # the leotest-net subnet's gateway: the host, where 50051 is published
        text, changes = dc.node_file(self.up / "docker-compose-node.yaml",
                                     f"leotest-rs/kernel-service-dropin:{self.tag}", "node-dropin",
                                     gateway, tokens.get("node-dropin", ""), self.node_project,
                                     privileged_ok)  # fmt: skip
        import yaml

        doc = yaml.safe_load(text)
        documented = dict(doc["services"]["kernel"])
        documented.pop("privileged", None)
        documented["hostname"] = "leotest_kernel_documented"
        documented.update({
            "pid": "host", "cap_drop": ["ALL"],
            "cap_add": ["SYS_ADMIN", "SYS_PTRACE", "NET_ADMIN", "SETUID", "SETGID", "KILL", "DAC_OVERRIDE"],
            "security_opt": ["apparmor:unconfined", "seccomp:unconfined", "no-new-privileges:true"],
        })  # fmt: skip
        doc["services"]["kernel-documented"] = documented
        self.node_file.write_text(yaml.safe_dump(doc, sort_keys=False))
        print("node compose: kernel section of docker-compose-node.yaml; " + "; ".join(changes))
        self.compose(self.node_project, [self.node_file], "up", "-d", "--no-build")

    def cca_check(self, service: str, what: str, tokens: dict) -> None:
        net = f"{self.node_project}_leotest-net"
        for uid, want in (("alice-dropin", "granted"), ("bob-dropin", "denied")):
            name = f"{self.project}-exp-{service}-{uid}"
            self.containers.append(name)
            done = run("docker", "run", "--rm", "--name", name, "--label", f"userid={uid}",
                       "--network", net, "leotest-rs/python-base:bookworm", "python3", "-c", PROBE,
                       service, "cca.check", str(self.a.answer_within), check=False)  # fmt: skip
            try:
                res = json.loads(done.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                res = {"error": done.stdout + done.stderr}
            answer = res.get("answer", "")
            logs = run("docker", "logs", "--tail", "40", f"{self.node_project}_{service}_1",
                       check=False)  # fmt: skip
            logtext = logs.stdout + logs.stderr
            name = f"{what}: {uid} sends 'cca.check' with no newline"
            if want == "granted":
                ok = "tcp_congestion_control" in answer
                item = ""
                if not ok and answer.strip() == "access_denied" and (
                        "UnsupportedCertVersion" in logtext or "CaUsedAsEndEntity" in logtext
                        or "certificate" in logtext.lower()):  # fmt: skip
                    item = ("issue 14 item 1: the kernel service refuses the orchestrator's "
                            "generate_certs.sh certificate, so every user is denied. ")
                elif not ok and not answer:
                    item = (f"issue 14 item 3: no answer within {self.a.answer_within}s to a "
                            "command without a newline (the original answers at once). ")
                elif not ok and service == "kernel":
                    item = "issue 14 item 8: the original node compose section does not work. "
                self.checks.record(f"{name} and gets the answer", ok,
                                   f"{item}{res}\n--- {service} log ---\n{logtext[-2500:]}")  # fmt: skip
            else:
                self.checks.record(f"{name} and gets access_denied",
                                   answer.strip() == "access_denied", f"{res}")  # fmt: skip

    # ---------------------------------------------------------------- tear-down

    def down(self) -> None:
        for name in self.containers:
            run("docker", "rm", "-f", name, check=False)
        if self.node_file.exists():
            self.compose(self.node_project, [self.node_file], "down", "-v", "--remove-orphans",
                         check=False)  # fmt: skip
        if self.compose_file.exists():
            self.compose(self.project, [self.compose_file], "down", "-v", "--remove-orphans",
                         check=False)  # fmt: skip
        for image in self.images:
            run("docker", "rmi", "-f", image, check=False)
        if self.created_host_dir and HOST_DATA_DIR.is_dir():
            try:  # created by Docker for the compose file's bind mount: remove what we made
                for d in (HOST_DATA_DIR, HOST_DATA_DIR.parent, HOST_DATA_DIR.parent.parent):
                    d.rmdir()
            except OSError:
                pass
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def logs(self) -> None:
        for project, f, svc in ((self.project, self.compose_file, "orchestrator"),
                                (self.node_project, self.node_file, "")):  # fmt: skip
            if f.exists():
                out = self.compose(project, [f], "logs", "--tail=60", *([svc] if svc else []),
                                   check=False)  # fmt: skip
                print(f"--- {project} logs ---\n{out.stdout[-6000:]}")

    def main(self) -> int:
        try:
            for port in (50051, 27017):
                holder = port_holder(port)
                if holder:
                    self.checks.record(f"host port {port} is free", False,
                                       f"the original's compose file publishes {port}; in use: {holder}")  # fmt: skip
                    return self.checks.summary()
            self.build_images()
            self.up_orchestrator()
            if self.wait_orchestrator():
                tokens = self.client_checks()
                for service, what in self.up_node(tokens):
                    self.cca_check(service, what, tokens)
        except Exception:  # noqa: BLE001 - a harness failure is a failed check, with its trace
            self.checks.record("the drop-in run completed", False, traceback.format_exc())
        finally:
            if any(not ok for _, ok, _ in self.checks.results):
                self.logs()
            self.down()
        return self.checks.summary()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", default=os.environ.get("LEOTEST_IMAGE_TAG", "dev"))
    p.add_argument("--project", default=os.environ.get("DROPIN_PROJECT", "leotest-harness-dropin"))
    p.add_argument("--wait", type=float, default=90, help="seconds for the orchestrator to answer")
    p.add_argument("--answer-within", type=float, default=5,
                   help="seconds a cca.check without newline may take (the read timeout is 10)")
    p.add_argument("--mask", default="", help="diagnostic only, comma-separated: 1 = a leaf "
                   "certificate with SAN instead of generate_certs.sh's, 2 = listen on 0.0.0.0")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    sys.exit(Dropin(p.parse_args()).main())


if __name__ == "__main__":
    main()
