"""Benchmark harness for the SOC pipeline (issue 7): `soc bench` / `make bench`."""
