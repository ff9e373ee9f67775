"""Issue 14, item by item, driven with the ORIGINAL's code and files: its client's generated
stub and classes, certificates made by its generate_certs.sh, and (where its answer is the
reference) the Python original orchestrator itself, answer bytes compared with ours.

Items 2, 3 and 8 are also checked at the deployment level by scripts/dropin-test.sh (its
compose files, Docker); items 5, 9 and 10 also by test_node_agent.py (its node agent).
Every failure message starts with "issue 14 item N".
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import grpc
import pytest

import recorder
from dates import Y
from servers import probe
from upstream import REPO_ROOT


class Caller:
    """The original's generated stub over the original's channel set-up, one identity; keeps
    every answer's wire bytes."""

    def __init__(self, upstream: Path, server, userid: str, token: str = "", jwt: str = "") -> None:
        import sys

        if str(upstream) not in sys.path:
            sys.path.insert(0, str(upstream))
        import common.leotest_pb2 as pb2
        import common.leotest_pb2_grpc as pb2_grpc

        self.pb2 = pb2
        self.upstream, self.server = upstream, server
        creds = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(root_certificates=server.cert.read_bytes()),
            grpc.metadata_call_credentials(lambda _c, cb: cb((
                ("x-leotest-access-token", token), ("x-leotest-userid", userid),
                ("x-leotest-jwt-access-token", jwt)), None)),
        )  # fmt: skip
        inner = grpc.secure_channel(server.target, creds,
                                    options=(("grpc.ssl_target_name_override", "localhost"),))
        self.channel = recorder.RecordingChannel(inner, None, abort_on_repeats=False)
        self.stub = pb2_grpc.LeotestOrchestratorStub(self.channel)

    def __call__(self, rpc: str, **fields):
        """(status code name, response or None, wire bytes or None)."""
        method = self.pb2.DESCRIPTOR.services_by_name["LeotestOrchestrator"].methods_by_name[rpc]
        request = getattr(self.pb2, method.input_type.name)(**fields)
        try:
            rsp = getattr(self.stub, rpc)(request, timeout=10)
        except grpc.RpcError as err:
            return err.code().name, err.details(), None
        return "OK", rsp, self.channel.last_raw


def register(upstream, server, admin_token):
    """Admin, a USER_PRIV user, a USER and a node, made through the original's messages."""
    adm = Caller(upstream, server, "admin", admin_token)
    pb2 = adm.pb2
    ids = {}
    for uid, role in (("priv", pb2.USER_PRIV), ("plain", pb2.USER)):
        code, rsp, _ = adm("register_user", id=uid, name=f"n-{uid}", role=role, team="t")
        assert code == "OK" and rsp.state == 0, rsp
        ids[uid] = Caller(upstream, server, uid, rsp.message.rsplit("=", 1)[1])
    code, rsp, _ = adm("register_node", node=pb2._node(nodeid="nd", name="roof", description="d",
                                                       coords="1,2", location="here"))  # fmt: skip
    assert code == "OK" and rsp.state == 0, rsp
    ids["nd"] = Caller(upstream, server, "nd", rsp.message.rsplit("=", 1)[1])
    ids["admin"] = adm
    return ids


def both(upstream, ours, original, credentials, scenario):
    """Runs scenario(ids) against each orchestrator; returns {name: result}."""
    out = {}
    for name, server in (("ours", ours), ("original", original)):
        out[name] = scenario(register(upstream, server, credentials["admin_token"]))
    return out


# ------------------------------------------------------------------ item 1


def _leotest() -> Path:
    binary = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target")) / "debug" / "leotest"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "leotest-client"], cwd=REPO_ROOT, check=True)
    return binary


