"""The ORIGINAL node agent against one orchestrator: a scenario, recorded call by call.

    python node_agent.py --host 127.0.0.1 --port P --cert server.crt --admin-token T --out DIR

Runs in compat-tests/.venv-original. Steps (each a "role"; every role's RPCs, Docker, Azure,
redis and at calls go to DIR/records/ROLE-PID.jsonl):

  admin            the original client as admin: global config, user alice (USER_PRIV), nodes
                   node-a and node-b; alice schedules a cron job on node-a and an atq job on
                   node-a with server node-b
  scheduler-a-1    node/scheduler.py `_scheduler_execute` for node-a (crontab and at queue filled)
  scheduler-b-1    the same for node-b
  executor-cron    the crontab line it wrote, run as cron would: node/executor.py `main`
  executor-atq     the at job it queued (sets up the server: SERVER_START on node-b, waits)
  scheduler-b-2    node-b's pass that sees SERVER_START and starts the server executor:
  executor-server  node/executor.py `main --server` (completes the task)
  scheduler-b-3    node-b's pass that sees SERVER_STOP
  scheduler-a-2    node-a's second pass
  admin-final      runs, tasks, nodes and jobs as the admin reads them afterwards

Everything external to the orchestrator is faked (agent/, README.md "Fakes"); the crontab is
a file (python-crontab's tabfile), the at queue a JSON file; cron and atd are the harness.
Writes DIR/scenario.json: how each executor ended.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGENT = HERE / "agent"
sys.path.insert(0, str(HERE))

from dates import Y  # noqa: E402
from upstream import upstream_dir  # noqa: E402

UPSTREAM = upstream_dir()
sys.path[:0] = [str(AGENT), str(UPSTREAM)]

# Each process's step clock starts here (naive UTC, as the original's time_now()). The
# fractions are chosen so a store that keeps microseconds shows: .000123 is 0 ms (MongoDB
# keeps "…:00"), .910943 is 910 ms (MongoDB keeps "….910000").
CLOCKS = {
    "admin": f"{Y}-01-01 00:01:00.000123",
    "scheduler": f"{Y}-01-01 00:05:00.000123",
    "executor-cron": f"{Y}-01-01 00:10:00.000123",
    "executor-atq": f"{Y}-01-01 01:00:32.910943",
    "executor-server": f"{Y}-01-01 01:00:40.500250",
}
NODES = {
    "node-a": dict(name="roof-a", description="harness client node", coords="28.61,77.20",
                   location="delhi", provider="starlink", ip="192.0.2.10"),
    "node-b": dict(name="roof-b", description="harness server node", coords="12.97,77.59",
                   location="bengaluru", provider="starlink", ip="192.0.2.20"),
}  # fmt: skip
GLOBAL_CONFIG = {
    "datastore": {"blob": {
        "connectionString": "DefaultEndpointsProtocol=https;AccountName=harness;"
                            "AccountKey=aGFybmVzcy1rZXk=;EndpointSuffix=core.windows.net",
        "container": "leotest", "artifactPath": "jobs/"}},
    "weather": {"apikey": "harness-weather-key"},
}  # fmt: skip
EXPERIMENT_CONFIG = """docker:
  image: 'harness/measurement:1'
  deploy:
  execute:
    name: "leo-measurement"
  finish:
tests:
  ping-1:
    entry_point: "PingClient"
    runner: "ping"
    ip: 192.0.2.53
    num_pings: 3
"""
# The executor config a node mounts (the original's executor-config.yaml without `route`,
# which would change this machine's routing table).
EXECUTOR_CONFIG = """docker:
  execute:
      network: "global-testbed_leotest-net"
      volume:
        source: "/datadrive1/leoscope/jobs"
        dest: "/artifacts"
