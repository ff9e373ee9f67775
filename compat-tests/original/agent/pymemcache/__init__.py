"""Fake `pymemcache` for the original node agent."""
