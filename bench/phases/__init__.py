"""The benchmark's phases, one module each (bench/README.md)."""
