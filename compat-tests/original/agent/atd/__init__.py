"""Fake python-atd (`from atd import atd`): the at queue in a JSON file ($HARNESS_ATQ_FILE)."""
