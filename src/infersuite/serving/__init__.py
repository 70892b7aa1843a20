"""Servers under test: starting them, talking to them, and planting faults between."""