"""
# Dates as the web portal sends them (ISO 8601 with "T"): the agent puts them unquoted into
# its cron and at command lines, so a date with a space breaks its own executor's arguments.
CRON_JOB = dict(jobid="harness-cron", nodeid="node-a", type_name="cron", schedule="*/10 * * * *",
                start_date=f"{Y}-01-01T00:00:00", end_date=f"{Y}-01-01T00:50:00", length=60)
ATQ_JOB = dict(jobid="harness-atq", nodeid="node-a", type_name="atq", schedule="",
               start_date=f"{Y}-01-01T01:00:00", end_date=f"{Y}-01-01T03:00:00", length=120,
               server="node-b")  # fmt: skip


class Scenario:
    def __init__(self, host: str, port: int, cert: Path, admin_token: str, out: Path) -> None:
        self.host, self.port, self.admin_token = host, port, admin_token
        self.out = out
        self.records = out / "records"
        self.work = out / "work"  # the agent's working directory: certs/server.crt
        self.artifacts = out / "artifacts"
        for d in (self.records, self.work / "certs", *(self.artifacts / n for n in NODES)):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, self.work / "certs" / "server.crt")
        (self.work / "executor-config.yaml").write_text(EXECUTOR_CONFIG)
        # Each node is its own machine: its own crontab and at queue.
        self.crontabs = {n: out / f"crontab-{n}" for n in NODES}
        self.atqs = {n: out / f"atq-{n}.json" for n in NODES}
        for f in self.crontabs.values():
            f.write_text("")
        self.tokens: dict[str, str] = {}
        self.summary: dict = {"executors": {}, "steps": []}
        os.environ.update({
            "HARNESS_RECORD_DIR": str(self.records),
            "HARNESS_CLOCK_BASE": CLOCKS["scheduler"],
            "PYTHONPATH": os.pathsep.join([str(AGENT), str(UPSTREAM)]),
            "PYTHONDONTWRITEBYTECODE": "1",
        })  # fmt: skip
        os.chdir(self.work)  # the original client reads certs/server.crt from here
        import leo_agent_env

        self.env = leo_agent_env
        leo_agent_env.install("admin")
        import common.client
        import node.scheduler
        import node.trigger
        from crontab import CronTab

        self.client_mod = common.client
        self.sched = node.scheduler
        self.trigger = node.trigger
        # The crontab of the node's user, as a file (no cron daemon here).
        node.scheduler.CronTab = lambda user=True: CronTab(tabfile=str(self.crontabs[self.node]))
        self.node = "node-a"
        self.spawned: list[subprocess.Popen] = []
        real_popen = node.scheduler.Popen

        def popen(cmd, **kw):  # the SERVER_START task scheduler's Popen, kept to wait for it
            proc = real_popen(cmd, stdout=self._log_file("executor-server"),
                              stderr=subprocess.STDOUT, **kw)  # fmt: skip
            self.spawned.append(proc)
            return proc

        node.scheduler.Popen = popen

    # ------------------------------------------------------------------ helpers

    def _log_file(self, role: str):
        return (self.out / f"{role}.out").open("ab")

    def client(self, userid: str, token: str):
        return self.client_mod.LeotestClient(grpc_hostname=self.host, grpc_port=self.port,
                                             userid=userid, access_token=token)  # fmt: skip

    def step(self, role: str, fn) -> None:
        self.env.set_role(role)
        self.env.event("step", name=role)
        try:
            fn()
            self.summary["steps"].append({"role": role, "ok": True})
        except BaseException as err:  # noqa: BLE001 - the original agent's exception is the finding
            import traceback

            self.env.event("exception", error=repr(err), traceback=traceback.format_exc())
            self.summary["steps"].append({"role": role, "ok": False, "error": repr(err)})

    @staticmethod
    def token_from(message: str) -> str:
        return message.rsplit("access_token=", 1)[-1] if "access_token=" in message else ""

    # ------------------------------------------------------------------ admin

    def admin(self) -> None:
        from google.protobuf.json_format import MessageToDict

        adm = self.client("admin", self.admin_token)
        adm.update_config(json.dumps(GLOBAL_CONFIG))
        rsp = adm.register_user("alice", "Alice", "USER_PRIV", "lab")
        self.tokens["alice"] = self.token_from(rsp.message)
        for nodeid, n in NODES.items():
            rsp = adm.register_node(nodeid, n["name"], n["description"], n["coords"],
                                    n["location"], n["provider"])  # fmt: skip
            self.tokens[nodeid] = self.token_from(rsp.message)
        alice = self.client("alice", self.tokens["alice"])
        for job in (CRON_JOB, ATQ_JOB):
            alice.schedule_job(
                job["jobid"], job["nodeid"], job["type_name"], "docker",
                "image=harness/measurement:1", "run-tests", "upload", job["schedule"],
                job["start_date"], job["end_date"], job["length"], True,
                server=job.get("server"), experiment_config=EXPERIMENT_CONFIG)  # fmt: skip
        MessageToDict(adm.get_job_by_id(CRON_JOB["jobid"]))
        MessageToDict(adm.get_jobs_by_userid("alice"))

    def admin_final(self) -> None:
        adm = self.client("admin", self.admin_token)
        adm.get_runs(jobid=CRON_JOB["jobid"])
        adm.get_runs(jobid=ATQ_JOB["jobid"])
        adm.get_tasks(jobid=ATQ_JOB["jobid"])
        adm.get_nodes()
        adm.get_jobs_by_nodeid("node-a")
        adm.get_jobs_by_nodeid("node-b")
        adm.get_scheduled_runs("node-a", f"{Y}-01-01 00:00:00", f"{Y}-01-01 02:00:00")

    # ------------------------------------------------------------------ the node agent

    def scheduler_pass(self, nodeid: str, first: bool) -> None:
        """What node/scheduler.py's scheduler_loop does for one node: on its first pass the
        start-up reads (global config, own node), then `_scheduler_execute`."""
        from google.protobuf.json_format import MessageToDict

        self.node = nodeid
        os.environ["HARNESS_PUBLIC_IP"] = NODES[nodeid]["ip"]
        os.environ["HARNESS_ATQ_FILE"] = str(self.atqs[nodeid])
        token = self.tokens.get(nodeid, "")
        hook = f"cd {self.work} && {sys.executable} -m leo_agent_exec"
        common = dict(nodeid=nodeid, artifactdir=str(self.artifacts / nodeid), grpc_hostname=self.host,
                      grpc_port=self.port, executor_config=str(self.work / "executor-config.yaml"),
                      access_token=token)  # fmt: skip
        cron = self.sched.LeotestJobSchedulerCron(executor_path=hook, **common)
        atq = self.sched.LeotestJobSchedulerAtq(executor_path=hook, **common)
        tasks = self.sched.LeotestTaskSchedulerPopen(
            executor_path=sys.executable, module_name="leo_agent_exec",
            workdir=str(self.work), **common)  # fmt: skip
        client = self.client(nodeid, token)
        if first:
            config = MessageToDict(client.get_config())["config"]
            config["weather"]["apikey"]
            msg = MessageToDict(client.get_nodes(nodeid=nodeid))
            msg["nodes"][0]["coords"].split(",")
        from pymemcache.client.base import Client as Memcache

        self.sched._scheduler_execute(nodeid, client, cron, atq, tasks, Memcache("memcached:11211"),
                                      self.trigger.LeotestTriggerMode(), self.sched.log)  # fmt: skip
        lines = self.crontabs[nodeid].read_text().splitlines()
        self.env.event("crontab", lines=[ln for ln in lines if ln.strip()])
        self.env.event("atq", jobs=[j["command"] for j in self._atq(nodeid)])

    def _atq(self, nodeid: str) -> list[dict]:
        try:
            return json.loads(self.atqs[nodeid].read_text())
        except (OSError, ValueError):
            return []

    def _child_env(self, role: str) -> dict:
        return {**os.environ, "HARNESS_ROLE": role, "HARNESS_CLOCK_BASE": CLOCKS[role]}

    def _command_for(self, nodeid: str, jobid: str, source: str) -> str | None:
        if source == "cron":
            from crontab import CronTab

            for job in CronTab(tabfile=str(self.crontabs[nodeid])):
                if job.comment == jobid:
                    return job.command
            return None
        for j in self._atq(nodeid):
            if j["command"].rstrip().endswith(f"# {jobid}"):
                return j["command"]
        return None

    def fire(self, role: str, job: dict, source: str) -> subprocess.Popen | None:
        """Runs the job's command line from its node's crontab or at queue as cron/atd would
        (sh -c), at once rather than at its time."""
        jobid = job["jobid"]
        cmd = self._command_for(job["nodeid"], jobid, source)
        self.env.set_role("harness")
        if cmd is None:
            self.summary["executors"][role] = {"ran": False, "why": f"no {source} entry for {jobid}"}
            return None
        return subprocess.Popen(["sh", "-c", cmd], env=self._child_env(role),
                                stdout=self._log_file(role), stderr=subprocess.STDOUT)  # fmt: skip

    def wait(self, role: str, proc: subprocess.Popen | None, timeout: float) -> None:
        if proc is None:
            return
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = f"killed after {timeout}s"
        self.summary["executors"][role] = {"ran": True, "exit": rc}

    def records_of(self, role: str) -> list[dict]:
        out = []
        for f in self.records.glob(f"{role}-*.jsonl"):
            out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        return out

    def wait_for(self, role: str, proc: subprocess.Popen | None, rpc: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while proc is not None and proc.poll() is None and time.monotonic() < deadline:
            if any(r.get("rpc") == rpc for r in self.records_of(role)):
                return
            time.sleep(0.2)

    # ------------------------------------------------------------------ the scenario

    def run(self) -> dict:
        self.step("admin", self.admin)
        self.step("scheduler-a-1", lambda: self.scheduler_pass("node-a", first=True))
        self.step("scheduler-b-1", lambda: self.scheduler_pass("node-b", first=True))

        cron = self.fire("executor-cron", CRON_JOB, "cron")
        self.wait("executor-cron", cron, 180)

        atq = self.fire("executor-atq", ATQ_JOB, "atq")
        # The server is started once the client side is waiting for it.
        self.wait_for("executor-atq", atq, "get_tasks", 90)
        os.environ.update(self._child_env("executor-server"))
        self.step("scheduler-b-2", lambda: self.scheduler_pass("node-b", first=False))
        os.environ["HARNESS_CLOCK_BASE"] = CLOCKS["scheduler"]
        for proc in self.spawned:
            self.wait("executor-server", proc, 180)
        self.wait("executor-atq", atq, 240)

        self.step("scheduler-b-3", lambda: self.scheduler_pass("node-b", first=False))
        self.step("scheduler-a-2", lambda: self.scheduler_pass("node-a", first=False))
        self.step("admin-final", self.admin_final)
        (self.out / "scenario.json").write_text(json.dumps(self.summary, indent=1))
        return self.summary


def main() -> None:
    p = argparse.ArgumentParser(description="The original node agent against one orchestrator.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", type=Path, required=True)
    p.add_argument("--admin-token", required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mask", default="", help="diagnostic only: items to mask, e.g. 9")
    a = p.parse_args()
    if a.mask:
        os.environ["HARNESS_MASK"] = a.mask
    summary = Scenario(a.host, a.port, a.cert.resolve(), a.admin_token, a.out.resolve()).run()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
