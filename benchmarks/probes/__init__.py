"""One-off investigations behind a decision; run as ``python -m benchmarks.probes.NAME``."""