def _cli(server, cert: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LEOTEST_ACCESS_TOKEN": server.admin_token}
    return subprocess.run([str(_leotest()), "--grpc-host", "127.0.0.1", "--grpc-port", str(server.port),
                           "--ca-cert", str(cert), "--retries", "0", "user", "--action=get",
                           "--id=admin"], capture_output=True, text=True, env=env, timeout=60)  # fmt: skip


def test_item_1_cli_trusts_a_generate_certs_sh_certificate(ours):
    done = _cli(ours, ours.cert)
    assert done.returncode == 0, (
        f"issue 14 item 1: `leotest --ca-cert server.crt` (generate_certs.sh: X.509 v1, CN=localhost, "
        f"no SAN; grpcio accepts it) exited {done.returncode}: {done.stderr.strip()[-500:]}")


def test_item_1_cli_trusts_an_openssl_one_liner_ca_certificate(tmp_path, credentials):
    from conftest import start_ours

    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)  # fmt: skip
    text = subprocess.run(["openssl", "x509", "-in", str(crt), "-noout", "-text"],
                          capture_output=True, text=True).stdout  # fmt: skip
    assert "CA:TRUE" in text, "the one-liner no longer makes a CA:TRUE certificate here"
    server = start_ours(tmp_path / "srv", (crt, key), credentials)
    try:
        assert probe(server.target, crt.read_bytes(), server.admin_token) is None  # grpcio: fine
        done = _cli(server, crt)
    finally:
        server.stop()
    assert done.returncode == 0, (
        "issue 14 item 1: `leotest --ca-cert` with `openssl req -x509 -newkey rsa -nodes "
        f"-subj /CN=localhost` (v3, CA:TRUE, no SAN) exited {done.returncode}: "
        f"{done.stderr.strip()[-500:]}")  # fmt: skip


# ------------------------------------------------------------------ item 2


