"""Benchmark suites; run each from the repository root (see README.md here)."""
