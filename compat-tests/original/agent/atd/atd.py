"""Fake atd.at / atd.atrm / atd.AtQueue: jobs kept in $HARNESS_ATQ_FILE for the harness to run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import leo_agent_env


def _file() -> Path:
    return Path(os.environ.get("HARNESS_ATQ_FILE", "atq.json"))


def _load() -> list:
    try:
        return json.loads(_file().read_text())
    except (OSError, ValueError):
        return []


def _save(jobs: list) -> None:
    _file().write_text(json.dumps(jobs, indent=1))


class AtJob:
    def __init__(self, d):
        self.id = d["id"]
        self.command = d["command"]
        self.when = d["when"]


def at(command, when):
    jobs = _load()
    d = {"id": max([j["id"] for j in jobs], default=0) + 1, "command": command, "when": str(when)}
    jobs.append(d)
    _save(jobs)
    leo_agent_env.event("at", op="at", command=command, when=str(when))
    return AtJob(d)


def atrm(job):
    _save([j for j in _load() if j["id"] != job.id])
    leo_agent_env.event("at", op="atrm", command=job.command)


class AtQueue:
    def __init__(self):
        self.jobs = [AtJob(d) for d in _load()]