def _own_address() -> str | None:
    """A non-loopback address of this machine (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_item_2_grpc_hostname_localhost_listens_like_the_original(tmp_path, orig_cert, credentials):
    """The original binds [::]:50051 whatever --grpc-hostname says; its compose file passes
    --grpc-hostname=localhost and publishes the port, so a non-loopback address must answer."""
    from servers import OursOrchestrator, free_port

    addr = _own_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    server = OursOrchestrator(name="ours-localhost", workdir=tmp_path, cert=orig_cert[0],
                              key=orig_cert[1], **credentials)  # fmt: skip
    server.port = free_port()
    import servers as srv

    args = [str(server.binary), "--grpc-hostname=localhost", f"--grpc-port={server.port}",
            "--tls-cert", str(server.cert), "--tls-key", str(server.key),
            "--admin-access-token", server.admin_token, "--jwt-secret", server.jwt_secret,
            "--jwt-algo", "HS256", "--data-dir", str(tmp_path / "data")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEOTEST_")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        import time

        deadline, local, remote = time.monotonic() + 30, "not tried", "not tried"
        while time.monotonic() < deadline and proc.poll() is None:
            local = probe(f"127.0.0.1:{server.port}", server.cert.read_bytes(), server.admin_token)
            if local is None:
                break
            time.sleep(0.3)
        remote = srv.probe(f"{addr}:{server.port}", server.cert.read_bytes(), server.admin_token)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert remote is None, (
        f"issue 14 item 2: with --grpc-hostname=localhost (the original compose file's flag) "
        f"{addr}:{server.port} does not answer ({remote}); 127.0.0.1: {local or 'answers'}; "
        f"log: {err.decode(errors='replace')[-800:]}")  # fmt: skip


# ------------------------------------------------------------------ item 4


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_item_4_large_job_config_is_stored_and_read_back(upstream, ours, size):
    ids = register(upstream, ours, ours.admin_token)
    config = ("docker:\n  image: 'x'\n" + "# " + "y" * 77 + "\n" * 1) * (size // 80 + 1)
    config = config[:size]
    pb2 = ids["priv"].pb2
    code, rsp, _ = ids["priv"]("schedule_job", id="big", nodeid="nd", type=pb2.CRON,
                               params=pb2.job_params(mode="docker", deploy="d", execute="e", finish="f"), schedule="0 * * * *",
                               start_date=f"{Y}-01-01T00:00:00", end_date=f"{Y}-01-02T00:00:00",
                               length_secs=60, overhead=True, config=config)  # fmt: skip
    assert code == "OK" and rsp.state == 0, f"issue 14 item 4: {size}-byte config: {code} {rsp}"
    code, rsp, _ = ids["priv"]("get_job_by_id", jobid="big")
    assert code == "OK" and rsp.config == config, (
        f"issue 14 item 4: {size}-byte config came back as {len(getattr(rsp, 'config', ''))} bytes")


# ------------------------------------------------------------------ items 5, 6, 9, 10 vs the original


def test_item_5_job_lists_in_insertion_order_and_node_fields_present(upstream, ours, original,
                                                                      credentials):  # fmt: skip
    def scenario(ids):
        pb2 = ids["priv"].pb2
        for jobid, hour in (("zz-late", 5), ("aa-early", 1), ("mm-mid", 3)):
            code, rsp, _ = ids["priv"]("schedule_job", id=jobid, nodeid="nd", type=pb2.ATQ,
                                       params=pb2.job_params(mode="docker", deploy="d", execute="e", finish="f"),
                                       start_date=f"{Y}-01-01T0{hour}:00:00",
                                       end_date=f"{Y}-01-01T0{hour}:30:00", length_secs=60,
                                       overhead=True, config="c")  # fmt: skip
            assert code == "OK" and rsp.state == 0, (code, rsp)
        code, rsp, _ = ids["admin"]("register_node", node=pb2._node(nodeid="empty", name="e",
                                    description="d", coords="1,2", location="x"))  # fmt: skip
        out = {}
        for rpc, fields in (("get_jobs_by_nodeid", {"nodeid": "nd"}),
                            ("get_jobs_by_userid", {"userid": "priv"}),
                            ("get_nodes", {"nodeid": "empty"}),
                            ("get_scheduled_runs", {"nodeid": "nd", "start": f"{Y}-01-01 00:00:00",
                                                    "end": f"{Y}-01-02 00:00:00"})):  # fmt: skip
            code, rsp, raw = ids["admin"](rpc, **fields)
            if rpc == "get_nodes":  # the server's clock: compare everything else
                for n in rsp.nodes:
                    n.last_active = "<clock>"
                raw = rsp.SerializeToString()
            items = list(getattr(rsp, "jobs", None) or getattr(rsp, "events", None) or []) \
                if rpc != "get_nodes" else []  # fmt: skip
            out[rpc] = {"code": code, "hex": raw.hex() if raw else str(rsp),
                        "present": recorder.present_fields(rsp) if raw else [],
                        "order": [getattr(i, "title", "") or getattr(i, "id", "") for i in items]}
        return out

    res = both(upstream, ours, original, credentials, scenario)
    bad = []
    for rpc, want in res["original"].items():
        got = res["ours"][rpc]
        if got == want:
            continue
        po, pg = set(got["present"]), set(want["present"])
        bad.append(f"{rpc}: order ours {got['order']} vs original {want['order']}; fields present "
                   f"only in ours {sorted(po - pg)}, only in the original's {sorted(pg - po)}; "
                   f"bytes ours {got['hex'][:160]}... vs original {want['hex'][:160]}...")
    assert not bad, "issue 14 item 5: answers differ from the original's bytes:\n" + "\n".join(bad)


def test_item_6_register_node_for_an_existing_node_user_keeps_its_token(upstream, ours, original,
                                                                         credentials):  # fmt: skip
    """A NODE user registered first (register_user, role NODE), then register_node for the
    same id: the original keeps that user, so the node agent's configured token keeps working.
    The token register_node's reply carries must work too (with us; the original's did not)."""

    def scenario(ids):
        pb2 = ids["admin"].pb2
        code, rsp, _ = ids["admin"]("register_user", id="nd2", name="agent", role=pb2.NODE, team="ops")
        assert code == "OK" and rsp.state == 0, (code, rsp)
        configured = Caller(ids["admin"].upstream, ids["admin"].server, "nd2",
                            rsp.message.rsplit("=", 1)[1])  # fmt: skip
        code, rsp, _ = ids["admin"]("register_node", node=pb2._node(
            nodeid="nd2", name="roof 2", description="node two", coords="1,2", location="here"))
        results = [("register_node", code, rsp.state if code == "OK" else rsp)]
        for rpc, fields in (("report_heartbeat", {"nodeid": "nd2"}),
                            ("get_jobs_by_nodeid", {"nodeid": "nd2"}),
                            ("update_run", {"run": pb2.run_instance(runid="r6", jobid="j", nodeid="nd2",
                                            userid="u", start_time=f"{Y}-01-01 00:00:00",
                                            end_time=f"{Y}-01-01 00:00:00",
                                            last_updated=f"{Y}-01-01 00:00:00")})):  # fmt: skip
            code, rsp, raw = configured(rpc, **fields)
            results.append((rpc, code, raw.hex() if raw else rsp))
        return (results,)

    res = both(upstream, ours, original, credentials, scenario)
    assert res["ours"][0] == res["original"][0], (
        "issue 14 item 6: the node's configured token after register_node for an existing NODE "
        f"user: ours {res['ours'][0]} vs original {res['original'][0]}")


def test_item_6_the_token_in_register_nodes_reply_works(upstream, ours):
    ids = register(upstream, ours, ours.admin_token)
    pb2 = ids["admin"].pb2
    code, rsp, _ = ids["admin"]("register_user", id="nd4", name="agent", role=pb2.NODE, team="ops")
    code, rsp, _ = ids["admin"]("register_node", node=pb2._node(
        nodeid="nd4", name="roof 4", description="node four", coords="1,2", location="here"))
    assert code == "OK" and "access_token=" in rsp.message, (code, rsp)
    replied = Caller(upstream, ours, "nd4", rsp.message.rsplit("access_token=", 1)[1])
    code, hb, _ = replied("report_heartbeat", nodeid="nd4")
    assert code == "OK" and hb.received, (
        f"issue 14 item 6: the token register_node answered ({rsp.message!r}) does not work: "
        f"{code} {hb}")


def test_item_7_get_global_config_answers_ok_to_every_role(upstream, ours, original, credentials):
    def scenario(ids):
        pb2 = ids["admin"].pb2
        cfg = pb2.settings(datastore=pb2.datastore_settings(blob=pb2.blob_settings(
            connectionString="AccountKey=secret-key", container="c", artifactPath="jobs/")),
            weather=pb2.weather_api_settings(apikey="weather-secret"))
        assert ids["admin"]("update_global_config", config=cfg)[0] == "OK"
        out = {}
        for who in ("priv", "plain", "nd", "admin"):
            code, rsp, _ = ids[who]("get_global_config")
            out[who] = (code, rsp if code != "OK" else rsp.config)
        return out

    res = both(upstream, ours, original, credentials, scenario)
    bad = [f"{who}: ours {res['ours'][who][0]} {res['ours'][who][1]!r}"
           for who in res["ours"] if res["ours"][who][0] != "OK"]  # fmt: skip
    assert not bad, ("issue 14 item 7: the original answers get_global_config OK to every role "
                     "(its client then retries an error forever): " + "; ".join(bad))
    for who in ("priv", "plain"):
        cfg = res["ours"][who][1]
        assert "secret" not in str(cfg), f"get_global_config to {who} leaks credentials: {cfg}"


def test_item_9_scavenger_status_of_a_node_with_the_mode_off(upstream, ours, original, credentials):
    def scenario(ids):
        out = []
        for who in ("nd", "admin"):
            code, rsp, raw = ids[who]("get_scavenger_status", nodeid="nd")
            out.append((who, code, raw.hex() if raw else rsp))
        code, rsp, raw = ids["admin"]("get_scavenger_status", nodeid="no-such-node")
        out.append(("unknown node", code, raw.hex() if raw else rsp))
        return out

    res = both(upstream, ours, original, credentials, scenario)
    assert res["ours"] == res["original"], (
        "issue 14 item 9: get_scavenger_status answers (hex) differ; the original node agent "
        "reads msg['scavengerModeActive'] whenever found is true: "
        f"ours {res['ours']} vs original {res['original']}")


def test_item_10_run_times_at_the_original_databases_precision(upstream, ours, original,
                                                                credentials):  # fmt: skip
    def scenario(ids):
        pb2 = ids["nd"].pb2
        for runid, t in (("r-ms0", f"{Y}-01-01 00:10:00.000123"),
                         ("r-ms910", f"{Y}-01-01 00:10:32.910943")):
            code, rsp, _ = ids["nd"]("update_run", run=pb2.run_instance(
                runid=runid, jobid="j10", nodeid="nd", userid="priv", start_time=t, end_time=t,
                last_updated=t, status="EXECUTING"))  # fmt: skip
            assert code == "OK", rsp
        code, rsp, raw = ids["admin"]("get_runs", jobid="j10")
        return sorted((r.runid, r.start_time, r.end_time, r.last_updated) for r in rsp.runs)

    res = both(upstream, ours, original, credentials, scenario)
    assert res["ours"] == res["original"], (
        f"issue 14 item 10: run times: ours {res['ours']} vs original {res['original']}")
