"""Fake `redis` for the original node agent: the trigger module's job list, recorded."""

from __future__ import annotations

import leo_agent_env


class Pipeline:
    def __init__(self):
        self.ops = []

    def delete(self, *names):
        self.ops.append(["delete", *names])

    def lpush(self, name, *values):
        self.ops.append(["lpush", name, *values])

    def set(self, name, value, ex=None, **_kw):
        self.ops.append(["set", name, value, str(ex)])

    def execute(self):
        leo_agent_env.event("redis", ops=self.ops)
        self.ops = []
        return []


class Redis:
    def __init__(self, *args, **kwargs):
        pass

    def pipeline(self):
        return Pipeline()

    def get(self, name):
        return None

    def lrange(self, name, start, end):
        return []
