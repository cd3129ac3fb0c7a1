"""Benchmarks behind `genie bench ...`: each returns a JSON-ready dict of measured figures."""
