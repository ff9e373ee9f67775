"""Fake memcached client: the agent's session store, one dict per process (the scheduler's
passes run in one process, so task ids seen once stay seen, as with the real memcached)."""

from __future__ import annotations

_STORE: dict = {}


class Client:
    def __init__(self, server, *args, **kwargs):
        self.server = server

    def get(self, key, default=None):
        return _STORE.get(key, default)

    def set(self, key, value, expire=0, noreply=None):
        _STORE[key] = value
        return True

    def delete(self, key, noreply=None):
        return _STORE.pop(key, None) is not None
