"""Fake skyfield, imported by node/trigger.py (its satellite monitor is not run)."""
