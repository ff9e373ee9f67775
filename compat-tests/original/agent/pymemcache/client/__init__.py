"""Fake pymemcache.client."""
