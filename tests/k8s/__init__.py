"""Kubernetes test helpers (the kmock emulator) and the tests against a real cluster."""
