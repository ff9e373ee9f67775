"""Fake paho.mqtt."""
