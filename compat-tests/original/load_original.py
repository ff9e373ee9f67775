"""Loads a benchmark data set into the ORIGINAL orchestrator's database with the original's own
datastore code (`orchestrator.datastore.LeotestDatastoreMongo`, `common.job`), so the documents
are exactly those it writes itself.

    python load_original.py --db-server HOST --db-port PORT --db-name NAME --admin-token T < data.json

`data.json` (written by `leotest-bench compare-original`, which loads the same records into
leotest-rs through its bulk path): `{"jobs": [...], "runs": [...]}`, a job with the fields of
`LeotestJobCron` (`jobid nodeid userid job_params start_date end_date length_secs overhead
server trigger config` and `schedule` = its five cron fields), a run with the arguments of
`LeotestRun`. Jobs go through `add_job` (the path `schedule_job` takes); runs are
`LeotestRun.document()`s inserted in batches (`update_run` upserts one at a time: the same
documents, only slower to load). The constructor re-creates the `admin` user with
`--admin-token`, as the orchestrator's own start-up does, so pass the orchestrator's token.
Prints `loaded J jobs R runs` on success.
"""

from __future__ import annotations

import argparse
import json
import sys

from common.job import LeotestJobCron, LeotestRun
from orchestrator.datastore import LeotestDatastoreMongo

BATCH = 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db-server", required=True)
    p.add_argument("--db-port", type=int, required=True)
    p.add_argument("--db-name", required=True)
    p.add_argument("--admin-token", required=True)
    a = p.parse_args()
    data = json.load(sys.stdin)
    ds = LeotestDatastoreMongo(server=a.db_server, port=a.db_port, database=a.db_name,
                               admin_access_token=a.admin_token)  # fmt: skip
    for j in data.get("jobs", []):
        job = LeotestJobCron(**{k: v for k, v in j.items() if k != "schedule"}, **j["schedule"])
        state, msg = ds.add_job(job)
        if state != 0:
            sys.exit(f"add_job {j['jobid']}: {msg}")
    runs = [LeotestRun(**r).document() for r in data.get("runs", [])]
    for lo in range(0, len(runs), BATCH):
        ds._runs.insert_many(runs[lo : lo + BATCH])
    print(f"loaded {len(data.get('jobs', []))} jobs {len(runs)} runs", flush=True)


if __name__ == "__main__":
    main()
