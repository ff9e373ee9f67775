"""Fake paho (MQTT), imported by node/trigger.py."""
