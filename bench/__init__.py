"""Benchmark harness for the SOC pipeline: `python -m bench` / `make bench` (bench/README.md)."""
